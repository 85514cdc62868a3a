//! The real filter in the host.

use host_tests::Request;

use crate::common::edge;

#[test]
fn retail_allows_and_refuses() {
    let mut p = edge("retail", 1);
    let ok = p.send(
        Request::new("GET", "/v1/configurator/models").header("x-forwarded-for", "192.0.2.10"),
    );
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert!(ok.forwarded.is_some());
    let no = p.send(Request::new("GET", "/internal/admin").header("x-forwarded-for", "192.0.2.10"));
    assert_eq!(no.status(), Some(404), "{no:?}");
    assert!(no.forwarded.is_none());
    let body = no.response.as_ref().unwrap().json().unwrap();
    assert_eq!(body["rule"], "routing");
    assert_eq!(p.metric("tollgate.retail.requests.allowed"), Some(1));
    assert_eq!(p.metric("tollgate.retail.requests.blocked"), Some(1));
}

/// A small deterministic generator, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn hostile_requests_never_trap_the_filter_and_always_get_an_answer() {
    let mut p = edge("retail", 2);
    let mut rng = Rng(0x7011_6a7e);
    let paths = [
        "/v1/configurator/models",
        "/v1/orders/..%2f..",
        "/v1/accounts/me?x=%00",
        "//v1//orders",
        "/\u{ff}\u{fe}",
        "*",
        "",
        "/v1/orders/42;..",
    ];
    let methods = ["GET", "POST", "PATCH", "DELETE", "BREW", "", "G\u{0}T"];
    for i in 0..3000 {
        let mut r = Request::new(rng.pick(&methods), rng.pick(&paths));
        let n = (rng.next() % 6) as usize;
        for _ in 0..n {
            let name = rng.pick(&[
                "x-forwarded-for",
                "authorization",
                "x-request-id",
                "x-client-version",
                "x-tollgate-refused",
                "content-type",
            ]);
            let len = (rng.next() % 300) as usize;
            r = r.header(name, rng.bytes(len));
        }
        if rng.next().is_multiple_of(3) {
            r = r.header("x-forwarded-for", "192.0.2.10");
        }
        if rng.next().is_multiple_of(4) {
            let len = (rng.next() % 2000) as usize;
            r = r.body(rng.bytes(len));
        }
        let ex = p.send(r);
        assert!(ex.trap.is_none(), "request {i} trapped: {:?}", ex.trap);
        let resp = ex
            .response
            .as_ref()
            .unwrap_or_else(|| panic!("request {i}: no answer"));
        assert!(
            resp.status == 200 || (400..500).contains(&resp.status),
            "request {i}: {}",
            resp.status
        );
        if resp.status != 200 {
            let body = resp.json().expect("a problem document");
            assert!(body["request_id"].is_string(), "request {i}: {body}");
        }
    }
    assert!(p.traps().is_empty());
    let total = p
        .metric("tollgate.retail.requests.allowed")
        .expect("allowed counter")
        + p.metric("tollgate.retail.requests.blocked")
            .expect("blocked counter");
    assert_eq!(total, 3000, "every request counted once");
}
