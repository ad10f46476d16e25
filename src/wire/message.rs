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

use std::fmt;

use super::{HEADER_LEN, Header, MAX_NAME_LEN, WireError, rtype};

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

/// Walks the labels of a (possibly compressed) name, enforcing every rule:
/// bounds, label types, backward-only pointers, hop and length limits.
/// Yields each label's octets (without the length octet); ends after the
/// root label. After exhaustion, `end` is the offset just past the name as
/// stored at its start (past the first pointer when compressed).
#[derive(Debug, Clone)]
struct LabelWalk<'a> {
    buf: &'a [u8],
    pos: usize,
    run_start: usize,
    /// Octets from here on may not be read: the position of the last
    /// pointer followed.
    limit: usize,
    total: usize,
    hops: usize,
    end: Option<usize>,
    done: bool,
}

impl<'a> LabelWalk<'a> {
    fn new(buf: &'a [u8], pos: usize) -> LabelWalk<'a> {
        LabelWalk {
            buf,
            pos,
            run_start: pos,
            limit: usize::MAX,
            total: 0,
            hops: 0,
            end: None,
            done: false,
        }
    }

    /// The next label, `Ok(None)` after the root label.
    #[inline]
    fn step(&mut self) -> Result<Option<&'a [u8]>, ParseError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let len = *self.buf.get(self.pos).ok_or(ParseError::NameOverrun)? as usize;
            match len & 0xc0 {
                0x00 => {
                    self.total += len + 1;
                    if self.total > MAX_NAME_LEN {
                        return Err(ParseError::NameTooLong);
                    }
                    let start = self.pos + 1;
                    if start + len > self.limit {
                        return Err(ParseError::BadPointer);
                    }
                    let label = self
                        .buf
                        .get(start..start + len)
                        .ok_or(ParseError::NameOverrun)?;
                    self.pos = start + len;
                    if len == 0 {
                        self.done = true;
                        self.end.get_or_insert(self.pos);
                        return Ok(None);
                    }
                    return Ok(Some(label));
                }
                0xc0 => {
                    let lo = *self.buf.get(self.pos + 1).ok_or(ParseError::NameOverrun)? as usize;
                    let target = ((len & 0x3f) << 8) | lo;
                    // RFC 1035 §4.1.4: a pointer names "a prior occurrence".
                    // Pointing strictly before the current run makes loops
                    // impossible; requiring the whole target name to lie
                    // before the pointer means no later octet (a record
                    // removed or cut off) can change what an earlier name
                    // says.
                    if target >= self.run_start || self.pos + 2 > self.limit {
                        return Err(ParseError::BadPointer);
                    }
                    self.limit = self.pos;
                    self.hops += 1;
                    if self.hops > MAX_HOPS {
                        return Err(ParseError::TooManyHops);
                    }
                    self.end.get_or_insert(self.pos + 2);
                    self.pos = target;
                    self.run_start = target;
                }
                // 0x40 (extended label types, RFC 6891 §5) and 0x80 are not
                // in use; a length above 63 is one of them.
                _ => return Err(ParseError::BadLabel),
            }
        }
    }
}

/// Validates the name at `pos`; returns the offset just past it as stored.
#[inline]
pub(crate) fn check_name(buf: &[u8], pos: usize) -> Result<usize, ParseError> {
    let mut w = LabelWalk::new(buf, pos);
    while w.step()?.is_some() {}
    w.end.ok_or(ParseError::NameOverrun)
}

/// Skips a name already validated by [`Message::parse`]: walks only the
/// labels stored here, up to the root or the first pointer. Still
/// bounds-checked, so it cannot panic on any input.
#[inline]
pub(crate) fn skip_stored_name(buf: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *buf.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            1..=63 => pos += usize::from(len) + 1,
            0xc0..=0xff => return (pos + 2 <= buf.len()).then_some(pos + 2),
            _ => return None,
        }
    }
}

