//! Stream control: resuming, closing, and answering a stream locally. The effects happen after
//! the current callback returns, as in Envoy, where they are deferred until the VM call ends.
//! On a root context (no stream) these calls do nothing and succeed, as in Envoy.

use wasmtime::Linker;
use wasmtime::Result;

use super::{decode_pairs, read, status, Cx, HostResult, Status};
use crate::state::{LocalResponse, VmState};

/// Stream types, numbered as in the ABI.
const REQUEST: i32 = 0;
const RESPONSE: i32 = 1;
const DOWNSTREAM: i32 = 2;
const UPSTREAM: i32 = 3;

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_continue_stream", |mut c: Cx<'_>, ty: i32| {
        let st = c.data_mut().stream();
        match (ty, st) {
            (REQUEST, Some(st)) => st.resume_request = true,
            (RESPONSE, Some(st)) => st.resume_response = true,
            (REQUEST | RESPONSE | DOWNSTREAM, _) => {}
            (UPSTREAM, _) => return status(Status::Unimplemented),
            _ => return status(Status::BadArgument),
        }
        status(Status::Ok)
    })?;
    l.func_wrap("env", "proxy_close_stream", |mut c: Cx<'_>, ty: i32| {
        let st = c.data_mut().stream();
        match (ty, st) {
            (REQUEST | RESPONSE, Some(st)) => st.close = true,
            (REQUEST..=UPSTREAM, _) => {}
            _ => return status(Status::BadArgument),
        }
        status(Status::Ok)
    })?;
    l.func_wrap("env", "proxy_send_local_response", send_local_response)?;
    Ok(())
}

/// Records the local response; the stream driver sends it once the callback returns. A
/// malformed header serialisation means no extra headers; a second call while one is pending
/// is ignored (in Envoy it would reset the stream after the first reply has started).
#[allow(clippy::too_many_arguments)]
fn send_local_response(
    mut c: Cx<'_>,
    code: i32,
    dp: i32,
    dl: i32,
    bp: i32,
    bl: i32,
    hp: i32,
    hl: i32,
    grpc: i32,
) -> HostResult {
    let parts = read(&mut c, dp, dl)
        .and_then(|d| Ok((d, read(&mut c, bp, bl)?)))
        .and_then(|(d, b)| Ok((d, b, read(&mut c, hp, hl)?)));
    let (details, body, headers) = match parts {
        Ok(p) => p,
        Err(s) => return status(s),
    };
    let headers = decode_pairs(&headers).unwrap_or_default();
    let Some(st) = c.data_mut().stream() else {
        return status(Status::Ok);
    };
    if st.local.is_none() {
        let details: String = String::from_utf8_lossy(&details)
            .chars()
            .map(|ch| if ch.is_whitespace() { '_' } else { ch })
            .collect();
        st.local = Some(LocalResponse {
            status: code as u32,
            details,
            body,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            grpc_status: (0..=16).contains(&grpc).then_some(grpc),
        });
    }
    status(Status::Ok)
}
