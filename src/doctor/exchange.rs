//! The doctor's DNS client: one question the way a libc asks it (UDP
//! without EDNS, the same over TCP after TC=1, RFC 7766 §5), with a
//! deadline. Blocking std sockets: the doctor is a one-shot CLI.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs as _, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;

/// One query as a libc sends it (RD, no EDNS, UDP); TC=1 → the same over TCP.
pub(super) fn exchange(
    server: SocketAddr,
    round: u8,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Exchange {
    let mut x = Exchange {
        server,
        round,
        qtype,
        rcode: "-".into(),
        truncated: false,
        udp_addresses: 0,
        answers: Vec::new(),
        negative_ttl: None,
        error: None,
    };
    let id: u16 = rand::random();
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(name.clone(), qtype));
    let bytes = match q.to_vec() {
        Ok(b) => b,
        Err(e) => {
            x.error = Some(e.to_string());
            return x;
        }
    };
    let reply = match udp_exchange(server, &bytes, id, timeout) {
        Ok(m) => m,
        Err(e) => {
            x.error = Some(e);
            return x;
        }
    };
    let reply = if reply.metadata.truncation {
        x.truncated = true;
        x.udp_addresses = reply
            .answers
            .iter()
            .filter(|r| r.data.ip_addr().is_some())
            .count();
        match tcp_exchange(server, &bytes, id, timeout) {
            Ok(m) => m,
            Err(e) => {
                x.error = Some(format!("over TCP after TC: {e}"));
                reply
            }
        }
    } else {
        reply
    };
    x.rcode = rcode_name(reply.metadata.response_code);
    for r in &reply.answers {
        x.answers.push(AnswerRecord {
            name: r.name.to_string(),
            rtype: r.record_type().to_string(),
            ttl: r.ttl,
            data: r.data.to_string(),
            addr: match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            },
        });
    }
    x.negative_ttl = reply.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
        _ => None,
    });
    x
}

/// The mnemonic of an RCODE, as dig prints it.
pub(super) fn rcode_name(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

pub(super) fn udp_exchange(
    server: SocketAddr,
    q: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Message, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.connect(server).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    sock.send(q).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "timed out".to_string()
            }
            _ => e.to_string(),
        })?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => {
                return Ok(m);
            }
            _ => continue, // not ours: keep waiting until the timeout
        }
    }
}

pub(super) fn tcp_exchange(
    server: SocketAddr,
    q: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Message, String> {
    let addr = server
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(q.len()).map_err(|_| "query too long")?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).map_err(|e| e.to_string())?;
    let mut lenb = [0u8; 2];
    s.read_exact(&mut lenb).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenb))];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("reply with another ID".into());
    }
    Ok(m)
}