/// A domain name inside a message, possibly compressed: a buffer and the
/// offset where the name starts. Only made by this module from names it has
/// validated, so walking it cannot fail.
#[derive(Clone, Copy)]
pub struct Name<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Name<'a> {
    /// Validates the name at `at` in `buf` (which may be a whole message, so
    /// that pointers resolve) and returns it with the offset just past it.
    pub fn parse(buf: &'a [u8], at: usize) -> Result<(Name<'a>, usize), ParseError> {
        let end = check_name(buf, at)?;
        Ok((Name { buf, at }, end))
    }

    /// Offset of the name in its buffer.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The buffer the name lives in.
    pub fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    /// The labels, root excluded, following compression pointers.
    pub fn labels(&self) -> Labels<'a> {
        Labels(LabelWalk::new(self.buf, self.at))
    }

    /// Where the name's first label is stored: past any pointers the name
    /// starts with (validated names only point backwards, so this ends).
    fn resolved(&self) -> usize {
        let mut at = self.at;
        for _ in 0..MAX_HOPS {
            match (self.buf.get(at), self.buf.get(at + 1)) {
                (Some(&hi), Some(&lo)) if hi >= 0xc0 => {
                    at = (usize::from(hi & 0x3f) << 8) | usize::from(lo);
                }
                _ => break,
            }
        }
        at
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.labels().next().is_none()
    }

    /// Length of the uncompressed wire form (length octets and root included).
    pub fn wire_len(&self) -> usize {
        1 + self.labels().map(|l| l.len() + 1).sum::<usize>()
    }

    /// True when both names are equal ignoring ASCII case (RFC 4343), wherever
    /// each lives and however each is compressed.
    pub fn eq_ignore_case(&self, other: &Name<'_>) -> bool {
        // Fast path: a name stored as a bare pointer is the name it points
        // at, so two names that lead to the same octets are equal unread.
        if std::ptr::eq(self.buf, other.buf) && self.resolved() == other.resolved() {
            return true;
        }
        let (mut a, mut b) = (self.labels(), other.labels());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
        }
    }

    /// Appends the uncompressed wire form.
    pub fn write_uncompressed(&self, out: &mut Vec<u8>) {
        for label in self.labels() {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
    }
}

impl PartialEq for Name<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.eq_ignore_case(other)
    }
}

impl Eq for Name<'_> {}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Presentation form with a trailing dot; octets outside printable ASCII,
/// dots and backslashes are escaped as `\DDD` (RFC 4343 §2.1).
impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for label in self.labels() {
            any = true;
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
            f.write_str(".")?;
        }
        if !any {
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// Iterator over the labels of a [`Name`]. Stops (rather than panicking) if
/// the name turns out malformed, which a validated name never is.
#[derive(Debug, Clone)]
pub struct Labels<'a>(LabelWalk<'a>);

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.0.step().ok().flatten()
    }
}

/// How names sit inside the RDATA of a type: `prefix` fixed octets, then
/// `names` domain names, then exactly `suffix` fixed octets. Only the types
/// RFC 3597 §4 allows to be compressed, plus the few later ones that servers
/// compress in practice (SRV, KX, DNAME); every other type is opaque octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameLayout {
    pub prefix: usize,
    pub names: usize,
    pub suffix: usize,
}

