//! Cache: the final answers dns64d gave (after synthesis and filtering), so a
//! hit is one lookup, one copy and a patch of ID, question case and TTLs.
//!
//! Synchronous; the clock is passed in. Keys carry everything that changes an
//! answer — lower-cased name, type, class, DO, CD, EDNS presence, and the
//! client's policy class (plain, or DNS64 under a given zone) — so a DNS64
//! client never gets a plain client's answer and the reverse.
//!
//! quick_cache provides the bounded, sharded map: S3-FIFO eviction by byte
//! weight, read-mostly shard locks, and lookups by a borrowed key, which a
//! hand-written LRU would have to match.
//!
//! Lifetimes: positive answers live for their smallest TTL, negative ones
//! (NXDOMAIN, NODATA) for the RFC 2308 §5 negative TTL, SERVFAIL for at most
//! `cache.servfail_ttl` (RFC 2308 §7); all clamped by the config. Expired
//! entries are kept up to `cache.stale_max_age` for serve-stale (RFC 8767).
//!
//! Rotation (`dns64.rotate`): the A and AAAA RRsets of an entry are found
//! once at insert (`wire::rewrite::rotation_runs`) and rotated by one record
//! per render, each group on its own (A; native AAAA; the AAAA of each
//! prefix), so `dns64.order` and the prefix order hold while every address
//! of a group comes first in turn.
//!
//! Data path position: between `policy` and `upstream`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::Cache as QuickCache;

use crate::config::CacheConfig;
use crate::types::Prefix;
use crate::wire::rewrite::{RotationRun, rotate_run, rotation_runs};
use crate::wire::{self, Header, Query, rcode, rtype};

/// Bytes of bookkeeping counted per entry on top of the answer itself.
const ENTRY_OVERHEAD: u64 = 128;

/// Prefetch: hits an entry needs before it is worth refreshing (a name asked
/// once, as in a flood of unique names, never is).
pub const PREFETCH_MIN_HITS: u32 = 3;

/// Prefetch: refreshes in flight at most, whatever the load.
pub const PREFETCH_MAX_INFLIGHT: usize = 32;

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A live answer.
    Fresh(Arc<Entry>),
    /// An expired answer still inside the serve-stale window.
    Stale(Arc<Entry>),
    /// Nothing usable.
    Miss,
}

/// What an answer counts for in the per-answer metrics
/// (`dns64d_synthesized_total`, `dns64d_a_records_stripped_total`): kept with
/// the entry so a cache hit counts as the resolution it repeats, as CoreDNS's
/// dns64 plugin counts every translated request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// The answer carries synthesized AAAA records.
    pub synthesized: bool,
    /// A records removed from it for a DNS64 client.
    pub a_stripped: u16,
}

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    /// The answer, then the offset of every TTL field in it (OPT excluded)
    /// as 16-bit big-endian numbers (a message is at most 64 KiB), then the
    /// rotation runs as three such numbers each: one allocation for all.
    data: Vec<u8>,
    answer_len: usize,
    /// Where the TTL offsets end and the rotation runs start in `data`.
    ttl_end: usize,
    /// Renders so far: the turn of the next rotation (wraps harmlessly).
    /// The hit already writes this cache line (the `Arc` count), so the
    /// increment costs no extra sharing.
    turns: AtomicU32,
    /// Offset of the OPT record's CLASS (the UDP payload size), if any:
    /// a hit patches it without walking the records again.
    opt_class_at: Option<u32>,
    stored: Instant,
    lifetime: Duration,
    tally: Tally,
    /// Fresh hits, counted up to [`PREFETCH_MIN_HITS`] only (past it, a hit
    /// reads the counter without writing the shared cache line).
    hits: AtomicU32,
    /// A prefetch of this entry was started: one per entry.
    prefetched: AtomicBool,
}

