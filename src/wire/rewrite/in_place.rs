//! Rewrites in place, where the layout cannot move: ID, question case,
//! TTLs, truncation (RFC 2181 §9), the OPT record and extended errors.

use super::super::message::{
    MAX_MESSAGE_LEN, Message, ParseError, RawRr, Section, check_name, name_layout,
    skip_stored_name, u16_at,
};
use super::super::{HEADER_LEN, Header, Query, push_opt, rtype};

use super::*;

/// RFC 2181 §8: a TTL with the top bit set is treated as zero.
#[inline]
pub(super) fn sane_ttl(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 { 0 } else { ttl }
}

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
pub(super) const MAX_EDE_TEXT: usize = 200;

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
    buf[end..end + 2].copy_from_slice(&super::super::EDE_OPTION.to_be_bytes());
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
pub(super) fn tail_pointer(
    buf: &[u8],
    mut pos: usize,
) -> Result<Option<(usize, usize)>, RewriteError> {
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
pub(super) fn shift_pointers(
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
