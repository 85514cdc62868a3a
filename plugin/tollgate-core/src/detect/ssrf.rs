//! Server-side request forgery: URL-valued inputs that point the backend at itself, its network
//! or the cloud's metadata service, in any notation a URL parser or `inet_aton` accepts.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What a URL in a value points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A scheme that reaches more than HTTP (`gopher:`, `dict:`, `file:`, ...).
    Scheme,
    /// A cloud metadata service (by address or name).
    Metadata,
    /// Loopback, unspecified, link-local, private or shared address space, or an internal name.
    Internal,
    /// A public address written in an unusual notation (decimal, hex, octal, short form).
    OddNotation,
    /// A host name of a wildcard-DNS service that resolves to an address written inside it.
    RebindingName,
}

const DANGEROUS_SCHEMES: [&str; 12] = [
    "gopher", "dict", "file", "ldap", "ldaps", "tftp", "jar", "netdoc", "sftp", "ftp", "smb",
    "expect",
];

const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata",
    "instance-data",
    "metadata.azure.internal",
];

const INTERNAL_SUFFIXES: [&str; 8] = [
    ".svc",
    "kubernetes.default",
    "localhost",
    ".localhost",
    ".internal",
    ".local",
    ".svc.cluster.local",
    "localtest.me",
];

const REBINDING_SUFFIXES: [&str; 7] = [
    ".nip.io",
    ".sslip.io",
    ".xip.io",
    ".localtest.me",
    ".traefik.me",
    ".rbndr.us",
    ".1u.ms",
];

/// Classifies every URL in a normalised value (lower case, decoded). Calls `hit` per finding.
pub fn scan(text: &[u8], mut hit: impl FnMut(Target)) {
    let mut from = 0;
    while let Some(at) = super::normalize::find(text, from, b"//") {
        from = at + 2;
        // The scheme: letters (and + - .) right before `:` `//`; `//` alone is scheme-relative.
        let scheme = if at > 0 && text.get(at - 1) == Some(&b':') {
            let end = at - 1;
            let mut start = end;
            while start > 0
                && text
                    .get(start - 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
            {
                start -= 1;
            }
            text.get(start..end).unwrap_or(&[])
        } else if at == 0 || text.get(at - 1) == Some(&b' ') {
            &b""[..]
        } else {
            // `a//b` inside a path: not a URL.
            continue;
        };
        // `jar:http://...`: the outer scheme decides what is fetched.
        let outer = {
            let start = at.saturating_sub(1 + scheme.len());
            let head = text.get(..start).unwrap_or(&[]);
            match head.strip_suffix(b":") {
                Some(h) => {
                    let from = h
                        .iter()
                        .rposition(|c| !c.is_ascii_alphabetic())
                        .map_or(0, |p| p + 1);
                    h.get(from..).unwrap_or(&[])
                }
                None => &[][..],
            }
        };
        if DANGEROUS_SCHEMES
            .iter()
            .any(|s| s.as_bytes() == scheme || s.as_bytes() == outer)
        {
            hit(Target::Scheme);
        }
        let rest = text.get(at + 2..).unwrap_or(&[]);
        let end = rest
            .iter()
            .position(|c| b"/?#\\ \n".contains(c))
            .unwrap_or(rest.len());
        let authority = rest.get(..end).unwrap_or(&[]);
        // Userinfo: the host is after the last `@`.
        let host_port = match authority.iter().rposition(|c| *c == b'@') {
            Some(p) => authority.get(p + 1..).unwrap_or(&[]),
            None => authority,
        };
        if let Some(t) = classify_host(host_port) {
            hit(t);
        }
        // Parsers disagree on where the authority ends (`http://a.example#@10.0.0.1/`): a host
        // after an `@` later in the same URL is judged too.
        // Bounded, so a value of many `//` stays linear.
        let window = rest.get(..rest.len().min(512)).unwrap_or(rest);
        let url_end = window
            .iter()
            .position(|c| *c == b' ' || *c == b'\n')
            .unwrap_or(window.len());
        let url = rest.get(end..url_end).unwrap_or(&[]);
        if let Some(p) = url.iter().rposition(|c| *c == b'@') {
            let tail = url.get(p + 1..).unwrap_or(&[]);
            let host_end = tail
                .iter()
                .position(|c| b"/?#\\".contains(c))
                .unwrap_or(tail.len());
            if let Some(t) = classify_host(tail.get(..host_end).unwrap_or(&[])) {
                hit(t);
            }
        }
    }
}

/// Classifies `host[:port]` (IPv6 in brackets).
pub fn classify_host(host_port: &[u8]) -> Option<Target> {
    let Ok(hp) = std::str::from_utf8(host_port) else {
        return None;
    };
    if let Some(rest) = hp.strip_prefix('[') {
        let inner = rest.split(']').next().unwrap_or("");
        // A zone id (`%25eth0`, decoded to `%eth0`) does not change the address.
        let inner = inner.split('%').next().unwrap_or("");
        return inner.parse::<Ipv6Addr>().ok().and_then(classify_v6);
    }
    let host = match hp.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hp,
    };
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    if let Some((v4, canonical)) = parse_v4_loose(host) {
        return match classify_v4(v4) {
            Some(t) => Some(t),
            None if !canonical => Some(Target::OddNotation),
            None => None,
        };
    }
    if METADATA_NAMES.contains(&host) {
        return Some(Target::Metadata);
    }
    if REBINDING_SUFFIXES.iter().any(|s| host.ends_with(s)) {
        return Some(Target::RebindingName);
    }
    if INTERNAL_SUFFIXES
        .iter()
        .any(|s| host == s.trim_start_matches('.') || host.ends_with(s))
    {
        return Some(Target::Internal);
    }
    None
}

