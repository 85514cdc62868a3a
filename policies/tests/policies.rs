//! The shipped policies, decided natively: what each edge lets through and refuses. The same
//! policies run in Envoy in `envoy/harness/tests/e2e`; these tests pin their intent cheaply.

// Tests may unwrap, index and panic (clippy.toml allows it inside #[test] functions only).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use tollgate_core::{BlockKind, Policy, Request};

fn load(json: &str) -> Policy {
    Policy::from_json(json).unwrap_or_else(|e| panic!("shipped policy is invalid: {e:?}"))
}

fn req(method: &str, path: &str, client: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_string(), method.as_bytes().to_vec()),
        (":path".to_string(), path.as_bytes().to_vec()),
        (":authority".to_string(), b"api.example.com".to_vec()),
        ("x-forwarded-for".to_string(), client.as_bytes().to_vec()),
    ];
    h.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    h
}

fn status(p: &Policy, h: &[(String, Vec<u8>)]) -> u16 {
    p.decide(&Request::from_headers(h, None))
        .block
        .map_or(200, |b| b.status())
}

#[test]
fn retail_routes_are_open_or_authenticated_as_intended() {
    let p = load(tollgate_policies::RETAIL);
    assert_eq!(p.edge(), "retail");
    let c = "192.0.2.10";
    let auth = [("authorization", "Bearer t")];
    for (method, path) in [
        ("GET", "/v1/configurator/models"),
        ("HEAD", "/v1/configurator/models/e-sport"),
        ("POST", "/v1/configurator/quotes"),
        ("GET", "/v1/dealers"),
        ("GET", "/v1/test-drives/slots"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/token"),
        ("POST", "/v1/auth/password-reset"),
    ] {
        assert_eq!(
            status(&p, &req(method, path, c, &[])),
            200,
            "{method} {path} is public"
        );
    }
    for (method, path) in [
        ("POST", "/v1/test-drives"),
        (
            "GET",
            "/v1/test-drives/123e4567-e89b-12d3-a456-426614174000",
        ),
        (
            "DELETE",
            "/v1/test-drives/123e4567-e89b-12d3-a456-426614174000",
        ),
        ("GET", "/v1/accounts/me"),
        ("PATCH", "/v1/accounts/me"),
        ("GET", "/v1/accounts/me/orders"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders/12345"),
        ("POST", "/v1/orders/12345/cancel"),
    ] {
        // Refused for the missing credential, not for some other 400.
        let kind = p
            .decide(&Request::from_headers(&req(method, path, c, &[]), None))
            .block
            .map(|b| b.kind);
        assert!(
            matches!(&kind, Some(BlockKind::MissingHeader { any_of })
                if any_of.iter().any(|h| h == "authorization")),
            "{method} {path} needs a login: {kind:?}"
        );
        assert_eq!(
            status(&p, &req(method, path, c, &auth)),
            200,
            "{method} {path}"
        );
    }
    // Nothing else is reachable.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/actuator/health"),
        ("GET", "/v1/accounts"),
        ("GET", "/v2/configurator/models"),
    ] {
        assert_eq!(
            status(&p, &req(method, path, c, &auth)),
            404,
            "{method} {path}"
        );
    }
    assert_eq!(status(&p, &req("DELETE", "/v1/accounts/me", c, &auth)), 405);
    assert_eq!(
        status(&p, &req("GET", "/v1/orders", c, &auth)),
        405,
        "orders are listed per account"
    );
}

#[test]
fn retail_ip_lists_block_abuse_and_shadow_the_watchlist() {
    let p = load(tollgate_policies::RETAIL);
    let h = req("POST", "/v1/auth/login", "2001:db8:bad::1", &[]);
    assert_eq!(status(&p, &h), 403);
    let h = req("POST", "/v1/auth/login", "198.51.100.99", &[]);
    let v = p.decide(&Request::from_headers(&h, None));
    assert!(v.allowed());
    assert_eq!(v.shadowed.len(), 1);
    assert_eq!(v.shadowed[0].kind, BlockKind::ClientDenied);
}

#[test]
fn dealer_routes_need_network_id_and_credential() {
    let p = load(tollgate_policies::DEALER);
    assert_eq!(p.edge(), "dealer");
    let creds = [("x-dealer-id", "D-1001"), ("x-api-key", "k")];
    let paths = [
        ("GET", "/v1/inventory"),
        ("GET", "/v1/inventory/S-1"),
        ("GET", "/v1/vehicles/WVWZZZ1JZXW000001"),
        ("GET", "/v1/vehicles/WVWZZZ1JZXW000001/recalls"),
        ("GET", "/v1/orders"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders/12345"),
        ("PATCH", "/v1/orders/12345"),
        ("GET", "/v1/warranty-claims"),
        ("POST", "/v1/warranty-claims"),
        (
            "GET",
            "/v1/warranty-claims/123e4567-e89b-12d3-a456-426614174000",
        ),
        (
            "POST",
            "/v1/warranty-claims/123e4567-e89b-12d3-a456-426614174000/documents",
        ),
    ];
    for (method, path) in paths {
        assert_eq!(
            status(&p, &req(method, path, "192.0.2.10", &creds)),
            200,
            "{method} {path}"
        );
        assert_eq!(
            status(&p, &req(method, path, "192.0.2.10", &creds[..1])),
            400,
            "{method} {path}"
        );
        assert_eq!(
            status(&p, &req(method, path, "192.0.2.10", &creds[1..])),
            400,
            "{method} {path}"
        );
        assert_eq!(
            status(&p, &req(method, path, "198.18.0.1", &creds)),
            403,
            "{method} {path}"
        );
        assert_eq!(
            status(&p, &req(method, path, "192.0.2.250", &creds)),
            403,
            "{method} {path}"
        );
    }
    assert_eq!(
        status(&p, &req("DELETE", "/v1/orders/12345", "192.0.2.10", &creds)),
        405
    );
    assert_eq!(
        status(&p, &req("GET", "/v1/customers", "192.0.2.10", &creds)),
        404
    );
}

#[test]
fn ids_of_the_wrong_shape_are_refused_by_validation() {
    let retail = load(tollgate_policies::RETAIL);
    let auth = [("authorization", "Bearer t")];
    for path in [
        "/v1/test-drives/b-1",
        "/v1/orders/o-1",
        "/v1/orders/1%27%20OR%201=1",
    ] {
        let h = req("GET", path, "192.0.2.10", &auth);
        let v = retail.decide(&Request::from_headers(&h, None));
        let block = v.block.unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(block.status(), 400, "{path}");
        assert!(matches!(block.kind, BlockKind::Invalid(_)), "{path}");
    }
    let dealer = load(tollgate_policies::DEALER);
    let h = req(
        "GET",
        "/v1/inventory",
        "192.0.2.10",
        &[("x-dealer-id", "D-1"), ("x-api-key", "k")],
    );
    assert_eq!(
        status(&dealer, &h),
        400,
        "a dealer id is D- and four digits"
    );
}
