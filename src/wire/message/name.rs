//! Names inside a message (RFC 1035 §3.1, §4.1.4): the bounded label walk
//! that follows compression pointers, the checks [`Message::parse`] runs
//! on every name, the `Name` view, and the stored-name runs parsing uses
//! to resolve pointers without walking them.

use std::fmt;

use super::super::MAX_NAME_LEN;
use super::*;

/// Walks the labels of a (possibly compressed) name, enforcing every rule:
/// bounds, label types, backward-only pointers, hop and length limits.
/// Yields each label's octets (without the length octet); ends after the
/// root label. After exhaustion, `end` is the offset just past the name as
/// stored at its start (past the first pointer when compressed).
#[derive(Debug, Clone)]
pub(super) struct LabelWalk<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
    pub(super) run_start: usize,
    /// Octets from here on may not be read: the position of the last
    /// pointer followed.
    pub(super) limit: usize,
    pub(super) total: usize,
    pub(super) hops: usize,
    pub(super) end: Option<usize>,
    pub(super) done: bool,
}

impl<'a> LabelWalk<'a> {
    pub(super) fn new(buf: &'a [u8], pos: usize) -> LabelWalk<'a> {
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
    pub(super) fn step(&mut self) -> Result<Option<&'a [u8]>, ParseError> {
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
    pub(super) buf: &'a [u8],
    pub(super) at: usize,
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
    pub(super) fn resolved(&self) -> usize {
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

/// How many stored names [`Message::parse`] remembers to resolve pointers
/// without walking them. A few hundred octets on the stack; past it,
/// pointers to later names are walked in full and count as exotic.
pub(super) const MAX_RUNS: usize = 64;

/// The stored part of a name seen earlier: `start..end` holds its labels
/// (and its root octet when not compressed); `len` is the length of the
/// whole name from `start`, expanded.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Run {
    pub(super) start: u16,
    /// Stored octets (at most 255).
    pub(super) stored: u8,
    /// Expanded length (at most 255).
    pub(super) len: u8,
}

/// The names seen so far, in message order, so that a pointer to one of
/// them is resolved by a binary search instead of a walk: each name is then
/// read once, which is what makes [`Message::parse`] fast.
pub(super) struct NameRuns {
    pub(super) n: usize,
    pub(super) runs: [Run; MAX_RUNS],
    pub(super) exotic: bool,
    /// Index of the run the last pointer led to.
    pub(super) hint: usize,
}

impl NameRuns {
    pub(super) fn new() -> NameRuns {
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
    pub(super) fn scan(
        &mut self,
        buf: &[u8],
        pos: usize,
        limit: usize,
    ) -> Result<usize, ParseError> {
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

    pub(super) fn push(&mut self, start: usize, end: usize, len: usize) {
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
    pub(super) fn suffix_len(&mut self, buf: &[u8], t: usize) -> Option<usize> {
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
    pub(super) fn find(&mut self, t: usize) -> Option<Run> {
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
