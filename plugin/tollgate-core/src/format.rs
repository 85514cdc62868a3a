//! The policy document format as Rust types, for generating a JSON Schema of it.
//!
//! The compiler in `compile.rs` walks a policy as a `serde_json::Value` so that it can report
//! every error at once; it is the authority on what a policy may say. These types describe the
//! same document for tools: `schemars` turns them into a JSON Schema (see [`schema_json`]) that
//! editors can use to complete and check policy files, and every policy the compiler accepts
//! also deserializes into [`Policy`] with serde. Rules that span several fields (unique names,
//! references to routes, a cost no larger than the burst, ...) are left to the compiler.

use std::collections::BTreeMap;

use schemars::transform::{RecursiveTransform, Transform};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The JSON Schema of the policy format, as pretty JSON text with a trailing newline.
///
/// Optional fields are Rust `Option`s, which `schemars` would let be `null`; the compiler refuses
/// `null` everywhere in a policy, so the schema is rewritten to refuse it too.
pub fn schema_json() -> String {
    let mut s = schemars::schema_for!(Policy);
    RecursiveTransform(forbid_null).transform(&mut s);
    let mut t = serde_json::to_string_pretty(&s).unwrap_or_default();
    t.push('\n');
    t
}

/// Removes what `schemars` adds to let an optional field be `null`: the `"null"` member of a
/// `type` list or of an `enum`, a `{"type": "null"}` branch of an `anyOf`, and `"default": null`.
fn forbid_null(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let single_type = match obj.get_mut("type") {
        Some(Value::Array(types)) => {
            types.retain(|t| t.as_str() != Some("null"));
            if types.len() == 1 {
                types.pop()
            } else {
                None
            }
        }
        _ => None,
    };
    if let Some(t) = single_type {
        obj.insert("type".to_owned(), t);
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if obj.get("default").is_some_and(Value::is_null) {
        obj.remove("default");
    }
    let only_branch = match obj.get_mut("anyOf") {
        Some(Value::Array(branches)) => {
            let before = branches.len();
            branches.retain(|b| b.get("type").and_then(Value::as_str) != Some("null"));
            if branches.len() == 1 && before > 1 {
                branches.pop()
            } else {
                None
            }
        }
        _ => None,
    };
    match only_branch {
        Some(Value::Object(branch)) => {
            obj.remove("anyOf");
            for (k, v) in branch {
                if !obj.contains_key(&k) {
                    obj.insert(k, v);
                }
            }
        }
        Some(other) => {
            obj.insert("anyOf".to_owned(), Value::Array(vec![other]));
        }
        None => {}
    }
}

/// A Tollgate policy: the routes an edge serves and the rules that guard them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Tollgate policy")]
pub struct Policy {
    /// The policy's version, logged when it is accepted: 1 to 128 printable ASCII characters, no spaces.
    #[schemars(regex(pattern = r"^[!-~]{1,128}$"))]
    pub version: String,

    /// The edge's name, used in metric names (`wasmcustom.tollgate.<edge>.…`): 1 to 63 of `a-z 0-9 - _`, starting with a letter or digit.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub edge: String,

    /// Where the client's address comes from when proxies sit in front of the edge.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_ip: Option<ClientIp>,

    /// What happens to a request that no route matches.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub routing: Option<Routing>,

    /// Client allow and deny lists, checked in order.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip_lists: Option<Vec<IpList>>,

    /// The route table, tried in order; a request matching no route falls to `routing`.
    pub routes: Vec<Route>,

    /// Rate limits; every one that applies is checked, and the first to refuse answers 429.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rate_limits: Option<Vec<AnyRateLimit>>,

    /// Bans driven by upstream responses (e.g. too many 401s from one client).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bans: Option<Vec<Ban>>,

    /// Size caps and JSON limits every route starts from; a route's `validate` may change them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub validation: Option<ValidationDefaults>,

    /// Attack detection (injections, attack tools, protocol abuse); off when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detection: Option<Detection>,

    /// Rules that count the distinct identifiers each client uses per window.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub enumeration: Option<Vec<Enumeration>>,
}

/// How the client's address is found behind trusted proxies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = {"required": ["trusted_proxies"]},
    "then" = {"required": ["trusted_hops"], "properties": {"trusted_hops": {"minimum": 1}}}
))]
pub struct ClientIp {
    /// How many trusted proxies append to `X-Forwarded-For`. 0: the client is the connection's source address; N: the N-th entry from the right.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 0, max = 10), extend("default" = 0))]
    pub trusted_hops: Option<u32>,

