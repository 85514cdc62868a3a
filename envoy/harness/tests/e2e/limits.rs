//! Rate limits and bans through real Envoy with two workers.

use std::time::Duration;

use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::Request;
use harness::load::{wrk, Load};
use harness::wasm::ensure_wasm;

/// Retail's bootstrap with an inline policy, two workers.
fn edge_with(policy: &str) -> (Backend, Envoy) {
    harness::envoy::edge_with_policy("retail", policy, 2).unwrap()
}

const POLICY: &str = r#"{"version":"e2e-limits","edge":"retail","client_ip":{"trusted_hops":1},
  "routes":[{"name":"ping","path":"/v1/ping","methods":["GET"]},
            {"name":"login","path":"/v1/login","methods":["POST"]}],
  "rate_limits":[{"name":"ping","key":["client_ip"],"rate":"400/s","burst":40,"routes":["ping"]}],
  "bans":[{"name":"stuffing","key":["client_ip"],"routes":["login"],"statuses":[401],
           "threshold":5,"window":"1m","duration":"10m"}]}"#;

#[test]
fn a_limit_holds_within_two_percent_across_two_workers_under_concurrent_load() {
    let (backend, envoy) = edge_with(POLICY);
    let r = wrk(
        envoy.addr,
        &Load {
            path: "/v1/ping",
            headers: vec![("x-forwarded-for", "192.0.2.1".into())],
            threads: 2,
            connections: 16,
            duration: Duration::from_secs(4),
            script: None,
        },
    )
    .unwrap();
    let admitted = backend.served() as f64;
    let (first, last) = backend.window().unwrap();
    let expected = 40.0 + 400.0 * (last - first).as_secs_f64();
    let error = (admitted - expected).abs() / expected;
    eprintln!(
        "wrk: {} requests ({} refused), {:.0} rps; admitted {admitted}, expected {expected:.1}, error {:.2}%",
        r.requests,
        r.non_2xx,
        r.rps,
        error * 100.0
    );
    assert!(
        r.requests as f64 > 3.0 * expected,
        "not enough pressure: {r:?}"
    );
    assert!(error <= 0.02, "admitted {admitted}, expected {expected:.1}");
    let stat = |n: &str| {
        envoy
            .stat(&format!("wasmcustom.tollgate.retail.rate_limit.ping.{n}"))
            .unwrap()
            // A counter that does not exist is a failure, not a zero.
            .unwrap_or_else(|| panic!("no stat rate_limit.ping.{n}"))
    };
    // When wrk stops, requests still in flight (one per connection at most) were counted by
    // the filter but not answered: by the backend (admitted) or to wrk (refused).
    let allowed = stat("allowed") as f64;
    assert!(
        allowed >= admitted && allowed - admitted <= 16.0,
        "allowed {allowed}, backend served {admitted}"
    );
    let limited = stat("limited");
    assert!(
        limited >= r.non_2xx && limited - r.non_2xx <= 16,
        "limited {limited}, wrk saw {} refusals",
        r.non_2xx
    );
    assert_eq!(stat("failure_open"), 0);
}

#[test]
fn failed_logins_ban_the_address_on_both_workers() {
    let (backend, envoy) = edge_with(POLICY);
    let login = |status: &str| {
        Request::new("POST", "/v1/login")
            .header("x-forwarded-for", "192.0.2.66")
            .header("x-demo-status", status)
            .body("{}")
            .send(envoy.addr)
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(login("401").status, 401);
    }
    // Each request is its own connection; Envoy spreads them over both workers.
    for _ in 0..6 {
        let r = login("200");
        assert_eq!(r.status, 429, "{}", r.text());
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((570..=600).contains(&secs), "retry-after {secs}");
        assert_eq!(r.json().unwrap()["type"], "urn:tollgate:problem:banned");
    }
    assert_eq!(backend.served(), 5);
    let stat = |n: &str| {
        envoy
            .stat(&format!("wasmcustom.tollgate.retail.ban.stuffing.{n}"))
            .unwrap()
    };
    assert_eq!(stat("banned"), Some(1));
    assert_eq!(stat("refused"), Some(6));
    // Another address logs in.
    let r = Request::new("POST", "/v1/login")
        .header("x-forwarded-for", "192.0.2.67")
        .body("{}")
        .send(envoy.addr)
        .unwrap();
    assert_eq!(r.status, 200);
}

/// HS256 test tokens (issuer `https://id.retail.test`, audience `retail-api`, expiring in 2100),
/// signed with the key in `JWKS`; test fixtures, not secrets.
const ALICE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkLnJldGFpbC50ZXN0IiwiYXVkIjoicmV0YWlsLWFwaSIsInN1YiI6ImFsaWNlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.FtCU-GO2WCj_WT85PwjP8UakMsRkaW5zDso74C37poM";
const BOB: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkLnJldGFpbC50ZXN0IiwiYXVkIjoicmV0YWlsLWFwaSIsInN1YiI6ImJvYiIsImV4cCI6NDEwMjQ0NDgwMH0.vOJ0h_CnVrvnP0fCgsj0h1Tl5WevipB26CKq5zQ-h80";
const JWKS: &str = r#"{"keys":[{"kty":"oct","alg":"HS256","kid":"k1","k":"dG9sbGdhdGUtZTJlLXRlc3Qtc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbi11c2UtMzJi"}]}"#;

