//! AAAA synthesis from an A response in one pass (RFC 6147 §5.1.6): the
//! wire form the relay uses; the decisions (which TTL, which addresses)
//! are the caller's, from `dns64::rules`, so this stays a byte operation.

use std::net::Ipv4Addr;

use super::super::message::{Message, Name, Section};
use super::super::rtype;
use crate::types::Prefix;

use super::*;

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
pub(super) fn embedding(prefix: &Prefix) -> ([u8; 16], [usize; 4]) {
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
pub(super) const DNAME: u16 = 39;
