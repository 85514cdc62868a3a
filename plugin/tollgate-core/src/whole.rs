//! A request's body, step by step, for the filter (which gets it in chunks over its callbacks)
//! and for hosts that have the whole request at once (the policy component, tools): whether the
//! body is held and to what cap, the refusal of an over-cap body or of a JSON structure over its
//! limits, and the judgement of the complete body (validation, then detection). Rate limits,
//! bans and enumeration keep state the core does not hold; [`Policy::decide_whole`] names them.

use crate::decide::{Block, BlockKind, Verdict};
use crate::limits::{KeyPart, MAX_KEYED_BODY};
use crate::validate::{JsonScan, JsonViolation, Sizes};
use crate::{Mode, Policy, Request, RuleId};

/// A refusal found in a body: the rule, its mode, and what it refuses.
pub type BodyRefusal = (RuleId, Mode, BlockKind);

/// How a request is held for its body.
#[derive(Debug)]
pub struct BodyHold {
    /// The most body it may have.
    pub cap: usize,
    /// The JSON structure scan, for routes whose bodies are JSON.
    pub scan: Option<JsonScan>,
}

/// What [`Policy::decide_whole`] found.
#[derive(Debug, Default)]
pub struct Whole {
    /// The verdict of every stateless check.
    pub verdict: Verdict,
    /// The stateful rules (rate limits, bans, enumeration) that apply to the request's route and
    /// would count it at the edge, in policy order. Only for a request the stateless checks let
    /// through.
    pub stateful: Vec<RuleId>,
}

impl Policy {
    /// Whether a request whose head `verdict` let through is held for its body: when the body
    /// decides (its validation, its size, its detection, or a limit keyed on one of its fields),
    /// and, for a body without a declared length, so that the cap holds for it too. A request no
    /// route matched (`routing.default: allow`) gets the default cap.
    pub fn body_hold(&self, verdict: &Verdict, req: &Request<'_>) -> Option<BodyHold> {
        let rv = self.validation(verdict.route);
        let keyed = self.needs_body(verdict.route);
        let unframed = req.header("content-length").is_none();
        let inspected = self.inspects_body(verdict.route, req);
        if !(verdict.allowed()
            && (keyed || unframed || inspected || rv.is_some_and(|v| v.reads_body())))
        {
            return None;
        }
        let max = rv.map_or(Sizes::default().body, |v| v.max.body);
        Some(BodyHold {
            cap: if keyed { max.min(MAX_KEYED_BODY) } else { max },
            scan: rv.filter(|v| v.wants_json()).map(|v| JsonScan::new(v.json)),
        })
    }

    /// The refusal of a body over `cap` on `route`: the route's validation when the cap is its
    /// own, else the rule the cap is for (see [`Policy::body_rule`]).
    pub fn over_cap(&self, route: Option<usize>, cap: usize) -> BodyRefusal {
        match self.validation(route) {
            Some(v) if cap == v.max.body => (v.rule, v.mode, BlockKind::Invalid(v.too_large(cap))),
            _ => (
                self.body_rule(route),
                Mode::Enforce,
                BlockKind::BodyTooLarge { max: cap },
            ),
        }
    }

    /// The refusal of a JSON structure over the route's limits.
    pub fn scan_refused(
        &self,
        route: Option<usize>,
        violation: JsonViolation,
    ) -> Option<BodyRefusal> {
        self.validation(route).map(|v| {
            (
                v.rule,
                v.mode,
                BlockKind::Invalid(v.scan_refusal(violation)),
            )
        })
    }

    /// Judges a held body once it is complete (or refused on the way, `refusal`): the route's
    /// validation, then attack detection on its strings. A refusal in enforce mode lands in
    /// `verdict.block`, in shadow mode in `verdict.shadowed`. Returns the body parsed as JSON,
    /// if it is JSON, for limits keyed on its fields.
    pub fn judge_body(
        &self,
        verdict: &mut Verdict,
        req: &Request<'_>,
        body: &[u8],
        mut refusal: Option<BodyRefusal>,
    ) -> Option<serde_json::Value> {
        let mut parsed = None;
        if refusal.is_none() {
            match self.validation(verdict.route) {
                Some(v) if v.reads_body() => match v.check_body(body) {
                    Ok(p) => parsed = p,
                    Err(r) => refusal = Some((v.rule, v.mode, BlockKind::Invalid(r))),
                },
                _ => parsed = serde_json::from_slice::<serde_json::Value>(body).ok(),
            }
        }
        if let Some((rule, mode, kind)) = refusal {
            let block = Block { rule, kind };
            match mode {
                Mode::Enforce => {
                    verdict.block = Some(block);
                    return parsed;
                }
                Mode::Shadow => verdict.shadowed.push(block),
            }
        }
        // Attack detection reads the body's strings (the JSON parsed once, above).
        self.detect_body(verdict, req, body, parsed.as_ref());
        parsed
    }

    /// Judges a request with its whole body (empty: none), as the filter does over its
    /// callbacks. Pure: same policy and request, same result.
    pub fn decide_whole(&self, req: &Request<'_>, body: &[u8]) -> Whole {
        let req = (*req).with_body(!body.is_empty());
        let mut verdict = self.decide(&req);
        if let Some(hold) = self.body_hold(&verdict, &req).filter(|_| !body.is_empty()) {
            let refusal = if body.len() > hold.cap {
                Some(self.over_cap(verdict.route, hold.cap))
            } else {
                hold.scan.and_then(|mut scan| match scan.feed(body) {
                    Ok(()) => None,
                    Err(violation) => self.scan_refused(verdict.route, violation),
                })
            };
            self.judge_body(&mut verdict, &req, body, refusal);
        }
        let stateful = if verdict.allowed() {
            self.stateful_on(verdict.route)
        } else {
            Vec::new()
        };
        Whole { verdict, stateful }
    }

    /// The rule an over-cap body is charged to: a ban or limit keyed on a body field (the cap
    /// is theirs), else detection's protocol rule, else the first rule.
    pub fn body_rule(&self, route: Option<usize>) -> RuleId {
        let keyed = |k: &[KeyPart]| k.iter().any(|p| matches!(p, KeyPart::BodyField(_)));
        self.bans()
            .iter()
            .filter(|b| b.applies(route) && keyed(&b.key))
            .map(|b| b.rule)
            .chain(
                self.rate_limits()
                    .iter()
                    .filter(|l| l.cost_on(route).is_some() && keyed(&l.key))
                    .map(|l| l.rule),
            )
            .next()
            .or_else(|| {
                self.detection()
                    .and_then(|d| d.rules.get(crate::detect::Class::Protocol as usize))
                    .copied()
            })
            .unwrap_or(RuleId(0))
    }

    /// The rate limits, bans and enumeration rules that apply to `route`, in policy order.
    pub fn stateful_on(&self, route: Option<usize>) -> Vec<RuleId> {
        self.rate_limits()
            .iter()
            .filter(|l| l.cost_on(route).is_some())
            .map(|l| l.rule)
            .chain(
                self.bans()
                    .iter()
                    .filter(|b| b.applies(route))
                    .map(|b| b.rule),
            )
            .chain(
                self.enumerations()
                    .iter()
                    .filter(|e| e.applies(route))
                    .map(|e| e.rule),
            )
            .collect()
    }
}
