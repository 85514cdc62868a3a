//! What one VM (one worker's instance of the module) knows: the plugin it serves, its contexts
//! and streams, pending callouts and the data a callback may read. It lives in the wasmtime
//! `Store`; what workers share lives in `Process`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::process::Process;

/// Header or trailer pairs, names lower-case, values as bytes.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// A log line the plugin wrote (through `proxy_log` or WASI stdout/stderr).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The worker whose VM wrote it.
    pub worker: usize,
    /// Level, as in the ABI: 0 trace … 5 critical.
    pub level: u32,
    /// The message.
    pub message: String,
}

/// Log levels, numbered as in the ABI.
pub mod level {
    /// Trace.
    pub const TRACE: u32 = 0;
    /// Debug.
    pub const DEBUG: u32 = 1;
    /// Info.
    pub const INFO: u32 = 2;
    /// Warn.
    pub const WARN: u32 = 3;
    /// Error.
    pub const ERROR: u32 = 4;
    /// Critical.
    pub const CRITICAL: u32 = 5;
}

/// What a plugin is configured with: Envoy's `PluginConfig` and `VmConfig` in small.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    /// `vm_config.vm_id`: shared data and queues are scoped by it.
    pub vm_id: String,
    /// `root_id`: names the root context.
    pub root_id: String,
    /// The plugin's name (`plugin_name` property).
    pub name: String,
    /// `configuration`, as the plugin receives it (`PluginConfiguration` buffer).
    pub configuration: Vec<u8>,
    /// `vm_config.configuration` (`VmConfiguration` buffer).
    pub vm_configuration: Vec<u8>,
    /// `vm_config.environment_variables`, visible through WASI `environ_*`.
    pub environment: Vec<(String, String)>,
    /// The level `proxy_get_log_level` reports; lines below it are dropped.
    pub log_level: u32,
    /// Envoy's `allow_on_headers_stop_iteration`: Pause on request headers stops only them
    /// (StopIteration), so body callbacks keep coming and the request headers stay readable until
    /// a later callback continues. Without it (the default), Pause holds everything
    /// (StopAllIteration) until `proxy_continue_stream`.
    pub allow_on_headers_stop_iteration: bool,
}

impl PluginSpec {
    /// A plugin with this configuration and Envoy's defaults otherwise.
    pub fn new(configuration: impl Into<Vec<u8>>) -> Self {
        PluginSpec {
            vm_id: "tollgate".into(),
            root_id: String::new(),
            name: "tollgate".into(),
            configuration: configuration.into(),
            vm_configuration: Vec::new(),
            environment: Vec::new(),
            log_level: level::TRACE,
            allow_on_headers_stop_iteration: false,
        }
    }
}

/// An HTTP message as the filter sees it in one direction.
#[derive(Clone, Debug, Default)]
pub(crate) struct Message {
    pub(crate) headers: Option<Headers>,
    /// The body buffer visible to the filter: what is buffered plus the current chunk.
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) trailers: Option<Headers>,
}

/// A local response the plugin asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalResponse {
    /// Status code.
    pub status: u32,
    /// `status_code_details`, as Envoy records it (`%RESPONSE_CODE_DETAILS%`).
    pub details: String,
    /// Body.
    pub body: Vec<u8>,
    /// Headers the plugin added.
    pub headers: Headers,
    /// gRPC status, if any (the ABI's -1 is `None`).
    pub grpc_status: Option<i32>,
}

/// One HTTP stream's state the host functions read and change.
#[derive(Debug, Default)]
pub(crate) struct StreamData {
    pub(crate) request: Message,
    pub(crate) response: Message,
    pub(crate) local: Option<LocalResponse>,
    /// `proxy_continue_stream` / `proxy_close_stream` asks, handled after the callback.
    pub(crate) resume_request: bool,
    pub(crate) resume_response: bool,
    pub(crate) close: bool,
    pub(crate) source: Option<SocketAddr>,
    pub(crate) destination: Option<SocketAddr>,
    pub(crate) properties: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The response code once known.
    pub(crate) response_code: Option<u32>,
    pub(crate) start_nanos: u64,
    /// In `proxy_on_log`: the maps are read-only copies.
    pub(crate) logging: bool,
    pub(crate) connection_id: u32,
    pub(crate) peer_identity: Option<String>,
}

/// A callout waiting for its answer.
#[derive(Clone, Debug)]
pub struct HttpCall {
    /// Its token.
    pub token: u32,
    /// The context that made it, which gets the answer.
    pub context: u32,
    /// The cluster it goes to.
    pub upstream: String,
    /// Request headers.
    pub headers: Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Headers,
    /// When it times out (virtual nanoseconds).
    pub deadline: u64,
}

