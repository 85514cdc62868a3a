//! Each area of the ABI, through the probe guest, checked against what Envoy returns.

use host_tests::{Request, PROVIDED};

use crate::common::{lines, probe, report, scenario};

#[test]
fn the_host_provides_every_import_of_the_rust_sdk_and_envoys_wasi_subset() {
    // The SDK 0.2.5 imports 37 proxy_* functions; Envoy adds two more the SDK does not use.
    let proxy = PROVIDED.iter().filter(|(m, _)| *m == "env").count();
    let wasi = PROVIDED
        .iter()
        .filter(|(m, _)| *m == "wasi_snapshot_preview1")
        .count();
    assert_eq!(proxy, 39);
    let env: Vec<&str> = PROVIDED
        .iter()
        .filter(|(m, _)| *m == "env")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(
        env,
        harness::wasm::ENVOY_PROXY,
        "the host provides what Envoy does"
    );
    assert_eq!(wasi, harness::wasm::ENVOY_WASI.len());
    for name in harness::wasm::ENVOY_WASI {
        assert!(
            PROVIDED.contains(&("wasi_snapshot_preview1", name)),
            "{name}"
        );
    }
    // The real filter and the probe load: everything they import is provided.
    let filter = harness::wasm::imports(&harness::wasm::ensure_wasm().unwrap()).unwrap();
    for (m, n) in &filter {
        assert!(PROVIDED.contains(&(m.as_str(), n.as_str())), "{m}.{n}");
    }
}

#[test]
fn header_maps_behave_as_in_envoy() {
    let mut p = probe();
    let r = report(&p.send(scenario("headers")));
    assert_eq!(r["get_missing"], "1:true", "NotFound for a missing header");
    assert_eq!(r["add1"], "0");
    assert_eq!(r["get_first"], "0:1", "the first of repeated values");
    assert_eq!(r["replace"], "0:3", "replace leaves one value");
    assert_eq!(r["remove"], "0:0", "removing an absent key is Ok");
    assert_eq!(
        r["pseudo"],
        ":authority=edge.test,:path=/probe,:method=GET,:scheme=http"
    );
    assert_eq!(r["size"], "0:true", "size is the bytes of keys and values");
    assert_eq!(
        r["response_pairs_now"], "0:true",
        "an unavailable map reads as empty"
    );
    assert_eq!(
        r["response_value_now"], "2",
        "BadArgument for an unavailable map"
    );
    assert_eq!(r["bad_type"], "2");
    assert_eq!(r["callout_map_now"], "2");
    assert_eq!(r["set_pairs"], "0:4");
}

#[test]
fn a_forwarded_request_carries_the_plugins_changes() {
    let mut p = probe();
    let ex = p.send(
        scenario("forward")
            .header("x-drop", "secret")
            .header("x-keep", "1"),
    );
    assert_eq!(ex.status(), Some(200));
    let f = ex.forwarded.as_ref().unwrap();
    assert_eq!(f.header("x-probe-added"), Some("yes"));
    assert_eq!(f.header("x-drop"), None);
    assert_eq!(f.header("x-keep"), Some("1"));
    // The response went through the plugin's response callback, which added a header.
    let resp = ex.response.as_ref().unwrap();
    assert_eq!(resp.header("x-probe-response"), Some("seen"));
    assert_eq!(ex.details, "via_upstream");
}

#[test]
fn properties_are_encoded_as_envoy_encodes_them() {
    let mut p = probe();
    let src = std::net::SocketAddr::from(([198, 51, 100, 4], 51234));
    let r = report(
        &p.send(
            scenario("properties")
                .source(src)
                .header("x-request-id", "rid-1"),
        ),
    );
    assert_eq!(r["source.address"], "0:198.51.100.4:51234");
    assert_eq!(
        r["source.port"], "0:51234",
        "integers are 8-byte little-endian"
    );
    assert_eq!(r["request.path"], "0:/probe");
    assert_eq!(r["request.method"], "0:GET");
    assert_eq!(r["request.id"], "0:rid-1");
    assert_eq!(r["plugin_name"], "0:tollgate");
    assert_eq!(r["plugin_vm_id"], "0:tollgate");
    assert_eq!(
        r["request.time"],
        format!("0:{}", host_tests::EPOCH_NANOS),
        "timestamps are nanoseconds on the virtual clock"
    );
    assert_eq!(r["missing"], "1");
    assert_eq!(r["set_property"], "0:0:probe");
}

