//! The compiled module and the linker that provides the ABI: made once, shared by every VM
//! (wasmtime's `Engine` and `Module` are reference-counted and thread-safe).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, Linker, Module, OptLevel};

use crate::state::VmState;

/// A loaded proxy-wasm module, ready to start VMs from.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<VmState>,
    module: Module,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

impl Host {
    /// Loads a `.wasm` file; see [`Host::from_bytes`].
    pub fn load(path: &Path) -> Result<Host> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Host::from_bytes(&bytes)
    }

    /// Compiles a binary module and refuses it, with Envoy's wording, if it imports anything Envoy does not provide, has no
    /// proxy-wasm ABI version or no allocator.
    pub fn from_bytes(bytes: &[u8]) -> Result<Host> {
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let module = Module::new(&engine, bytes)
            .map_err(|e| anyhow::anyhow!("Failed to load Wasm module: {e:?}"))?;
        crate::vm::check_module(&module)?;
        let mut linker = Linker::new(&engine);
        crate::abi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        Ok(Host {
            inner: Arc::new(Inner {
                engine,
                linker,
                module,
            }),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<VmState> {
        &self.inner.linker
    }

    pub(crate) fn module(&self) -> &Module {
        &self.inner.module
    }
}