    /// CIDR blocks the connection's peer must come from for the hops to be trusted (e.g. `192.0.2.0/24`, `2001:db8::/32`). Needs `trusted_hops` of 1 or more.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub trusted_proxies: Option<Vec<String>>,
}

/// The routing rule: what to do with a request no route matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// `deny` answers 404 (or 405 with `Allow` when only the method is wrong); `allow` lets the request through.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "deny"))]
    pub default: Option<RoutingDefault>,

    /// Mode of the routing rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,
}

/// What the routing rule does with an unmatched request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoutingDefault {
    /// Refuse it: 404, or 405 when the path matches but the method does not.
    Deny,
    /// Let it through.
    Allow,
}

/// Whether a rule refuses requests or only reports what it would have refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A hit refuses the request.
    Enforce,
    /// A hit is logged and counted, and the request goes on.
    Shadow,
}

/// What a rate limit, ban or enumeration rule does when shared data fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Let the request through (and count it).
    Open,
    /// Answer 503 (and count it).
    Closed,
}

/// A list of client networks that are let in or kept out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpList {
    /// The list's name; its rule is `ip_list.<name>`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,

    /// `allow`: clients outside the list (or of unknown address) are refused; `deny`: clients inside it are refused. Both answer 403.
    pub action: IpListAction,

    /// Mode of the list's rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,

    /// IPv4 and IPv6 blocks or single addresses, e.g. `203.0.113.0/24`; host bits below the prefix and `::ffff:` blocks are refused.
    #[schemars(length(min = 1))]
    pub cidrs: Vec<String>,

    /// Names of the routes the list applies to; every request when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1), inner(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$")))]
    pub routes: Option<Vec<String>>,
}

/// Whether an IP list admits only its members or refuses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpListAction {
    /// Only clients inside the list get in.
    Allow,
    /// Clients inside the list are refused.
    Deny,
}

/// One entry of the route table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The route's unique name, used in rule names and referenced by other rules.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,

    /// Hosts the route serves: `api.example.com`, `*.example.com`, or `*` alone; any host when absent. Case-insensitive, port ignored, names up to 253 characters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(
        length(min = 1),
        inner(regex(pattern = r"^(\*|(\*\.)?[A-Za-z0-9-]([A-Za-z0-9.-]*[A-Za-z0-9-])?)$")),
        extend("if" = {"contains": {"const": "*"}}, "then" = {"maxItems": 1})
    )]
    pub hosts: Option<Vec<String>>,

    /// Path template such as `/v1/vehicles/{vin}`: literal segments and whole-segment `{param}`s, no query, fragment or dot segments.
    #[schemars(regex(pattern = r"^(/|(/([^/?#{}]+|\{[A-Za-z0-9_]{1,64}\}))+)$"))]
    pub path: String,

    /// Methods the route accepts, each at most once.
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub methods: Vec<Method>,

    /// Headers a request must carry (non-blank); a missing one answers 400 under rule `route.<name>.required_headers`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub required_headers: Option<Vec<HeaderRequirement>>,

    /// Whether allowed answers on this route carry `RateLimit` headers (a 429 always does).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = true))]
    pub rate_limit_headers: Option<bool>,

    /// What the route accepts: typed parameters, media types, size caps and a body schema.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub validate: Option<RouteValidation>,

    /// Switches attack detection off on this route, or gives it its own threshold.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detection: Option<RouteDetection>,

    /// Mode of the route's required-headers rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,
}

