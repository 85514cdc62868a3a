//! One VM: a wasmtime instance of the module with its store, started as Envoy starts one
//! (`_initialize`, the root context, `proxy_on_vm_start`, `proxy_on_configure`), and a way to
//! call its `proxy_on_*` exports that turns a trap into a value.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use wasmtime::{Instance, Store, WasmParams, WasmResults};

use crate::host::Host;
use crate::process::Process;
use crate::state::{PluginSpec, VmState};

/// A guest trap (or an exit) in a callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// The export that trapped, e.g. `proxy_on_request_headers`.
    pub callback: String,
    /// wasmtime's description, with the wasm backtrace when there is one.
    pub message: String,
}

/// Why a VM did not start.
#[derive(Debug)]
pub enum StartError {
    /// The module could not be instantiated or trapped while starting.
    Failed(String),
    /// `proxy_on_vm_start` returned false.
    VmStartRefused,
    /// `proxy_on_configure` returned false: the configuration is refused.
    ConfigureRefused,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Failed(m) => write!(f, "the VM failed to start: {m}"),
            StartError::VmStartRefused => write!(f, "proxy_on_vm_start returned false"),
            StartError::ConfigureRefused => {
                write!(
                    f,
                    "proxy_on_configure returned false: configuration refused"
                )
            }
        }
    }
}

pub(crate) struct Vm {
    pub(crate) store: Store<VmState>,
    instance: Instance,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").finish_non_exhaustive()
    }
}

impl Vm {
    /// Instantiates the module and runs Envoy's start sequence. The logs written so far stay in
    /// the store either way, so a refusal can be explained.
    pub(crate) fn start(
        host: &Host,
        process: Arc<Process>,
        spec: Arc<PluginSpec>,
        worker: usize,
        clusters: Arc<Vec<String>>,
    ) -> (Result<Vm, StartError>, Vec<crate::state::LogLine>) {
        let state = VmState::new(process, spec, worker, clusters);
        let mut store = Store::new(host.engine(), state);
        let instance = match host.linker().instantiate(&mut store, host.module()) {
            Ok(i) => i,
            Err(e) => return (Err(StartError::Failed(format!("{e:#}"))), Vec::new()),
        };
        let mut vm = Vm { store, instance };
        let r = vm.boot();
        let logs = std::mem::take(&mut vm.store.data_mut().logs);
        (r.map(|()| vm), logs)
    }

    fn boot(&mut self) -> Result<(), StartError> {
        let failed = |t: Trap| StartError::Failed(format!("{} trapped: {}", t.callback, t.message));
        // A reactor: `_initialize`, then `main(0, 0)` or `__main_void` if there is one; a
        // command: `_start`.
        if self.has("_initialize") {
            self.call::<(), ()>("_initialize", 0, ()).map_err(failed)?;
            if self.has("main") {
                self.call::<(i32, i32), i32>("main", 0, (0, 0))
                    .map_err(failed)?;
            } else if self.has("__main_void") {
                self.call::<(), i32>("__main_void", 0, ()).map_err(failed)?;
            }
        } else if self.has("_start") {
            self.call::<(), ()>("_start", 0, ()).map_err(failed)?;
        }
        let root = self.store.data().root_id;
        self.call::<(i32, i32), ()>("proxy_on_context_create", root, (root as i32, 0))
            .map_err(failed)?;
        let vm_cfg = self.store.data().spec.vm_configuration.len() as i32;
        if self.has("proxy_on_vm_start")
            && self
                .call::<(i32, i32), i32>("proxy_on_vm_start", root, (root as i32, vm_cfg))
                .map_err(failed)?
                == 0
        {
            return Err(StartError::VmStartRefused);
        }
        let cfg = self.store.data().spec.configuration.len() as i32;
        if self.has("proxy_on_configure") {
            self.store.data_mut().configuring = true;
            let r = self.call::<(i32, i32), i32>("proxy_on_configure", root, (root as i32, cfg));
            self.store.data_mut().configuring = false;
            if r.map_err(failed)? == 0 {
                return Err(StartError::ConfigureRefused);
            }
        }
        Ok(())
    }

    pub(crate) fn has(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    /// Calls an export for context `ctx`. A missing export is answered with the results'
    /// default (Envoy skips callbacks a module does not export).
    pub(crate) fn call<P: WasmParams, R: WasmResults + Default>(
        &mut self,
        name: &str,
        ctx: u32,
        params: P,
    ) -> Result<R, Trap> {
        let Some(f) = self.instance.get_func(&mut self.store, name) else {
            return Ok(R::default());
        };
        let trap = |e: wasmtime::Error| Trap {
            callback: name.to_owned(),
            message: format!("{e:?}"),
        };
        let f = f.typed::<P, R>(&self.store).map_err(trap)?;
        self.store.data_mut().effective = ctx;
        let r = f.call(&mut self.store, params).map_err(trap);
        self.store.data_mut().effective = self.store.data().root_id;
        r
    }
}

/// Checks a module's imports and exports against what Envoy accepts, with Envoy's wording.
pub(crate) fn check_module(module: &wasmtime::Module) -> Result<()> {
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        if !crate::abi::PROVIDED.contains(&(m, n)) {
            bail!("Failed to load Wasm module due to a missing import: {m}.{n}");
        }
    }
    let abi = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];
    if !module.exports().any(|e| abi.contains(&e.name())) {
        return Err(anyhow!("Missing or unknown Proxy-Wasm ABI version"));
    }
    if !module
        .exports()
        .any(|e| matches!(e.name(), "malloc" | "proxy_on_memory_allocate"))
    {
        bail!("Wasm module is missing malloc function.");
    }
    Ok(())
}
