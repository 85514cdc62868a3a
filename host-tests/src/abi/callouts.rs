//! HTTP and gRPC callouts. A call is recorded with a token; the test answers it (or lets it
//! time out on the virtual clock) and the host delivers the callback to the root context, as
//! Envoy does whichever context made the call.

use wasmtime::Linker;
use wasmtime::Result;

use super::{decode_pairs, give, read, status, write_u32, Cx, HostResult, Status};
use crate::state::{GrpcCall, Headers, HttpCall, TokenKind, VmState};

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_http_call", http_call)?;
    l.func_wrap("env", "proxy_grpc_call", grpc_call)?;
    l.func_wrap("env", "proxy_grpc_stream", grpc_stream)?;
    l.func_wrap("env", "proxy_grpc_send", grpc_send)?;
    // Cancelling drops a call or stream; no callback follows.
    l.func_wrap("env", "proxy_grpc_cancel", |mut c: Cx<'_>, token: i32| {
        let token = token as u32;
        if !is_grpc(token) {
            return status(Status::BadArgument);
        }
        match c.data_mut().grpc_calls.remove(&token) {
            Some(_) => status(Status::Ok),
            None => status(Status::NotFound),
        }
    })?;
    // Closing cancels a unary call, and half-closes a stream.
    l.func_wrap("env", "proxy_grpc_close", |mut c: Cx<'_>, token: i32| {
        let token = token as u32;
        if !is_grpc(token) {
            return status(Status::BadArgument);
        }
        let calls = &mut c.data_mut().grpc_calls;
        match calls.get_mut(&token) {
            Some(call) if call.streaming => {
                call.half_closed = true;
                status(Status::Ok)
            }
            Some(_) => {
                calls.remove(&token);
                status(Status::Ok)
            }
            None => status(Status::NotFound),
        }
    })?;
    l.func_wrap("env", "proxy_get_status", get_status)?;
    Ok(())
}

fn is_grpc(token: u32) -> bool {
    matches!(token % 4, 1 | 2)
}