impl Entry {
    /// The answer as it should be sent at `now`: TTLs decremented by the
    /// entry's age (never below zero; as in Unbound, `cache.max_ttl` bounds
    /// how long the entry is kept, not the TTLs clients see), or set to
    /// `stale_ttl` when stale (RFC 8767 §4 recommends 30 s). ID, RD and
    /// question case are the caller's to patch.
    pub fn render(&self, now: Instant, stale_ttl: Option<u32>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.answer_len);
        self.render_into(now, stale_ttl, &mut out);
        out
    }

    /// [`Entry::render`] into `out` (cleared first), a buffer the caller
    /// reuses: a cache hit allocates nothing.
    pub fn render_into(&self, now: Instant, stale_ttl: Option<u32>, out: &mut Vec<u8>) {
        out.clear();
        let (answer, rest) = self.data.split_at(self.answer_len);
        let (ttl_at, runs) = rest.split_at(self.ttl_end - self.answer_len);
        out.extend_from_slice(answer);
        let age = now
            .saturating_duration_since(self.stored)
            .as_secs()
            .min(u64::from(u32::MAX)) as u32;
        for at in ttl_at.chunks_exact(2) {
            let at = usize::from(u16::from_be_bytes([at[0], at[1]]));
            let ttl = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
            let new = stale_ttl.unwrap_or_else(|| ttl.saturating_sub(age));
            out[at..at + 4].copy_from_slice(&new.to_be_bytes());
        }
        if !runs.is_empty() {
            // The stored answer went out as it is (turn 0) when it was
            // resolved; the first hit starts at turn 1.
            let turn = self.turns.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            for r in runs.chunks_exact(6) {
                let n = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]);
                let run = RotationRun {
                    start: n(0),
                    record_len: n(2),
                    count: n(4),
                };
                rotate_run(out, run, turn);
            }
        }
    }

    /// What the answer counts for in the per-answer metrics.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Offset of the OPT record's CLASS field in the rendered answer.
    pub fn opt_class_at(&self) -> Option<usize> {
        self.opt_class_at.map(|at| at as usize)
    }
}

/// The cache key. Fixed size so a lookup builds it on the stack.
#[derive(Clone)]
pub struct Key {
    name_len: u8,
    name: [u8; wire::MAX_NAME_LEN],
    qtype: u16,
    qclass: u16,
    /// DO, CD, EDNS present.
    flags: u8,
    /// 0: plain client; 1 + n: DNS64 client under zone rule n (0 = no zone).
    class: u16,
}

impl Key {
    /// The key of `query` for a client of policy class `class`; `None` when
    /// the name is longer than a key holds (cannot happen for a valid query).
    pub fn new(query: &Query<'_>, class: u16) -> Option<Key> {
        let qname = query.qname();
        if qname.len() > wire::MAX_NAME_LEN {
            return None;
        }
        let mut name = [0u8; wire::MAX_NAME_LEN];
        for (d, s) in name.iter_mut().zip(qname) {
            *d = s.to_ascii_lowercase();
        }
        let flags = u8::from(query.dnssec_ok())
            | u8::from(query.header().cd()) << 1
            | u8::from(query.edns.is_some()) << 2;
        Some(Key {
            name_len: qname.len() as u8,
            name,
            qtype: query.qtype,
            qclass: query.qclass,
            flags,
            class,
        })
    }

    fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len)]
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        self.name() == o.name()
            && self.qtype == o.qtype
            && self.qclass == o.qclass
            && self.flags == o.flags
            && self.class == o.class
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_key(
            self.name(),
            (self.qtype, self.qclass, self.flags, self.class),
            h,
        );
    }
}

/// A key as the cache holds it: the name on the heap, only as long as it is
/// (a [`Key`] reserves the longest possible name so lookups need no heap;
/// stored that way, 20k entries would spend 5 MB on empty name space).
#[derive(Clone, PartialEq, Eq)]
struct StoredKey {
    name: Box<[u8]>,
    rest: (u16, u16, u8, u16),
}

impl From<&Key> for StoredKey {
    fn from(k: &Key) -> Self {
        StoredKey {
            name: k.name().into(),
            rest: (k.qtype, k.qclass, k.flags, k.class),
        }
    }
}

impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_key(&self.name, self.rest, h);
    }
}

/// The one hash of both key forms: a lookup by [`Key`] must find a [`StoredKey`].
fn hash_key<H: Hasher>(name: &[u8], rest: (u16, u16, u8, u16), h: &mut H) {
    name.hash(h);
    rest.hash(h);
}

impl quick_cache::Equivalent<StoredKey> for Key {
    fn equivalent(&self, k: &StoredKey) -> bool {
        self.name() == &*k.name && (self.qtype, self.qclass, self.flags, self.class) == k.rest
    }
}

