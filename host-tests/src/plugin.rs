//! A plugin configuration running on simulated Envoy workers, and the HTTP stream driver that
//! takes each request through Envoy's filter lifecycle.
//!
//! Per stream, as Envoy's wasm filter does: `proxy_on_context_create`, request headers, body
//! chunks, trailers; then the upstream (or the local reply); response headers, body, trailers;
//! then `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`. Pause on headers holds everything
//! until `proxy_continue_stream` (StopAllIteration); Pause on a body chunk buffers, and the next
//! body callback sees the whole buffer; a local reply ends the request side and goes through the
//! response callbacks. A trap fails the VM: the stream gets a 503 `wasm_fail_stream` (or goes on
//! without the filter under fail-open), and later streams follow the failure policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{WasmParams, WasmResults};

use crate::host::Host;
use crate::http::{echo_upstream, Exchange, Forwarded, Request, Response, Upstream};
use crate::process::Process;
use crate::state::{level, GrpcCall, Headers, HttpCall, LogLine, PluginSpec, StreamData};
use crate::vm::{StartError, Trap, Vm};

/// What Envoy does when the VM fails (`failure_policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Every request on the failed worker gets 503.
    FailClosed,
    /// Requests on the failed worker bypass the plugin.
    FailOpen,
    /// A fresh VM on the next request, at most once per `backoff`; requests in between get 503.
    FailReload {
        /// Envoy's `reload_config.backoff.base_interval` (default 1 s).
        backoff: Duration,
    },
}

/// How to run a plugin.
#[derive(Clone)]
pub struct PluginOptions {
    /// The plugin and VM configuration.
    pub spec: PluginSpec,
    /// Number of workers (Envoy's `--concurrency`), each with its own VM.
    pub workers: usize,
    /// The failure policy.
    pub failure: FailurePolicy,
    /// Clusters that callouts may name.
    pub clusters: Vec<String>,
    /// The upstream that answers forwarded requests.
    pub upstream: Upstream,
    /// Add an `x-request-id` to requests without one, as the edges' `generate_request_id` does.
    pub generate_request_id: bool,
    /// Replace the client's `x-request-id` with a fresh one, as Envoy does for external clients
    /// (the edges set `use_remote_address`, and do not preserve external request ids).
    pub replace_request_id: bool,
    /// Start a canary VM first, as Envoy does for each new configuration: it runs
    /// `proxy_on_vm_start` and `proxy_on_configure` once more (its log lines carry the worker
    /// index [`CANARY`]), its refusal refuses the configuration, and then it is dropped.
    pub canary: bool,
    /// Run a VM on Envoy's main thread too, as Envoy's thread-local slots do: it starts after
    /// the canary, has the worker index `workers` (one past the last worker), gets ticks, queue
    /// notifications and callout answers, and serves no requests.
    pub main_thread: bool,
    /// Envoy's connection buffer limit (`per_connection_buffer_limit_bytes`, 1 MiB by default):
    /// no body call delivers more than this, and a body the plugin buffers (Pause on a body
    /// call) past it ends the stream, with 413 on the request side or a reset once the
    /// response headers are out. `None`: no limit.
    pub buffer_limit: Option<usize>,
    /// HTTP/1.1 framing of body calls: every chunk comes with end of stream unset, and the end
    /// comes in a call of its own (with no new bytes, or the buffered ones after a Pause), as
    /// Envoy's HTTP/1 codec delivers a body. `false`: the last chunk carries end of stream.
    pub http1_body_calls: bool,
}

/// The worker index of the canary VM's log lines.
pub const CANARY: usize = usize::MAX;

impl std::fmt::Debug for PluginOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginOptions")
            .field("spec", &self.spec)
            .field("workers", &self.workers)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl PluginOptions {
    /// As Envoy runs a plugin with nothing else configured: one worker, FAIL_CLOSED (Envoy's
    /// default `failure_policy`), a canary VM, a 1 MiB buffer limit and HTTP/1.1 body calls;
    /// a `backend` cluster, the echo upstream, request ids generated.
    pub fn new(spec: PluginSpec) -> Self {
        PluginOptions {
            spec,
            workers: 1,
            failure: FailurePolicy::FailClosed,
            clusters: vec!["backend".into()],
            upstream: echo_upstream(),
            generate_request_id: true,
            replace_request_id: false,
            canary: true,
            main_thread: true,
            buffer_limit: Some(1 << 20),
            http1_body_calls: true,
        }
    }

    /// As the shipped edges run the plugin: FAIL_RELOAD with Envoy's default backoff (1 s),
    /// clients are external (their request ids replaced) and `allow_on_headers_stop_iteration`
    /// is set.
    pub fn edge(mut self) -> Self {
        self.failure = FailurePolicy::FailReload {
            backoff: Duration::from_secs(1),
        };
        self.replace_request_id = true;
        self.spec.allow_on_headers_stop_iteration = true;
        self
    }

    /// With this many workers.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// With this failure policy.
    pub fn failure(mut self, policy: FailurePolicy) -> Self {
        self.failure = policy;
        self
    }

    /// With this upstream.
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = upstream;
        self
    }
}

