//! The zero-copy wire layer against hickory-proto on the same packets, in the
//! same run, so the ratios survive a noisy machine. Per packet:
//! - `parse`: `wire::Message::parse` + `classify` (every name validated)
//!   beside `hickory Message::from_vec`;
//! - `synth_n1`, `synth_n4`: A response → synthesized AAAA response beside
//!   hickory decode + mutate + encode;
//! - `strip`: A (and RRSIG over A) removal beside the same in hickory;
//! - `tc_cut`: truncation to 512 octets beside hickory's pop-and-re-encode.
//!
//! Run: `cargo bench --bench wire`. Each criterion group has a
//! `wire/<packet>` and a `hickory/<packet>` function; after them, the same
//! pairs are measured interleaved (wire batch, hickory batch, repeat) and a
//! table of medians and ratios with per-operation geometric means is
//! printed — the number to read on a shared, noisy machine.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use hickory_proto::op::{Message as HMessage, Query as HQuery};
use hickory_proto::rr::rdata::AAAA;
use hickory_proto::rr::{RData, Record, RecordType};

use dns64d::dns64::Prefix;
use dns64d::dns64::rules::synthesized_ttl;
use dns64d::wire::rewrite;
use dns64d::wire::{Message, rtype};

#[path = "wire/corpus.rs"]
mod corpus;

/// hickory-proto's side of synthesis: what `dns64::Dns64::synthesize` does
/// to a decoded A response, reduced to the same output as the wire path.
fn hickory_synthesize(bytes: &[u8], prefixes: &[Prefix], cap: u32) -> Vec<u8> {
    let a = HMessage::from_vec(bytes).unwrap();
    let qname = a.queries[0].name().clone();
    let mut owner = qname.clone();
    for _ in 0..a.answers.len() {
        match a.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.name == owner => Some(c.0.clone()),
            _ => None,
        }) {
            Some(next) => owner = next,
            None => break,
        }
    }
    let mut out = HMessage::new(a.metadata.id, a.metadata.message_type, a.metadata.op_code);
    out.metadata = a.metadata;
    out.metadata.authoritative = false;
    out.metadata.authentic_data = false;
    out.metadata.truncation = false;
    out.add_query(HQuery::query(qname, RecordType::AAAA));
    out.answers = a
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::CNAME)
        .cloned()
        .collect();
    for p in prefixes {
        for r in &a.answers {
            if let RData::A(v4) = &r.data
                && r.name == owner
            {
                out.answers.push(Record::from_rdata(
                    r.name.clone(),
                    r.ttl.min(cap),
                    RData::AAAA(AAAA(p.embed(v4.0))),
                ));
            }
        }
    }
    out.edns = a.edns;
    out.to_vec().unwrap()
}

fn hickory_strip(bytes: &[u8]) -> Vec<u8> {
    let mut m = HMessage::from_vec(bytes).unwrap();
    for section in [&mut m.answers, &mut m.authorities, &mut m.additionals] {
        section.retain(|r| r.record_type() != RecordType::A);
    }
    m.to_vec().unwrap()
}

/// What `reply::Client::truncate` does: drop authority and additional,
/// then answers one by one until the encoding fits.
fn hickory_tc_cut(bytes: &[u8], limit: usize) -> Vec<u8> {
    let mut m = HMessage::from_vec(bytes).unwrap();
    m.metadata.truncation = true;
    m.authorities.clear();
    m.additionals.clear();
    loop {
        let b = m.to_vec().unwrap();
        if b.len() <= limit || m.answers.is_empty() {
            return b;
        }
        m.answers.pop();
    }
}

fn bench(c: &mut Criterion) {
    let packets = corpus::all();
    for (label, p) in &packets {
        eprintln!("packet {label}: {} octets", p.len());
    }

    let mut g = c.benchmark_group("parse");
    for (label, p) in &packets {
        g.bench_function(format!("wire/{label}"), |b| {
            b.iter(|| Message::parse(black_box(p)).unwrap().classify())
        });
        g.bench_function(format!("hickory/{label}"), |b| {
            b.iter(|| HMessage::from_vec(black_box(p)).unwrap())
        });
    }
    g.finish();

    let prefixes: [Prefix; 1] = ["64:ff9b::/96".parse().unwrap()];
    let mut out = Vec::with_capacity(4096);
    for (group, packet) in [
        ("synth_n1", corpus::one_a()),
        ("synth_n4", corpus::cname_and_a(4)),
    ] {
        let mut g = c.benchmark_group(group);
        g.bench_function("wire", |b| {
            b.iter(|| {
                let m = Message::parse(black_box(&packet)).unwrap();
                let owner = m.chain_end().unwrap();
                rewrite::synthesize_aaaa(
                    &m,
                    &owner,
                    &prefixes,
                    |t| synthesized_ttl(t, 600),
                    |_, _| true,
                    &mut out,
                )
                .unwrap();
                out.len()
            })
        });
        g.bench_function("hickory", |b| {
            b.iter(|| hickory_synthesize(black_box(&packet), &prefixes, 600).len())
        });
        g.finish();
    }

    let mut g = c.benchmark_group("strip");
    for (label, packet) in [
        ("cname_4a", corpus::cname_and_a(4)),
        ("large_1200", corpus::large_with_additional()),
    ] {
        g.bench_function(format!("wire/{label}"), |b| {
            b.iter(|| {
                let m = Message::parse(black_box(&packet)).unwrap();
                rewrite::strip_type(&m, rtype::A, &mut out).unwrap()
            })
        });
        g.bench_function(format!("hickory/{label}"), |b| {
            b.iter(|| hickory_strip(black_box(&packet)).len())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("tc_cut");
    let large = corpus::large_with_additional();
    g.bench_function("wire/large_1200", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&large));
            rewrite::truncate_udp(&mut out, 512).unwrap()
        })
    });
    g.bench_function("hickory/large_1200", |b| {
        b.iter(|| hickory_tc_cut(black_box(&large), 512).len())
    });
    g.finish();
}