/// An HTTP method a route may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// `TRACE`.
    Trace,
    /// `CONNECT`.
    Connect,
}

/// A header a route requires: one name, or a choice between several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderRequirement {
    /// This header must be present and non-blank.
    Name(#[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))] String),
    /// At least one of these headers must be present and non-blank.
    AnyOf(AnyOfHeaders),
}

/// Alternative headers, e.g. a bearer token or an API key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnyOfHeaders {
    /// Two or more header names, any one of which satisfies the requirement.
    #[schemars(
        length(min = 2),
        inner(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))
    )]
    pub any_of: Vec<String>,
}

/// A route's `detection` override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RouteDetection {
    /// `off`: attack detection does not run on this route.
    Off(DetectionOff),
    /// The route's own threshold; needs a top-level `detection` block.
    Threshold(RouteThreshold),
}

/// The word `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DetectionOff {
    /// Detection is off on the route.
    #[serde(rename = "off")]
    Off,
}

/// A route's own detection threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteThreshold {
    /// Anomaly score at which a request on this route is refused.
    #[schemars(range(min = 1, max = 1000))]
    pub threshold: u32,
}

/// The policy-wide `validation` block: defaults for every route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationDefaults {
    /// Default size caps.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<Sizes>,

    /// Default limits on the structure of JSON bodies.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub json: Option<JsonLimits>,
}

/// Size caps on a request; each is a whole number from 1 to 64 MiB (67108864).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sizes {
    /// Longest path, in bytes (over it: 414).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub path: Option<u64>,

    /// Longest query string, in bytes (over it: 414).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub query: Option<u64>,

    /// Most headers (over it: 431).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub headers: Option<u64>,

    /// Most header bytes in all (over it: 431).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub header_bytes: Option<u64>,

    /// Largest body, in bytes; also the most the filter ever buffers (over it: 413).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub body: Option<u64>,
}

/// Limits checked on a JSON body while it arrives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects, 1 to 64.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 64))]
    pub depth: Option<u64>,

    /// Most elements in one array.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub array: Option<u64>,

    /// Most members in one object.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub keys: Option<u64>,

    /// Longest string, in bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub string: Option<u64>,
}

/// Typed parameters by name.
pub type Params = BTreeMap<String, Param>;

/// A route's `validate` block; its refusals fall under rule `route.<name>.validation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteValidation {
    /// Mode of the route's validation rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,

    /// Types of the path template's `{param}`s, by name. Every name must be a parameter of the route's path; path parameters are always required, so `required` is not allowed here.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("propertyNames" = {"pattern": r"^[A-Za-z0-9_]{1,64}$"}))]
    pub path: Option<Params>,

    /// Query parameters the route accepts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub query: Option<QueryRules>,

    /// Types of request headers, by header name (case-insensitive).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("propertyNames" = {"pattern": r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"}))]
    pub headers: Option<Params>,

    /// Media types a body may have, e.g. `application/json`, without parameters; another answers 415.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(inner(regex(pattern = r"^[^/; ]+/[^; ]+$")))]
    pub content_types: Option<Vec<String>>,

    /// Size caps for this route, over the policy-wide defaults.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<Sizes>,

    /// JSON limits for this route, over the policy-wide defaults.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub json: Option<JsonLimits>,

    /// A JSON Schema the JSON body must satisfy, in a subset: `type`, `properties`, `required`, `additionalProperties` (a boolean), `items`, `minItems`, `maxItems`, `minLength`, `maxLength`, `pattern`, `format` (`uuid`, `date`, `date-time`, `vin`, `vin-north-america`), `enum`, `minimum`, `maximum`, plus `title`, `description` and `$comment`; at most 16 levels deep. Kept as free JSON here; the compiler checks it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend(
        "type" = "object",
        "propertyNames" = {"enum": [
            "type", "properties", "required", "additionalProperties", "items", "minItems",
            "maxItems", "minLength", "maxLength", "pattern", "format", "enum", "minimum",
            "maximum", "title", "description", "$comment"
        ]}
    ))]
    pub schema: Option<Value>,
}

