//! Answers dns64d makes itself: `ipv4only.arpa.` (RFC 8880 §7.1) and PTR
//! inside a NAT64 prefix (RFC 6147 §5.3.1).

use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns64;
use crate::types::PtrMode;
use crate::wire::{ede, rcode};

use super::*;

impl Pipeline {
    /// `ipv4only.arpa.` answered locally (RFC 8880 §7.1): A, or AAAA under
    /// every prefix; A records still pass the A filter.
    pub(super) fn ipv4only(&self, ask: &Ask<'_>) -> Vec<u8> {
        let Some(qname) = qname(ask.query()) else {
            return ask.client.error(rcode::FORMERR, None);
        };
        let qtype = RecordType::from(ask.query().qtype);
        let mut msg = local_response(&qname, qtype);
        msg.answers = dns64::ipv4only_records(&qname, qtype, &self.all_prefixes);
        self.finish(ask, msg)
    }

    /// PTR for an ip6.arpa name inside a prefix (RFC 6147 §5.3.1): a CNAME
    /// to the in-addr.arpa name of the embedded IPv4 address, followed
    /// upstream under `follow`. `None`: not ours, forward as usual.
    pub(super) async fn ptr(&self, ask: &Ask<'_>) -> Option<Vec<u8>> {
        let qname = qname(ask.query())?;
        let target = dns64::ptr_target(&qname, &self.all_prefixes)?;
        let mut msg = local_response(&qname, RecordType::PTR);
        msg.answers.push(Record::from_rdata(
            qname.clone(),
            PTR_CNAME_TTL,
            RData::CNAME(CNAME(target.clone())),
        ));
        if self.policy.ptr() == PtrMode::Follow {
            let followed = match build_query(ask.query(), &target, RecordType::PTR) {
                Some(bytes) => self.ask_upstream(ask, &bytes).await,
                None => return Some(ask.client.error(rcode::SERVFAIL, None)),
            };
            let reply = match followed {
                Ok(r) => Message::from_vec(&r.bytes).ok(),
                Err(e) => return Some(self.unreachable(ask, &e)),
            };
            let Some(reply) = reply else {
                return Some(ask.client.error(
                    rcode::SERVFAIL,
                    Some((ede::OTHER, "upstream reply unparseable")),
                ));
            };
            msg.metadata.response_code = reply.metadata.response_code;
            msg.answers.extend(reply.answers);
            msg.authorities = reply.authorities;
        }
        Some(self.finish(ask, msg))
    }
}

/// An empty NOERROR response to `qname`/`qtype`, for answers dns64d makes.
pub(super) fn local_response(qname: &Name, qtype: RecordType) -> Message {
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.add_query(HQuery::query(qname.clone(), qtype));
    msg
}
