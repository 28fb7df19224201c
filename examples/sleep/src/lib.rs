//! `sleep`: sleeps `{"ms": M}` milliseconds and returns `{"slept_ms": M}`.
//!
//! It also misbehaves on request, so the host's fault handling can be
//! tested against a real component:
//! - `{"spin_ms": M}` busy-waits M ms on the CPU, returning `{"spun_ms": M}`;
//! - `{"forever": true}` loops forever without a single host call, which
//!   only an execution timeout (epoch interruption) can stop;
//! - `{"alloc_mb": N}` allocates and writes N MiB of linear memory, returning
//!   `{"allocated_mb": N}` (a memory bomb when N is over the cap);
//! - `{"panic": "msg"}` panics with `msg`, which traps the instance.
//!
//! Exactly one of these keys must be given.

use std::time::{Duration, Instant};

use serde::Deserialize;
use wasmpod_sdk::serde_json::{Value, json};

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Input {
    ms: Option<u64>,
    spin_ms: Option<u64>,
    forever: bool,
    alloc_mb: Option<usize>,
    panic: Option<String>,
}

const MIB: usize = 1 << 20;

fn spin_for(duration: Duration) {
    let start = Instant::now();
    let mut counter: u64 = 0;
    // Read the clock only every 4096 iterations so the loop is mostly pure
    // compute, like a real CPU-bound handler.
    while !counter.is_multiple_of(4096) || start.elapsed() < duration {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocate `mib` MiB in 1 MiB blocks and write every byte, so the memory
/// is really committed on the host, not just reserved.
fn allocate(mib: usize) -> usize {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        blocks.push(std::hint::black_box(vec![1u8; MIB]));
    }
    std::hint::black_box(&blocks).len()
}

fn handle(input: Input) -> Result<Value, String> {
    let given = [
        input.ms.is_some(),
        input.spin_ms.is_some(),
        input.forever,
        input.alloc_mb.is_some(),
        input.panic.is_some(),
    ]
    .into_iter()
    .filter(|&g| g)
    .count();
    if given != 1 {
        return Err(format!(
            "give exactly one of ms, spin_ms, forever (true), alloc_mb or panic; got {given}"
        ));
    }
    if let Some(message) = input.panic {
        panic!("{message}");
    }
    if input.forever {
        spin_forever();
    }
    if let Some(ms) = input.spin_ms {
        spin_for(Duration::from_millis(ms));
        return Ok(json!({ "spun_ms": ms }));
    }
    if let Some(mib) = input.alloc_mb {
        return Ok(json!({ "allocated_mb": allocate(mib) }));
    }
    let ms = input.ms.unwrap_or_default();
    std::thread::sleep(Duration::from_millis(ms));
    Ok(json!({ "slept_ms": ms }))
}

wasmpod_sdk::handler!(handle);
