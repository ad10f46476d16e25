//! Integration tests: dns64d over real sockets on 127.0.0.1 against a fake
//! upstream that records what it was asked. SPEC.md is the oracle; each module
//! covers one part of it.

mod support;

/// The fake upstream checked on its own.
mod fixture;

/// §2 address synthesis and §3 AAAA queries from DNS64 clients.
mod synthesis;

/// §4 A records for DNS64 clients, and plain forwarding for other clients.
mod filter;

/// §7 transport: echoes, EDNS0, truncation, TCP, upstream handling.
mod transport;

/// §8 malformed queries, the ACL, and upstream replies not to believe.
mod bad_input;

/// §8 config errors, through the library and the binary.
mod config;

/// §3 with DNS64 or DNSSEC done upstream; the extended errors we add.
mod answers;

/// §3.8 parallel A, §3.9 per-name policies, §5 AAAA order.
mod policy;

/// §6 PTR and ipv4only.arpa.
mod ptr;

/// §1 clients behind a trusted forwarder (EDNS Client Subnet).
mod forwarder;

/// The binary: config file, start-up warning, SIGHUP reload, SIGTERM drain.
mod binary;

/// Rolling updates: two binaries on the same addresses, SIGTERM's grace period.
mod rollout;

/// §9 metrics scrape, /health and /ready.
mod metrics;

/// The answer cache: hits, TTLs, negative caching, clamps, separation, serve-stale.
mod cache;

/// Answer rotation on cache hits (`dns64.rotate`).
mod rotation;

/// The config file watch (`server.watch_config`): edits and ConfigMap swaps reload.
mod watch;

/// Operations: the scrape parsed, /ready, POST /reload, reloads under load.
mod operations;

/// Reliability: upstream faults, forgeries, dead upstreams, hostile clients,
/// amplification and the rate limit.
mod faults;

/// Plain forwarding in the receive loop: retries, failover, truncation,
/// forgeries, reloads and shutdown on that path.
mod relay;

/// §10 NAT64 prefix discovery (RFC 7050).
mod discovery;

/// DNS over TLS upstreams (RFC 7858).
mod tls;

/// Per-zone forwarding (`[[upstream.zone]]`).
mod zones;
