//! A DNS client for the tests: builds queries (EDNS, DO, CD, ID, letter case),
//! sends them over UDP or TCP to 127.0.0.1 and parses the reply. Every receive is
//! bounded by [`RECEIVE_TIMEOUT`], so no test can hang.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::zone;

/// The longest any test waits for a reply it expects.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a test waits before concluding that no reply is coming.
pub const SILENCE: Duration = Duration::from_millis(400);

/// RFC 8914 option code for Extended DNS Errors.
pub const EDE_OPTION: u16 = 15;
/// A local/experimental EDNS option code (RFC 6891 §9) the tests send to see it forwarded.
pub const TEST_OPTION: u16 = 65001;

static NEXT_ID: AtomicU16 = AtomicU16::new(0x1000);

/// A query under construction. Defaults: a fresh ID, RD=1, no EDNS.
#[derive(Clone, Debug)]
pub struct Q {
    message: Message,
}

/// Starts a query for `name` (letter case kept as written) and `qtype`.
pub fn q(name: &str, qtype: RecordType) -> Q {
    let mut message = Message::new(
        NEXT_ID.fetch_add(1, Ordering::Relaxed),
        MessageType::Query,
        OpCode::Query,
    );
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid query name"),
        qtype,
    ));
    Q { message }
}

impl Q {
    pub fn id(mut self, id: u16) -> Q {
        self.message.metadata.id = id;
        self
    }

    pub fn rd(mut self, rd: bool) -> Q {
        self.message.metadata.recursion_desired = rd;
        self
    }

    /// Sets CD=1 in the header.
    pub fn cd(mut self) -> Q {
        self.message.metadata.checking_disabled = true;
        self
    }

    /// The query's OPT record, added with a 1232-byte payload if there is none.
    fn opt(&mut self) -> &mut Edns {
        self.message.edns.get_or_insert_with(|| {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            edns
        })
    }

    /// Adds an OPT record advertising `payload` bytes.
    pub fn edns(mut self, payload: u16) -> Q {
        self.opt().set_max_payload(payload);
        self
    }

    /// Sets DO=1 (adding an OPT if there is none).
    pub fn dnssec_ok(mut self) -> Q {
        self.opt().set_dnssec_ok(true);
        self
    }

    /// Adds an EDNS option (adding an OPT if there is none).
    pub fn option(mut self, code: u16, data: &[u8]) -> Q {
        self.opt()
            .options_mut()
            .insert(EdnsOption::Unknown(code, data.to_vec()));
        self
    }

    /// Adds an RFC 7871 Client Subnet option for `addr`/`source_prefix`, as a
    /// forwarder such as CoreDNS sends (adding an OPT if there is none).
    pub fn ecs(mut self, addr: std::net::IpAddr, source_prefix: u8) -> Q {
        self.opt()
            .options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(
                addr,
                source_prefix,
                0,
            )));
        self
    }

    pub fn message_id(&self) -> u16 {
        self.message.metadata.id
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.message.to_vec().expect("encode query")
    }
}

/// A reply as received: the raw bytes and what hickory-proto parses from them.
#[derive(Clone, Debug)]
pub struct Reply {
    pub raw: Vec<u8>,
    pub msg: Message,
}

impl Reply {
    pub fn parse(raw: Vec<u8>) -> Reply {
        let msg = Message::from_vec(&raw)
            .unwrap_or_else(|e| panic!("reply does not parse ({e}): {raw:02x?}"));
        Reply { raw, msg }
    }

    pub fn rcode(&self) -> ResponseCode {
        self.msg.metadata.response_code
    }

    pub fn tc(&self) -> bool {
        self.msg.metadata.truncation
    }

    /// AAAA addresses in the answer section, in order.
    pub fn aaaa(&self) -> Vec<Ipv6Addr> {
        aaaa_in(&self.msg.answers)
    }

    /// A addresses in the answer section, in order.
    pub fn a(&self) -> Vec<Ipv4Addr> {
        self.msg
            .answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    /// Answer records of `rtype`.
    pub fn answers_of(&self, rtype: RecordType) -> Vec<&Record> {
        self.msg
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .collect()
    }

    /// Every A record, and every RRSIG covering A, in any section.
    pub fn a_records_anywhere(&self) -> Vec<&Record> {
        self.msg
            .answers
            .iter()
            .chain(&self.msg.authorities)
            .chain(&self.msg.additionals)
            .filter(|r| {
                r.record_type() == RecordType::A
                    || zone::rrsig_type_covered(r) == Some(RecordType::A)
            })
            .collect()
    }

    /// The SOA in the authority section, as (record TTL, MINIMUM).
    pub fn soa(&self) -> Option<(u32, u32)> {
        self.msg.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some((r.ttl, soa.minimum)),
            _ => None,
        })
    }

    /// Extended DNS error codes (RFC 8914) in the OPT record.
    pub fn ede_codes(&self) -> Vec<u16> {
        let Some(edns) = &self.msg.edns else {
            return Vec::new();
        };
        edns.options()
            .options
            .iter()
            .filter_map(|(code, option)| {
                if u16::from(*code) != EDE_OPTION {
                    return None;
                }
                match option {
                    EdnsOption::Unknown(_, data) if data.len() >= 2 => {
                        Some(u16::from_be_bytes([data[0], data[1]]))
                    }
                    _ => Some(u16::MAX),
                }
            })
            .collect()
    }

    /// The question section exactly as on the wire (header excluded).
    pub fn question_bytes(&self) -> &[u8] {
        question_bytes(&self.raw)
    }
}