/// The query part of a route's `validate` block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRules {
    /// Whether a query parameter not listed in `params` is refused. A repeated parameter is always refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "allow"))]
    pub unknown: Option<UnknownQuery>,

    /// Types of query parameters, by name (names and values are percent-decoded, `+` as a space).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub params: Option<Params>,
}

/// What happens to a query parameter the route does not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnknownQuery {
    /// It is refused (400).
    Refuse,
    /// It is let through unchecked.
    Allow,
}

/// A typed value: a path parameter, query parameter or header. Besides `type` and `required`, only the fields of its type are allowed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {"if": {"properties": {"type": {"const": "enum"}}}, "then": {"required": ["values"]}},
    {
        "if": {"anyOf": [{"required": ["min"]}, {"required": ["max"]}]},
        "then": {"properties": {"type": {"const": "integer"}}}
    },
    {"if": {"required": ["values"]}, "then": {"properties": {"type": {"const": "enum"}}}},
    {
        "if": {"anyOf": [
            {"required": ["min_length"]}, {"required": ["max_length"]}, {"required": ["pattern"]}
        ]},
        "then": {"properties": {"type": {"const": "string"}}}
    },
    {"if": {"required": ["check_digit"]}, "then": {"properties": {"type": {"const": "vin"}}}}
]))]
pub struct Param {
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: ParamType,

    /// Whether the query parameter or header must be present (not allowed on path parameters).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = false))]
    pub required: Option<bool>,

    /// `integer`: the smallest value allowed (no more than `max`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<i64>,

    /// `integer`: the largest value allowed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<i64>,

    /// `enum`: the accepted values, compared exactly.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub values: Option<Vec<String>>,

    /// `string`: the fewest characters (no more than `max_length`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 0, max = 67_108_864), extend("default" = 0))]
    pub min_length: Option<u64>,

    /// `string`: the most characters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 0, max = 67_108_864), extend("default" = 256))]
    pub max_length: Option<u64>,

    /// `string`: a `regex-lite` pattern the whole value must match (anchored at both ends), at most 1024 characters. Control characters never pass.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(max = 1024))]
    pub pattern: Option<String>,

    /// `vin`: also verify the North American check digit (position 9).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = false))]
    pub check_digit: Option<bool>,
}

/// The type of a typed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ParamType {
    /// A whole number, bounded by `min` and `max`.
    #[serde(rename = "integer")]
    Integer,
    /// One of `values`.
    #[serde(rename = "enum")]
    Enum,
    /// Text, bounded by `min_length`, `max_length` and `pattern`.
    #[serde(rename = "string")]
    Text,
    /// A UUID.
    #[serde(rename = "uuid")]
    Uuid,
    /// A real calendar date, `YYYY-MM-DD`.
    #[serde(rename = "date")]
    Date,
    /// An RFC 3339 date and time.
    #[serde(rename = "date-time")]
    DateTime,
    /// A 17-character VIN (digits and capitals without I, O, Q); see `check_digit`.
    #[serde(rename = "vin")]
    Vin,
}

/// One part of a rule's key: what identifies the client the rule counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum KeyPart {
    /// `client_ip` or `peer_identity`.
    Named(KeyName),
    /// The value of a request header.
    Header(HeaderKey),
    /// A top-level string field of the JSON body.
    BodyField(BodyFieldKey),
    /// A claim of the JWT payload a trusted filter forwarded in a header.
    Claim(ClaimKey),
}

