//! Where a query goes once it is known to need upstream (RFC 6147 §5,
//! SPEC §3–§6), decided once for the relay and the general path.

use crate::dns64::{self, rules};
use crate::policy::Rules;
use crate::types::PtrMode;
use crate::wire::{Query, rtype};

use super::*;

/// Where a query goes once it is known to need upstream (RFC 6147 §5,
/// SPEC §3–§6); decided in one place for the relay and the general path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// The upstream's reply, patched for the client.
    Forward,
    /// `ipv4only.arpa.` A or AAAA, answered locally.
    Ipv4only,
    /// PTR (possibly inside a prefix).
    Ptr,
    /// AAAA from a DNS64 client: synthesis.
    Aaaa,
    /// A from a DNS64 client under strip/rewrite.
    FilteredA,
    /// Any other type from a DNS64 client under strip/rewrite.
    Filtered,
}

impl Pipeline {
    /// Where `query` goes, for a client of this DNS64 treatment.
    pub(super) fn route(&self, dns64: bool, q: &Query<'_>, rules: &Rules<'_>) -> Route {
        let mode = rules.filter_a;
        if !dns64 {
            Route::Forward
        } else if dns64::is_ipv4only(q.qname()) && matches!(q.qtype, rtype::A | rtype::AAAA) {
            Route::Ipv4only
        } else if q.qtype == rtype::PTR && self.policy.ptr() != PtrMode::Off {
            Route::Ptr
        } else {
            match q.qtype {
                rtype::AAAA => Route::Aaaa,
                rtype::A if rules::strips_a(mode) => Route::FilteredA,
                _ if !rules::strips_a(mode) => Route::Forward,
                _ => Route::Filtered,
            }
        }
    }

    /// True when the relay can run `f`: its first upstream question is the
    /// client's own bytes (no ECS option to take off, RFC 7871 §7.1.2), its
    /// route finishes on the wire in the common shapes, and its name goes
    /// to the default upstream group (the relay's; a `[[upstream.zone]]`
    /// name is asked by a task, from its zone's group).
    pub(super) fn relayable(&self, f: &Front<'_>) -> bool {
        let q = &f.query;
        let route = match self.route(f.dns64, q, &f.rules) {
            Route::Forward | Route::Filtered | Route::FilteredA => true,
            // §5.1.8 parallel A, and §5.5 DO+CD, stay on the general path.
            Route::Aaaa => {
                !self.parallel_a && rules::may_synthesize(q.dnssec_ok(), q.header().cd())
            }
            Route::Ipv4only | Route::Ptr => false,
        };
        let no_ecs = q.edns.is_none_or(|e| e.ecs.is_none());
        self.relay_sockets > 0
            && f.transport == Transport::Udp
            && route
            && no_ecs
            && !self.upstream.in_zone(q.qname())
    }
}
