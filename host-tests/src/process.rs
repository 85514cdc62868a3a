//! What Envoy keeps per process, outside any VM: shared data and shared queues (scoped by
//! `vm_id`), the stats store, and the clock. Every worker's store holds an `Arc` to one
//! `Process`, so state shared across workers behaves as in Envoy; nothing here is global, so
//! tests run in parallel.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::abi::Status;

/// Nanoseconds since the Unix epoch at which a new process's virtual clock starts
/// (2026-01-01T00:00:00Z).
pub const EPOCH_NANOS: u64 = 1_767_225_600_000_000_000;

/// A metric's kind, numbered as in the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down, or is set.
    Gauge,
    /// Records samples.
    Histogram,
}

impl MetricKind {
    pub(crate) fn from_abi(v: i32) -> Option<MetricKind> {
        match v {
            0 => Some(MetricKind::Counter),
            1 => Some(MetricKind::Gauge),
            2 => Some(MetricKind::Histogram),
            _ => None,
        }
    }
}

/// One stat, as the admin `/stats` page would show it (summed over workers).
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Its kind.
    pub kind: MetricKind,
    /// Counter or gauge value; for a histogram, the number of samples.
    pub value: i64,
    /// Histogram samples, in order.
    pub samples: Vec<u64>,
}

/// A fault the test injects into shared data, to see a plugin's failure handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedFault {
    /// Every get and set answers InternalFailure.
    Unavailable,
    /// Every conditional set (CAS not 0) answers CasMismatch, as under endless contention.
    CasAlwaysLoses,
}

#[derive(Debug, Default)]
struct Queue {
    vm_id: String,
    name: String,
    /// The worker and root context that registered it: they get `proxy_on_queue_ready`.
    owner: (usize, u32),
    items: VecDeque<Vec<u8>>,
}

#[derive(Debug)]
struct Inner {
    /// Per `vm_id`: key → (value, cas).
    shared: HashMap<String, HashMap<String, (Vec<u8>, u32)>>,
    /// One CAS sequence for the whole store, as in proxy-wasm-cpp-host; never 0.
    next_cas: u32,
    queues: BTreeMap<u32, Queue>,
    next_queue: u32,
    /// `(worker, context id, queue id)` waiting for `proxy_on_queue_ready`.
    ready: Vec<(usize, u32, u32)>,
    metrics: BTreeMap<String, Metric>,
    now: u64,
    fault: Option<SharedFault>,
}

/// The process-wide state shared by the workers of one simulated Envoy.
#[derive(Debug)]
pub struct Process {
    inner: Mutex<Inner>,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            inner: Mutex::new(Inner {
                shared: HashMap::new(),
                next_cas: 1,
                queues: BTreeMap::new(),
                next_queue: 1,
                ready: Vec::new(),
                metrics: BTreeMap::new(),
                now: EPOCH_NANOS,
                fault: None,
            }),
        }
    }
}

impl Process {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not poison the others' view.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The virtual clock, in nanoseconds since the epoch.
    pub fn now(&self) -> u64 {
        self.lock().now
    }

    pub(crate) fn set_now(&self, t: u64) {
        let mut g = self.lock();
        g.now = g.now.max(t);
    }

    /// Reads a shared-data key: its value and CAS.
    pub fn get_shared(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.lock().shared.get(vm_id)?.get(key).cloned()
    }

    /// Injects a fault into shared data (`None` to heal it).
    pub fn inject_shared_fault(&self, fault: Option<SharedFault>) {
        self.lock().fault = fault;
    }

    /// A guest's read: as `get_shared`, or the injected failure.
    pub(crate) fn guest_get_shared(
        &self,
        vm_id: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u32)>, Status> {
        if self.lock().fault == Some(SharedFault::Unavailable) {
            return Err(Status::InternalFailure);
        }
        Ok(self.get_shared(vm_id, key))
    }

