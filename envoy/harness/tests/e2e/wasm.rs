//! The `.wasm` itself: built from the current sources, loadable by Envoy.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use harness::wasm::{ensure_wasm, imports, ENVOY_WASI};
use harness::workspace_root;

#[test]
fn the_module_imports_only_what_envoy_provides() {
    let wasm = ensure_wasm().unwrap();
    let imports = imports(&wasm).unwrap();
    assert!(imports
        .iter()
        .any(|(_, n)| n == "proxy_send_local_response"));
    for (module, name) in &imports {
        let ok = match module.as_str() {
            "env" => name.starts_with("proxy_"),
            "wasi_snapshot_preview1" => ENVOY_WASI.contains(&name.as_str()),
            _ => false,
        };
        assert!(
            ok,
            "{module}.{name} is not provided by Envoy: the module would not load"
        );
    }
}

#[test]
fn the_module_is_newer_than_every_source_it_is_built_from() {
    let wasm = ensure_wasm().unwrap();
    let built = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    let root = workspace_root();
    // What goes into the module: the sources of the filter, the core and the policies crate,
    // the build script and the policies. (Manifests and the lock file are left to cargo's own
    // fingerprints: a dev-dependency added there rightly rebuilds nothing.)
    let mut newest = (SystemTime::UNIX_EPOCH, PathBuf::new());
    for krate in ["plugin/tollgate-core", "plugin/tollgate-filter", "policies"] {
        walk(&root.join(krate).join("src"), &mut newest);
        for f in ["build.rs", "retail.yaml", "dealer.yaml"] {
            consider(&root.join(krate).join(f), &mut newest);
        }
    }
    assert!(
        built >= newest.0,
        "{} is older than {}: a stale module",
        wasm.display(),
        newest.1.display()
    );
    // The size goal (issue 8): at most 1.5 MiB.
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(size <= 1536 * 1024, "the module is {size} bytes");
}

fn walk(dir: &Path, newest: &mut (SystemTime, PathBuf)) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, newest);
        } else {
            consider(&p, newest);
        }
    }
}

fn consider(file: &Path, newest: &mut (SystemTime, PathBuf)) {
    if let Ok(t) = std::fs::metadata(file).and_then(|m| m.modified()) {
        if t > newest.0 {
            *newest = (t, file.to_path_buf());
        }
    }
}