/// What a retail edge puts in front of Tollgate to key limits on verified token claims: a
/// header mutation that drops any `x-jwt-payload` a client sends, then `jwt_authn`, which
/// verifies the bearer token and forwards its payload in `x-jwt-payload`.
fn jwt_filters() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": "x-jwt-payload"}]}
            }
        }),
        serde_json::json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"retail-idp": {
                    "issuer": "https://id.retail.test",
                    "audiences": ["retail-api"],
                    "local_jwks": {"inline_string": JWKS},
                    "forward_payload_header": "x-jwt-payload"
                }},
                "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                    {"provider_name": "retail-idp"}, {"allow_missing": {}}
                ]}}}]
            }
        }),
    ]
}

#[test]
fn a_limit_keyed_on_a_verified_token_claim_through_jwt_authn() {
    let wasm = ensure_wasm().unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.concurrency = 2;
    o.filters_before = jwt_filters();
    o.plugin_config = PluginConfig::Text(
        r#"{"version":"e2e-jwt","edge":"retail","routes":[{"name":"book","path":"/v1/test-drives","methods":["POST"]}],
            "rate_limits":[{"name":"per-account","key":[{"claim":"sub","header":"x-jwt-payload"}],"rate":"1/h","burst":2}]}"#
            .into(),
    );
    let envoy = Envoy::start(&o).unwrap();
    let book = |token: Option<&str>, forged: Option<&str>| {
        let mut r = Request::new("POST", "/v1/test-drives").body("{}");
        if let Some(t) = token {
            r = r.header("authorization", &format!("Bearer {t}"));
        }
        if let Some(p) = forged {
            r = r.header("x-jwt-payload", p);
        }
        r.send(envoy.addr).unwrap()
    };
    assert_eq!(book(Some(ALICE), None).status, 200);
    assert_eq!(book(Some(ALICE), None).status, 200);
    let r = book(Some(ALICE), None);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json().unwrap()["rule"], "rate_limit.per-account");
    assert_eq!(
        book(Some(BOB), None).status,
        200,
        "bob has his own allowance"
    );
    // A client cannot pose as bob by writing the payload header itself: it is removed before
    // jwt_authn, so this request has no claim and the limit does not apply to it...
    let forged = "eyJzdWIiOiJib2IifQ"; // {"sub":"bob"}
    for _ in 0..3 {
        assert_eq!(book(None, Some(forged)).status, 200);
    }
    // ...and bob's allowance was not touched by those.
    assert_eq!(book(Some(BOB), None).status, 200);
    assert_eq!(book(Some(BOB), None).status, 429);
    // A token that fails verification never reaches Tollgate.
    let tampered = ALICE.replace("FtCU", "XtCU");
    assert_eq!(book(Some(&tampered), None).status, 401);
}

/// A CA, a server certificate for 127.0.0.1 and client certificates whose URI SANs name dealer
/// systems, made with openssl for this run.
fn certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tollgate-test-ca",
        ],
    ]
    .concat());
    let issue = |name: &str, san: &str| {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName={san}\n"),
        )
        .unwrap();
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    };
    issue("server", "IP:127.0.0.1");
    issue("d1", "URI:spiffe://dealers/d-1");
    issue("d2", "URI:spiffe://dealers/d-2");
    dir.to_path_buf()
}

#[test]
fn a_limit_keyed_on_the_mtls_peer_identity() {
    let dir = certificates(&harness::scratch_dir("mtls").unwrap());
    let file = |n: &str| dir.join(n).display().to_string();
    let wasm = ensure_wasm().unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut o = EdgeOptions::new("dealer", backend.addr, &wasm);
    o.concurrency = 2;
    o.transport_socket = Some(serde_json::json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": {
                "tls_certificates": [{"certificate_chain": {"filename": file("server.pem")},
                                      "private_key": {"filename": file("server.key")}}],
                "validation_context": {"trusted_ca": {"filename": file("ca.pem")}}
            }
        }
    }));
    o.plugin_config = PluginConfig::Text(
        r#"{"version":"e2e-mtls","edge":"dealer","routes":[{"name":"inventory","path":"/v1/inventory","methods":["GET"]}],
            "rate_limits":[{"name":"per-system","key":["peer_identity"],"rate":"1/h","burst":2}]}"#
            .into(),
    );
    let envoy = Envoy::start(&o).unwrap();
    let get = |client: Option<&str>| -> String {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["--cacert", &file("ca.pem")]);
        if let Some(c) = client {
            cmd.args([
                "--cert",
                &file(&format!("{c}.pem")),
                "--key",
                &file(&format!("{c}.key")),
            ]);
        }
        cmd.arg(format!(
            "https://127.0.0.1:{}/v1/inventory",
            envoy.addr.port()
        ));
        String::from_utf8_lossy(&cmd.output().expect("running curl").stdout).into_owned()
    };
    assert_eq!(get(Some("d1")), "200");
    assert_eq!(get(Some("d1")), "200");
    assert_eq!(get(Some("d1")), "429", "the third from dealer system d-1");
    assert_eq!(get(Some("d2")), "200", "d-2 is another identity");
    // Without a client certificate there is no connection at all.
    assert_eq!(get(None), "000");
    assert_eq!(backend.served(), 3);
}