/// A key part given by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyName {
    /// The client's address (see `client_ip`).
    ClientIp,
    /// The peer's mTLS identity (URI SAN).
    PeerIdentity,
}

/// A key part taken from a request header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderKey {
    /// The header's name.
    #[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))]
    pub header: String,
}

/// A key part taken from the JSON body; the filter holds the request for a body of up to 16 KiB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyFieldKey {
    /// Name of a top-level string member, trimmed and lower-cased; requests without it share one bucket.
    #[schemars(length(min = 1, max = 64))]
    pub body_field: String,
}

/// A key part taken from a claim of a verified JWT payload (base64url JSON in a header).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimKey {
    /// The claim's name, e.g. `sub`.
    #[schemars(length(min = 1, max = 64))]
    pub claim: String,

    /// The header carrying the payload; the edge must strip a client's own copy of it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(
        regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"),
        extend("default" = "x-jwt-payload")
    )]
    pub header: Option<String>,
}

/// A reference to a route: its name, or its name with a cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RouteRef {
    /// A route name; a request on it costs the rule's `cost`.
    Name(#[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))] String),
    /// A route name with its own cost.
    Weighted(WeightedRoute),
}

/// A route name with the cost of one request on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedRoute {
    /// The route's name.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub route: String,

    /// What one request on this route costs in a rate limit, 1 to the limit's burst; ignored by bans and enumeration rules.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub cost: Option<u64>,
}

/// A rate limit: counted in this proxy (`scope: local`, the default) or by a rate-limit
/// service shared by every replica (`scope: global`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AnyRateLimit {
    /// Counted in this Envoy's shared data.
    Local(RateLimit),
    /// Counted by an RLS v3 service.
    Global(GlobalRateLimit),
}

/// `local`: the only value a local limit's `scope` may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocalScope {
    /// Counted in this proxy.
    Local,
}

/// `global`: what makes a rate limit global.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GlobalScope {
    /// Counted by a rate-limit service.
    Global,
}

/// A rate limit counted by a rate-limit service over Envoy's RLS v3 protocol
/// (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`), so that it holds across every
/// replica. The service counts in fixed windows; the request waits for its answer at most
/// `service.timeout`, then `on_failure` applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalRateLimit {
    /// The limit's name: rule `rate_limit.<name>`, the descriptor's `tollgate_limit` entry.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,

    /// `global`.
    pub scope: GlobalScope,

    /// The key's parts: each becomes a descriptor entry (`client_ip`, `header:<name>`,
    /// `claim:<name>`, `peer_identity`, `body_field:<name>`); a request lacking a part is not
    /// limited by this rule.
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub key: Vec<KeyPart>,

    /// Requests per window of one second, minute, hour or day, sent as the descriptor's limit
    /// override (which Envoy's reference service honours); absent, the service's own
    /// configuration sets the limit.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(regex(
        pattern = r"^\s*\+?0*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$"
    ))]
    pub rate: Option<String>,

    /// What one request costs (its `hits_addend`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 4_294_967_295u64), extend("default" = 1))]
    pub cost: Option<u64>,

    /// Routes the limit applies to, each optionally with its own cost; every route when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub routes: Option<Vec<RouteRef>>,

    /// The rate-limit service.
    pub service: RlsService,

    /// What to do when the service cannot answer in time (unreachable, an error status, a
    /// timeout, an answer that does not decode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "open"))]
    pub on_failure: Option<FailureMode>,

    /// Mode of the limit's rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,
}

/// Where a global limit is counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RlsService {
    /// The Envoy cluster of the service; it must speak HTTP/2. Under Istio, an in-mesh
    /// service's cluster is `outbound|PORT||HOST`.
    #[schemars(regex(pattern = r"^[!-~]{1,120}$"))]
    pub cluster: String,

    /// The RLS domain the service's configuration is keyed by.
    #[schemars(length(min = 1, max = 255))]
    pub domain: String,

    /// How long a request waits for the answer, `"20ms"` to `"5000ms"` (or `"1s"`..`"5s"`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(regex(pattern = r"^\s*[0-9]+(ms|s)\s*$"), extend("default" = "20ms"))]
    pub timeout: Option<String>,
}

