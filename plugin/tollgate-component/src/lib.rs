//! Tollgate's policy engine as a WebAssembly component: the world `engine` of `wit/tollgate.wit`
//! (package `tollgate:policy@0.1.0`), exporting `tollgate:policy/api@0.1.0`. Built by
//! `cargo xtask component` for `wasm32-unknown-unknown` and encoded as a component with no
//! imports. Everything it decides, the core decides; this crate only converts.

use std::cell::RefCell;

use tollgate_core::yamlpos::Positions;
use tollgate_core::{parse_socket_address, sanitize_request_id, Policy, Request, Whole};

use bindings::exports::tollgate::policy::api::{
    self, Guest, GuestPolicy, PolicyError, Request as WitRequest, Verdict,
};

/// wit-bindgen's glue: the generated exports are `unsafe` by nature (they lift and lower values
/// in linear memory), so this one module allows what the workspace denies.
#[allow(unsafe_code, clippy::all, missing_debug_implementations)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "engine",
    });

    use super::Engine;
    export!(Engine with_types_in self);
}

/// The component.
#[derive(Debug)]
struct Engine;

/// A loaded policy, as the `policy` resource.
#[derive(Debug)]
struct Loaded {
    policy: Policy,
    /// The last request's headers, kept to build the next one without a new allocation.
    scratch: RefCell<Vec<(String, Vec<u8>)>>,
}

impl Guest for Engine {
    type Policy = Loaded;

    fn check(document: String) -> Result<(), Vec<PolicyError>> {
        compile(&document).map(|_| ())
    }
}

impl GuestPolicy for Loaded {
    fn load(document: String) -> Result<api::Policy, Vec<PolicyError>> {
        compile(&document).map(|policy| {
            api::Policy::new(Loaded {
                policy,
                scratch: RefCell::new(Vec::new()),
            })
        })
    }

    fn decide(&self, req: WitRequest) -> Verdict {
        let mut headers = self.scratch.borrow_mut();
        headers.clear();
        headers.push((":method".into(), req.method.into_bytes()));
        headers.push((":path".into(), req.path.into_bytes()));
        headers.push((":authority".into(), req.authority.into_bytes()));
        headers.extend(
            req.headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v)),
        );
        let source = req.source.as_deref().and_then(parse_socket_address);
        let request = Request::from_headers(&headers, source);
        let body = req.body.unwrap_or_default();
        let Whole { verdict, stateful } = self.policy.decide_whole(&request, &body);
        let p = &self.policy;
        let names = |r| p.rule_name(r).to_owned();
        let mut shadowed: Vec<String> = verdict.shadowed.iter().map(|b| names(b.rule)).collect();
        shadowed.extend(stateful.into_iter().map(|r| format!("state:{}", names(r))));
        let route = verdict
            .route
            .and_then(|r| p.route_names().nth(r))
            .map(str::to_owned);
        match &verdict.block {
            None => Verdict {
                allowed: true,
                status: 200,
                route,
                rule: None,
                problem: None,
                shadowed,
            },
            Some(block) => {
                let id = request.request_id().and_then(sanitize_request_id);
                Verdict {
                    allowed: false,
                    status: block.status(),
                    route,
                    rule: Some(names(block.rule)),
                    problem: Some(p.problem(block, id).to_json()),
                    shadowed,
                }
            }
        }
    }

    fn version(&self) -> String {
        self.policy.version().to_owned()
    }
}

/// Reads a policy document (YAML, which JSON is too) and compiles it, or gives every error with
/// its line.
fn compile(document: &str) -> Result<Policy, Vec<PolicyError>> {
    let value: serde_json::Value = serde_saphyr::from_str(document).map_err(|e| {
        vec![PolicyError {
            path: String::new(),
            line: None,
            message: format!("not valid YAML or JSON: {e}"),
        }]
    })?;
    Policy::from_json(&value.to_string()).map_err(|errors| {
        let pos = Positions::parse(document);
        errors
            .iter()
            .map(|e| PolicyError {
                path: e.path.clone(),
                line: pos
                    .as_ref()
                    .map(|p| p.line(&e.path))
                    .and_then(|l| u32::try_from(l).ok()),
                message: e.message.clone(),
            })
            .collect()
    })
}
