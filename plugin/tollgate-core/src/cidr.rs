//! CIDR blocks for client allow and deny lists, IPv4 and IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A network in CIDR form. IPv4-mapped IPv6 client addresses (`::ffff:192.0.2.1`) match IPv4
/// blocks, since dual-stack listeners report IPv4 clients that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    /// Network bits and prefix length (0..=32).
    V4(u32, u8),
    /// Network bits and prefix length (0..=128).
    V6(u128, u8),
}

impl Cidr {
    /// Whether `ip` lies inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match (*self, ip) {
            (Cidr::V4(net, len), IpAddr::V4(a)) => u32::from(a) & mask32(len) == net,
            (Cidr::V6(net, len), IpAddr::V6(a)) => u128::from(a) & mask128(len) == net,
            _ => false,
        }
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a single host). Host bits set
    /// below the prefix are an error: `10.0.0.1/8` is almost always a typo for something else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let canonical = !l.is_empty()
                    && l.len() <= 3
                    && l.bytes().all(|b| b.is_ascii_digit())
                    && (l == "0" || !l.starts_with('0'));
                let len: u8 = l
                    .parse()
                    .ok()
                    .filter(|_| canonical)
                    .ok_or_else(|| format!("invalid prefix length {l:?} in {s:?}"))?;
                (a, Some(len))
            }
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let cidr = match ip {
            IpAddr::V4(a) => {
                let len = len.unwrap_or(32);
                if len > 32 {
                    return Err(format!("prefix length {len} is over 32 in {s:?}"));
                }
                let bits = u32::from(a);
                if bits & !mask32(len) != 0 {
                    let net = Ipv4Addr::from(bits & mask32(len));
                    return Err(format!(
                        "{s:?} has host bits set; the network is {net}/{len}"
                    ));
                }
                Cidr::V4(bits, len)
            }
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
                return Err(format!(
                    "{s:?} is an IPv4-mapped IPv6 block; write the IPv4 block (mapped clients match it)"
                ));
            }
            IpAddr::V6(a) => {
                let len = len.unwrap_or(128);
                if len > 128 {
                    return Err(format!("prefix length {len} is over 128 in {s:?}"));
                }
                let bits = u128::from(a);
                if bits & !mask128(len) != 0 {
                    let net = Ipv6Addr::from(bits & mask128(len));
                    return Err(format!(
                        "{s:?} has host bits set; the network is {net}/{len}"
                    ));
                }
                Cidr::V6(bits, len)
            }
        };
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cidr::V4(net, len) => write!(f, "{}/{len}", Ipv4Addr::from(net)),
            Cidr::V6(net, len) => write!(f, "{}/{len}", Ipv6Addr::from(net)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_blocks_match_their_members_only() {
        let c: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(c.contains(ip("192.0.2.0")));
        assert!(c.contains(ip("192.0.2.255")));
        assert!(!c.contains(ip("192.0.3.0")));
        assert!(!c.contains(ip("2001:db8::1")));
    }

    #[test]
    fn v6_blocks_match_their_members_only() {
        let c: Cidr = "2001:db8:d1::/48".parse().unwrap();
        assert!(c.contains(ip("2001:db8:d1:ffff::1")));
        assert!(!c.contains(ip("2001:db8:d2::1")));
        assert!(!c.contains(ip("192.0.2.1")));
    }

    #[test]
    fn zero_and_full_prefixes() {
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let host: Cidr = "203.0.113.9".parse().unwrap();
        assert_eq!(host, Cidr::V4(u32::from(Ipv4Addr::new(203, 0, 113, 9)), 32));
        assert!(host.contains(ip("203.0.113.9")));
        assert!(!host.contains(ip("203.0.113.8")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
    }

    #[test]
    fn v4_mapped_v6_clients_match_v4_blocks() {
        let c: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(c.contains(ip("::ffff:192.0.2.7")));
    }

    #[test]
    fn malformed_blocks_are_refused_with_a_reason() {
        for (bad, needle) in [
            ("10.0.0.1/8", "host bits set; the network is 10.0.0.0/8"),
            ("10.0.0.0/33", "over 32"),
            ("2001:db8::/129", "over 128"),
            ("10.0.0.0/x", "invalid prefix length"),
            ("10.0.0.0/+8", "invalid prefix length"),
            ("10.0.0.0/08", "invalid prefix length"),
            ("10.0.0.0/", "invalid prefix length"),
            ("::ffff:192.0.2.0/120", "IPv4-mapped"),
            ("banana", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["192.0.2.0/24", "2001:db8::/32", "0.0.0.0/0"] {
            assert_eq!(s.parse::<Cidr>().unwrap().to_string(), s);
        }
    }
}
