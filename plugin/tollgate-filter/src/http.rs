//! The HTTP context: one per request. The decision happens in `on_http_request_headers`: the
//! policy's verdict, then (for an allowed request) bans and rate limits against shared data.
//! `on_http_response_headers` adds the `RateLimit` headers and counts responses for bans.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};
use tollgate_core::limits::{key_of, FailureMode, KeyContext, KeyPart};
use tollgate_core::validate::JsonScan;
use tollgate_core::{parse_socket_address, sanitize_request_id, Block, BlockKind, Mode, Request};

use crate::global;
use crate::limits::{self, LimitOutcome};
use crate::log;
use crate::root::Loaded;
use crate::shared;

/// Request header set on refused requests; see `envoy/retail.yaml`, `local_reply_config`.
const REFUSED_MARK: &str = "x-tollgate-refused";

/// Request header naming the enumeration rules that flagged a request, for the backend. A
/// client's own copy is removed.
const FLAG_HEADER: &str = "x-tollgate-flag";

/// The answer when no policy is loaded.
const NO_POLICY: &str = r#"{"type":"urn:tollgate:problem:policy-unavailable","title":"Service unavailable","status":503}"#;

/// A request whose limits wait for its body (a limit keyed on a body field).
struct Deferred {
    headers: Vec<(String, Vec<u8>)>,
    source: Option<std::net::IpAddr>,
    route: Option<usize>,
    shadowed: Vec<Block>,
    /// What detection found before the body.
    findings: tollgate_core::detect::Findings,
    /// The Core Rule Set's matches on the head (empty when it runs with the body).
    crs: Vec<tollgate_core::crs::Match>,
    /// The most body this request may have.
    cap: usize,
    /// The JSON structure scan, for routes whose bodies are JSON.
    scan: Option<JsonScan>,
    /// Body bytes read so far.
    scanned: usize,
    /// The body so far (at most `cap` bytes): read once, chunk by chunk.
    body: Vec<u8>,
}

/// A request waiting for the rate-limit services of its global limits.
struct Pending {
    headers: Vec<(String, Vec<u8>)>,
    source: Option<std::net::IpAddr>,
    verdict: tollgate_core::Verdict,
    rate: LimitVerdict,
    /// The calls not yet answered.
    calls: Vec<global::Call>,
}

pub(crate) struct Http {
    loaded: Option<Rc<Loaded>>,
    deferred: Option<Deferred>,
    /// Set while global limits' calls are in flight: the request stays paused until then.
    pending: Option<Pending>,
    /// `RateLimit-Policy` and `RateLimit` values for the response, when the route shows them.
    rate_headers: Option<(String, String)>,
    /// Bans whose responses count for this request: (ban index, key fingerprint).
    ban_keys: Vec<(usize, u64)>,
    /// Tollgate answered this request itself.
    answered: bool,
}

impl Http {
    pub(crate) fn new(loaded: Option<Rc<Loaded>>) -> Self {
        Http {
            loaded,
            deferred: None,
            pending: None,
            rate_headers: None,
            ban_keys: Vec::new(),
            answered: false,
        }
    }
}