/// A rate limit (GCRA) shared by all of Envoy's workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// The limit's name: rule `rate_limit.<name>`, and its name in the `RateLimit` headers.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,

    /// `local` (the default): counted in this proxy's shared data, across its workers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<LocalScope>,

    /// The key's parts, joined; a request lacking a part is not limited by this rule.
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub key: Vec<KeyPart>,

    /// The sustained rate, `N/unit` with unit `s`, `min`, `h` or `d` (also `sec`, `second`, `m`, `minute`, `hour`, `day`): at least 1 and at most 1,000,000 per second.
    #[schemars(regex(
        pattern = r"^\s*\+?0*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$"
    ))]
    pub rate: String,

    /// Requests a fresh key may send at once.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: u64,

    /// What one request costs, 1 to `burst`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 1_000_000), extend("default" = 1))]
    pub cost: Option<u64>,

    /// Routes the limit applies to, each optionally with its own cost; every route when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub routes: Option<Vec<RouteRef>>,

    /// Most keys tracked (shared-data slots), rounded up to a multiple of 16.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 4, max = 1_000_000), extend("default" = 10_000))]
    pub max_keys: Option<u32>,

    /// What to do when shared data fails.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "open"))]
    pub on_failure: Option<FailureMode>,

    /// Mode of the limit's rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,
}

/// A ban: too many counted upstream responses for one key within a window bans that key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    /// The ban's name: rule `ban.<name>`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,

    /// The key's parts, as for rate limits.
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub key: Vec<KeyPart>,

    /// Routes whose responses count and whose requests a ban refuses; every route when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub routes: Option<Vec<RouteRef>>,

    /// Upstream statuses that count (e.g. 401, 403); Tollgate's own refusals never do.
    #[schemars(length(min = 1), inner(range(min = 100, max = 599)))]
    pub statuses: Vec<u16>,

    /// Counted responses within `window` that ban the key.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub threshold: u32,

    /// The counting window, e.g. `10m`: a whole number with `s`, `m` (or `min`), `h` or `d`, from 1s to 30d.
    #[schemars(regex(pattern = r"^\s*0*[1-9][0-9]*(s|m|min|h|d)\s*$"))]
    pub window: String,

    /// How long a ban lasts, written as `window` is (1s to 30d).
    #[schemars(regex(pattern = r"^\s*0*[1-9][0-9]*(s|m|min|h|d)\s*$"))]
    pub duration: String,

    /// Most keys tracked, as for rate limits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 4, max = 1_000_000), extend("default" = 10_000))]
    pub max_keys: Option<u32>,

    /// What to do when shared data fails.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "open"))]
    pub on_failure: Option<FailureMode>,

    /// Mode of the ban's rule.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,
}

/// The policy-wide attack detection block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// Anomaly score at which a request is refused with 403.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 1000), extend("default" = 5))]
    pub threshold: Option<u32>,

    /// Every detector's mode unless `detectors` says otherwise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "enforce"))]
    pub mode: Option<Mode>,

    /// Per-class modes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detectors: Option<Detectors>,

    /// Headers read for injections besides `User-Agent` and `Cookie` (always read); `referer` when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(
        inner(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")),
        extend("default" = ["referer"])
    )]
    pub headers: Option<Vec<String>>,

    /// An imported OWASP Core Rule Set, whose anomaly scores join the detectors' under one threshold.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crs: Option<Crs>,
}

