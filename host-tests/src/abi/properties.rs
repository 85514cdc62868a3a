//! Properties (Envoy's attributes), encoded as Envoy encodes them: strings as their bytes,
//! integers as 8-byte little-endian, booleans as one byte, times as 8-byte nanoseconds;
//! addresses as `ip:port`. A path is its segments separated by NUL bytes.

use wasmtime::Linker;
use wasmtime::Result;

use super::{give, read, status, Cx, HostResult, Status};
use crate::state::{StreamData, VmState};

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_get_property", get_property)?;
    l.func_wrap("env", "proxy_set_property", set_property)?;
    Ok(())
}

fn int(v: i64) -> Option<Vec<u8>> {
    Some(v.to_le_bytes().to_vec())
}

fn header(h: Option<&crate::state::Headers>, name: &[u8]) -> Option<Vec<u8>> {
    h?.iter()
        .find(|(k, _)| k.as_slice() == name)
        .map(|(_, v)| v.clone())
}

/// Resolves a property path in the current context.
pub(crate) fn lookup(s: &mut VmState, path: &[u8]) -> Option<Vec<u8>> {
    // A trailing NUL adds no empty segment.
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    let text = |v: &str| Some(v.as_bytes().to_vec());
    match segments.as_slice() {
        [b"plugin_name"] => return text(&s.spec.name.clone()),
        [b"plugin_root_id"] => return text(&s.spec.root_id.clone()),
        [b"plugin_vm_id"] => return text(&s.spec.vm_id.clone()),
        _ => {}
    }
    // Envoy's own attributes first, then what the plugin stored (`wasm.<key>` filter state).
    let st = s.stream()?;
    stream_property(st, &segments).or_else(|| st.properties.get(path).cloned())
}

fn stream_property(st: &StreamData, segments: &[&[u8]]) -> Option<Vec<u8>> {
    let req = st.request.headers.as_ref();
    let text = |v: Vec<u8>| Some(v);
    match segments {
        [b"source", b"address"] => Some(st.source?.to_string().into_bytes()),
        [b"source", b"port"] => int(i64::from(st.source?.port())),
        [b"destination", b"address"] => Some(st.destination?.to_string().into_bytes()),
        [b"destination", b"port"] => int(i64::from(st.destination?.port())),
        [b"request", b"path"] => text(header(req, b":path")?),
        [b"request", b"url_path"] => {
            let p = header(req, b":path")?;
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            Some(p.get(..end)?.to_vec())
        }
        [b"request", b"host"] => text(header(req, b":authority")?),
        [b"request", b"method"] => text(header(req, b":method")?),
        [b"request", b"scheme"] => text(header(req, b":scheme")?),
        [b"request", b"id"] => text(header(req, b"x-request-id")?),
        [b"request", b"referer"] => text(header(req, b"referer")?),
        [b"request", b"useragent"] => text(header(req, b"user-agent")?),
        [b"request", b"protocol"] => Some(b"HTTP/1.1".to_vec()),
        [b"request", b"time"] => int(i64::try_from(st.start_nanos).ok()?),
        [b"request", b"headers", name] => header(req, &name.to_ascii_lowercase()),
        [b"response", b"code"] => int(i64::from(st.response_code?)),
        [b"response", b"headers", name] => {
            header(st.response.headers.as_ref(), &name.to_ascii_lowercase())
        }
        [b"connection", b"mtls"] => Some(vec![u8::from(st.peer_identity.is_some())]),
        [b"connection", b"uri_san_peer_certificate"] => {
            Some(st.peer_identity.clone()?.into_bytes())
        }
        [b"connection_id"] | [b"connection", b"id"] => int(i64::from(st.connection_id)),
        _ => None,
    }
}

fn get_property(mut c: Cx<'_>, pp: i32, pl: i32, ret_ptr: i32, ret_len: i32) -> HostResult {
    let path = match read(&mut c, pp, pl) {
        Ok(p) => p,
        Err(s) => return status(s),
    };
    match lookup(c.data_mut(), &path) {
        Some(v) => Ok(give(&mut c, &v, ret_ptr, ret_len)? as i32),
        None => status(Status::NotFound),
    }
}

/// Stores a value under a key of the plugin's own (Envoy keeps it as `wasm.<key>` filter
/// state); later reads in the same stream see it. A root context has no stream: NotFound.
fn set_property(mut c: Cx<'_>, pp: i32, pl: i32, vp: i32, vl: i32) -> HostResult {
    let (path, value) = match read(&mut c, pp, pl).and_then(|p| Ok((p, read(&mut c, vp, vl)?))) {
        Ok(pv) => pv,
        Err(s) => return status(s),
    };
    match c.data_mut().stream() {
        Some(st) => {
            st.properties.insert(path, value);
            status(Status::Ok)
        }
        None => status(Status::NotFound),
    }
}
