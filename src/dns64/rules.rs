//! The DNS64 decisions, one small pure function per rule, over the few facts
//! both finishing paths can read: the relay's finish reads them from the
//! wire view (`pipeline::fast`), the general path from hickory-proto
//! messages (`Dns64`, `filter`, `pipeline::slow`). Because both call these
//! functions, the two paths cannot decide differently; where the wire view
//! cannot *build* what a decision asks for, it hands the query to the
//! general path instead of deciding otherwise.
//!
//! Each function is named after what it decides and its tests after the
//! rule (`rfc6147_5_1_7_…`).

use crate::types::{FilterA, ZonePolicy};
use crate::wire::rcode;

use super::NO_SOA_TTL_CAP;

/// What to do with the upstream's AAAA response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAaaa {
    /// Give the client this response (minus excluded AAAA, §5.1.4).
    Return,
    /// Ask for the A records (of the end of any CNAME chain, §5.1.5) and
    /// synthesize from them.
    Synthesize,
}

/// RFC 6147 §5.1.1–§5.1.5 with the zone policy (SPEC §3.9): `rcode` of the
/// AAAA response (`None`: no usable response, which §5.1.3 treats like an
/// empty answer), `native_aaaa`: its AAAA answers outside `dns64.exclude`.
///
/// - §5.1.2: NXDOMAIN is final.
/// - §5.1.1/§5.1.4: under `native`, a native AAAA is returned as is.
/// - §5.1.5/§5.1.6: NOERROR without one (NODATA, or only excluded AAAA),
///   and every NOERROR under `synthesize` and `both`, is synthesized for.
/// - §5.1.2: any other RCODE is treated like an empty answer, unless the
///   operator asks for synthesis on NODATA only (`synthesize_on_error`).
pub fn after_aaaa(
    rcode: Option<u16>,
    native_aaaa: usize,
    policy: ZonePolicy,
    synthesize_on_error: bool,
) -> AfterAaaa {
    match rcode {
        None => AfterAaaa::Synthesize,
        Some(rcode::NXDOMAIN) => AfterAaaa::Return,
        Some(rcode::NOERROR) if policy == ZonePolicy::Native && native_aaaa > 0 => {
            AfterAaaa::Return
        }
        Some(rcode::NOERROR) => AfterAaaa::Synthesize,
        Some(_) if synthesize_on_error => AfterAaaa::Synthesize,
        Some(_) => AfterAaaa::Return,
    }
}

/// RFC 6147 §5.1.6: only a NOERROR A response is synthesized from (`None`:
/// the A query failed); otherwise, as when it holds nothing usable, the
/// original AAAA response stands.
pub fn a_response_is_usable(rcode: Option<u16>) -> bool {
    rcode == Some(rcode::NOERROR)
}

/// RFC 6147 §5.1.7: the cap on synthesized TTLs is the negative-caching TTL
/// of the AAAA response's SOA (RFC 2308 §5: min(SOA TTL, MINIMUM)); without
/// an SOA, [`NO_SOA_TTL_CAP`] (SPEC §3.6).
pub fn ttl_cap(aaaa_soa_negative_ttl: Option<u32>) -> u32 {
    aaaa_soa_negative_ttl.unwrap_or(NO_SOA_TTL_CAP)
}

/// RFC 6147 §5.1.7: a synthesized AAAA's TTL is the A record's TTL, capped
/// at [`ttl_cap`]. An A TTL with the top bit set counts as zero (RFC 2181 §8).
#[inline]
pub fn synthesized_ttl(a_ttl: u32, cap: u32) -> u32 {
    let a_ttl = if a_ttl > i32::MAX as u32 { 0 } else { a_ttl };
    a_ttl.min(cap)
}

/// RFC 6147 §5.5: a client that sets DO and CD validates for itself, and a
/// synthesized AAAA would fail its validation: no synthesis, the upstream's
/// answer (A-filtered) is returned.
pub fn may_synthesize(dnssec_ok: bool, checking_disabled: bool) -> bool {
    !(dnssec_ok && checking_disabled)
}

/// What an answer to a DNS64 client needs in its authority section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodataSoa {
    /// Not a NODATA we changed or synthesized for: leave it.
    Untouched,
    /// NODATA with the upstream's SOA: keep the SOA (and its RRSIGs) only.
    KeepUpstream,
    /// NODATA without an SOA: make one with `filter.negative_ttl`.
    Make,
}

/// RFC 2308 §2.2 and SPEC §4: a NOERROR answer with no record of the asked
/// type is NODATA and carries an SOA so caches in front of us can cache it,
/// when dns64d changed the answer (`removed` A records) or the question is
/// AAAA (which DNS64 answers, RFC 6147 §5.1.6: the original NODATA stands
/// when nothing is synthesized).
pub fn nodata_soa(
    rcode: u16,
    answers_of_qtype: usize,
    removed: usize,
    qtype_is_aaaa: bool,
    has_soa: bool,
) -> NodataSoa {
    if !(removed > 0 || qtype_is_aaaa) || rcode != rcode::NOERROR || answers_of_qtype > 0 {
        NodataSoa::Untouched
    } else if has_soa {
        NodataSoa::KeepUpstream
    } else {
        NodataSoa::Make
    }
}

