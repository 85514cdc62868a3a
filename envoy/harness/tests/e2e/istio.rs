//! Shipping to Istio: the gateways' `WasmPlugin` manifests (generated from the policies, valid
//! fields, and a `pluginConfig` that real Envoy accepts and enforces as istiod delivers it), and
//! the `.wasm` as an OCI image layout (reproducible, every digest and size right, checked once
//! by our own reader and once by Python's `tarfile`, `gzip` and `hashlib`).

use std::process::Command;

use harness::envoy::PluginConfig;
use harness::http::Request;
use harness::wasm::ensure_wasm;
use harness::{istio, oci, scratch_dir, workspace_root};
use serde_json::Value;

use crate::common::stack;

fn yaml(path: &std::path::Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn wasm_plugin_manifests_are_generated_from_the_policies_and_well_formed() {
    for edge in istio::edges() {
        let path = istio::manifest_path(edge);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            istio::manifest(edge).unwrap(),
            "{} is stale: run `cargo xtask manifests`",
            path.display()
        );
        let m = yaml(&path);
        assert_eq!(m["apiVersion"], "extensions.istio.io/v1alpha1");
        assert_eq!(m["kind"], "WasmPlugin");
        let spec = &m["spec"];
        assert!(spec["url"].as_str().unwrap().starts_with("oci://"));
        assert!(["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"]
            .contains(&spec["phase"].as_str().unwrap()));
        assert!(spec["priority"].is_i64());
        assert!(["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"]
            .contains(&spec["failStrategy"].as_str().unwrap()));
        assert_ne!(
            spec["failStrategy"], "FAIL_OPEN",
            "a guard must not fail open"
        );
        for sel in spec["match"].as_array().unwrap() {
            assert!(
                ["CLIENT", "SERVER", "CLIENT_AND_SERVER"].contains(&sel["mode"].as_str().unwrap())
            );
        }
        assert_eq!(spec["targetRefs"][0]["kind"], "Gateway");
        // The root id the filter registers under, as in the ECDS resource Envoy runs.
        let ecds = yaml(&workspace_root().join(format!("envoy/ecds/{edge}/tollgate.yaml")));
        assert_eq!(
            spec["pluginName"],
            ecds["resources"][0]["typed_config"]["config"]["root_id"]
        );
        let policy = yaml(&workspace_root().join(format!("policies/{edge}.yaml")));
        assert_eq!(
            spec["pluginConfig"], policy,
            "{edge}: pluginConfig is not the policy"
        );
    }
}

