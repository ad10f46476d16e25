//! Wire format: a borrowed, bounds-checked view of a DNS query and the few
//! in-place patches the proxy needs (ID, QTYPE, OPT payload), plus builders
//! for the small answers dns64d makes itself (FORMERR, REFUSED, SERVFAIL...).
//!
//! Data path position: `listen → wire → policy`. Nothing here allocates to
//! read a packet; the cheapest checks come first (RFC 1035 §4.1).

use std::ops::Range;

/// Fixed header length (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire, length octets included (RFC 1035 §3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Payload a client without EDNS may receive over UDP (RFC 1035 §4.2.1).
pub const CLASSIC_UDP_LIMIT: usize = 512;

/// RR type codes used on the hot path.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const RRSIG: u16 = 46;
    pub const ANY: u16 = 255;
}

/// RCODE values (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
}

/// Why a packet cannot be served as a query. [`crate::error`] maps each to
/// an action (drop or an RCODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than a DNS header")]
    TooShort,
    #[error("QR=1: a response, not a query")]
    IsResponse,
    #[error("opcode {0} is not QUERY")]
    NotQuery(u8),
    #[error("QDCOUNT is {0}, not 1")]
    QuestionCount(u16),
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("EDNS version {0} is not supported")]
    BadVersion(u8),
}

#[inline]
fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Reads the ID of any packet at least two bytes long.
pub fn id(buf: &[u8]) -> Option<u16> {
    u16_at(buf, 0)
}

/// Writes the message ID in place.
pub fn set_id(buf: &mut [u8], id: u16) {
    if buf.len() >= 2 {
        buf[..2].copy_from_slice(&id.to_be_bytes());
    }
}

/// Header flag accessors over the first 12 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a>(&'a [u8]);

impl<'a> Header<'a> {
    /// A header view; `None` when the buffer is shorter than a header.
    pub fn new(buf: &'a [u8]) -> Option<Header<'a>> {
        (buf.len() >= HEADER_LEN).then_some(Header(buf))
    }
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }
    pub fn qr(&self) -> bool {
        self.0[2] & 0x80 != 0
    }
    pub fn opcode(&self) -> u8 {
        (self.0[2] >> 3) & 0x0f
    }
    pub fn tc(&self) -> bool {
        self.0[2] & 0x02 != 0
    }
    pub fn rd(&self) -> bool {
        self.0[2] & 0x01 != 0
    }
    pub fn cd(&self) -> bool {
        self.0[3] & 0x10 != 0
    }
    pub fn rcode(&self) -> u16 {
        u16::from(self.0[3] & 0x0f)
    }
    pub fn qdcount(&self) -> u16 {
        u16::from_be_bytes([self.0[4], self.0[5]])
    }
    pub fn ancount(&self) -> u16 {
        u16::from_be_bytes([self.0[6], self.0[7]])
    }
    pub fn nscount(&self) -> u16 {
        u16::from_be_bytes([self.0[8], self.0[9]])
    }
    pub fn arcount(&self) -> u16 {
        u16::from_be_bytes([self.0[10], self.0[11]])
    }
}