impl Context for Http {
    /// A global limit's service answered (or the call failed: `status_code` is the gRPC status,
    /// 4 for Envoy's timeout). The request goes on once every call has answered, or is refused
    /// at the first that refuses it.
    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        let Some(loaded) = self.loaded.clone() else {
            return;
        };
        let loaded = loaded.as_ref();
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let Some(at) = p.calls.iter().position(|c| c.token == token_id) else {
            return;
        };
        let call = p.calls.swap_remove(at);
        let Some(g) = loaded.policy.global_limits().get(call.limit) else {
            return;
        };
        let refused = match global::answer(status_code, response_size) {
            Some(a) => {
                let s = a.status();
                if let Some(policy) = g.policy_header(&s) {
                    p.rate.policy.push(policy);
                    p.rate.state.push(g.state_header(&s));
                }
                if a.over_limit() {
                    if g.mode == Mode::Enforce {
                        loaded.metrics.global(call.limit, Some(false), g.on_failure);
                    }
                    let block = Block {
                        rule: g.rule,
                        kind: BlockKind::RateLimited {
                            retry_after: s.reset_secs.unwrap_or(1).max(1),
                        },
                    };
                    p.rate.hit(g.mode, block)
                } else {
                    loaded.metrics.global(call.limit, Some(true), g.on_failure);
                    false
                }
            }
            None => {
                loaded.metrics.global(call.limit, None, g.on_failure);
                failed_closed(&mut p.rate, g.rule, g.mode, g.on_failure)
            }
        };
        if !refused && !p.calls.is_empty() {
            return;
        }
        let Some(mut p) = self.pending.take() else {
            return;
        };
        p.verdict.shadowed.append(&mut p.rate.shadowed);
        p.verdict.block = p.rate.block.take();
        let req = Request::from_headers(&p.headers, p.source).with_body(true);
        if let Action::Continue = self.answer(loaded, &req, p.verdict, p.rate) {
            if hostcalls::resume_http_request().is_err() {
                log(LogLevel::Error, "tollgate: could not resume the request");
            }
        }
    }
}

/// The verdict of bans and limits for one request.
#[derive(Default)]
struct LimitVerdict {
    block: Option<Block>,
    shadowed: Vec<Block>,
    /// `RateLimit-Policy` and `RateLimit` members of the limits checked.
    policy: Vec<String>,
    state: Vec<String>,
}

impl LimitVerdict {
    /// Records a hit in `mode`; true if it refuses the request.
    fn hit(&mut self, mode: Mode, block: Block) -> bool {
        match mode {
            Mode::Enforce => {
                self.block = Some(block);
                true
            }
            Mode::Shadow => {
                self.shadowed.push(block);
                false
            }
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(loaded) = self.loaded.clone() else {
            // No policy: deny. (Envoy does not create HTTP contexts for a refused configuration,
            // so this is a guard, not a path.)
            self.answered = true;
            send(503, NO_POLICY, None, &[]);
            return Action::Pause;
        };
        let loaded = loaded.as_ref();
        // One host call for the whole map, values as bytes (they need not be UTF-8).
        let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let source = if loaded.policy.needs_source_address() {
            source_address()
        } else {
            None
        };
        // Present at all, even empty: Envoy's mappers match on presence.
        for mark in [REFUSED_MARK, FLAG_HEADER] {
            if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(mark)) {
                // Only Tollgate sets these; a client's copy of the refusal mark would switch
                // off the edge's problem formatting for Envoy's own refusals, and a flag of its
                // own would mislead the backend. Neither travels upstream.
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, mark);
            }
        }
        let req = Request::from_headers(&headers, source).with_body(!end_of_stream);
        let verdict = loaded.policy.decide(&req);
        let hold = if end_of_stream {
            None
        } else {
            loaded.policy.body_hold(&verdict, &req)
        };
        if let Some(hold) = hold {
            // The body decides: hold the request (the bootstraps set
            // allow_on_headers_stop_iteration, so the body still reaches this filter) and
            // decide as it arrives and when it is in.
            self.deferred = Some(Deferred {
                route: verdict.route,
                shadowed: verdict.shadowed,
                findings: verdict.findings,
                crs: verdict.crs,
                headers,
                source,
                cap: hold.cap,
                scan: hold.scan,
                scanned: 0,
                body: Vec::new(),
            });
            return Action::Pause;
        }
        self.decide(loaded, &req, verdict, None, (&headers, source))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(loaded) = self.loaded.clone() else {
            return Action::Continue;
        };
        let loaded = loaded.as_ref();
        if self.pending.is_some() {
            // Decided by the services of its global limits: the body waits with the headers
            // (Envoy buffers it, within its buffer limit).
            return Action::Pause;
        }
        let Some(d) = self.deferred.as_mut() else {
            return Action::Continue;
        };
        // Refused as soon as it is known: over the cap, or a structure over the JSON limits.
        let mut refusal = None;
        if body_size > d.cap {
            refusal = Some(loaded.policy.over_cap(d.route, d.cap));
        } else {
            // Only the bytes that arrived since the last call (Envoy hands over the whole
            // buffer each time while it buffers).
            let fresh = hostcalls::get_buffer(
                BufferType::HttpRequestBody,
                d.scanned,
                body_size.saturating_sub(d.scanned),
            )
            .ok()
            .flatten()
            .unwrap_or_default();
            d.scanned = body_size;
            d.body.extend_from_slice(&fresh);
            if let Some(scan) = d.scan.as_mut() {
                if let Err(violation) = scan.feed(&fresh) {
                    refusal = loaded.policy.scan_refused(d.route, violation);
                    d.scan = None;
                }
            }
        }
        if refusal.is_none() && !end_of_stream {
            // Buffer: the next call sees the whole body so far.
            return Action::Pause;
        }
        self.finish_body(loaded, refusal)
    }

    /// Trailers end a body too: a request held for its body is decided here if the body did
    /// not end the stream (otherwise trailers would carry it past every body check).
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let Some(loaded) = self.loaded.clone() else {
            return Action::Continue;
        };
        if self.pending.is_some() {
            return Action::Pause;
        }
        if self.deferred.is_none() {
            return Action::Continue;
        }
        self.finish_body(loaded.as_ref(), None)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        if let Some((policy, state)) = self.rate_headers.take() {
            let _ =
                hostcalls::add_map_value(MapType::HttpResponseHeaders, "ratelimit-policy", &policy);
            let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, "ratelimit", &state);
        }
        if !self.ban_keys.is_empty() {
            self.count_response();
        }
        Action::Continue
    }
}