/// Weighs entries by the bytes they hold, so `cache.max_bytes` bounds memory.
#[derive(Debug, Clone, Copy)]
struct ByBytes;

impl Weighter<StoredKey, Arc<Entry>> for ByBytes {
    fn weight(&self, key: &StoredKey, e: &Arc<Entry>) -> u64 {
        e.data.capacity() as u64
            + key.name.len() as u64
            + std::mem::size_of::<StoredKey>() as u64
            + ENTRY_OVERHEAD
    }
}

/// The answer cache.
pub struct Cache {
    map: QuickCache<StoredKey, Arc<Entry>, ByBytes>,
    cfg: CacheConfig,
    /// `Some` when entries rotate (`dns64.rotate`): the prefixes whose
    /// AAAA form a group each (configured order), apart from native ones.
    rotate: Option<Vec<Prefix>>,
    /// Prefetches in flight.
    prefetching: AtomicUsize,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.map.len())
            .finish()
    }
}

impl Cache {
    /// A cache sized by `cache.size` (entries) and `cache.max_bytes`.
    pub fn new(cfg: &CacheConfig) -> Cache {
        Cache {
            map: QuickCache::with_weighter(cfg.size, cfg.max_bytes, ByBytes),
            cfg: cfg.clone(),
            rotate: None,
            prefetching: AtomicUsize::new(0),
        }
    }

    /// Rotates the A and AAAA RRsets of every entry stored from now on
    /// (`dns64.rotate`), the AAAA inside each of `prefixes` as a group of
    /// their own, apart from native ones.
    pub fn rotating(mut self, prefixes: Vec<Prefix>) -> Cache {
        self.rotate = Some(prefixes);
        self
    }

    /// The rotation group of a record: A, native AAAA, or the AAAA of one
    /// prefix; `None` for any other type (never rotated).
    fn group(prefixes: &[Prefix], rtype: u16, rdata: &[u8]) -> Option<u16> {
        match (rtype, rdata.len()) {
            (rtype::A, 4) => Some(0),
            (rtype::AAAA, 16) => {
                let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(rdata).ok()?);
                let inside = prefixes.iter().position(|p| p.net().contains(&v6));
                Some(inside.map_or(1, |i| 2 + i as u16))
            }
            _ => None,
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Bytes held now (the eviction weight).
    pub fn weight(&self) -> u64 {
        self.map.weight()
    }

    /// Looks `key` up at `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Lookup {
        let Some(e) = self.map.get(key) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(e.stored);
        if age < e.lifetime {
            Lookup::Fresh(e)
        } else if self.cfg.serve_stale && age < e.lifetime + self.cfg.stale_max_age {
            Lookup::Stale(e)
        } else {
            Lookup::Miss
        }
    }

    /// Stores `answer` (a full, untruncated reply) if it may be cached, with
    /// what it counted for when resolved.
    pub fn insert(&self, key: Key, answer: &[u8], now: Instant, tally: Tally) {
        let Some(h) = Header::new(answer) else {
            return;
        };
        let records =
            usize::from(h.ancount()) + usize::from(h.nscount()) + usize::from(h.arcount());
        // Room for the runs too (at most one per two answers): one allocation.
        let runs = if self.rotate.is_some() {
            6 * (usize::from(h.ancount()) / 2)
        } else {
            0
        };
        let mut data = Vec::with_capacity(answer.len() + 2 * records + runs);
        data.extend_from_slice(answer);
        let Some((opt_class_at, lifetime)) = self.lifetime(answer, &mut data) else {
            return;
        };
        if lifetime.is_zero() {
            return;
        }
        let ttl_end = data.len();
        if let Some(prefixes) = &self.rotate {
            rotation_runs(
                answer,
                |t, rdata| Cache::group(prefixes, t, rdata),
                |r| {
                    for n in [r.start, r.record_len, r.count] {
                        data.extend_from_slice(&n.to_be_bytes());
                    }
                },
            );
        }
        let entry = Entry {
            data,
            answer_len: answer.len(),
            ttl_end,
            turns: AtomicU32::new(0),
            opt_class_at,
            stored: now,
            lifetime,
            tally,
            hits: AtomicU32::new(0),
            prefetched: AtomicBool::new(false),
        };
        self.map.insert(StoredKey::from(&key), Arc::new(entry));
    }

