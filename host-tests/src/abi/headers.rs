//! Header maps: request and response headers and trailers, gRPC metadata, callout answers.
//! Keys are lower-cased as Envoy's `LowerCaseString` does; values are bytes.
//!
//! Availability follows Envoy: the request headers from `proxy_on_request_headers` until the
//! stream goes on (the callback returns Continue or `proxy_continue_stream`), likewise the
//! response headers; trailers in their callbacks; gRPC metadata and callout answers in their
//! callbacks, read-only; and read-only copies during `proxy_on_log`. An unavailable map reads as
//! empty through `get_header_map_pairs` and is a bad argument for the other calls.

use wasmtime::Linker;
use wasmtime::Result;

use super::{decode_pairs, encode_pairs, give, read, status, write_u32, Cx, HostResult, Status};
use crate::state::{Headers, VmState};

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_get_header_map_pairs", get_pairs)?;
    l.func_wrap("env", "proxy_set_header_map_pairs", set_pairs)?;
    l.func_wrap("env", "proxy_get_header_map_value", get_value)?;
    l.func_wrap("env", "proxy_add_header_map_value", add_value)?;
    l.func_wrap("env", "proxy_replace_header_map_value", replace_value)?;
    l.func_wrap("env", "proxy_remove_header_map_value", remove_value)?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Cx<'_>, ty: i32, ret: i32| {
            let size = match map_mut(c.data_mut(), ty) {
                Ok(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
                Err(s) => return status(s),
            };
            super::done(write_u32(&mut c, ret, size as u32))
        },
    )?;
    Ok(())
}

fn slot(s: &mut VmState, ty: i32) -> Result<(Option<&mut Headers>, bool), Status> {
    let logging = s.stream().is_some_and(|st| st.logging);
    Ok(match ty {
        0 => (
            s.stream().and_then(|st| st.request.headers.as_mut()),
            logging,
        ),
        1 => (
            s.stream().and_then(|st| st.request.trailers.as_mut()),
            logging,
        ),
        2 => (
            s.stream().and_then(|st| st.response.headers.as_mut()),
            logging,
        ),
        3 => (
            s.stream().and_then(|st| st.response.trailers.as_mut()),
            logging,
        ),
        4 => (s.callout.grpc_initial.as_mut(), true),
        5 => (s.callout.grpc_trailing.as_mut(), true),
        6 => (s.callout.headers.as_mut(), true),
        7 => (s.callout.trailers.as_mut(), true),
        _ => return Err(Status::BadArgument),
    })
}

/// A map to read; `Ok(None)` if it is not available now.
fn map_ref(s: &mut VmState, ty: i32) -> Result<Option<&mut Headers>, Status> {
    Ok(slot(s, ty)?.0)
}

/// A map to change: only stream maps outside `proxy_on_log`.
fn map_mut(s: &mut VmState, ty: i32) -> Result<&mut Headers, Status> {
    match slot(s, ty)? {
        (Some(m), false) => Ok(m),
        _ => Err(Status::BadArgument),
    }
}

fn key(c: &mut Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    Ok(read(c, ptr, len)?.to_ascii_lowercase())
}

fn get_pairs(mut c: Cx<'_>, ty: i32, ret_ptr: i32, ret_len: i32) -> HostResult {
    let bytes = match map_ref(c.data_mut(), ty) {
        Ok(Some(m)) if !m.is_empty() => encode_pairs(m),
        Ok(_) => Vec::new(),
        Err(s) => return status(s),
    };
    Ok(give(&mut c, &bytes, ret_ptr, ret_len)? as i32)
}

fn set_pairs(mut c: Cx<'_>, ty: i32, ptr: i32, len: i32) -> HostResult {
    let raw = match read(&mut c, ptr, len) {
        Ok(r) => r,
        Err(s) => return status(s),
    };
    // A malformed serialisation counts as no pairs, as in proxy-wasm-cpp-host.
    let pairs = decode_pairs(&raw).unwrap_or_default();
    match map_mut(c.data_mut(), ty) {
        Ok(m) => {
            *m = pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            status(Status::Ok)
        }
        Err(s) => status(s),
    }
}

fn get_value(mut c: Cx<'_>, ty: i32, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32) -> HostResult {
    let k = match key(&mut c, kp, kl) {
        Ok(k) => k,
        Err(s) => return status(s),
    };
    let logging = c.data_mut().stream().is_some_and(|st| st.logging);
    // Envoy returns the first value of a repeated header.
    let v = match map_ref(c.data_mut(), ty) {
        Ok(Some(m)) => m.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()),
        Ok(None) if logging => None,
        Ok(None) => return status(Status::BadArgument),
        Err(s) => return status(s),
    };
    match v {
        Some(v) => Ok(give(&mut c, &v, ret_ptr, ret_len)? as i32),
        None => status(Status::NotFound),
    }
}

fn key_value(
    c: &mut Cx<'_>,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> Result<(Vec<u8>, Vec<u8>), Status> {
    Ok((key(c, kp, kl)?, read(c, vp, vl)?))
}

fn add_value(mut c: Cx<'_>, ty: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> HostResult {
    let (k, v) = match key_value(&mut c, kp, kl, vp, vl) {
        Ok(kv) => kv,
        Err(s) => return status(s),
    };
    match map_mut(c.data_mut(), ty) {
        Ok(m) => {
            m.push((k, v));
            status(Status::Ok)
        }
        Err(s) => status(s),
    }
}

/// Envoy's `setCopy`: every value of `key` goes, one new entry comes.
fn replace_value(mut c: Cx<'_>, ty: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> HostResult {
    let (k, v) = match key_value(&mut c, kp, kl, vp, vl) {
        Ok(kv) => kv,
        Err(s) => return status(s),
    };
    match map_mut(c.data_mut(), ty) {
        Ok(m) => {
            m.retain(|(n, _)| *n != k);
            m.push((k, v));
            status(Status::Ok)
        }
        Err(s) => status(s),
    }
}

/// Removes every value of `key`; removing an absent key is not an error.
fn remove_value(mut c: Cx<'_>, ty: i32, kp: i32, kl: i32) -> HostResult {
    let k = match key(&mut c, kp, kl) {
        Ok(k) => k,
        Err(s) => return status(s),
    };
    match map_mut(c.data_mut(), ty) {
        Ok(m) => {
            m.retain(|(n, _)| *n != k);
            status(Status::Ok)
        }
        Err(s) => status(s),
    }
}