fn text(c: &mut Cx<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

fn pairs(c: &mut Cx<'_>, ptr: i32, len: i32) -> Result<Headers, Status> {
    decode_pairs(&read(c, ptr, len)?).ok_or(Status::BadArgument)
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut c: Cx<'_>,
    up: i32,
    upl: i32,
    hp: i32,
    hl: i32,
    bp: i32,
    bl: i32,
    tp: i32,
    tl: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> HostResult {
    let parsed = (|| {
        Ok::<_, Status>((
            text(&mut c, up, upl)?,
            pairs(&mut c, hp, hl)?,
            read(&mut c, bp, bl)?,
            pairs(&mut c, tp, tl)?,
        ))
    })();
    let (upstream, headers, body, trailers) = match parsed {
        Ok(p) => p,
        Err(s) => return status(s),
    };
    let s = c.data_mut();
    if timeout_ms < 0 || !s.clusters.contains(&upstream) {
        return status(Status::BadArgument);
    }
    let has = |name: &[u8]| headers.iter().any(|(k, _)| k.as_slice() == name);
    if !(has(b":method") && has(b":path") && (has(b":authority") || has(b"host"))) {
        return status(Status::BadArgument);
    }
    let token = s.token(TokenKind::Http);
    // 0 means no timeout.
    let deadline = match timeout_ms {
        0 => u64::MAX,
        t => s
            .process
            .now()
            .saturating_add(u64::from(t as u32) * 1_000_000),
    };
    let context = s.root_id;
    s.http_calls.insert(
        token,
        HttpCall {
            token,
            context,
            upstream,
            headers,
            body,
            trailers,
            deadline,
        },
    );
    super::done(write_u32(&mut c, ret_token, token))
}

#[allow(clippy::too_many_arguments)]
fn grpc_call(
    mut c: Cx<'_>,
    up: i32,
    upl: i32,
    sp: i32,
    sl: i32,
    mp: i32,
    ml: i32,
    hp: i32,
    hl: i32,
    msgp: i32,
    msgl: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> HostResult {
    let message = match read(&mut c, msgp, msgl) {
        Ok(m) => m,
        Err(s) => return status(s),
    };
    open_grpc(
        c,
        (up, upl, sp, sl, mp, ml, hp, hl),
        Some(message),
        Some(timeout_ms as u32),
        ret_token,
    )
}

#[allow(clippy::too_many_arguments)]
fn grpc_stream(
    c: Cx<'_>,
    up: i32,
    upl: i32,
    sp: i32,
    sl: i32,
    mp: i32,
    ml: i32,
    hp: i32,
    hl: i32,
    ret_token: i32,
) -> HostResult {
    open_grpc(c, (up, upl, sp, sl, mp, ml, hp, hl), None, None, ret_token)
}

type Spans = (i32, i32, i32, i32, i32, i32, i32, i32);

fn open_grpc(
    mut c: Cx<'_>,
    (up, upl, sp, sl, mp, ml, hp, hl): Spans,
    message: Option<Vec<u8>>,
    timeout_ms: Option<u32>,
    ret_token: i32,
) -> HostResult {
    let parsed = (|| {
        Ok::<_, Status>((
            read(&mut c, up, upl)?,
            text(&mut c, sp, sl)?,
            text(&mut c, mp, ml)?,
            pairs(&mut c, hp, hl)?,
        ))
    })();
    let (target, service, method, metadata) = match parsed {
        Ok(p) => p,
        Err(s) => return status(s),
    };
    let s = c.data_mut();
    // Envoy reads the target as a serialized GrpcService first. One naming a cluster builds a
    // client without looking the cluster up; the call then fails inline for an unknown one
    // (InternalFailure). Anything else is a bare cluster name, and an unknown one is a parse
    // failure.
    let upstream = match envoy_grpc_cluster(&target) {
        Some(cluster) => {
            if !s.clusters.contains(&cluster) {
                return status(Status::InternalFailure);
            }
            cluster
        }
        None => {
            let name = String::from_utf8_lossy(&target).into_owned();
            if !s.clusters.contains(&name) {
                return status(Status::ParseFailure);
            }
            name
        }
    };
    let streaming = message.is_none();
    let token = s.token(if streaming {
        TokenKind::GrpcStream
    } else {
        TokenKind::GrpcCall
    });
    let now = s.process.now();
    let context = s.root_id;
    s.grpc_calls.insert(
        token,
        GrpcCall {
            token,
            context,
            upstream,
            service,
            method,
            metadata,
            messages: message.into_iter().collect(),
            streaming,
            half_closed: !streaming,
            deadline: timeout_ms
                .filter(|t| *t != 0)
                .map(|t| now.saturating_add(u64::from(t) * 1_000_000)),
        },
    );
    super::done(write_u32(&mut c, ret_token, token))
}

fn grpc_send(mut c: Cx<'_>, token: i32, mp: i32, ml: i32, end: i32) -> HostResult {
    let msg = match read(&mut c, mp, ml) {
        Ok(m) => m,
        Err(s) => return status(s),
    };
    let token = token as u32;
    if token % 4 != 2 {
        return status(Status::BadArgument);
    }
    match c.data_mut().grpc_calls.get_mut(&token) {
        Some(call) => {
            call.messages.push(msg);
            call.half_closed |= end != 0;
            status(Status::Ok)
        }
        None => status(Status::NotFound),
    }
}

fn get_status(mut c: Cx<'_>, ret_code: i32, ret_ptr: i32, ret_len: i32) -> HostResult {
    let (code, message) = c.data().status.clone();
    if let Err(s) = write_u32(&mut c, ret_code, code) {
        return status(s);
    }
    if message.is_empty() {
        let r = write_u32(&mut c, ret_ptr, 0).and_then(|()| write_u32(&mut c, ret_len, 0));
        return super::done(r);
    }
    Ok(give(&mut c, &message, ret_ptr, ret_len)? as i32)
}

/// The cluster of a serialized `GrpcService { envoy_grpc { cluster_name } }`, if `b` is exactly
/// that (one length-delimited field 1 holding one length-delimited field 1).
fn envoy_grpc_cluster(b: &[u8]) -> Option<String> {
    fn field1(b: &[u8]) -> Option<&[u8]> {
        // A one-byte length is all a cluster name this short needs.
        let (&tag, rest) = b.split_first()?;
        let (&len, rest) = rest.split_first()?;
        (tag == 0x0a && len < 0x80 && rest.len() == usize::from(len)).then_some(rest)
    }
    let name = field1(field1(b)?)?;
    String::from_utf8(name.to_vec()).ok()
}