    /// The OPT CLASS offset and how long the answer may be served (RFC 2308
    /// §5, §7); appends the TTL offsets to `ttl_at` (see [`Entry`]).
    fn lifetime(&self, answer: &[u8], ttl_at: &mut Vec<u8>) -> Option<(Option<u32>, Duration)> {
        let h = Header::new(answer)?;
        if h.tc() {
            return None;
        }
        let rc = h.rcode();
        let mut pos = wire::question_end(answer).ok()?;
        let mut opt_class_at = None;
        let (mut min_ttl, mut soa_neg, mut answers) = (u32::MAX, None, 0u16);
        let counts = [h.ancount(), h.nscount(), h.arcount()];
        for (section, &n) in counts.iter().enumerate() {
            for _ in 0..n {
                let rr = wire::Record::read(answer, pos).ok()?;
                if rr.rtype == rtype::OPT {
                    opt_class_at = Some(rr.ttl_at as u32 - 2);
                } else {
                    let ttl = u32::from_be_bytes(answer[rr.ttl_at..rr.ttl_at + 4].try_into().ok()?);
                    ttl_at.extend_from_slice(&u16::try_from(rr.ttl_at).ok()?.to_be_bytes());
                    min_ttl = min_ttl.min(ttl);
                    answers += u16::from(section == 0);
                    if section == 1 && rr.rtype == rtype::SOA {
                        // SOA MINIMUM is the last 4 RDATA octets.
                        let m = &answer[rr.rdata.1.checked_sub(4)?..rr.rdata.1];
                        soa_neg = Some(ttl.min(u32::from_be_bytes(m.try_into().ok()?)));
                    }
                }
                pos = rr.end();
            }
        }
        let c = &self.cfg;
        let negative = rc == rcode::NXDOMAIN || (rc == rcode::NOERROR && answers == 0);
        let secs = match rc {
            rcode::SERVFAIL => c.servfail_ttl,
            _ if negative => soa_neg?.min(c.negative_max_ttl).max(c.min_ttl),
            rcode::NOERROR => min_ttl.min(c.max_ttl).max(c.min_ttl),
            _ => return None,
        };
        Some((opt_class_at, Duration::from_secs(u64::from(secs))))
    }

    /// On a fresh hit of `e` at `now`: true when this hit should refresh the
    /// entry in the background (`cache.prefetch`), so that clients never wait
    /// on its expiry. Bounded: the entry was hit [`PREFETCH_MIN_HITS`] times,
    /// is in the last 10% of its lifetime, has no prefetch started yet, and
    /// fewer than [`PREFETCH_MAX_INFLIGHT`] run. A `true` must be followed
    /// by [`Cache::prefetch_done`]. No allocation: a few atomics.
    #[inline]
    pub fn should_prefetch(&self, e: &Entry, now: Instant) -> bool {
        if !self.cfg.prefetch {
            return false;
        }
        if e.hits.load(Ordering::Relaxed) < PREFETCH_MIN_HITS {
            e.hits.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let age = now.saturating_duration_since(e.stored);
        // Last 10%: age ≥ 0.9 × lifetime, in integer arithmetic.
        if age.saturating_mul(10) < e.lifetime.saturating_mul(9)
            || e.prefetched.load(Ordering::Relaxed)
            || e.prefetched.swap(true, Ordering::Relaxed)
        {
            return false;
        }
        if self.prefetching.fetch_add(1, Ordering::Relaxed) >= PREFETCH_MAX_INFLIGHT {
            self.prefetching.fetch_sub(1, Ordering::Relaxed);
            // Another hit may try again once the others finish.
            e.prefetched.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A prefetch [`Cache::should_prefetch`] allowed has finished.
    pub fn prefetch_done(&self) {
        self.prefetching.fetch_sub(1, Ordering::Relaxed);
    }

    /// RFC 8767 §4: TTL of a stale answer.
    pub fn stale_ttl(&self) -> u32 {
        self.cfg.stale_ttl
    }

    /// RFC 8767 §5 client response timer: how long resolution may take
    /// before a stale answer is sent instead.
    pub fn stale_answer_after(&self) -> Duration {
        self.cfg.stale_answer_after
    }
}

#[cfg(test)]
mod tests;