/// A configuration the plugin (or the module) refused, with the log lines that explain it.
#[derive(Debug)]
pub struct Refusal {
    /// What failed.
    pub error: StartError,
    /// What the plugin logged while starting.
    pub logs: Vec<LogLine>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        for l in &self.logs {
            write!(f, "\n  {}", l.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

struct Deploy {
    host: Host,
    process: Arc<Process>,
    spec: Arc<PluginSpec>,
    failure: FailurePolicy,
    clusters: Arc<Vec<String>>,
    upstream: Upstream,
    generate_request_id: bool,
    replace_request_id: bool,
    buffer_limit: Option<usize>,
    http1_body_calls: bool,
}

/// An event on a gRPC call or stream, delivered by the test.
#[derive(Clone, Debug)]
pub enum GrpcEvent {
    /// Initial metadata (streams).
    InitialMetadata(Headers),
    /// A message: for a unary call, its answer (which ends it).
    Message(Vec<u8>),
    /// Trailing metadata (streams).
    TrailingMetadata(Headers),
    /// The remote closed (or the call failed) with this gRPC status and message.
    Close {
        /// gRPC status code.
        status: u32,
        /// gRPC message.
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    ReqHeaders,
    ReqBody(usize),
    ReqTrailers,
    Upstream,
    RespHeaders,
    RespBody(usize),
    RespTrailers,
    Log,
}

#[derive(Debug)]
struct Flow {
    request: Request,
    stage: Stage,
    /// Waiting for `proxy_continue_stream` at this stage.
    held: bool,
    /// The filter is out of this stream (fail-open after a failure).
    bypass: bool,
    /// The filter's VM failed during this stream: no more calls into it.
    failed: bool,
    req_headers: Headers,
    req_buffer: Vec<u8>,
    req_out: Vec<u8>,
    req_trailers: Option<Headers>,
    response: Response,
    resp_headers: Headers,
    resp_buffer: Vec<u8>,
    resp_out: Vec<u8>,
    resp_trailers: Option<Headers>,
    /// The request body as the filter gets it, one entry per body call.
    req_chunks: Vec<Vec<u8>>,
    /// The response body as the filter gets it, one entry per body call (none for HEAD).
    resp_chunks: Vec<Vec<u8>>,
    /// A HEAD request: responses to it have no body.
    head: bool,
    /// A local reply is on its way: later local replies are ignored.
    replied: bool,
    /// The request headers stopped (StopIteration) while the body goes on being delivered:
    /// they stay readable until a later stage continues.
    headers_stopped: bool,
    ex: Exchange,
}

enum Called {
    Ran(i32),
    Trapped(Trap),
    /// The VM had failed already (or the filter is bypassed): not called.
    Skipped,
}

enum Step {
    /// The stage is complete; go on.
    Next,
    /// Wait for `proxy_continue_stream`.
    Hold,
    /// The flow was redirected (local reply, reset, failure); its stage is already set.
    Redirected,
}

/// One simulated worker thread: a VM of its own, its streams, and its share of the process.
/// `Send`, so a test can drive workers from several threads at once.
pub struct Worker {
    index: usize,
    deploy: Arc<Deploy>,
    vm: Option<Vm>,
    failed: bool,
    last_load: u64,
    generation: u32,
    next_context: u32,
    flows: BTreeMap<u32, Flow>,
    finished: Vec<Exchange>,
    logs: Vec<LogLine>,
    traps: Vec<Trap>,
    tick_period: u32,
    next_tick: Option<u64>,
    request_seq: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("generation", &self.generation)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// A plugin configuration running on one or more workers.
pub struct Plugin {
    /// The workers, then the main thread's VM (if any), which serves no requests.
    workers: Vec<Worker>,
    /// How many of `workers` serve requests.
    serving: usize,
    next: usize,
    process: Arc<Process>,
    /// What the canary VM logged.
    canary_logs: Vec<LogLine>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Starts the plugin on fresh workers in a fresh process.
    pub fn start(host: &Host, options: PluginOptions) -> Result<Plugin, Refusal> {
        Plugin::start_in(host, options, Arc::new(Process::default()))
    }

    /// Starts the plugin in an existing process (shared data and stats carry over, as for a
    /// new plugin configuration in a running Envoy). As Envoy does, a configuration is accepted
    /// only if every worker's VM accepts it.
    pub fn start_in(
        host: &Host,
        options: PluginOptions,
        process: Arc<Process>,
    ) -> Result<Plugin, Refusal> {
        let deploy = Arc::new(Deploy {
            host: host.clone(),
            process: process.clone(),
            spec: Arc::new(options.spec),
            failure: options.failure,
            clusters: Arc::new(options.clusters),
            upstream: options.upstream,
            generate_request_id: options.generate_request_id,
            replace_request_id: options.replace_request_id,
            buffer_limit: options.buffer_limit,
            http1_body_calls: options.http1_body_calls,
        });
        let mut canary_logs = Vec::new();
        if options.canary {
            // Envoy validates a configuration on a VM of its own first; a refusal there refuses
            // it. The canary serves nothing afterwards.
            let (vm, logs) = start_vm(&deploy, CANARY);
            match vm {
                Ok(vm) => drop(vm),
                Err(error) => return Err(Refusal { error, logs }),
            }
            canary_logs = logs;
        }
        let mut workers = Vec::new();
        let serving = options.workers.max(1);
        // The main thread's VM starts first, then the workers'.
        let order = options
            .main_thread
            .then_some(serving)
            .into_iter()
            .chain(0..serving);
        for index in order {
            let (vm, logs) = start_vm(&deploy, index);
            match vm {
                Ok(vm) => workers.push(Worker {
                    index,
                    deploy: deploy.clone(),
                    vm: Some(vm),
                    failed: false,
                    last_load: process.now(),
                    generation: 1,
                    next_context: 2,
                    flows: BTreeMap::new(),
                    finished: Vec::new(),
                    logs,
                    traps: Vec::new(),
                    tick_period: 0,
                    next_tick: None,
                    request_seq: 0,
                }),
                Err(error) => return Err(Refusal { error, logs }),
            }
        }
        workers.sort_by_key(|w| w.index);
        for w in &mut workers {
            w.after_call(None);
        }
        Ok(Plugin {
            workers,
            serving,
            next: 0,
            process,
            canary_logs,
        })
    }

    /// Sends a request on the next worker (round robin).
    pub fn send(&mut self, req: Request) -> Exchange {
        let i = self.next % self.serving;
        self.next = self.next.wrapping_add(1);
        self.send_on(i, req)
    }

    /// Sends a request on worker `i` (modulo the number of workers).
    pub fn send_on(&mut self, i: usize, req: Request) -> Exchange {
        let n = self.serving;
        match self.workers.get_mut(i % n) {
            Some(w) => w.send(req),
            None => Exchange::default(),
        }
    }

    /// The workers, to drive from threads of the test's own.
    pub fn workers_mut(&mut self) -> &mut [Worker] {
        let n = self.serving.min(self.workers.len());
        self.workers.split_at_mut(n).0
    }

    /// The process the workers share.
    pub fn process(&self) -> &Arc<Process> {
        &self.process
    }

    /// A stat by the name the plugin defined (Envoy shows it as `wasmcustom.<name>`).
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.process.metric(name).map(|m| m.value)
    }

    /// A shared-data key of this plugin's `vm_id`: value and CAS.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let vm_id = self.workers.first().map(|w| w.deploy.spec.vm_id.clone())?;
        self.process.get_shared(&vm_id, key)
    }

    /// Every log line so far that no exchange took, in order per worker (the canary's first);
    /// drains them.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        let mut all = std::mem::take(&mut self.canary_logs);
        all.extend(
            self.workers
                .iter_mut()
                .flat_map(|w| std::mem::take(&mut w.logs)),
        );
        all
    }

    /// Exchanges that completed after they were returned pending; drains them.
    pub fn take_finished(&mut self) -> Vec<Exchange> {
        self.workers
            .iter_mut()
            .flat_map(|w| std::mem::take(&mut w.finished))
            .collect()
    }

    /// Every trap so far, in order per worker.
    pub fn traps(&self) -> Vec<Trap> {
        self.workers.iter().flat_map(|w| w.traps.clone()).collect()
    }

    /// How many VMs worker `i` has started (1 until a reload).
    pub fn generation(&self, i: usize) -> u32 {
        self.workers.get(i).map_or(0, |w| w.generation)
    }

    /// Whether worker `i`'s VM has failed and not been replaced.
    pub fn failed(&self, i: usize) -> bool {
        self.workers.get(i).is_some_and(|w| w.failed)
    }

    /// HTTP callouts waiting for an answer: `(worker, call)`.
    pub fn http_calls(&self) -> Vec<(usize, HttpCall)> {
        self.workers
            .iter()
            .flat_map(|w| w.http_calls().into_iter().map(move |c| (w.index, c)))
            .collect()
    }

    /// gRPC calls and streams that are open: `(worker, call)`.
    pub fn grpc_calls(&self) -> Vec<(usize, GrpcCall)> {
        self.workers
            .iter()
            .flat_map(|w| {
                w.vm.as_ref()
                    .map(|vm| vm.store.data().grpc_calls.values().cloned().collect())
                    .unwrap_or_else(Vec::new)
                    .into_iter()
                    .map(move |c| (w.index, c))
            })
            .collect()
    }

    /// Answers an HTTP callout. Returns false if there is no such call.
    pub fn answer_http_call(&mut self, worker: usize, token: u32, response: Response) -> bool {
        self.workers
            .get_mut(worker)
            .is_some_and(|w| w.answer_http_call(token, Some(response)))
    }

    /// Fails an HTTP callout as a reset connection does: the callback gets no headers, no
    /// body, and `proxy_get_status` says 11 (BrokenConnection) "reset".
    pub fn fail_http_call(&mut self, worker: usize, token: u32) -> bool {
        self.workers
            .get_mut(worker)
            .is_some_and(|w| w.answer_http_call(token, None))
    }

    /// Delivers a gRPC event. Returns false if there is no such call.
    pub fn deliver_grpc(&mut self, worker: usize, token: u32, event: GrpcEvent) -> bool {
        self.workers
            .get_mut(worker)
            .is_some_and(|w| w.deliver_grpc(token, event))
    }

    /// The virtual clock, nanoseconds since the epoch.
    pub fn now(&self) -> u64 {
        self.process.now()
    }

    /// Moves the virtual clock forward, firing each tick and callout timeout in order at its
    /// own time.
    pub fn advance(&mut self, by: Duration) {
        let target = self.process.now().saturating_add(by.as_nanos() as u64);
        loop {
            let next = self
                .workers
                .iter()
                .filter_map(|w| w.next_event())
                .filter(|t| *t <= target)
                .min();
            let Some(t) = next else { break };
            self.process.set_now(t);
            for w in &mut self.workers {
                w.fire_due(t);
            }
            // What a tick set in motion happens at the tick's time.
            self.pump();
        }
        self.process.set_now(target);
        self.pump();
    }

    /// Delivers pending queue notifications and resumes streams that were continued, until
    /// nothing more happens (a notification from one worker to another included).
    pub fn pump(&mut self) {
        for _ in 0..100 {
            let before: usize = self.workers.iter().map(Worker::activity).sum();
            for w in &mut self.workers {
                w.pump();
            }
            let pending = self
                .workers
                .iter()
                .any(|w| !self.process.ready_for(w.index).is_empty());
            if !pending && self.workers.iter().map(Worker::activity).sum::<usize>() == before {
                return;
            }
        }
    }

    /// Shuts the plugin down as Envoy does when a configuration goes away: `proxy_on_done` on
    /// each root context, then `proxy_on_delete` at once or after the plugin calls
    /// `proxy_done`. Returns whether every root context was deleted.
    pub fn shutdown(&mut self) -> bool {
        self.workers
            .iter_mut()
            .map(Worker::shutdown)
            .collect::<Vec<_>>()
            .into_iter()
            .all(|done| done)
    }

    /// After [`Plugin::shutdown`] returned false: deletes the root contexts that have called
    /// `proxy_done` since. Returns whether all are deleted.
    pub fn finish_shutdown(&mut self) -> bool {
        self.workers
            .iter_mut()
            .map(Worker::finish_shutdown)
            .collect::<Vec<_>>()
            .into_iter()
            .all(|done| done)
    }
}

fn start_vm(deploy: &Deploy, index: usize) -> (Result<Vm, StartError>, Vec<LogLine>) {
    Vm::start(
        &deploy.host,
        deploy.process.clone(),
        deploy.spec.clone(),
        index,
        deploy.clusters.clone(),
    )
}

impl Worker {
    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A measure of progress: streams finished plus streams still open.
    fn activity(&self) -> usize {
        self.finished.len() * 1_000_003 + self.flows.len()
    }

    /// Sends a request on this worker.
    pub fn send(&mut self, req: Request) -> Exchange {
        self.pump();
        let id = self.next_context;
        self.next_context += 1;
        self.request_seq += 1;
        let mut flow = Flow {
            request: req,
            stage: Stage::ReqHeaders,
            held: false,
            bypass: false,
            failed: false,
            req_headers: Vec::new(),
            req_buffer: Vec::new(),
            req_out: Vec::new(),
            req_trailers: None,
            response: Response::default(),
            resp_headers: Vec::new(),
            resp_buffer: Vec::new(),
            resp_out: Vec::new(),
            resp_trailers: None,
            req_chunks: Vec::new(),
            resp_chunks: Vec::new(),
            head: false,
            replied: false,
            headers_stopped: false,
            ex: Exchange {
                worker: self.index,
                context: id,
                ..Exchange::default()
            },
        };
        if self.deploy.replace_request_id {
            flow.request
                .headers
                .retain(|(k, _)| k.as_slice() != b"x-request-id");
        }
        if (self.deploy.generate_request_id || self.deploy.replace_request_id)
            && !flow
                .request
                .headers
                .iter()
                .any(|(k, _)| k.as_slice() == b"x-request-id")
        {
            let rid = format!(
                "{:08x}-0000-4000-8000-{:012x}",
                self.index, self.request_seq
            );
            flow.request
                .headers
                .push((b"x-request-id".to_vec(), rid.into_bytes()));
        }
        flow.head = flow.request.method.eq_ignore_ascii_case("HEAD");
        flow.req_chunks = self.deliveries(&flow.request.body, flow.request.trailers.is_some());
        self.prepare_vm(&mut flow);
        let source = flow.request.source;
        let peer_identity = flow.request.peer_identity.clone();
        let start = self.deploy.process.now();
        if let Some(vm) = self.vm.as_mut() {
            if !flow.bypass && !flow.failed {
                vm.store.data_mut().streams.insert(
                    id,
                    StreamData {
                        source: Some(source),
                        destination: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 10000))),
                        start_nanos: start,
                        connection_id: id,
                        peer_identity,
                        ..StreamData::default()
                    },
                );
            }
        }
        self.flows.insert(id, flow);
        let root = self.root_id();
        if let Called::Trapped(t) = self
            .call_stream::<(i32, i32), ()>(id, "proxy_on_context_create", (id as i32, root as i32))
            .map_unit()
        {
            self.trap_stream(id, t);
        }
        self.run(id);
        self.pump();
        match self.flows.get(&id) {
            Some(f) => f.ex.clone(),
            None => self
                .finished
                .iter()
                .rposition(|e| e.context == id)
                .map(|i| self.finished.remove(i))
                .unwrap_or_default(),
        }
    }

    /// Decides, before a new stream, whether the VM serves it: a failed VM is replaced (reload,
    /// after the backoff) or the stream bypasses the filter (fail-open) or is failed (closed).
    fn prepare_vm(&mut self, flow: &mut Flow) {
        if !self.failed {
            return;
        }
        match self.deploy.failure {
            FailurePolicy::FailOpen => flow.bypass = true,
            FailurePolicy::FailClosed => flow.failed = true,
            FailurePolicy::FailReload { backoff } => {
                let now = self.deploy.process.now();
                if now.saturating_sub(self.last_load) < backoff.as_nanos() as u64 {
                    flow.failed = true;
                    return;
                }
                self.last_load = now;
                let (vm, logs) = start_vm(&self.deploy, self.index);
                self.logs.extend(logs);
                match vm {
                    Ok(vm) => {
                        self.vm = Some(vm);
                        self.failed = false;
                        self.generation += 1;
                        self.tick_period = 0;
                        self.next_tick = None;
                        self.after_call(None);
                    }
                    Err(e) => {
                        self.logs.push(LogLine {
                            worker: self.index,
                            level: level::ERROR,
                            message: format!("VM reload failed: {e}"),
                        });
                        flow.failed = true;
                    }
                }
            }
        }
    }

    /// A body as the filter gets it, one entry per body call: pieces of at most the buffer
    /// limit and, with HTTP/1.1 framing, the end in a call of its own (unless trailers end the
    /// stream).
    fn deliveries(&self, chunks: &[Vec<u8>], trailers: bool) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(chunks.len() + 1);
        for c in chunks {
            match self.deploy.buffer_limit {
                Some(limit) if limit > 0 && c.len() > limit => {
                    out.extend(c.chunks(limit).map(<[u8]>::to_vec));
                }
                _ => out.push(c.clone()),
            }
        }
        if self.deploy.http1_body_calls && !trailers && !out.is_empty() {
            out.push(Vec::new());
        }
        out
    }

    fn root_id(&self) -> u32 {
        self.vm.as_ref().map_or(1, |vm| vm.store.data().root_id)
    }

    fn stream_data(&mut self, id: u32) -> Option<&mut StreamData> {
        self.vm.as_mut()?.store.data_mut().streams.get_mut(&id)
    }

    /// Calls an export for stream `id`, unless the filter is out of the stream.
    fn call_stream<P: WasmParams, R: WasmResults + Default + Into<CallValue>>(
        &mut self,
        id: u32,
        name: &str,
        params: P,
    ) -> Called {
        let skip = self.flows.get(&id).is_none_or(|f| f.bypass || f.failed);
        if skip || self.failed {
            return Called::Skipped;
        }
        let Some(vm) = self.vm.as_mut() else {
            return Called::Skipped;
        };
        let r = vm.call::<P, R>(name, id, params);
        self.after_call(Some(id));
        match r {
            Ok(v) => Called::Ran(v.into().0),
            Err(t) => Called::Trapped(t),
        }
    }

    /// Calls an export for the root context. A trap fails the VM.
    fn call_root<P: WasmParams, R: WasmResults + Default>(
        &mut self,
        name: &str,
        params: P,
    ) -> Option<R> {
        if self.failed {
            return None;
        }
        let root = self.root_id();
        let vm = self.vm.as_mut()?;
        let r = vm.call::<P, R>(name, root, params);
        self.after_call(None);
        match r {
            Ok(v) => Some(v),
            Err(t) => {
                self.fail_vm(t);
                None
            }
        }
    }

    /// Collects logs and notices a new tick period after any VM call.
    fn after_call(&mut self, stream: Option<u32>) {
        let Some(vm) = self.vm.as_mut() else { return };
        let data = vm.store.data_mut();
        let logs = std::mem::take(&mut data.logs);
        let period = data.tick_ms;
        if let Some(f) = stream.and_then(|id| self.flows.get_mut(&id)) {
            f.ex.logs.extend(logs.iter().cloned());
        }
        self.logs.extend(logs);
        if period != self.tick_period {
            self.tick_period = period;
            self.next_tick =
                (period > 0).then(|| self.deploy.process.now() + u64::from(period) * 1_000_000);
        }
    }

    /// Marks the VM failed after a trap, as Envoy does, and logs it as Envoy logs it.
    fn fail_vm(&mut self, t: Trap) {
        self.failed = true;
        let line = LogLine {
            worker: self.index,
            level: level::ERROR,
            message: format!("Function: {} failed: {}", t.callback, t.message),
        };
        self.logs.push(line.clone());
        self.traps.push(t);
        for f in self.flows.values_mut() {
            f.ex.logs.push(line.clone());
        }
    }

    /// A trap in stream `id`'s callback: fail the VM, then fail the stream (503) or let it go
    /// on without the filter (fail-open).
    fn trap_stream(&mut self, id: u32, t: Trap) {
        if let Some(f) = self.flows.get_mut(&id) {
            f.ex.trap = Some(t.clone());
        }
        self.fail_vm(t);
        self.fail_stream(id);
    }

    fn fail_stream(&mut self, id: u32) {
        let open = self.deploy.failure == FailurePolicy::FailOpen;
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if open {
            f.bypass = true;
            return;
        }
        if f.failed {
            return;
        }
        f.failed = true;
        f.held = false;
        f.replied = true;
        f.response = Response::new(503, Vec::new());
        f.resp_chunks = Vec::new();
        f.resp_headers = f.response.header_map();
        f.resp_out = Vec::new();
        f.ex.details = "wasm_fail_stream".into();
        f.stage = Stage::Log;
    }

    /// Runs a stream's stages until it finishes or waits.
    fn run(&mut self, id: u32) {
        loop {
            let Some(f) = self.flows.get(&id) else { return };
            if f.held {
                return;
            }
            // A stream arriving at a failed VM (not bypassed) fails at its first callback.
            if f.failed && !f.replied {
                self.fail_stream_forced(id);
                continue;
            }
            let step = match f.stage {
                Stage::ReqHeaders => self.headers_stage(id, true),
                Stage::ReqBody(i) => self.body_stage(id, true, i),
                Stage::ReqTrailers => self.trailers_stage(id, true),
                Stage::Upstream => {
                    self.upstream(id);
                    continue;
                }
                Stage::RespHeaders => self.headers_stage(id, false),
                Stage::RespBody(i) => self.body_stage(id, false, i),
                Stage::RespTrailers => self.trailers_stage(id, false),
                Stage::Log => {
                    self.finish(id);
                    return;
                }
            };
            match step {
                Step::Next => self.complete(id),
                Step::Hold => {
                    if let Some(f) = self.flows.get_mut(&id) {
                        f.held = true;
                    }
                    return;
                }
                Step::Redirected => {}
            }
        }
    }

    /// Fails a stream whose VM is already failed (no trap of its own).
    fn fail_stream_forced(&mut self, id: u32) {
        if let Some(f) = self.flows.get_mut(&id) {
            f.failed = false;
        }
        if self.deploy.failure == FailurePolicy::FailOpen {
            if let Some(f) = self.flows.get_mut(&id) {
                f.bypass = true;
            }
            return;
        }
        self.fail_stream(id);
    }

    fn headers_stage(&mut self, id: u32, request: bool) -> Step {
        let Some(f) = self.flows.get_mut(&id) else {
            return Step::Redirected;
        };
        let (map, eos) = if request {
            (
                f.request.header_map(),
                f.req_chunks.is_empty() && f.request.trailers.is_none(),
            )
        } else {
            (
                f.response.header_map(),
                f.resp_chunks.is_empty() && f.response.trailers.is_none(),
            )
        };
        let n = map.len() as i32;
        if request {
            f.req_headers = map.clone();
        } else {
            f.resp_headers = map.clone();
        }
        let code = self.flows.get(&id).map_or(0, |f| f.response.status);
        if let Some(st) = self.stream_data(id) {
            if request {
                st.request.headers = Some(map);
            } else {
                st.response.headers = Some(map);
                st.response_code = Some(code);
            }
        }
        let name = if request {
            "proxy_on_request_headers"
        } else {
            "proxy_on_response_headers"
        };
        let r = self.call_stream::<(i32, i32, i32), i32>(id, name, (id as i32, n, i32::from(eos)));
        // Envoy maps a headers callback's result: 2 (ContinueAndEndStream) is Continue; 1 is
        // StopIteration only with allow_on_headers_stop_iteration (else StopAll), 3 and 4 are
        // always StopAll.
        let action = match &r {
            Called::Ran(a) => Some(*a),
            _ => None,
        };
        let r = match r {
            Called::Ran(2) => Called::Ran(0),
            other => other,
        };
        let step = self.settle(id, r, request);
        // With allow_on_headers_stop_iteration, Pause on request headers is StopIteration: the
        // body still comes to the filter, the headers wait (and stay readable).
        let stop_only_headers = request
            && !eos
            && action == Some(1)
            && self.deploy.spec.allow_on_headers_stop_iteration;
        match step {
            Step::Hold if stop_only_headers => {
                if let Some(f) = self.flows.get_mut(&id) {
                    f.headers_stopped = true;
                    f.stage = next_stage(f, f.stage);
                }
                Step::Redirected
            }
            s => s,
        }
    }

    fn body_stage(&mut self, id: u32, request: bool, i: usize) -> Step {
        let Some(f) = self.flows.get_mut(&id) else {
            return Step::Redirected;
        };
        let (chunks, has_trailers) = if request {
            (&f.req_chunks, f.request.trailers.is_some())
        } else {
            (&f.resp_chunks, f.response.trailers.is_some())
        };
        let chunk = chunks.get(i).cloned().unwrap_or_default();
        let last = i + 1 >= chunks.len();
        let eos = last && !has_trailers;
        let buffer = if request {
            &mut f.req_buffer
        } else {
            &mut f.resp_buffer
        };
        let buffering = !buffer.is_empty();
        buffer.extend_from_slice(&chunk);
        // Data added to a body the plugin buffers counts against the limit before the plugin
        // sees it.
        if buffering && self.over_limit(id, request) {
            return Step::Redirected;
        }
        let Some(f) = self.flows.get_mut(&id) else {
            return Step::Redirected;
        };
        let visible = if request {
            f.req_buffer.clone()
        } else {
            f.resp_buffer.clone()
        };
        let len = visible.len() as i32;
        if let Some(st) = self.stream_data(id) {
            if request {
                st.request.body = Some(visible);
            } else {
                st.response.body = Some(visible);
            }
        }
        let name = if request {
            "proxy_on_request_body"
        } else {
            "proxy_on_response_body"
        };
        let r =
            self.call_stream::<(i32, i32, i32), i32>(id, name, (id as i32, len, i32::from(eos)));
        // The body as the plugin left it.
        let after = self.stream_data(id).and_then(|st| {
            if request {
                st.request.body.take()
            } else {
                st.response.body.take()
            }
        });
        if let (Some(after), Some(f)) = (after, self.flows.get_mut(&id)) {
            if request {
                f.req_buffer = after;
            } else {
                f.resp_buffer = after;
            }
        }
        let step = self.settle(id, r, request);
        if matches!(step, Step::Hold) && self.over_limit(id, request) {
            return Step::Redirected;
        }
        match step {
            // Paused on a chunk that is not the last: keep buffering, deliver the next one.
            Step::Hold if !eos => {
                if let Some(f) = self.flows.get_mut(&id) {
                    f.stage = next_stage(f, f.stage);
                }
                Step::Redirected
            }
            s => s,
        }
    }

    /// Whether the body buffered for the plugin is past the buffer limit; if so the stream ends
    /// as Envoy ends it: a 413 on the request side (through the response callbacks, as any
    /// local reply), a reset on the response side (its headers have gone to the client).
    fn over_limit(&mut self, id: u32, request: bool) -> bool {
        let Some(limit) = self.deploy.buffer_limit else {
            return false;
        };
        let Some(f) = self.flows.get_mut(&id) else {
            return false;
        };
        let buffered = if request {
            f.req_buffer.len()
        } else {
            f.resp_buffer.len()
        };
        if buffered <= limit {
            return false;
        }
        f.held = false;
        if request {
            f.req_buffer.clear();
            f.replied = true;
            let resp = envoy_reply(413, b"Payload Too Large", &[]);
            f.resp_chunks = reply_chunks(f.head, &resp);
            f.response = resp;
            f.ex.details = "request_payload_too_large".into();
            f.stage = Stage::RespHeaders;
        } else {
            f.resp_buffer.clear();
            f.ex.response = Some(Response::from_map(
                f.resp_headers.clone(),
                std::mem::take(&mut f.resp_out),
                None,
            ));
            f.ex.reset = true;
            f.ex.details = "response_payload_too_large".into();
            f.stage = Stage::Log;
        }
        true
    }

    fn trailers_stage(&mut self, id: u32, request: bool) -> Step {
        let Some(f) = self.flows.get_mut(&id) else {
            return Step::Redirected;
        };
        let trailers = if request {
            f.request.trailers.clone()
        } else {
            f.response.trailers.clone()
        }
        .unwrap_or_default();
        let n = trailers.len() as i32;
        if let Some(st) = self.stream_data(id) {
            if request {
                st.request.trailers = Some(trailers);
            } else {
                st.response.trailers = Some(trailers);
            }
        }
        let name = if request {
            "proxy_on_request_trailers"
        } else {
            "proxy_on_response_trailers"
        };
        let r = self.call_stream::<(i32, i32), i32>(id, name, (id as i32, n));
        self.settle(id, r, request)
    }

    /// What a callback's result means for the stream.
    fn settle(&mut self, id: u32, r: Called, request: bool) -> Step {
        let action = match r {
            Called::Ran(a) => a,
            Called::Skipped => 0,
            Called::Trapped(t) => {
                self.trap_stream(id, t);
                return Step::Redirected;
            }
        };
        if self.take_local_or_close(id) {
            return Step::Redirected;
        }
        let resumed = self.stream_data(id).is_some_and(|st| {
            if request {
                std::mem::take(&mut st.resume_request)
            } else {
                std::mem::take(&mut st.resume_response)
            }
        });
        if action == 0 || resumed {
            Step::Next
        } else {
            Step::Hold
        }
    }

    /// Acts on a local reply or a close the plugin asked for (in this stream's callback or, via
    /// `proxy_set_effective_context`, in another). Returns whether the flow was redirected.
    fn take_local_or_close(&mut self, id: u32) -> bool {
        let Some(st) = self.stream_data(id) else {
            return false;
        };
        let local = st.local.take();
        let close = std::mem::take(&mut st.close);
        let Some(f) = self.flows.get_mut(&id) else {
            return false;
        };
        if close {
            f.ex.reset = true;
            if f.ex.details.is_empty() {
                f.ex.details = "wasm_close_stream".into();
            }
            f.held = false;
            f.stage = Stage::Log;
            return true;
        }
        let Some(local) = local else { return false };
        if f.replied {
            return false;
        }
        f.replied = true;
        f.held = false;
        let resp = envoy_reply(local.status, &local.body, &local.headers);
        f.ex.details = local.details.clone();
        f.ex.local = Some(local);
        let responding = matches!(
            f.stage,
            Stage::RespHeaders | Stage::RespBody(_) | Stage::RespTrailers | Stage::Log
        );
        f.resp_buffer.clear();
        f.resp_out.clear();
        f.resp_chunks = reply_chunks(f.head, &resp);
        if responding {
            // A reply asked for while the response passes through the filter goes straight to
            // the client, without entering the filter again.
            f.resp_headers = resp.header_map();
            f.resp_out = if f.head {
                Vec::new()
            } else {
                resp.body.clone()
            };
            f.resp_trailers = None;
            f.response = resp;
            f.stage = Stage::Log;
        } else {
            f.response = resp;
            f.stage = Stage::RespHeaders;
        }
        true
    }

    /// The current stage is done: flush what it released and move on.
    fn complete(&mut self, id: u32) {
        let req_headers = self
            .stream_data(id)
            .and_then(|st| st.request.headers.take());
        let resp_headers = self
            .stream_data(id)
            .and_then(|st| st.response.headers.take());
        let req_trailers = self
            .stream_data(id)
            .and_then(|st| st.request.trailers.take());
        let resp_trailers = self
            .stream_data(id)
            .and_then(|st| st.response.trailers.take());
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if f.headers_stopped && matches!(f.stage, Stage::ReqBody(_) | Stage::ReqTrailers) {
            // The stopped headers go on with this stage, as the plugin left them.
            if let Some(h) = &req_headers {
                f.req_headers = h.clone();
            }
            f.headers_stopped = false;
        }
        match f.stage {
            Stage::ReqHeaders => {
                if let Some(h) = req_headers {
                    f.req_headers = h;
                }
            }
            Stage::ReqBody(_) => {
                let b = std::mem::take(&mut f.req_buffer);
                f.req_out.extend_from_slice(&b);
            }
            Stage::ReqTrailers => {
                let b = std::mem::take(&mut f.req_buffer);
                f.req_out.extend_from_slice(&b);
                f.req_trailers = req_trailers.or_else(|| f.request.trailers.clone());
            }
            Stage::RespHeaders => {
                if let Some(h) = resp_headers {
                    f.resp_headers = h;
                }
            }
            Stage::RespBody(_) => {
                let b = std::mem::take(&mut f.resp_buffer);
                f.resp_out.extend_from_slice(&b);
            }
            Stage::RespTrailers => {
                let b = std::mem::take(&mut f.resp_buffer);
                f.resp_out.extend_from_slice(&b);
                f.resp_trailers = resp_trailers.or_else(|| f.response.trailers.clone());
            }
            Stage::Upstream | Stage::Log => {}
        }
        f.stage = next_stage(f, f.stage);
    }

    fn upstream(&mut self, id: u32) {
        let upstream = self.deploy.upstream.clone();
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let mut body = std::mem::take(&mut f.req_out);
        body.extend_from_slice(&std::mem::take(&mut f.req_buffer));
        let fwd = Forwarded {
            headers: f.req_headers.clone(),
            body,
            trailers: f.req_trailers.clone(),
        };
        let resp = upstream(&fwd);
        f.ex.forwarded = Some(fwd);
        f.ex.details = "via_upstream".into();
        let head = f.head;
        let trailers = resp.trailers.is_some();
        let chunks = if head || resp.body.is_empty() {
            Vec::new()
        } else {
            self.deliveries(std::slice::from_ref(&resp.body), trailers)
        };
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        f.resp_chunks = chunks;
        f.response = resp;
        f.stage = Stage::RespHeaders;
    }

    /// Ends a stream: `proxy_on_log` (with read-only copies of the final headers),
    /// `proxy_on_done`, `proxy_on_delete`; then the client has its answer.
    fn finish(&mut self, id: u32) {
        let Some(f) = self.flows.get(&id) else { return };
        let (req_headers, resp_headers) = (f.req_headers.clone(), f.resp_headers.clone());
        if let Some(st) = self.stream_data(id) {
            st.logging = true;
            st.request.headers = Some(req_headers);
            st.response.headers = Some(resp_headers);
            st.request.body = None;
            st.response.body = None;
        }
        // A trap here fails the VM like any other (the answer has gone already); the calls after
        // it are skipped.
        for name in ["proxy_on_log", "proxy_on_done", "proxy_on_delete"] {
            let r = if name == "proxy_on_done" {
                self.call_stream::<i32, i32>(id, name, id as i32)
            } else {
                self.call_stream::<i32, ()>(id, name, id as i32)
            };
            if let Called::Trapped(t) = r {
                if let Some(f) = self.flows.get_mut(&id) {
                    f.ex.trap = Some(t.clone());
                    f.failed = true;
                }
                self.fail_vm(t);
            }
        }
        if let Some(vm) = self.vm.as_mut() {
            vm.store.data_mut().streams.remove(&id);
        }
        let Some(mut f) = self.flows.remove(&id) else {
            return;
        };
        if !f.ex.reset {
            let mut body = std::mem::take(&mut f.resp_out);
            body.extend_from_slice(&f.resp_buffer);
            let mut resp =
                Response::from_map(f.resp_headers.clone(), body, f.resp_trailers.clone());
            client_view(&mut resp, f.head);
            match on_the_wire(&mut resp) {
                Ok(()) => f.ex.response = Some(resp),
                Err(e) => f.ex.client_error = Some(e),
            }
        }
        self.finished.push(f.ex);
    }

    fn http_calls(&self) -> Vec<HttpCall> {
        self.vm
            .as_ref()
            .map(|vm| vm.store.data().http_calls.values().cloned().collect())
            .unwrap_or_default()
    }

    fn answer_http_call(&mut self, token: u32, response: Option<Response>) -> bool {
        let Some(vm) = self.vm.as_mut() else {
            return false;
        };
        let data = vm.store.data_mut();
        if data.http_calls.remove(&token).is_none() {
            return false;
        }
        let (n, len, nt) = match &response {
            Some(r) => {
                let map = r.header_map();
                let n = map.len();
                data.callout.headers = Some(map);
                data.callout.body = Some(r.body.clone());
                let nt = r.trailers.as_ref().map_or(0, Vec::len);
                data.callout.trailers = Some(r.trailers.clone().unwrap_or_default());
                (n, r.body.len(), nt)
            }
            None => {
                data.status = (11, b"reset".to_vec());
                (0, 0, 0)
            }
        };
        let root = data.root_id;
        self.call_root::<(i32, i32, i32, i32, i32), ()>(
            "proxy_on_http_call_response",
            (root as i32, token as i32, n as i32, len as i32, nt as i32),
        );
        if let Some(vm) = self.vm.as_mut() {
            let data = vm.store.data_mut();
            data.callout = Default::default();
            data.status.1.clear();
        }
        self.pump();
        true
    }

    fn deliver_grpc(&mut self, token: u32, event: GrpcEvent) -> bool {
        let Some(vm) = self.vm.as_mut() else {
            return false;
        };
        let data = vm.store.data_mut();
        let Some(call) = data.grpc_calls.get(&token) else {
            return false;
        };
        let unary = !call.streaming;
        let root = data.root_id as i32;
        let t = token as i32;
        match event {
            GrpcEvent::InitialMetadata(h) => {
                let n = h.len() as i32;
                data.callout.grpc_initial = Some(h);
                self.call_root::<(i32, i32, i32), ()>(
                    "proxy_on_grpc_receive_initial_metadata",
                    (root, t, n),
                );
            }
            GrpcEvent::Message(m) => {
                let n = m.len() as i32;
                data.callout.grpc_message = Some(m);
                if unary {
                    // A unary call ends with its answer; no close callback follows.
                    data.grpc_calls.remove(&token);
                }
                self.call_root::<(i32, i32, i32), ()>("proxy_on_grpc_receive", (root, t, n));
            }
            GrpcEvent::TrailingMetadata(h) => {
                let n = h.len() as i32;
                data.callout.grpc_trailing = Some(h);
                self.call_root::<(i32, i32, i32), ()>(
                    "proxy_on_grpc_receive_trailing_metadata",
                    (root, t, n),
                );
            }
            GrpcEvent::Close { status, message } => {
                data.grpc_calls.remove(&token);
                data.status = (status, message.into_bytes());
                self.call_root::<(i32, i32, i32), ()>(
                    "proxy_on_grpc_close",
                    (root, t, status as i32),
                );
            }
        }
        if let Some(vm) = self.vm.as_mut() {
            let data = vm.store.data_mut();
            data.callout = Default::default();
            data.status.1.clear();
        }
        self.pump();
        true
    }

    /// The earliest tick or callout deadline.
    fn next_event(&self) -> Option<u64> {
        let vm = self.vm.as_ref()?;
        let data = vm.store.data();
        let http = data.http_calls.values().map(|c| c.deadline);
        let grpc = data.grpc_calls.values().filter_map(|c| c.deadline);
        self.next_tick.into_iter().chain(http).chain(grpc).min()
    }

    fn fire_due(&mut self, now: u64) {
        if self.next_tick.is_some_and(|t| t <= now) {
            self.next_tick = None;
            let root = self.root_id() as i32;
            self.call_root::<i32, ()>("proxy_on_tick", root);
            // Re-armed for the same period from now, unless the tick changed it.
            if self.tick_period > 0 && self.next_tick.is_none() {
                self.next_tick = Some(now + u64::from(self.tick_period) * 1_000_000);
            }
        }
        let due: Vec<u32> = self
            .http_calls()
            .into_iter()
            .filter(|c| c.deadline <= now)
            .map(|c| c.token)
            .collect();
        for token in due {
            // Envoy's async client answers a timed-out call itself.
            let body = "upstream request timeout";
            let resp = Response::new(504, body)
                .with_header("content-length", &body.len().to_string())
                .with_header("content-type", "text/plain");
            self.answer_http_call(token, Some(resp));
        }
        let due: Vec<u32> = self
            .vm
            .as_ref()
            .map(|vm| {
                vm.store
                    .data()
                    .grpc_calls
                    .values()
                    .filter(|c| c.deadline.is_some_and(|d| d <= now))
                    .map(|c| c.token)
                    .collect()
            })
            .unwrap_or_default();
        for token in due {
            self.deliver_grpc(
                token,
                GrpcEvent::Close {
                    status: 4,
                    message: "Request timeout".into(),
                },
            );
        }
    }

    /// Delivers queue notifications, and moves streams the plugin resumed, answered or closed
    /// from another context.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut progressed = false;
            let ready = self.deploy.process.take_ready(self.index);
            for (ctx, queue) in ready {
                progressed = true;
                self.call_root::<(i32, i32), ()>(
                    "proxy_on_queue_ready",
                    (ctx as i32, queue as i32),
                );
            }
            let held: Vec<u32> = self
                .flows
                .iter()
                .filter(|(_, f)| f.held)
                .map(|(id, _)| *id)
                .collect();
            for id in held {
                if self.take_local_or_close(id) {
                    progressed = true;
                    self.run(id);
                    continue;
                }
                let request = self.flows.get(&id).is_some_and(|f| {
                    matches!(
                        f.stage,
                        Stage::ReqHeaders | Stage::ReqBody(_) | Stage::ReqTrailers
                    )
                });
                let resumed = self.stream_data(id).is_some_and(|st| {
                    if request {
                        std::mem::take(&mut st.resume_request)
                    } else {
                        std::mem::take(&mut st.resume_response)
                    }
                });
                let failed = self.failed && self.flows.get(&id).is_some_and(|f| !f.bypass);
                if resumed || failed {
                    progressed = true;
                    if let Some(f) = self.flows.get_mut(&id) {
                        f.held = false;
                    }
                    if failed {
                        self.fail_stream_forced(id);
                    } else {
                        self.complete(id);
                    }
                    self.run(id);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn shutdown(&mut self) -> bool {
        let root = self.root_id() as i32;
        match self.call_root::<i32, i32>("proxy_on_done", root) {
            Some(0) => {
                if let Some(vm) = self.vm.as_mut() {
                    vm.store.data_mut().root_pending_done = true;
                }
                false
            }
            Some(_) => {
                self.call_root::<i32, ()>("proxy_on_delete", root);
                if let Some(vm) = self.vm.as_mut() {
                    vm.store.data_mut().root_deleted = true;
                }
                true
            }
            None => self.vm.is_none() || self.failed,
        }
    }

    /// After a root context said it is done later: if it called `proxy_done`, delete it.
    pub fn finish_shutdown(&mut self) -> bool {
        let Some(vm) = self.vm.as_mut() else {
            return true;
        };
        let data = vm.store.data_mut();
        if data.root_deleted {
            return true;
        }
        if !std::mem::take(&mut data.root_done) {
            return false;
        }
        data.root_deleted = true;
        let root = self.root_id() as i32;
        self.call_root::<i32, ()>("proxy_on_delete", root);
        true
    }
}

fn next_stage(f: &Flow, s: Stage) -> Stage {
    let req_body = f.req_chunks.len();
    let req_trailers = f.request.trailers.is_some();
    let resp_body = f.resp_chunks.len();
    let resp_trailers = f.response.trailers.is_some();
    match s {
        Stage::ReqHeaders if req_body > 0 => Stage::ReqBody(0),
        Stage::ReqHeaders | Stage::ReqBody(_)
            if req_trailers && !matches!(s, Stage::ReqBody(i) if i + 1 < req_body) =>
        {
            Stage::ReqTrailers
        }
        Stage::ReqBody(i) if i + 1 < req_body => Stage::ReqBody(i + 1),
        Stage::ReqHeaders | Stage::ReqBody(_) | Stage::ReqTrailers => {
            if f.replied {
                Stage::RespHeaders
            } else {
                Stage::Upstream
            }
        }
        Stage::Upstream => Stage::RespHeaders,
        Stage::RespHeaders if resp_body > 0 => Stage::RespBody(0),
        Stage::RespBody(i) if i + 1 < resp_body => Stage::RespBody(i + 1),
        Stage::RespHeaders | Stage::RespBody(_) if resp_trailers => Stage::RespTrailers,
        Stage::RespHeaders | Stage::RespBody(_) | Stage::RespTrailers | Stage::Log => Stage::Log,
    }
}

/// A local reply as Envoy builds it (the plugin's, or Envoy's own): the given headers in their
/// order (a content-length among them dropped), then, with a body, Envoy's content-length and,
/// unless one was given, content-type `text/plain`.
fn envoy_reply(status: u32, body: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> Response {
    let mut resp = Response::new(status, body.to_vec());
    resp.headers.extend(
        headers
            .iter()
            .filter(|(k, _)| k.as_slice() != b"content-length")
            .cloned(),
    );
    if !body.is_empty() {
        resp.headers.push((
            b"content-length".to_vec(),
            body.len().to_string().into_bytes(),
        ));
        if !resp
            .headers
            .iter()
            .any(|(k, _)| k.as_slice() == b"content-type")
        {
            resp.headers
                .push((b"content-type".to_vec(), b"text/plain".to_vec()));
        }
    }
    resp
}

/// A local reply's body comes in one call, with end of stream; none for HEAD.
fn reply_chunks(head: bool, resp: &Response) -> Vec<Vec<u8>> {
    if head || resp.body.is_empty() {
        Vec::new()
    } else {
        vec![resp.body.clone()]
    }
}

/// What Envoy's HTTP/1 codec adds on the way out to a response without framing (not for 1xx,
/// 204 or 304): `content-length: 0` when it ends with its headers, and `transfer-encoding:
/// chunked` when a body follows or the request was HEAD.
fn client_view(resp: &mut Response, head: bool) {
    let framed = resp
        .headers
        .iter()
        .any(|(k, _)| k.as_slice() == b"content-length" || k.as_slice() == b"transfer-encoding");
    if framed || matches!(resp.status, 100..=199 | 204 | 304) {
        return;
    }
    if head || !resp.body.is_empty() || resp.trailers.is_some() {
        resp.headers
            .push((b"transfer-encoding".to_vec(), b"chunked".to_vec()));
    } else {
        resp.headers
            .push((b"content-length".to_vec(), b"0".to_vec()));
    }
}

/// Envoy writes header values as the plugin left them, a bare CR, LF or NUL included. A response
/// with such a byte in a header is written out and parsed as a client would: the client gets an
/// error, or (after a CRLF) other headers than the plugin set.
fn on_the_wire(resp: &mut Response) -> Result<(), String> {
    let bad = |b: &[u8]| b.iter().any(|c| matches!(c, b'\r' | b'\n' | 0));
    if !resp.headers.iter().any(|(k, v)| bad(k) || bad(v)) {
        return Ok(());
    }
    let mut wire = format!("HTTP/1.1 {} -\r\n", resp.status).into_bytes();
    for (k, v) in &resp.headers {
        wire.extend_from_slice(k);
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(v);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    let mut hs = vec![httparse::EMPTY_HEADER; resp.headers.len() * 2 + 4];
    let mut parsed = httparse::Response::new(&mut hs);
    match parsed.parse(&wire) {
        Ok(httparse::Status::Complete(_)) => {
            resp.headers = parsed
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase().into_bytes(), h.value.to_vec()))
                .collect();
            Ok(())
        }
        Ok(httparse::Status::Partial) => Err("the response's headers end early on the wire".into()),
        Err(e) => Err(format!("the client cannot parse the response: {e}")),
    }
}

/// A callback's return value as the driver reads it.
struct CallValue(i32);

impl From<i32> for CallValue {
    fn from(v: i32) -> Self {
        CallValue(v)
    }
}

impl From<()> for CallValue {
    fn from((): ()) -> Self {
        CallValue(0)
    }
}

impl Called {
    fn map_unit(self) -> Called {
        self
    }
}
