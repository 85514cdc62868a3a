//! The request as the policy core sees it, and how the client address is found.

use std::net::{IpAddr, SocketAddr};

use crate::Cidr;

/// A request's headers as the host hands them over: lower-case names (HTTP/2 pseudo-headers
/// `:method`, `:path`, `:authority` included) and raw byte values, which need not be UTF-8.
pub type HeaderList = [(String, Vec<u8>)];

/// One request, borrowed from the host's header map.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `:method`; empty when missing or not UTF-8 (then no route's method matches).
    pub method: &'a str,
    /// `:authority` (or `host`), as sent.
    pub authority: &'a str,
    /// `:path` including any query string.
    pub path: &'a str,
    /// Every header, pseudo-headers included.
    pub headers: &'a HeaderList,
    /// The connection's source address, when the host gave it.
    pub source: Option<IpAddr>,
    /// Whether a body follows the headers. From the framing headers by default; the filter sets
    /// it from Envoy's end-of-stream flag, which also covers HTTP/2 bodies without a length.
    pub body_expected: bool,
}

impl<'a> Request<'a> {
    /// Builds a request from the host's header list.
    pub fn from_headers(headers: &'a HeaderList, source: Option<IpAddr>) -> Self {
        let text = |name: &str| {
            first(headers, name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or("")
        };
        let mut authority = text(":authority");
        if authority.is_empty() {
            authority = text("host");
        }
        let framed = first(headers, "transfer-encoding").is_some()
            || first(headers, "content-length")
                .and_then(|v| std::str::from_utf8(v).ok())
                .is_some_and(|v| v.trim() != "0");
        Request {
            method: text(":method"),
            authority,
            path: text(":path"),
            headers,
            source,
            body_expected: framed,
        }
    }

    /// The same request, with whether a body follows known for certain.
    pub fn with_body(mut self, body_expected: bool) -> Self {
        self.body_expected = body_expected;
        self
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &'a str {
        match self.path.split_once('?') {
            Some((p, _)) => p,
            None => self.path,
        }
    }

    /// The host name without port, as sent (compare case-insensitively).
    pub fn host(&self) -> &'a str {
        let a = self.authority;
        if a.starts_with('[') {
            // [v6]:port
            return match a.find(']') {
                Some(end) => a.get(..=end).unwrap_or(a),
                None => a,
            };
        }
        match a.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => a,
        }
    }

    /// Whether a header is present with a non-empty value.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(name) && !v.iter().all(u8::is_ascii_whitespace))
    }

    /// The first value of a header, as bytes.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        first(self.headers, name)
    }

    /// The value of the `x-request-id` header, if any.
    pub fn request_id(&self) -> Option<&'a [u8]> {
        first(self.headers, "x-request-id")
    }
}

fn first<'h>(headers: &'h HeaderList, name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The client address, given how many trusted proxies append to `X-Forwarded-For` in front of
/// the edge. With `trusted_hops == 0` it is the connection's source address. With N > 0, the N
/// trusted proxies each appended the address they saw, so the client is the N-th entry from the
/// right: the right-most hop no trusted proxy vouches for. Fewer entries, or an entry that is not
/// an address, means the request did not come through the trusted path: `Err`.
///
/// With `trusted_proxies` given, the connection itself must come from one of them: a request
/// from anywhere else could have written every hop itself.
pub(crate) fn client_address(
    req: &Request<'_>,
    trusted_hops: usize,
    trusted_proxies: &[Cidr],
) -> Result<Option<IpAddr>, ()> {
    if trusted_hops == 0 {
        return Ok(req.source);
    }
    if !trusted_proxies.is_empty() {
        let peer = req.source.ok_or(())?;
        if !trusted_proxies.iter().any(|c| c.contains(peer)) {
            return Err(());
        }
    }
    // Several X-Forwarded-For headers are one list, in order (RFC 9110 section 5.3).
    let mut hops: Vec<&[u8]> = Vec::new();
    for (k, v) in req.headers {
        if k.eq_ignore_ascii_case("x-forwarded-for") {
            hops.extend(v.split(|b| *b == b','));
        }
    }
    let idx = hops.len().checked_sub(trusted_hops).ok_or(())?;
    let entry = hops.get(idx).ok_or(())?;
    let entry = std::str::from_utf8(entry).map_err(|_| ())?.trim();
    parse_hop(entry).map(Some).ok_or(())
}

