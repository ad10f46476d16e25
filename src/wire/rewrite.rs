//! Rewrites of whole DNS messages as byte operations: in place where the
//! layout cannot move (ID, question case, TTLs, truncation, OPT fields), and
//! into a caller-owned output buffer where records disappear or appear
//! (A stripping, AAAA synthesis). The output `Vec` is cleared and reused, so
//! once it has grown to a message's size nothing here allocates.
//!
//! Data path position: `upstream → wire::rewrite → listen`, the fast path
//! beside the hickory-proto decode → mutate → encode path of `dns64`,
//! `filter` and `reply`.
//!
//! Removing a record moves everything after it, and compression pointers
//! (RFC 1035 §4.1.4) in later records may point into it or past it. Records
//! are therefore copied name by name: each run of labels copied verbatim is
//! remembered (old offset → new offset), a pointer into a remembered run is
//! re-aimed at the copy, and a pointer to anything not copied is replaced by
//! the labels it stood for. The result is always a valid message naming the
//! same names, and as compressed as the input wherever the input's targets
//! survive.

use std::net::Ipv4Addr;

use super::message::{
    MAX_HOPS, MAX_MESSAGE_LEN, Message, Name, ParseError, RawRr, Rr, Section, check_name,
    name_layout, skip_stored_name, u16_at,
};
use super::{HEADER_LEN, Header, MAX_NAME_LEN, Query, push_opt, rtype};
use crate::types::Prefix;

/// Why a rewrite could not be done. `Copy`, like [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The input is not a well-formed message.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The operation needs a question and QDCOUNT is 0.
    #[error("the message has no question")]
    NoQuestion,
    /// The reply's question is not the client's (ignoring case).
    #[error("the reply's question is not the client's")]
    QuestionMismatch,
    /// The result would exceed 65535 octets, a 16-bit count or RDLENGTH.
    #[error("the result would not fit a DNS message")]
    TooLong,
    /// A layout an in-place rewrite cannot patch safely: a name that reads
    /// octets the rewrite changes or moves (see
    /// [`Message::has_exotic_pointers`]); only crafted messages have one.
    #[error("layout cannot be patched in place")]
    Unsupported,
}

/// Highest offset a compression pointer can reach (14 bits, RFC 1035 §4.1.4).
const MAX_POINTER: usize = 0x3fff;

/// How many copied label runs a rewrite remembers. Past this, later pointers
/// into runs not remembered are expanded instead: still correct, just larger.
/// Stack-allocated so a rewrite never touches the heap.
const MAX_SPANS: usize = 64;

/// A run of labels copied verbatim: the labels at `old` in the input now
/// live at `new` in the output. Where the run ends is read from the input
/// (its root octet or pointer), so four octets per run suffice.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    old: u16,
    new: u16,
}

/// The copied runs, sorted by input offset for binary search. On the stack
/// (256 octets) so a rewrite never touches the heap.
struct Spans {
    n: usize,
    items: [Span; MAX_SPANS],
}

impl Spans {
    fn new() -> Spans {
        Spans {
            n: 0,
            items: [Span::default(); MAX_SPANS],
        }
    }

    /// Remembers a copied run; silently forgets it when full or when the
    /// copy sits beyond pointer reach.
    fn insert(&mut self, old: usize, len: usize, new: usize) {
        if len == 0 || self.n == MAX_SPANS || new > MAX_POINTER {
            return;
        }
        let (Ok(old16), Ok(new16)) = (u16::try_from(old), u16::try_from(new)) else {
            return;
        };
        // Runs are mostly copied in input order: append without searching.
        let i = match self.n.checked_sub(1).map(|last| self.items[last].old) {
            Some(last) if last < old16 => self.n,
            None => 0,
            Some(_) => self.items[..self.n].partition_point(|s| s.old < old16),
        };
        self.items.copy_within(i..self.n, i + 1);
        self.items[i] = Span {
            old: old16,
            new: new16,
        };
        self.n += 1;
    }

    /// Where the name at input offset `t` was copied, when `t` starts a
    /// label (or is the root octet) of a remembered run and the copy is
    /// within pointer reach.
    fn find(&self, input: &[u8], t: usize) -> Option<usize> {
        let i = self.items[..self.n].partition_point(|s| usize::from(s.old) <= t);
        let s = self.items[..i].last()?;
        let old = usize::from(s.old);
        // Walk the run's labels: only a label boundary reads the same in
        // both places (a pointer into the middle of a label would read
        // different octets past the end of the run), and the walk stops at
        // the run's end.
        let mut p = old;
        while p < t {
            match *input.get(p)? {
                len @ 1..=63 => p += usize::from(len) + 1,
                _ => return None,
            }
        }
        let at = usize::from(s.new) + (t - old);
        (p == t && at <= MAX_POINTER).then_some(at)
    }
}

/// Appends a compression pointer to `at` (at most [`MAX_POINTER`]).
#[inline]
fn push_pointer(out: &mut Vec<u8>, at: usize) {
    out.extend_from_slice(&(0xc000 | at as u16).to_be_bytes());
}