/// `detection.crs`: a Core Rule Set imported with `tollgate crs import`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Crs {
    /// The document `tollgate crs import DIR` prints, or `{"import": DIR}`, which the policies' build and `tollgate check` replace with the rule set imported from DIR on that machine.
    pub ruleset: serde_json::Value,

    /// The executing paranoia level (1 to 4, at most the level the rule set was imported at).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1, max = 4), extend("default" = 1))]
    pub paranoia: Option<u8>,

    /// `enforce`, `shadow`, or `off`; `detection.mode` when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<DetectorMode>,

    /// Rule ids whose scores count only in shadow (logged and counted, never refusing).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shadow: Option<Vec<u32>>,

    /// Transaction variables every request starts with, over the setup file's (`enforce_bodyproc_urlencoded: 1`, `allowed_methods: "GET POST"`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub setup: Option<std::collections::BTreeMap<String, serde_json::Value>>,

    /// Rules, tags or a rule's targets taken out, each with the reason.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exclusions: Option<Vec<CrsExclusion>>,
}

/// One exclusion: a rule (optionally only one of its targets), every rule with a tag, or a target no rule reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrsExclusion {
    /// The rule id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<u32>,

    /// A rule tag (`attack-sqli`, `paranoia-level/1`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tag: Option<String>,

    /// A target the rule no longer reads (`ARGS:comment`, `REQUEST_COOKIES:/^_ga/`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,

    /// Why the exclusion is needed.
    pub reason: String,
}

/// The mode of each detector class; a class left out takes `detection.mode`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Detectors {
    /// SQL and NoSQL injection.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sqli: Option<DetectorMode>,

    /// Cross-site scripting.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub xss: Option<DetectorMode>,

    /// Path traversal and sensitive files.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub traversal: Option<DetectorMode>,

    /// Command, template and expression-language injection.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<DetectorMode>,

    /// Server-side request forgery.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ssrf: Option<DetectorMode>,

    /// Attack and scanning tools.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scanner: Option<DetectorMode>,

    /// Protocol abuse (smuggling, control characters, bad encoding).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<DetectorMode>,
}

/// The mode of one detector class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DetectorMode {
    /// Its findings count toward refusing the request.
    Enforce,
    /// Its findings score, but a refusal they cause is only logged and counted.
    Shadow,
    /// The class does not run.
    Off,
}

/// An enumeration rule: distinct values of one identifier per client per window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Enumeration {
    /// The rule's name: rule `enumeration.<name>`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,

    /// Who is counted, as for rate limits.
    #[schemars(length(min = 1), extend("uniqueItems" = true))]
    pub key: Vec<KeyPart>,

    /// What is counted.
    pub value: EnumerationValue,

    /// Routes where the rule counts.
    #[schemars(length(min = 1))]
    pub routes: Vec<RouteRef>,

    /// Distinct values a client may use per window.
    #[schemars(range(min = 1, max = 2000))]
    pub max_distinct: u32,

    /// The fixed window, from the client's first value: e.g. `1h`, from 1s to 30d.
    #[schemars(regex(pattern = r"^\s*0*[1-9][0-9]*(s|m|min|h|d)\s*$"))]
    pub window: String,

    /// What happens past `max_distinct`, for the rest of the window.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "block"))]
    pub action: Option<EnumerationAction>,

    /// Most clients tracked, as for rate limits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 4, max = 1_000_000), extend("default" = 10_000))]
    pub max_keys: Option<u32>,

    /// What to do when shared data fails.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("default" = "open"))]
    pub on_failure: Option<FailureMode>,
}

/// Where an enumeration rule's value comes from: exactly one of the fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct EnumerationValue {
    /// A parameter that every route the rule names has in its path.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub path_param: Option<String>,

    /// A query parameter.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub query: Option<String>,

    /// A request header.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub header: Option<String>,

    /// A top-level string member of the JSON body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(min = 1))]
    pub body_field: Option<String>,
}

/// What an enumeration rule does to a client past its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnumerationAction {
    /// Refuse with 429 and `Retry-After` until the window ends.
    Block,
    /// Pass the request on with `x-tollgate-flag: enumeration.<name>` (and count it).
    Flag,
}
