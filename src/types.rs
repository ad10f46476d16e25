//! The vocabulary several stages share: the NAT64 prefix (RFC 6052), the
//! per-zone DNS64 policy, the A filter mode, the AAAA order and PTR mode,
//! and two address helpers.
//!
//! A leaf: it imports nothing of this crate, so `config`, `wire`, `policy`,
//! `dns64` and `filter` can all name these types without an import circle
//! (`tests/module_graph.rs` keeps it that way).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

/// Prefix lengths RFC 6052 §2.2 defines an embedding for.
pub const PREFIX_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// The well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
pub const WELL_KNOWN: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);

/// A Pref64::/n: a validated NAT64 prefix of one of the six RFC 6052 lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    net: Ipv6Net,
}

impl Prefix {
    /// A prefix of length `len` (32, 40, 48, 56, 64 or 96) with no host bits set.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Prefix, String> {
        if !PREFIX_LENGTHS.contains(&len) {
            return Err(format!(
                "prefix length /{len} is not one of 32, 40, 48, 56, 64, 96 (RFC 6052 §2.2)"
            ));
        }
        let net = Ipv6Net::new(addr, len).map_err(|e| e.to_string())?;
        if net.trunc().addr() != addr {
            return Err(format!("host bits are set after /{len}"));
        }
        // RFC 6052 §2.2: bits 64..71 ("u") MUST be zero.
        if addr.octets()[8] != 0 {
            return Err("bits 64-71 (the \"u\" octet) must be zero (RFC 6052 §2.2)".into());
        }
        Ok(Prefix { net })
    }

    /// Prefix length in bits.
    pub fn len(&self) -> u8 {
        self.net.prefix_len()
    }

    /// Never true: a prefix has one of six fixed lengths (for clippy's `len` lint).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The prefix as a network.
    pub fn net(&self) -> Ipv6Net {
        self.net
    }

    /// True for 64:ff9b::/96.
    pub fn is_well_known(&self) -> bool {
        self.net.prefix_len() == 96 && self.net.addr() == WELL_KNOWN
    }

    /// Byte positions of the four IPv4 octets (RFC 6052 §2.2): consecutive
    /// from the end of the prefix, skipping octet 8 (bits 64..71).
    fn positions(&self) -> [usize; 4] {
        let mut idx = usize::from(self.len() / 8);
        let mut out = [0; 4];
        for slot in &mut out {
            if idx == 8 {
                idx += 1;
            }
            *slot = idx;
            idx += 1;
        }
        out
    }

    /// Embeds `v4` under this prefix; the "u" octet and the suffix are zero.
    pub fn embed(&self, v4: Ipv4Addr) -> Ipv6Addr {
        let mut out = self.net.addr().octets();
        for (pos, byte) in self.positions().into_iter().zip(v4.octets()) {
            out[pos] = byte;
        }
        Ipv6Addr::from(out)
    }

    /// Extracts the embedded IPv4 address, or `None` when `v6` is outside the prefix.
    pub fn extract(&self, v6: Ipv6Addr) -> Option<Ipv4Addr> {
        if !self.net.contains(&v6) {
            return None;
        }
        let o = v6.octets();
        let [a, b, c, d] = self.positions().map(|p| o[p]);
        Some(Ipv4Addr::new(a, b, c, d))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net.fmt(f)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let net: Ipv6Net = s
            .parse()
            .map_err(|_| "not an IPv6 prefix (expected e.g. 64:ff9b::/96)".to_owned())?;
        Prefix::new(net.addr(), net.prefix_len())
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What happens to A records for DNS64 clients (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterA {
    /// Classic DNS64: A queries answered as upstream answers them.
    Pass,
    /// A records removed from every section (default).
    Strip,
    /// As strip, and A glue in the additional section becomes synthesized AAAA.
    Rewrite,
}

/// DNS64 behaviour for a zone (SPEC §3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZonePolicy {
    /// RFC 6147: synthesize only when there is no native AAAA.
    Native,
    /// Always synthesize; native AAAA dropped (translate everything).
    Synthesize,
    /// Native and synthesized AAAA together, ordered by `dns64.order`.
    Both,
    /// No DNS64 and no A filtering: plain forwarding.
    Off,
}

/// Order of AAAA groups under `both` (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    SynthesizedFirst,
    NativeFirst,
}

/// PTR handling for ip6.arpa names inside a prefix (RFC 6147 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PtrMode {
    /// CNAME to the in-addr.arpa name, followed upstream.
    Follow,
    /// CNAME only.
    Cname,
    /// Forward untouched.
    Off,
}

/// True for addresses that are IPv4 in disguise (`::ffff:a.b.c.d` from a dual-stack socket).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Unspecified address of the same family, for binding upstream sockets.
pub fn unspecified_for(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}
