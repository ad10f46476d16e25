//! A borrowed, validated view of a whole DNS message (RFC 1035 §4.1): the
//! header, the question, EDNS (RFC 6891) and every resource record, without
//! allocating. Upstream replies are read here on the hot path; the rewrites
//! in [`super::rewrite`] start from this view.
//!
//! [`Message::parse`] checks everything once — every name (owner names and
//! the names inside the RDATA of the types that carry them), every length,
//! the OPT rules — so that the accessors and iterators afterwards can be
//! infallible. Compression pointers follow the rule of [`super::skip_name`]
//! — each pointer must point strictly before the label run it interrupts, so
//! every hop moves backwards and a loop is impossible — and one more: the
//! name a pointer leads to must lie wholly before the pointer, as a "prior
//! occurrence" (RFC 1035 §4.1.4) does, so cutting or removing later records
//! never changes an earlier name. The expanded name is at most 255 octets
//! and at most [`MAX_HOPS`] pointers long.

use super::{HEADER_LEN, Header, WireError, rtype};

mod name;
mod record;
#[cfg(test)]
pub(crate) mod tests;

use name::*;
pub use name::{Labels, Name};
pub(crate) use name::{check_name, name_layout, skip_stored_name};
pub(crate) use record::RawRr;
use record::*;
pub use record::{Opt, OptOptions, Question, Rr};

/// Most compression pointers one name may follow. A 255-octet name has at
/// most 127 labels, so a legitimate name never needs more hops than that.
pub const MAX_HOPS: usize = 127;

/// Largest DNS message (the TCP length prefix and RDLENGTH arithmetic are
/// 16-bit, RFC 1035 §4.2.2).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Why a buffer is not a well-formed DNS message. Small and `Copy` so the hot
/// path never allocates to report an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the 12-octet header.
    #[error("shorter than a DNS header")]
    TooShort,
    /// Longer than 65535 octets.
    #[error("longer than 65535 octets")]
    TooLong,
    /// QDCOUNT above 1: no DNS implementation in use sends that.
    #[error("more than one question")]
    QuestionCount,
    /// A name runs past the end of the buffer.
    #[error("name runs past the end")]
    NameOverrun,
    /// A length octet with the reserved 0x40 or 0x80 bits (RFC 6891 §5).
    #[error("label type is reserved or label longer than 63 octets")]
    BadLabel,
    /// A compression pointer that does not point strictly backwards.
    #[error("compression pointer does not point backwards")]
    BadPointer,
    /// More than [`MAX_HOPS`] pointers in one name.
    #[error("too many compression pointers in one name")]
    TooManyHops,
    /// An expanded name longer than 255 octets.
    #[error("name longer than 255 octets")]
    NameTooLong,
    /// The question or a record runs past the end.
    #[error("record runs past the end")]
    RecordOverrun,
    /// RDATA whose length does not fit its type (A not 4 octets, the names of
    /// an MX not filling its RDATA...).
    #[error("RDATA does not match its type")]
    BadRdata,
    /// An OPT record outside the additional section, repeated, or not owned
    /// by the root (RFC 6891 §6.1.1), or with malformed options.
    #[error("misplaced, repeated or malformed OPT record")]
    BadOpt,
    /// Octets after the last record the header counts.
    #[error("trailing bytes after the last record")]
    TrailingBytes,
}

impl ParseError {
    /// A fixed description, for [`WireError::Malformed`].
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::TooShort => "shorter than a DNS header",
            ParseError::TooLong => "longer than 65535 octets",
            ParseError::QuestionCount => "more than one question",
            ParseError::NameOverrun => "name runs past the end",
            ParseError::BadLabel => "label type is reserved or label longer than 63 octets",
            ParseError::BadPointer => "compression pointer does not point backwards",
            ParseError::TooManyHops => "too many compression pointers in one name",
            ParseError::NameTooLong => "name longer than 255 octets",
            ParseError::RecordOverrun => "record runs past the end",
            ParseError::BadRdata => "RDATA does not match its type",
            ParseError::BadOpt => "misplaced, repeated or malformed OPT record",
            ParseError::TrailingBytes => "trailing bytes after the last record",
        }
    }
}

