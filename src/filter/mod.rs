//! A-record filtering for DNS64 clients (SPEC §4, `filter.a`). Synchronous.
//!
//! The product's central promise lives here: while `filter.a` is `strip` or
//! `rewrite`, no DNS64 client receives an A record in any section. Every
//! answer to a DNS64 client passes through [`enforce`] last.
//!
//! Data path position: `upstream → dns64 → filter → reply`.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::svcb::{Mandatory, SVCB, SvcParamKey, SvcParamValue};
use hickory_proto::rr::rdata::{HTTPS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::dns64::{Dns64, chain_end, rules};
use crate::types::{FilterA, Prefix};
use crate::wire;

/// Removes A records and the RRSIGs that cover them from every section, and
/// `ipv4hint` from HTTPS/SVCB records (RFC 9460 §7.3 forbids synthesizing
/// from it, and browsers would connect over IPv4); under `rewrite`, A glue in
/// the additional section becomes synthesized AAAA. Returns how many A
/// records were removed.
pub fn enforce(msg: &mut Message, mode: FilterA, prefixes: &[Prefix], dns64: &Dns64) -> usize {
    if !rules::strips_a(mode) {
        return 0;
    }
    let mut removed = strip(&mut msg.answers) + strip(&mut msg.authorities);
    if mode == FilterA::Rewrite {
        let glue: Vec<Record> = msg
            .additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .cloned()
            .collect();
        let synthesized: Vec<Record> = dns64
            .synthesize_records(prefixes, &glue, u32::MAX)
            .collect();
        removed += strip(&mut msg.additionals);
        msg.additionals.extend(synthesized);
    } else {
        removed += strip(&mut msg.additionals);
    }
    for r in msg
        .answers
        .iter_mut()
        .chain(msg.authorities.iter_mut())
        .chain(msg.additionals.iter_mut())
    {
        match &mut r.data {
            RData::SVCB(svcb) | RData::HTTPS(HTTPS(svcb)) => drop_ipv4hint(svcb),
            _ => {}
        }
    }
    removed
}

/// Removes `ipv4hint` (and its mention in `mandatory`, which would otherwise
/// make the record invalid, RFC 9460 §8). Keys stay in ascending order
/// because only removals happen.
fn drop_ipv4hint(svcb: &mut SVCB) {
    svcb.svc_params.retain(|(k, _)| *k != SvcParamKey::Ipv4Hint);
    for (_, v) in svcb.svc_params.iter_mut() {
        if let SvcParamValue::Mandatory(Mandatory(keys)) = v {
            keys.retain(|k| *k != SvcParamKey::Ipv4Hint);
        }
    }
    svcb.svc_params.retain(
        |(_, v)| !matches!(v, SvcParamValue::Mandatory(Mandatory(keys)) if keys.is_empty()),
    );
}

fn strip(section: &mut Vec<Record>) -> usize {
    let before = section.len();
    section.retain(|r| r.record_type() != RecordType::A && !rrsig_covers_a(r));
    before - section.len()
}

/// An RRSIG whose "type covered" (RFC 4034 §3.1.1, the first two RDATA
/// octets) is A. hickory-proto keeps RRSIG opaque without its DNSSEC feature.
fn rrsig_covers_a(r: &Record) -> bool {
    if r.record_type() != RecordType::RRSIG {
        return false;
    }
    match &r.data {
        RData::Unknown { rdata, .. } => rdata.anything.get(..2) == Some(&[0, 1][..]),
        // Unparsed or unexpected representation: drop it rather than risk an
        // orphaned signature over A data the client will never see.
        _ => true,
    }
}

/// A NOERROR answer without records of the asked type (after stripping A,
/// or dropping AAAA under `synthesize`) is NODATA (RFC 2308 §2.2) and needs an
/// SOA so caches in front of us can cache it; keep the upstream's or make one
/// with `filter.negative_ttl`.
///
/// `removed`: A records [`enforce`] took out; the rule is
/// [`rules::nodata_soa`], which the relay's wire finish follows too.
pub fn ensure_nodata_soa(
    msg: &mut Message,
    qname: &Name,
    qtype: RecordType,
    removed: usize,
    negative_ttl: u32,
) {
    let decision = rules::nodata_soa(
        u16::from(msg.metadata.response_code),
        msg.answers
            .iter()
            .filter(|r| r.record_type() == qtype)
            .count(),
        removed,
        qtype == RecordType::AAAA,
        msg.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
    );
    match decision {
        rules::NodataSoa::Untouched => {}
        rules::NodataSoa::KeepUpstream => msg
            .authorities
            .retain(|r| matches!(r.record_type(), RecordType::SOA | RecordType::RRSIG)),
        rules::NodataSoa::Make => {
            msg.authorities.clear();
            msg.authorities.push(synthesized_soa(
                chain_end(qname, &msg.answers),
                negative_ttl,
            ));
        }
    }
}

/// The SOA dns64d puts in a NODATA it made: TTL and MINIMUM are
/// `filter.negative_ttl` (RFC 2308 §5 takes the smaller of the two).
pub fn synthesized_soa(owner: Name, negative_ttl: u32) -> Record {
    let mname = Name::from_ascii("dns64d.invalid.").unwrap_or_else(|_| Name::root());
    let rname = Name::from_ascii("hostmaster.dns64d.invalid.").unwrap_or_else(|_| Name::root());
    let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, negative_ttl);
    Record::from_rdata(owner, negative_ttl, RData::SOA(soa))
}

