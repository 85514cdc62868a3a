//! The root context: one per plugin configuration. It compiles the policy in `on_configure`
//! and hands each HTTP context a shared, immutable reference to it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use tollgate_core::{load_plugin_config, Policy};

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

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match load_plugin_config(&raw, tollgate_policies::EMBEDDED) {
            Ok(policy) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "tollgate: policy {} accepted for edge {}: {} routes, {} rules",
                        policy.version(),
                        policy.edge(),
                        policy.route_names().count(),
                        policy.rules().len()
                    ),
                );
                let metrics = Metrics::define(&policy);
                let limited = !policy.rate_limits().is_empty()
                    || !policy.bans().is_empty()
                    || !policy.enumerations().is_empty();
                let seed = if limited {
                    if crate::limits::prepare(&policy).is_err() {
                        log(
                            LogLevel::Warn,
                            "tollgate: shared data unavailable while preparing the limits' tables; limits follow their on_failure until it recovers",
                        );
                    }
                    crate::limits::seed(policy.edge(), random_seed())
                } else {
                    0
                };
                self.expiry_cursor = vec![0; policy.rate_limits().len()];
                self.loaded = Some(Rc::new(Loaded {
                    policy,
                    metrics,
                    seed: Cell::new(seed),
                }));
                if limited {
                    let _ = hostcalls::set_tick_period(TICK);
                }
                true
            }
            Err(errors) => {
                for e in &errors {
                    log(LogLevel::Error, &format!("tollgate: policy error: {e}"));
                }
                log(
                    LogLevel::Error,
                    &format!(
                        "tollgate: policy refused with {} error(s); the configuration is not applied",
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
