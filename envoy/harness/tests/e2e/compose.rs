//! The docker compose file cannot be run here (no Docker engine), so its wiring is checked:
//! the image matches the pinned Envoy, every mounted file exists, the `.wasm` mount is the one
//! the build produces, and each edge's bootstrap and ECDS file are the ones the tests run.

use harness::envoy::ENVOY_VERSION;
use harness::wasm::{ensure_wasm, wasm_path};
use harness::workspace_root;
use serde_json::Value;

#[test]
fn compose_file_mounts_what_the_build_and_the_tests_use() {
    ensure_wasm().unwrap();
    let dir = workspace_root().join("envoy");
    let text = std::fs::read_to_string(dir.join("docker-compose.yaml")).unwrap();
    let compose: Value = serde_saphyr::from_str(&text).unwrap();
    for edge in ["retail", "dealer"] {
        let svc = &compose["services"][edge];
        assert_eq!(svc["image"], format!("envoyproxy/envoy:v{ENVOY_VERSION}"));
        let config = format!("/etc/envoy/{edge}.yaml");
        assert_eq!(svc["command"][1], config.as_str());
        let (mut saw_wasm, mut saw_config, mut saw_ecds) = (false, false, false);
        for v in svc["volumes"].as_array().unwrap() {
            let v = v.as_str().unwrap();
            let mut parts = v.split(':');
            let (host, guest) = (parts.next().unwrap(), parts.next().unwrap());
            let host = dir
                .join(host)
                .canonicalize()
                .unwrap_or_else(|e| panic!("{v}: {e}"));
            if guest == "/etc/tollgate/tollgate.wasm" {
                assert_eq!(host, wasm_path().canonicalize().unwrap());
                saw_wasm = true;
            }
            if guest == "/etc/tollgate/ecds" {
                assert_eq!(
                    host,
                    dir.join(format!("ecds/{edge}")).canonicalize().unwrap()
                );
                assert!(host.join("tollgate.yaml").exists());
                saw_ecds = true;
            }
            if guest == config {
                assert_eq!(
                    host,
                    dir.join(format!("{edge}.yaml")).canonicalize().unwrap()
                );
                saw_config = true;
            }
        }
        assert!(saw_wasm, "{edge} does not mount the .wasm");
        assert!(saw_config, "{edge} does not mount its bootstrap");
        assert!(saw_ecds, "{edge} does not mount its filter configuration");
        // The bootstrap loads the module from where compose mounts it.
        let boot: Value = serde_saphyr::from_str(
            &std::fs::read_to_string(dir.join(format!("{edge}.yaml"))).unwrap(),
        )
        .unwrap();
        let text = boot.to_string();
        assert!(
            text.contains("\"path\":\"/etc/tollgate/ecds/tollgate.yaml\""),
            "{edge}"
        );
        let ecds = std::fs::read_to_string(dir.join(format!("ecds/{edge}/tollgate.yaml"))).unwrap();
        let ecds: Value = serde_saphyr::from_str(&ecds).unwrap();
        assert!(
            ecds.to_string()
                .contains("\"filename\":\"/etc/tollgate/tollgate.wasm\""),
            "{edge}"
        );
        assert!(text.contains("\"address\":\"backend\""), "{edge}");
    }
    assert!(compose["services"]["backend"]["command"]
        .as_str()
        .unwrap()
        .contains("--bin demo-backend"));
}
