//! The proxy-wasm ABI (0.2.1, as the Rust SDK 0.2.5 imports it) and the WASI subset Envoy
//! provides, implemented over the store's `VmState`. One file per area; `add_to_linker` wires
//! them all, and `PROVIDED` lists them so a module importing anything else is refused at load,
//! as Envoy refuses it.

mod buffers;
mod callouts;
mod headers;
mod metrics;
mod misc;
mod properties;
mod shared;
mod stream;
mod wasi;

use wasmtime::{format_err, Result};
use wasmtime::{Caller, Extern, Linker, Memory};

use crate::state::VmState;

/// Result codes, numbered as in the ABI (`WasmResult` in proxy-wasm-cpp-host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The key, header, property or queue does not exist.
    NotFound = 1,
    /// An argument is out of range, or the object is not available in this callback.
    BadArgument = 2,
    /// A value could not be serialised.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A pointer or length points outside the guest's memory.
    InvalidMemoryAccess = 6,
    /// The queue is empty.
    Empty = 7,
    /// The shared-data CAS did not match.
    CasMismatch = 8,
    /// The host could not do it.
    InternalFailure = 10,
    /// The host does not implement it.
    Unimplemented = 12,
}

/// The imports this host provides, as `(module, name)`; `proxy_*` are in module `env`.
pub const PROVIDED: &[(&str, &str)] = &[
    ("env", "proxy_log"),
    ("env", "proxy_get_log_level"),
    ("env", "proxy_get_current_time_nanoseconds"),
    ("env", "proxy_set_tick_period_milliseconds"),
    ("env", "proxy_get_buffer_bytes"),
    ("env", "proxy_set_buffer_bytes"),
    ("env", "proxy_get_buffer_status"),
    ("env", "proxy_get_header_map_pairs"),
    ("env", "proxy_set_header_map_pairs"),
    ("env", "proxy_get_header_map_value"),
    ("env", "proxy_add_header_map_value"),
    ("env", "proxy_replace_header_map_value"),
    ("env", "proxy_remove_header_map_value"),
    ("env", "proxy_get_header_map_size"),
    ("env", "proxy_get_property"),
    ("env", "proxy_set_property"),
    ("env", "proxy_get_shared_data"),
    ("env", "proxy_set_shared_data"),
    ("env", "proxy_register_shared_queue"),
    ("env", "proxy_resolve_shared_queue"),
    ("env", "proxy_dequeue_shared_queue"),
    ("env", "proxy_enqueue_shared_queue"),
    ("env", "proxy_continue_stream"),
    ("env", "proxy_close_stream"),
    ("env", "proxy_send_local_response"),
    ("env", "proxy_http_call"),
    ("env", "proxy_grpc_call"),
    ("env", "proxy_grpc_stream"),
    ("env", "proxy_grpc_send"),
    ("env", "proxy_grpc_cancel"),
    ("env", "proxy_grpc_close"),
    ("env", "proxy_get_status"),
    ("env", "proxy_set_effective_context"),
    ("env", "proxy_call_foreign_function"),
    ("env", "proxy_done"),
    ("env", "proxy_define_metric"),
    ("env", "proxy_increment_metric"),
    ("env", "proxy_record_metric"),
    ("env", "proxy_get_metric"),
    ("wasi_snapshot_preview1", "fd_write"),
    ("wasi_snapshot_preview1", "fd_read"),
    ("wasi_snapshot_preview1", "fd_close"),
    ("wasi_snapshot_preview1", "fd_seek"),
    ("wasi_snapshot_preview1", "fd_fdstat_get"),
    ("wasi_snapshot_preview1", "fd_prestat_get"),
    ("wasi_snapshot_preview1", "fd_prestat_dir_name"),
    ("wasi_snapshot_preview1", "environ_get"),
    ("wasi_snapshot_preview1", "environ_sizes_get"),
    ("wasi_snapshot_preview1", "args_get"),
    ("wasi_snapshot_preview1", "args_sizes_get"),
    ("wasi_snapshot_preview1", "clock_time_get"),
    ("wasi_snapshot_preview1", "random_get"),
    ("wasi_snapshot_preview1", "proc_exit"),
];

