//! dns64d: a DNS64-aware filtering stub resolver and DNS proxy.
//!
//! IPv6-only clients behind a NAT64 must only ever see AAAA answers inside the
//! NAT64 prefix. dns64d forwards their queries, synthesizes AAAA from A
//! (RFC 6147, RFC 6052), and strips A records so no libc can pick an IPv4
//! address that would bypass the NAT64 gateway.
//!
//! The modules below are declared in the order a query travels through them:
//! `listen → wire → policy → upstream → dns64 | filter → reply`, strung
//! together by [`pipeline`]. `config`, `metrics` and `app` are the control
//! path; `error` maps rejected packets to replies.
// One reviewed exception, `batch` (recvmmsg/sendmmsg); see STYLE §11.
#![deny(unsafe_code)]

pub mod types;

pub mod batch;
pub mod cache;
pub mod dns64;
pub mod filter;
pub mod listen;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod reply;
pub mod upstream;
pub mod wire;

pub mod app;
pub mod config;
pub mod control;
pub mod discovery;
pub mod doctor;
pub mod error;
pub mod metrics;
pub mod watch;
pub mod worker;
