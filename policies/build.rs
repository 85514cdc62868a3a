//! Turns `retail.yaml` and `dealer.yaml` into JSON in OUT_DIR, and refuses to build when a
//! policy does not pass the same validation the plugin runs in `on_configure`.

use std::path::Path;
use std::process::exit;

const POLICIES: [&str; 2] = ["retail", "dealer"];
/// Where the policies' `detection.crs.ruleset: {import: ...}` points (Debian's package).
const CRS_RULES: &str = "/usr/share/modsecurity-crs/rules";

fn main() {
    let out = std::env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set"));
    let mut failed = false;
    println!("cargo::rerun-if-changed={CRS_RULES}");
    for name in POLICIES {
        let src = format!("{name}.yaml");
        println!("cargo::rerun-if-changed={src}");
        let text = std::fs::read_to_string(&src)
            .unwrap_or_else(|e| fail(&format!("cannot read {src}: {e}")));
        let mut value: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| fail(&format!("{src} is not valid YAML: {e}")));
        // The Core Rule Set comes from the machine (`cargo xtask setup` installs Debian's),
        // never from the repository. Without it the policy keeps its `import` and the plugin
        // refuses it at load time, naming the reason; tools built before setup still build.
        let crs_missing = match tollgate_core::crs::dir::resolve(&mut value) {
            Ok(_) => false,
            Err(e) => {
                println!("cargo::warning={src}: Core Rule Set not imported (run `cargo xtask setup`): {e}");
                true
            }
        };
        let json = value.to_string();
        if let (Err(errors), false) = (tollgate_core::Policy::from_json(&json), crs_missing) {
            failed = true;
            for e in errors {
                eprintln!("{src}: {e}");
                println!("cargo::warning={src}: {e}");
            }
        }
        let dest = Path::new(&out).join(format!("{name}.json"));
        std::fs::write(&dest, json)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", dest.display())));
    }
    if failed {
        fail("an embedded policy is invalid (errors above)");
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    exit(1)
}
