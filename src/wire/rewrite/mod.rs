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

use super::message::{
    MAX_HOPS, MAX_MESSAGE_LEN, Message, ParseError, Rr, name_layout, skip_stored_name,
};
use super::{HEADER_LEN, MAX_NAME_LEN, rtype};

mod in_place;
mod rotate;
mod synthesis;
#[cfg(test)]
mod tests;

pub use in_place::*;
pub use rotate::{RotationRun, rotate_run, rotation_runs};
#[cfg(test)]
use synthesis::embedding;
pub use synthesis::synthesize_aaaa;

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
