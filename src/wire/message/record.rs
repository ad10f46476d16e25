//! Records, the question and the OPT pseudo-record (RFC 1035 §4.1.2–§4.1.3,
//! RFC 6891 §6) as views over the message buffer.

use super::super::rtype;
use super::*;

/// Offsets of one record, as read from a buffer; no borrow, so the rewrites
/// can mutate the buffer between records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRr {
    pub owner: usize,
    pub rtype: u16,
    pub class: u16,
    pub ttl_at: usize,
    pub rdata_start: usize,
    pub rdata_end: usize,
}

impl RawRr {
    /// Reads the fixed fields of the record at `pos` whose owner name has
    /// already been validated (or whose validity does not matter).
    #[inline]
    pub(crate) fn read_stored(buf: &[u8], pos: usize) -> Option<RawRr> {
        let fixed = skip_stored_name(buf, pos)?;
        let rtype = u16_at(buf, fixed)?;
        let class = u16_at(buf, fixed + 2)?;
        let rdlen = usize::from(u16_at(buf, fixed + 8)?);
        let rdata_start = fixed + 10;
        let rdata_end = rdata_start + rdlen;
        (rdata_end <= buf.len()).then_some(RawRr {
            owner: pos,
            rtype,
            class,
            ttl_at: fixed + 4,
            rdata_start,
            rdata_end,
        })
    }
}

/// One resource record of a message, by offsets into it. `Copy` and small:
/// the iterators hand these out without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Rr<'a> {
    pub(super) buf: &'a [u8],
    /// Section the record is in.
    pub section: Section,
    /// Offset of the owner name (also the start of the record).
    pub owner_at: usize,
    /// TYPE.
    pub rtype: u16,
    /// CLASS (for OPT: the requestor's UDP payload size).
    pub class: u16,
    /// Offset of the 32-bit TTL field.
    pub ttl_at: usize,
    /// Offset of the first RDATA octet.
    pub rdata_start: usize,
    /// Offset just past the RDATA, which is also the end of the record.
    pub rdata_end: usize,
}

impl<'a> Rr<'a> {
    pub(super) fn new(buf: &'a [u8], section: Section, raw: RawRr) -> Rr<'a> {
        Rr {
            buf,
            section,
            owner_at: raw.owner,
            rtype: raw.rtype,
            class: raw.class,
            ttl_at: raw.ttl_at,
            rdata_start: raw.rdata_start,
            rdata_end: raw.rdata_end,
        }
    }

    /// The owner name.
    pub fn owner(&self) -> Name<'a> {
        Name {
            buf: self.buf,
            at: self.owner_at,
        }
    }

    /// TTL as stored (for OPT: extended RCODE, version and flags).
    pub fn ttl(&self) -> u32 {
        u32_at(self.buf, self.ttl_at).unwrap_or(0)
    }

    /// The RDATA octets (names inside may be compressed pointers into the
    /// message; read them with [`Rr::rdata_name`]).
    pub fn rdata(&self) -> &'a [u8] {
        self.buf
            .get(self.rdata_start..self.rdata_end)
            .unwrap_or(&[])
    }

    /// RDATA range in the message.
    pub fn rdata_range(&self) -> std::ops::Range<usize> {
        self.rdata_start..self.rdata_end
    }

    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.rdata_end
    }

    /// The `n`th domain name inside the RDATA (0-based), for the types whose
    /// RDATA holds names (CNAME, NS, PTR, DNAME, MX, SOA, SRV...).
    pub fn rdata_name(&self, n: usize) -> Option<Name<'a>> {
        let layout = name_layout(self.rtype)?;
        if n >= layout.names {
            return None;
        }
        let mut pos = self.rdata_start + layout.prefix;
        for _ in 0..n {
            pos = skip_stored_name(self.buf, pos)?;
        }
        Some(Name {
            buf: self.buf,
            at: pos,
        })
    }

    /// The address of an A record.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        let d: [u8; 4] = self.rdata().try_into().ok()?;
        (self.rtype == rtype::A).then(|| d.into())
    }

    /// The address of an AAAA record.
    pub fn ipv6(&self) -> Option<std::net::Ipv6Addr> {
        let d: [u8; 16] = self.rdata().try_into().ok()?;
        (self.rtype == rtype::AAAA).then(|| d.into())
    }

    /// For an RRSIG, its "type covered" (RFC 4034 §3.1.1, the first two
    /// RDATA octets).
    pub fn type_covered(&self) -> Option<u16> {
        (self.rtype == rtype::RRSIG)
            .then(|| u16_at(self.buf, self.rdata_start))
            .flatten()
            .filter(|_| self.rdata_end >= self.rdata_start + 2)
    }

    /// For an SOA, the RFC 2308 §3 negative-caching TTL: min(SOA TTL, MINIMUM).
    pub fn soa_negative_ttl(&self) -> Option<u32> {
        if self.rtype != rtype::SOA || self.rdata_end < self.rdata_start + 20 {
            return None;
        }
        let minimum = u32_at(self.buf, self.rdata_end - 4)?;
        Some(self.ttl().min(minimum))
    }
}

