//! The `.wasm` itself: built from the current sources, loadable by Envoy.

use std::path::{Path, PathBuf};

use harness::wasm::{ensure_wasm, imports, ENVOY_PROXY, ENVOY_WASI};
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
            "env" => ENVOY_PROXY.contains(&name.as_str()),
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
    // Cargo's dep-info lists every file the compiler read for the module (sources of every
    // crate in it, the embedded policy JSON); the YAML policies feed that JSON through build.rs.
    let dep_info = std::fs::read_to_string(wasm.with_extension("d")).unwrap();
    let mut inputs = dep_inputs(&dep_info, &wasm);
    let root = workspace_root();
    inputs.push(root.join("policies/retail.yaml"));
    inputs.push(root.join("policies/dealer.yaml"));
    for must in [
        "plugin/tollgate-core/src/decide.rs",
        "plugin/tollgate-filter/src/http.rs",
    ] {
        assert!(
            inputs.contains(&root.join(must)),
            "dep-info lacks {must}: {dep_info}"
        );
    }
    for input in &inputs {
        let t = std::fs::metadata(input).unwrap().modified().unwrap();
        assert!(
            t <= built,
            "{} is older than {}: a stale module",
            wasm.display(),
            input.display()
        );
    }
    // Right after `ensure_wasm` built it, the module is fresh by construction; what can go
    // stale is what cargo does not watch. The policies' build script embeds the YAML policies
    // and the machine's Core Rule Set: it must tell cargo to rebuild when they change.
    let build = root.join("target/wasm/wasm32-wasip1/release/build");
    let newest_output = std::fs::read_dir(&build)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("tollgate-policies-"))
        })
        .map(|p| p.join("output"))
        .filter(|p| p.exists())
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("the policies' build-script output");
    let watched = std::fs::read_to_string(&newest_output).unwrap();
    for input in [
        "retail.yaml",
        "dealer.yaml",
        "/usr/share/modsecurity-crs/rules",
    ] {
        assert!(
            watched
                .lines()
                .any(|l| l == format!("cargo::rerun-if-changed={input}")),
            "{}: cargo does not rebuild when {input} changes:\n{watched}",
            newest_output.display()
        );
    }
    // The size goal (issue 14, with the Core Rule Set engine and both policies' imported rule
    // sets embedded): at most 3 MiB.
    let size = std::fs::metadata(&wasm).unwrap().len();
    assert!(size <= 3 * 1024 * 1024, "the module is {size} bytes");
}

/// The inputs of `target` in a Makefile-style dep-info file (`target: a b\ c ...`).
fn dep_inputs(dep_info: &str, target: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}:", target.display());
    let line = dep_info
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no rule for {} in dep-info", target.display()));
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line[prefix.len()..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ' ' => {
                if !cur.is_empty() {
                    out.push(PathBuf::from(std::mem::take(&mut cur)));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathBuf::from(cur));
    }
    out
}
