//! `stream`: streams `n` partial outputs `{"i": k}` (k = 0..n), each
//! followed by a progress update `{"done": k + 1, "total": n}`, then returns
//! `{"count": n}`. Shows [`wasmpod_sdk::stream`], [`wasmpod_sdk::progress`]
//! and [`wasmpod_sdk::cancelled`]: RunPod's generator handlers in wasmpod
//! terms. An optional `delay_ms` pauses between chunks, to watch them
//! arrive. It logs a line ([`wasmpod_sdk::info!`]) and prints one per chunk
//! to stdout: both land in the job's logs (`wasmpod logs stream`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    n: u32,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Serialize)]
struct Chunk {
    i: u32,
}

#[derive(Serialize)]
struct Progress {
    done: u32,
    total: u32,
}

#[derive(Serialize)]
struct Output {
    count: u32,
}

fn handle(input: Input) -> Result<Output, Box<dyn std::error::Error>> {
    wasmpod_sdk::info!("streaming {} chunk(s)", input.n);
    for i in 0..input.n {
        if wasmpod_sdk::cancelled() {
            return Err(format!("cancelled after {i} of {} chunks", input.n).into());
        }
        println!("chunk {i}");
        wasmpod_sdk::stream(&Chunk { i })?;
        wasmpod_sdk::progress(&Progress {
            done: i + 1,
            total: input.n,
        })?;
        if input.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(input.delay_ms));
        }
    }
    Ok(Output { count: input.n })
}

wasmpod_sdk::handler!(handle);