impl Http {
    /// Decides a held request once its body is complete (or refused on the way).
    fn finish_body(
        &mut self,
        loaded: &Loaded,
        refusal: Option<tollgate_core::BodyRefusal>,
    ) -> Action {
        let Some(d) = self.deferred.take() else {
            return Action::Continue;
        };
        let req = Request::from_headers(&d.headers, d.source).with_body(true);
        let mut verdict = tollgate_core::Verdict {
            route: d.route,
            block: None,
            shadowed: d.shadowed,
            findings: d.findings,
            crs: d.crs,
        };
        let body = loaded
            .policy
            .judge_body(&mut verdict, &req, &d.body, refusal);
        if !verdict.allowed() {
            return self.answer(loaded, &req, verdict, LimitVerdict::default());
        }
        self.decide(loaded, &req, verdict, body.as_ref(), (&d.headers, d.source))
    }

    /// Bans and limits for a request the policy allowed, then the answer; or, when global
    /// limits apply, their calls, and a pause until they answer (`on_grpc_call_response`).
    fn decide(
        &mut self,
        loaded: &Loaded,
        req: &Request<'_>,
        mut verdict: tollgate_core::Verdict,
        body: Option<&serde_json::Value>,
        (headers, source): (&[(String, Vec<u8>)], Option<std::net::IpAddr>),
    ) -> Action {
        let mut rate = LimitVerdict::default();
        if verdict.allowed() {
            rate = self.limits(loaded, req, verdict.route, body);
            verdict.shadowed.append(&mut rate.shadowed);
            verdict.block = rate.block.take();
        }
        if verdict.allowed() {
            let calls = self.start_global(loaded, req, verdict.route, body, &mut rate);
            verdict.shadowed.append(&mut rate.shadowed);
            verdict.block = rate.block.take();
            if !calls.is_empty() && verdict.allowed() {
                self.pending = Some(Pending {
                    headers: headers.to_vec(),
                    source,
                    verdict,
                    rate,
                    calls,
                });
                return Action::Pause;
            }
        }
        self.answer(loaded, req, verdict, rate)
    }