/// Validates the name starting at `pos` and returns the offset just past it
/// (past the first pointer when compressed). Pointers must point strictly
/// before the start of the label run they interrupt, so every hop moves
/// backwards and a loop is impossible; the expanded name may not exceed 255
/// octets (RFC 1035 §4.1.4).
pub fn skip_name(buf: &[u8], mut pos: usize) -> Result<usize, WireError> {
    let mut end = None;
    let mut total = 0usize;
    let mut run_start = pos;
    loop {
        let len = *buf
            .get(pos)
            .ok_or(WireError::Malformed("name runs past the end"))? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                total += 1;
                if total > MAX_NAME_LEN {
                    return Err(WireError::Malformed("name longer than 255 octets"));
                }
                return Ok(end.unwrap_or(pos + 1));
            }
            0x00 => {
                total += len + 1;
                if total > MAX_NAME_LEN {
                    return Err(WireError::Malformed("name longer than 255 octets"));
                }
                pos += len + 1;
            }
            0xc0 => {
                let lo = *buf
                    .get(pos + 1)
                    .ok_or(WireError::Malformed("pointer runs past the end"))?
                    as usize;
                let target = ((len & 0x3f) << 8) | lo;
                if target >= run_start {
                    return Err(WireError::Malformed(
                        "compression pointer does not point backwards",
                    ));
                }
                end.get_or_insert(pos + 2);
                pos = target;
                run_start = target;
            }
            _ => return Err(WireError::Malformed("label longer than 63 octets")),
        }
    }
}

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
fn find_ecs(buf: &[u8], rdata: (usize, usize)) -> Result<Option<Ecs>, WireError> {
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
fn parse_ecs(data: &[u8], option: (usize, usize)) -> Result<Ecs, WireError> {
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
    buf: &'a [u8],
    qname_end: usize,
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

/// Offset just past the question section of any message with QDCOUNT 1.
pub fn question_end(buf: &[u8]) -> Result<usize, WireError> {
    let h = Header::new(buf).ok_or(WireError::TooShort)?;
    if h.qdcount() != 1 {
        return Err(WireError::QuestionCount(h.qdcount()));
    }
    let end = skip_name(buf, HEADER_LEN)? + 4;
    if end > buf.len() {
        return Err(WireError::Malformed("question runs past the end"));
    }
    Ok(end)
}

/// True when every record of the message lies within the buffer with valid
/// names, A and AAAA RDATA have their fixed lengths (RFC 1035 §3.4.1, RFC
/// 3596 §2.2), and nothing trails the last record. A reply cut short in
/// transit or by a broken upstream fails this and is never passed on.
pub fn well_formed(buf: &[u8]) -> bool {
    let Some(h) = Header::new(buf) else {
        return false;
    };
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount() {
        match skip_name(buf, pos) {
            Ok(end) if end + 4 <= buf.len() => pos = end + 4,
            _ => return false,
        }
    }
    let records = u32::from(h.ancount()) + u32::from(h.nscount()) + u32::from(h.arcount());
    for _ in 0..records {
        let Ok(rr) = Record::read(buf, pos) else {
            return false;
        };
        let len = rr.rdata.1 - rr.rdata.0;
        let fixed = match rr.rtype {
            rtype::A => Some(4),
            rtype::AAAA => Some(16),
            _ => None,
        };
        if rr.class == 1 && fixed.is_some_and(|f| f != len) {
            return false;
        }
        pos = rr.end();
    }
    pos == buf.len()
}

/// Offset of the OPT record's CLASS (the advertised payload) in any message,
/// or `None` when it has no OPT or does not parse.
pub fn opt_class_offset(buf: &[u8]) -> Option<usize> {
    let h = Header::new(buf)?;
    let mut pos = HEADER_LEN;
    for _ in 0..h.qdcount() {
        pos = skip_name(buf, pos).ok()? + 4;
    }
    let records = u32::from(h.ancount()) + u32::from(h.nscount()) + u32::from(h.arcount());
    for _ in 0..records {
        let rr = Record::read(buf, pos).ok()?;
        if rr.rtype == rtype::OPT {
            return Some(rr.ttl_at - 2);
        }
        pos = rr.end();
    }
    None
}

/// True when `reply`'s question equals `question` (names compared without
/// regard to ASCII case, RFC 4343).
pub fn same_question(reply: &[u8], question: &[u8]) -> bool {
    match question_end(reply) {
        Ok(end) => reply[HEADER_LEN..end].eq_ignore_ascii_case(question),
        Err(_) => false,
    }
}

/// Copies a query (`bytes`: the client's, or the client's without ECS) with
/// another QTYPE: the A query RFC 6147 §5.1.6 derives from the client's AAAA
/// query keeps its flags and EDNS options.
pub fn with_qtype(query: &Query<'_>, bytes: &[u8], qtype: u16) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = query.qname_end;
    if out.len() >= at + 2 {
        out[at..at + 2].copy_from_slice(&qtype.to_be_bytes());
    }
    out
}

/// Sets the QTYPE of the (first) question in `buf`, a query already
/// validated; false when `buf` has no whole question.
pub fn set_qtype(buf: &mut [u8], qtype: u16) -> bool {
    let Ok(end) = question_end(buf) else {
        return false;
    };
    buf[end - 4..end - 2].copy_from_slice(&qtype.to_be_bytes());
    true
}

/// Flags and counts for a reply dns64d builds itself.
#[derive(Debug, Clone, Copy)]
pub struct ErrorReply<'a> {
    /// RCODE, extended when > 15 (RFC 6891 §6.1.3).
    pub rcode: u16,
    /// RFC 8914 extended DNS error info-code and text.
    pub ede: Option<(u16, &'a str)>,
}

/// Builds a header-only or header+question reply for `query_buf`: echoes ID,
/// opcode, RD and CD, sets QR and RA, and carries the client's question byte
/// for byte when `question` is given. With `edns`, an OPT record advertises
/// `payload` and carries the extended error (RFC 8914 needs EDNS).
pub fn error_reply(
    query_buf: &[u8],
    question: Option<&[u8]>,
    edns: Option<(u16, bool)>,
    reply: ErrorReply<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + question.map_or(0, <[u8]>::len) + 32);
    let (id, b2, b3) = match Header::new(query_buf) {
        Some(h) => (h.id(), query_buf[2], query_buf[3]),
        None => (id(query_buf).unwrap_or(0), 0, 0),
    };
    out.extend_from_slice(&id.to_be_bytes());
    // QR=1, opcode echoed, AA=0, TC=0, RD echoed.
    out.push(0x80 | (b2 & 0x79));
    // RA=1, CD echoed, low RCODE bits.
    out.push(0x80 | (b3 & 0x10) | (reply.rcode & 0x0f) as u8);
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&u16::from(edns.is_some()).to_be_bytes());
    if let Some(q) = question {
        out.extend_from_slice(q);
    }
    if let Some((payload, dnssec_ok)) = edns {
        push_opt(
            &mut out,
            payload,
            dnssec_ok,
            (reply.rcode >> 4) as u8,
            reply.ede,
        );
    }
    out
}