/// AAAA addresses among `records`, in order.
pub fn aaaa_in(records: &[Record]) -> Vec<Ipv6Addr> {
    records
        .iter()
        .filter_map(|r| match r.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The first question of `packet` as raw bytes (name without compression + type + class).
pub fn question_bytes(packet: &[u8]) -> &[u8] {
    let mut i = 12;
    while i < packet.len() && packet[i] != 0 {
        assert!(
            packet[i] < 64,
            "question name is compressed or malformed: {packet:02x?}"
        );
        i += 1 + usize::from(packet[i]);
    }
    let end = (i + 5).min(packet.len());
    &packet[12..end]
}

/// Sends `packet` over UDP from a fresh socket and waits for one reply.
pub async fn udp(server: SocketAddr, packet: &[u8]) -> Reply {
    match udp_maybe(server, packet, RECEIVE_TIMEOUT).await {
        Some(raw) => Reply::parse(raw),
        None => panic!("no UDP reply from {server} within {RECEIVE_TIMEOUT:?}"),
    }
}

/// Sends `packet` over UDP and returns the reply, if one arrives within `wait`.
pub async fn udp_maybe(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind client socket");
    socket.connect(server).await.expect("connect");
    socket.send(packet).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(len)) => Some(buf[..len].to_vec()),
        // ICMP port unreachable: nobody listens (yet); the same as no reply.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => None,
        Ok(Err(e)) => panic!("UDP receive failed: {e}"),
        Err(_) => None,
    }
}

/// Sends `packet` on a new TCP connection and waits for one reply.
pub async fn tcp(server: SocketAddr, packet: &[u8]) -> Reply {
    let mut conn = TcpClient::connect(server).await;
    conn.send(packet).await;
    conn.recv().await
}

/// One TCP connection, for pipelining.
pub struct TcpClient {
    stream: TcpStream,
}

impl TcpClient {
    pub async fn connect(server: SocketAddr) -> TcpClient {
        let stream = tokio::time::timeout(RECEIVE_TIMEOUT, TcpStream::connect(server))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        TcpClient { stream }
    }

    /// Wraps a connection the test opened (and maybe wrote to) itself.
    pub fn from_stream(stream: TcpStream) -> TcpClient {
        TcpClient { stream }
    }

    /// Sends one length-prefixed message.
    pub async fn send(&mut self, packet: &[u8]) {
        let mut frame = u16::try_from(packet.len())
            .expect("packet fits a TCP frame")
            .to_be_bytes()
            .to_vec();
        frame.extend_from_slice(packet);
        self.stream.write_all(&frame).await.expect("TCP send");
    }

    /// Receives one length-prefixed message, or panics after [`RECEIVE_TIMEOUT`].
    pub async fn recv(&mut self) -> Reply {
        match self.recv_within(RECEIVE_TIMEOUT).await {
            Some(raw) => Reply::parse(raw),
            None => panic!("no TCP reply within {RECEIVE_TIMEOUT:?}"),
        }
    }

    /// Receives one message if it arrives within `wait`; `None` on timeout or when
    /// the server closed the connection.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let read = async {
            let mut len = [0u8; 2];
            self.stream.read_exact(&mut len).await.ok()?;
            let mut raw = vec![0u8; usize::from(u16::from_be_bytes(len))];
            self.stream.read_exact(&mut raw).await.ok()?;
            Some(raw)
        };
        tokio::time::timeout(wait, read).await.ok().flatten()
    }

    /// Waits until the server closes the connection; true if it did within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Sends `packet` over UDP from a fresh socket bound to `source` (any 127.0.0.0/8
/// address: another client of the same machine) and returns the reply, if one
/// arrives within `wait`.
pub async fn udp_from(
    source: std::net::IpAddr,
    server: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((source, 0))
        .await
        .expect("bind client socket");
    socket.connect(server).await.expect("connect");
    socket.send(packet).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(len)) => Some(buf[..len].to_vec()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => None,
        Ok(Err(e)) => panic!("UDP receive failed: {e}"),
        Err(_) => None,
    }
}

/// Sends every packet of `packets` from one UDP socket bound to `source`, back to
/// back, then collects replies until none has come for `quiet`.
pub async fn udp_burst(
    source: std::net::IpAddr,
    server: SocketAddr,
    packets: &[Vec<u8>],
    quiet: Duration,
) -> Vec<Reply> {
    let socket = UdpSocket::bind((source, 0))
        .await
        .expect("bind client socket");
    socket.connect(server).await.expect("connect");
    for packet in packets {
        socket.send(packet).await.expect("send");
    }
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65535];
    while let Ok(Ok(len)) = tokio::time::timeout(quiet, socket.recv(&mut buf)).await {
        replies.push(Reply::parse(buf[..len].to_vec()));
    }
    replies
}

impl Reply {
    /// Every TTL of the answer and authority sections.
    pub fn ttls(&self) -> Vec<u32> {
        self.msg
            .answers
            .iter()
            .chain(&self.msg.authorities)
            .map(|r| r.ttl)
            .collect()
    }

    pub fn id(&self) -> u16 {
        self.msg.metadata.id
    }
}

/// Sends `queries` at once over UDP, each from its own socket; the replies
/// (parsed) in the same order, `None` for one that got none in time.
pub async fn udp_all(server: SocketAddr, queries: &[super::Q]) -> Vec<Option<Reply>> {
    let tasks: Vec<_> = queries
        .iter()
        .map(|query| {
            let packet = query.bytes();
            tokio::spawn(async move {
                udp_maybe(server, &packet, RECEIVE_TIMEOUT)
                    .await
                    .map(Reply::parse)
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("client task"));
    }
    replies
}
