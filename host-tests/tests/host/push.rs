//! Pushing a new policy into a running process, as ECDS does: a new plugin configuration whose
//! VMs share the process's shared data and stats with the old one. State of unchanged rules
//! carries over, a changed rule starts fresh, a removed rule's table is freed, the generation
//! and version gauges follow, and a refused configuration leaves the running one in force.

use std::sync::Arc;

use host_tests::{Plugin, PluginOptions, PluginSpec, Process, Request};

use crate::common::{lines, tollgate};

/// A policy with three limited things: `steady` (a rate limit a push keeps), `tuned` (a rate
/// limit whose rate is `rate`), a ban and an enumeration rule. `extra` adds a rule or changes a
/// mode, as a push would.
fn policy(version: &str, rate: &str, steady_mode: &str, with_tuned: bool) -> String {
    let tuned = if with_tuned {
        format!(
            r#",{{"name":"tuned","key":[{{"header":"x-client"}}],"rate":"{rate}","burst":2,
                "routes":["b"],"max_keys":64}}"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"version":"{version}","edge":"t",
  "routes":[{{"name":"a","path":"/a","methods":["GET"]}},
            {{"name":"b","path":"/b","methods":["GET"]}},
            {{"name":"login","path":"/login","methods":["POST"]}},
            {{"name":"vin","path":"/vehicles/{{vin}}","methods":["GET"]}}],
  "rate_limits":[{{"name":"steady","key":[{{"header":"x-client"}}],"rate":"2/min","burst":2,
                   "routes":["a"],"max_keys":64,"mode":"{steady_mode}"}}{tuned}],
  "bans":[{{"name":"login","key":[{{"header":"x-client"}}],"routes":["login"],"statuses":[401],
            "threshold":2,"window":"10m","duration":"1h","max_keys":64}}],
  "enumeration":[{{"name":"sweep","key":[{{"header":"x-client"}}],"value":{{"path_param":"vin"}},
                   "routes":["vin"],"max_distinct":3,"window":"1h","max_keys":64}}]}}"#
    )
}

fn start(process: &Arc<Process>, config: &str) -> Result<Plugin, host_tests::Refusal> {
    Plugin::start_in(
        &tollgate(),
        PluginOptions::new(PluginSpec::new(config))
            .workers(2)
            .edge()
            .upstream(login_fails()),
        process.clone(),
    )
}

/// An upstream that refuses every login (401) and answers anything else.
fn login_fails() -> host_tests::Upstream {
    Arc::new(|f: &host_tests::Forwarded| {
        if f.header(":path") == Some("/login") {
            host_tests::Response::new(401, "")
        } else {
            host_tests::Response::new(200, "{}")
        }
    })
}

fn get(path: &str, client: &str) -> Request {
    Request::new("GET", path).header("x-client", client)
}

fn status(p: &mut Plugin, req: Request) -> u32 {
    p.send(req).status().unwrap_or(0)
}

fn vin(i: usize) -> String {
    format!("/vehicles/WVWZZZ1JZXW{i:06}")
}

