//! The query view (RFC 1035 §4.1): header, the one question, EDNS (RFC
//! 6891) and ECS (RFC 7871), read once with the cheapest checks first.

use std::ops::Range;

use super::*;

/// EDNS(0) facts of a message (RFC 6891 §6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size (the OPT CLASS).
    pub payload: u16,
    /// DNSSEC OK (RFC 3225).
    pub dnssec_ok: bool,
    /// EDNS version.
    pub version: u8,
    /// Offset of the OPT record's CLASS field, for in-place patching.
    pub class_at: usize,
    /// RFC 7871 Client Subnet option, when present.
    pub ecs: Option<Ecs>,
}

/// RFC 7871 EDNS Client Subnet: the client a forwarder speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// The source address, zero-padded to a full address.
    pub addr: std::net::IpAddr,
    /// Source prefix length.
    pub source_prefix: u8,
    /// The whole option (code, length, data) within the packet.
    pub option: (usize, usize),
}

/// RFC 7871 option code.
pub const ECS_OPTION: u16 = 8;

/// Parses the options of an OPT RDATA, returning the ECS option if any.
pub(super) fn find_ecs(buf: &[u8], rdata: (usize, usize)) -> Result<Option<Ecs>, WireError> {
    let mut pos = rdata.0;
    let mut found = None;
    while pos < rdata.1 {
        let code = u16_at(buf, pos).ok_or(WireError::Malformed("EDNS option runs past the OPT"))?;
        let len = u16_at(buf, pos + 2)
            .ok_or(WireError::Malformed("EDNS option runs past the OPT"))?
            as usize;
        let end = pos + 4 + len;
        if end > rdata.1 {
            return Err(WireError::Malformed("EDNS option runs past the OPT"));
        }
        if code == ECS_OPTION {
            found = Some(parse_ecs(&buf[pos + 4..end], (pos, end))?);
        }
        pos = end;
    }
    Ok(found)
}

/// RFC 7871 §6: FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH, ADDRESS
/// truncated to the source prefix.
pub(super) fn parse_ecs(data: &[u8], option: (usize, usize)) -> Result<Ecs, WireError> {
    const BAD: WireError = WireError::Malformed("bad EDNS Client Subnet option");
    if data.len() < 4 {
        return Err(BAD);
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let source_prefix = data[2];
    let addr = &data[4..];
    if addr.len() != usize::from(source_prefix).div_ceil(8) {
        return Err(BAD);
    }
    let addr = match family {
        1 if source_prefix <= 32 => {
            let mut o = [0u8; 4];
            o[..addr.len()].copy_from_slice(addr);
            std::net::IpAddr::from(o)
        }
        2 if source_prefix <= 128 => {
            let mut o = [0u8; 16];
            o[..addr.len()].copy_from_slice(addr);
            std::net::IpAddr::from(o)
        }
        _ => return Err(BAD),
    };
    Ok(Ecs {
        addr,
        source_prefix,
        option,
    })
}

/// A copy of the query without its ECS option (RFC 7871 §7.1.2 lets a
/// forwarder drop it), the OPT RDLENGTH fixed.
pub fn without_ecs(query: &Query<'_>) -> Option<Vec<u8>> {
    let edns = query.edns?;
    let (start, end) = edns.ecs?.option;
    let buf = query.bytes();
    let rdlen_at = edns.class_at + 6;
    let rdlen = u16_at(buf, rdlen_at)? as usize - (end - start);
    let mut out = Vec::with_capacity(buf.len() - (end - start));
    out.extend_from_slice(&buf[..start]);
    out.extend_from_slice(&buf[end..]);
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
    Some(out)
}

/// A parsed, validated query. Borrowed: it points into the client's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub(super) buf: &'a [u8],
    pub(super) qname_end: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The OPT record, when the client sent one.
    pub edns: Option<Edns>,
}

