//! Fuzz target: the message view and every rewrite over arbitrary bytes.
//! The checks (no panic, and every output re-parses with the promised
//! shape) live in `check.rs`, shared with the proptest in `tests/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::all(data));