impl From<ParseError> for WireError {
    fn from(e: ParseError) -> WireError {
        match e {
            ParseError::TooShort => WireError::TooShort,
            other => WireError::Malformed(other.as_str()),
        }
    }
}

#[inline]
pub(crate) fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

#[inline]
pub(crate) fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

// Header flags the existing `Header` view does not expose yet; kept here so
// the query path in `mod.rs` stays untouched.
impl Header<'_> {
    /// AA: authoritative answer (RFC 1035 §4.1.1).
    pub fn aa(&self) -> bool {
        self.0[2] & 0x04 != 0
    }
    /// RA: recursion available.
    pub fn ra(&self) -> bool {
        self.0[3] & 0x80 != 0
    }
    /// AD: authentic data (RFC 4035 §3.2.3).
    pub fn ad(&self) -> bool {
        self.0[3] & 0x20 != 0
    }
}

/// The three record sections (RFC 1035 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Answer.
    Answer,
    /// Authority.
    Authority,
    /// Additional (where OPT lives).
    Additional,
}

impl Section {
    const ALL: [Section; 3] = [Section::Answer, Section::Authority, Section::Additional];

    /// Position in the header counts: answer 0, authority 1, additional 2.
    pub(crate) fn index(self) -> usize {
        match self {
            Section::Answer => 0,
            Section::Authority => 1,
            Section::Additional => 2,
        }
    }
}

/// A validated DNS message borrowed from its buffer.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
    question: Option<Question<'a>>,
    /// Start offsets of answer, authority, additional; then the end.
    starts: [usize; 4],
    opt: Option<Opt<'a>>,
    exotic: bool,
    summary: Summary,
}