impl<'a> Query<'a> {
    /// Parses a query, cheapest rejection first: length, QR, opcode, QDCOUNT,
    /// question, then every record (bounds, names, a single OPT).
    pub fn parse(buf: &'a [u8]) -> Result<Query<'a>, WireError> {
        let h = Header::new(buf).ok_or(WireError::TooShort)?;
        if h.qr() {
            return Err(WireError::IsResponse);
        }
        if h.opcode() != 0 {
            return Err(WireError::NotQuery(h.opcode()));
        }
        if h.qdcount() != 1 {
            return Err(WireError::QuestionCount(h.qdcount()));
        }
        let qname_end = skip_name(buf, HEADER_LEN)?;
        let qtype =
            u16_at(buf, qname_end).ok_or(WireError::Malformed("question runs past the end"))?;
        let qclass =
            u16_at(buf, qname_end + 2).ok_or(WireError::Malformed("question runs past the end"))?;
        let mut edns = None;
        let mut pos = qname_end + 4;
        let (an, ns, ar) = (h.ancount(), h.nscount(), h.arcount());
        for i in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
            let rr = Record::read(buf, pos)?;
            if rr.rtype == rtype::OPT {
                let in_additional = i >= u32::from(an) + u32::from(ns);
                if !in_additional || edns.is_some() || buf[pos] != 0 {
                    // RFC 6891 §6.1.1: one OPT, root owner, additional section.
                    return Err(WireError::Malformed("misplaced or repeated OPT record"));
                }
                let version = buf[rr.ttl_at + 1];
                edns = Some(Edns {
                    payload: rr.class,
                    dnssec_ok: buf[rr.ttl_at + 2] & 0x80 != 0,
                    version,
                    class_at: rr.ttl_at - 2,
                    ecs: find_ecs(buf, rr.rdata)?,
                });
            }
            pos = rr.end();
        }
        if pos != buf.len() {
            return Err(WireError::Malformed("trailing bytes after the last record"));
        }
        let q = Query {
            buf,
            qname_end,
            qtype,
            qclass,
            edns,
        };
        if let Some(e) = edns
            && e.version != 0
        {
            return Err(WireError::BadVersion(e.version));
        }
        Ok(q)
    }

    /// The whole packet.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Header view.
    pub fn header(&self) -> Header<'a> {
        Header(self.buf)
    }

    /// The question section (name, type, class) exactly as the client wrote it.
    pub fn question(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..self.qname_end + 4]
    }

    /// Range of the question section in the packet.
    pub fn question_range(&self) -> Range<usize> {
        HEADER_LEN..self.qname_end + 4
    }

    /// QNAME in wire form (uncompressed: nothing precedes it to point at).
    pub fn qname(&self) -> &'a [u8] {
        &self.buf[HEADER_LEN..self.qname_end]
    }

    /// DO bit (RFC 3225).
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }

    /// The UDP reply size this client accepts: 512 without EDNS (RFC 1035
    /// §4.2.1), else its payload but never below 512 nor above `ours`.
    pub fn udp_limit(&self, ours: u16) -> usize {
        match self.edns {
            None => CLASSIC_UDP_LIMIT,
            Some(e) => usize::from(e.payload.clamp(512, ours.max(512))),
        }
    }
}

/// Offsets of one resource record.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// TYPE.
    pub rtype: u16,
    /// CLASS.
    pub class: u16,
    /// Offset of the TTL field.
    pub ttl_at: usize,
    /// RDATA range.
    pub rdata: (usize, usize),
}

impl Record {
    /// Reads the record at `pos`, checking every bound.
    pub fn read(buf: &[u8], pos: usize) -> Result<Record, WireError> {
        let fixed = skip_name(buf, pos)?;
        let rtype = u16_at(buf, fixed).ok_or(WireError::Malformed("record runs past the end"))?;
        let class =
            u16_at(buf, fixed + 2).ok_or(WireError::Malformed("record runs past the end"))?;
        let rdlen = u16_at(buf, fixed + 8)
            .ok_or(WireError::Malformed("record runs past the end"))? as usize;
        let start = fixed + 10;
        if start + rdlen > buf.len() {
            return Err(WireError::Malformed("RDATA runs past the end"));
        }
        Ok(Record {
            rtype,
            class,
            ttl_at: fixed + 4,
            rdata: (start, start + rdlen),
        })
    }

    /// Offset just past this record.
    pub fn end(&self) -> usize {
        self.rdata.1
    }
}
