//! Enumeration rules of the real filter, in the host: one count across workers sending in
//! parallel, a client locked past its limit until the window ends, flags, and a table that never
//! grows.

use host_tests::{Plugin, PluginOptions, PluginSpec, Request, Worker};

use crate::common::tollgate;

const POLICY: &str = r#"{"version":"t1","edge":"t",
  "routes":[{"name":"vin","path":"/vehicles/{vin}","methods":["GET"]},
            {"name":"recalls","path":"/vehicles/{vin}/recalls","methods":["GET"]}],
  "enumeration":[
    {"name":"sweep","key":[{"header":"x-dealer-id"}],"value":{"path_param":"vin"},
     "routes":["vin"],"max_distinct":60,"window":"1h","max_keys":64},
    {"name":"recalls","key":[{"header":"x-dealer-id"}],"value":{"path_param":"vin"},
     "routes":["recalls"],"max_distinct":5,"window":"1h","action":"flag","max_keys":64}]}"#;

fn start(workers: usize) -> Plugin {
    Plugin::start(
        &tollgate(),
        PluginOptions::new(PluginSpec::new(POLICY))
            .workers(workers)
            .edge(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn lookup(path: &str, dealer: &str) -> Request {
    Request::new("GET", path).header("x-dealer-id", dealer)
}

#[test]
fn one_count_across_workers_sending_in_parallel() {
    let mut plugin = start(4);
    // Four workers at once, 40 distinct VINs each: 160 distinct values against a limit of 60.
    let admitted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = plugin
            .workers_mut()
            .iter_mut()
            .enumerate()
            .map(|(n, w): (usize, &mut Worker)| {
                s.spawn(move || {
                    (0..40)
                        .filter(|i| {
                            let path = format!("/vehicles/WVWZZZ1JZXW{:06}", n * 1000 + i);
                            w.send(lookup(&path, "D-1")).status() == Some(200)
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    // A linear-counting estimate (the seed is random per process): values that share a bit
    // count once, and the estimate corrects for that on average, so the cut-off wanders a little.
    assert!((56..=68).contains(&admitted), "{admitted} admitted");
    assert_eq!(
        plugin.metric("tollgate.t.enumeration.sweep.over"),
        Some(160 - admitted as i64)
    );
    // Past the limit the dealer is locked for the rest of the window: a VIN it looked up before
    // is refused too (the bitmap cannot tell it from a new VIN sharing its bit).
    assert_eq!(
        plugin
            .send(lookup("/vehicles/WVWZZZ1JZXW000000", "D-1"))
            .status(),
        Some(429)
    );
    plugin.advance(std::time::Duration::from_secs(3600));
    assert_eq!(
        plugin
            .send(lookup("/vehicles/WVWZZZ1JZXW000000", "D-1"))
            .status(),
        Some(200),
        "a new window"
    );
    // Another dealer counts on its own.
    assert_eq!(
        plugin
            .send(lookup("/vehicles/WVWZZZ1JZXW009999", "D-2"))
            .status(),
        Some(200)
    );
}

#[test]
fn flagged_requests_go_on_marked_and_the_table_never_grows() {
    let mut plugin = start(2);
    let mut flags = Vec::new();
    for i in 0..8 {
        let path = format!("/vehicles/WVWZZZ1JZXW{i:06}/recalls");
        let ex = plugin.send(lookup(&path, "D-3").header("x-tollgate-flag", "forged"));
        assert_eq!(ex.status(), Some(200), "{ex:?}");
        let f = ex.forwarded.unwrap();
        let flag = f
            .headers
            .iter()
            .find(|(k, _)| k.as_slice() == b"x-tollgate-flag")
            .map(|(_, v)| v.clone());
        flags.push(flag);
    }
    assert!(flags[..5].iter().all(Option::is_none), "{flags:?}");
    // From the first look-up past the limit on, every one is flagged.
    let first = flags.iter().position(Option::is_some).unwrap();
    assert!(
        flags[first..]
            .iter()
            .all(|f| f.as_deref() == Some(&b"enumeration.recalls"[..])),
        "{flags:?}"
    );
    // A flood of dealers: 64 slots in 4 blocks per rule, made at configuration, and the seed.
    let (keys_before, _) = plugin.process().shared_size("tollgate");
    for d in 0..2000 {
        let ex = plugin.send(lookup("/vehicles/WVWZZZ1JZXW000001", &format!("D-{d}")));
        // One look-up per dealer: each is allowed, and nothing traps.
        assert_eq!(ex.status(), Some(200), "dealer D-{d}");
    }
    assert!(plugin.traps().is_empty(), "{:?}", plugin.traps());
    let (keys, bytes) = plugin.process().shared_size("tollgate");
    assert_eq!(keys, keys_before);
    assert_eq!(
        keys,
        4 + 4 + 3,
        "two rules of 4 blocks, the seed, the table registry and the policy record"
    );
    // 144 bytes per slot, each key's name, and the registry's and record's lines.
    assert!(bytes <= 2 * 64 * 144 + 11 * 64 + 256, "{bytes} bytes");
}
