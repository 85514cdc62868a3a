//! The root context: one per plugin configuration. It compiles the policy in `on_configure`
//! and hands each HTTP context a shared, immutable reference to it.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use tollgate_core::{load_plugin_config, Policy};

use crate::http::Http;
use crate::log;
use crate::metrics::Metrics;

/// A policy in force and the counters defined for it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) policy: Policy,
    pub(crate) metrics: Metrics,
}

#[derive(Debug, Default)]
pub(crate) struct Root {
    loaded: Option<Rc<Loaded>>,
}

impl Context for Root {}

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
                self.loaded = Some(Rc::new(Loaded { policy, metrics }));
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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(self.loaded.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