fn classify_v4(ip: Ipv4Addr) -> Option<Target> {
    let o = ip.octets();
    if o == [169, 254, 169, 254]
        || o == [169, 254, 170, 2]
        || o == [100, 100, 100, 200]
        || o == [192, 0, 0, 192]
    {
        return Some(Target::Metadata);
    }
    let internal = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_private()
        || ip.is_link_local()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || ip.is_broadcast();
    internal.then_some(Target::Internal)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Target> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(classify_v4(v4).unwrap_or(Target::OddNotation));
    }
    let s = ip.segments();
    if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254] {
        return Some(Target::Metadata);
    }
    let internal = ip.is_loopback()
        || ip.is_unspecified()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        // IPv4-compatible (deprecated) `::a.b.c.d`
        || (s[..6] == [0; 6]);
    internal.then_some(Target::Internal)
}

/// An IPv4 address as `inet_aton` reads it: one to four parts, each decimal, octal (leading 0)
/// or hex (0x); the last part fills the remaining bytes. Also says whether it was written as the
/// canonical dotted quad.
pub fn parse_v4_loose(s: &str) -> Option<(Ipv4Addr, bool)> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    let mut canonical = parts.len() == 4;
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x") {
            canonical = false;
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            canonical = false;
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        if digits.len() > 11 {
            return None;
        }
        let n = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        nums.push(n);
    }
    let (last, init) = nums.split_last()?;
    if init.iter().any(|n| *n > 255) {
        return None;
    }
    let room = 8 * (4 - init.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in init.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= last;
    let v = u32::try_from(v).ok()?;
    if canonical && parts.iter().any(|p| p.parse::<u8>().is_err()) {
        canonical = false;
    }
    Some((Ipv4Addr::from(v), canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(s: &str) -> Vec<Target> {
        let mut out = Vec::new();
        scan(s.as_bytes(), |t| out.push(t));
        out
    }

    #[test]
    fn notations() {
        let lo = Ipv4Addr::new(127, 0, 0, 1);
        assert_eq!(parse_v4_loose("127.0.0.1"), Some((lo, true)));
        assert_eq!(parse_v4_loose("2130706433"), Some((lo, false)));
        assert_eq!(parse_v4_loose("0x7f000001"), Some((lo, false)));
        assert_eq!(parse_v4_loose("0177.0.0.1"), Some((lo, false)));
        assert_eq!(parse_v4_loose("127.1"), Some((lo, false)));
        assert_eq!(parse_v4_loose("0x7f.1"), Some((lo, false)));
        assert_eq!(parse_v4_loose("www.example.com"), None);
        assert_eq!(parse_v4_loose("1.2.3.4.5"), None);
        assert_eq!(parse_v4_loose("256.1.1.1"), None);
    }

    #[test]
    fn urls() {
        use Target::*;
        assert_eq!(
            targets("http://169.254.169.254/latest/meta-data/"),
            [Metadata]
        );
        assert_eq!(
            targets("http://metadata.google.internal/computemetadata/v1/"),
            [Metadata]
        );
        assert_eq!(targets("http://[::ffff:127.0.0.1]:8080/"), [Internal]);
        assert_eq!(targets("http://[fd00:ec2::254]/"), [Metadata]);
        assert_eq!(targets("https://dealer.example.com@10.0.0.5/x"), [Internal]);
        assert_eq!(targets("gopher://evil.example:70/_x"), [Scheme]);
        assert_eq!(targets("http://8.8.8.8/"), []);
        assert_eq!(targets("http://134744072/"), [OddNotation]);
        assert_eq!(targets("http://127.0.0.1.nip.io/"), [RebindingName]);
        assert_eq!(targets("http://localhost:3000/"), [Internal]);
        assert_eq!(targets("https://www.example.com/brochure.pdf"), []);
        assert_eq!(targets("see a//b and 1/2"), []);
        assert_eq!(targets("//192.168.0.1/admin"), [Internal]);
    }
}
