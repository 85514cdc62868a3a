//! The root context: one per plugin configuration. It compiles the policy in `on_configure`
//! and hands each HTTP context a shared, immutable reference to it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use tollgate_core::tables::fingerprint;
use tollgate_core::{config_edge, load_plugin_config, Policy};

use crate::http::Http;
use crate::log;
use crate::metrics::Metrics;

/// A policy in force, the counters defined for it, and the fingerprint seed its limits use.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) policy: Policy,
    pub(crate) metrics: Metrics,
    pub(crate) seed: Cell<u64>,
}

/// How often the root context wakes up when the policy has limits: to re-read the shared seed
/// (workers that started at the same moment agree within one tick) and to expire idle keys.
const TICK: Duration = Duration::from_secs(1);

/// Blocks of each rate limit examined per tick for expiry (16 slots each).
const EXPIRY_CHUNK: u32 = 32;

#[derive(Debug, Default)]
pub(crate) struct Root {
    loaded: Option<Rc<Loaded>>,
    /// Next slot to examine, per rate limit.
    expiry_cursor: Vec<u32>,
}

impl Context for Root {}

/// A fresh random seed (std's `RandomState` draws from WASI `random_get`).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7011_6a7e);
    h.finish()
}

impl Root {
    /// Puts a valid policy in force: records it (generation, version gauges), makes its tables
    /// (keeping the state of unchanged ones), and logs what happened.
    fn accept(&mut self, policy: Policy, fingerprint: u64) {
        let edge = policy.edge().to_owned();
        let accepted = crate::running::accept(&edge, fingerprint, policy.version());
        let (generation, replaced, late) = match accepted {
            Some(a) => (a.running.generation, a.replaced, a.late),
            None => (0, None, false),
        };
        // A late VM's older configuration is not news: the gauges stay on the newest.
        if !late {
            crate::metrics::set_running(
                &edge,
                generation,
                policy.version(),
                replaced.as_ref().map(|r| r.version.as_str()),
            );
        }
        let metrics = Metrics::define(&policy);
        let limited = !policy.tables().is_empty();
        let mut state = String::new();
        // Even a policy without tables runs this: it frees the tables of removed rules.
        match crate::limits::prepare(&policy) {
            Ok(p) => {
                if !p.reset.is_empty() {
                    state.push_str(&format!(
                        "; state reset (definition changed): {}",
                        p.reset.join(", ")
                    ));
                }
                if !p.freed.is_empty() {
                    state.push_str(&format!(
                        "; state freed (rule removed): {}",
                        p.freed.join(", ")
                    ));
                }
            }
            Err(_) => log(
                LogLevel::Warn,
                "tollgate: shared data unavailable while preparing the limits' tables; limits follow their on_failure until it recovers",
            ),
        }
        let seed = if limited {
            crate::limits::seed(&edge, random_seed())
        } else {
            0
        };
        let replacing = match replaced {
            Some(r) => format!(", replacing {} (generation {})", r.version, r.generation),
            None if late => ", late (a newer configuration is recorded already)".to_owned(),
            None => String::new(),
        };
        log(
            LogLevel::Info,
            &format!(
                "tollgate: policy {} accepted as generation {generation} for edge {edge}{replacing}: {} routes, {} rules{state}",
                policy.version(),
                policy.route_names().count(),
                policy.rules().len()
            ),
        );
        self.expiry_cursor = vec![0; policy.rate_limits().len()];
        self.loaded = Some(Rc::new(Loaded {
            policy,
            metrics,
            seed: Cell::new(seed),
        }));
        if limited {
            let _ = hostcalls::set_tick_period(TICK);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match load_plugin_config(&raw, tollgate_policies::EMBEDDED) {
            Ok(policy) => {
                self.accept(policy, fingerprint(&raw));
                true
            }
            Err(errors) => {
                for e in &errors {
                    log(LogLevel::Error, &format!("tollgate: policy error: {e}"));
                }
                let in_force = config_edge(&raw, tollgate_policies::EMBEDDED)
                    .and_then(|edge| crate::running::current(&edge))
                    .map_or_else(
                        || "the running configuration, if any, stays in force".to_owned(),
                        |r| {
                            format!(
                                "policy {} (generation {}) stays in force",
                                r.version, r.generation
                            )
                        },
                    );
                log(
                    LogLevel::Error,
                    &format!(
                        "tollgate: policy refused with {} error(s); the configuration is not applied; {in_force}",
                        errors.len()
                    ),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(loaded) = self.loaded.clone() else {
            return;
        };
        let edge = loaded.policy.edge();
        loaded
            .seed
            .set(crate::limits::seed(edge, loaded.seed.get()));
        let Some(now) = crate::shared::now() else {
            return;
        };
        for (i, l) in loaded.policy.rate_limits().iter().enumerate() {
            let Some(cursor) = self.expiry_cursor.get_mut(i) else {
                continue;
            };
            let n = crate::limits::expire(edge, l, *cursor, EXPIRY_CHUNK, now);
            *cursor = cursor.wrapping_add(EXPIRY_CHUNK) % tollgate_core::limits::blocks(l.max_keys);
            loaded.metrics.limit_expired(i, n);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(self.loaded.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