pub(crate) fn name_layout(rtype: u16) -> Option<NameLayout> {
    let (prefix, names, suffix) = match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME.
        2..=5 | 7..=9 | 12 | 39 => (0, 1, 0),
        // SOA: MNAME, RNAME, then five 32-bit fields.
        6 => (0, 2, 20),
        // MINFO, RP.
        14 | 17 => (0, 2, 0),
        // MX, AFSDB, RT, KX: preference, name.
        15 | 18 | 21 | 36 => (2, 1, 0),
        // PX: preference, two names.
        26 => (2, 2, 0),
        // SRV: priority, weight, port, target.
        33 => (6, 1, 0),
        _ => return None,
    };
    Some(NameLayout {
        prefix,
        names,
        suffix,
    })
}

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
    buf: &'a [u8],
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
    fn new(buf: &'a [u8], section: Section, raw: RawRr) -> Rr<'a> {
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
    buf: &'a [u8],
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
pub struct OptOptions<'a>(&'a [u8]);

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

fn check_options(mut rdata: &[u8]) -> Result<(), ParseError> {
    while !rdata.is_empty() {
        let len = usize::from(u16_at(rdata, 2).ok_or(ParseError::BadOpt)?);
        rdata = rdata.get(4 + len..).ok_or(ParseError::BadOpt)?;
    }
    Ok(())
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

/// How many stored names [`Message::parse`] remembers to resolve pointers
/// without walking them. A few hundred octets on the stack; past it,
/// pointers to later names are walked in full and count as exotic.
const MAX_RUNS: usize = 64;

/// The stored part of a name seen earlier: `start..end` holds its labels
/// (and its root octet when not compressed); `len` is the length of the
/// whole name from `start`, expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    start: u16,
    /// Stored octets (at most 255).
    stored: u8,
    /// Expanded length (at most 255).
    len: u8,
}

/// The names seen so far, in message order, so that a pointer to one of
/// them is resolved by a binary search instead of a walk: each name is then
/// read once, which is what makes [`Message::parse`] fast.
struct NameRuns {
    n: usize,
    runs: [Run; MAX_RUNS],
    exotic: bool,
    /// Index of the run the last pointer led to.
    hint: usize,
}

impl NameRuns {
    fn new() -> NameRuns {
        NameRuns {
            n: 0,
            runs: [Run::default(); MAX_RUNS],
            exotic: false,
            hint: 0,
        }
    }

    /// Validates the name at `pos`, whose stored octets must end before
    /// `limit`; returns the offset just past it. A pointer to a label of a
    /// name seen before needs no walk: that name was validated, lies wholly
    /// before this one, and its length is known. Any other pointer is walked
    /// with every rule of [`check_name`] and marks the message exotic.
    #[inline]
    fn scan(&mut self, buf: &[u8], pos: usize, limit: usize) -> Result<usize, ParseError> {
        let buf_in = buf.get(..limit).ok_or(ParseError::NameOverrun)?;
        let mut p = pos;
        loop {
            let len = usize::from(*buf_in.get(p).ok_or(ParseError::NameOverrun)?);
            match len {
                0 => {
                    let stored = p + 1 - pos;
                    if stored > MAX_NAME_LEN {
                        return Err(ParseError::NameTooLong);
                    }
                    self.push(pos, p + 1, stored);
                    return Ok(p + 1);
                }
                1..=63 => {
                    p += len + 1;
                    if p - pos >= MAX_NAME_LEN {
                        return Err(ParseError::NameTooLong);
                    }
                }
                0xc0..=0xff => {
                    let lo = usize::from(*buf_in.get(p + 1).ok_or(ParseError::NameOverrun)?);
                    let target = ((len & 0x3f) << 8) | lo;
                    let total = match self.suffix_len(buf, target) {
                        Some(suffix) => p - pos + suffix,
                        None => {
                            // Not a name seen before: validate the long way.
                            check_name(buf_in, pos)?;
                            self.exotic = true;
                            return Ok(p + 2);
                        }
                    };
                    if total > MAX_NAME_LEN {
                        return Err(ParseError::NameTooLong);
                    }
                    self.push(pos, p, total);
                    return Ok(p + 2);
                }
                _ => return Err(ParseError::BadLabel),
            }
        }
    }

    fn push(&mut self, start: usize, end: usize, len: usize) {
        if end > start && self.n < MAX_RUNS {
            // Offsets fit: the message is at most 65535 octets, a name 255.
            self.runs[self.n] = Run {
                start: start as u16,
                stored: (end - start) as u8,
                len: len as u8,
            };
            self.n += 1;
        }
    }

    /// When `t` starts a label (or the root) inside a run seen before: the
    /// expanded length of the name from `t`.
    #[inline]
    fn suffix_len(&mut self, buf: &[u8], t: usize) -> Option<usize> {
        let run = self.find(t)?;
        let start = usize::from(run.start);
        let mut p = start;
        while p < t {
            p += usize::from(*buf.get(p)?) + 1;
        }
        (p == t).then(|| usize::from(run.len) - (t - start))
    }

    /// The run holding offset `t`. Compressors point mostly at the question
    /// name, at the name just pointed at, or at the one after it (glue
    /// records follow the names they serve), so those are tried before a
    /// binary search.
    #[inline]
    fn find(&mut self, t: usize) -> Option<Run> {
        let runs = &self.runs[..self.n];
        let holds = |r: &Run| {
            let start = usize::from(r.start);
            start <= t && t < start + usize::from(r.stored)
        };
        for i in [0, self.hint, self.hint + 1] {
            if let Some(r) = runs.get(i).filter(|r| holds(r)) {
                self.hint = i;
                return Some(*r);
            }
        }
        let i = runs
            .partition_point(|r| usize::from(r.start) <= t)
            .checked_sub(1)?;
        let r = runs[i];
        holds(&r).then(|| {
            self.hint = i;
            r
        })
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response for `www.example.` A: CNAME to `v4.example.` (target
    /// compressed against the question), two A records, an SOA in authority,
    /// OPT with DO and one option.
    pub(crate) fn sample() -> Vec<u8> {
        let mut m = vec![
            0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 3, 0, 1, 0, 1, // header
        ];
        m.extend_from_slice(b"\x03WwW\x07example\x00\x00\x01\x00\x01"); // 12..29
        // CNAME at 29: owner -> 12, target "v4" + pointer to "example" at 16.
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 5]);
        m.extend_from_slice(&[2, b'v', b'4', 0xc0, 16]); // target at 41
        // A at 46 and 62, owner -> 41.
        for last in [1u8, 2] {
            m.extend_from_slice(&[0xc0, 41, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, last]);
        }
        // SOA owner -> 16 (example.), mname ns + ptr, rname ptr.
        m.extend_from_slice(&[0xc0, 16, 0, 6, 0, 1, 0, 0, 3, 0x84, 0, 27]);
        m.extend_from_slice(&[2, b'n', b's', 0xc0, 16, 0xc0, 16]);
        m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 30]);
        // OPT: payload 1232, DO, one option (code 10, 2 octets).
        m.extend_from_slice(&[
            0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 6, 0, 10, 0, 2, 0xaa, 0xbb,
        ]);
        m
    }

    #[test]
    fn view_reports_header_question_records_and_opt() {
        let buf = sample();
        let m = Message::parse(&buf).unwrap();
        let h = m.header();
        assert_eq!(
            (h.id(), h.qr(), h.rd(), h.ra(), h.aa()),
            (0xabcd, true, true, true, false)
        );
        let q = m.question().unwrap();
        assert_eq!(q.name.to_string(), "WwW.example.");
        assert_eq!((q.qtype, q.qclass, q.qtype_at), (rtype::A, 1, 25));
        let rrs: Vec<_> = m
            .records()
            .map(|r| (r.section, r.rtype, r.owner().to_string()))
            .collect();
        assert_eq!(
            rrs,
            vec![
                (Section::Answer, rtype::CNAME, "WwW.example.".into()),
                (Section::Answer, rtype::A, "v4.example.".into()),
                (Section::Answer, rtype::A, "v4.example.".into()),
                (Section::Authority, rtype::SOA, "example.".into()),
                (Section::Additional, rtype::OPT, ".".into()),
            ]
        );
        let a = m.section(Section::Answer).nth(2).unwrap();
        assert_eq!(a.ipv4(), Some([192, 0, 2, 2].into()));
        assert_eq!(a.ttl(), 256);
        assert_eq!((a.owner_at, a.ttl_at, a.rdata_range()), (62, 68, 74..78));
        let opt = m.opt().unwrap();
        assert_eq!(
            (opt.payload(), opt.dnssec_ok(), opt.version()),
            (1232, true, 0)
        );
        assert_eq!(
            opt.options().collect::<Vec<_>>(),
            vec![(10, &[0xaa, 0xbb][..])]
        );
        let s = m.classify();
        assert_eq!((s.a, s.cname, s.aaaa, s.negative_ttl), (2, 1, 0, Some(30)));
        assert_eq!(m.rcode(), 0);
    }

    #[test]
    fn names_compare_across_compression_case_and_buffers() {
        let buf = sample();
        let m = Message::parse(&buf).unwrap();
        let end = m.chain_end().unwrap();
        assert_eq!(end.to_string(), "v4.example.");
        let other = b"\x02V4\x07EXAMPLE\x00";
        let (n, _) = Name::parse(other, 0).unwrap();
        assert!(end.eq_ignore_case(&n));
        assert!(!m.question().unwrap().name.eq_ignore_case(&n));
        assert_eq!(end.wire_len(), other.len());
        let mut flat = Vec::new();
        end.write_uncompressed(&mut flat);
        assert_eq!(flat, b"\x02v4\x07example\x00");
        let soa = m.section(Section::Authority).next().unwrap();
        assert_eq!(soa.rdata_name(0).unwrap().to_string(), "ns.example.");
        assert_eq!(soa.rdata_name(1).unwrap().to_string(), "example.");
        assert!(soa.rdata_name(2).is_none());
    }

    #[test]
    fn cname_loop_ends_in_bounded_steps() {
        // a. CNAME b., b. CNAME a.
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01"); // 12..19
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 3, 1, b'b', 0]); // b at 31
        m.extend_from_slice(&[0xc0, 31, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0xc0, 12]);
        let v = Message::parse(&m).unwrap();
        let end = v.chain_end().unwrap();
        assert!(end.to_string() == "a." || end.to_string() == "b.");
    }

    #[test]
    fn malformed_messages_are_rejected_with_a_reason() {
        let good = sample();
        assert_eq!(
            Message::parse(&good[..11]).unwrap_err(),
            ParseError::TooShort
        );
        for cut in 12..good.len() {
            assert!(Message::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            Message::parse(&trailing).unwrap_err(),
            ParseError::TrailingBytes
        );
        // CNAME target pointing forward (at the first A record).
        let mut fwd = good.clone();
        fwd[45] = 46;
        assert_eq!(Message::parse(&fwd).unwrap_err(), ParseError::BadPointer);
        // A record with 3 octets of RDATA.
        let mut short = good.clone();
        short[57] = 3;
        assert!(Message::parse(&short).is_err());
        // OPT in the answer section: move the count.
        let mut opt = good.clone();
        opt[7] = 0;
        opt[9] = 4;
        opt[11] = 0;
        // Now answers: 0, authority: CNAME A A SOA... additional 0 → trailing OPT.
        assert!(Message::parse(&opt).is_err());
        let mut two_q = good.clone();
        two_q[5] = 2;
        assert_eq!(
            Message::parse(&two_q).unwrap_err(),
            ParseError::QuestionCount
        );
        // Label with reserved type bits.
        let mut label = good.clone();
        label[12] = 0x43;
        assert_eq!(Message::parse(&label).unwrap_err(), ParseError::BadLabel);
    }

    #[test]
    fn pointer_chains_are_bounded_and_names_capped_at_255_octets() {
        // 200 pointers, each to the previous one: backwards, but too many hops.
        let mut m = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for i in 0..200usize {
            let target = 12 + if i == 0 { 0 } else { 1 + 2 * (i - 1) };
            m.extend_from_slice(&[0xc0 | (target >> 8) as u8, target as u8]);
        }
        let last = m.len() - 2;
        assert_eq!(check_name(&m, last).unwrap_err(), ParseError::TooManyHops);
        assert!(check_name(&m, 13 + 2 * 100).is_ok());
        // 4 x 63-octet labels through pointers: 256 octets expanded.
        let mut long = vec![0; 12];
        long.extend_from_slice(&[63]);
        long.extend_from_slice(&[b'a'; 63]);
        long.push(0); // name at 12: 65 octets
        let second = long.len();
        long.push(63);
        long.extend_from_slice(&[b'b'; 63]);
        long.extend_from_slice(&[0xc0, 12]); // 129 octets
        let third = long.len();
        long.push(63);
        long.extend_from_slice(&[b'c'; 63]);
        long.extend_from_slice(&[0xc0 | (second >> 8) as u8, second as u8]); // 193
        let fourth = long.len();
        long.push(62);
        long.extend_from_slice(&[b'd'; 62]);
        long.extend_from_slice(&[0xc0 | (third >> 8) as u8, third as u8]); // 256
        assert_eq!(
            check_name(&long, fourth).unwrap_err(),
            ParseError::NameTooLong
        );
        assert_eq!(Name::parse(&long, third).unwrap().0.wire_len(), 193);
    }

    #[test]
    fn parse_error_maps_to_the_query_path_error() {
        assert_eq!(WireError::from(ParseError::TooShort), WireError::TooShort);
        assert_eq!(
            WireError::from(ParseError::BadPointer),
            WireError::Malformed("compression pointer does not point backwards")
        );
    }
}
