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

use std::net::Ipv6Addr;

use crate::types::{FilterA, Prefix, WELL_KNOWN, ZonePolicy};
use crate::wire::{ede, rcode, rtype};

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

/// The facts of an upstream AAAA response [`after_aaaa`] decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AaaaFacts {
    /// Full RCODE.
    pub rcode: u16,
    /// AAAA answers that are native: outside `dns64.exclude` (§5.1.4) and
    /// not [`is_upstream_synthesized`].
    pub native_aaaa: usize,
    /// SERVFAIL because the upstream's DNSSEC validation failed
    /// ([`validation_failed`]).
    pub validation_failed: bool,
}

/// RFC 6147 §5.1.1–§5.1.5 with the zone policy (SPEC §3.9): `aaaa` is the
/// AAAA response (`None`: no usable response, which §5.1.3 treats like an
/// empty answer).
///
/// - §5.1.2: NXDOMAIN is final.
/// - §5.5: a SERVFAIL from a validating upstream that found the answer
///   bogus is final too: synthesizing from the A records would hand the
///   client addresses for a name whose data failed validation, which §5.5
///   means to prevent (the upstream is the validator for a client that did
///   not set CD). The SERVFAIL and its extended error pass through.
/// - §5.1.1/§5.1.4: under `native`, a native AAAA is returned as is.
///   AAAA synthesized upstream are not native: an answer of only those is
///   synthesized for, as NODATA is (no double synthesis, our prefixes).
/// - §5.1.5/§5.1.6: NOERROR without one (NODATA, or only excluded AAAA),
///   and every NOERROR under `synthesize` and `both`, is synthesized for.
/// - §5.1.2: any other RCODE is treated like an empty answer, unless the
///   operator asks for synthesis on NODATA only (`synthesize_on_error`).
pub fn after_aaaa(
    aaaa: Option<AaaaFacts>,
    policy: ZonePolicy,
    synthesize_on_error: bool,
) -> AfterAaaa {
    let Some(f) = aaaa else {
        return AfterAaaa::Synthesize;
    };
    match f.rcode {
        rcode::NXDOMAIN => AfterAaaa::Return,
        rcode::SERVFAIL if f.validation_failed => AfterAaaa::Return,
        rcode::NOERROR if policy == ZonePolicy::Native && f.native_aaaa > 0 => AfterAaaa::Return,
        rcode::NOERROR => AfterAaaa::Synthesize,
        _ if synthesize_on_error => AfterAaaa::Synthesize,
        _ => AfterAaaa::Return,
    }
}

/// RFC 8914 §4.7–§4.11, §4.13: the extended errors that say DNSSEC
/// validation failed (6 DNSSEC Bogus, 7 Signature Expired, 8 Signature Not
/// Yet Valid, 9 DNSKEY Missing, 10 RRSIGs Missing, 12 NSEC Missing).
pub fn ede_means_validation_failed(info_code: u16) -> bool {
    matches!(
        info_code,
        ede::DNSSEC_BOGUS
            | ede::SIGNATURE_EXPIRED
            | ede::SIGNATURE_NOT_YET_VALID
            | ede::DNSKEY_MISSING
            | ede::RRSIGS_MISSING
            | ede::NSEC_MISSING
    )
}

/// True for a SERVFAIL (`rcode`) that carries one of the extended errors of
/// [`ede_means_validation_failed`] (`info_codes`: every EDE of the reply).
/// An upstream only sends EDE to a query with EDNS, so a client without
/// EDNS cannot be told apart from a plain SERVFAIL; then the A query
/// decides (a bogus zone fails its A lookup too, §5.1.6 item 5).
pub fn validation_failed(rcode: u16, info_codes: impl IntoIterator<Item = u16>) -> bool {
    rcode == rcode::SERVFAIL && info_codes.into_iter().any(ede_means_validation_failed)
}

/// True for an AAAA address some DNS64 already synthesized: inside one of
/// our `prefixes` or the well-known prefix 64:ff9b::/96 (RFC 6052 §2.1,
/// reserved for IPv4-embedded addresses). An upstream resolver that does
/// DNS64 itself (AWS Route 53 Resolver on a subnet with DNS64 on) returns
/// them for IPv4-only names; they are not native (§5.1.1) and are treated
/// like `dns64.exclude` (§5.1.4): removed, and synthesized for afresh from
/// the A records. Why not keep those inside our own prefix: our `mapped`,
/// `never_map` and `strict_rfc6052` rules and the §5.1.7 TTL apply only to
/// what we make, the upstream's prefix may be one our NAT64 does not route,
/// and a name answers the same with and without DNS64 upstream.
pub fn is_upstream_synthesized(v6: Ipv6Addr, prefixes: &[Prefix]) -> bool {
    (u128::from(v6) >> 32) == (u128::from(WELL_KNOWN) >> 32)
        || prefixes.iter().any(|p| p.net().contains(&v6))
}

