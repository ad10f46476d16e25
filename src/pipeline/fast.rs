//! The fast finish: relayed replies finished on the wire view, without a
//! task or an allocation, for the shapes most answers have. Each DNS64
//! decision comes from `dns64::rules`, the same functions the slow finish
//! calls; a shape the wire view does not cover goes to the slow finish.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::dns64::rules;
use crate::filter::{self};
use crate::reply::Client;
use crate::types::{FilterA, Prefix};
use crate::wire::{self, rcode, rtype};

use super::*;

/// Which exchange of a relayed query a reply answers.
#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// The client's own question.
    First,
    /// The A query synthesis needs (RFC 6147 §5.1.6), after this AAAA reply
    /// (NODATA) whose SOA caps the synthesized TTLs at `ttl_cap` (§5.1.7).
    A { aaaa: &'a [u8], ttl_cap: u32 },
}

/// One reply the relay got: `reply`, from `server`, answers `stage` of
/// `query` (the client's bytes, as received).
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub query: &'a [u8],
    pub stage: Stage<'a>,
    pub reply: &'a [u8],
    pub server: SocketAddr,
}

/// What a relayed reply led to ([`Pipeline::relayed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The client's answer is written.
    Answered,
    /// Synthesis needs the A records: relay the client's query with QTYPE
    /// A ([`wire::set_qtype`]), as [`Stage::A`].
    AskA { ttl_cap: u32 },
    /// Another shape: the general path ([`Pipeline::resolve_query_with`])
    /// finishes it from the replies so far.
    Slow,
}

/// What the sync part of the AAAA path found in the AAAA reply.
pub(super) enum AaaaWire {
    /// The answer is written (native AAAA, NXDOMAIN).
    Done,
    /// NODATA: synthesis from the A records, TTLs capped at `ttl_cap`.
    NeedA { ttl_cap: u32 },
    /// A shape the wire path leaves to the decode → encode path.
    Other,
}

impl Pipeline {
    /// Finishes what a relayed exchange (after [`Early::Relay`]) brought,
    /// taken at `now`. The shapes most answers have are answered
    /// into `out` (and cached) without an allocation; anything else is
    /// [`Step::Slow`].
    pub fn relayed(
        &self,
        x: Exchange<'_>,
        src: IpAddr,
        (started, now): (Instant, Instant),
        out: &mut Vec<u8>,
    ) -> Step {
        let Exchange {
            query,
            stage,
            reply,
            server,
        } = x;
        // The same packet the first stage accepted: the same verdict.
        let Ok(f) = self.front(query, src, Transport::Udp) else {
            return Step::Slow;
        };
        let client = f.client(self.udp_payload);
        let ask = Ask {
            client: Client {
                limit: None,
                ..client
            },
            bytes: query,
            rules: f.rules,
            trace: Trace::default(),
            prefetch: Mutex::default(),
        };
        let settled = match (stage, self.route(f.dns64, &f.query, &f.rules)) {
            (Stage::First, Route::Forward) => {
                out.clear();
                out.extend_from_slice(reply);
                true
            }
            (Stage::First, Route::Filtered) => filtered_on_the_wire(reply, out),
            (Stage::First, Route::FilteredA) => self.a_on_the_wire(&ask, reply, out),
            (Stage::First, Route::Aaaa) => match self.aaaa_wire(&ask, reply, out) {
                AaaaWire::Done => true,
                AaaaWire::NeedA { ttl_cap } => return Step::AskA { ttl_cap },
                AaaaWire::Other => false,
            },
            (Stage::A { aaaa, ttl_cap }, Route::Aaaa) => {
                self.synthesize_wire(&ask, aaaa, Some(reply), ttl_cap, out)
            }
            _ => false,
        };
        if !settled {
            return Step::Slow;
        }
        // As `resolve_query` ends: the full answer (client's ID and question
        // case, our payload) is what the cache keeps; the UDP limit after.
        let opt_class_at = wire::opt_class_offset(out);
        ask.client.forward_in_place(out, opt_class_at);
        if let (Some(cache), Some(key)) = (&self.cache, f.key.clone()) {
            cache.insert(key, out, now, ask.trace.tally());
        }
        client.forward_in_place(out, opt_class_at);
        if self.query_log.every != 0 {
            *ask.trace.upstream.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
        }
        self.done(&f, out, now.saturating_duration_since(started), &ask.trace);
        Step::Answered
    }

