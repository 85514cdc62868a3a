//! The probe: a proxy-wasm guest written against the raw ABI, for the host's own tests.
//!
//! Each request names a scenario in `x-probe`; the probe runs it in `proxy_on_request_headers`
//! and answers with a local 200 whose body lists what it saw, one `name=value` per line
//! (statuses as numbers). Scenarios that must let the request go on (`forward`, `body`,
//! `callout`) do so instead. Every callback is logged as `cb <name> <context>` at debug level,
//! so a test can check the lifecycle's order.
//!
//! Test code: it uses `unsafe` for the raw imports, and unwraps.

#![allow(unsafe_code, clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;

mod abi {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_log(level: u32, p: *const u8, n: usize) -> u32;
        pub fn proxy_get_log_level(ret: *mut u32) -> u32;
        pub fn proxy_get_current_time_nanoseconds(ret: *mut u64) -> u32;
        pub fn proxy_set_tick_period_milliseconds(ms: u32) -> u32;
        pub fn proxy_get_buffer_bytes(
            t: u32,
            s: usize,
            m: usize,
            rp: *mut *mut u8,
            rn: *mut usize,
        ) -> u32;
        pub fn proxy_set_buffer_bytes(t: u32, s: usize, m: usize, p: *const u8, n: usize) -> u32;
        pub fn proxy_get_buffer_status(t: u32, len: *mut usize, flags: *mut u32) -> u32;
        pub fn proxy_get_header_map_pairs(t: u32, rp: *mut *mut u8, rn: *mut usize) -> u32;
        pub fn proxy_set_header_map_pairs(t: u32, p: *const u8, n: usize) -> u32;
        pub fn proxy_get_header_map_value(
            t: u32,
            kp: *const u8,
            kn: usize,
            rp: *mut *mut u8,
            rn: *mut usize,
        ) -> u32;
        pub fn proxy_add_header_map_value(
            t: u32,
            kp: *const u8,
            kn: usize,
            vp: *const u8,
            vn: usize,
        ) -> u32;
        pub fn proxy_replace_header_map_value(
            t: u32,
            kp: *const u8,
            kn: usize,
            vp: *const u8,
            vn: usize,
        ) -> u32;
        pub fn proxy_remove_header_map_value(t: u32, kp: *const u8, kn: usize) -> u32;
        pub fn proxy_get_header_map_size(t: u32, ret: *mut usize) -> u32;
        pub fn proxy_get_property(p: *const u8, n: usize, rp: *mut *mut u8, rn: *mut usize) -> u32;
        pub fn proxy_set_property(p: *const u8, n: usize, vp: *const u8, vn: usize) -> u32;
        pub fn proxy_get_shared_data(
            kp: *const u8,
            kn: usize,
            rp: *mut *mut u8,
            rn: *mut usize,
            cas: *mut u32,
        ) -> u32;
        pub fn proxy_set_shared_data(
            kp: *const u8,
            kn: usize,
            vp: *const u8,
            vn: usize,
            cas: u32,
        ) -> u32;
        pub fn proxy_register_shared_queue(p: *const u8, n: usize, ret: *mut u32) -> u32;
        pub fn proxy_resolve_shared_queue(
            vp: *const u8,
            vn: usize,
            p: *const u8,
            n: usize,
            ret: *mut u32,
        ) -> u32;
        pub fn proxy_dequeue_shared_queue(id: u32, rp: *mut *mut u8, rn: *mut usize) -> u32;
        pub fn proxy_enqueue_shared_queue(id: u32, p: *const u8, n: usize) -> u32;
        pub fn proxy_continue_stream(t: u32) -> u32;
        pub fn proxy_close_stream(t: u32) -> u32;
        pub fn proxy_send_local_response(
            code: u32,
            dp: *const u8,
            dn: usize,
            bp: *const u8,
            bn: usize,
            hp: *const u8,
            hn: usize,
            grpc: i32,
        ) -> u32;
        pub fn proxy_http_call(
            up: *const u8,
            un: usize,
            hp: *const u8,
            hn: usize,
            bp: *const u8,
            bn: usize,
            tp: *const u8,
            tn: usize,
            timeout: u32,
            ret: *mut u32,
        ) -> u32;
        pub fn proxy_grpc_call(
            up: *const u8,
            un: usize,
            sp: *const u8,
            sn: usize,
            mp: *const u8,
            mn: usize,
            hp: *const u8,
            hn: usize,
            msgp: *const u8,
            msgn: usize,
            timeout: u32,
            ret: *mut u32,
        ) -> u32;
        pub fn proxy_grpc_stream(
            up: *const u8,
            un: usize,
            sp: *const u8,
            sn: usize,
            mp: *const u8,
            mn: usize,
            hp: *const u8,
            hn: usize,
            ret: *mut u32,
        ) -> u32;
        pub fn proxy_grpc_send(t: u32, p: *const u8, n: usize, end: u32) -> u32;
        pub fn proxy_grpc_cancel(t: u32) -> u32;
        pub fn proxy_grpc_close(t: u32) -> u32;
        pub fn proxy_get_status(code: *mut u32, rp: *mut *mut u8, rn: *mut usize) -> u32;
        pub fn proxy_set_effective_context(id: u32) -> u32;
        pub fn proxy_call_foreign_function(
            np: *const u8,
            nn: usize,
            ap: *const u8,
            an: usize,
            rp: *mut *mut u8,
            rn: *mut usize,
        ) -> u32;
        pub fn proxy_done() -> u32;
        pub fn proxy_define_metric(t: u32, p: *const u8, n: usize, ret: *mut u32) -> u32;
        pub fn proxy_increment_metric(id: u32, off: i64) -> u32;
        pub fn proxy_record_metric(id: u32, v: u64) -> u32;
        pub fn proxy_get_metric(id: u32, ret: *mut u64) -> u32;
    }
}