/// The question (RFC 1035 §4.1.2).
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// QNAME.
    pub name: Name<'a>,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// Offset of the QTYPE field (for in-place patching).
    pub qtype_at: usize,
}

/// EDNS(0) OPT pseudo-record (RFC 6891 §6.1.2): CLASS is the UDP payload
/// size, the TTL carries the extended RCODE, version and flags, the RDATA a
/// list of {code, length, data} options.
#[derive(Debug, Clone, Copy)]
pub struct Opt<'a> {
    pub(super) buf: &'a [u8],
    /// Offset of the record (its root owner octet).
    pub at: usize,
    /// Offset just past the record.
    pub end: usize,
}

impl<'a> Opt<'a> {
    /// Requestor's UDP payload size.
    pub fn payload(&self) -> u16 {
        u16_at(self.buf, self.at + 3).unwrap_or(0)
    }
    /// Upper eight bits of the 12-bit RCODE.
    pub fn ext_rcode(&self) -> u8 {
        self.buf.get(self.at + 5).copied().unwrap_or(0)
    }
    /// EDNS version.
    pub fn version(&self) -> u8 {
        self.buf.get(self.at + 6).copied().unwrap_or(0)
    }
    /// The 16 flag bits (DO is the top one).
    pub fn flags(&self) -> u16 {
        u16_at(self.buf, self.at + 7).unwrap_or(0)
    }
    /// DNSSEC OK (RFC 3225).
    pub fn dnssec_ok(&self) -> bool {
        self.flags() & 0x8000 != 0
    }
    /// Offset of the CLASS (payload) field.
    pub fn class_at(&self) -> usize {
        self.at + 3
    }
    /// Offset of the flags field.
    pub fn flags_at(&self) -> usize {
        self.at + 7
    }
    /// The RDATA (the options, undecoded).
    pub fn rdata(&self) -> &'a [u8] {
        self.buf.get(self.at + 11..self.end).unwrap_or(&[])
    }
    /// The options as `(code, data)` pairs.
    pub fn options(&self) -> OptOptions<'a> {
        OptOptions(self.rdata())
    }
}

/// Iterator over EDNS options: `(OPTION-CODE, OPTION-DATA)`.
#[derive(Debug, Clone)]
pub struct OptOptions<'a>(pub(super) &'a [u8]);

impl<'a> Iterator for OptOptions<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let code = u16_at(self.0, 0)?;
        let len = usize::from(u16_at(self.0, 2)?);
        let data = self.0.get(4..4 + len)?;
        self.0 = &self.0[4 + len..];
        Some((code, data))
    }
}

pub(super) fn check_options(mut rdata: &[u8]) -> Result<(), ParseError> {
    while !rdata.is_empty() {
        let len = usize::from(u16_at(rdata, 2).ok_or(ParseError::BadOpt)?);
        rdata = rdata.get(4 + len..).ok_or(ParseError::BadOpt)?;
    }
    Ok(())
}
