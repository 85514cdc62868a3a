//! The WASI subset Envoy provides (module `wasi_snapshot_preview1`). Standard output and
//! standard error go to the log (info and error); there are no files, no preopened
//! directories and no arguments; the clocks read the virtual clock; `proc_exit` ends the VM.

use wasmtime::Linker;
use wasmtime::Result;

use super::{read, write, write_u32, write_u64, Cx};
use crate::state::{level, VmState};

const WASI: &str = "wasi_snapshot_preview1";

/// WASI error numbers.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const NOSYS: i32 = 52;
    pub const NOTSUP: i32 = 58;
}

fn ok(r: Result<(), super::Status>) -> i32 {
    match r {
        Ok(()) => errno::SUCCESS,
        Err(_) => errno::FAULT,
    }
}

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap(WASI, "fd_write", fd_write)?;
    l.func_wrap(
        WASI,
        "fd_read",
        |_: Cx<'_>, _: i32, _: i32, _: i32, _: i32| errno::NOSYS,
    )?;
    // Closing and seeking succeed and do nothing.
    l.func_wrap(WASI, "fd_close", |_: Cx<'_>, _: i32| errno::SUCCESS)?;
    l.func_wrap(
        WASI,
        "fd_seek",
        |_: Cx<'_>, _: i32, _: i64, _: i32, _: i32| errno::SUCCESS,
    )?;
    l.func_wrap(WASI, "fd_fdstat_get", |mut c: Cx<'_>, fd: i32, ptr: i32| {
        if !(1..=2).contains(&fd) {
            return errno::BADF;
        }
        // File type and flags 0; the one right is FD_WRITE.
        let mut stat = [0u8; 24];
        stat[8..16].copy_from_slice(&64u64.to_le_bytes());
        ok(write(&mut c, ptr, &stat))
    })?;
    // No preopened directories: the guest's libc stops asking at the first BADF.
    l.func_wrap(WASI, "fd_prestat_get", |_: Cx<'_>, _: i32, _: i32| {
        errno::BADF
    })?;
    l.func_wrap(
        WASI,
        "fd_prestat_dir_name",
        |_: Cx<'_>, _: i32, _: i32, _: i32| errno::NOSYS,
    )?;
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Cx<'_>, count: i32, size: i32| {
            let env = environment(c.data());
            let total: usize = env.iter().map(|e| e.len() + 1).sum();
            ok(write_u32(&mut c, count, env.len() as u32)
                .and_then(|()| write_u32(&mut c, size, total as u32)))
        },
    )?;
    l.func_wrap(WASI, "environ_get", |mut c: Cx<'_>, ptrs: i32, buf: i32| {
        let env = environment(c.data());
        ok(write_strings(&mut c, &env, ptrs, buf))
    })?;
    l.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: Cx<'_>, count: i32, size: i32| {
            ok(write_u32(&mut c, count, 0).and_then(|()| write_u32(&mut c, size, 0)))
        },
    )?;
    l.func_wrap(WASI, "args_get", |_: Cx<'_>, _: i32, _: i32| errno::SUCCESS)?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Cx<'_>, id: i32, _precision: i64, ptr: i32| {
            // 0 realtime, 1 monotonic; the CPU-time clocks are not provided.
            if !(0..=1).contains(&id) {
                return errno::NOTSUP;
            }
            let now = c.data().process.now();
            ok(write_u64(&mut c, ptr, now))
        },
    )?;
    l.func_wrap(WASI, "random_get", random_get)?;
    // Envoy logs the call (at trace) and returns: what the guest does next decides.
    l.func_wrap(WASI, "proc_exit", |mut c: Cx<'_>, code: i32| {
        c.data_mut()
            .log(level::TRACE, format!("wasi proc_exit({code})"));
    })?;
    Ok(())
}

fn environment(s: &VmState) -> Vec<Vec<u8>> {
    s.spec
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}").into_bytes())
        .collect()
}

fn write_strings(
    c: &mut Cx<'_>,
    items: &[Vec<u8>],
    ptrs: i32,
    buf: i32,
) -> Result<(), super::Status> {
    let mut at = buf;
    for (i, item) in items.iter().enumerate() {
        write_u32(c, ptrs + 4 * i as i32, at as u32)?;
        write(c, at, item)?;
        write(c, at + item.len() as i32, &[0])?;
        at += item.len() as i32 + 1;
    }
    Ok(())
}

fn fd_write(mut c: Cx<'_>, fd: i32, iovs: i32, n: i32, written: i32) -> i32 {
    let level = match fd {
        1 => level::INFO,
        2 => level::ERROR,
        _ => return errno::BADF,
    };
    let mut out = Vec::new();
    for i in 0..n {
        let Ok(iov) = read(&mut c, iovs + 8 * i, 8) else {
            return errno::FAULT;
        };
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        match read(&mut c, ptr, len) {
            Ok(b) => out.extend_from_slice(&b),
            Err(_) => return errno::FAULT,
        }
    }
    let total = out.len() as u32;
    let text = String::from_utf8_lossy(&out);
    c.data_mut()
        .log(level, text.strip_suffix('\n').unwrap_or(&text).to_owned());
    ok(write_u32(&mut c, written, total))
}

/// Deterministic bytes (a test host wants repeatable runs), never the same twice in a VM; at most
/// 64 KiB per call, as in Envoy.
fn random_get(mut c: Cx<'_>, buf: i32, len: i32) -> i32 {
    if len as u32 > 65_536 {
        return errno::INVAL;
    }
    let mut out = Vec::with_capacity(len as u32 as usize);
    let s = c.data_mut();
    while out.len() < len as u32 as usize {
        // splitmix64
        s.random_state = s.random_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s.random_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len as u32 as usize);
    ok(write(&mut c, buf, &out))
}
