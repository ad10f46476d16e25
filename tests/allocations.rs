//! Heap allocations per query on the UDP hot paths, counted by a global
//! allocator on the server's thread only (the fake upstream and the client
//! run on another thread). After a warm-up that grows the buffers and tables
//! to the load, the steady state must allocate nothing per query on:
//! - plain forwarding (the relay) with the cache off,
//! - A stripping and AAAA synthesis for DNS64 clients, cache off,
//! - cache hits.
//!
//! "Nothing per query" is asserted as fewer than one allocation per 100
//! queries: buffers and tables are reused, but one may still grow once when
//! the measured round reaches a new high-water mark of queries in flight
//! (a few allocations in all); a single allocation per query would count
//! thousands.
//!
//! A cache miss that stores its answer allocates the stored entry: that is
//! the cache's memory, not per-query overhead, and is counted separately.

#[path = "integration/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use dns64d::app::Server;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use support::{Upstream, config_toml, parse_config, q, zone};

/// Counts allocations made on threads that opted in while armed.
struct Counting;

/// The server whose thread is being measured (0: none).
static ARMED: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The server this thread runs (0: none).
    static SERVER: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// bookkeeping touches only atomics and a const thread-local (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// With `ALLOC_BACKTRACE=1`: the stack of the first few counted
/// allocations, to find one that crept in.
static BACKTRACE: AtomicBool = AtomicBool::new(false);

