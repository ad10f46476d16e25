//! Reply: the last step before the socket. Echoes what the client must see
//! echoed (ID, RD, CD, the question byte for byte — RFC 1035 §4.1.1, and
//! 0x20 case randomisation relies on it), answers EDNS with EDNS (RFC 6891
//! §6.1.1), and fits the answer into the client's UDP limit (RFC 2181 §9).
//!
//! Data path position: `dns64 | filter → reply → listen`.

use hickory_proto::op::{Edns, Message, MessageType};
use hickory_proto::rr::rdata::opt::EdnsOption;

use crate::wire::{self, ErrorReply, HEADER_LEN, Query, rcode};

/// The client-side facts a reply needs, taken from its query.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The validated query.
    pub query: &'a Query<'a>,
    /// Largest reply this transport may carry: `Some` for UDP, `None` for TCP.
    pub limit: Option<usize>,
    /// `server.udp_payload`, advertised in our OPT.
    pub our_payload: u16,
}

impl Client<'_> {
    /// A reply dns64d makes itself (REFUSED, SERVFAIL...), with the question
    /// echoed and an extended error when the client speaks EDNS.
    pub fn error(&self, rcode: u16, ede: Option<(u16, &str)>) -> Vec<u8> {
        let edns = self.query.edns.map(|e| (self.our_payload, e.dnssec_ok));
        wire::error_reply(
            self.query.bytes(),
            Some(self.query.question()),
            edns,
            ErrorReply { rcode, ede },
        )
    }

    /// Encodes `msg` for this client (see the module docs). A message that
    /// cannot be encoded becomes SERVFAIL rather than a panic.
    pub fn encode(&self, mut msg: Message, ede: Option<(u16, &str)>) -> Vec<u8> {
        let h = self.query.header();
        msg.metadata.id = h.id();
        msg.metadata.message_type = MessageType::Response;
        msg.metadata.recursion_desired = h.rd();
        msg.metadata.checking_disabled = h.cd();
        msg.metadata.recursion_available = true;
        msg.metadata.truncation = false;
        msg.signature = None;
        msg.edns = self.query.edns.map(|e| {
            let mut out = Edns::new();
            out.set_max_payload(self.our_payload);
            out.set_dnssec_ok(e.dnssec_ok);
            if let Some((code, text)) = ede {
                let mut data = code.to_be_bytes().to_vec();
                data.extend_from_slice(text.as_bytes());
                out.options_mut()
                    .insert(EdnsOption::Unknown(wire::EDE_OPTION, data));
            }
            out
        });
        let Ok(mut bytes) = msg.to_vec() else {
            return self.error(
                rcode::SERVFAIL,
                Some((wire::ede::OTHER, "answer could not be encoded")),
            );
        };
        if let Some(limit) = self.limit
            && bytes.len() > limit
        {
            bytes = self.truncate(msg, limit);
        }
        self.restore_question(&mut bytes);
        bytes
    }

    /// Drops additional, then authority, then trailing answer records until
    /// the message fits; sets TC (RFC 2181 §9: whole records only). A musl
    /// client that cannot retry over TCP still gets usable addresses.
    fn truncate(&self, mut msg: Message, limit: usize) -> Vec<u8> {
        msg.metadata.truncation = true;
        msg.additionals.clear();
        msg.authorities.clear();
        loop {
            match msg.to_vec() {
                Ok(b) if b.len() <= limit || msg.answers.is_empty() => return b,
                // Rare path (large answers to clients without EDNS): one
                // record at a time keeps the most records that fit.
                Ok(_) => {
                    msg.answers.pop();
                }
                Err(_) => return self.error(rcode::SERVFAIL, None),
            }
        }
    }

    /// Puts the client's question bytes back (hickory-proto may normalise
    /// case); same length by construction, so compression pointers stay valid.
    fn restore_question(&self, bytes: &mut [u8]) {
        let q = self.query.question();
        if let Ok(end) = wire::question_end(bytes)
            && end - HEADER_LEN == q.len()
        {
            bytes[HEADER_LEN..end].copy_from_slice(q);
        }
    }

    /// Adapts a raw upstream reply for plain forwarding: client's ID and
    /// question case, and truncation when it does not fit.
    pub fn forward(&self, reply: Vec<u8>) -> Vec<u8> {
        let opt_class_at = wire::opt_class_offset(&reply);
        self.forward_known(reply, opt_class_at)
    }

    /// [`Client::forward`] for a reply whose OPT CLASS offset is known (a
    /// cache entry keeps it), saving a walk over its records.
    pub fn forward_known(&self, mut reply: Vec<u8>, opt_class_at: Option<usize>) -> Vec<u8> {
        self.forward_in_place(&mut reply, opt_class_at);
        reply
    }

    /// [`Client::forward_known`] on a buffer the caller keeps (the receive
    /// loop's send buffers), so the common case allocates nothing.
    pub fn forward_in_place(&self, reply: &mut Vec<u8>, opt_class_at: Option<usize>) {
        if let Some(limit) = self.limit
            && reply.len() > limit
        {
            *reply = match Message::from_vec(reply) {
                Ok(msg) => self.encode(msg, None),
                Err(_) => self.error(
                    rcode::SERVFAIL,
                    Some((wire::ede::OTHER, "upstream reply unparseable")),
                ),
            };
            return;
        }
        wire::set_id(reply, self.query.header().id());
        // RD is the client's to echo (RFC 1035 §4.1.1); cached answers came from another client.
        if reply.len() > 2 {
            reply[2] = (reply[2] & !0x01) | u8::from(self.query.header().rd());
        }
        self.restore_question(reply);
        // RFC 6891 §6.2.3: the payload in our OPT is ours, not the upstream's.
        if let Some(at) = opt_class_at.filter(|&at| at + 2 <= reply.len()) {
            reply[at..at + 2].copy_from_slice(&self.our_payload.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query as HQuery};
    use hickory_proto::rr::rdata::AAAA;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn query_bytes(edns: bool) -> Vec<u8> {
        let mut q = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        q.extend_from_slice(b"\x04MaNy\x07example\x00\x00\x1c\x00\x01");
        if edns {
            wire::push_opt(&mut q, 4096, false, 0, None);
        }
        q
    }

    fn big_answer(n: usize) -> Message {
        let name = Name::from_ascii("many.example.").unwrap();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(HQuery::query(name.clone(), RecordType::AAAA));
        for i in 0..n {
            let ip = format!("64:ff9b::c000:2{i:02x}").parse().unwrap();
            m.add_answer(Record::from_rdata(name.clone(), 60, RData::AAAA(AAAA(ip))));
        }
        m
    }

    #[test]
    fn oversized_udp_answer_keeps_whole_records_that_fit_and_sets_tc() {
        let buf = query_bytes(false);
        let q = Query::parse(&buf).unwrap();
        let c = Client {
            query: &q,
            limit: Some(512),
            our_payload: 1232,
        };
        let out = c.encode(big_answer(40), None);
        assert!(out.len() <= 512);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.len() >= 10, "kept {}", m.answers.len());
        assert!(
            big_answer(m.answers.len() + 1).to_vec().unwrap().len() > 512,
            "not the most that fit"
        );
    }

    #[test]
    fn tcp_answer_is_never_truncated() {
        let buf = query_bytes(false);
        let q = Query::parse(&buf).unwrap();
        let c = Client {
            query: &q,
            limit: None,
            our_payload: 1232,
        };
        let m = Message::from_vec(&c.encode(big_answer(40), None)).unwrap();
        assert_eq!(m.answers.len(), 40);
        assert!(!m.metadata.truncation);
    }

    #[test]
    fn reply_echoes_id_rd_question_case_and_answers_edns_with_our_payload() {
        let buf = query_bytes(true);
        let q = Query::parse(&buf).unwrap();
        let c = Client {
            query: &q,
            limit: Some(1232),
            our_payload: 1232,
        };
        let out = c.encode(big_answer(1), None);
        assert_eq!(&out[..2], &[0xbe, 0xef]);
        assert_eq!(&out[12..12 + q.question().len()], q.question());
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert_eq!(m.edns.unwrap().max_payload(), 1232);
        let no_edns = query_bytes(false);
        let q2 = Query::parse(&no_edns).unwrap();
        let c2 = Client {
            query: &q2,
            limit: Some(512),
            our_payload: 1232,
        };
        assert!(
            Message::from_vec(&c2.encode(big_answer(1), None))
                .unwrap()
                .edns
                .is_none()
        );
    }
}
