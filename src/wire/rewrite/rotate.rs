//! Round-robin rotation of address RRsets in a stored answer (as CoreDNS
//! `loadbalance` and Unbound `rrset-roundrobin` do): a cache would otherwise
//! hand every client the same first address for a whole TTL, and glibc and
//! musl keep DNS order between addresses RFC 6724 ranks alike (all the
//! synthesized AAAA of one prefix, all the A of one name).
//!
//! Found once when the answer is stored ([`rotation_runs`]), applied per
//! render by a slice rotation ([`rotate_run`]): no parsing and no allocation
//! on the cache-hit path.
//!
//! RFC 2181 §5 makes an RRset unordered, so any order is a valid answer;
//! the order *between* groups (`dns64.order`: synthesized or native first,
//! prefixes in configured order) is policy and is kept by rotating each
//! group on its own.

use super::super::message::{Message, Section};

/// Consecutive answer records that may trade places: the same owner octets,
/// type, class, RDATA length and group, so that rotating them moves only
/// TTL and RDATA octets and every name in the message keeps its bytes at
/// its offset (a compression pointer into any of these owners stays valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationRun {
    /// Offset of the first record's owner name.
    pub start: u16,
    /// Length of each record.
    pub record_len: u16,
    /// Records in the run (at least 2).
    pub count: u16,
}

/// Calls `each` with every run of two or more answer records that the
/// caller's `group` puts in one group (`None`: a record never rotated, which
/// also ends a run). Nothing for a message whose names read octets that a
/// rotation moves ([`Message::has_exotic_pointers`]: only crafted messages).
pub fn rotation_runs(
    msg: &[u8],
    group: impl Fn(u16, &[u8]) -> Option<u16>,
    mut each: impl FnMut(RotationRun),
) {
    let Ok(m) = Message::parse(msg) else {
        return;
    };
    if m.has_exotic_pointers() {
        return;
    }
    // The run being built: the run so far, its owner octets, and its
    // (type, class, group).
    type Building<'m> = Option<(RotationRun, &'m [u8], (u16, u16, u16))>;
    let mut run: Building<'_> = None;
    let mut flush = |run: &mut Building<'_>| {
        if let Some((r, _, _)) = run.take()
            && r.count >= 2
        {
            each(r);
        }
    };
    for rr in m.section(Section::Answer) {
        // TYPE and CLASS (4 octets) sit between the owner and the TTL.
        let owner = &msg[rr.owner_at..rr.ttl_at - 4];
        let len = rr.rdata_end - rr.owner_at;
        let key = group(rr.rtype, rr.rdata()).map(|g| (rr.rtype, rr.class, g));
        let (Some(key), Ok(start), Ok(record_len)) =
            (key, u16::try_from(rr.owner_at), u16::try_from(len))
        else {
            flush(&mut run);
            continue;
        };
        match &mut run {
            Some((r, o, k)) if *k == key && *o == owner && r.record_len == record_len => {
                r.count += 1;
            }
            _ => {
                flush(&mut run);
                let first = RotationRun {
                    start,
                    record_len,
                    count: 1,
                };
                run = Some((first, owner, key));
            }
        }
    }
    flush(&mut run);
}

/// Rotates `run` in `buf` left by `turn` records (modulo its length): the
/// record `turn % count` comes first. A run that does not fit `buf` is left
/// alone.
#[inline]
pub fn rotate_run(buf: &mut [u8], run: RotationRun, turn: u32) {
    let (start, len, count) = (
        usize::from(run.start),
        usize::from(run.record_len),
        usize::from(run.count),
    );
    if count < 2 {
        return;
    }
    if let Some(bytes) = buf.get_mut(start..start + len * count) {
        bytes.rotate_left((turn as usize % count) * len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message as HMessage, MessageType, OpCode, Query as HQuery};
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn runs(msg: &[u8]) -> Vec<RotationRun> {
        let mut out = Vec::new();
        rotation_runs(msg, |t, _| (t == 1).then_some(0), |r| out.push(r));
        out
    }

    fn a(name: &str, last: u8) -> Record {
        let n = Name::from_ascii(name).unwrap();
        Record::from_rdata(n, 60, RData::A(A::new(192, 0, 2, last)))
    }

    #[test]
    fn runs_never_join_records_of_other_owners_or_across_other_types() {
        let mut m = HMessage::new(1, MessageType::Response, OpCode::Query);
        m.add_query(HQuery::query(
            Name::from_ascii("x.example.").unwrap(),
            RecordType::A,
        ));
        m.add_answer(a("x.example.", 1));
        m.add_answer(a("x.example.", 2));
        m.add_answer(Record::from_rdata(
            Name::from_ascii("x.example.").unwrap(),
            60,
            RData::CNAME(CNAME(Name::from_ascii("y.example.").unwrap())),
        ));
        m.add_answer(a("x.example.", 3));
        m.add_answer(a("y.example.", 4));
        m.add_answer(a("y.example.", 5));
        m.add_answer(a("y.example.", 6));
        let msg = m.to_vec().unwrap();
        let found = runs(&msg);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].count, found[1].count), (2, 3));
        let mut turned = msg.clone();
        rotate_run(&mut turned, found[1], 1);
        let back = HMessage::from_vec(&turned).unwrap();
        let order: Vec<String> = back.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(
            order,
            [
                "192.0.2.1",
                "192.0.2.2",
                "y.example.",
                "192.0.2.3",
                "192.0.2.5",
                "192.0.2.6",
                "192.0.2.4"
            ]
        );
        assert!(
            back.answers[4..]
                .iter()
                .all(|r| r.name.to_ascii() == "y.example.")
        );
    }
}
