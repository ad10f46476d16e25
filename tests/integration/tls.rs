//! DNS over TLS upstreams (RFC 7858): servers written `tls://IP[:PORT]#NAME`
//! reached through a real TLS server on 127.0.0.1 (tokio-rustls, with a
//! certificate from a CA this test makes) that fronts the fake upstream's
//! TCP port, byte for byte; and against Unbound itself serving DNS over
//! TLS (`tls-service-key`), for interoperability with a real DoT server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::support::{Dns64d, TempFile, Upstream, config_toml, q, wkp, zone};

/// The name in the test server's certificate.
pub(crate) const NAME: &str = "dns.test";

/// A CA and a server certificate for [`NAME`] signed by it.
pub(crate) struct Pki {
    /// The CA certificate, PEM (for `upstream.tls_ca`).
    pub(crate) ca_pem: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
    /// The server certificate and key, PEM (for a TLS server run as a process).
    cert_pem: String,
    key_pem: String,
}

pub(crate) fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "dns64d test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![NAME.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: key.serialize_der(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A TLS server on 127.0.0.1 that relays each connection to the fake
/// upstream's TCP port; counts connections and can close them all.
pub(crate) struct TlsFront {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Cancelled to close every open connection; new connections get a
    /// fresh one.
    close: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TlsFront {
    pub(crate) async fn start(pki: &Pki, backend: SocketAddr) -> TlsFront {
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let front = TlsFront {
            addr: listener.local_addr().unwrap(),
            accepted: Arc::default(),
            close: Arc::default(),
            stop: CancellationToken::new(),
        };
        let (accepted, close, stop) = (
            front.accepted.clone(),
            front.close.clone(),
            front.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                };
                let acceptor = acceptor.clone();
                let accepted = accepted.clone();
                let close = close.lock().unwrap().clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return; // The client refused our certificate.
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut up = TcpStream::connect(backend).await.unwrap();
                    tokio::select! {
                        _ = close.cancelled() => {}
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut tls, &mut up) => {}
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        front
    }

    /// Closes every open connection, as a server ending idle ones would.
    fn close_all(&self) {
        let mut token = self.close.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    /// TLS handshakes completed.
    pub(crate) fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The `dns64d_upstream_tls_connections_total` series of `front`.
fn tls_connections(front: &TlsFront, result: &str) -> String {
    format!(
        "dns64d_upstream_tls_connections_total{{zone=\".\",server=\"{}\",result=\"{result}\"}}",
        front.addr
    )
}

/// dns64d whose only upstream is `tls://front#name`, trusting the test CA;
/// `extra` goes on in the `[upstream]` table (and may open others).
async fn over_tls(
    up: Upstream,
    front: &TlsFront,
    name: &str,
    ca: &TempFile,
    extra: &str,
) -> Dns64d {
    let toml = config_toml(
        up.addr(),
        &format!(
            "[upstream]\nservers = [\"tls://{}#{name}\"]\ntls_ca = {:?}\n{extra}",
            front.addr,
            ca.path().display().to_string()
        ),
    );
    Dns64d::launch(up, &toml, false).await
}

#[tokio::test]
async fn an_aaaa_query_is_answered_through_a_tls_upstream_with_synthesis() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(up, &front, NAME, &ca, "").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    let want: Vec<_> = zone::A_ONLY_ADDRS.iter().map(|(a, _)| wkp(*a)).collect();
    assert_eq!(reply.aaaa(), want);
    assert!(front.connections() >= 1, "the query went over TLS");
    // The AAAA and the A behind the synthesis were both asked over TCP (TLS).
    assert!(!d.upstream.asked(zone::A_ONLY, RecordType::A).is_empty());
}

#[tokio::test]
async fn a_certificate_not_valid_for_the_name_fails_and_the_query_is_servfail() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(up, &front, "other.test", &ca, "").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert_eq!(front.connections(), 0, "no handshake completed");
    assert_eq!(d.upstream.total_received(), 0);
    let series = format!(
        "dns64d_upstream_requests_total{{zone=\".\",server=\"{}\",result=\"io_error\"}}",
        front.addr
    );
    assert!(d.counter(&series) >= 1, "{series} counts the failures");
    assert!(d.counter(&tls_connections(&front, "failed")) >= 1);
    assert_eq!(d.counter(&tls_connections(&front, "ok")), 0);
}

#[tokio::test]
async fn a_tls_server_failing_verification_fails_over_to_the_next_server() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    let front = TlsFront::start(&pki, up.addr()).await;
    let udp = up.addr();
    let toml = config_toml(
        up.addr(),
        &format!(
            "[upstream]\nservers = [\"tls://{}#other.test\", \"{udp}\"]\ntls_ca = {:?}\n",
            front.addr,
            ca.path().display().to_string()
        ),
    );
    let d = Dns64d::launch(up, &toml, false).await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::NoError);
    assert!(!reply.aaaa().is_empty());
    assert_eq!(front.connections(), 0);
}

