//! Counters through proxy-wasm metrics. Envoy shows them in admin `/stats` under the
//! `wasmcustom.` prefix, summed over workers: `wasmcustom.tollgate.<edge>.requests.allowed`,
//! `....requests.blocked`, `....requests.shadow_blocked`, and per rule
//! `wasmcustom.tollgate.<edge>.rule.<rule>.blocked` / `.shadow_blocked`. Per rate limit,
//! `....rate_limit.<name>.{allowed,limited,evicted,expired,failure_open,failure_closed}` (a
//! global limit's: `allowed`, `limited`, `failure_open`, `failure_closed`, the last two when its
//! service could not answer: unreachable, an error status, a timeout); per
//! ban, `....ban.<name>.{banned,refused,evicted,failure_open,failure_closed}` (`banned`: keys
//! banned; `refused`: requests refused while banned). Per detector class,
//! `....detection.<class>.detected` (requests detection refused or would have, that the class
//! scored on), and per Core Rule Set rule `....crs.<id>.detected`; per enumeration rule, `....enumeration.<name>.{over,failure_open,failure_closed}`.
//!
//! Two gauges say which policy runs: `....policy.generation` (see `running.rs`) and
//! `....policy.version.<version>`, 1 for the version in force and 0 for the one it replaced
//! (characters other than letters, digits, `-` and `_` in the version become `_`).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;
use tollgate_core::detect::Class;
use tollgate_core::limits::FailureMode;
use tollgate_core::{Policy, RuleId};

fn gauge(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Gauge, name).ok()
}