    /// Calls the service of every global limit on `route` whose key the request has. A call
    /// Envoy refuses applies the limit's `on_failure` at once (in `out`).
    fn start_global(
        &self,
        loaded: &Loaded,
        req: &Request<'_>,
        route: Option<usize>,
        body: Option<&serde_json::Value>,
        out: &mut LimitVerdict,
    ) -> Vec<global::Call> {
        let policy = &loaded.policy;
        let applying: Vec<(usize, u64)> = policy
            .global_limits()
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.cost_on(route).map(|c| (i, c)))
            .collect();
        let mut calls = Vec::new();
        if applying.is_empty() {
            return calls;
        }
        let cx = key_context(loaded, req, body, |part| {
            applying.iter().any(|(i, _)| {
                policy
                    .global_limits()
                    .get(*i)
                    .is_some_and(|g| g.key.contains(part))
            })
        });
        for (i, cost) in applying {
            let Some(g) = policy.global_limits().get(i) else {
                continue;
            };
            let Some(descriptor) = g.descriptor(req, &cx.context()) else {
                continue;
            };
            match global::dispatch(g, i, &g.request(&descriptor, cost)) {
                Some(call) => calls.push(call),
                None => {
                    loaded.metrics.global(i, None, g.on_failure);
                    if failed_closed(out, g.rule, g.mode, g.on_failure) {
                        break;
                    }
                }
            }
        }
        calls
    }

    /// Logs, counts, and lets the request go on or answers it.
    fn answer(
        &mut self,
        loaded: &Loaded,
        req: &Request<'_>,
        verdict: tollgate_core::Verdict,
        rate: LimitVerdict,
    ) -> Action {
        // Needed only to log or answer; an ordinary allowed request skips the scan.
        let request_id = if verdict.allowed() && verdict.shadowed.is_empty() {
            None
        } else {
            req.request_id().and_then(sanitize_request_id)
        };
        if !verdict.shadowed.is_empty() {
            // Counted as a shadow-blocked request only if it goes through; the per-rule shadow
            // counters count every hit.
            if verdict.allowed() {
                loaded.metrics.shadow_request();
            }
            for s in &verdict.shadowed {
                loaded.metrics.shadow_rule(s.rule);
                if let BlockKind::Attack { classes, crs, .. } = &s.kind {
                    loaded.metrics.detected(classes, crs);
                }
                log(LogLevel::Info, &describe("shadow", loaded, s, request_id));
            }
        }
        let (policy_h, state_h) = (rate.policy.join(", "), rate.state.join(", "));
        match &verdict.block {
            None => {
                loaded.metrics.allowed();
                if !rate.policy.is_empty() && loaded.policy.rate_limit_headers_on(verdict.route) {
                    self.rate_headers = Some((policy_h, state_h));
                }
                Action::Continue
            }
            Some(block) => {
                loaded.metrics.blocked(block.rule);
                if let BlockKind::Attack { classes, crs, .. } = &block.kind {
                    loaded.metrics.detected(classes, crs);
                }
                log(
                    LogLevel::Debug,
                    &describe("blocked", loaded, block, request_id),
                );
                let problem = loaded.policy.problem(block, request_id).to_json();
                let mut extra: Vec<(&str, String)> = Vec::new();
                if let BlockKind::MethodNotAllowed { allow } = &block.kind {
                    extra.push(("allow", allow.clone()));
                }
                if let Some(secs) = block.retry_after() {
                    extra.push(("retry-after", secs.to_string()));
                }
                if matches!(block.kind, BlockKind::RateLimited { .. }) && !rate.policy.is_empty() {
                    extra.push(("ratelimit-policy", policy_h));
                    extra.push(("ratelimit", state_h));
                }
                self.answered = true;
                let extra: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                send(u32::from(block.status()), &problem, request_id, &extra);
                Action::Pause
            }
        }
    }
}

