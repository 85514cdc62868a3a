//! Metrics: each VM maps its ids to names; the values live in the process's stats store, summed
//! over workers as Envoy's `/stats` shows them (there under the `wasmcustom.` prefix).

use wasmtime::Linker;
use wasmtime::Result;

use super::{read_str, status, write_u32, write_u64, Cx, HostResult, Status};
use crate::process::MetricKind;
use crate::state::VmState;

pub(super) fn add(l: &mut Linker<VmState>) -> Result<()> {
    l.func_wrap("env", "proxy_define_metric", define)?;
    l.func_wrap("env", "proxy_increment_metric", increment)?;
    l.func_wrap("env", "proxy_record_metric", record)?;
    l.func_wrap("env", "proxy_get_metric", get)?;
    Ok(())
}

/// Ids step by 4 and carry the kind in their two low bits, as Envoy's do.
fn id_of(index: usize, kind: MetricKind) -> u32 {
    ((index as u32 + 1) << 2) | kind as u32
}

fn lookup(s: &VmState, id: i32) -> Option<(String, MetricKind)> {
    let index = ((id as u32) >> 2).checked_sub(1)? as usize;
    let (name, kind) = s.metric_ids.get(index)?;
    (id_of(index, *kind) == id as u32).then(|| (name.clone(), *kind))
}

fn define(mut c: Cx<'_>, ty: i32, np: i32, nl: i32, ret: i32) -> HostResult {
    let Some(kind) = MetricKind::from_abi(ty) else {
        return status(Status::BadArgument);
    };
    let name = match read_str(&mut c, np, nl) {
        Ok(n) => n,
        Err(s) => return status(s),
    };
    let s = c.data_mut();
    if let Err(e) = s.process.define_metric(&name, kind) {
        return status(e);
    }
    // Defining a name again gives a new id for the same stat, as in Envoy.
    s.metric_ids.push((name, kind));
    let index = s.metric_ids.len() - 1;
    super::done(write_u32(&mut c, ret, id_of(index, kind)))
}

fn increment(c: Cx<'_>, id: i32, offset: i64) -> HostResult {
    let Some((name, kind)) = lookup(c.data(), id) else {
        return status(Status::NotFound);
    };
    status(c.data().process.update_metric(&name, |m| match kind {
        MetricKind::Counter if offset <= 0 => Status::BadArgument,
        MetricKind::Counter | MetricKind::Gauge => {
            m.value = m.value.saturating_add(offset);
            Status::Ok
        }
        MetricKind::Histogram => Status::BadArgument,
    }))
}

fn record(c: Cx<'_>, id: i32, value: i64) -> HostResult {
    let Some((name, kind)) = lookup(c.data(), id) else {
        return status(Status::NotFound);
    };
    status(c.data().process.update_metric(&name, |m| {
        // Recording on a counter adds; on a gauge it sets.
        match kind {
            MetricKind::Counter => m.value = m.value.saturating_add(value),
            MetricKind::Gauge => m.value = value,
            MetricKind::Histogram => {
                m.samples.push(value as u64);
                m.value += 1;
            }
        }
        Status::Ok
    }))
}

fn get(mut c: Cx<'_>, id: i32, ret: i32) -> HostResult {
    let Some((name, kind)) = lookup(c.data(), id) else {
        return status(Status::NotFound);
    };
    if kind == MetricKind::Histogram {
        return status(Status::BadArgument);
    }
    let Some(m) = c.data().process.metric(&name) else {
        return status(Status::NotFound);
    };
    super::done(write_u64(&mut c, ret, m.value as u64))
}
