//! The one mapping from a rejected packet to what the client sees
//! (SPEC §8). Every [`WireError`] has exactly one [`Rejection`].

use crate::wire::{self, ErrorReply, WireError, rcode};

/// What to do with a packet that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Say nothing: too short to answer, or a response (answering responses
    /// invites loops between servers).
    Drop,
    /// Answer with this RCODE and no question (header-only reply).
    Reply(u16),
    /// RFC 6891 §6.1.3: BADVERS needs an OPT in the reply to carry its high bits.
    BadVersion,
}

impl From<WireError> for Rejection {
    fn from(e: WireError) -> Rejection {
        match e {
            WireError::TooShort | WireError::IsResponse => Rejection::Drop,
            WireError::NotQuery(_) => Rejection::Reply(rcode::NOTIMP),
            WireError::QuestionCount(_) | WireError::Malformed(_) => {
                Rejection::Reply(rcode::FORMERR)
            }
            WireError::BadVersion(_) => Rejection::BadVersion,
        }
    }
}

/// Builds the reply for a rejected packet, or `None` to drop it.
pub fn reject(packet: &[u8], err: WireError, our_payload: u16) -> Option<Vec<u8>> {
    match Rejection::from(err) {
        Rejection::Drop => None,
        Rejection::Reply(rc) => Some(wire::error_reply(
            packet,
            None,
            None,
            ErrorReply {
                rcode: rc,
                ede: None,
            },
        )),
        Rejection::BadVersion => {
            let question = wire::question_end(packet)
                .ok()
                .map(|end| &packet[wire::HEADER_LEN..end]);
            Some(wire::error_reply(
                packet,
                question,
                Some((our_payload, false)),
                ErrorReply {
                    rcode: rcode::BADVERS,
                    ede: None,
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_packets_and_responses_are_dropped() {
        assert_eq!(reject(&[0; 5], WireError::TooShort, 1232), None);
        assert_eq!(reject(&[0; 12], WireError::IsResponse, 1232), None);
    }

    #[test]
    fn malformed_queries_get_formerr_with_their_id() {
        let r = reject(
            &[0xab, 0xcd, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0],
            WireError::QuestionCount(2),
            1232,
        )
        .unwrap();
        let h = wire::Header::new(&r).unwrap();
        assert_eq!(
            (h.id(), h.qr(), h.rcode(), h.qdcount()),
            (0xabcd, true, rcode::FORMERR, 0)
        );
    }

    #[test]
    fn non_query_opcodes_get_notimp() {
        let r = reject(
            &[0, 1, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            WireError::NotQuery(5),
            1232,
        )
        .unwrap();
        assert_eq!(wire::Header::new(&r).unwrap().rcode(), rcode::NOTIMP);
        assert_eq!(r[2] >> 3 & 0x0f, 5, "opcode echoed");
    }
}