impl Http {
    /// Bans, then rate limits, for an allowed request on `route`.
    fn limits(
        &mut self,
        loaded: &Loaded,
        req: &Request<'_>,
        route: Option<usize>,
        body: Option<&serde_json::Value>,
    ) -> LimitVerdict {
        let mut out = LimitVerdict::default();
        let policy = &loaded.policy;
        let bans: Vec<usize> = (0..policy.bans().len())
            .filter(|i| policy.bans().get(*i).is_some_and(|b| b.applies(route)))
            .collect();
        let limits: Vec<(usize, u64)> = policy
            .rate_limits()
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.cost_on(route).map(|c| (i, c)))
            .collect();
        let enums: Vec<usize> = (0..policy.enumerations().len())
            .filter(|i| {
                policy
                    .enumerations()
                    .get(*i)
                    .is_some_and(|e| e.applies(route))
            })
            .collect();
        if bans.is_empty() && limits.is_empty() && enums.is_empty() {
            return out;
        }
        // Without a clock no limit can be checked: each follows its failure mode.
        let Some(now) = shared::now() else {
            for i in bans {
                if self.ban_failed(loaded, i, &mut out) {
                    return out;
                }
            }
            for (i, _) in limits {
                if self.limit_failed(loaded, i, &mut out) {
                    return out;
                }
            }
            for i in enums {
                if self.enum_failed(loaded, i, &mut out) {
                    return out;
                }
            }
            return out;
        };
        let needs = |part: &KeyPart| {
            bans.iter()
                .filter_map(|i| policy.bans().get(*i).map(|b| &b.key))
                .chain(
                    limits
                        .iter()
                        .filter_map(|(i, _)| policy.rate_limits().get(*i).map(|l| &l.key)),
                )
                .chain(
                    enums
                        .iter()
                        .filter_map(|i| policy.enumerations().get(*i).map(|e| &e.key)),
                )
                .any(|k| k.contains(part))
        };
        let keys = key_context(loaded, req, body, needs);
        let cx = keys.context();
        let edge = policy.edge();
        let seed = loaded.seed.get();

        for i in bans {
            let Some(b) = policy.bans().get(i) else {
                continue;
            };
            let Some(key) = key_of(&b.key, req, &cx) else {
                continue;
            };
            let fp = limits::fp(seed, &key);
            self.ban_keys.push((i, fp));
            match limits::banned(edge, b, fp, now) {
                Ok(None) => {}
                Ok(Some(retry_after)) => {
                    loaded.metrics.ban_refused(i);
                    let block = Block {
                        rule: b.rule,
                        kind: BlockKind::Banned { retry_after },
                    };
                    if out.hit(b.mode, block) {
                        return out;
                    }
                }
                Err(_) => {
                    if self.ban_failed(loaded, i, &mut out) {
                        return out;
                    }
                }
            }
        }

        // First decide every limit without charging any; charge only if all admit.
        let mut planned = Vec::new();
        for (i, cost) in limits {
            let Some(l) = policy.rate_limits().get(i) else {
                continue;
            };
            let Some(key) = key_of(&l.key, req, &cx) else {
                continue;
            };
            let fp = limits::fp(seed, &key);
            match limits::plan(edge, l, fp, cost, now) {
                Ok(p) if p.admission.allowed => planned.push((i, fp, cost, p)),
                Ok(p) => {
                    out.policy.push(l.policy_header());
                    out.state.push(l.state_header(&p.admission));
                    let block = Block {
                        rule: l.rule,
                        kind: BlockKind::RateLimited {
                            retry_after: p.admission.retry_after_secs,
                        },
                    };
                    if l.mode == Mode::Enforce {
                        loaded.metrics.limit_limited(i);
                    }
                    if out.hit(l.mode, block) {
                        return out;
                    }
                }
                Err(_) => {
                    if self.limit_failed(loaded, i, &mut out) {
                        return out;
                    }
                }
            }
        }
        for (i, fp, cost, p) in planned {
            let Some(l) = policy.rate_limits().get(i) else {
                continue;
            };
            // Written as planned, or (if the block changed meanwhile) decided again.
            let outcome = match limits::commit(&p) {
                Ok(true) => LimitOutcome::Checked {
                    admission: p.admission,
                    evicted: p.evicted,
                },
                Ok(false) => limits::check(edge, l, fp, cost, now),
                Err(_) => LimitOutcome::Failed,
            };
            match outcome {
                LimitOutcome::Checked { admission, evicted } => {
                    if evicted {
                        loaded.metrics.limit_evicted(i);
                    }
                    out.policy.push(l.policy_header());
                    out.state.push(l.state_header(&admission));
                    if admission.allowed {
                        loaded.metrics.limit_allowed(i);
                    } else {
                        // Lost a race after planning: refused now.
                        let block = Block {
                            rule: l.rule,
                            kind: BlockKind::RateLimited {
                                retry_after: admission.retry_after_secs,
                            },
                        };
                        if l.mode == Mode::Enforce {
                            loaded.metrics.limit_limited(i);
                        }
                        if out.hit(l.mode, block) {
                            return out;
                        }
                    }
                }
                LimitOutcome::Failed => {
                    if self.limit_failed(loaded, i, &mut out) {
                        return out;
                    }
                }
            }
        }