fn note() {
    let armed = ARMED.load(Ordering::Relaxed);
    if armed != 0 && SERVER.try_with(Cell::get) == Ok(armed) {
        let k = ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        if k < 3 && BACKTRACE.load(Ordering::Relaxed) {
            // Capturing allocates: not counted.
            ARMED.store(0, Ordering::Relaxed);
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
            ARMED.store(armed, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Queries per measured round, and how many are outstanding at once.
const QUERIES: usize = 4000;
/// Most allocations a measured round may make without one being per query.
const GROWTH: u64 = QUERIES as u64 / 100;
const WINDOW: usize = 64;

/// Runs dns64d (one worker) on a thread of its own whose allocations count;
/// returns its address and the token that stops it.
fn start_server(toml: String) -> Running {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel();
    let stop = CancellationToken::new();
    let token = stop.clone();
    let thread = std::thread::spawn(move || {
        SERVER.set(id);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let server = Server::bind(parse_config(&toml)).await.expect("start");
            tx.send(server.local_addrs()[0]).expect("report address");
            server.run(token).await;
        });
    });
    let addr = rx.recv().expect("server address");
    Running {
        id,
        addr,
        stop,
        thread: Some(thread),
    }
}

/// A server started by [`start_server`]; stopped and joined when dropped.
struct Running {
    id: u64,
    addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `names` as A (or `qtype`) queries, with EDNS when `edns`,
/// `WINDOW` outstanding, and waits for every answer.
async fn load(addr: SocketAddr, names: &[String], (qtype, edns): (RecordType, bool)) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.connect(addr).await.expect("connect");
    let mut buf = vec![0u8; 65535];
    for chunk in names.chunks(WINDOW) {
        for (i, name) in chunk.iter().enumerate() {
            let query = q(name, qtype).id(i as u16);
            let packet = if edns { query.edns(1232) } else { query }.bytes();
            sock.send(&packet).await.expect("send");
        }
        for _ in chunk {
            tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .expect("every query is answered")
                .expect("recv");
        }
    }
}

/// What [`allocations`] asks: a type, and whether with EDNS (a bare type: without).
struct Asked((RecordType, bool));

impl From<RecordType> for Asked {
    fn from(t: RecordType) -> Asked {
        Asked((t, false))
    }
}

impl From<(RecordType, bool)> for Asked {
    fn from(t: (RecordType, bool)) -> Asked {
        Asked(t)
    }
}

/// One measurement at a time: the counter is shared.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Allocations on the server thread while `names` are served (after a
/// warm-up round of `warm`).
async fn allocations(
    server: &Running,
    warm: &[String],
    names: &[String],
    qtype: impl Into<Asked>,
) -> u64 {
    let qtype = qtype.into().0;
    let addr = server.addr;
    let _one = SERIAL.lock().await;
    load(addr, warm, qtype).await;
    BACKTRACE.store(
        std::env::var_os("ALLOC_BACKTRACE").is_some(),
        Ordering::Relaxed,
    );
    ALLOCATIONS.store(0, Ordering::Relaxed);
    ARMED.store(server.id, Ordering::Relaxed);
    load(addr, names, qtype).await;
    ARMED.store(0, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn names(round: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}.{round}.example.")).collect()
}

/// Plain clients (127.0.0.1 is not a DNS64 client), one worker.
fn plain_config(upstream: &Upstream, cache: bool) -> String {
    config_toml(
        upstream.addr(),
        &format!(
            "[server]\nworkers = 1\n[dns64]\nclients = [\"::1/128\"]\n[cache]\nenabled = {cache}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn plain_forwarding_allocates_nothing_per_query() {
    let upstream = Upstream::start().await;
    let server = start_server(plain_config(&upstream, false));
    let n = allocations(
        &server,
        &names("warm", QUERIES),
        &names("cold", QUERIES),
        RecordType::A,
    )
    .await;
    assert!(
        n < GROWTH,
        "{n} allocations for {QUERIES} forwarded queries"
    );
}

/// DNS64 clients (127.0.0.0/8 in the base config), one worker, no cache.
fn dns64_config(upstream: &Upstream) -> String {
    config_toml(
        upstream.addr(),
        "[server]\nworkers = 1\n[cache]\nenabled = false",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn stripping_a_records_allocates_nothing_per_query() {
    let upstream = Upstream::start().await;
    let server = start_server(dns64_config(&upstream));
    let same = vec![zone::A_ONLY.to_string(); QUERIES];
    let n = allocations(&server, &same, &same, RecordType::A).await;
    assert!(
        n < GROWTH,
        "{n} allocations for {QUERIES} stripped A answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn stripping_a_records_for_edns_clients_with_ede_17_allocates_nothing_per_query() {
    let upstream = Upstream::start().await;
    let server = start_server(dns64_config(&upstream));
    let same = vec![zone::A_ONLY.to_string(); QUERIES];
    let asked = (RecordType::A, true);
    let n = allocations(&server, &same, &same, asked).await;
    assert!(
        n < GROWTH,
        "{n} allocations for {QUERIES} stripped A answers marked Filtered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn synthesizing_over_aaaa_synthesized_upstream_allocates_nothing_per_query() {
    let upstream = Upstream::start().await;
    // A DNS64 upstream: the A-only name's AAAA under the well-known prefix.
    let owner = hickory_proto::rr::Name::from_ascii(zone::A_ONLY).unwrap();
    let records = zone::A_ONLY_ADDRS
        .iter()
        .map(|(v4, _)| {
            let v6 = support::wkp(*v4);
            let data = hickory_proto::rr::RData::AAAA(hickory_proto::rr::rdata::AAAA(v6));
            hickory_proto::rr::Record::from_rdata(owner.clone(), 60, data)
        })
        .collect();
    upstream.set_answer(zone::A_ONLY, RecordType::AAAA, records);
    let server = start_server(dns64_config(&upstream));
    let same = vec![zone::A_ONLY.to_string(); QUERIES];
    let n = allocations(&server, &same, &same, RecordType::AAAA).await;
    assert!(
        n < GROWTH,
        "{n} allocations for {QUERIES} AAAA answers synthesized again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn synthesizing_aaaa_allocates_nothing_per_query() {
    let upstream = Upstream::start().await;
    let server = start_server(dns64_config(&upstream));
    let same = vec![zone::A_ONLY.to_string(); QUERIES];
    let n = allocations(&server, &same, &same, RecordType::AAAA).await;
    assert!(
        n < GROWTH,
        "{n} allocations for {QUERIES} synthesized AAAA answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn cache_hits_allocate_nothing_per_query() {
    let upstream = Upstream::start().await;
    let server = start_server(plain_config(&upstream, true));
    let hot = names("hot", 256);
    let repeated: Vec<String> = hot.iter().cycle().take(QUERIES).cloned().collect();
    let n = allocations(&server, &repeated, &repeated, RecordType::A).await;
    assert!(n < GROWTH, "{n} allocations for {QUERIES} cache hits");
}

/// Rotation (`dns64.rotate`, on by default) moves records inside the
/// rendered copy of an entry: a hit on a multi-record RRset costs nothing
/// more than any other hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn rotating_cache_hits_of_synthesized_aaaa_allocate_nothing_per_query() {
    let upstream = Upstream::start().await;
    let server = start_server(config_toml(
        upstream.addr(),
        "[server]\nworkers = 1\n[dns64]\nrotate = true\n[cache]\nenabled = true",
    ));
    assert!(zone::A_ONLY_ADDRS.len() > 1, "a set that rotates");
    let same = vec![zone::A_ONLY.to_string(); QUERIES];
    let n = allocations(&server, &same, &same, RecordType::AAAA).await;
    assert!(
        n < GROWTH,
        "{n} allocations for {QUERIES} rotated cache hits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_forwarded_cache_miss_allocates_only_the_entry_it_stores() {
    let upstream = Upstream::start().await;
    let server = start_server(plain_config(&upstream, true));
    let n = allocations(
        &server,
        &names("warm", QUERIES),
        &names("cold", QUERIES),
        RecordType::A,
    )
    .await;
    // The entry's bytes (answer and TTL offsets), its shared handle and its
    // key's name, plus the cache map's own growth (a few in all).
    let bound = 3 * QUERIES as u64 + GROWTH;
    assert!(n <= bound, "{n} allocations for {QUERIES} stored answers");
}