#[test]
fn unchanged_rules_keep_their_state_and_changed_ones_start_fresh() {
    let process = Arc::new(Process::default());
    let mut old = start(&process, &policy("v1", "2/min", "enforce", true)).unwrap();
    // Use up `steady` and `tuned` for client c, ban client c on login, lock c past the sweep.
    for _ in 0..2 {
        assert_eq!(status(&mut old, get("/a", "c")), 200);
        assert_eq!(status(&mut old, get("/b", "c")), 200);
    }
    assert_eq!(status(&mut old, get("/a", "c")), 429);
    assert_eq!(status(&mut old, get("/b", "c")), 429);
    let login = || Request::new("POST", "/login").header("x-client", "c");
    for _ in 0..2 {
        assert_eq!(status(&mut old, login()), 401);
    }
    assert_eq!(status(&mut old, login()), 429, "banned before the push");
    for i in 0..4 {
        old.send(get(&vin(i), "c"));
    }
    assert_eq!(
        status(&mut old, get(&vin(0), "c")),
        429,
        "locked before the push"
    );

    // Push: `tuned` gets a new rate; `steady` does not change.
    let mut new = start(&process, &policy("v2", "3/min", "enforce", true)).unwrap();
    assert_eq!(
        status(&mut new, get("/a", "c")),
        429,
        "steady kept its state"
    );
    assert_eq!(status(&mut new, get("/b", "c")), 200, "tuned starts fresh");
    assert_eq!(status(&mut new, login()), 429, "the ban carried over");
    assert_eq!(
        status(&mut new, get(&vin(0), "c")),
        429,
        "the lock carried over"
    );
    assert_eq!(
        status(&mut new, get("/a", "d")),
        200,
        "other clients unaffected"
    );
    let logs = lines(&new.take_logs(), "tollgate: policy v2 accepted");
    assert!(
        logs.iter()
            .any(|l| l.contains("state reset (definition changed): rate_limit.tuned")),
        "{logs:?}"
    );
    assert!(
        logs.iter().all(|l| !l.contains("rate_limit.steady")),
        "{logs:?}"
    );

    // A mode change keeps the state too: shadow lets c through but still counts it over.
    let mut shadow = start(&process, &policy("v3", "3/min", "shadow", true)).unwrap();
    let ex = shadow.send(get("/a", "c"));
    assert_eq!(ex.status(), Some(200));
    assert_eq!(
        shadow.metric("tollgate.t.rule.rate_limit.steady.shadow_blocked"),
        Some(1)
    );
}

#[test]
fn generation_and_version_gauges_follow_every_accepted_configuration() {
    let process = Arc::new(Process::default());
    let mut p1 = start(&process, &policy("v1.0", "2/min", "enforce", true)).unwrap();
    let gauge = |p: &Plugin, name: &str| p.metric(&format!("tollgate.t.policy.{name}"));
    assert_eq!(gauge(&p1, "generation"), Some(1));
    assert_eq!(gauge(&p1, "version.v1_0"), Some(1));
    let logs = lines(&p1.take_logs(), "tollgate: policy");
    assert_eq!(
        logs.len(),
        4,
        "one line per VM (the canary, the main thread's, two workers'): {logs:?}"
    );
    assert!(logs[0].starts_with("tollgate: policy v1.0 accepted as generation 1 for edge t"));

    let mut p2 = start(&process, &policy("v2.0", "2/min", "enforce", true)).unwrap();
    assert_eq!(gauge(&p2, "generation"), Some(2));
    assert_eq!(gauge(&p2, "version.v2_0"), Some(1));
    assert_eq!(gauge(&p2, "version.v1_0"), Some(0));
    let logs = lines(&p2.take_logs(), "tollgate: policy");
    assert!(
        logs.iter().all(|l| l.contains("accepted as generation 2")),
        "both workers see the same generation: {logs:?}"
    );
    assert!(
        logs[0].contains("replacing v1.0 (generation 1)"),
        "{logs:?}"
    );

    // The same configuration again is the same generation.
    let again = start(&process, &policy("v2.0", "2/min", "enforce", true)).unwrap();
    assert_eq!(gauge(&again, "generation"), Some(2));

    // A refused configuration names every error and the policy that stays in force; the
    // running plugin goes on enforcing, and nothing changed.
    let broken = policy("v3.0", "2/min", "enforce", true).replace(r#""burst":2,"#, r#""burst":0,"#);
    let refusal = start(&process, &broken).unwrap_err();
    let msgs: Vec<_> = refusal.logs.iter().map(|l| l.message.clone()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("rate_limits[0].burst")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("refused with 4 error(s)")
            && m.contains("policy v2.0 (generation 2) stays in force")),
        "{msgs:?}"
    );
    assert_eq!(gauge(&p2, "generation"), Some(2));
    assert_eq!(status(&mut p2, get("/a", "e")), 200);
    assert_eq!(status(&mut p2, get("/a", "e")), 200);
    assert_eq!(status(&mut p2, get("/a", "e")), 429);
}