        // Enumeration: the distinct identifiers this client looked up in its window.
        let params = if enums.is_empty() {
            Vec::new()
        } else {
            policy.path_params(route, req)
        };
        let mut flags: Vec<&str> = Vec::new();
        for i in enums {
            let Some(e) = policy.enumerations().get(i) else {
                continue;
            };
            let (Some(key), Some(value)) =
                (key_of(&e.key, req, &cx), e.value_of(req, &params, body))
            else {
                continue;
            };
            let fp = limits::fp(seed, &key);
            // A second hash for the value, from another seed: a client cannot choose values
            // that share a bit without knowing the seed.
            let value_hash = limits::fp(seed ^ 0x9e37_79b9_7f4a_7c15, &value);
            match limits::observe(edge, e, fp, value_hash, now) {
                Ok(o) if o.over => {
                    loaded.metrics.enumeration_over(i);
                    let block = Block {
                        rule: e.rule,
                        kind: BlockKind::Enumeration {
                            retry_after: o.retry_after,
                        },
                    };
                    if e.mode == Mode::Shadow {
                        flags.push(policy.rule_name(e.rule));
                    }
                    if out.hit(e.mode, block) {
                        return out;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    if self.enum_failed(loaded, i, &mut out) {
                        return out;
                    }
                }
            }
        }
        if !flags.is_empty() {
            let _ = hostcalls::add_map_value(
                MapType::HttpRequestHeaders,
                FLAG_HEADER,
                &flags.join(", "),
            );
        }
        out
    }

    /// As `limit_failed`, for an enumeration rule.
    fn enum_failed(&self, loaded: &Loaded, i: usize, out: &mut LimitVerdict) -> bool {
        let Some(e) = loaded.policy.enumerations().get(i) else {
            return false;
        };
        loaded.metrics.enumeration_failure(i, e.on_failure);
        failed_closed(out, e.rule, e.mode, e.on_failure)
    }

    /// A limit's state could not be used: count it, and refuse if it fails closed. Returns
    /// whether the request is refused.
    fn limit_failed(&self, loaded: &Loaded, i: usize, out: &mut LimitVerdict) -> bool {
        let Some(l) = loaded.policy.rate_limits().get(i) else {
            return false;
        };
        loaded.metrics.limit_failure(i, l.on_failure);
        failed_closed(out, l.rule, l.mode, l.on_failure)
    }

    /// As `limit_failed`, for a ban.
    fn ban_failed(&self, loaded: &Loaded, i: usize, out: &mut LimitVerdict) -> bool {
        let Some(b) = loaded.policy.bans().get(i) else {
            return false;
        };
        loaded.metrics.ban_failure(i, b.on_failure);
        failed_closed(out, b.rule, b.mode, b.on_failure)
    }

