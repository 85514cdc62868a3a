//! Counters through proxy-wasm metrics. Envoy shows them in admin `/stats` under the
//! `wasmcustom.` prefix, summed over workers: `wasmcustom.tollgate.<edge>.requests.allowed`,
//! `....requests.blocked`, `....requests.shadow_blocked`, and per rule
//! `wasmcustom.tollgate.<edge>.rule.<rule>.blocked` / `.shadow_blocked`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use tollgate_core::{Policy, RuleId};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    allowed: Option<u32>,
    blocked: Option<u32>,
    shadow_blocked: Option<u32>,
    /// Per rule, indexed by `RuleId`: (blocked, shadow_blocked).
    rules: Vec<(Option<u32>, Option<u32>)>,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

impl Metrics {
    /// Defines every counter the policy can touch, once per configuration.
    pub(crate) fn define(policy: &Policy) -> Metrics {
        let base = format!("tollgate.{}", policy.edge());
        Metrics {
            allowed: counter(&format!("{base}.requests.allowed")),
            blocked: counter(&format!("{base}.requests.blocked")),
            shadow_blocked: counter(&format!("{base}.requests.shadow_blocked")),
            rules: policy
                .rules()
                .iter()
                .map(|r| {
                    (
                        counter(&format!("{base}.rule.{}.blocked", r.name)),
                        counter(&format!("{base}.rule.{}.shadow_blocked", r.name)),
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn allowed(&self) {
        bump(self.allowed);
    }

    pub(crate) fn blocked(&self, rule: RuleId) {
        bump(self.blocked);
        bump(self.rules.get(rule.0).and_then(|r| r.0));
    }

    pub(crate) fn shadow_request(&self) {
        bump(self.shadow_blocked);
    }

    pub(crate) fn shadow_rule(&self, rule: RuleId) {
        bump(self.rules.get(rule.0).and_then(|r| r.1));
    }
}