/// Appends an OPT record (root owner) with an optional extended error option.
pub fn push_opt(
    out: &mut Vec<u8>,
    payload: u16,
    dnssec_ok: bool,
    ext_rcode: u8,
    ede: Option<(u16, &str)>,
) {
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    match ede {
        Some((code, text)) => {
            let text = &text.as_bytes()[..text.len().min(200)];
            let optlen = 2 + text.len();
            out.extend_from_slice(&((4 + optlen) as u16).to_be_bytes());
            out.extend_from_slice(&EDE_OPTION.to_be_bytes());
            out.extend_from_slice(&(optlen as u16).to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text);
        }
        None => out.extend_from_slice(&0u16.to_be_bytes()),
    }
}

/// RFC 8914 Extended DNS Error option code.
pub const EDE_OPTION: u16 = 15;

/// RFC 8914 §4 info-codes dns64d uses.
pub mod ede {
    /// Other error.
    pub const OTHER: u16 = 0;
    /// The client is not allowed (with REFUSED).
    pub const PROHIBITED: u16 = 18;
    /// Every upstream failed.
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `example.` AAAA IN, RD, ID 0x1234, optional OPT.
    fn query(edns: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        q.extend_from_slice(b"\x07ExAmPle\x00\x00\x1c\x00\x01");
        if edns {
            push_opt(&mut q, 4096, true, 0, None);
        }
        q
    }

    #[test]
    fn parses_question_and_edns() {
        let buf = query(true);
        let q = Query::parse(&buf).unwrap();
        assert_eq!(q.qtype, rtype::AAAA);
        assert_eq!(q.qname(), b"\x07ExAmPle\x00");
        let e = q.edns.unwrap();
        assert_eq!((e.payload, e.dnssec_ok, e.version), (4096, true, 0));
        assert_eq!(q.udp_limit(1232), 1232);
        assert_eq!(Query::parse(&query(false)).unwrap().udp_limit(1232), 512);
    }

    #[test]
    fn cheapest_rejections_come_first() {
        assert_eq!(Query::parse(&[0; 11]).unwrap_err(), WireError::TooShort);
        let mut r = query(false);
        r[2] |= 0x80;
        assert_eq!(Query::parse(&r).unwrap_err(), WireError::IsResponse);
        let mut n = query(false);
        n[2] = 0x28; // opcode 5 (UPDATE)
        assert_eq!(Query::parse(&n).unwrap_err(), WireError::NotQuery(5));
        let mut c = query(false);
        c[5] = 2;
        assert_eq!(Query::parse(&c).unwrap_err(), WireError::QuestionCount(2));
    }

    #[test]
    fn compression_loop_is_rejected() {
        // Answer record whose owner points at itself.
        let mut buf = query(false);
        buf[7] = 1;
        let at = buf.len();
        buf.extend_from_slice(&[
            0xc0 | (at >> 8) as u8,
            at as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ]);
        assert!(matches!(Query::parse(&buf), Err(WireError::Malformed(_))));
    }