impl<'a> Message<'a> {
    /// Validates a whole message: header, at most one question, every record
    /// with every name, the OPT rules of RFC 6891 §6.1.1, no trailing bytes.
    /// Bounded time: every step moves forward or (for pointers) strictly
    /// backwards within a name of bounded length.
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        let h = Header::new(buf).ok_or(ParseError::TooShort)?;
        if buf.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLong);
        }
        let mut pos = HEADER_LEN;
        let mut runs = NameRuns::new();
        let question = match h.qdcount() {
            0 => None,
            1 => {
                let end = runs.scan(buf, pos, buf.len())?;
                let name = Name { buf, at: pos };
                let qtype = u16_at(buf, end).ok_or(ParseError::RecordOverrun)?;
                let qclass = u16_at(buf, end + 2).ok_or(ParseError::RecordOverrun)?;
                pos = end + 4;
                Some(Question {
                    name,
                    qtype,
                    qclass,
                    qtype_at: end,
                })
            }
            _ => return Err(ParseError::QuestionCount),
        };
        let mut starts = [pos; 4];
        let mut opt = None;
        let mut summary = Summary::default();
        let counts = [h.ancount(), h.nscount(), h.arcount()];
        for (i, &count) in counts.iter().enumerate() {
            starts[i] = pos;
            for _ in 0..count {
                let fixed = runs.scan(buf, pos, buf.len())?;
                let rtype = u16_at(buf, fixed).ok_or(ParseError::RecordOverrun)?;
                let rdlen = usize::from(u16_at(buf, fixed + 8).ok_or(ParseError::RecordOverrun)?);
                let rr = RawRr {
                    owner: pos,
                    rtype,
                    class: u16_at(buf, fixed + 2).ok_or(ParseError::RecordOverrun)?,
                    ttl_at: fixed + 4,
                    rdata_start: fixed + 10,
                    rdata_end: fixed + 10 + rdlen,
                };
                if rr.rdata_end > buf.len() {
                    return Err(ParseError::RecordOverrun);
                }
                match rtype {
                    rtype::A if rdlen != 4 => return Err(ParseError::BadRdata),
                    rtype::AAAA if rdlen != 16 => return Err(ParseError::BadRdata),
                    rtype::OPT => {
                        // RFC 6891 §6.1.1: one OPT, root owner, additional section.
                        if i != 2 || opt.is_some() || buf[pos] != 0 {
                            return Err(ParseError::BadOpt);
                        }
                        check_options(&buf[rr.rdata_start..rr.rdata_end])?;
                        opt = Some(Opt {
                            buf,
                            at: pos,
                            end: rr.rdata_end,
                        });
                    }
                    _ => {}
                }
                match (i, rtype) {
                    (_, rtype::A) => summary.a += 1,
                    (_, rtype::RRSIG)
                        if rdlen >= 2 && u16_at(buf, rr.rdata_start) == Some(rtype::A) =>
                    {
                        summary.a_rrsig += 1;
                    }
                    (0, rtype::AAAA) => summary.aaaa += 1,
                    (0, rtype::CNAME) => summary.cname += 1,
                    // RFC 2308 §3; the SOA layout check below makes RDATA at
                    // least 20 octets before this is read by `classify`.
                    (1, rtype::SOA) if summary.negative_ttl.is_none() && rdlen >= 20 => {
                        let ttl = u32_at(buf, rr.ttl_at).unwrap_or(0);
                        let minimum = u32_at(buf, rr.rdata_end - 4).unwrap_or(0);
                        summary.negative_ttl = Some(ttl.min(minimum));
                    }
                    _ => {}
                }
                if let Some(layout) = name_layout(rtype) {
                    // The names must fill the RDATA exactly; their stored
                    // octets may not run past RDLENGTH.
                    let mut at = rr.rdata_start + layout.prefix;
                    if at > rr.rdata_end {
                        return Err(ParseError::BadRdata);
                    }
                    for _ in 0..layout.names {
                        at = runs.scan(buf, at, rr.rdata_end).map_err(|e| match e {
                            ParseError::NameOverrun => ParseError::BadRdata,
                            e => e,
                        })?;
                    }
                    if at + layout.suffix != rr.rdata_end {
                        return Err(ParseError::BadRdata);
                    }
                }
                pos = rr.rdata_end;
            }
        }
        starts[3] = pos;
        if pos != buf.len() {
            return Err(ParseError::TrailingBytes);
        }
        let high_rcode = opt.map_or(0, |o: Opt<'_>| u16::from(o.ext_rcode()));
        Ok(Message {
            buf,
            question,
            starts,
            opt,
            exotic: runs.exotic,
            summary: Summary {
                rcode: (high_rcode << 4) | h.rcode(),
                ..summary
            },
        })
    }

    /// True when some compression pointer does not lead to a label of a name
    /// stored earlier in the message (RFC 1035 §4.1.4: "a prior occurrence of
    /// the same name") — it reads header octets, TTLs or opaque RDATA as
    /// labels, or the message has more names than are tracked. Only crafted
    /// messages (or very large ones) have them. The in-place rewrites that
    /// change such octets refuse these messages, since the change could
    /// rename something; the copying rewrites handle them.
    pub fn has_exotic_pointers(&self) -> bool {
        self.exotic
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Header view (ID, flags, counts).
    pub fn header(&self) -> Header<'a> {
        Header(self.buf)
    }

    /// The full 12-bit RCODE: the header's four bits plus the OPT's upper
    /// eight (RFC 6891 §6.1.3).
    pub fn rcode(&self) -> u16 {
        let high = self.opt.map_or(0, |o| u16::from(o.ext_rcode()));
        (high << 4) | self.header().rcode()
    }

    /// The question, when QDCOUNT is 1.
    pub fn question(&self) -> Option<Question<'a>> {
        self.question
    }

    /// Offset just past the question section (the header's end without one).
    pub fn question_end(&self) -> usize {
        self.starts[0]
    }

    /// The OPT record, when present.
    pub fn opt(&self) -> Option<Opt<'a>> {
        self.opt
    }

    /// Offset range `start..end` of a section's records.
    pub fn section_range(&self, s: Section) -> std::ops::Range<usize> {
        self.starts[s.index()]..self.starts[s.index() + 1]
    }

    /// Every record of every section, in wire order (OPT included).
    pub fn records(&self) -> Records<'a> {
        let h = self.header();
        Records {
            buf: self.buf,
            pos: self.starts[0],
            section: 0,
            left: [h.ancount(), h.nscount(), h.arcount()],
        }
    }

    /// The RFC 8914 Extended DNS Errors in the OPT record:
    /// `(INFO-CODE, EXTRA-TEXT)`; an option too short for its code is skipped.
    pub fn extended_errors(&self) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
        self.opt
            .into_iter()
            .flat_map(|o| o.options())
            .filter(|&(code, data)| code == super::EDE_OPTION && data.len() >= 2)
            .map(|(_, data)| (u16::from_be_bytes([data[0], data[1]]), &data[2..]))
    }

    /// The records of one section.
    pub fn section(&self, s: Section) -> Records<'a> {
        let h = self.header();
        let mut left = [0; 3];
        left[s.index()] = [h.ancount(), h.nscount(), h.arcount()][s.index()];
        Records {
            buf: self.buf,
            pos: self.starts[s.index()],
            section: s.index(),
            left,
        }
    }

    /// Follows one CNAME: the target of the answer-section CNAME owned by
    /// `name`, if any.
    pub fn follow_cname(&self, name: &Name<'_>) -> Option<Name<'a>> {
        self.section(Section::Answer)
            .find(|r| r.rtype == rtype::CNAME && r.owner().eq_ignore_case(name))
            .and_then(|r| r.rdata_name(0))
    }

    /// The last name of the CNAME chain that starts at the question name
    /// (RFC 6147 §5.1.5 asks for A records of that name). At most one step
    /// per CNAME record, so a CNAME loop cannot spin (it ends wherever that
    /// many steps lead).
    pub fn chain_end(&self) -> Option<Name<'a>> {
        let mut current = self.question?.name;
        // At most one step per CNAME (counted while parsing): a chain cannot
        // be longer than that, and without CNAMEs there is nothing to scan.
        for _ in 0..self.summary.cname {
            match self.follow_cname(&current) {
                Some(next) => current = next,
                None => break,
            }
        }
        Some(current)
    }

    /// What a proxy decides on, counted while parsing (no second pass).
    pub fn classify(&self) -> Summary {
        self.summary
    }
}

/// Counts [`Message::classify`] gathers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Full 12-bit RCODE.
    pub rcode: u16,
    /// A records in any section (SPEC §4: none may reach a DNS64 client).
    pub a: u16,
    /// RRSIGs covering A, in any section.
    pub a_rrsig: u16,
    /// AAAA records in the answer section.
    pub aaaa: u16,
    /// CNAME records in the answer section.
    pub cname: u16,
    /// RFC 2308 §3 negative TTL of the first authority SOA.
    pub negative_ttl: Option<u32>,
}

/// Iterator over the records of a [`Message`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    section: usize,
    left: [u16; 3],
}

impl<'a> Iterator for Records<'a> {
    type Item = Rr<'a>;
    #[inline]
    fn next(&mut self) -> Option<Rr<'a>> {
        while self.section < 3 && self.left[self.section] == 0 {
            self.section += 1;
        }
        if self.section >= 3 {
            return None;
        }
        let raw = RawRr::read_stored(self.buf, self.pos)?;
        self.left[self.section] -= 1;
        self.pos = raw.rdata_end;
        Some(Rr::new(self.buf, Section::ALL[self.section], raw))
    }
}