    /// The part of [`Pipeline::aaaa_on_the_wire`] before the A query:
    /// native AAAA and NXDOMAIN are written into `out`.
    pub(super) fn aaaa_wire(&self, ask: &Ask<'_>, aaaa: &[u8], out: &mut Vec<u8>) -> AaaaWire {
        // A pointer into the header would be renamed by the RA and ID
        // patches: such a reply is re-encoded on the general path.
        let Some(view) = wire::Message::parse(aaaa)
            .ok()
            .filter(|v| !v.has_exotic_pointers())
        else {
            return AaaaWire::Other;
        };
        let s = view.classify();
        let plain = s.rcode == rcode::NOERROR && s.cname == 0;
        // §5.1.2 / SPEC §3.4: NXDOMAIN is returned as is, chain included.
        let nxdomain = s.rcode == rcode::NXDOMAIN && s.aaaa == 0;
        // §5.5: a validator's SERVFAIL passes as it is, extended error kept.
        let bogus = rules::validation_failed(s.rcode, view.extended_errors().map(|(c, _)| c));
        if !(plain || nxdomain || bogus)
            || s.a > 0
            || s.a_rrsig > 0
            || view
                .records()
                .any(|r| matches!(r.rtype, DNAME | SVCB | HTTPS))
        {
            return AaaaWire::Other;
        }
        let (mut excluded, mut upstream) = (0, 0);
        if s.aaaa > 0 {
            for v6 in view.section(wire::Section::Answer).filter_map(|r| r.ipv6()) {
                if self.dns64.is_excluded(v6) {
                    excluded += 1;
                } else if self.dns64.is_upstream_synthesized(v6) {
                    upstream += 1;
                }
            }
        }
        // §5.1.4: removing excluded AAAA is the general path's.
        if excluded > 0 {
            return AaaaWire::Other;
        }
        if upstream > 0 {
            ask.trace
                .upstream_synthesized
                .store(true, Ordering::Relaxed);
        }
        let facts = rules::AaaaFacts {
            rcode: s.rcode,
            native_aaaa: usize::from(s.aaaa) - upstream,
            validation_failed: bogus,
        };
        match self.dns64.decide_after_aaaa(Some(facts), ask.rules.policy) {
            rules::AfterAaaa::Return if upstream == 0 => {
                copy_with_ra(aaaa, out);
                AaaaWire::Done
            }
            // Native AAAA beside ones synthesized upstream: removing those
            // is the general path's.
            rules::AfterAaaa::Return => AaaaWire::Other,
            // `both` merges the native AAAA in, `synthesize` drops them:
            // the general path builds those answers.
            rules::AfterAaaa::Synthesize if facts.native_aaaa > 0 => AaaaWire::Other,
            // Only AAAA synthesized upstream (a DNS64 resolver in front): as
            // NODATA, synthesis from the A records with our prefixes; the
            // SOA-less cap of §5.1.7 as the general path takes it. Should
            // nothing be synthesized, the NODATA without those records is
            // the general path's to build ([`Pipeline::synthesize_wire`]).
            rules::AfterAaaa::Synthesize if upstream > 0 => AaaaWire::NeedA {
                ttl_cap: rules::ttl_cap(s.negative_ttl),
            },
            // NODATA: §5.1.6 synthesis from the A records, §5.1.7 TTL. With
            // nothing to synthesize this NODATA is the answer, sent as it is
            // only when the NODATA SOA rule keeps it as it is.
            rules::AfterAaaa::Synthesize => {
                let soa_only = view
                    .section(wire::Section::Authority)
                    .all(|r| matches!(r.rtype, rtype::SOA | rtype::RRSIG));
                match rules::nodata_soa(s.rcode, 0, 0, true, s.negative_ttl.is_some()) {
                    rules::NodataSoa::KeepUpstream if soa_only => AaaaWire::NeedA {
                        ttl_cap: rules::ttl_cap(s.negative_ttl),
                    },
                    _ => AaaaWire::Other,
                }
            }
        }
    }