#[test]
fn shared_data_has_envoys_cas_semantics() {
    let mut p = probe();
    let r = report(&p.send(scenario("shared")));
    assert_eq!(r["get_missing"], "1");
    assert_eq!(r["set"], "0");
    assert_eq!(r["get"], "0:v1");
    assert_eq!(r["cas_nonzero"], "true");
    assert_eq!(r["cas_ok"], "0");
    assert_eq!(r["stale"], "8", "CasMismatch");
    assert_eq!(r["now"], "v2");
    assert_eq!(r["cas_changed"], "true");
    assert_eq!(
        r["missing_key_with_cas"], "0",
        "a missing key is created whatever the CAS"
    );
    assert_eq!(r["empty"], "0:0:true");
    assert_eq!(p.shared_data("probe/k").unwrap().0, b"v2");
}

#[test]
fn shared_queues_notify_the_registering_root_context() {
    let mut p = probe();
    let ex = p.send(scenario("queue"));
    let r = report(&ex);
    assert_eq!(r["register"], "0");
    assert_eq!(r["same"], "true", "registering again gives the same queue");
    assert_eq!(r["resolve"], "0:true");
    assert_eq!(r["resolve_missing"], "1");
    assert_eq!(r["dequeue_empty"], "7", "Empty");
    assert_eq!(r["enqueue"], "0");
    assert_eq!(r["enqueue_unknown"], "1");
    // The notification reaches the root context (id 1) after the callback, as a posted task.
    let logs = p.take_logs();
    let ready = lines(&logs, "cb queue_ready");
    assert_eq!(ready.len(), 1, "{logs:?}");
    assert!(ready[0].starts_with("cb queue_ready 1 "), "{}", ready[0]);
    assert!(ready[0].ends_with("status=0 item=one"), "{}", ready[0]);
}

#[test]
fn metrics_follow_envoys_rules() {
    let mut p = probe();
    let r = report(&p.send(scenario("metrics")));
    assert_eq!(r["define"], "0");
    assert_eq!(r["kinds"], "012", "the kind in the id's low bits");
    assert_eq!(r["step4"], "true");
    assert_eq!(r["redefine_new_id"], "true");
    assert_eq!(r["bad_type"], "2");
    assert_eq!(r["counter_inc0"], "2", "a counter only goes up");
    assert_eq!(r["inc_neg"], "2");
    assert_eq!(r["inc5"], "0");
    assert_eq!(r["record"], "0");
    assert_eq!(
        r["value"], "7",
        "record on a counter adds; both ids are one stat"
    );
    assert_eq!(r["gauge"], "7");
    assert_eq!(r["hist_record"], "0");
    assert_eq!(r["hist_inc"], "2");
    assert_eq!(r["hist_get"], "2");
    assert_eq!(r["unknown_get"], "1");
    assert_eq!(p.metric("probe.c"), Some(7));
    let h = p.process().metric("probe.h").unwrap();
    assert_eq!(h.samples, vec![42]);
}

#[test]
fn buffers_are_visible_only_where_envoy_shows_them() {
    let mut p = probe();
    let r = report(&p.send(scenario("buffers")));
    assert_eq!(
        r["request_body_in_headers"], "0:true",
        "an empty body, not NotFound"
    );
    assert_eq!(
        r["plugin_config_now"], "1",
        "the configuration only in on_configure"
    );
    assert_eq!(r["vm_config"], "0:vm-config");
    assert_eq!(r["callout_body_now"], "1");
    assert_eq!(r["bad_type"], "2");
    assert_eq!(
        r["overflow"], "0",
        "start + size is added in 64 bits: no overflow"
    );
    assert_eq!(r["set_body_in_headers"], "2");
    assert_eq!(r["status"], "0:9:0");
}