/// Wires every provided import into `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<VmState>) -> Result<()> {
    misc::add(linker)?;
    buffers::add(linker)?;
    headers::add(linker)?;
    properties::add(linker)?;
    shared::add(linker)?;
    stream::add(linker)?;
    callouts::add(linker)?;
    metrics::add(linker)?;
    wasi::add(linker)?;
    Ok(())
}

/// A host function's outcome: a status for the guest, or a trap.
pub(crate) type HostResult = Result<i32>;

pub(crate) fn status(s: Status) -> HostResult {
    Ok(s as i32)
}

pub(crate) fn done(r: Result<(), Status>) -> HostResult {
    Ok(match r {
        Ok(()) => Status::Ok as i32,
        Err(s) => s as i32,
    })
}

pub(crate) type Cx<'a> = Caller<'a, VmState>;

fn memory(c: &mut Cx<'_>) -> Result<Memory, Status> {
    match c.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(Status::InvalidMemoryAccess),
    }
}

/// Copies `len` bytes at `ptr` out of the guest.
pub(crate) fn read(c: &mut Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let m = memory(c)?;
    let (p, n) = (ptr as u32 as usize, len as u32 as usize);
    m.data(&*c)
        .get(p..p.checked_add(n).ok_or(Status::InvalidMemoryAccess)?)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Reads a UTF-8 string (keys, names); a non-UTF-8 one is a bad argument.
pub(crate) fn read_str(c: &mut Cx<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    String::from_utf8(read(c, ptr, len)?).map_err(|_| Status::BadArgument)
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(c: &mut Cx<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let m = memory(c)?;
    let p = ptr as u32 as usize;
    m.data_mut(&mut *c)
        .get_mut(
            p..p.checked_add(bytes.len())
                .ok_or(Status::InvalidMemoryAccess)?,
        )
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(c: &mut Cx<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

pub(crate) fn write_u64(c: &mut Cx<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write(c, ptr, &v.to_le_bytes())
}

/// Hands `bytes` to the guest as proxy-wasm does: memory from the guest's
/// `proxy_on_memory_allocate` (or `malloc`), its address at `ret_ptr`, its size at `ret_size`.
/// A failing allocator is a trap, as in Envoy.
pub(crate) fn give(c: &mut Cx<'_>, bytes: &[u8], ret_ptr: i32, ret_size: i32) -> Result<Status> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        alloc(c, bytes.len())?
    };
    let r = write(c, ptr, bytes)
        .and_then(|()| write_u32(c, ret_ptr, ptr as u32))
        .and_then(|()| write_u32(c, ret_size, bytes.len() as u32));
    Ok(match r {
        Ok(()) => Status::Ok,
        Err(s) => s,
    })
}

fn alloc(c: &mut Cx<'_>, size: usize) -> Result<i32> {
    let f = ["proxy_on_memory_allocate", "malloc"]
        .iter()
        .find_map(|name| c.get_export(name).and_then(Extern::into_func))
        .ok_or_else(|| format_err!("the module exports no allocator (proxy_on_memory_allocate)"))?;
    let f = f.typed::<i32, i32>(&*c)?;
    let size = i32::try_from(size).map_err(|_| format_err!("allocation of {size} bytes"))?;
    let ptr = f.call(&mut *c, size)?;
    if ptr == 0 {
        return Err(format_err!(
            "the guest allocator returned null for {size} bytes"
        ));
    }
    Ok(ptr)
}

/// Serialises header pairs as proxy-wasm does: count, then (key length, value length) per pair,
/// then each key and value followed by a NUL.
pub(crate) fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the serialisation `encode_pairs` writes; `None` if it is malformed.
pub(crate) fn decode_pairs(b: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if b.is_empty() {
        return Some(Vec::new());
    }
    let word = |i: usize| -> Option<usize> {
        let w = b.get(i..i + 4)?;
        Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize)
    };
    let n = word(0)?;
    let mut sizes = Vec::with_capacity(n.min(b.len() / 8));
    for i in 0..n {
        sizes.push((word(4 + i * 8)?, word(8 + i * 8)?));
    }
    let mut at = 4 + n.checked_mul(8)?;
    let mut out = Vec::with_capacity(sizes.len());
    for (kl, vl) in sizes {
        let k = b.get(at..at.checked_add(kl)?)?.to_vec();
        at += kl + 1;
        let v = b.get(at..at.checked_add(vl)?)?.to_vec();
        at += vl + 1;
        out.push((k, v));
    }
    (at <= b.len()).then_some(out)
}