/// SPEC §4 (`filter.a`): under `strip` and `rewrite` no A record (nor an
/// RRSIG over one, nor an `ipv4hint`) reaches a DNS64 client in any section;
/// `pass` is classic DNS64.
pub fn strips_a(mode: FilterA) -> bool {
    mode != FilterA::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: bool = false;

    #[test]
    fn rfc6147_5_1_2_nxdomain_is_returned_under_every_policy() {
        for policy in [ZonePolicy::Native, ZonePolicy::Synthesize, ZonePolicy::Both] {
            for on_error in [false, true] {
                assert_eq!(
                    after_aaaa(Some(rcode::NXDOMAIN), 0, policy, on_error),
                    AfterAaaa::Return
                );
            }
        }
    }

    #[test]
    fn rfc6147_5_1_1_a_native_aaaa_is_returned_under_native() {
        assert_eq!(
            after_aaaa(Some(rcode::NOERROR), 1, ZonePolicy::Native, OFF),
            AfterAaaa::Return
        );
    }

    #[test]
    fn rfc6147_5_1_6_nodata_is_synthesized_for() {
        assert_eq!(
            after_aaaa(Some(rcode::NOERROR), 0, ZonePolicy::Native, OFF),
            AfterAaaa::Synthesize
        );
    }

    #[test]
    fn spec_3_9_synthesize_and_both_synthesize_beside_a_native_aaaa() {
        for policy in [ZonePolicy::Synthesize, ZonePolicy::Both] {
            assert_eq!(
                after_aaaa(Some(rcode::NOERROR), 3, policy, OFF),
                AfterAaaa::Synthesize
            );
        }
    }

    #[test]
    fn rfc6147_5_1_3_no_aaaa_response_is_treated_as_empty() {
        assert_eq!(
            after_aaaa(None, 0, ZonePolicy::Native, OFF),
            AfterAaaa::Synthesize
        );
    }

    #[test]
    fn rfc6147_5_1_2_other_rcodes_synthesize_only_with_synthesize_on_error() {
        for rc in [rcode::SERVFAIL, rcode::REFUSED, rcode::FORMERR] {
            assert_eq!(
                after_aaaa(Some(rc), 0, ZonePolicy::Native, true),
                AfterAaaa::Synthesize
            );
            assert_eq!(
                after_aaaa(Some(rc), 0, ZonePolicy::Native, false),
                AfterAaaa::Return
            );
        }
    }

    #[test]
    fn rfc6147_5_1_6_only_a_noerror_a_response_is_synthesized_from() {
        assert!(a_response_is_usable(Some(rcode::NOERROR)));
        assert!(!a_response_is_usable(Some(rcode::NXDOMAIN)));
        assert!(!a_response_is_usable(Some(rcode::SERVFAIL)));
        assert!(!a_response_is_usable(None));
    }

    #[test]
    fn rfc6147_5_1_7_the_cap_is_the_soa_negative_ttl_else_600() {
        assert_eq!(ttl_cap(Some(30)), 30);
        assert_eq!(ttl_cap(Some(86_400)), 86_400);
        assert_eq!(ttl_cap(None), 600);
    }

    #[test]
    fn rfc6147_5_1_7_synthesized_ttl_is_the_a_ttl_capped() {
        assert_eq!(synthesized_ttl(300, 30), 30);
        assert_eq!(synthesized_ttl(20, 30), 20);
        assert_eq!(synthesized_ttl(0, 30), 0);
    }

    #[test]
    fn rfc2181_8_an_a_ttl_with_the_top_bit_set_counts_as_zero() {
        assert_eq!(synthesized_ttl(0x8000_0000, 600), 0);
        assert_eq!(synthesized_ttl(u32::MAX, 600), 0);
        assert_eq!(synthesized_ttl(i32::MAX as u32, 600), 600);
    }

    #[test]
    fn rfc6147_5_5_do_and_cd_together_turn_synthesis_off() {
        assert!(!may_synthesize(true, true));
        assert!(may_synthesize(true, false));
        assert!(may_synthesize(false, true));
        assert!(may_synthesize(false, false));
    }

    #[test]
    fn rfc2308_2_2_a_nodata_we_changed_keeps_the_upstream_soa_or_gets_one() {
        let noerror = rcode::NOERROR;
        // A query, A records stripped.
        assert_eq!(
            nodata_soa(noerror, 0, 2, false, true),
            NodataSoa::KeepUpstream
        );
        assert_eq!(nodata_soa(noerror, 0, 2, false, false), NodataSoa::Make);
        // AAAA NODATA, nothing synthesized.
        assert_eq!(nodata_soa(noerror, 0, 0, true, false), NodataSoa::Make);
    }

    #[test]
    fn rfc2308_2_2_answers_we_did_not_change_and_non_nodata_are_untouched() {
        // Nothing removed from an A answer: as upstream sent it.
        assert_eq!(
            nodata_soa(rcode::NOERROR, 0, 0, false, false),
            NodataSoa::Untouched
        );
        // Records of the asked type remain: not NODATA.
        assert_eq!(
            nodata_soa(rcode::NOERROR, 1, 1, false, false),
            NodataSoa::Untouched
        );
        assert_eq!(
            nodata_soa(rcode::NOERROR, 2, 0, true, false),
            NodataSoa::Untouched
        );
        // NXDOMAIN keeps its own authority section.
        assert_eq!(
            nodata_soa(rcode::NXDOMAIN, 0, 1, true, false),
            NodataSoa::Untouched
        );
    }

    #[test]
    fn spec_4_strip_and_rewrite_remove_a_records_and_pass_does_not() {
        assert!(strips_a(FilterA::Strip));
        assert!(strips_a(FilterA::Rewrite));
        assert!(!strips_a(FilterA::Pass));
    }
}