/// Nanoseconds per call of `f`, over `iters` calls.
fn per_call(f: &mut dyn FnMut() -> usize, iters: u64) -> f64 {
    let start = Instant::now();
    let mut acc = 0usize;
    for _ in 0..iters {
        acc = acc.wrapping_add(f());
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Interleaved measurement: rounds of (wire batch, hickory batch) about
/// 2 ms each, so both sides see the same machine load; the ratio is the
/// median of the per-round ratios. Returns (wire ns, hickory ns, ratio).
fn paired(wire: &mut dyn FnMut() -> usize, hickory: &mut dyn FnMut() -> usize) -> (f64, f64, f64) {
    let calibrate = |f: &mut dyn FnMut() -> usize| {
        let ns = per_call(f, 200).max(1.0);
        ((2e6 / ns) as u64).clamp(20, 2_000_000)
    };
    let (wi, hi) = (calibrate(wire), calibrate(hickory));
    let (mut w, mut h, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..41 {
        let a = per_call(wire, wi);
        let b = per_call(hickory, hi);
        w.push(a);
        h.push(b);
        r.push(b / a);
    }
    (median(&mut w), median(&mut h), median(&mut r))
}

/// The same comparisons as the criterion groups, measured interleaved and
/// summarised with the geometric mean of the ratios per operation.
fn paired_report() {
    let packets = corpus::all();
    let prefixes: [Prefix; 1] = ["64:ff9b::/96".parse().unwrap()];
    let mut out = Vec::with_capacity(4096);
    let mut rows: Vec<(&str, String, (f64, f64, f64))> = Vec::new();
    for (label, p) in &packets {
        let r = paired(
            &mut || usize::from(Message::parse(black_box(p)).unwrap().classify().a),
            &mut || HMessage::from_vec(black_box(p)).unwrap().answers.len(),
        );
        rows.push(("parse", label.to_string(), r));
    }
    for (op, packet) in [
        ("synth_n1", corpus::one_a()),
        ("synth_n4", corpus::cname_and_a(4)),
    ] {
        let r = paired(
            &mut || {
                let m = Message::parse(black_box(&packet)).unwrap();
                let owner = m.chain_end().unwrap();
                rewrite::synthesize_aaaa(
                    &m,
                    &owner,
                    &prefixes,
                    |t| synthesized_ttl(t, 600),
                    |_, _| true,
                    &mut out,
                )
                .unwrap()
            },
            &mut || hickory_synthesize(black_box(&packet), &prefixes, 600).len(),
        );
        rows.push((op, "a_response".into(), r));
    }
    for (label, packet) in [
        ("cname_4a", corpus::cname_and_a(4)),
        ("large_1200", corpus::large_with_additional()),
    ] {
        let r = paired(
            &mut || {
                let m = Message::parse(black_box(&packet)).unwrap();
                rewrite::strip_type(&m, rtype::A, &mut out).unwrap()
            },
            &mut || hickory_strip(black_box(&packet)).len(),
        );
        rows.push(("strip", label.into(), r));
    }
    let large = corpus::large_with_additional();
    let r = paired(
        &mut || {
            out.clear();
            out.extend_from_slice(black_box(&large));
            usize::from(rewrite::truncate_udp(&mut out, 512).unwrap())
        },
        &mut || hickory_tc_cut(black_box(&large), 512).len(),
    );
    rows.push(("tc_cut", "large_1200".into(), r));

    println!("\ninterleaved medians (41 rounds of ~2 ms per side)");
    println!(
        "{:<9} {:<15} {:>10} {:>12} {:>8}",
        "op", "packet", "wire ns", "hickory ns", "ratio"
    );
    for (op, label, (w, h, r)) in &rows {
        println!("{op:<9} {label:<15} {w:>10.1} {h:>12.1} {r:>7.1}x");
    }
    let mut ops: Vec<&str> = rows.iter().map(|r| r.0).collect();
    ops.dedup();
    for op in ops {
        let rs: Vec<f64> = rows.iter().filter(|r| r.0 == op).map(|r| r.2.2).collect();
        let geomean = (rs.iter().map(|r| r.ln()).sum::<f64>() / rs.len() as f64).exp();
        println!(
            "{op:<9} geomean ratio {geomean:.1}x over {} packet(s)",
            rs.len()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs this binary with `--test`; `--list` lists.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    if !quick {
        paired_report();
    }
}
