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