    #[test]
    fn backward_pointer_into_a_later_label_loop_is_rejected() {
        // 12: \x01a then pointer back to 12: backward, but into its own run.
        let mut buf = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        buf.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(skip_name(&buf, 12), Err(WireError::Malformed(_))));
    }

    #[test]
    fn pointer_out_of_bounds_and_long_labels_are_rejected() {
        let mut buf = vec![0; 12];
        buf.extend_from_slice(&[0xc0]);
        assert!(skip_name(&buf, 12).is_err());
        let mut long = vec![0; 12];
        long.push(64);
        long.extend_from_slice(&[b'a'; 64]);
        long.push(0);
        assert!(skip_name(&long, 12).is_err());
    }

    #[test]
    fn names_longer_than_255_octets_are_rejected() {
        let mut buf = vec![0; 12];
        for _ in 0..5 {
            buf.push(63);
            buf.extend_from_slice(&[b'a'; 63]);
        }
        buf.push(0);
        assert!(skip_name(&buf, 12).is_err());
    }

    #[test]
    fn error_reply_echoes_id_rd_and_question_and_carries_ede() {
        let buf = query(true);
        let q = Query::parse(&buf).unwrap();
        let r = error_reply(
            &buf,
            Some(q.question()),
            Some((1232, false)),
            ErrorReply {
                rcode: rcode::SERVFAIL,
                ede: Some((ede::NO_REACHABLE_AUTHORITY, "x")),
            },
        );
        let h = Header::new(&r).unwrap();
        assert_eq!(
            (h.id(), h.qr(), h.rd(), h.rcode(), h.qdcount(), h.arcount()),
            (0x1234, true, true, 2, 1, 1)
        );
        assert_eq!(r[3] & 0x80, 0x80, "RA");
        assert_eq!(&r[12..12 + q.question().len()], q.question());
        assert!(r.ends_with(&[0, 15, 0, 3, 0, 22, b'x']));
    }

    #[test]
    fn set_qtype_changes_only_the_qtype() {
        let buf = query(true);
        let mut a = buf.clone();
        assert!(set_qtype(&mut a, rtype::A));
        assert_eq!(Query::parse(&a).unwrap().qtype, rtype::A);
        let changed: Vec<usize> = (0..buf.len()).filter(|&i| a[i] != buf[i]).collect();
        let end = question_end(&buf).unwrap();
        assert!(
            changed.iter().all(|&i| i == end - 4 || i == end - 3),
            "{changed:?}"
        );
        assert!(!set_qtype(&mut [0u8; 5], rtype::A));
    }

    #[test]
    fn with_qtype_changes_only_the_qtype() {
        let buf = query(true);
        let q = Query::parse(&buf).unwrap();
        let a = with_qtype(&q, q.bytes(), rtype::A);
        assert_eq!(Query::parse(&a).unwrap().qtype, rtype::A);
        assert_eq!(a.len(), buf.len());
    }

    #[test]
    fn ecs_option_is_parsed_and_can_be_removed() {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x07example\x00\x00\x1c\x00\x01");
        // OPT with ECS 2001:db8:1::/48 (family 2, 6 address octets).
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 14, 0, 8, 0, 10, 0, 2, 48, 0]);
        q.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        let parsed = Query::parse(&q).unwrap();
        let ecs = parsed.edns.unwrap().ecs.unwrap();
        assert_eq!(
            ecs.addr,
            "2001:db8:1::".parse::<std::net::IpAddr>().unwrap()
        );
        assert_eq!(ecs.source_prefix, 48);
        let stripped = without_ecs(&parsed).unwrap();
        let again = Query::parse(&stripped).unwrap();
        assert_eq!(again.edns.unwrap().ecs, None);
        assert_eq!(stripped.len(), q.len() - 14);
    }

    #[test]
    fn ecs_with_address_longer_than_its_prefix_is_malformed() {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x07example\x00\x00\x1c\x00\x01");
        q.extend_from_slice(&[
            0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 12, 0, 8, 0, 8, 0, 1, 8, 0, 10, 0, 0, 1,
        ]);
        assert!(matches!(Query::parse(&q), Err(WireError::Malformed(_))));
    }

    #[test]
    fn a_message_cut_inside_a_record_or_with_a_short_a_rdata_is_not_well_formed() {
        let mut r = query(false);
        r[2] |= 0x80;
        r[7] = 1; // one answer
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        assert!(well_formed(&r));
        assert!(!well_formed(&r[..r.len() - 1]), "cut inside the RDATA");
        let mut short = r.clone();
        short[r.len() - 5] = 3; // RDLENGTH 3 for an A record
        short.pop();
        assert!(!well_formed(&short));
        let mut trailing = r.clone();
        trailing.push(0);
        assert!(!well_formed(&trailing));
    }

    #[test]
    fn same_question_ignores_case_only() {
        let buf = query(false);
        let q = Query::parse(&buf).unwrap();
        let mut lower = buf.clone();
        lower[13..20].copy_from_slice(b"example");
        assert!(same_question(&lower, q.question()));
        lower[13] = b'x';
        assert!(!same_question(&lower, q.question()));
    }
}

pub mod message;
pub mod rewrite;

pub use message::{Message, Name, Opt, ParseError, Question, Rr, Section, Summary};
pub use rewrite::RewriteError;