#[tokio::test]
async fn many_concurrent_queries_are_pipelined_on_one_tls_connection() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    // Slow answers: each query is still waiting when the next is sent.
    up.on_all(
        Some(RecordType::A),
        crate::support::Action::Delay(Duration::from_millis(100)),
    );
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(
        up,
        &front,
        NAME,
        &ca,
        "timeout = \"2s\"\n[cache]\nenabled = false",
    )
    .await;
    let names: Vec<String> = (0..40).map(|i| format!("n{i}.{}", zone::A_ONLY)).collect();
    let mut tasks = Vec::new();
    for name in &names {
        let query = q(name, RecordType::A);
        let addr = d.addr;
        tasks.push(tokio::spawn(async move {
            crate::support::client::udp(addr, &query.bytes()).await
        }));
    }
    for t in tasks {
        let reply = t.await.unwrap();
        assert_ne!(reply.rcode(), ResponseCode::ServFail);
    }
    assert_eq!(front.connections(), 1, "every query shared one connection");
    assert_eq!(d.counter(&tls_connections(&front, "ok")), 1);
    assert_eq!(d.upstream.seen().len(), names.len());
}

#[tokio::test]
async fn a_query_after_the_server_closed_the_connection_reconnects() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(up, &front, NAME, &ca, "[cache]\nenabled = false").await;
    let first = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(first.aaaa(), vec![zone::DUAL_AAAA]);
    assert_eq!(front.connections(), 1);
    front.close_all();
    let second = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(second.aaaa(), vec![zone::DUAL_AAAA]);
    assert_eq!(front.connections(), 2, "a new connection after the close");
}

#[tokio::test]
async fn an_idle_tls_connection_is_closed_and_reopened_for_the_next_query() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(
        up,
        &front,
        NAME,
        &ca,
        "tls_idle_timeout = \"200ms\"\n[cache]\nenabled = false",
    )
    .await;
    assert_eq!(
        d.udp(&q(zone::DUAL, RecordType::A)).await.rcode(),
        ResponseCode::NoError
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        d.udp(&q(zone::DUAL, RecordType::A)).await.rcode(),
        ResponseCode::NoError
    );
    assert_eq!(front.connections(), 2);
}