#[test]
fn removed_rules_are_freed_and_pushes_never_grow_shared_data() {
    let process = Arc::new(Process::default());
    let mut p = start(&process, &policy("v0", "2/min", "enforce", true)).unwrap();
    let vm_id = "tollgate";
    let size = process.shared_size(vm_id);
    let tuned_block = |p: &Plugin| p.shared_data("tg/t/rl/tuned/0").map(|(v, _)| v.len());
    assert!(tuned_block(&p).unwrap() > 0);

    let mut without = start(&process, &policy("v1", "2/min", "enforce", false)).unwrap();
    assert_eq!(
        tuned_block(&without),
        Some(0),
        "the removed rule's table is emptied"
    );
    let logs = lines(&without.take_logs(), "tollgate: policy v1 accepted");
    assert!(
        logs[0].contains("state freed (rule removed): rate_limit.tuned"),
        "{logs:?}"
    );
    // The old configuration still serves requests in flight during a push: its hits on the
    // removed rule follow the rule's failure mode (open) and must not bring the block back.
    for i in 0..20 {
        assert_eq!(status(&mut p, get("/b", &format!("c{i}"))), 200);
    }
    assert_eq!(
        tuned_block(&without),
        Some(0),
        "an old VM wrote a freed block back"
    );
    assert_eq!(
        p.metric("tollgate.t.rate_limit.tuned.failure_open"),
        Some(20)
    );

    // Many pushes, each a different definition of `tuned`: shared data keeps its size.
    for i in 0..40 {
        let p = start(
            &process,
            &policy(
                &format!("v{}", i + 2),
                &format!("{}/min", i + 1),
                "enforce",
                true,
            ),
        )
        .unwrap();
        drop(p);
    }
    let after = process.shared_size(vm_id);
    assert_eq!(after.0, size.0, "same number of keys");
    // The policy record keeps at most 8 recently replaced configurations, a line each.
    assert!(
        after.1 <= size.1 + 64 + 8 * 48,
        "bytes before {} after {}",
        size.1,
        after.1
    );
}

/// Pushes in quick succession reach Envoy's VMs in order but not at once: a worker can apply push
/// N-1 after another VM recorded push N. That late application keeps push N's generation and
/// gauges (this was a defect: each late VM advanced the generation again). A rollback made
/// later than a few seconds after the replacement is a new generation.
#[test]
fn a_late_vm_applying_a_replaced_configuration_does_not_advance_the_generation() {
    let process = Arc::new(Process::default());
    let gauge = |p: &Plugin, name: &str| p.metric(&format!("tollgate.t.policy.{name}"));
    let v1 = policy("v1.0", "2/min", "enforce", true);
    let v2 = policy("v2.0", "2/min", "enforce", true);
    let _p1 = start(&process, &v1).unwrap();
    let _p2 = start(&process, &v2).unwrap();
    let mut late = start(&process, &v1).unwrap();
    assert_eq!(gauge(&late, "generation"), Some(2));
    assert_eq!(gauge(&late, "version.v2_0"), Some(1));
    assert_eq!(gauge(&late, "version.v1_0"), Some(0));
    let logs = lines(&late.take_logs(), "tollgate: policy v1.0");
    assert!(
        logs.iter()
            .all(|l| l.contains("accepted as generation 1") && l.contains("late")),
        "{logs:?}"
    );
    let mut p2 = start(&process, &v2).unwrap();
    assert_eq!(gauge(&p2, "generation"), Some(2));

    // Six seconds on, going back to v1 is a rollback: a new generation.
    p2.advance(std::time::Duration::from_secs(6));
    let back = start(&process, &v1).unwrap();
    assert_eq!(gauge(&back, "generation"), Some(3));
    assert_eq!(gauge(&back, "version.v1_0"), Some(1));
    assert_eq!(gauge(&back, "version.v2_0"), Some(0));
}