#[test]
fn paused_body_chunks_are_buffered_and_the_plugin_can_rewrite_them() {
    let mut p = probe();
    let ex = p.send(
        Request::new("POST", "/probe")
            .header("x-probe", "body")
            .chunks(vec![b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()]),
    );
    assert_eq!(ex.status(), Some(200), "{ex:?}");
    let seen = lines(&ex.logs, "body status=");
    assert_eq!(
        seen,
        vec![
            "body status=0 seen=ab",
            "body status=0 seen=abcd",
            "body status=0 seen=abcdef",
            "body status=0 seen=abcdef"
        ],
        "each body callback sees the whole buffer; the end comes in a call of its own (HTTP/1.1)"
    );
    assert_eq!(
        lines(&ex.logs, "headers during body"),
        vec!["headers during body status=2"],
        "request headers are gone once the headers callback continued"
    );
    assert_eq!(lines(&ex.logs, "replace="), vec!["replace=0 mid=2"]);
    assert_eq!(ex.forwarded.as_ref().unwrap().body, b"[abcdef]");
}

#[test]
fn a_local_response_ends_the_request_and_passes_the_response_callbacks() {
    let mut p = probe();
    let ex = p.send(scenario("local"));
    let resp = ex.response.as_ref().unwrap();
    assert_eq!(resp.status, 418);
    assert_eq!(resp.body, b"short and stout");
    assert_eq!(resp.header("x-probe"), Some("teapot"));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.header("x-probe-response"), Some("seen"));
    assert_eq!(
        ex.details, "probe_said_no",
        "whitespace in details becomes _"
    );
    assert!(ex.forwarded.is_none());
    assert_eq!(lines(&ex.logs, "local="), vec!["local=0 again=0"]);
}

#[test]
fn the_lifecycle_runs_in_envoys_order() {
    let mut p = probe();
    let ex = p.send(scenario("forward").body("xy").trailer("x-t", "1"));
    let order: Vec<String> = lines(&ex.logs, "cb ")
        .into_iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        [
            "context_create",
            "request_headers",
            "request_body",
            "request_trailers",
            "response_headers",
            "response_body",
            "response_body",
            "log",
            "done",
            "delete"
        ]
    );
    // In on_log the maps are read-only copies.
    let log = lines(&ex.logs, "cb log").pop().unwrap();
    assert!(log.ends_with("path=0:/probe status=0:200 add=2"), "{log}");
}

#[test]
fn misc_calls_answer_as_envoy_does() {
    let mut p = probe();
    let r = report(&p.send(scenario("misc")));
    assert_eq!(r["log_level"], "0:0");
    assert_eq!(r["time"], format!("0:{}", host_tests::EPOCH_NANOS));
    assert_eq!(r["wasi_clock_agrees"], "true");
    assert_eq!(r["effective_unknown"], "2");
    assert_eq!(r["continue_upstream"], "12", "Unimplemented");
    assert_eq!(r["continue_bad"], "2");
    assert_eq!(r["foreign_unknown"], "1");
    assert_eq!(r["clear_route_cache"], "0");
    assert_eq!(r["done_now"], "1", "proxy_done outside a pending shutdown");
    assert_eq!(r["log_bad_level"], "2");
    assert_eq!(
        r["hashmap_ok"], "true",
        "std's HashMap seeds from random_get"
    );
}

#[test]
fn stdout_and_stderr_go_to_the_log_at_info_and_error() {
    let mut p = probe();
    let logs = p.take_logs();
    let out = logs.iter().find(|l| l.message == "probe stdout").unwrap();
    let err = logs.iter().find(|l| l.message == "probe stderr").unwrap();
    assert_eq!(out.level, host_tests::level::INFO);
    assert_eq!(err.level, host_tests::level::ERROR);
    // The canary, the main thread's VM and the worker's.
    assert!(
        lines(&logs, "cb configure 1 status=0").len() == 3,
        "{logs:?}"
    );
}
