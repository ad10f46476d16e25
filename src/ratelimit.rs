//! Per-client rate limit (`server.rate_limit`, off by default): a token
//! bucket per source /32 (IPv4) or /64 (IPv6 — one host's SLAAC addresses
//! share a /64), so one noisy pod cannot starve the node's other clients.
//! Queries over the limit are dropped and counted; the client's resolver
//! retries as it would after a lost packet.
//!
//! Synchronous and lock-free per bucket: tokens and the last refill time
//! share one `AtomicU64` updated by compare-and-swap; buckets live in a
//! bounded `quick_cache` map, so a flood of spoofed sources cannot grow
//! memory. Time is passed in (milliseconds since the limiter started).
//!
//! Data path position: in `pipeline`'s first stage, after the ACL.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache as QuickCache;

/// Buckets kept at most; least recently used ones are forgotten (a
/// forgotten client starts again with a full bucket).
pub const MAX_BUCKETS: usize = 65_536;

/// Token-bucket limiter keyed by client prefix.
pub struct RateLimiter {
    /// Tokens added per second (= the sustained queries/s allowed).
    rate: u64,
    /// Bucket size in queries.
    burst: u64,
    buckets: QuickCache<u128, Arc<AtomicU64>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .finish()
    }
}

/// Milli-tokens in the high 32 bits, last refill (ms, wrapping) in the low 32.
fn pack(milli_tokens: u64, at_ms: u64) -> u64 {
    (milli_tokens.min(u64::from(u32::MAX)) << 32) | (at_ms & 0xffff_ffff)
}

fn unpack(v: u64) -> (u64, u64) {
    (v >> 32, v & 0xffff_ffff)
}

impl RateLimiter {
    /// `rate` queries/s sustained, bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: u64::from(rate),
            burst: u64::from(burst.max(1)),
            buckets: QuickCache::new(MAX_BUCKETS),
        }
    }

    /// The bucket key: /32 for IPv4 (tagged so it cannot meet an IPv6 /64),
    /// /64 for IPv6.
    fn key(ip: IpAddr) -> u128 {
        match ip.to_canonical() {
            IpAddr::V4(v4) => (1u128 << 127) | u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 64) - 1),
        }
    }

    /// True when the client may send this query at `now_ms`.
    pub fn allow(&self, ip: IpAddr, now_ms: u64) -> bool {
        let full = self.burst * 1000;
        let key = Self::key(ip);
        let bucket = match self.buckets.get(&key) {
            Some(b) => b,
            None => {
                let b = Arc::new(AtomicU64::new(pack(full, now_ms)));
                self.buckets.insert(key, b.clone());
                b
            }
        };
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (tokens, at) = unpack(cur);
            let elapsed = (now_ms.wrapping_sub(at)) & 0xffff_ffff;
            // rate tokens/s = rate milli-tokens per ms.
            let tokens = (tokens + elapsed * self.rate).min(full);
            let (next, ok) = if tokens >= 1000 {
                (tokens - 1000, true)
            } else {
                (tokens, false)
            };
            match bucket.compare_exchange_weak(
                cur,
                pack(next, now_ms),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return ok,
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_sustained_rate() {
        let rl = RateLimiter::new(10, 5);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let allowed = (0..20).filter(|_| rl.allow(ip, 1000)).count();
        assert_eq!(allowed, 5, "the burst");
        // 100 ms later at 10 q/s: one more token.
        assert!(rl.allow(ip, 1100));
        assert!(!rl.allow(ip, 1100));
    }

    #[test]
    fn clients_have_separate_buckets_and_an_ipv6_64_is_one_client() {
        let rl = RateLimiter::new(1, 1);
        assert!(rl.allow("2001:db8:1:2::1".parse().unwrap(), 0));
        assert!(
            !rl.allow("2001:db8:1:2::ffff".parse().unwrap(), 0),
            "same /64"
        );
        assert!(
            rl.allow("2001:db8:1:3::1".parse().unwrap(), 0),
            "another /64"
        );
        assert!(rl.allow("10.0.0.2".parse().unwrap(), 0));
        assert!(
            rl.allow("::ffff:10.0.0.3".parse().unwrap(), 0),
            "mapped IPv4 is IPv4"
        );
        assert!(!rl.allow("10.0.0.3".parse().unwrap(), 0));
    }

    #[test]
    fn a_flood_of_sources_keeps_the_bucket_map_bounded() {
        let rl = RateLimiter::new(1, 1);
        for i in 0..(MAX_BUCKETS as u32 * 2) {
            rl.allow(IpAddr::from(i.to_be_bytes()), 0);
        }
        assert!(rl.buckets.len() <= MAX_BUCKETS + MAX_BUCKETS / 8);
    }
}
