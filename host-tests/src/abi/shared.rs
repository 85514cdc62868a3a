//! Shared data and shared queues: process-wide, scoped by `vm_id`, as in Envoy.

use wasmtime::Linker;
use wasmtime::Result;

use super::{give, read, status, write_u32, Cx, HostResult, Status};
use crate::state::VmState;

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_get_shared_data", get_shared_data)?;
    l.func_wrap("env", "proxy_set_shared_data", set_shared_data)?;
    l.func_wrap("env", "proxy_register_shared_queue", register_queue)?;
    l.func_wrap("env", "proxy_resolve_shared_queue", resolve_queue)?;
    l.func_wrap("env", "proxy_dequeue_shared_queue", dequeue)?;
    l.func_wrap("env", "proxy_enqueue_shared_queue", enqueue)?;
    Ok(())
}

fn text(c: &mut Cx<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

fn get_shared_data(
    mut c: Cx<'_>,
    kp: i32,
    kl: i32,
    ret_ptr: i32,
    ret_len: i32,
    ret_cas: i32,
) -> HostResult {
    let key = match text(&mut c, kp, kl) {
        Ok(k) => k,
        Err(s) => return status(s),
    };
    let s = c.data();
    let (value, cas) = match s.process.guest_get_shared(&s.spec.vm_id, &key) {
        Ok(Some(found)) => found,
        Ok(None) => return status(Status::NotFound),
        Err(e) => return status(e),
    };
    if let Err(s) = write_u32(&mut c, ret_cas, cas) {
        return status(s);
    }
    if value.is_empty() {
        let r = write_u32(&mut c, ret_ptr, 0).and_then(|()| write_u32(&mut c, ret_len, 0));
        return super::done(r);
    }
    Ok(give(&mut c, &value, ret_ptr, ret_len)? as i32)
}

fn set_shared_data(mut c: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> HostResult {
    let (key, value) = match text(&mut c, kp, kl).and_then(|k| Ok((k, read(&mut c, vp, vl)?))) {
        Ok(kv) => kv,
        Err(s) => return status(s),
    };
    let s = c.data();
    status(s.process.set_shared(&s.spec.vm_id, &key, value, cas as u32))
}

fn register_queue(mut c: Cx<'_>, np: i32, nl: i32, ret_id: i32) -> HostResult {
    let name = match text(&mut c, np, nl) {
        Ok(n) => n,
        Err(s) => return status(s),
    };
    // A stream context registers on behalf of its root context, which gets the notifications.
    let s = c.data();
    let id = s
        .process
        .register_queue(&s.spec.vm_id, &name, (s.worker, s.root_id));
    super::done(write_u32(&mut c, ret_id, id))
}

fn resolve_queue(mut c: Cx<'_>, vp: i32, vl: i32, np: i32, nl: i32, ret_id: i32) -> HostResult {
    let (vm_id, name) = match text(&mut c, vp, vl).and_then(|v| Ok((v, text(&mut c, np, nl)?))) {
        Ok(vn) => vn,
        Err(s) => return status(s),
    };
    // An empty vm_id means this VM's own.
    let s = c.data();
    let vm_id = if vm_id.is_empty() {
        s.spec.vm_id.clone()
    } else {
        vm_id
    };
    match s.process.resolve_queue(&vm_id, &name) {
        Some(id) => super::done(write_u32(&mut c, ret_id, id)),
        None => status(Status::NotFound),
    }
}

fn dequeue(mut c: Cx<'_>, id: i32, ret_ptr: i32, ret_len: i32) -> HostResult {
    match c.data().process.dequeue(id as u32) {
        Ok(item) if item.is_empty() => {
            let r = write_u32(&mut c, ret_ptr, 0).and_then(|()| write_u32(&mut c, ret_len, 0));
            super::done(r)
        }
        Ok(item) => Ok(give(&mut c, &item, ret_ptr, ret_len)? as i32),
        Err(s) => status(s),
    }
}

fn enqueue(mut c: Cx<'_>, id: i32, vp: i32, vl: i32) -> HostResult {
    let item = match read(&mut c, vp, vl) {
        Ok(v) => v,
        Err(s) => return status(s),
    };
    status(c.data().process.enqueue(id as u32, item))
}