    /// The part of [`Pipeline::aaaa_on_the_wire`] after the A query (`a`:
    /// its reply; `None`: it failed): the synthesized answer, or the NODATA
    /// when there is nothing to synthesize (§5.1.6 item 5), into `out`.
    /// False: a shape left to the decode → encode path.
    pub(super) fn synthesize_wire(
        &self,
        ask: &Ask<'_>,
        aaaa: &[u8],
        a: Option<&[u8]>,
        ttl_cap: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        // After [`AaaaWire::NeedA`] any AAAA in the answer was synthesized
        // upstream: noted again here because the relay finishes this stage
        // with a trace of its own. A NODATA (no answer records) costs no parse.
        if wire::Header::new(aaaa).is_some_and(|h| h.ancount() > 0)
            && wire::Message::parse(aaaa).is_ok_and(|v| v.classify().aaaa > 0)
        {
            ask.trace
                .upstream_synthesized
                .store(true, Ordering::Relaxed);
        }
        let a_view = a.and_then(|a| wire::Message::parse(a).ok());
        let Some(a_view) = a_view.filter(|v| rules::a_response_is_usable(Some(v.rcode()))) else {
            return nothing_synthesized(aaaa, out);
        };
        let Some(owner) = a_view.chain_end() else {
            return false;
        };
        let allow = |v4, p: &Prefix| self.dns64.may_map(v4, p);
        match wire::rewrite::synthesize_aaaa(
            &a_view,
            &owner,
            ask.rules.prefixes,
            |ttl| rules::synthesized_ttl(ttl, ttl_cap),
            allow,
            out,
        ) {
            Ok(0) => nothing_synthesized(aaaa, out),
            Ok(_) => {
                ask.trace.synthesized.store(true, Ordering::Relaxed);
                set_ra(out);
                true
            }
            Err(_) => false,
        }
    }

    /// The zero-copy form of `strip` for an A answer (SPEC §4): nothing to
    /// strip → the upstream's bytes; A records → NODATA with our SOA in one
    /// pass. `None`: another shape (an SOA beside A records, HTTPS/SVCB,
    /// `rewrite`, an error RCODE); the general path answers it.
    pub(super) fn a_on_the_wire(&self, ask: &Ask<'_>, a: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(view) = wire::Message::parse(a)
            .ok()
            .filter(|v| !v.has_exotic_pointers())
        else {
            return false;
        };
        let s = view.classify();
        if !matches!(s.rcode, rcode::NOERROR | rcode::NXDOMAIN)
            || view.records().any(|r| matches!(r.rtype, SVCB | HTTPS))
        {
            return false;
        }
        let removed = usize::from(s.a) + usize::from(s.a_rrsig);
        if removed == 0 {
            copy_with_ra(a, out);
            return true;
        }
        // Every A record goes (SPEC §4): none of the asked type is left.
        // The wire view builds only the NODATA with an SOA of our own, and
        // not `rewrite`'s glue.
        let soa = rules::nodata_soa(s.rcode, 0, removed, false, s.negative_ttl.is_some());
        let mark = rules::filtered_ede(rtype::A, s.rcode, removed, 0);
        if soa != rules::NodataSoa::Make
            || ask.rules.filter_a != FilterA::Strip
            || filter::nodata_from_a_answer(&view, self.negative_ttl, mark, out).is_err()
        {
            return false;
        }
        ask.trace.stripped(usize::from(s.a));
        set_ra(out);
        true
    }
}

/// Sets RA: every answer on the DNS64 path is ours to vouch for recursion
/// (SPEC §7), as the decode → encode path does.
pub(super) fn set_ra(reply: &mut [u8]) {
    if let Some(b) = reply.get_mut(3) {
        *b |= 0x80;
    }
}

/// §5.1.6 item 5: nothing to synthesize, so the AAAA response stands:
/// its bytes when it is a NODATA; false when it held AAAA synthesized
/// upstream, which must go (the general path builds that NODATA).
fn nothing_synthesized(aaaa: &[u8], out: &mut Vec<u8>) -> bool {
    if !wire::Message::parse(aaaa).is_ok_and(|v| v.classify().aaaa == 0) {
        return false;
    }
    copy_with_ra(aaaa, out);
    true
}

/// `reply` into `out`, with RA set.
pub(super) fn copy_with_ra(reply: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(reply);
    set_ra(out);
}

/// True when a reply for a DNS64 client under strip/rewrite holds nothing
/// the A filter changes (proved on the wire view, without a decode), and
/// no compression pointer into octets the reply patches (header) could
/// rename a record.
pub(super) fn nothing_to_filter(reply: &[u8]) -> bool {
    wire::Message::parse(reply).is_ok_and(|view| {
        !view.has_exotic_pointers()
            && !view
                .records()
                .any(|r| matches!(r.rtype, rtype::A | rtype::RRSIG | HTTPS | SVCB))
    })
}

/// [`Pipeline::filtered`]'s wire path: the reply as it is, into `out`.
pub(super) fn filtered_on_the_wire(reply: &[u8], out: &mut Vec<u8>) -> bool {
    if !nothing_to_filter(reply) {
        return false;
    }
    out.clear();
    out.extend_from_slice(reply);
    true
}

/// DNAME (RFC 6672), SVCB and HTTPS (RFC 9460) type codes.
pub(super) const DNAME: u16 = 39;
pub(super) const SVCB: u16 = 64;
pub(super) const HTTPS: u16 = 65;
