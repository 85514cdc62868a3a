//! Logging, time, ticks, the effective context, foreign functions and `proxy_done`.

use wasmtime::Linker;
use wasmtime::Result;

use super::{done, give, read, read_str, status, write_u32, write_u64, Cx, HostResult, Status};
use crate::state::VmState;

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_log", proxy_log)?;
    l.func_wrap("env", "proxy_get_log_level", |mut c: Cx<'_>, ret: i32| {
        let level = c.data().spec.log_level;
        done(write_u32(&mut c, ret, level))
    })?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Cx<'_>, ret: i32| {
            let now = c.data().process.now();
            done(write_u64(&mut c, ret, now))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Cx<'_>, period: i32| {
            // The timer belongs to the root context, whoever asks; 0 stops it.
            c.data_mut().tick_ms = period as u32;
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Cx<'_>, id: i32| {
            let id = id as u32;
            let s = c.data_mut();
            if id != s.root_id && !s.streams.contains_key(&id) {
                return status(Status::BadArgument);
            }
            s.effective = id;
            status(Status::Ok)
        },
    )?;
    // Only a root context whose `proxy_on_done` returned false may say it is done.
    l.func_wrap("env", "proxy_done", |mut c: Cx<'_>| {
        let s = c.data_mut();
        if !s.root_pending_done {
            return status(Status::NotFound);
        }
        s.root_pending_done = false;
        s.root_done = true;
        status(Status::Ok)
    })?;
    l.func_wrap("env", "proxy_call_foreign_function", call_foreign_function)?;
    Ok(())
}

fn proxy_log(mut c: Cx<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    let msg = match read(&mut c, ptr, len) {
        Ok(m) => m,
        Err(s) => return status(s),
    };
    if level as u32 > 5 {
        return status(Status::BadArgument);
    }
    c.data_mut()
        .log(level as u32, String::from_utf8_lossy(&msg).into_owned());
    status(Status::Ok)
}

/// Envoy registers a few foreign functions; this host implements the one whose effect a test
/// can observe without Envoy's internals (`clear_route_cache`, a no-op here) and answers every
/// other name as Envoy answers an unregistered one.
fn call_foreign_function(
    mut c: Cx<'_>,
    name_ptr: i32,
    name_len: i32,
    args_ptr: i32,
    args_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    let name = match read_str(&mut c, name_ptr, name_len) {
        Ok(n) => n,
        Err(s) => return status(s),
    };
    if let Err(s) = read(&mut c, args_ptr, args_len) {
        return status(s);
    }
    match name.as_str() {
        "clear_route_cache" => Ok(give(&mut c, &[], ret_ptr, ret_len)? as i32),
        _ => status(Status::NotFound),
    }
}
