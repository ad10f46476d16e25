//! Wire format: a borrowed, bounds-checked view of a DNS query and the few
//! in-place patches the proxy needs (ID, QTYPE, OPT payload), plus builders
//! for the small answers dns64d makes itself (FORMERR, REFUSED, SERVFAIL...).
//!
//! Data path position: `listen → wire → policy`. Nothing here allocates to
//! read a packet; the cheapest checks come first (RFC 1035 §4.1).

mod query;

pub use query::{ECS_OPTION, Ecs, Edns, Query, Record, without_ecs};

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
    /// An answer served from an expired cache entry (RFC 8767).
    pub const STALE_ANSWER: u16 = 3;
    /// DNSSEC validation failures (RFC 8914 §4.7–§4.11, §4.13): the
    /// upstream validator found the answer bogus.
    pub const DNSSEC_BOGUS: u16 = 6;
    pub const SIGNATURE_EXPIRED: u16 = 7;
    pub const SIGNATURE_NOT_YET_VALID: u16 = 8;
    pub const DNSKEY_MISSING: u16 = 9;
    pub const RRSIGS_MISSING: u16 = 10;
    pub const NSEC_MISSING: u16 = 12;
    /// Records withheld by the operator's policy (RFC 8914 §4.18): `filter.a`.
    pub const FILTERED: u16 = 17;
    /// The client is not allowed (with REFUSED).
    pub const PROHIBITED: u16 = 18;
    /// Every upstream failed.
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
}

#[cfg(test)]
mod tests;

pub mod message;
pub mod rewrite;

pub use message::{Message, Name, Opt, ParseError, Question, Rr, Section, Summary};
pub use rewrite::RewriteError;