    /// Writes a shared-data key. On an existing key, `cas` 0 writes unconditionally and any other
    /// value must equal the key's current CAS; a missing key is created whatever the CAS. Every
    /// write takes the next CAS of the store's one sequence. There is no delete.
    pub(crate) fn set_shared(&self, vm_id: &str, key: &str, value: Vec<u8>, cas: u32) -> Status {
        let mut g = self.lock();
        match g.fault {
            Some(SharedFault::Unavailable) => return Status::InternalFailure,
            Some(SharedFault::CasAlwaysLoses) if cas != 0 => return Status::CasMismatch,
            _ => {}
        }
        let next = g.next_cas;
        let map = g.shared.entry(vm_id.to_owned()).or_default();
        match map.get_mut(key) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Status::CasMismatch;
                }
                *entry = (value, next);
            }
            None => {
                map.insert(key.to_owned(), (value, next));
            }
        }
        g.next_cas = match next.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        Status::Ok
    }

    /// Number of keys and total bytes (keys and values) in a VM's shared data.
    pub fn shared_size(&self, vm_id: &str) -> (usize, usize) {
        self.lock().shared.get(vm_id).map_or((0, 0), |m| {
            (m.len(), m.iter().map(|(k, (v, _))| k.len() + v.len()).sum())
        })
    }

    pub(crate) fn register_queue(&self, vm_id: &str, name: &str, owner: (usize, u32)) -> u32 {
        let mut g = self.lock();
        if let Some((id, q)) = g
            .queues
            .iter_mut()
            .find(|(_, q)| q.vm_id == vm_id && q.name == name)
        {
            // Registering again moves the notifications to the new registrant.
            q.owner = owner;
            return *id;
        }
        let id = g.next_queue;
        g.next_queue += 1;
        g.queues.insert(
            id,
            Queue {
                vm_id: vm_id.to_owned(),
                name: name.to_owned(),
                owner,
                items: VecDeque::new(),
            },
        );
        id
    }

    pub(crate) fn resolve_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.lock()
            .queues
            .iter()
            .find(|(_, q)| q.vm_id == vm_id && q.name == name)
            .map(|(id, _)| *id)
    }

    pub(crate) fn enqueue(&self, id: u32, item: Vec<u8>) -> Status {
        let mut g = self.lock();
        let Some(q) = g.queues.get_mut(&id) else {
            return Status::NotFound;
        };
        q.items.push_back(item);
        let (worker, ctx) = q.owner;
        g.ready.push((worker, ctx, id));
        Status::Ok
    }

    pub(crate) fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut g = self.lock();
        let q = g.queues.get_mut(&id).ok_or(Status::NotFound)?;
        q.items.pop_front().ok_or(Status::Empty)
    }

    /// The queue-ready notifications waiting for `worker`, without taking them.
    pub(crate) fn ready_for(&self, worker: usize) -> Vec<(u32, u32)> {
        self.lock()
            .ready
            .iter()
            .filter(|r| r.0 == worker)
            .map(|(_, c, q)| (*c, *q))
            .collect()
    }

    /// Takes the queue-ready notifications due to `worker`.
    pub(crate) fn take_ready(&self, worker: usize) -> Vec<(u32, u32)> {
        let mut g = self.lock();
        let (mine, rest): (Vec<_>, Vec<_>) = g.ready.drain(..).partition(|r| r.0 == worker);
        g.ready = rest;
        mine.into_iter().map(|(_, c, q)| (c, q)).collect()
    }

    pub(crate) fn define_metric(&self, name: &str, kind: MetricKind) -> Result<(), Status> {
        let mut g = self.lock();
        match g.metrics.get(name) {
            Some(m) if m.kind != kind => Err(Status::BadArgument),
            Some(_) => Ok(()),
            None => {
                g.metrics.insert(
                    name.to_owned(),
                    Metric {
                        kind,
                        value: 0,
                        samples: Vec::new(),
                    },
                );
                Ok(())
            }
        }
    }

    pub(crate) fn update_metric(
        &self,
        name: &str,
        f: impl FnOnce(&mut Metric) -> Status,
    ) -> Status {
        match self.lock().metrics.get_mut(name) {
            Some(m) => f(m),
            None => Status::NotFound,
        }
    }

    /// A stat by the name the plugin defined (without Envoy's `wasmcustom.` prefix).
    pub fn metric(&self, name: &str) -> Option<Metric> {
        self.lock().metrics.get(name).cloned()
    }

    /// Every counter and gauge, by name.
    pub fn metrics(&self) -> BTreeMap<String, i64> {
        self.lock()
            .metrics
            .iter()
            .map(|(k, m)| (k.clone(), m.value))
            .collect()
    }
}