/// Zero-copy form of the common `strip` case (SPEC §4): an A answer becomes
/// NODATA in one pass — its CNAME/DNAME chain kept, every other record
/// dropped, an SOA made with `negative_ttl` owned by the chain's end, AD
/// cleared (records were removed), the OPT record kept last; with
/// `filtered`, that OPT gains RFC 8914 code 17 (Filtered, no text): six
/// octets appended to the copy, no second pass.
pub fn nodata_from_a_answer(
    msg: &wire::Message<'_>,
    negative_ttl: u32,
    filtered: bool,
    out: &mut Vec<u8>,
) -> Result<(), wire::RewriteError> {
    wire::rewrite::retain_into(msg, out, |rr| {
        rr.section == wire::Section::Answer && matches!(rr.rtype, wire::rtype::CNAME | DNAME)
    })?;
    out[3] &= !0x20;
    // Owner: the question name (a pointer to it) or the end of the chain.
    match msg.chain_end() {
        Some(end) if msg.classify().cname > 0 => end.write_uncompressed(out),
        _ => out.extend_from_slice(&[0xc0, wire::HEADER_LEN as u8]),
    }
    let rdata: &[u8] = b"\x06dns64d\x07invalid\x00\x0ahostmaster\x06dns64d\x07invalid\x00";
    out.extend_from_slice(&wire::rtype::SOA.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&negative_ttl.to_be_bytes());
    out.extend_from_slice(&((rdata.len() + 20) as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    for v in [1u32, 3600, 600, 86400, negative_ttl] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out[8..10].copy_from_slice(&1u16.to_be_bytes());
    if let Some(opt) = msg.opt() {
        let at = out.len();
        out.extend_from_slice(&msg.bytes()[opt.at..opt.end]);
        out[10..12].copy_from_slice(&1u16.to_be_bytes());
        // OPT RDLENGTH sits 9 octets into the record (root owner, TYPE,
        // CLASS, TTL); the upstream's options stay in front of ours.
        let rdlen = opt.rdata().len() + 6;
        if filtered && let Ok(rdlen) = u16::try_from(rdlen) {
            out[at + 9..at + 11].copy_from_slice(&rdlen.to_be_bytes());
            out.extend_from_slice(&wire::EDE_OPTION.to_be_bytes());
            out.extend_from_slice(&2u16.to_be_bytes());
            out.extend_from_slice(&wire::ede::FILTERED.to_be_bytes());
        }
    }
    Ok(())
}

/// DNAME (RFC 6672): part of a chain, like CNAME.
const DNAME: u16 = 39;

/// What a filtered A query answers when its own upstream lookup failed
/// (SPEC §4): musl fails the whole `getaddrinfo` on one SERVFAIL, so the
/// AAAA lookup of the same name decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AFailure {
    /// The name exists (AAAA data or NODATA): answer NODATA.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// Both lookups failed.
    ServFail,
}

/// Decides [`AFailure`] from the AAAA response (`None`: it failed too).
pub fn after_a_failure(aaaa: Option<&Message>) -> AFailure {
    match aaaa.map(|m| m.metadata.response_code) {
        Some(ResponseCode::NoError) => AFailure::NoData,
        Some(ResponseCode::NXDomain) => AFailure::NxDomain,
        _ => AFailure::ServFail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NULL};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn dns64() -> Dns64 {
        Dns64::new(
            &Config::from_toml("[upstream]\nservers=[\"127.0.0.1\"]\n")
                .unwrap()
                .dns64,
        )
    }

    fn wkp() -> Vec<Prefix> {
        vec!["64:ff9b::/96".parse().unwrap()]
    }

    fn a(owner: &str, ip: &str) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A(ip.parse().unwrap())))
    }

    fn rrsig(covered: u16) -> Record {
        let mut data = covered.to_be_bytes().to_vec();
        data.extend_from_slice(&[8, 2, 0, 0, 0, 60]);
        Record::from_rdata(
            name("x.example."),
            60,
            RData::Unknown {
                code: RecordType::RRSIG,
                rdata: NULL::with(data),
            },
        )
    }

    fn msg() -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.answers = vec![
            Record::from_rdata(
                name("mx.example."),
                60,
                RData::MX(MX::new(10, name("mail.example."))),
            ),
            rrsig(15),
        ];
        m.additionals = vec![a("mail.example.", "192.0.2.25"), rrsig(1)];
        m
    }

    #[test]
    fn strip_removes_a_and_its_rrsig_from_every_section_and_keeps_the_rest() {
        let mut m = msg();
        m.answers.push(a("x.example.", "192.0.2.1"));
        m.authorities.push(a("ns.example.", "192.0.2.53"));
        let removed = enforce(&mut m, FilterA::Strip, &wkp(), &dns64());
        assert_eq!(removed, 4);
        assert!(m.all_sections().all(|r| r.record_type() != RecordType::A));
        assert_eq!(m.answers.len(), 2, "MX and its RRSIG stay");
        assert!(m.additionals.is_empty());
    }

    #[test]
    fn rewrite_turns_a_glue_into_synthesized_aaaa() {
        let mut m = msg();
        enforce(&mut m, FilterA::Rewrite, &wkp(), &dns64());
        let glue: Vec<_> = m
            .additionals
            .iter()
            .map(|r| (r.name.to_string(), r.data.clone()))
            .collect();
        assert_eq!(
            glue,
            vec![(
                "mail.example.".to_string(),
                RData::AAAA(AAAA("64:ff9b::c000:219".parse().unwrap()))
            )]
        );
    }

    #[test]
    fn ipv4hint_is_removed_from_https_records_and_from_mandatory() {
        use hickory_proto::rr::rdata::svcb::{Alpn, IpHint};
        let svcb = SVCB::new(
            1,
            Name::root(),
            vec![
                (
                    SvcParamKey::Mandatory,
                    SvcParamValue::Mandatory(Mandatory(vec![
                        SvcParamKey::Alpn,
                        SvcParamKey::Ipv4Hint,
                    ])),
                ),
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
                ),
                (
                    SvcParamKey::Ipv4Hint,
                    SvcParamValue::Ipv4Hint(IpHint(vec![A([192, 0, 2, 1].into())])),
                ),
                (
                    SvcParamKey::Ipv6Hint,
                    SvcParamValue::Ipv6Hint(IpHint(vec![AAAA("2001:db8::1".parse().unwrap())])),
                ),
            ],
        );
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.answers = vec![Record::from_rdata(
            name("svc.example."),
            60,
            RData::HTTPS(HTTPS(svcb)),
        )];
        enforce(&mut m, FilterA::Strip, &wkp(), &dns64());
        let RData::HTTPS(HTTPS(out)) = &m.answers[0].data else {
            panic!()
        };
        let keys: Vec<SvcParamKey> = out.svc_params.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            vec![
                SvcParamKey::Mandatory,
                SvcParamKey::Alpn,
                SvcParamKey::Ipv6Hint
            ]
        );
        assert_eq!(
            out.svc_params[0].1,
            SvcParamValue::Mandatory(Mandatory(vec![SvcParamKey::Alpn]))
        );
        // Re-encodes and decodes to the same record.
        let bytes = m.to_vec().unwrap();
        assert_eq!(Message::from_vec(&bytes).unwrap().answers, m.answers);
    }

    #[test]
    fn pass_leaves_a_records_alone() {
        let mut m = msg();
        assert_eq!(enforce(&mut m, FilterA::Pass, &wkp(), &dns64()), 0);
        assert_eq!(m.additionals.len(), 2);
    }

    #[test]
    fn nodata_gets_a_synthesized_soa_owned_by_the_chain_end() {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.answers = vec![Record::from_rdata(
            name("www.example."),
            60,
            RData::CNAME(CNAME(name("v4.example."))),
        )];
        // The A record the CNAME led to was stripped.
        ensure_nodata_soa(&mut m, &name("www.example."), RecordType::A, 1, 30);
        let soa = &m.authorities[0];
        assert_eq!(soa.name, name("v4.example."));
        assert_eq!(soa.ttl, 30);
        assert!(matches!(&soa.data, RData::SOA(s) if s.minimum == 30));
    }

    #[test]
    fn failed_a_lookup_is_decided_by_the_aaaa_lookup() {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        assert_eq!(after_a_failure(Some(&m)), AFailure::NoData);
        m.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(after_a_failure(Some(&m)), AFailure::NxDomain);
        m.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(after_a_failure(Some(&m)), AFailure::ServFail);
        assert_eq!(after_a_failure(None), AFailure::ServFail);
    }
}