/// The error for `[upstream]` with `keys`, which must be rejected.
fn upstream_rejection(keys: &str) -> String {
    match dns64d::config::Config::from_toml(&format!("[upstream]\n{keys}\n")) {
        Ok(_) => panic!("accepted: {keys}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_tls_server_is_parsed_with_its_name_and_the_default_port_853() {
    let c = dns64d::config::Config::from_toml(
        "[upstream]\nservers = [\"tls://192.0.2.1#dns.example.\", \"tls://[2001:db8::1]:8853#Dns.Example\", \"192.0.2.2\"]\n",
    )
    .unwrap();
    let v4: SocketAddr = "192.0.2.1:853".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:8853".parse().unwrap();
    assert_eq!(
        c.upstream.servers,
        vec![v4, v6, "192.0.2.2:53".parse().unwrap()]
    );
    assert_eq!(c.upstream.tls_names[&v4], "dns.example");
    assert_eq!(c.upstream.tls_names[&v6], "dns.example");
    assert_eq!(c.upstream.tls_names.len(), 2, "the plain server is not TLS");
}

#[test]
fn a_tls_server_without_a_name_is_a_config_error_naming_key_and_value() {
    let err = upstream_rejection("servers = [\"tls://192.0.2.1:853\"]");
    assert!(err.contains("upstream.servers"), "{err}");
    assert!(err.contains("tls://192.0.2.1:853"), "{err}");
    assert!(err.contains("#NAME"), "says what is missing: {err}");
}

#[test]
fn malformed_tls_servers_are_config_errors_naming_key_and_value() {
    for bad in [
        "tls://dns.example#dns.example",
        "tls://192.0.2.1#",
        "tls://192.0.2.1#bad name!",
        "https://192.0.2.1#dns.example",
        "192.0.2.1#dns.example",
    ] {
        let err = upstream_rejection(&format!("servers = [\"{bad}\"]"));
        assert!(err.contains("upstream.servers"), "{bad}: {err}");
        assert!(err.contains(bad), "{bad}: {err}");
    }
}

#[test]
fn an_unreadable_tls_ca_is_a_config_error_naming_key_and_value() {
    let err = upstream_rejection(
        "servers = [\"tls://192.0.2.1#dns.example\"]\ntls_ca = \"/nonexistent/ca.pem\"",
    );
    assert!(err.contains("upstream.tls_ca"), "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn a_tls_ca_file_without_certificates_is_a_config_error_naming_key_and_value() {
    let file = TempFile::new("not a certificate\n");
    let path = file.path().display().to_string();
    let err = upstream_rejection(&format!(
        "servers = [\"tls://192.0.2.1#dns.example\"]\ntls_ca = {path:?}"
    ));
    assert!(err.contains("upstream.tls_ca"), "{err}");
    assert!(err.contains(&path), "{err}");
}

#[test]
fn the_effective_config_prints_tls_servers_as_written_and_loads_again() {
    let c = dns64d::config::Config::from_toml(
        "[upstream]\nservers = [\"tls://192.0.2.1#dns.example\", \"192.0.2.2\"]\n",
    )
    .unwrap();
    let printed = c.to_toml();
    assert!(
        printed.contains("\"tls://192.0.2.1:853#dns.example\""),
        "{printed}"
    );
    let again = dns64d::config::Config::from_toml(&printed)
        .unwrap_or_else(|e| panic!("printed config rejected: {e}\n{printed}"));
    assert_eq!(again.upstream.servers, c.upstream.servers);
    assert_eq!(again.upstream.tls_names, c.upstream.tls_names);
}

#[tokio::test]
async fn the_nat64_prefix_is_discovered_through_a_tls_upstream() {
    use hickory_proto::rr::rdata::AAAA;
    use hickory_proto::rr::{Name, RData, Record};
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    let p = [0x2001, 0xdb8, 0x64, 0, 0, 0];
    let owner = Name::from_ascii("ipv4only.arpa.").unwrap();
    let learned = crate::support::under96(p, Ipv4Addr::new(192, 0, 0, 170));
    up.set_answer(
        "ipv4only.arpa.",
        RecordType::AAAA,
        vec![Record::from_rdata(owner, 600, RData::AAAA(AAAA(learned)))],
    );
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(up, &front, NAME, &ca, "[dns64]\nprefixes = [\"discover\"]").await;
    let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
    assert_eq!(
        reply.aaaa()[0],
        crate::support::under96(p, zone::A_ONLY_ADDRS[0].0)
    );
    assert_eq!(
        d.upstream.asked("ipv4only.arpa.", RecordType::AAAA).len(),
        1
    );
    assert!(front.connections() >= 1);
}

#[tokio::test]
async fn forged_answers_on_the_tls_connection_are_dropped_and_the_real_one_is_used() {
    use crate::support::Action;
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let up = Upstream::start().await;
    up.on(
        zone::DUAL,
        Some(RecordType::AAAA),
        Action::WrongId { then_answer: true },
    );
    up.on(
        zone::AAAA_ONLY,
        Some(RecordType::AAAA),
        Action::WrongQuestion { then_answer: true },
    );
    let front = TlsFront::start(&pki, up.addr()).await;
    let d = over_tls(up, &front, NAME, &ca, "").await;
    let dual = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(dual.aaaa(), vec![zone::DUAL_AAAA]);
    let only = d.udp(&q(zone::AAAA_ONLY, RecordType::AAAA)).await;
    assert_eq!(only.aaaa(), vec![zone::AAAA_ONLY_AAAA]);
    let series = format!(
        "dns64d_upstream_mismatched_total{{zone=\".\",server=\"{}\"}}",
        front.addr
    );
    assert_eq!(d.counter(&series), 2, "both forgeries counted");
}

#[tokio::test]
async fn without_tls_ca_a_certificate_from_an_unknown_ca_is_refused() {
    let pki = pki();
    let up = Upstream::start().await;
    let front = TlsFront::start(&pki, up.addr()).await;
    // No tls_ca: only the Mozilla roots are trusted, and the test CA is not one.
    let toml = config_toml(
        up.addr(),
        &format!("[upstream]\nservers = [\"tls://{}#{NAME}\"]", front.addr),
    );
    let d = Dns64d::launch(up, &toml, false).await;
    let reply = d.udp(&q(zone::DUAL, RecordType::AAAA)).await;
    assert_eq!(reply.rcode(), ResponseCode::ServFail);
    assert_eq!(front.connections(), 0);
    assert_eq!(d.upstream.total_received(), 0);
    assert!(d.counter(&tls_connections(&front, "failed")) >= 1);
}

/// Unbound serving DNS over TLS on 127.0.0.1 (`tls-service-key`,
/// `tls-service-pem`), answering from local data only: `local-zone: "."
/// static` means it never recurses, so nothing leaves the machine.
struct Unbound {
    child: std::process::Child,
    addr: SocketAddr,
    _files: Vec<TempFile>,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    async fn start(pki: &Pki) -> Unbound {
        let cert = TempFile::new(&pki.cert_pem);
        let key = TempFile::new(&pki.key_pem);
        let port = crate::support::upstream::free_port().await;
        let a = zone::A_ONLY_ADDRS[0].0;
        let conf = TempFile::new(&format!(
            "server:\n\
             \tinterface: 127.0.0.1@{port}\n\
             \ttls-port: {port}\n\
             \ttls-service-key: \"{key}\"\n\
             \ttls-service-pem: \"{cert}\"\n\
             \tdo-ip6: no\n\
             \tdo-daemonize: no\n\
             \tuse-syslog: no\n\
             \tlogfile: \"\"\n\
             \tverbosity: 1\n\
             \tchroot: \"\"\n\
             \tusername: \"\"\n\
             \tdirectory: \"{dir}\"\n\
             \tpidfile: \"\"\n\
             \tmodule-config: \"iterator\"\n\
             \taccess-control: 127.0.0.0/8 allow\n\
             \tlocal-zone: \".\" static\n\
             \tlocal-data: \"{name} 300 IN A {a}\"\n\
             remote-control:\n\
             \tcontrol-enable: no\n",
            key = key.path().display(),
            cert = cert.path().display(),
            dir = std::env::temp_dir().display(),
            name = zone::A_ONLY,
        ));
        let child = std::process::Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(conf.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            // Its readiness probe below shows as a failed handshake; quiet.
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run unbound (apt-get install unbound; .ci/run does): {e}")
            });
        let mut unbound = Unbound {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            _files: vec![cert, key, conf],
        };
        let started = std::time::Instant::now();
        while TcpStream::connect(unbound.addr).await.is_err() {
            if let Some(status) = unbound.child.try_wait().unwrap() {
                panic!("unbound exited with {status} (try: unbound -d -c <its config>)");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "unbound not listening on {}",
                unbound.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unbound
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unbound_as_a_dot_upstream_answers_with_synthesis_over_one_connection() {
    let pki = pki();
    let ca = TempFile::new(&pki.ca_pem);
    let unbound = Unbound::start(&pki).await;
    let up = Upstream::start().await;
    let toml = config_toml(
        up.addr(),
        &format!(
            "[upstream]\nservers = [\"tls://{}#{NAME}\"]\ntls_ca = {:?}\ntimeout = \"2s\"\n[cache]\nenabled = false",
            unbound.addr,
            ca.path().display().to_string()
        ),
    );
    let d = Dns64d::launch(up, &toml, false).await;
    for _ in 0..3 {
        let reply = d.udp(&q(zone::A_ONLY, RecordType::AAAA)).await;
        assert_eq!(reply.rcode(), ResponseCode::NoError);
        assert_eq!(reply.aaaa(), vec![wkp(zone::A_ONLY_ADDRS[0].0)]);
    }
    let opened = format!(
        "dns64d_upstream_tls_connections_total{{zone=\".\",server=\"{}\",result=\"ok\"}}",
        unbound.addr
    );
    assert_eq!(d.counter(&opened), 1, "six exchanges, one connection");
    assert_eq!(d.upstream.total_received(), 0, "all of it went to unbound");
}