// ---- small safe wrappers: (status, value) ----

fn take(p: *mut u8, n: usize) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    // Memory the host got from proxy_on_memory_allocate: a leaked Vec of capacity n.
    Some(unsafe { Vec::from_raw_parts(p, n, n) })
}

fn log(msg: &str) {
    unsafe { abi::proxy_log(1, msg.as_ptr(), msg.len()) };
}

fn pairs(list: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (list.len() as u32).to_le_bytes().to_vec();
    for (k, v) in list {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in list {
        out.extend(k.as_bytes());
        out.push(0);
        out.extend(v.as_bytes());
        out.push(0);
    }
    out
}

fn unpairs(b: &[u8]) -> Vec<(String, String)> {
    if b.len() < 4 {
        return Vec::new();
    }
    let w = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let n = w(0);
    let mut at = 4 + 8 * n;
    let mut out = Vec::new();
    for i in 0..n {
        let (kl, vl) = (w(4 + 8 * i), w(8 + 8 * i));
        let k = String::from_utf8_lossy(&b[at..at + kl]).into_owned();
        at += kl + 1;
        let v = String::from_utf8_lossy(&b[at..at + vl]).into_owned();
        at += vl + 1;
        out.push((k, v));
    }
    out
}

fn get_header(t: u32, k: &str) -> (u32, Option<String>) {
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let s = unsafe { abi::proxy_get_header_map_value(t, k.as_ptr(), k.len(), &mut p, &mut n) };
    (
        s,
        take(p, n).map(|v| String::from_utf8_lossy(&v).into_owned()),
    )
}

fn get_pairs(t: u32) -> (u32, Option<Vec<(String, String)>>) {
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let s = unsafe { abi::proxy_get_header_map_pairs(t, &mut p, &mut n) };
    (s, take(p, n).map(|b| unpairs(&b)))
}

fn add_header(t: u32, k: &str, v: &str) -> u32 {
    unsafe { abi::proxy_add_header_map_value(t, k.as_ptr(), k.len(), v.as_ptr(), v.len()) }
}

fn get_buffer(t: u32, start: usize, max: usize) -> (u32, Option<Vec<u8>>) {
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let s = unsafe { abi::proxy_get_buffer_bytes(t, start, max, &mut p, &mut n) };
    (s, take(p, n))
}

fn get_property(path: &[&str]) -> (u32, Option<Vec<u8>>) {
    let joined = path.join("\0");
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let s = unsafe { abi::proxy_get_property(joined.as_ptr(), joined.len(), &mut p, &mut n) };
    (s, take(p, n))
}

fn get_shared(k: &str) -> (u32, Option<Vec<u8>>, u32) {
    let (mut p, mut n, mut cas) = (std::ptr::null_mut(), 0, 0);
    let s = unsafe { abi::proxy_get_shared_data(k.as_ptr(), k.len(), &mut p, &mut n, &mut cas) };
    (s, take(p, n), cas)
}

fn set_shared(k: &str, v: &[u8], cas: u32) -> u32 {
    unsafe { abi::proxy_set_shared_data(k.as_ptr(), k.len(), v.as_ptr(), v.len(), cas) }
}

fn define(t: u32, name: &str) -> (u32, u32) {
    let mut id = 0;
    let s = unsafe { abi::proxy_define_metric(t, name.as_ptr(), name.len(), &mut id) };
    (s, id)
}

fn get_metric(id: u32) -> (u32, u64) {
    let mut v = 0;
    let s = unsafe { abi::proxy_get_metric(id, &mut v) };
    (s, v)
}

fn local(code: u32, details: &str, body: &str, headers: &[(&str, &str)]) -> u32 {
    let h = pairs(headers);
    unsafe {
        abi::proxy_send_local_response(
            code,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            h.as_ptr(),
            h.len(),
            -1,
        )
    }
}

fn text(v: &Option<Vec<u8>>) -> String {
    v.as_ref()
        .map_or("(none)".into(), |v| String::from_utf8_lossy(v).into_owned())
}

// ---- state ----

#[derive(Default)]
struct State {
    root: u32,
    /// Callout token → the stream that waits for it.
    waiting: HashMap<u32, u32>,
    /// Request bodies seen per stream, for the `body` scenario.
    scenario: HashMap<u32, String>,
    ticks_metric: u32,
    done_later: bool,
    /// on_done(root) said "not yet": the next tick calls proxy_done.
    shutting_down: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

// ---- exports ----

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut v: Vec<u8> = Vec::with_capacity(size);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(id: u32, root: u32) {
    log(&format!("cb context_create {id} {root}"));
    if root == 0 {
        with(|s| s.root = id);
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(id: u32, _size: usize) -> u32 {
    log(&format!("cb vm_start {id}"));
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(id: u32, size: usize) -> u32 {
    let (s, cfg) = get_buffer(7, 0, size);
    let cfg = text(&cfg);
    log(&format!("cb configure {id} status={s} config={cfg}"));
    let (_, ticks) = define(0, "probe.ticks");
    with(|st| st.ticks_metric = ticks);
    for item in cfg.split(',') {
        match item.split_once('=') {
            Some(("tick", ms)) => {
                unsafe { abi::proxy_set_tick_period_milliseconds(ms.parse().unwrap()) };
            }
            Some(("done", "later")) => with(|st| st.done_later = true),
            _ if item == "refuse" => {
                log("probe: configuration refused");
                return 0;
            }
            _ => {}
        }
    }
    // Writing to stdout and stderr goes to the log.
    println!("probe stdout");
    eprintln!("probe stderr");
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(id: u32) {
    log(&format!("cb tick {id}"));
    let m = with(|s| s.ticks_metric);
    unsafe { abi::proxy_increment_metric(m, 1) };
    if with(|s| s.shutting_down) {
        let d = unsafe { abi::proxy_done() };
        log(&format!("proxy_done={d}"));
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(id: u32, queue: u32) {
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let s = unsafe { abi::proxy_dequeue_shared_queue(queue, &mut p, &mut n) };
    log(&format!(
        "cb queue_ready {id} {queue} status={s} item={}",
        text(&take(p, n))
    ));
}

#[no_mangle]
pub extern "C" fn proxy_on_done(id: u32) -> u32 {
    log(&format!("cb done {id}"));
    let root = with(|s| s.root);
    let later = id == root && with(|s| s.done_later);
    if later {
        with(|s| s.shutting_down = true);
    }
    u32::from(!later)
}

#[no_mangle]
pub extern "C" fn proxy_on_log(id: u32) {
    let (s, path) = get_header(0, ":path");
    let (rs, status) = get_header(2, ":status");
    let add = add_header(0, "x-late", "1");
    log(&format!(
        "cb log {id} path={s}:{} status={rs}:{} add={add}",
        path.unwrap_or_default(),
        status.unwrap_or_default()
    ));
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(id: u32) {
    log(&format!("cb delete {id}"));
    with(|s| s.scenario.remove(&id));
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(id: u32, n: u32, eos: u32) -> u32 {
    log(&format!("cb request_headers {id} {n} {eos}"));
    let (_, scenario) = get_header(0, "x-probe");
    let scenario = scenario.unwrap_or_default();
    with(|s| s.scenario.insert(id, scenario.clone()));
    let mut out = String::new();
    let action = match scenario.as_str() {
        "forward" => {
            add_header(0, "x-probe-added", "yes");
            unsafe { abi::proxy_remove_header_map_value(0, "x-drop".as_ptr(), 6) };
            0
        }
        "body" => 0,
        // ContinueAndEndStream, which Envoy treats as Continue.
        "continue-end" => 2,
        "pause" => 1,
        "trap" => std::process::abort(),
        "close" => {
            let s = unsafe { abi::proxy_close_stream(0) };
            log(&format!("close={s}"));
            1
        }
        "callout" => callout(id, &mut out),
        "grpc" => {
            grpc(&mut out);
            report(&out)
        }
        "headers" => {
            headers(&mut out);
            report(&out)
        }
        "properties" => {
            properties(&mut out);
            report(&out)
        }
        "shared" => {
            shared(&mut out);
            report(&out)
        }
        "incr" => {
            incr(&mut out);
            report(&out)
        }
        "queue" => {
            queue(&mut out);
            report(&out)
        }
        "metrics" => {
            metrics(&mut out);
            report(&out)
        }
        "buffers" => {
            buffers(&mut out);
            report(&out)
        }
        "misc" => {
            misc(&mut out);
            report(&out)
        }
        // A local reply whose header order is compared with Envoy's (marked as the plugin's
        // own answer, so the edges' local_reply_config leaves it alone).
        "reply-order" | "reply-order-ct" | "reply-empty" => {
            add_header(0, "x-tollgate-refused", "1");
            let s = match scenario.as_str() {
                "reply-order" => local(200, "probe_order", "abc", &[("x-b", "2"), ("x-a", "1")]),
                "reply-order-ct" => local(
                    200,
                    "probe_order",
                    "abc",
                    &[("x-b", "2"), ("content-type", "text/x-probe"), ("x-a", "1")],
                ),
                _ => local(403, "probe_empty", "", &[("x-a", "1")]),
            };
            log(&format!("local={s}"));
            0
        }
        // The body passes through as it comes (Continue on every chunk).
        "stream-body" => 0,
        // Forwarded; the response side is what these scenarios are about.
        "hold-response" | "lf-header" | "hold-body" => 0,
        "local" => {
            let s = local(
                418,
                "probe said\tno",
                "short and stout",
                &[("x-probe", "teapot")],
            );
            let again = local(500, "second", "", &[]);
            log(&format!("local={s} again={again}"));
            0
        }
        _ => {
            let _ = write!(out, "unknown scenario {scenario:?}");
            report(&out)
        }
    };
    action
}

/// Answers 200 with the report; the callback returns Continue, which the local response
/// overrides. The request is marked as the edges expect of their plugin's own answers, so
/// their `local_reply_config` leaves the body alone.
fn report(out: &str) -> u32 {
    add_header(0, "x-tollgate-refused", "1");
    local(200, "probe_report", out, &[("content-type", "text/plain")]);
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(id: u32, size: usize, eos: u32) -> u32 {
    log(&format!("cb request_body {id} {size} {eos}"));
    match scenario_of(id).as_str() {
        "stream-body" => return 0,
        // Buffer the whole body and pass it on unchanged.
        "hold-body" => return u32::from(eos == 0),
        _ => {}
    }
    let (s, body) = get_buffer(0, 0, size);
    log(&format!("body status={s} seen={}", text(&body)));
    if eos == 0 {
        // Buffer until the end.
        return 1;
    }
    let (hs, _) = get_header(0, ":path");
    log(&format!("headers during body status={hs}"));
    let new = format!("[{}]", text(&body));
    let s = unsafe { abi::proxy_set_buffer_bytes(0, 0, size, new.as_ptr(), new.len()) };
    let mid = unsafe { abi::proxy_set_buffer_bytes(0, 2, 1, new.as_ptr(), 1) };
    log(&format!("replace={s} mid={mid}"));
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(id: u32, n: u32) -> u32 {
    log(&format!("cb request_trailers {id} {n}"));
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(id: u32, n: u32, eos: u32) -> u32 {
    let (_, status) = get_header(2, ":status");
    let (rq, _) = get_header(0, ":path");
    log(&format!(
        "cb response_headers {id} {n} {eos} status={} request_headers={rq}",
        status.unwrap_or_default()
    ));
    add_header(2, "x-probe-response", "seen");
    let names: Vec<String> = get_pairs(2)
        .1
        .unwrap_or_default()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    log(&format!("response header names={}", names.join(",")));
    if scenario_of(id) == "lf-header" {
        let s = add_header(2, "x-probe-lf", "a\nb");
        log(&format!("add lf={s}"));
    }
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(id: u32, size: usize, eos: u32) -> u32 {
    log(&format!("cb response_body {id} {size} {eos}"));
    if scenario_of(id) == "hold-response" && eos == 0 {
        // Buffer the whole response body.
        return 1;
    }
    0
}

fn scenario_of(id: u32) -> String {
    with(|s| s.scenario.get(&id).cloned().unwrap_or_default())
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(id: u32, n: u32) -> u32 {
    log(&format!("cb response_trailers {id} {n}"));
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(id: u32, token: u32, nh: u32, size: usize, nt: u32) {
    let (_, status) = get_header(6, ":status");
    let (bs, body) = get_buffer(4, 0, size);
    let (mut code, mut p, mut n) = (0, std::ptr::null_mut(), 0);
    unsafe { abi::proxy_get_status(&mut code, &mut p, &mut n) };
    let msg = text(&take(p, n));
    log(&format!(
        "cb http_call_response {id} {token} {nh} {size} {nt} status={} body={bs}:{} get_status={code}:{msg}",
        status.clone().unwrap_or_default(),
        text(&body)
    ));
    let Some(stream) = with(|s| s.waiting.remove(&token)) else {
        return;
    };
    let e = unsafe { abi::proxy_set_effective_context(stream) };
    log(&format!("effective={e}"));
    if status.as_deref() == Some("200") {
        add_header(0, "x-authorized", text(&body).as_str());
        unsafe { abi::proxy_continue_stream(0) };
    } else {
        local(403, "callout_denied", "denied by callout", &[]);
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive_initial_metadata(id: u32, token: u32, n: u32) {
    let (_, md) = get_pairs(4);
    log(&format!(
        "cb grpc_initial {id} {token} {n} {:?}",
        md.unwrap_or_default()
    ));
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive(id: u32, token: u32, size: usize) {
    let (_, msg) = get_buffer(5, 0, size);
    log(&format!(
        "cb grpc_receive {id} {token} {size} {}",
        text(&msg)
    ));
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive_trailing_metadata(id: u32, token: u32, n: u32) {
    log(&format!("cb grpc_trailing {id} {token} {n}"));
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_close(id: u32, token: u32, code: u32) {
    let (mut c, mut p, mut n) = (0, std::ptr::null_mut(), 0);
    unsafe { abi::proxy_get_status(&mut c, &mut p, &mut n) };
    log(&format!(
        "cb grpc_close {id} {token} {code} get_status={c}:{}",
        text(&take(p, n))
    ));
}

// ---- scenarios ----

fn headers(out: &mut String) {
    let (s, v) = get_header(0, "x-missing");
    let _ = writeln!(out, "get_missing={s}:{}", v.is_none());
    let _ = writeln!(out, "add1={}", add_header(0, "X-Multi", "1"));
    add_header(0, "x-multi", "2");
    let (s, v) = get_header(0, "x-multi");
    let _ = writeln!(out, "get_first={s}:{}", v.unwrap_or_default());
    let r =
        unsafe { abi::proxy_replace_header_map_value(0, "x-multi".as_ptr(), 7, "3".as_ptr(), 1) };
    let (_, all) = get_pairs(0);
    let multi: Vec<String> = all
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "x-multi")
        .map(|(_, v)| v)
        .collect();
    let _ = writeln!(out, "replace={r}:{}", multi.join("|"));
    let rm = unsafe { abi::proxy_remove_header_map_value(0, "x-multi".as_ptr(), 7) };
    let rm2 = unsafe { abi::proxy_remove_header_map_value(0, "x-never".as_ptr(), 7) };
    let _ = writeln!(out, "remove={rm}:{rm2}");
    let (_, first) = get_pairs(0);
    let first = first.unwrap_or_default();
    let _ = writeln!(
        out,
        "pseudo={}",
        first
            .iter()
            .filter(|(k, _)| k.starts_with(':'))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut size = 0;
    let ss = unsafe { abi::proxy_get_header_map_size(0, &mut size) };
    let expect: usize = first.iter().map(|(k, v)| k.len() + v.len()).sum();
    let _ = writeln!(out, "size={ss}:{}", size == expect);
    let (s, v) = get_pairs(2);
    let _ = writeln!(out, "response_pairs_now={s}:{}", v.is_none());
    let (s, _) = get_header(2, ":status");
    let _ = writeln!(out, "response_value_now={s}");
    let (s, _) = get_header(9, "x");
    let _ = writeln!(out, "bad_type={s}");
    let (s, _) = get_header(6, ":status");
    let _ = writeln!(out, "callout_map_now={s}");
    let set = pairs(&[
        (":method", "GET"),
        (":path", "/rewritten"),
        (":authority", "a"),
        ("x-only", "1"),
    ]);
    let s = unsafe { abi::proxy_set_header_map_pairs(0, set.as_ptr(), set.len()) };
    let (_, after) = get_pairs(0);
    let _ = writeln!(out, "set_pairs={s}:{}", after.unwrap_or_default().len());
}

fn properties(out: &mut String) {
    let (s, v) = get_property(&["source", "address"]);
    let _ = writeln!(out, "source.address={s}:{}", text(&v));
    let (s, v) = get_property(&["source", "port"]);
    let port = v.map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap()));
    let _ = writeln!(out, "source.port={s}:{port}");
    for path in [
        ["request", "path"],
        ["request", "method"],
        ["request", "id"],
    ] {
        let (s, v) = get_property(&path);
        let _ = writeln!(out, "{}={s}:{}", path.join("."), text(&v));
    }
    for name in ["plugin_name", "plugin_vm_id"] {
        let (s, v) = get_property(&[name]);
        let _ = writeln!(out, "{name}={s}:{}", text(&v));
    }
    let (s, v) = get_property(&["request", "time"]);
    let t = v.map_or(0, |b| i64::from_le_bytes(b.try_into().unwrap()));
    let _ = writeln!(out, "request.time={s}:{t}");
    let (s, _) = get_property(&["no", "such"]);
    let _ = writeln!(out, "missing={s}");
    let (k, val) = ("probe_key", "probe value");
    let s = unsafe { abi::proxy_set_property(k.as_ptr(), k.len(), val.as_ptr(), val.len()) };
    let (g, v) = get_property(&[k]);
    let _ = writeln!(out, "set_property={s}:{g}:{}", text(&v));
}

fn shared(out: &mut String) {
    let (s, _, _) = get_shared("probe/missing");
    let _ = writeln!(out, "get_missing={s}");
    let s1 = set_shared("probe/k", b"v1", 0);
    let (g, v, cas1) = get_shared("probe/k");
    let _ = writeln!(
        out,
        "set={s1} get={g}:{} cas_nonzero={}",
        text(&v),
        cas1 != 0
    );
    let s2 = set_shared("probe/k", b"v2", cas1);
    let stale = set_shared("probe/k", b"v3", cas1);
    let (_, v, cas2) = get_shared("probe/k");
    let _ = writeln!(
        out,
        "cas_ok={s2} stale={stale} now={} cas_changed={}",
        text(&v),
        cas2 != cas1
    );
    let fresh = set_shared("probe/new", b"n", 12345);
    let _ = writeln!(out, "missing_key_with_cas={fresh}");
    let empty = set_shared("probe/empty", b"", 0);
    let (g, v, _) = get_shared("probe/empty");
    let _ = writeln!(out, "empty={empty}:{g}:{}", v.is_none());
}

/// Increments the shared counter `n` with a CAS loop; reports the retries.
fn incr(out: &mut String) {
    let mut retries = 0;
    loop {
        let (s, v, cas) = get_shared("n");
        let n: u64 = if s == 0 {
            text(&v).parse().unwrap_or(0)
        } else {
            0
        };
        let r = set_shared("n", (n + 1).to_string().as_bytes(), cas);
        if r == 0 {
            break;
        }
        retries += 1;
    }
    let _ = writeln!(out, "retries={retries}");
}

fn queue(out: &mut String) {
    let name = "probe-q";
    let (mut id, mut again, mut resolved) = (0, 0, 0);
    let r = unsafe { abi::proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) };
    unsafe { abi::proxy_register_shared_queue(name.as_ptr(), name.len(), &mut again) };
    // An empty vm_id means the VM's own.
    let vm = "";
    let rs = unsafe {
        abi::proxy_resolve_shared_queue(
            vm.as_ptr(),
            vm.len(),
            name.as_ptr(),
            name.len(),
            &mut resolved,
        )
    };
    let _ = writeln!(
        out,
        "register={r} same={} resolve={rs}:{}",
        id == again,
        id == resolved
    );
    let mut none = 0;
    let missing = unsafe {
        abi::proxy_resolve_shared_queue(vm.as_ptr(), vm.len(), "nope".as_ptr(), 4, &mut none)
    };
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let empty = unsafe { abi::proxy_dequeue_shared_queue(id, &mut p, &mut n) };
    let e1 = unsafe { abi::proxy_enqueue_shared_queue(id, "one".as_ptr(), 3) };
    let bad = unsafe { abi::proxy_enqueue_shared_queue(id + 1000, "x".as_ptr(), 1) };
    let _ = writeln!(
        out,
        "resolve_missing={missing} dequeue_empty={empty} enqueue={e1} enqueue_unknown={bad}"
    );
}

fn metrics(out: &mut String) {
    let (s, c) = define(0, "probe.c");
    let (_, c2) = define(0, "probe.c");
    let (_, g) = define(1, "probe.g");
    let (_, h) = define(2, "probe.h");
    let (bad, _) = define(7, "probe.bad");
    let _ = writeln!(
        out,
        "define={s} kinds={}{}{} step4={} redefine_new_id={} bad_type={bad}",
        c & 3,
        g & 3,
        h & 3,
        c % 4 == 0,
        c != c2
    );
    let zero = unsafe { abi::proxy_increment_metric(c, 0) };
    let neg = unsafe { abi::proxy_increment_metric(c, -1) };
    let five = unsafe { abi::proxy_increment_metric(c2, 5) };
    let rec = unsafe { abi::proxy_record_metric(c, 2) };
    let _ = writeln!(
        out,
        "counter_inc0={zero} inc_neg={neg} inc5={five} record={rec} value={}",
        get_metric(c).1
    );
    unsafe { abi::proxy_record_metric(g, 10) };
    unsafe { abi::proxy_increment_metric(g, -3) };
    let _ = writeln!(out, "gauge={}", get_metric(g).1);
    let hr = unsafe { abi::proxy_record_metric(h, 42) };
    let hi = unsafe { abi::proxy_increment_metric(h, 1) };
    let _ = writeln!(
        out,
        "hist_record={hr} hist_inc={hi} hist_get={}",
        get_metric(h).0
    );
    let _ = writeln!(out, "unknown_get={}", get_metric(4000 + 1).0);
}

fn buffers(out: &mut String) {
    let (s, b) = get_buffer(0, 0, 100);
    let _ = writeln!(out, "request_body_in_headers={s}:{}", b.is_none());
    let (s, _) = get_buffer(7, 0, 100);
    let _ = writeln!(out, "plugin_config_now={s}");
    let (s, b) = get_buffer(6, 0, 100);
    let _ = writeln!(out, "vm_config={s}:{}", text(&b));
    let (s, _) = get_buffer(4, 0, 10);
    let _ = writeln!(out, "callout_body_now={s}");
    let (s, _) = get_buffer(99, 0, 10);
    let _ = writeln!(out, "bad_type={s}");
    let (s, _) = get_buffer(6, 1, usize::MAX);
    let _ = writeln!(out, "overflow={s}");
    let s = unsafe { abi::proxy_set_buffer_bytes(0, 0, 0, "x".as_ptr(), 1) };
    let _ = writeln!(out, "set_body_in_headers={s}");
    let (mut len, mut flags) = (7, 7);
    let s = unsafe { abi::proxy_get_buffer_status(6, &mut len, &mut flags) };
    let _ = writeln!(out, "status={s}:{len}:{flags}");
}

fn misc(out: &mut String) {
    let mut level = 99;
    let l = unsafe { abi::proxy_get_log_level(&mut level) };
    let mut now = 0;
    let t = unsafe { abi::proxy_get_current_time_nanoseconds(&mut now) };
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let _ = writeln!(
        out,
        "log_level={l}:{level} time={t}:{now} wasi_clock_agrees={}",
        wall == now
    );
    let e = unsafe { abi::proxy_set_effective_context(99_999) };
    let up = unsafe { abi::proxy_continue_stream(3) };
    let bad = unsafe { abi::proxy_continue_stream(9) };
    let (mut p, mut n) = (std::ptr::null_mut(), 0);
    let f = unsafe {
        abi::proxy_call_foreign_function("nope".as_ptr(), 4, "".as_ptr(), 0, &mut p, &mut n)
    };
    let crc = unsafe {
        abi::proxy_call_foreign_function(
            "clear_route_cache".as_ptr(),
            17,
            "".as_ptr(),
            0,
            &mut p,
            &mut n,
        )
    };
    let d = unsafe { abi::proxy_done() };
    let lg = unsafe { abi::proxy_log(9, "x".as_ptr(), 1) };
    let _ = writeln!(out, "effective_unknown={e} continue_upstream={up} continue_bad={bad} foreign_unknown={f} clear_route_cache={crc} done_now={d} log_bad_level={lg}");
    let mut bytes = [0u8; 16];
    let mut map = std::collections::HashMap::<u8, u8>::new();
    map.insert(1, 2);
    bytes[0] = map.len() as u8;
    let _ = writeln!(out, "hashmap_ok={}", bytes[0] == 1);
}

fn callout(id: u32, out: &mut String) -> u32 {
    let headers = pairs(&[
        (":method", "GET"),
        (":path", "/authorize"),
        (":authority", "auth"),
    ]);
    let no_path = pairs(&[(":method", "GET"), (":authority", "auth")]);
    let mut token = 0;
    let up = "backend";
    let bad_cluster = unsafe {
        abi::proxy_http_call(
            "nope".as_ptr(),
            4,
            headers.as_ptr(),
            headers.len(),
            "".as_ptr(),
            0,
            "".as_ptr(),
            0,
            1000,
            &mut token,
        )
    };
    let bad_headers = unsafe {
        abi::proxy_http_call(
            up.as_ptr(),
            up.len(),
            no_path.as_ptr(),
            no_path.len(),
            "".as_ptr(),
            0,
            "".as_ptr(),
            0,
            1000,
            &mut token,
        )
    };
    let ok = unsafe {
        abi::proxy_http_call(
            up.as_ptr(),
            up.len(),
            headers.as_ptr(),
            headers.len(),
            "q".as_ptr(),
            1,
            "".as_ptr(),
            0,
            2000,
            &mut token,
        )
    };
    log(&format!(
        "http_call bad_cluster={bad_cluster} bad_headers={bad_headers} ok={ok} token={token}"
    ));
    with(|s| s.waiting.insert(token, id));
    let _ = out;
    1
}

fn grpc(out: &mut String) {
    let (up, svc, m) = ("backend", "probe.Svc", "Check");
    let md = pairs(&[("x-md", "1")]);
    let (mut call, mut stream, mut t) = (0, 0, 0);
    let unknown = unsafe {
        abi::proxy_grpc_call(
            "nope".as_ptr(),
            4,
            svc.as_ptr(),
            svc.len(),
            m.as_ptr(),
            m.len(),
            md.as_ptr(),
            md.len(),
            "req".as_ptr(),
            3,
            1000,
            &mut t,
        )
    };
    let c = unsafe {
        abi::proxy_grpc_call(
            up.as_ptr(),
            up.len(),
            svc.as_ptr(),
            svc.len(),
            m.as_ptr(),
            m.len(),
            md.as_ptr(),
            md.len(),
            "req".as_ptr(),
            3,
            1000,
            &mut call,
        )
    };
    let s = unsafe {
        abi::proxy_grpc_stream(
            up.as_ptr(),
            up.len(),
            svc.as_ptr(),
            svc.len(),
            m.as_ptr(),
            m.len(),
            md.as_ptr(),
            md.len(),
            &mut stream,
        )
    };
    // The target as a serialized GrpcService (envoy_grpc.cluster_name), as the filter passes it:
    // Envoy reads the argument as one before it tries it as a bare cluster name.
    let as_service = |name: &str| {
        let mut b = vec![0x0a, name.len() as u8 + 2, 0x0a, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b
    };
    let mut proto_call = 0;
    let (known, unknown_proto) = (as_service(up), as_service("nope"));
    let proto_known = unsafe {
        abi::proxy_grpc_call(
            known.as_ptr(),
            known.len(),
            svc.as_ptr(),
            svc.len(),
            m.as_ptr(),
            m.len(),
            md.as_ptr(),
            md.len(),
            "req".as_ptr(),
            3,
            1000,
            &mut proto_call,
        )
    };
    let proto_unknown = unsafe {
        abi::proxy_grpc_call(
            unknown_proto.as_ptr(),
            unknown_proto.len(),
            svc.as_ptr(),
            svc.len(),
            m.as_ptr(),
            m.len(),
            md.as_ptr(),
            md.len(),
            "req".as_ptr(),
            3,
            1000,
            &mut t,
        )
    };
    let _ = writeln!(
        out,
        "proto_known={proto_known}:{} proto_unknown={proto_unknown}",
        proto_call % 4
    );
    let send_call = unsafe { abi::proxy_grpc_send(call, "x".as_ptr(), 1, 0) };
    let send_stream = unsafe { abi::proxy_grpc_send(stream, "hello".as_ptr(), 5, 0) };
    let cancel_unknown = unsafe { abi::proxy_grpc_cancel(call + 4000) };
    let cancel_http = unsafe { abi::proxy_grpc_cancel(4) };
    let _ = writeln!(
        out,
        "unknown_cluster={unknown} call={c}:{} stream={s}:{} send_call={send_call} send_stream={send_stream} cancel_unknown={cancel_unknown} cancel_http={cancel_http}",
        call % 4,
        stream % 4
    );
    let close = unsafe { abi::proxy_grpc_close(stream) };
    let _ = writeln!(out, "half_close={close}");
    let _ = writeln!(out, "tokens={call},{stream}");
}