/// Copies the name at `pos` of `input` to the end of `out`, re-aiming or
/// expanding its pointers (see the module docs). Enforces the same rules as
/// parsing, so even an unvalidated input cannot loop or overrun.
fn copy_name(
    input: &[u8],
    pos: usize,
    spans: &mut Spans,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    let mut p = pos;
    let mut hops = 0;
    let mut total = 0;
    // No octet at or past the last pointer followed may be read (see
    // `message`: a pointer leads to a prior occurrence).
    let mut limit = usize::MAX;
    // Start of the current verbatim run: (input offset, output offset).
    let mut run: Option<(usize, usize)> = None;
    loop {
        let (run_old, run_new) = match run {
            Some(r) => r,
            None => {
                if let Some(at) = spans.find(input, p) {
                    push_pointer(out, at);
                    return Ok(());
                }
                run = Some((p, out.len()));
                (p, out.len())
            }
        };
        let len = usize::from(*input.get(p).ok_or(ParseError::NameOverrun)?);
        match len {
            0 => {
                if p + 1 > limit {
                    return Err(ParseError::BadPointer.into());
                }
                out.push(0);
                spans.insert(run_old, p + 1 - run_old, run_new);
                return Ok(());
            }
            1..=63 => {
                // Copy the whole run of labels up to the root or a pointer
                // in one go.
                let from = p;
                let mut l = len;
                while (1..=63).contains(&l) {
                    total += l + 1;
                    p += l + 1;
                    if total >= MAX_NAME_LEN {
                        return Err(ParseError::NameTooLong.into());
                    }
                    l = usize::from(*input.get(p).ok_or(ParseError::NameOverrun)?);
                }
                if p > limit {
                    return Err(ParseError::BadPointer.into());
                }
                out.extend_from_slice(&input[from..p]);
            }
            0xc0..=0xff => {
                let lo = usize::from(*input.get(p + 1).ok_or(ParseError::NameOverrun)?);
                let target = ((len & 0x3f) << 8) | lo;
                if target >= run_old || p + 2 > limit {
                    return Err(ParseError::BadPointer.into());
                }
                limit = p;
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(ParseError::TooManyHops.into());
                }
                spans.insert(run_old, p - run_old, run_new);
                run = None;
                p = target;
            }
            _ => return Err(ParseError::BadLabel.into()),
        }
    }
}

/// Copies one record, re-aiming the names in its owner and (for the types
/// that hold names) its RDATA. Other RDATA is opaque and copied verbatim
/// (RFC 3597 §4: only the RFC 1035 types may be compressed).
fn copy_record(
    input: &[u8],
    rr: &Rr<'_>,
    spans: &mut Spans,
    out: &mut Vec<u8>,
) -> Result<(), RewriteError> {
    copy_name(input, rr.owner_at, spans, out)?;
    // TYPE, CLASS, TTL.
    let fixed = input
        .get(rr.ttl_at - 4..rr.ttl_at + 4)
        .ok_or(ParseError::RecordOverrun)?;
    out.extend_from_slice(fixed);
    let rdlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match name_layout(rr.rtype) {
        None => out.extend_from_slice(rr.rdata()),
        Some(layout) => {
            let mut pos = rr.rdata_start + layout.prefix;
            let prefix = input
                .get(rr.rdata_start..pos)
                .ok_or(ParseError::RecordOverrun)?;
            out.extend_from_slice(prefix);
            for _ in 0..layout.names {
                copy_name(input, pos, spans, out)?;
                pos = skip_stored_name(input, pos).ok_or(ParseError::NameOverrun)?;
            }
            let suffix = input
                .get(pos..rr.rdata_end)
                .ok_or(ParseError::RecordOverrun)?;
            out.extend_from_slice(suffix);
        }
    }
    let rdlen = u16::try_from(out.len() - rdlen_at - 2).map_err(|_| RewriteError::TooLong)?;
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    Ok(())
}

