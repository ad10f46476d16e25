//! The wire layer's hot path allocates nothing once its output buffers have
//! grown: a counting global allocator (this test binary only) watches every
//! view and rewrite run over the benchmark corpus.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dns64d::dns64::Prefix;
use dns64d::dns64::rules::synthesized_ttl;
use dns64d::wire::rewrite;
use dns64d::wire::{Message, rtype};

#[path = "../benches/wire/corpus.rs"]
mod corpus;

thread_local! {
    // `const`-initialised and without a destructor, so touching it from the
    // allocator never allocates or recurses.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// Counts allocations made by the current thread, then defers to `System`.
struct Counting;

// SAFETY: every method forwards to `System` unchanged; the counter is a
// thread-local `Cell` that needs no allocation. The library itself keeps
// `#![forbid(unsafe_code)]`; this test binary is the only place with unsafe,
// because measuring allocations requires a global allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Every operation once on `packet`, into the reused buffers.
fn run_all(packet: &[u8], prefixes: &[Prefix], out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> usize {
    let mut work = 0;
    let m = Message::parse(packet).unwrap();
    let s = m.classify();
    work += usize::from(s.a) + m.records().count();
    for r in m.records() {
        work += r.owner().wire_len();
        if let Some(n) = r.rdata_name(0) {
            work += n.wire_len();
        }
    }
    if let Some(end) = m.chain_end() {
        work += usize::from(end.eq_ignore_case(&m.question().unwrap().name));
        work += rewrite::synthesize_aaaa(
            &m,
            &end,
            prefixes,
            |t| synthesized_ttl(t, 600),
            |_, _| true,
            out,
        )
        .unwrap();
    }
    work += rewrite::strip_type(&m, rtype::A, out).unwrap();
    for limit in [512, 200] {
        scratch.clear();
        scratch.extend_from_slice(packet);
        work += usize::from(rewrite::truncate_udp(scratch, limit).unwrap());
    }
    scratch.clear();
    scratch.extend_from_slice(packet);
    rewrite::adjust_ttls(scratch, 10, 3600).unwrap();
    rewrite::set_edns(scratch, 1232, false, Some((22, "no reachable authority"))).unwrap();
    if let Some(q) = m.question() {
        let end = q.qtype_at + 4;
        rewrite::restore_question_case(scratch, &packet[12..end]).unwrap();
    }
    work + scratch.len()
}

#[test]
fn views_and_rewrites_allocate_nothing_once_buffers_have_grown() {
    let packets = corpus::all();
    let prefixes: Vec<Prefix> = ["64:ff9b::/96", "2001:db8:100::/40"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let mut out = Vec::with_capacity(4096);
    let mut scratch = Vec::with_capacity(4096);
    // Warm-up: buffers reach their final capacity.
    for (_, p) in &packets {
        run_all(p, &prefixes, &mut out, &mut scratch);
    }
    let before = allocations();
    let mut work = 0;
    for _ in 0..100 {
        for (_, p) in &packets {
            work += run_all(p, &prefixes, &mut out, &mut scratch);
        }
    }
    let after = allocations();
    assert!(work > 0);
    assert_eq!(after - before, 0, "allocations on the hot path");
    // The counter works: a Vec does allocate.
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(16));
    assert!(allocations() > after);
    drop(v);
}