/// A gRPC call or stream waiting for answers.
#[derive(Clone, Debug)]
pub struct GrpcCall {
    /// Its token.
    pub token: u32,
    /// The context that made it.
    pub context: u32,
    /// The cluster.
    pub upstream: String,
    /// Service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Initial metadata.
    pub metadata: Headers,
    /// Messages sent so far (the unary call's one message, or each `grpc_send`).
    pub messages: Vec<Vec<u8>>,
    /// A stream rather than a unary call.
    pub streaming: bool,
    /// The guest closed its side.
    pub half_closed: bool,
    /// Unary calls time out (virtual nanoseconds); streams do not.
    pub deadline: Option<u64>,
}

/// Data only readable during a callout callback.
#[derive(Debug, Default)]
pub(crate) struct CalloutData {
    pub(crate) headers: Option<Headers>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) trailers: Option<Headers>,
    pub(crate) grpc_initial: Option<Headers>,
    pub(crate) grpc_trailing: Option<Headers>,
    pub(crate) grpc_message: Option<Vec<u8>>,
}

/// Which sequence a callout token comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokenKind {
    Http,
    GrpcCall,
    GrpcStream,
}

/// The store's data.
#[derive(Debug)]
pub struct VmState {
    pub(crate) process: Arc<Process>,
    pub(crate) spec: Arc<PluginSpec>,
    pub(crate) worker: usize,
    pub(crate) root_id: u32,
    /// The context the current callback runs for (changed by `proxy_set_effective_context`).
    pub(crate) effective: u32,
    /// Contexts that exist: the root and each live stream.
    pub(crate) streams: BTreeMap<u32, StreamData>,
    pub(crate) tick_ms: u32,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) http_calls: BTreeMap<u32, HttpCall>,
    pub(crate) grpc_calls: BTreeMap<u32, GrpcCall>,
    pub(crate) callout: CalloutData,
    /// What `proxy_get_status` returns: code and message.
    pub(crate) status: (u32, Vec<u8>),
    /// The root context called `proxy_done`.
    pub(crate) root_done: bool,
    /// `proxy_on_delete` ran for the root context.
    pub(crate) root_deleted: bool,
    /// Known clusters; an `http_call` or gRPC call to another is refused.
    pub(crate) clusters: Arc<Vec<String>>,
    /// Counter for WASI `random_get`: deterministic, distinct bytes.
    pub(crate) random_state: u64,
    /// Metric ids this VM defined, in order; id = 4 × (index + 1) + kind.
    pub(crate) metric_ids: Vec<(String, crate::process::MetricKind)>,
    /// In `proxy_on_configure`: the plugin configuration is readable only then.
    pub(crate) configuring: bool,
    /// `proxy_on_done` on the root returned false: waiting for `proxy_done`.
    pub(crate) root_pending_done: bool,
    pub(crate) next_http_token: u32,
    pub(crate) next_grpc_call: u32,
    pub(crate) next_grpc_stream: u32,
}

impl VmState {
    pub(crate) fn new(
        process: Arc<Process>,
        spec: Arc<PluginSpec>,
        worker: usize,
        clusters: Arc<Vec<String>>,
    ) -> Self {
        VmState {
            process,
            spec,
            worker,
            root_id: 1,
            effective: 1,
            streams: BTreeMap::new(),
            tick_ms: 0,
            logs: Vec::new(),
            http_calls: BTreeMap::new(),
            grpc_calls: BTreeMap::new(),
            callout: CalloutData::default(),
            status: (0, Vec::new()),
            root_done: false,
            root_deleted: false,
            clusters,
            random_state: 0x9e37_79b9_7f4a_7c15 ^ worker as u64,
            metric_ids: Vec::new(),
            configuring: false,
            root_pending_done: false,
            next_http_token: 4,
            next_grpc_call: 5,
            next_grpc_stream: 6,
        }
    }

    pub(crate) fn log(&mut self, level: u32, message: String) {
        if level >= self.spec.log_level {
            self.logs.push(LogLine {
                worker: self.worker,
                level,
                message,
            });
        }
    }

    /// The stream the current callback runs for, if it is one.
    pub(crate) fn stream(&mut self) -> Option<&mut StreamData> {
        self.streams.get_mut(&self.effective)
    }

    /// Callout tokens, numbered as proxy-wasm-cpp-host numbers them: HTTP calls 4, 8, …; gRPC
    /// calls 5, 9, …; gRPC streams 6, 10, ….
    pub(crate) fn token(&mut self, kind: TokenKind) -> u32 {
        let next = match kind {
            TokenKind::Http => &mut self.next_http_token,
            TokenKind::GrpcCall => &mut self.next_grpc_call,
            TokenKind::GrpcStream => &mut self.next_grpc_stream,
        };
        let t = *next;
        *next = next.wrapping_add(4);
        t
    }
}
