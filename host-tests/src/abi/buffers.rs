//! Buffers: bodies, callout answers, and the VM and plugin configurations.

use wasmtime::Linker;
use wasmtime::Result;

use super::{give, read, status, write_u32, Cx, HostResult, Status};
use crate::state::VmState;

/// Buffer types, numbered as in the ABI.
mod kind {
    pub const REQUEST_BODY: i32 = 0;
    pub const RESPONSE_BODY: i32 = 1;
    pub const DOWNSTREAM_DATA: i32 = 2;
    pub const UPSTREAM_DATA: i32 = 3;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const GRPC_RECEIVE_BUFFER: i32 = 5;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    pub const CALL_DATA: i32 = 8;
}

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_get_buffer_bytes", get_buffer_bytes)?;
    l.func_wrap("env", "proxy_set_buffer_bytes", set_buffer_bytes)?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: Cx<'_>, ty: i32, ret_len: i32, ret_flags: i32| {
            let len = match buffer(c.data_mut(), ty) {
                Ok(b) => b.len(),
                Err(s) => return status(s),
            };
            let r = write_u32(&mut c, ret_len, len as u32)
                .and_then(|()| write_u32(&mut c, ret_flags, 0));
            super::done(r)
        },
    )?;
    Ok(())
}

/// The buffer of this type as visible in the current callback. As in Envoy, a body outside
/// its callback and the gRPC buffer outside `proxy_on_grpc_receive` are empty; the callout body
/// outside its callback and the plugin configuration outside `proxy_on_configure` are missing.
fn buffer(s: &mut VmState, ty: i32) -> Result<Vec<u8>, Status> {
    let configuring = s.configuring;
    match ty {
        kind::REQUEST_BODY => Some(
            s.stream()
                .and_then(|st| st.request.body.clone())
                .unwrap_or_default(),
        ),
        kind::RESPONSE_BODY => Some(
            s.stream()
                .and_then(|st| st.response.body.clone())
                .unwrap_or_default(),
        ),
        kind::HTTP_CALL_RESPONSE_BODY => s.callout.body.clone(),
        kind::GRPC_RECEIVE_BUFFER => Some(s.callout.grpc_message.clone().unwrap_or_default()),
        kind::VM_CONFIGURATION => Some(s.spec.vm_configuration.clone()),
        kind::PLUGIN_CONFIGURATION => configuring.then(|| s.spec.configuration.clone()),
        kind::CALL_DATA => Some(Vec::new()),
        kind::DOWNSTREAM_DATA | kind::UPSTREAM_DATA => None,
        _ => return Err(Status::BadArgument),
    }
    .ok_or(Status::NotFound)
}

fn get_buffer_bytes(
    mut c: Cx<'_>,
    ty: i32,
    start: i32,
    max: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    let b = match buffer(c.data_mut(), ty) {
        Ok(b) => b,
        Err(s) => return status(s),
    };
    // Envoy adds start and size in 64 bits, so 32-bit guest values never overflow; the range
    // is clamped to the buffer (checked against Envoy by the probe conformance test).
    let (start, max) = (u64::from(start as u32), u64::from(max as u32));
    let len = b.len() as u64;
    let from = start.min(len) as usize;
    let end = (start + max).min(len) as usize;
    let slice = b.get(from..end).unwrap_or_default();
    Ok(give(&mut c, slice, ret_ptr, ret_len)? as i32)
}

/// Replaces part of a body: `start` 0 drops the first `size` bytes and puts the data in front
/// (so `0, len` replaces the whole body), `start` at or past the end appends; anything else is a
/// bad argument, as in Envoy.
fn set_buffer_bytes(
    mut c: Cx<'_>,
    ty: i32,
    start: i32,
    size: i32,
    data_ptr: i32,
    data_len: i32,
) -> HostResult {
    let data = match read(&mut c, data_ptr, data_len) {
        Ok(d) => d,
        Err(s) => return status(s),
    };
    // Only a body inside its own callback can change; the callout, gRPC and configuration
    // buffers are read-only.
    let s = c.data_mut();
    let body = match ty {
        kind::REQUEST_BODY => s.stream().and_then(|st| st.request.body.as_mut()),
        kind::RESPONSE_BODY => s.stream().and_then(|st| st.response.body.as_mut()),
        _ => None,
    };
    let Some(body) = body else {
        return status(Status::BadArgument);
    };
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    if start == 0 {
        let drop = size.min(body.len());
        body.drain(..drop);
        body.splice(0..0, data);
    } else if start >= body.len() {
        body.extend_from_slice(&data);
    } else {
        return status(Status::BadArgument);
    }
    status(Status::Ok)
}
