//! What the two cold-start benches (library level: `coldstart`; through
//! `wasmpod serve`: `serve_coldstart`) share: their arguments, the example
//! components, safetensors models generated at given sizes, the bulk-copy
//! bandwidth that bounds loading those, and the results table.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use wasmpod::gpu::{BackendChoice, WorkerDevices};
use wasmpod_tensor::{DType, Device};

use super::root;

/// Generated weights are `[ROWS, COLS]` f32, four per shard file.
pub const ROWS: usize = 4096;
pub const COLS: usize = 4096;
pub const WEIGHTS_PER_SHARD: usize = 4;
pub const WEIGHT_BYTES: usize = ROWS * COLS * 4;
pub const SHARD_BYTES: usize = WEIGHT_BYTES * WEIGHTS_PER_SHARD;

/// The arguments both benches take (see their headers).
pub struct ColdArgs {
    pub device: BackendChoice,
    pub sizes: Vec<u64>,
    pub repeats: usize,
    pub dir: PathBuf,
    /// `--gpus`, for the benches that take it (the endpoint's GPU types).
    pub gpus: Option<String>,
}

impl ColdArgs {
    pub fn cuda(&self) -> bool {
        self.device == BackendChoice::Cuda
    }
}

/// "1GiB", "512MiB" or a byte count.
pub fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("GiB") {
        (n, 1u64 << 30)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1 << 20)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().expect("sizes like 1GiB, 512MiB") * mult
}

/// The command line (and WASMPOD_COLDSTART_{DEVICE,SIZES,DIR}) of the bench
/// `bench`; `--gpus` is accepted only where `takes_gpus`.
pub fn cold_args(bench: &str, takes_gpus: bool) -> ColdArgs {
    let mut device = std::env::var("WASMPOD_COLDSTART_DEVICE").unwrap_or_else(|_| "cpu".into());
    let mut sizes = std::env::var("WASMPOD_COLDSTART_SIZES").unwrap_or_else(|_| "1GiB,8GiB".into());
    let mut dir = std::env::var("WASMPOD_COLDSTART_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/coldstart"));
    let mut repeats = 5;
    let mut gpus = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--device" => device = it.next().expect("--device cpu|cuda"),
            "--sizes" => sizes = it.next().expect("--sizes 1GiB,8GiB"),
            "--repeats" => repeats = it.next().expect("--repeats N").parse().expect("a number"),
            "--dir" => dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--gpus" if takes_gpus => gpus = Some(it.next().expect("--gpus H200,H100")),
            "--bench" => {}
            other => panic!("unknown argument {other}; see the header of benches/{bench}.rs"),
        }
    }
    let device = match device.as_str() {
        "cpu" => BackendChoice::Cpu,
        "cuda" => BackendChoice::Cuda,
        other => panic!("--device {other}: use cpu or cuda"),
    };
    let sizes = sizes
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_size)
        .collect();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // Endpoints name their models directory by absolute path.
    let dir = dir.canonicalize().unwrap();
    ColdArgs {
        device,
        sizes,
        repeats: repeats.max(1),
        dir,
        gpus,
    }
}