#[test]
fn a_plugin_config_runs_in_envoy_as_istiod_delivers_it() {
    for edge in istio::edges() {
        // What a deployment applies: the committed manifest with the machine's CRS imported,
        // small enough for the Kubernetes API server (objects up to about 1.5 MiB).
        let m = istio::resolved_manifest(edge).unwrap();
        let size = m.to_string().len();
        assert!(
            size < 1_400_000,
            "{edge}: the resolved WasmPlugin is {size} bytes"
        );
        // istiod turns pluginConfig into JSON in a google.protobuf.StringValue.
        let json = m["spec"]["pluginConfig"].to_string();
        let s = stack(edge, PluginConfig::Text(json));
        let version = m["spec"]["pluginConfig"]["version"].as_str().unwrap();
        assert!(
            s.envoy
                .log()
                .contains(&format!("tollgate: policy {version} accepted")),
            "{}",
            s.envoy.log()
        );
        // It accepts: a request the policy allows reaches the backend.
        let allowed = match edge {
            "retail" => Request::new("GET", "/v1/configurator/models?market=de")
                .header("x-forwarded-for", "192.0.2.10")
                .header(
                    "user-agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                ),
            _ => Request::new("GET", "/v1/vehicles/WVWZZZ1JZXW000001")
                .header("x-forwarded-for", "192.0.2.10")
                .header("x-dealer-id", "D-1001")
                .header("authorization", "Bearer dealer-token"),
        };
        let served = s.backend.served();
        let r = s.send(allowed);
        assert_eq!(r.status, 200, "{edge}: {}", r.text());
        assert_eq!(r.header("x-demo-backend"), Some("1"), "{edge}");
        assert_eq!(s.backend.served(), served + 1);
        // And it enforces: an unknown route is refused by the routing rule, before the backend.
        let mut unknown =
            Request::new("GET", "/v1/nowhere").header("x-forwarded-for", "192.0.2.10");
        if edge == "dealer" {
            unknown = unknown
                .header("x-dealer-id", "D-1001")
                .header("authorization", "Bearer dealer-token");
        }
        let r = s.send(unknown);
        assert_eq!(r.status, 404, "{edge}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json().unwrap()["rule"], "routing", "{edge}");
        assert_eq!(r.header("x-demo-backend"), None);
        assert_eq!(
            s.backend.served(),
            served + 1,
            "{edge}: refused, yet served"
        );
    }
}

/// Checks a layout with Python's standard library only: another reader of tar, gzip and JSON.
const PY_CHECK: &str = r#"
import gzip, hashlib, io, json, os, sys, tarfile
d, tag, wasm = sys.argv[1], sys.argv[2], sys.argv[3]
def blob(desc):
    algo, hexd = desc["digest"].split(":")
    data = open(os.path.join(d, "blobs", algo, hexd), "rb").read()
    assert algo == "sha256" and hashlib.sha256(data).hexdigest() == hexd, desc
    assert len(data) == desc["size"], desc
    return data
assert json.load(open(os.path.join(d, "oci-layout")))["imageLayoutVersion"] == "1.0.0"
index = json.load(open(os.path.join(d, "index.json")))
[entry] = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
manifest = json.loads(blob(entry))
config = json.loads(blob(manifest["config"]))
[layer] = manifest["layers"]
tar_bytes = gzip.decompress(blob(layer))
assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]
with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
    member = t.getmember("plugin.wasm")
    assert member.isfile()
    data = t.extractfile(member).read()
assert data == open(wasm, "rb").read()
print("ok", entry["digest"])
"#;

#[test]
fn the_oci_image_layout_is_valid_and_reproducible() {
    let wasm = ensure_wasm().unwrap();
    let (a, b) = (scratch_dir("oci").unwrap(), scratch_dir("oci").unwrap());
    let one = oci::build(&wasm, &a.join("img"), "1.2.3").unwrap();
    let two = oci::build(&wasm, &b.join("img"), "1.2.3").unwrap();
    assert_eq!(one.manifest_digest, two.manifest_digest, "not reproducible");

    let v = oci::verify(&one.dir, "1.2.3").unwrap();
    assert_eq!(v.manifest_digest, one.manifest_digest);
    assert_eq!(v.module, std::fs::read(&wasm).unwrap());

    let out = Command::new("python3")
        .arg("-c")
        .arg(PY_CHECK)
        .arg(&one.dir)
        .arg("1.2.3")
        .arg(&wasm)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.trim(), format!("ok {}", one.manifest_digest));

    // The checks can fail: a tag that is not there, and a layer changed after the build.
    assert!(oci::verify(&one.dir, "9.9.9").is_err());
    let hex = one.layer_digest.trim_start_matches("sha256:");
    let layer = one.dir.join("blobs/sha256").join(hex);
    let mut bytes = std::fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&layer, bytes).unwrap();
    let err = oci::verify(&one.dir, "1.2.3").unwrap_err().to_string();
    assert!(err.contains("does not hash to its name"), "{err}");
}

#[test]
fn the_rate_limit_services_manifest_names_the_cluster_the_fleet_policy_uses() {
    let text =
        std::fs::read_to_string(workspace_root().join("envoy/istio/ratelimit.yaml")).unwrap();
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Deployment",
            "Service",
            "Deployment",
            "Service"
        ]
    );
    let service = &docs[2];
    let (name, ns) = (
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
    );
    let port = &service["spec"]["ports"][0];
    // HTTP/2 for gRPC: Istio reads the protocol from the port's name or appProtocol.
    assert_eq!(port["appProtocol"], "grpc");
    assert_eq!(port["name"], "grpc");
    let cluster = format!(
        "outbound|{}||{name}.{ns}.svc.cluster.local",
        port["port"].as_u64().unwrap()
    );
    assert!(
        text.contains(&format!("cluster: \"{cluster}\"")),
        "the comment's policy names {cluster}"
    );
    // That cluster name is one a policy accepts.
    let policy = format!(
        r#"{{"version":"i","edge":"retail","client_ip":{{"trusted_hops":1}},
            "routes":[{{"name":"r","path":"/r","methods":["GET"]}}],
            "rate_limits":[{{"name":"g","scope":"global","key":["client_ip"],
                "service":{{"cluster":"{cluster}","domain":"tollgate-retail"}}}}]}}"#
    );
    tollgate_core::Policy::from_json(&policy).unwrap();
}