/// Writes the header counts of `out` and checks the size limit.
fn finish(out: &mut [u8], counts: [usize; 4]) -> Result<(), RewriteError> {
    if out.len() > MAX_MESSAGE_LEN {
        return Err(RewriteError::TooLong);
    }
    for (i, c) in counts.into_iter().enumerate() {
        let c = u16::try_from(c).map_err(|_| RewriteError::TooLong)?;
        out[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}

/// Starts an output: the input's header and question (QTYPE replaced by
/// `qtype` when given).
fn start(
    msg: &Message<'_>,
    qtype: Option<u16>,
    spans: &mut Spans,
    out: &mut Vec<u8>,
) -> Result<usize, RewriteError> {
    let input = msg.bytes();
    out.clear();
    out.extend_from_slice(&input[..HEADER_LEN]);
    let Some(q) = msg.question() else {
        return Ok(0);
    };
    copy_name(input, q.name.offset(), spans, out)?;
    out.extend_from_slice(&qtype.unwrap_or(q.qtype).to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    Ok(1)
}

/// Copies `msg` into `out` keeping only the records `keep` accepts, with
/// correct names and counts. Returns how many records were removed.
pub fn retain_into(
    msg: &Message<'_>,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(&Rr<'_>) -> bool,
) -> Result<usize, RewriteError> {
    let mut spans = Spans::new();
    let qd = start(msg, None, &mut spans, out)?;
    let mut counts = [qd, 0, 0, 0];
    let mut removed = 0;
    for rr in msg.records() {
        if keep(&rr) {
            copy_record(msg.bytes(), &rr, &mut spans, out)?;
            counts[1 + rr.section.index()] += 1;
        } else {
            removed += 1;
        }
    }
    finish(out, counts)?;
    Ok(removed)
}

/// True for records of type `t` and for RRSIGs whose type covered
/// (RFC 4034 §3.1.1) is `t`: a signature without its RRset is useless and
/// would tell a validating client the records existed.
pub fn is_type_or_its_rrsig(rr: &Rr<'_>, t: u16) -> bool {
    rr.rtype == t || rr.type_covered() == Some(t)
}

/// Removes every record of type `t` (and RRSIGs covering `t`) from every
/// section, writing the result into `out` (SPEC §4 A stripping). Returns how
/// many records were removed; when none match, `out` is a plain copy.
pub fn strip_type(msg: &Message<'_>, t: u16, out: &mut Vec<u8>) -> Result<usize, RewriteError> {
    let nothing = match t {
        // Counted while parsing: no second pass for the common case.
        rtype::A => msg.classify().a == 0 && msg.classify().a_rrsig == 0,
        _ => !msg.records().any(|rr| is_type_or_its_rrsig(&rr, t)),
    };
    if nothing {
        out.clear();
        out.extend_from_slice(msg.bytes());
        return Ok(0);
    }
    retain_into(msg, out, |rr| !is_type_or_its_rrsig(rr, t))
}

/// RFC 2181 §8: a TTL with the top bit set is treated as zero.
#[inline]
fn sane_ttl(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 { 0 } else { ttl }
}

/// Turns the A response `a_resp` into the synthesized AAAA response, in one
/// pass into `out` (RFC 6147 §5.1.6, §5.1.7):
///
/// - header: ID, RD, CD, RCODE kept; AA, TC and AD cleared (§5.5: nothing
///   vouches for records we made; we are not the authority);
/// - question: QTYPE A becomes AAAA, name bytes (and case) kept;
/// - answer: the CNAME and DNAME records of the chain, then for each prefix
///   (configured order) and each A record owned by `owner` whose address
///   `allow` accepts, an AAAA with the owner as a pointer to the A record's
///   owner, TTL `ttl(A TTL)` (§5.1.7: the caller passes
///   `dns64::rules::synthesized_ttl` with its cap, the rule the hickory-proto
///   path applies too) and the address embedded per RFC 6052;
/// - authority dropped; additional reduced to the OPT record, if any.
///
/// Returns the number of AAAA records made; with 0 the caller keeps the
/// original AAAA response (§5.1.6).
pub fn synthesize_aaaa(
    a_resp: &Message<'_>,
    owner: &Name<'_>,
    prefixes: &[Prefix],
    ttl: impl Fn(u32) -> u32,
    mut allow: impl FnMut(Ipv4Addr, &Prefix) -> bool,
    out: &mut Vec<u8>,
) -> Result<usize, RewriteError> {
    let input = a_resp.bytes();
    let q = a_resp.question().ok_or(RewriteError::NoQuestion)?;
    let mut spans = Spans::new();
    start(a_resp, Some(rtype::AAAA), &mut spans, out)?;
    out[2] &= !(0x04 | 0x02); // AA, TC
    out[3] &= !0x20; // AD
    let mut answers = 0;
    for rr in a_resp.section(Section::Answer) {
        if matches!(rr.rtype, rtype::CNAME | DNAME) {
            copy_record(input, &rr, &mut spans, out)?;
            answers += 1;
        }
    }
    let mut made = 0;
    for prefix in prefixes {
        let (base, at) = embedding(prefix);
        for rr in a_resp.section(Section::Answer) {
            let Some(v4) = rr.ipv4() else { continue };
            if rr.class != q.qclass || !rr.owner().eq_ignore_case(owner) || !allow(v4, prefix) {
                continue;
            }
            copy_name(input, rr.owner_at, &mut spans, out)?;
            out.extend_from_slice(&rtype::AAAA.to_be_bytes());
            out.extend_from_slice(&rr.class.to_be_bytes());
            out.extend_from_slice(&ttl(rr.ttl()).to_be_bytes());
            out.extend_from_slice(&16u16.to_be_bytes());
            // RFC 6052 §2.2, as `Prefix::embed`, written straight into the
            // output: no 16-octet temporary to build and reload.
            let rdata = out.len();
            out.extend_from_slice(&base);
            for (i, octet) in at.into_iter().zip(v4.octets()) {
                out[rdata + i] = octet;
            }
            made += 1;
        }
    }
    answers += made;
    let mut additional = 0;
    if let Some(opt) = a_resp.opt() {
        out.extend_from_slice(&input[opt.at..opt.end]);
        additional = 1;
    }
    finish(out, [1, answers, 0, additional])?;
    Ok(made)
}

/// The prefix octets and where the four IPv4 octets go under it (RFC 6052
/// §2.2): consecutive from the end of the prefix, skipping octet 8 (bits
/// 64..71, the "u" octet, which stays zero). Checked against
/// [`Prefix::embed`] for every length in the tests.
fn embedding(prefix: &Prefix) -> ([u8; 16], [usize; 4]) {
    let mut at = [0; 4];
    let mut i = usize::from(prefix.len() / 8);
    for slot in &mut at {
        if i == 8 {
            i += 1;
        }
        // At most 15: the longest prefix, /96, puts the octets at 12..16.
        *slot = i.min(15);
        i += 1;
    }
    (prefix.net().addr().octets(), at)
}

/// DNAME (RFC 6672), part of a chain like CNAME.
const DNAME: u16 = 39;

/// Sets the message ID in place (RFC 1035 §4.1.1).
pub fn set_message_id(buf: &mut [u8], id: u16) -> Result<(), RewriteError> {
    let id_field = buf.get_mut(..2).ok_or(ParseError::TooShort)?;
    id_field.copy_from_slice(&id.to_be_bytes());
    Ok(())
}

/// Puts the client's question bytes back into a reply, in place: the names
/// must be equal ignoring case and the type and class identical. Clients
/// using 0x20 randomisation compare the letter case; caches and upstreams
/// may have changed it. Same length, so every pointer stays valid.
pub fn restore_question_case(buf: &mut [u8], client_question: &[u8]) -> Result<(), RewriteError> {
    let h = Header::new(buf).ok_or(ParseError::TooShort)?;
    if h.qdcount() != 1 {
        return Err(RewriteError::NoQuestion);
    }
    // The client's question is uncompressed: check_name at offset 0 rejects
    // any pointer (nothing precedes it).
    let name_len = check_name(client_question, 0)?;
    if client_question.len() != name_len + 4 {
        return Err(RewriteError::QuestionMismatch);
    }
    let reply = buf
        .get_mut(HEADER_LEN..HEADER_LEN + client_question.len())
        .ok_or(RewriteError::QuestionMismatch)?;
    // Length octets are at most 63, below every letter, so a case-blind
    // comparison still compares the label structure exactly.
    if !reply[..name_len].eq_ignore_ascii_case(&client_question[..name_len])
        || reply[name_len..] != client_question[name_len..]
    {
        return Err(RewriteError::QuestionMismatch);
    }
    reply.copy_from_slice(client_question);
    Ok(())
}

/// Makes a reply the client's, in place: its ID, RD and CD, and its question
/// letter case (SPEC §7).
pub fn echo_client(buf: &mut [u8], query: &Query<'_>) -> Result<(), RewriteError> {
    let q = query.bytes();
    if buf.len() < HEADER_LEN || q.len() < HEADER_LEN {
        return Err(ParseError::TooShort.into());
    }
    restore_question_case(buf, query.question())?;
    buf[..2].copy_from_slice(&q[..2]);
    buf[2] = (buf[2] & !0x01) | (q[2] & 0x01);
    buf[3] = (buf[3] & !0x10) | (q[3] & 0x10);
    Ok(())
}

/// Ages and caps every TTL in place (OPT excluded: its TTL field holds
/// flags): `min(ttl - elapsed, cap)`, never below zero; TTLs with the top bit
/// set count as zero (RFC 2181 §8).
pub fn adjust_ttls(buf: &mut [u8], elapsed: u32, cap: u32) -> Result<(), RewriteError> {
    let (mut pos, total) = {
        let m = Message::parse(buf)?;
        if m.has_exotic_pointers() {
            return Err(RewriteError::Unsupported);
        }
        let h = m.header();
        let total = usize::from(h.ancount()) + usize::from(h.nscount()) + usize::from(h.arcount());
        (m.question_end(), total)
    };
    for _ in 0..total {
        let rr = RawRr::read_stored(buf, pos).ok_or(ParseError::RecordOverrun)?;
        if rr.rtype != rtype::OPT {
            let field = buf
                .get_mut(rr.ttl_at..rr.ttl_at + 4)
                .ok_or(ParseError::RecordOverrun)?;
            let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
            let ttl = sane_ttl(ttl).saturating_sub(elapsed).min(cap);
            field.copy_from_slice(&ttl.to_be_bytes());
        }
        pos = rr.rdata_end;
    }
    Ok(())
}

/// Fits a UDP reply into `limit` octets, in place (RFC 2181 §9, SPEC §7):
/// additional records go first, then authority, then trailing answer
/// records; only whole records are kept; the OPT record is kept (moved up
/// to follow the last kept record). TC is set when an answer or authority
/// record had to go — not when only additional records did (RFC 2181 §9:
/// "not ... merely because some extra information could have been
/// included"). Returns whether anything was cut. Pointers in the kept
/// records only point backwards, so cutting a tail never breaks them.
pub fn truncate_udp(buf: &mut Vec<u8>, limit: usize) -> Result<bool, RewriteError> {
    if buf.len() <= limit {
        return Ok(false);
    }
    let (cut, answers, authority, opt, tc) = {
        let m = Message::parse(buf)?;
        if m.has_exotic_pointers() {
            return Err(RewriteError::Unsupported);
        }
        let opt = m.opt().map(|o| (o.at, o.end));
        let room = limit.saturating_sub(opt.map_or(0, |(a, e)| e - a));
        let authority_end = m.section_range(Section::Authority).end;
        let h = m.header();
        if authority_end <= room {
            // Only additional records need to go.
            let cut = authority_end;
            (cut, h.ancount(), h.nscount(), opt, false)
        } else {
            let mut cut = m.question_end();
            let mut kept = 0u16;
            for rr in m.section(Section::Answer) {
                if rr.end() > room {
                    break;
                }
                cut = rr.end();
                kept += 1;
            }
            // TC only when something required went; a question alone that
            // exceeds the limit (never the case at 512 and up) stays as is.
            let tc = kept < h.ancount() || h.nscount() > 0;
            (cut, kept, 0, opt, tc)
        }
    };
    let mut additional = 0;
    match opt {
        Some((at, end)) => {
            buf.copy_within(at..end, cut);
            buf.truncate(cut + end - at);
            additional = 1;
        }
        None => buf.truncate(cut),
    }
    buf[6..8].copy_from_slice(&answers.to_be_bytes());
    buf[8..10].copy_from_slice(&authority.to_be_bytes());
    buf[10..12].copy_from_slice(&u16::to_be_bytes(additional));
    if tc {
        buf[2] |= 0x02;
    }
    Ok(true)
}

/// RFC 8914 EXTRA-TEXT we attach is capped, cut at a character boundary.
const MAX_EDE_TEXT: usize = 200;

/// Adds an OPT record (RFC 6891 §6.1.2) or adjusts the one present: UDP
/// payload size and DO bit; with `ede`, appends an RFC 8914 Extended DNS
/// Error option (info-code, UTF-8 text). In place; when the OPT is not the
/// last record, the records after it move and their pointers past the
/// insertion point are re-aimed.
pub fn set_edns(
    buf: &mut Vec<u8>,
    payload: u16,
    dnssec_ok: bool,
    ede: Option<(u16, &str)>,
) -> Result<(), RewriteError> {
    let (opt, after) = {
        let m = Message::parse(buf)?;
        if m.has_exotic_pointers() {
            return Err(RewriteError::Unsupported);
        }
        let opt = m.opt().map(|o| (o.at, o.end));
        let after = opt.map_or(0, |(at, _)| {
            m.section(Section::Additional)
                .filter(|r| r.owner_at > at)
                .count()
        });
        (opt, after)
    };
    // RFC 8914 §2: EXTRA-TEXT is UTF-8; cut only at a character boundary.
    let ede = ede.map(|(code, text)| {
        let mut n = text.len().min(MAX_EDE_TEXT);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        (code, &text[..n])
    });
    let Some((at, end)) = opt else {
        let arcount = u16_at(buf, 10)
            .and_then(|c| c.checked_add(1))
            .ok_or(RewriteError::TooLong)?;
        let before = buf.len();
        push_opt(buf, payload, dnssec_ok, 0, ede);
        if buf.len() > MAX_MESSAGE_LEN {
            buf.truncate(before);
            return Err(RewriteError::TooLong);
        }
        buf[10..12].copy_from_slice(&arcount.to_be_bytes());
        return Ok(());
    };
    buf[at + 3..at + 5].copy_from_slice(&payload.to_be_bytes());
    buf[at + 7] = (buf[at + 7] & 0x7f) | if dnssec_ok { 0x80 } else { 0 };
    let Some((code, text)) = ede else {
        return Ok(());
    };
    let text = text.as_bytes();
    let add = 6 + text.len();
    let rdlen = usize::from(u16_at(buf, at + 9).ok_or(ParseError::RecordOverrun)?) + add;
    let rdlen = u16::try_from(rdlen).map_err(|_| RewriteError::TooLong)?;
    let old_len = buf.len();
    if old_len + add > MAX_MESSAGE_LEN {
        return Err(RewriteError::TooLong);
    }
    if after > 0 {
        // Re-aimed pointers might fall out of reach: check before moving.
        shift_pointers(buf, end, after, end, add, false)?;
    }
    buf.resize(old_len + add, 0);
    buf.copy_within(end..old_len, end + add);
    let optlen = (2 + text.len()) as u16;
    buf[end..end + 2].copy_from_slice(&super::EDE_OPTION.to_be_bytes());
    buf[end + 2..end + 4].copy_from_slice(&optlen.to_be_bytes());
    buf[end + 4..end + 6].copy_from_slice(&code.to_be_bytes());
    buf[end + 6..end + add].copy_from_slice(text);
    buf[at + 9..at + 11].copy_from_slice(&rdlen.to_be_bytes());
    if after > 0 {
        shift_pointers(buf, end + add, after, end, add, true)?;
    }
    Ok(())
}

/// The pointer ending the stored part of the name at `pos`, if any:
/// `(offset of the pointer, its target)`.
fn tail_pointer(buf: &[u8], mut pos: usize) -> Result<Option<(usize, usize)>, RewriteError> {
    loop {
        let len = *buf.get(pos).ok_or(ParseError::NameOverrun)?;
        match len {
            0 => return Ok(None),
            1..=63 => pos += usize::from(len) + 1,
            0xc0..=0xff => {
                let lo = *buf.get(pos + 1).ok_or(ParseError::NameOverrun)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                return Ok(Some((pos, target)));
            }
            _ => return Err(ParseError::BadLabel.into()),
        }
    }
}

/// Adds `add` to every pointer at or past `threshold` in the `records`
/// records starting at `from` (after `add` octets were inserted at
/// `threshold`). Only the pointer ending each stored name needs it: the run
/// it leads to moved, or did not, as a whole. With `apply` false, only checks
/// that every re-aimed pointer stays within 14 bits.
fn shift_pointers(
    buf: &mut [u8],
    from: usize,
    records: usize,
    threshold: usize,
    add: usize,
    apply: bool,
) -> Result<(), RewriteError> {
    let mut pos = from;
    for _ in 0..records {
        let rr = RawRr::read_stored(buf, pos).ok_or(ParseError::RecordOverrun)?;
        let layout = name_layout(rr.rtype);
        let mut rdata_name = rr.rdata_start + layout.map_or(0, |l| l.prefix);
        for i in 0..=layout.map_or(0, |l| l.names) {
            let name_at = if i == 0 { rr.owner } else { rdata_name };
            if let Some((ptr_at, target)) = tail_pointer(buf, name_at)? {
                if !apply && target < threshold && check_name(&buf[..threshold], target).is_err() {
                    // The name runs across the insertion point (through the
                    // OPT record itself): inserting would change it.
                    return Err(RewriteError::Unsupported);
                }
                if target >= threshold {
                    let moved = target + add;
                    if moved > MAX_POINTER {
                        return Err(RewriteError::TooLong);
                    }
                    if apply {
                        buf[ptr_at..ptr_at + 2]
                            .copy_from_slice(&(0xc000 | moved as u16).to_be_bytes());
                    }
                }
            }
            if i > 0 {
                rdata_name = skip_stored_name(buf, rdata_name).ok_or(ParseError::NameOverrun)?;
            }
        }
        pos = rr.rdata_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::tests::sample;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    /// One record: owner octets as given (may end in a pointer).
    fn rr(owner: &[u8], t: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut v = owner.to_vec();
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&ttl.to_be_bytes());
        v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        v.extend_from_slice(rdata);
        v
    }

    fn with_counts(mut m: Vec<u8>, an: u16, ns: u16, ar: u16) -> Vec<u8> {
        m[6..8].copy_from_slice(&an.to_be_bytes());
        m[8..10].copy_from_slice(&ns.to_be_bytes());
        m[10..12].copy_from_slice(&ar.to_be_bytes());
        m
    }

    #[test]
    fn strip_removes_a_records_and_keeps_every_other_byte() {
        let input = sample();
        let m = Message::parse(&input).unwrap();
        let mut out = Vec::new();
        assert_eq!(strip_type(&m, rtype::A, &mut out).unwrap(), 2);
        let mut want = with_counts(input[..46].to_vec(), 1, 1, 1);
        want.extend_from_slice(&input[78..]);
        assert_eq!(out, want);
        // Nothing to strip: a plain copy.
        assert_eq!(strip_type(&m, rtype::MX, &mut out).unwrap(), 0);
        assert_eq!(out, input);
    }

    #[test]
    fn strip_expands_names_whose_pointer_target_was_removed_and_reuses_the_copy() {
        // Question example. A; answer www.example. A (owner stored inline);
        // additional: two AAAA owned by pointers to that A owner, one RRSIG
        // covering A.
        let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 3];
        m.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01"); // 12..25
        let a_owner = m.len(); // 25
        m.extend(rr(b"\x03www\xc0\x0c", rtype::A, 60, &[192, 0, 2, 1]));
        let ptr = [0xc0, a_owner as u8];
        m.extend(rr(
            &ptr,
            rtype::AAAA,
            60,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ));
        m.extend(rr(
            &ptr,
            rtype::AAAA,
            60,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ));
        m.extend(rr(&ptr, rtype::RRSIG, 60, &[0, 1, 8, 2, 0, 0, 0, 60]));
        let view = Message::parse(&m).unwrap();
        let mut out = Vec::new();
        assert_eq!(strip_type(&view, rtype::A, &mut out).unwrap(), 2);

        let mut want = vec![0, 7, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 2];
        want.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
        let first = want.len(); // 25: the expanded owner lands where the A's was
        want.extend(rr(
            b"\x03www\xc0\x0c",
            rtype::AAAA,
            60,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ));
        want.extend(rr(
            &[0xc0, first as u8],
            rtype::AAAA,
            60,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        ));
        assert_eq!(out, want);
    }

    #[test]
    fn synthesis_turns_the_a_response_into_the_aaaa_response_in_one_pass() {
        let input = sample();
        let m = Message::parse(&input).unwrap();
        let owner = m.chain_end().unwrap();
        let mut out = Vec::new();
        let made = synthesize_aaaa(
            &m,
            &owner,
            &[p("64:ff9b::/96")],
            |t| t.min(300),
            |_, _| true,
            &mut out,
        )
        .unwrap();
        assert_eq!(made, 2);
        let mut want = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 1];
        want.extend_from_slice(b"\x03WwW\x07example\x00\x00\x1c\x00\x01");
        want.extend_from_slice(&input[29..46]); // the CNAME, byte for byte
        for last in [1u8, 2] {
            want.extend_from_slice(&[0xc0, 41, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
            want.extend_from_slice(&[0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, last]);
        }
        want.extend_from_slice(&input[117..]); // OPT
        assert_eq!(out, want);
    }

    #[test]
    fn synthesis_orders_by_prefix_caps_ttl_filters_and_clears_aa_ad_tc() {
        let mut input = sample();
        input[2] |= 0x04 | 0x02; // AA, TC
        input[3] |= 0x20; // AD
        let m = Message::parse(&input).unwrap();
        let owner = m.chain_end().unwrap();
        let mut out = Vec::new();
        let prefixes = [p("64:ff9b::/96"), p("2001:db8::/32")];
        let made = synthesize_aaaa(
            &m,
            &owner,
            &prefixes,
            |t| t.min(100),
            |v4, _| v4 != Ipv4Addr::new(192, 0, 2, 2),
            &mut out,
        )
        .unwrap();
        assert_eq!(made, 2);
        let s = Message::parse(&out).unwrap();
        let h = s.header();
        assert!(!h.aa() && !h.tc() && !h.ad() && h.rd() && h.ra());
        let got: Vec<_> = s
            .section(Section::Answer)
            .filter_map(|r| r.ipv6().map(|a| (a, r.ttl())))
            .collect();
        assert_eq!(
            got,
            vec![
                ("64:ff9b::c000:201".parse().unwrap(), 100),
                ("2001:db8:c000:201::".parse().unwrap(), 100),
            ]
        );
        // An owner that is not the chain end yields nothing.
        let q = m.question().unwrap().name;
        assert_eq!(
            synthesize_aaaa(&m, &q, &prefixes, |t| t.min(100), |_, _| true, &mut out).unwrap(),
            0
        );
    }

    #[test]
    fn truncation_keeps_whole_answers_moves_opt_up_and_sets_tc() {
        let input = sample();
        for limit in [100, 125] {
            let mut buf = input.clone();
            assert!(truncate_udp(&mut buf, limit).unwrap());
            let mut want = with_counts(input[..78].to_vec(), 3, 0, 1);
            want[2] |= 0x02;
            want.extend_from_slice(&input[117..]);
            assert_eq!(buf, want, "limit {limit}");
        }
        let mut buf = input.clone();
        assert!(truncate_udp(&mut buf, 60).unwrap());
        let mut want = with_counts(input[..29].to_vec(), 0, 0, 1);
        want[2] |= 0x02;
        want.extend_from_slice(&input[117..]);
        assert_eq!(buf, want);
        let mut buf = input.clone();
        assert!(!truncate_udp(&mut buf, input.len()).unwrap());
        assert_eq!(buf, input);
    }

    #[test]
    fn dropping_only_additional_records_does_not_set_tc() {
        // RFC 2181 §9: TC is not for extra information that did not fit.
        let input = sample();
        let mut bigger = with_counts(input.clone(), 3, 1, 2);
        bigger.extend(rr(&[0xc0, 41], rtype::AAAA, 60, &[0; 16]));
        assert!(truncate_udp(&mut bigger, input.len()).unwrap());
        assert_eq!(bigger, input);
    }

    #[test]
    fn set_edns_adjusts_the_opt_and_appends_an_extended_error() {
        let input = sample();
        let mut buf = input.clone();
        set_edns(&mut buf, 512, false, Some((22, "no"))).unwrap();
        let mut want = input.clone();
        want[120..122].copy_from_slice(&[2, 0]); // payload
        want[124] = 0; // DO
        want[126..128].copy_from_slice(&[0, 14]); // RDLENGTH 6 + 8
        want.extend_from_slice(&[0, 15, 0, 4, 0, 22, b'n', b'o']);
        assert_eq!(buf, want);
    }

    #[test]
    fn extended_error_text_is_cut_at_a_character_boundary() {
        // 3 octets per "aé": octet 200 falls inside an "é".
        let long = "aé".repeat(100);
        let input = sample();
        let mut with_opt = input.clone();
        set_edns(&mut with_opt, 1232, false, Some((0, &long))).unwrap();
        let mut without = with_counts(input[..117].to_vec(), 3, 1, 0);
        set_edns(&mut without, 1232, false, Some((0, &long))).unwrap();
        for buf in [&with_opt, &without] {
            let m = Message::parse(buf).unwrap();
            let (code, data) = m.opt().unwrap().options().last().unwrap();
            assert_eq!(code, super::super::EDE_OPTION);
            assert_eq!(data.len(), 2 + 199);
            assert!(std::str::from_utf8(&data[2..]).is_ok());
        }
    }

    #[test]
    fn set_edns_adds_an_opt_when_there_is_none() {
        let input = sample();
        let mut buf = with_counts(input[..117].to_vec(), 3, 1, 0);
        set_edns(&mut buf, 1232, true, None).unwrap();
        let mut want = with_counts(input[..117].to_vec(), 3, 1, 1);
        want.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        assert_eq!(buf, want);
    }

    #[test]
    fn set_edns_reaims_pointers_of_records_after_the_opt() {
        // Additional: OPT, then x.example. A, then an AAAA owned by a pointer
        // to x.example. (after the OPT, so it moves).
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 3];
        m.extend_from_slice(b"\x07example\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]); // 25..36
        let x = m.len(); // 36
        m.extend(rr(b"\x01x\xc0\x0c", rtype::A, 60, &[192, 0, 2, 9]));
        m.extend(rr(&[0xc0, x as u8], rtype::AAAA, 60, &[0; 16]));
        let mut buf = m.clone();
        set_edns(&mut buf, 1232, false, Some((18, ""))).unwrap();
        let mut want = m[..34].to_vec();
        want.extend_from_slice(&[0, 6, 0, 15, 0, 2, 0, 18]);
        want.extend(rr(b"\x01x\xc0\x0c", rtype::A, 60, &[192, 0, 2, 9]));
        want.extend(rr(&[0xc0, (x + 6) as u8], rtype::AAAA, 60, &[0; 16]));
        assert_eq!(buf, want);
        let v = Message::parse(&buf).unwrap();
        let aaaa = v.records().last().unwrap();
        assert_eq!(aaaa.owner().to_string(), "x.example.");
    }

    #[test]
    fn ttls_age_and_cap_but_opt_flags_stay() {
        let input = sample();
        let mut buf = input.clone();
        adjust_ttls(&mut buf, 100, 200).unwrap();
        let mut want = input.clone();
        want[35..39].copy_from_slice(&0u32.to_be_bytes()); // CNAME 60 → 0
        want[52..56].copy_from_slice(&156u32.to_be_bytes()); // A 256 → 156
        want[68..72].copy_from_slice(&156u32.to_be_bytes());
        want[84..88].copy_from_slice(&200u32.to_be_bytes()); // SOA 900 → cap
        assert_eq!(buf, want);
        let mut top = input.clone();
        top[52] = 0x80; // RFC 2181 §8: top bit set counts as zero
        adjust_ttls(&mut top, 0, 1000).unwrap();
        assert_eq!(&top[52..56], &[0, 0, 0, 0]);
    }

    #[test]
    fn question_case_and_id_are_restored_from_the_client() {
        let want = sample();
        let mut reply = want.clone();
        reply[13..16].copy_from_slice(b"www");
        let client_q = &want[12..29];
        restore_question_case(&mut reply, client_q).unwrap();
        assert_eq!(reply, want);
        let mut other = want.clone();
        assert_eq!(
            restore_question_case(&mut other, b"\x03wwx\x07example\x00\x00\x01\x00\x01"),
            Err(RewriteError::QuestionMismatch)
        );
        assert_eq!(
            restore_question_case(&mut other, b"\x03www\x07example\x00\x00\x1c\x00\x01"),
            Err(RewriteError::QuestionMismatch)
        );
        // The client's query: ID 0x1234, RD=0, CD=1, same question.
        let mut q = vec![0x12, 0x34, 0x00, 0x10, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(client_q);
        let query = Query::parse(&q).unwrap();
        let mut reply = want.clone();
        reply[13..16].copy_from_slice(b"WWW");
        echo_client(&mut reply, &query).unwrap();
        let mut expected = want.clone();
        expected[..4].copy_from_slice(&[0x12, 0x34, 0x80, 0x90]);
        assert_eq!(reply, expected);
        set_message_id(&mut reply, 7).unwrap();
        assert_eq!(&reply[..2], &[0, 7]);
        assert!(set_message_id(&mut [0u8; 1], 7).is_err());
    }

    #[test]
    fn embedding_matches_prefix_embed_for_every_rfc6052_length() {
        let v4 = Ipv4Addr::new(192, 0, 2, 33);
        for s in [
            "2001:db8::/32",
            "2001:db8:100::/40",
            "2001:db8:122::/48",
            "2001:db8:122:300::/56",
            "2001:db8:122:344::/64",
            "2001:db8:122:344::/96",
            "64:ff9b::/96",
        ] {
            let prefix = p(s);
            let (mut octets, at) = embedding(&prefix);
            for (i, o) in at.into_iter().zip(v4.octets()) {
                octets[i] = o;
            }
            assert_eq!(std::net::Ipv6Addr::from(octets), prefix.embed(v4), "{s}");
        }
    }

    /// Fuzz finding 1: a pointer to a name whose labels ran past the pointer
    /// itself (into the records after it), so cutting those records renamed
    /// the owner. Such pointers are now rejected.
    #[test]
    fn regression_name_reading_past_its_own_pointer_is_rejected() {
        let mut m = sample();
        // First answer: type 251, RDATA "\x21v4" + pointer: a 33-octet label
        // at 41 that swallows the records after it.
        m[31..33].copy_from_slice(&[0, 251]);
        m[41] = 0x21;
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::BadPointer);
    }

    /// Fuzz finding 2: a name read through a pointer into octets that are
    /// a TTL field; ageing TTLs renamed it. In-place rewrites now refuse
    /// such messages; copying rewrites still handle them.
    #[test]
    fn regression_pointer_into_a_ttl_field_is_exotic_and_refused_in_place() {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        m.extend_from_slice(b"\x01a\x00\x00\x10\x00\x01"); // 12..19, TXT
        // TXT owned by a., TTL octets 0,0,1,0x61 ("\x00" = root... no: the
        // name at ttl_at+2 reads "\x01" "a" then the RDLENGTH high octet 0).
        m.extend(rr(&[0xc0, 12], 16, 0x0000_0161, &[0]));
        let ttl_name = 19 + 2 + 4 + 2; // TTL octets 2..4 of the first record
        m.extend(rr(&[0xc0, ttl_name as u8], 16, 60, &[0]));
        let v = Message::parse(&m).unwrap();
        assert_eq!(v.records().nth(1).unwrap().owner().to_string(), "a.");
        assert!(v.has_exotic_pointers());
        let mut buf = m.clone();
        assert_eq!(adjust_ttls(&mut buf, 1, 60), Err(RewriteError::Unsupported));
        assert_eq!(truncate_udp(&mut buf, 20), Err(RewriteError::Unsupported));
        assert_eq!(
            set_edns(&mut buf, 512, false, None),
            Err(RewriteError::Unsupported)
        );
        assert_eq!(buf, m);
        // The copying rewrite expands the name instead of pointing at a TTL.
        let mut out = Vec::new();
        retain_into(&v, &mut out, |_| true).unwrap();
        let c = Message::parse(&out).unwrap();
        assert!(!c.has_exotic_pointers());
        assert_eq!(c.records().nth(1).unwrap().owner().to_string(), "a.");
        assert!(!Message::parse(&sample()).unwrap().has_exotic_pointers());
    }
}