/// RFC 8914 §4.18 (17 Filtered): an A answer the A filter emptied (SPEC
/// §4, `removed` A records, none of the asked type left) says why, so
/// `dig` shows it is policy and not the name. Only there: an answer that
/// keeps data (ANY, glue removed) is not a refusal.
pub fn filtered_ede(qtype: u16, rcode: u16, removed: usize, answers_of_qtype: usize) -> bool {
    qtype == rtype::A && rcode == rcode::NOERROR && removed > 0 && answers_of_qtype == 0
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

    fn facts(rcode: u16, native_aaaa: usize) -> Option<AaaaFacts> {
        Some(AaaaFacts {
            rcode,
            native_aaaa,
            validation_failed: false,
        })
    }

    #[test]
    fn rfc6147_5_1_2_nxdomain_is_returned_under_every_policy() {
        for policy in [ZonePolicy::Native, ZonePolicy::Synthesize, ZonePolicy::Both] {
            for on_error in [false, true] {
                assert_eq!(
                    after_aaaa(facts(rcode::NXDOMAIN, 0), policy, on_error),
                    AfterAaaa::Return
                );
            }
        }
    }

    #[test]
    fn rfc6147_5_1_1_a_native_aaaa_is_returned_under_native() {
        assert_eq!(
            after_aaaa(facts(rcode::NOERROR, 1), ZonePolicy::Native, OFF),
            AfterAaaa::Return
        );
    }

    #[test]
    fn rfc6147_5_1_6_nodata_is_synthesized_for() {
        assert_eq!(
            after_aaaa(facts(rcode::NOERROR, 0), ZonePolicy::Native, OFF),
            AfterAaaa::Synthesize
        );
    }

    #[test]
    fn spec_3_9_synthesize_and_both_synthesize_beside_a_native_aaaa() {
        for policy in [ZonePolicy::Synthesize, ZonePolicy::Both] {
            assert_eq!(
                after_aaaa(facts(rcode::NOERROR, 3), policy, OFF),
                AfterAaaa::Synthesize
            );
        }
    }

    #[test]
    fn rfc6147_5_1_3_no_aaaa_response_is_treated_as_empty() {
        assert_eq!(
            after_aaaa(None, ZonePolicy::Native, OFF),
            AfterAaaa::Synthesize
        );
    }

    #[test]
    fn rfc6147_5_1_2_other_rcodes_synthesize_only_with_synthesize_on_error() {
        for rc in [rcode::SERVFAIL, rcode::REFUSED, rcode::FORMERR] {
            assert_eq!(
                after_aaaa(facts(rc, 0), ZonePolicy::Native, true),
                AfterAaaa::Synthesize
            );
            assert_eq!(
                after_aaaa(facts(rc, 0), ZonePolicy::Native, false),
                AfterAaaa::Return
            );
        }
    }

    #[test]
    fn rfc6147_5_5_a_validation_failure_servfail_is_returned_under_every_policy() {
        let bogus = Some(AaaaFacts {
            rcode: rcode::SERVFAIL,
            native_aaaa: 0,
            validation_failed: true,
        });
        for policy in [ZonePolicy::Native, ZonePolicy::Synthesize, ZonePolicy::Both] {
            assert_eq!(after_aaaa(bogus, policy, true), AfterAaaa::Return);
        }
    }

    #[test]
    fn rfc8914_validation_codes_mean_validation_failed_and_others_do_not() {
        for code in [6, 7, 8, 9, 10, 12] {
            assert!(ede_means_validation_failed(code), "{code}");
            assert!(validation_failed(rcode::SERVFAIL, [22, code]));
        }
        for code in [0, 3, 5, 11, 13, 17, 18, 22] {
            assert!(!ede_means_validation_failed(code), "{code}");
        }
        // Only a SERVFAIL is a validation failure, whatever the option says.
        assert!(!validation_failed(rcode::NOERROR, [6]));
        assert!(!validation_failed(rcode::SERVFAIL, []));
    }

    #[test]
    fn aaaa_inside_our_prefixes_or_the_well_known_prefix_are_synthesized_upstream() {
        let ours = [Prefix::new("2001:db8:64::".parse().unwrap(), 96).unwrap()];
        for v6 in ["64:ff9b::c000:221", "2001:db8:64::c000:221"] {
            assert!(is_upstream_synthesized(v6.parse().unwrap(), &ours), "{v6}");
        }
        // The local-use 64:ff9b:1::/48 (RFC 8215) is not the /96, and a
        // global address is native.
        for v6 in ["64:ff9b:1::c000:221", "2001:db8::1", "::ffff:192.0.2.1"] {
            assert!(!is_upstream_synthesized(v6.parse().unwrap(), &ours), "{v6}");
        }
        assert!(is_upstream_synthesized("64:ff9b::1".parse().unwrap(), &[]));
    }

    #[test]
    fn rfc8914_17_marks_only_an_a_answer_the_filter_emptied() {
        assert!(filtered_ede(rtype::A, rcode::NOERROR, 2, 0));
        // Nothing removed, data left, another type, NXDOMAIN: no mark.
        assert!(!filtered_ede(rtype::A, rcode::NOERROR, 0, 0));
        assert!(!filtered_ede(rtype::A, rcode::NOERROR, 1, 1));
        assert!(!filtered_ede(rtype::AAAA, rcode::NOERROR, 1, 0));
        assert!(!filtered_ede(rtype::A, rcode::NXDOMAIN, 1, 0));
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