fn set_gauge(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// A version string as one segment of a metric name.
fn metric_segment(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Sets the gauges that say which policy runs: its generation, 1 for its version, and 0 for the
/// version it replaced (when that differs).
pub(crate) fn set_running(edge: &str, generation: u64, version: &str, replaced: Option<&str>) {
    let base = format!("tollgate.{edge}.policy");
    if let Some(old) = replaced.filter(|old| metric_segment(old) != metric_segment(version)) {
        set_gauge(gauge(&format!("{base}.version.{}", metric_segment(old))), 0);
    }
    set_gauge(
        gauge(&format!("{base}.version.{}", metric_segment(version))),
        1,
    );
    set_gauge(gauge(&format!("{base}.generation")), generation);
}

/// Counters of one rate limit.
#[derive(Debug, Default)]
struct LimitCounters {
    allowed: Option<u32>,
    limited: Option<u32>,
    evicted: Option<u32>,
    expired: Option<u32>,
    failure_open: Option<u32>,
    failure_closed: Option<u32>,
}

/// Counters of one ban.
#[derive(Debug, Default)]
struct BanCounters {
    banned: Option<u32>,
    refused: Option<u32>,
    evicted: Option<u32>,
    failure_open: Option<u32>,
    failure_closed: Option<u32>,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    allowed: Option<u32>,
    blocked: Option<u32>,
    shadow_blocked: Option<u32>,
    /// Per rule, indexed by `RuleId`: (blocked, shadow_blocked).
    rules: Vec<(Option<u32>, Option<u32>)>,
    limits: Vec<LimitCounters>,
    /// Per global limit: allowed, limited, failure_open, failure_closed (as a local limit's).
    globals: Vec<LimitCounters>,
    bans: Vec<BanCounters>,
    /// Per detector class (in `Class::ALL` order): requests it scored on when detection
    /// refused or would have refused.
    detected: Vec<Option<u32>>,
    /// Per enumeration rule: (over, failure_open, failure_closed).
    enumerations: Vec<(Option<u32>, Option<u32>, Option<u32>)>,
    /// Per Core Rule Set rule, sorted by id: requests it scored on when detection refused or
    /// would have refused.
    crs: Vec<(u32, Option<u32>)>,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn bump(id: Option<u32>) {
    add(id, 1);
}

fn add(id: Option<u32>, n: u64) {
    if let (Some(id), Ok(n)) = (id, i64::try_from(n)) {
        if n > 0 {
            let _ = hostcalls::increment_metric(id, n);
        }
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
            limits: policy
                .rate_limits()
                .iter()
                .map(|l| {
                    let c = |what: &str| counter(&format!("{base}.rate_limit.{}.{what}", l.name));
                    LimitCounters {
                        allowed: c("allowed"),
                        limited: c("limited"),
                        evicted: c("evicted"),
                        expired: c("expired"),
                        failure_open: c("failure_open"),
                        failure_closed: c("failure_closed"),
                    }
                })
                .collect(),
            globals: policy
                .global_limits()
                .iter()
                .map(|g| {
                    let c = |what: &str| counter(&format!("{base}.rate_limit.{}.{what}", g.name));
                    LimitCounters {
                        allowed: c("allowed"),
                        limited: c("limited"),
                        failure_open: c("failure_open"),
                        failure_closed: c("failure_closed"),
                        ..LimitCounters::default()
                    }
                })
                .collect(),
            bans: policy
                .bans()
                .iter()
                .map(|b| {
                    let c = |what: &str| counter(&format!("{base}.ban.{}.{what}", b.name));
                    BanCounters {
                        banned: c("banned"),
                        refused: c("refused"),
                        evicted: c("evicted"),
                        failure_open: c("failure_open"),
                        failure_closed: c("failure_closed"),
                    }
                })
                .collect(),
            detected: Class::ALL
                .iter()
                .map(|c| counter(&format!("{base}.detection.{}.detected", c.name())))
                .collect(),
            enumerations: policy
                .enumerations()
                .iter()
                .map(|e| {
                    let c = |what: &str| counter(&format!("{base}.enumeration.{}.{what}", e.name));
                    (c("over"), c("failure_open"), c("failure_closed"))
                })
                .collect(),
            crs: {
                let mut ids: Vec<u32> = policy
                    .detection()
                    .and_then(|d| d.crs.as_ref())
                    .map(|c| c.engine.rule_ids().collect())
                    .unwrap_or_default();
                ids.sort_unstable();
                ids.dedup();
                ids.into_iter()
                    .map(|id| (id, counter(&format!("{base}.crs.{id}.detected"))))
                    .collect()
            },
        }
    }

    /// A request detection refused (or would have): one per class and Core Rule Set rule that
    /// scored.
    pub(crate) fn detected(&self, classes: &[Class], crs: &[u32]) {
        for id in crs {
            if let Ok(i) = self.crs.binary_search_by_key(id, |(x, _)| *x) {
                if let Some((_, c)) = self.crs.get(i) {
                    bump(*c);
                }
            }
        }
        for c in classes {
            if let Some(id) = Class::ALL
                .iter()
                .position(|x| x == c)
                .and_then(|i| self.detected.get(i))
            {
                bump(*id);
            }
        }
    }

    /// A client went past an enumeration rule's distinct values (refused or flagged).
    pub(crate) fn enumeration_over(&self, i: usize) {
        if let Some(c) = self.enumerations.get(i) {
            bump(c.0);
        }
    }

    /// An enumeration rule's state could not be used.
    pub(crate) fn enumeration_failure(&self, i: usize, mode: FailureMode) {
        if let Some(c) = self.enumerations.get(i) {
            bump(match mode {
                FailureMode::Open => c.1,
                FailureMode::Closed => c.2,
            });
        }
    }

    pub(crate) fn limit_allowed(&self, i: usize) {
        bump(self.limits.get(i).and_then(|c| c.allowed));
    }

    pub(crate) fn limit_limited(&self, i: usize) {
        bump(self.limits.get(i).and_then(|c| c.limited));
    }

    pub(crate) fn limit_evicted(&self, i: usize) {
        bump(self.limits.get(i).and_then(|c| c.evicted));
    }

    pub(crate) fn limit_expired(&self, i: usize, n: u32) {
        add(self.limits.get(i).and_then(|c| c.expired), u64::from(n));
    }

    pub(crate) fn limit_failure(&self, i: usize, mode: FailureMode) {
        bump(self.limits.get(i).and_then(|c| match mode {
            FailureMode::Open => c.failure_open,
            FailureMode::Closed => c.failure_closed,
        }));
    }

    /// A global limit's service admitted (`Some(true)`), refused (`Some(false)`), or could not
    /// answer (`None`, counted under the limit's failure mode).
    pub(crate) fn global(&self, i: usize, admitted: Option<bool>, mode: FailureMode) {
        bump(self.globals.get(i).and_then(|c| match (admitted, mode) {
            (Some(true), _) => c.allowed,
            (Some(false), _) => c.limited,
            (None, FailureMode::Open) => c.failure_open,
            (None, FailureMode::Closed) => c.failure_closed,
        }));
    }

    pub(crate) fn ban_started(&self, i: usize) {
        bump(self.bans.get(i).and_then(|c| c.banned));
    }

    pub(crate) fn ban_refused(&self, i: usize) {
        bump(self.bans.get(i).and_then(|c| c.refused));
    }

    pub(crate) fn ban_evicted(&self, i: usize) {
        bump(self.bans.get(i).and_then(|c| c.evicted));
    }

    pub(crate) fn ban_failure(&self, i: usize, mode: FailureMode) {
        bump(self.bans.get(i).and_then(|c| match mode {
            FailureMode::Open => c.failure_open,
            FailureMode::Closed => c.failure_closed,
        }));
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