    /// Counts the upstream's answer for the bans that apply.
    fn count_response(&mut self) {
        let Some(loaded) = self.loaded.clone() else {
            return;
        };
        let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        let (Some(status), Some(now)) = (status, shared::now()) else {
            return;
        };
        let edge = loaded.policy.edge();
        for (i, fp) in std::mem::take(&mut self.ban_keys) {
            let Some(b) = loaded.policy.bans().get(i) else {
                continue;
            };
            if !b.counts(status) {
                continue;
            }
            match limits::record(edge, b, fp, now) {
                Ok(r) => {
                    if r.started {
                        loaded.metrics.ban_started(i);
                        log(
                            LogLevel::Info,
                            &format!("tollgate: ban rule=ban.{} started", b.name),
                        );
                    }
                    if r.evicted {
                        loaded.metrics.ban_evicted(i);
                    }
                }
                Err(_) => loaded.metrics.ban_failure(i, b.on_failure),
            }
        }
    }
}

/// A failing limit or ban that fails closed refuses (in its mode); returns whether it did.
fn failed_closed(
    out: &mut LimitVerdict,
    rule: tollgate_core::RuleId,
    mode: Mode,
    on_failure: FailureMode,
) -> bool {
    on_failure == FailureMode::Closed
        && out.hit(
            mode,
            Block {
                rule,
                kind: BlockKind::LimitUnavailable,
            },
        )
}

/// What keys are made of beyond the headers, read only when a key needs it.
struct Keys<'a> {
    client: Option<std::net::IpAddr>,
    peer: Option<String>,
    body: Option<&'a serde_json::Value>,
}

impl Keys<'_> {
    fn context(&self) -> KeyContext<'_> {
        KeyContext {
            client: self.client,
            peer_identity: self.peer.as_deref(),
            body: self.body,
        }
    }
}

fn key_context<'a>(
    loaded: &Loaded,
    req: &Request<'_>,
    body: Option<&'a serde_json::Value>,
    needs: impl Fn(&KeyPart) -> bool,
) -> Keys<'a> {
    Keys {
        client: needs(&KeyPart::ClientIp)
            .then(|| loaded.policy.client_of(req))
            .flatten(),
        peer: needs(&KeyPart::PeerIdentity).then(peer_identity).flatten(),
        body,
    }
}

/// The connection's source address (Envoy's `source.address` property, `ip:port`).
fn source_address() -> Option<std::net::IpAddr> {
    let raw = hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()?;
    parse_socket_address(std::str::from_utf8(&raw).ok()?)
}

/// The mTLS peer's URI SAN (Envoy's `connection.uri_san_peer_certificate`).
fn peer_identity() -> Option<String> {
    let raw = hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"])
        .ok()
        .flatten()?;
    String::from_utf8(raw).ok().filter(|s| !s.is_empty())
}

fn describe(what: &str, loaded: &Loaded, block: &Block, request_id: Option<&str>) -> String {
    let rule = loaded.policy.rule_name(block.rule);
    format!(
        "tollgate: {what} rule={rule} status={} request_id={}",
        block.status(),
        request_id.unwrap_or("-")
    )
}

/// Answers the request locally with a problem body.
fn send(status: u32, body: &str, request_id: Option<&str>, extra: &[(&str, &str)]) {
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/problem+json"),
        ("cache-control", "no-store"),
    ];
    if let Some(id) = request_id {
        headers.push(("x-request-id", id));
    }
    headers.extend_from_slice(extra);
    // Marks the request as answered by Tollgate, so the edge's local-reply mapper (which formats
    // Envoy's own refusals) leaves this answer as it is.
    let _ = hostcalls::add_map_value(MapType::HttpRequestHeaders, REFUSED_MARK, "1");
    if hostcalls::send_http_response(status, headers, Some(body.as_bytes())).is_err() {
        log(
            LogLevel::Error,
            "tollgate: could not send the local response",
        );
    }
}
