//! Several workers of one plugin, each its own VM, sharing the process as in Envoy.

use host_tests::{Request, Worker};

use crate::common::{edge, probe_with, report, scenario};

#[test]
fn shared_data_cas_holds_across_workers_running_in_parallel() {
    let mut p = probe_with("", |o| o.workers(2));
    const EACH: usize = 300;
    // The key exists before the race: a write to a missing key cannot be a compare-and-swap
    // (the ABI creates it whatever the CAS), so two workers creating it at once could both win.
    report(&p.send(scenario("incr")));
    let retries: usize = {
        let (a, b) = p.workers_mut().split_at_mut(1);
        let run = |w: &mut Worker| {
            (0..EACH)
                .map(|_| {
                    report(&w.send(scenario("incr")))["retries"]
                        .parse::<usize>()
                        .unwrap()
                })
                .sum::<usize>()
        };
        std::thread::scope(|s| {
            let ta = s.spawn(|| run(&mut a[0]));
            let tb = s.spawn(|| run(&mut b[0]));
            ta.join().unwrap() + tb.join().unwrap()
        })
    };
    let (value, _) = p.shared_data("n").unwrap();
    assert_eq!(
        String::from_utf8(value).unwrap(),
        (2 * EACH + 1).to_string(),
        "no increment lost ({retries} CAS retries)"
    );
}

#[test]
fn metrics_are_summed_over_workers_as_in_envoys_stats() {
    let mut p = edge("retail", 3);
    for i in 0..9 {
        let ex = p.send(
            Request::new("GET", "/v1/configurator/models").header("x-forwarded-for", "192.0.2.10"),
        );
        assert_eq!(ex.status(), Some(200));
        assert_eq!(ex.worker, i % 3, "round robin");
    }
    assert_eq!(p.metric("tollgate.retail.requests.allowed"), Some(9));
}