/// One X-Forwarded-For entry: a bare address, `v4:port` or `[v6]:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// Parses an address as Envoy's `source.address` property gives it: `ip:port`, `[v6]:port`, or
/// a bare address.
pub fn parse_socket_address(text: &str) -> Option<IpAddr> {
    parse_hop(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn pseudo_headers_fill_the_request() {
        let h = hdrs(&[
            (":method", "GET"),
            (":path", "/v1/models?x=1"),
            (":authority", "shop.example.com:8443"),
        ]);
        let r = Request::from_headers(&h, None);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path_only(), "/v1/models");
        assert_eq!(r.host(), "shop.example.com");
    }

    #[test]
    fn host_header_stands_in_for_authority_and_v6_hosts_keep_brackets() {
        let h = hdrs(&[("host", "[2001:db8::1]:443")]);
        let r = Request::from_headers(&h, None);
        assert_eq!(r.host(), "[2001:db8::1]");
    }

    #[test]
    fn non_utf8_values_do_not_break_the_request() {
        let h = vec![
            (":method".to_string(), vec![0xff, 0xfe]),
            ("x-dealer-id".to_string(), vec![0xc3, 0x28]),
        ];
        let r = Request::from_headers(&h, None);
        assert_eq!(r.method, "");
        assert!(r.has_header("x-dealer-id"));
    }

    #[test]
    fn blank_headers_count_as_missing() {
        let h = hdrs(&[("x-dealer-id", "  ")]);
        assert!(!Request::from_headers(&h, None).has_header("x-dealer-id"));
    }

    #[test]
    fn client_is_nth_hop_from_the_right() {
        let h = hdrs(&[("x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.0.0.2")]);
        let r = Request::from_headers(&h, None);
        assert_eq!(
            client_address(&r, 1, &[]),
            Ok(Some("10.0.0.2".parse().unwrap()))
        );
        assert_eq!(
            client_address(&r, 2, &[]),
            Ok(Some("203.0.113.5".parse().unwrap()))
        );
        assert_eq!(
            client_address(&r, 3, &[]),
            Ok(Some("1.1.1.1".parse().unwrap()))
        );
        assert_eq!(client_address(&r, 4, &[]), Err(()));
    }

    #[test]
    fn repeated_xff_headers_form_one_list() {
        let h = hdrs(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("X-Forwarded-For", "[2001:db8::7]:5555"),
        ]);
        let r = Request::from_headers(&h, None);
        assert_eq!(
            client_address(&r, 1, &[]),
            Ok(Some("2001:db8::7".parse().unwrap()))
        );
        assert_eq!(
            client_address(&r, 2, &[]),
            Ok(Some("198.51.100.1".parse().unwrap()))
        );
    }

    #[test]
    fn spoofed_left_entries_are_ignored_and_garbage_is_refused() {
        let h = hdrs(&[("x-forwarded-for", "127.0.0.1, not-an-ip")]);
        let r = Request::from_headers(&h, None);
        assert_eq!(client_address(&r, 1, &[]), Err(()));
        let none = hdrs(&[]);
        assert_eq!(
            client_address(&Request::from_headers(&none, None), 1, &[]),
            Err(())
        );
    }

    #[test]
    fn zero_hops_uses_the_connection() {
        let h = hdrs(&[("x-forwarded-for", "198.51.100.1")]);
        let src: IpAddr = "192.0.2.9".parse().unwrap();
        let r = Request::from_headers(&h, Some(src));
        assert_eq!(client_address(&r, 0, &[]), Ok(Some(src)));
    }

    #[test]
    fn trusted_proxies_must_be_the_peer() {
        let h = hdrs(&[("x-forwarded-for", "192.0.2.10")]);
        let gw: Vec<Cidr> = vec!["10.64.0.0/16".parse().unwrap()];
        let via_gw = Request::from_headers(&h, "10.64.1.1".parse().ok());
        assert_eq!(
            client_address(&via_gw, 1, &gw),
            Ok("192.0.2.10".parse().ok())
        );
        let direct = Request::from_headers(&h, "198.18.0.1".parse().ok());
        assert_eq!(client_address(&direct, 1, &gw), Err(()));
        let unknown = Request::from_headers(&h, None);
        assert_eq!(client_address(&unknown, 1, &gw), Err(()));
    }

    #[test]
    fn socket_addresses_as_envoy_gives_them() {
        assert_eq!(
            parse_socket_address("127.0.0.1:5000"),
            "127.0.0.1".parse().ok()
        );
        assert_eq!(parse_socket_address("[::1]:5000"), "::1".parse().ok());
        assert_eq!(parse_socket_address("::1"), "::1".parse().ok());
        assert_eq!(parse_socket_address("pipe:/x"), None);
    }
}
