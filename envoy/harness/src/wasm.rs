//! The filter's `.wasm`: built here, so no test runs against a stale one.
//!
//! The build uses its own target directory (`target/wasm`): a test runs while `cargo test` holds
//! the lock on `target/debug`, and a nested cargo must not wait on it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use crate::workspace_root;

/// Where the release `.wasm` lands.
pub fn wasm_path() -> PathBuf {
    release_path("tollgate_filter")
}

fn release_path(lib: &str) -> PathBuf {
    workspace_root().join(format!("target/wasm/wasm32-wasip1/release/{lib}.wasm"))
}

/// Builds `package` once per process (cargo does nothing when it is up to date); later calls
/// get the first build's result.
fn once(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    package: &str,
    lib: &str,
) -> Result<PathBuf> {
    cell.get_or_init(|| build(package, lib).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Builds the filter once per process and returns the path of the `.wasm`.
pub fn ensure_wasm() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&BUILT, "tollgate-filter", "tollgate_filter")
}

/// Builds `host-tests/probe`, the guest that tests the wasmtime host's ABI, once per process.
pub fn ensure_probe() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&BUILT, "host-tests-probe", "host_tests_probe")
}

/// Builds `benches/noop`, a filter that does nothing (the load benchmark's floor), once per
/// process.
pub fn ensure_noop() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    once(&BUILT, "tollgate-noop", "tollgate_noop")
}

fn build(package: &str, lib: &str) -> Result<PathBuf> {
    cargo_build("target/wasm", "release", "wasm32-wasip1", package)?;
    let path = release_path(lib);
    if !path.exists() {
        bail!("cargo built the filter but {} is missing", path.display());
    }
    Ok(path)
}

/// `cargo build` of `package` for `target` with `profile`, in its own target directory.
fn cargo_build(dir: &str, profile: &str, target: &str, package: &str) -> Result<()> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", root.join(dir))
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "--target",
            target,
            "-p",
            package,
        ])
        .status()
        .with_context(|| format!("running cargo to build {package}"))?;
    if !status.success() {
        bail!("building {package} for {target} failed ({status}); is the target installed? run `cargo xtask setup`");
    }
    Ok(())
}

/// Where `cargo xtask component` (and [`ensure_component`]) put the policy component.
pub fn component_path() -> PathBuf {
    workspace_root().join("target/component/tollgate-policy.wasm")
}

/// Builds the policy engine's component (`plugin/tollgate-component`, world `engine` of
/// `wit/tollgate.wit`) once per process: the crate for `wasm32-unknown-unknown` with the
/// size-optimised `component` profile, then encoded as a component with no imports.
pub fn ensure_component() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_component().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_component() -> Result<PathBuf> {
    cargo_build(
        "target/component",
        "component",
        "wasm32-unknown-unknown",
        "tollgate-component",
    )?;
    let root = workspace_root();
    let module_path =
        root.join("target/component/wasm32-unknown-unknown/component/tollgate_component.wasm");
    let module = std::fs::read(&module_path)
        .with_context(|| format!("reading {}", module_path.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("reading the module's component type")?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    let path = component_path();
    std::fs::write(&path, component).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The functions a module imports, as `(module, name)`.
pub fn imports(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut r = Reader { b: &bytes, i: 8 };
    if bytes.get(..4) != Some(b"\0asm") {
        bail!("{} is not a wasm module", path.display());
    }
    let mut out = Vec::new();
    while r.i < bytes.len() {
        let id = r.byte()?;
        let size = r.leb()? as usize;
        let end = r.i + size;
        if id == 2 {
            for _ in 0..r.leb()? {
                let module = r.name()?;
                let name = r.name()?;
                match r.byte()? {
                    0 => {
                        r.leb()?;
                        out.push((module, name));
                    }
                    kind => bail!("import {module}.{name} is of kind {kind}, not a function"),
                }
            }
        }
        r.i = end;
    }
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let v = *self.b.get(self.i).context("truncated module")?;
        self.i += 1;
        Ok(v)
    }
    fn leb(&mut self) -> Result<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                bail!("bad LEB128");
            }
        }
    }
    fn name(&mut self) -> Result<String> {
        let n = self.leb()? as usize;
        let s = self.b.get(self.i..self.i + n).context("truncated name")?;
        self.i += n;
        Ok(String::from_utf8_lossy(s).into_owned())
    }
}

/// The WASI functions Envoy's V8 runtime provides (FIELD-NOTES: anything else does not load).
/// The proxy-wasm functions (module `env`) Envoy 1.40 gives a module: ABI 0.2.1 as the Rust
/// SDK 0.2.5 imports it (37), and `proxy_get_buffer_status` and `proxy_call_foreign_function`.
/// A module importing anything else fails to load. The wasmtime host provides exactly these.
pub const ENVOY_PROXY: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_header_map_size",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
];

pub const ENVOY_WASI: &[&str] = &[
    "fd_write",
    "fd_read",
    "fd_close",
    "fd_seek",
    "fd_fdstat_get",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "random_get",
    "proc_exit",
];