/// The example component `name`: from WASMPOD_COLDSTART_WASM (a directory
/// of prebuilt `example_<name>.wasm`, for machines without cargo) or built
/// now.
pub fn example_component(name: &str) -> Vec<u8> {
    if let Ok(dir) = std::env::var("WASMPOD_COLDSTART_WASM") {
        let path = Path::new(&dir).join(format!("example_{name}.wasm"));
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    std::fs::read(super::example_wasm(name)).unwrap()
}

/// The bytes a model generated for `bytes` holds: whole shards.
pub fn model_bytes(bytes: u64) -> u64 {
    (bytes as usize).div_ceil(SHARD_BYTES) as u64 * SHARD_BYTES as u64
}

/// Writes `bytes` of f32 weights as safetensors shards under `dir/big`
/// (kept across runs: a marker records the size written). Returns the
/// models directory (the parent of `big`).
pub fn generate_model(dir: &Path, bytes: u64) -> PathBuf {
    let models = dir.join(format!("models-{}MiB", bytes >> 20));
    let big = models.join("big");
    let marker = big.join(".complete");
    if marker.exists() {
        return models;
    }
    let _ = std::fs::remove_dir_all(&big);
    std::fs::create_dir_all(&big).unwrap();
    let shards = (bytes as usize).div_ceil(SHARD_BYTES);
    let mut data = vec![0f32; SHARD_BYTES / 4];
    eprintln!(
        "generating {shards} shard(s) of {} MiB under {}",
        SHARD_BYTES >> 20,
        big.display()
    );
    for shard in 0..shards {
        for (i, v) in data.iter_mut().enumerate() {
            // Distinct per shard and position, cheap to make.
            *v = ((i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(shard as u32 * 7919)
                % 2048) as f32
                / 1024.0
                - 1.0;
        }
        let bytes: &[u8] = bytemuck::cast_slice(&data);
        let views: Vec<(String, TensorView<'_>)> = (0..WEIGHTS_PER_SHARD)
            .map(|w| {
                let name = format!("layer{shard:04}.w{w}");
                let slice = &bytes[w * WEIGHT_BYTES..(w + 1) * WEIGHT_BYTES];
                (
                    name,
                    TensorView::new(Dtype::F32, vec![ROWS, COLS], slice).unwrap(),
                )
            })
            .collect();
        let path = big.join(format!("shard-{shard:04}.safetensors"));
        safetensors::tensor::serialize_to_file(views, None, &path).unwrap();
    }
    std::fs::write(&marker, bytes.to_string()).unwrap();
    models
}

/// Best bulk-copy bandwidth into `device` (bytes/s): pinned host-to-device
/// through the backend on a GPU; on the CPU a plain memcpy between two
/// already-faulted buffers (what a CPU "upload" can at best be).
pub fn bulk_bandwidth(device: &Device, cuda: bool) -> f64 {
    const LEN: usize = 512 << 20;
    let mut best = f64::MAX;
    if cuda {
        // The size of one generated weight, as page-in copies them.
        let mut small = device.host_buffer(WEIGHT_BYTES).unwrap();
        small.as_mut_slice().fill(1);
        let t = Instant::now();
        for _ in 0..16 {
            drop(
                device
                    .upload_host(DType::U8, &[WEIGHT_BYTES], &small)
                    .unwrap(),
            );
        }
        eprintln!(
            "pinned upload of {} MiB pieces: {:.1} GB/s",
            WEIGHT_BYTES >> 20,
            16.0 * WEIGHT_BYTES as f64 / t.elapsed().as_secs_f64() / 1e9
        );
        let mut buf = device.host_buffer(LEN).unwrap();
        buf.as_mut_slice().fill(1);
        for _ in 0..5 {
            let t = Instant::now();
            let up = device.upload_host(DType::U8, &[LEN], &buf).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            drop(up);
        }
    } else {
        let src = vec![1u8; LEN];
        let mut dst = vec![2u8; LEN];
        for _ in 0..5 {
            let t = Instant::now();
            dst.copy_from_slice(&src);
            std::hint::black_box(&dst);
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    LEN as f64 / best
}

/// [`bulk_bandwidth`] into the primary device of `devices`, said on stderr
/// with the device's name; returns (name, bytes/s).
pub fn device_bandwidth(devices: &WorkerDevices, cuda: bool) -> (String, f64) {
    let name = devices.infos().next().unwrap().name.clone();
    let bandwidth = bulk_bandwidth(devices.primary(), cuda);
    eprintln!(
        "device {name}: bulk copy {:.1} GB/s ({})",
        bandwidth / 1e9,
        if cuda {
            "pinned host-to-device"
        } else {
            "memcpy"
        }
    );
    (name, bandwidth)
}

/// The median and the fastest of `v` (not empty).
pub fn p50_min(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// One handler's line of the table: (p50, min) per mode, None where the
/// mode does not apply.
#[derive(Default, Clone)]
pub struct Row {
    pub name: String,
    /// Model bytes (0 without a model).
    pub bytes: u64,
    pub modes: Vec<Option<(Duration, Duration)>>,
}

/// The table's name of the bigmodel row for a model of `size` bytes.
pub fn bigmodel_row_name(size: u64) -> String {
    format!("bigmodel {} GiB", size as f64 / (1u64 << 30) as f64)
}

/// Prints the rows as a Markdown table: the four modes, the bound (bytes /
/// bulk copy) beside model rows and, with `ratio`, the last mode's p50
/// over that bound.
pub fn print_table(rows: &[Row], bandwidth: f64, ratio: bool) {
    let ratio_head = if ratio { " VRAM restore / bound |" } else { "" };
    println!(
        "| handler | nothing cached | code cached | + pre-initialised | + VRAM restore | bound (bytes / bulk copy) |{ratio_head}"
    );
    println!(
        "|---|---|---|---|---|---|{}",
        if ratio { "---|" } else { "" }
    );
    for row in rows {
        let cells: Vec<String> = row
            .modes
            .iter()
            .map(|m| match m {
                Some((p50, min)) => format!("{} ({})", fmt_ms(*p50), fmt_ms(*min)),
                None => "n/a (no VRAM state)".into(),
            })
            .collect();
        let bound = Duration::from_secs_f64(row.bytes as f64 / bandwidth);
        let (bound_cell, ratio_cell) = if row.bytes == 0 {
            ("—".to_string(), "—".to_string())
        } else {
            let last = row.modes.last().copied().flatten();
            (
                format!(
                    "{} ({:.2} GB at {:.1} GB/s)",
                    fmt_ms(bound),
                    row.bytes as f64 / 1e9,
                    bandwidth / 1e9
                ),
                last.map_or("—".into(), |(p50, _)| {
                    format!("{:.2}×", p50.as_secs_f64() / bound.as_secs_f64())
                }),
            )
        };
        let ratio_cell = if ratio {
            format!(" {ratio_cell} |")
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {bound_cell} |{ratio_cell}",
            row.name,
            cells.join(" | ")
        );
    }
}
