//! `diffusion`: a small UNet denoiser (residual conv blocks with group
//! norm, down- and upsampling, self-attention at the lowest resolution,
//! sinusoidal timestep embeddings) run in a DDIM sampler loop inside the
//! handler, all on host tensor ops. The weights come from the model
//! "diffusion" (`make_model.py` writes random ones; the parameter names are
//! those of `reference_torch.py`, the same network in PyTorch).
//!
//! A job `{"seed": 0, "steps": 20, "batch": 1, "size": 64}` draws latents
//! `[batch, 4, size, size]` from the seed (Philox on the device, so the same
//! seed gives the same image on every device), denoises them with `steps`
//! DDIM steps (eta 0), reporting progress after each step, and returns the
//! images as base64 PNGs: the latents mapped to RGB by the model's linear
//! `decoder` (as ComfyUI's latent previews do). Options: `dtype` (`f32`,
//! `f16`, `bf16`), `layout` (`nhwc`, default, or `nchw`), `graph` (record one
//! step and replay it: one host call per step on a GPU), `attention`
//! (`fused`, default: the `attention` op; `matmul`: matmul, softmax,
//! matmul), `benchmark` (`{"runs": 3}`: time the step loop in the guest,
//! without progress reports). `{"denoise_step": {"t": 500}, "seed": 1}`
//! instead runs the network once on the seed's latents and returns them
//! and the predicted noise (base64 f32, NCHW), for checking against a
//! reference.

use std::sync::Mutex;
use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use wasmpod_sdk::{
    Activation, AttentionOptions, ConvParams, DType, Layout, Model, ModelError, Tensor, TensorError,
};

#[derive(Debug, thiserror::Error)]
enum DiffusionError {
    #[error("model diffusion: {0}")]
    Model(#[from] ModelError),
    #[error("model diffusion: {0}")]
    Config(String),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("encoding the image: {0}")]
    Png(String),
    #[error("the model is not loaded (init did not run)")]
    NotLoaded,
}

type Result<T, E = DiffusionError> = std::result::Result<T, E>;

/// The network's shape and the noise schedule (the model's config.json).
#[derive(Deserialize, Clone)]
#[serde(default)]
struct Config {
    in_channels: u32,
    channels: u32,
    mult: Vec<u32>,
    attention: Vec<bool>,
    groups: u32,
    train_steps: u32,
    beta_start: f64,
    beta_end: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            in_channels: 4,
            channels: 64,
            mult: vec![1, 2, 2],
            attention: vec![false, false, true],
            groups: 32,
            train_steps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
        }
    }
}

const EPS: f32 = 1e-5;

/// Weights laid out for one dtype and layout.
struct Conv {
    w: Tensor,
    b: Tensor,
    params: ConvParams,
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Linear {
    w: Tensor,
    b: Tensor,
}

struct ResBlock {
    norm1: Norm,
    conv1: Conv,
    /// The timestep projection, its bias already including conv1's (the
    /// batch shares one timestep, so the sum is conv1's bias for the step).
    temb: Linear,
    norm2: Norm,
    conv2: Conv,
    skip: Option<Conv>,
}

struct Attn {
    norm: Norm,
    /// q (scaled by 1/√C at load), k, v.
    qkv: [Linear; 3],
    proj: Linear,
}

struct Level {
    res: ResBlock,
    attn: Option<Attn>,
    resample: Option<Conv>,
}

struct Net {
    layout: Layout,
    dtype: DType,
    channels: u32,
    groups: u32,
    freqs: Tensor,
    time1: Linear,
    time2: Linear,
    conv_in: Conv,
    down: Vec<Level>,
    mid: (ResBlock, Attn, ResBlock),
    up: Vec<Level>,
    out_norm: Norm,
    out_conv: Conv,
    decoder: Linear,
}

struct State {
    model: Model,
    config: Config,
    nets: Vec<((DType, Layout), Net)>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

struct Loader<'a> {
    model: &'a Model,
    layout: Layout,
    dtype: DType,
}

impl Loader<'_> {
    fn weight(&self, name: &str) -> Result<Tensor> {
        Ok(self.model.weight(name)?)
    }

    fn conv(&self, name: &str, stride: u32) -> Result<Conv> {
        let w = self.weight(&format!("{name}.weight"))?;
        let shape = w.shape();
        let &[_, _, kh, _] = shape.as_slice() else {
            return Err(DiffusionError::Config(format!(
                "{name}.weight has shape {shape:?}, expected [out, in, kh, kw]"
            )));
        };
        let w = match self.layout {
            Layout::Nhwc => w.permute(&[0, 2, 3, 1])?,
            Layout::Nchw => w,
        };
        let params = ConvParams::default()
            .stride(stride)
            .padding(kh / 2)
            .layout(self.layout);
        Ok(Conv {
            w: w.cast(self.dtype)?,
            b: self.weight(&format!("{name}.bias"))?.cast(self.dtype)?,
            params,
        })
    }

    fn norm(&self, name: &str) -> Result<Norm> {
        Ok(Norm {
            w: self.weight(&format!("{name}.weight"))?.cast(self.dtype)?,
            b: self.weight(&format!("{name}.bias"))?.cast(self.dtype)?,
        })
    }

    fn linear(&self, name: &str) -> Result<Linear> {
        Ok(Linear {
            w: self.weight(&format!("{name}.weight"))?.cast(self.dtype)?,
            b: self.weight(&format!("{name}.bias"))?.cast(self.dtype)?,
        })
    }

    fn res(&self, name: &str) -> Result<ResBlock> {
        let conv1 = self.conv(&format!("{name}.conv1"), 1)?;
        let temb_b = self.weight(&format!("{name}.temb.bias"))?;
        let conv1_b = self.weight(&format!("{name}.conv1.bias"))?;
        let temb = Linear {
            w: self
                .weight(&format!("{name}.temb.weight"))?
                .cast(self.dtype)?,
            b: temb_b.add(&conv1_b)?.cast(self.dtype)?,
        };
        let has_skip = self
            .model
            .weights()
            .iter()
            .any(|w| w.name == format!("{name}.skip.weight"));
        Ok(ResBlock {
            norm1: self.norm(&format!("{name}.norm1"))?,
            conv1,
            temb,
            norm2: self.norm(&format!("{name}.norm2"))?,
            conv2: self.conv(&format!("{name}.conv2"), 1)?,
            skip: if has_skip {
                Some(self.conv(&format!("{name}.skip"), 1)?)
            } else {
                None
            },
        })
    }

    fn attn(&self, name: &str, channels: u32) -> Result<Attn> {
        let scale = 1.0 / (channels as f32).sqrt();
        let q = Linear {
            w: self
                .weight(&format!("{name}.q.weight"))?
                .scale(scale, 0.0)?
                .cast(self.dtype)?,
            b: self
                .weight(&format!("{name}.q.bias"))?
                .scale(scale, 0.0)?
                .cast(self.dtype)?,
        };
        Ok(Attn {
            norm: self.norm(&format!("{name}.norm"))?,
            qkv: [
                q,
                self.linear(&format!("{name}.k"))?,
                self.linear(&format!("{name}.v"))?,
            ],
            proj: self.linear(&format!("{name}.proj"))?,
        })
    }
}

fn build(model: &Model, c: &Config, layout: Layout, dtype: DType) -> Result<Net> {
    if c.mult.is_empty() || c.attention.len() != c.mult.len() || !c.channels.is_multiple_of(2) {
        return Err(DiffusionError::Config(
            "config.json: `mult` and `attention` need one entry per level, `channels` must be even"
                .into(),
        ));
    }
    let l = Loader {
        model,
        layout,
        dtype,
    };
    let levels = c.mult.len();
    let down = (0..levels)
        .map(|i| {
            Ok(Level {
                res: l.res(&format!("down.{i}.res"))?,
                attn: if c.attention[i] {
                    Some(l.attn(&format!("down.{i}.attn"), c.channels * c.mult[i])?)
                } else {
                    None
                },
                resample: if i + 1 < levels {
                    Some(l.conv(&format!("down.{i}.down"), 2)?)
                } else {
                    None
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let up = (0..levels)
        .rev()
        .map(|i| {
            Ok(Level {
                res: l.res(&format!("up.{i}.res"))?,
                attn: if c.attention[i] {
                    Some(l.attn(&format!("up.{i}.attn"), c.channels * c.mult[i])?)
                } else {
                    None
                },
                resample: if i > 0 {
                    Some(l.conv(&format!("up.{i}.up"), 1)?)
                } else {
                    None
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let top = c.channels * c.mult[levels - 1];
    let half = c.channels / 2;
    // exp(-ln(10000) · i / half), i < half
    let freqs = Tensor::arange(DType::F32, 0.0, half as f64, 1.0)?
        .scale(-(10000f32.ln()) / half as f32, 0.0)?
        .exp()?;
    Ok(Net {
        layout,
        dtype,
        channels: c.channels,
        groups: c.groups,
        freqs,
        time1: l.linear("time_mlp.0")?,
        time2: l.linear("time_mlp.2")?,
        conv_in: l.conv("conv_in", 1)?,
        down,
        mid: (
            l.res("mid.res1")?,
            l.attn("mid.attn", top)?,
            l.res("mid.res2")?,
        ),
        up,
        out_norm: l.norm("out_norm")?,
        out_conv: l.conv("out_conv", 1)?,
        decoder: l.linear("decoder")?,
    })
}

/// How a step computes attention.
#[derive(Clone, Copy, PartialEq)]
enum AttentionImpl {
    Fused,
    Matmul,
}

impl Net {
    fn channel_axis(&self) -> i32 {
        match self.layout {
            Layout::Nhwc => 3,
            Layout::Nchw => 1,
        }
    }

    fn gn(&self, x: &Tensor, n: &Norm, act: Activation) -> Result<Tensor> {
        Ok(x.group_norm(self.groups, Some(&n.w), Some(&n.b), EPS, self.layout, act)?)
    }

    fn res(&self, x: &Tensor, b: &ResBlock, temb: &Tensor) -> Result<Tensor> {
        let h = self.gn(x, &b.norm1, Activation::Silu)?;
        // conv1's bias for this step: its own plus the timestep projection.
        let bias = temb
            .linear(&b.temb.w, Some(&b.temb.b), None)?
            .reshape(&[-1])?;
        let h = h.conv2d_fused(
            &b.conv1.w,
            Some(&bias),
            None,
            Activation::None,
            &b.conv1.params,
        )?;
        let h = self.gn(&h, &b.norm2, Activation::Silu)?;
        let skip = match &b.skip {
            Some(s) => Some(x.conv2d(&s.w, Some(&s.b), &s.params)?),
            None => None,
        };
        Ok(h.conv2d_fused(
            &b.conv2.w,
            Some(&b.conv2.b),
            Some(skip.as_ref().unwrap_or(x)),
            Activation::None,
            &b.conv2.params,
        )?)
    }

    fn attn(&self, x: &Tensor, a: &Attn, how: AttentionImpl) -> Result<Tensor> {
        let s = x.shape();
        let (n, c, h, w) = match self.layout {
            Layout::Nhwc => (s[0], s[3], s[1], s[2]),
            Layout::Nchw => (s[0], s[1], s[2], s[3]),
        };
        let tokens = |t: &Tensor| -> Result<Tensor> {
            Ok(match self.layout {
                Layout::Nhwc => t.reshape(&[n as i64, (h * w) as i64, c as i64])?,
                Layout::Nchw => t
                    .reshape(&[n as i64, c as i64, (h * w) as i64])?
                    .transpose(1, 2)?,
            })
        };
        let hn = tokens(&self.gn(x, &a.norm, Activation::None)?)?;
        let ws: Vec<&Tensor> = a.qkv.iter().map(|l| &l.w).collect();
        let bs: Vec<&Tensor> = a.qkv.iter().map(|l| &l.b).collect();
        let qkv = hn.linear_many(&ws, &bs)?;
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let o = match how {
            AttentionImpl::Fused => {
                let heads = |t: &Tensor| t.reshape(&[n as i64, (h * w) as i64, 1, c as i64]);
                // The 1/√C scale is folded into q's weights.
                let options = AttentionOptions {
                    causal: false,
                    scale: Some(1.0),
                    window: None,
                };
                heads(q)?
                    .attention(&heads(k)?, &heads(v)?, &options, None, None)?
                    .reshape(&[n as i64, (h * w) as i64, c as i64])?
            }
            AttentionImpl::Matmul => q.matmul(&k.transpose(1, 2)?)?.softmax(-1)?.matmul(v)?,
        };
        let residual = tokens(x)?;
        let out = o.linear(&a.proj.w, Some(&a.proj.b), Some(&residual))?;
        Ok(match self.layout {
            Layout::Nhwc => out.reshape(&[n as i64, h as i64, w as i64, c as i64])?,
            Layout::Nchw => out
                .transpose(1, 2)?
                .reshape(&[n as i64, c as i64, h as i64, w as i64])?,
        })
    }

    /// The predicted noise for latents `x` at timestep `t` (`[1]`, f32).
    fn eps(&self, x: &Tensor, t: &Tensor, how: AttentionImpl) -> Result<Tensor> {
        let args = self.freqs.mul(t)?;
        let emb = Tensor::concat(&[&args.sin()?, &args.cos()?], 0)?
            .reshape(&[1, self.channels as i64])?
            .cast(self.dtype)?;
        let temb = emb
            .linear(&self.time1.w, Some(&self.time1.b), None)?
            .silu()?;
        let temb = temb
            .linear(&self.time2.w, Some(&self.time2.b), None)?
            .silu()?;
        let mut h = x.conv2d(&self.conv_in.w, Some(&self.conv_in.b), &self.conv_in.params)?;
        let mut skips = Vec::new();
        for level in &self.down {
            h = self.res(&h, &level.res, &temb)?;
            if let Some(a) = &level.attn {
                h = self.attn(&h, a, how)?;
            }
            match &level.resample {
                Some(d) => {
                    let down = h.conv2d(&d.w, Some(&d.b), &d.params)?;
                    skips.push(std::mem::replace(&mut h, down));
                }
                // The lowest level's output is both its skip and the middle's input.
                None => skips.push(alias(&h)?),
            }
        }
        h = self.res(&h, &self.mid.0, &temb)?;
        h = self.attn(&h, &self.mid.1, how)?;
        h = self.res(&h, &self.mid.2, &temb)?;
        for level in &self.up {
            let skip = skips.pop().expect("one skip per level");
            h = Tensor::concat(&[&h, &skip], self.channel_axis())?;
            h = self.res(&h, &level.res, &temb)?;
            if let Some(a) = &level.attn {
                h = self.attn(&h, a, how)?;
            }
            if let Some(u) = &level.resample {
                let s = h.shape();
                let (hh, ww) = match self.layout {
                    Layout::Nhwc => (s[1], s[2]),
                    Layout::Nchw => (s[2], s[3]),
                };
                h = h.upsample_nearest((hh * 2, ww * 2), self.layout)?;
                h = h.conv2d(&u.w, Some(&u.b), &u.params)?;
            }
        }
        let h = self.gn(&h, &self.out_norm, Activation::Silu)?;
        Ok(h.conv2d(
            &self.out_conv.w,
            Some(&self.out_conv.b),
            &self.out_conv.params,
        )?)
    }

    /// One DDIM step: `p` holds `[t, c1, c2]` (f32) and the result is
    /// `c1·x + c2·eps(x, t)`.
    fn step(&self, x: &Tensor, p: &Tensor, how: AttentionImpl) -> Result<Tensor> {
        let t = p.slice(0, 0, 1)?;
        let c1 = p.slice(0, 1, 2)?.cast(self.dtype)?;
        let c2 = p.slice(0, 2, 3)?.cast(self.dtype)?;
        let eps = self.eps(x, &t, how)?;
        Ok(x.mul(&c1)?.add(&eps.mul(&c2)?)?)
    }

    /// Latents in NCHW order, whatever the layout.
    fn to_nchw(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.layout {
            Layout::Nhwc => x.permute(&[0, 3, 1, 2])?,
            Layout::Nchw => alias(x)?,
        })
    }

    /// RGB PNGs of the latents through the linear decoder.
    fn images(&self, x: &Tensor) -> Result<Vec<String>> {
        let nhwc = match self.layout {
            Layout::Nhwc => alias(x)?,
            Layout::Nchw => x.permute(&[0, 2, 3, 1])?,
        };
        let rgb = nhwc
            .linear(&self.decoder.w, Some(&self.decoder.b), None)?
            .cast(DType::F32)?
            .clamp(Some(-1.0), Some(1.0))?
            .scale(127.5, 127.5)?
            .cast(DType::U8)?;
        let s = rgb.shape();
        let bytes = rgb.to_bytes()?;
        let per = (s[1] * s[2] * 3) as usize;
        bytes.chunks(per).map(|img| png(img, s[2], s[1])).collect()
    }
}

/// A second handle to `t`'s data (a reshape to its own shape shares it).
fn alias(t: &Tensor) -> Result<Tensor> {
    Ok(t.reshape(&t.shape().iter().map(|&d| d as i64).collect::<Vec<_>>())?)
}

fn png(rgb: &[u8], width: u32, height: u32) -> Result<String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| DiffusionError::Png(e.to_string()))?;
        w.write_image_data(rgb)
            .map_err(|e| DiffusionError::Png(e.to_string()))?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// ᾱ_t of the linear beta schedule.
fn alphas_cumprod(c: &Config) -> Vec<f64> {
    let n = c.train_steps as usize;
    let mut acc = 1.0;
    (0..n)
        .map(|i| {
            let beta =
                c.beta_start + (c.beta_end - c.beta_start) * i as f64 / (n - 1).max(1) as f64;
            acc *= 1.0 - beta;
            acc
        })
        .collect()
}

/// `[t, c1, c2]` per DDIM step (eta 0), from the noisiest timestep down.
fn schedule(c: &Config, steps: u32) -> Vec<[f32; 3]> {
    let a = alphas_cumprod(c);
    let stride = (c.train_steps / steps).max(1);
    let ts: Vec<u32> = (0..steps).map(|i| i * stride).rev().collect();
    ts.iter()
        .map(|&t| {
            let at = a[t as usize];
            let prev = if t >= stride {
                a[(t - stride) as usize]
            } else {
                1.0
            };
            let c1 = (prev / at).sqrt();
            let c2 = (1.0 - prev).sqrt() - (prev * (1.0 - at) / at).sqrt();
            [t as f32, c1 as f32, c2 as f32]
        })
        .collect()
}

fn init() -> Result<()> {
    let model = Model::open("diffusion")?;
    let config = if model.files().iter().any(|f| f == "config.json") {
        serde_json::from_str(&model.read_to_string("config.json")?)
            .map_err(|e| DiffusionError::Config(format!("config.json: {e}")))?
    } else {
        Config::default()
    };
    *STATE.lock().unwrap_or_else(|p| p.into_inner()) = Some(State {
        model,
        config,
        nets: Vec::new(),
    });
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DenoiseStep {
    t: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bench {
    #[serde(default = "default_runs")]
    runs: u32,
}

fn default_runs() -> u32 {
    3
}
fn default_steps() -> u32 {
    20
}
fn default_batch() -> u32 {
    1
}
fn default_size() -> u32 {
    64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_steps")]
    steps: u32,
    #[serde(default = "default_batch")]
    batch: u32,
    #[serde(default = "default_size")]
    size: u32,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    layout: Option<String>,
    #[serde(default)]
    graph: bool,
    #[serde(default)]
    attention: Option<String>,
    #[serde(default)]
    benchmark: Option<Bench>,
    #[serde(default)]
    denoise_step: Option<DenoiseStep>,
}

#[derive(Serialize)]
struct BenchOut {
    batch: u32,
    size: u32,
    steps: u32,
    dtype: String,
    layout: String,
    graph: bool,
    runs: u32,
    median_s: f64,
    steps_per_s: f64,
}

#[derive(Serialize, Default)]
struct Output {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<String>,
    seed: u64,
    steps: u32,
    /// Shape of `x` and `eps` (NCHW).
    #[serde(skip_serializing_if = "Option::is_none")]
    shape: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eps: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    benchmark: Option<BenchOut>,
}

fn f32_base64(t: &Tensor) -> Result<String> {
    let v = t.cast(DType::F32)?.to_vec_f32()?;
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Runs the sampler's step loop from `x`; the final latents.
fn sample(
    net: &Net,
    x: Tensor,
    sched: &Tensor,
    steps: u32,
    graph: bool,
    how: AttentionImpl,
    report: bool,
) -> Result<Tensor> {
    let row = |i: u32| -> Result<Tensor> { Ok(sched.slice(0, i, i + 1)?.reshape(&[3])?) };
    if !graph {
        let mut x = x;
        for i in 0..steps {
            x = net.step(&x, &row(i)?, how)?;
            if report {
                wasmpod_sdk::progress(&serde_json::json!({"step": i + 1, "of": steps}))
                    .map_err(|e| DiffusionError::Input(e.to_string()))?;
            }
        }
        return Ok(x);
    }
    // One step recorded on its own input tensors, replayed per step with
    // the latents and the step's parameters written into them.
    let p = row(0)?;
    let state = x;
    let (g, next) = wasmpod_sdk::capture(|| net.step(&state, &p, how).map_err(into_tensor_error))?;
    for i in 0..steps {
        if i > 0 {
            p.write(&row(i)?, 0, 0, None)?;
            g.replay()?;
        }
        state.write(&next, 0, 0, None)?;
        if report {
            wasmpod_sdk::progress(&serde_json::json!({"step": i + 1, "of": steps}))
                .map_err(|e| DiffusionError::Input(e.to_string()))?;
        }
    }
    Ok(state)
}

fn into_tensor_error(e: DiffusionError) -> TensorError {
    match e {
        DiffusionError::Tensor(t) => t,
        other => TensorError::InvalidArgument(other.to_string()),
    }
}

fn handle(input: Input) -> Result<Output> {
    let dtype = match input.dtype.as_deref().unwrap_or("f32") {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::Bf16,
        other => {
            return Err(DiffusionError::Input(format!(
                "dtype {other:?}: use f32, f16 or bf16"
            )));
        }
    };
    let layout = match input.layout.as_deref().unwrap_or("nhwc") {
        "nhwc" => Layout::Nhwc,
        "nchw" => Layout::Nchw,
        other => {
            return Err(DiffusionError::Input(format!(
                "layout {other:?}: use nhwc or nchw"
            )));
        }
    };
    let how = match input.attention.as_deref().unwrap_or("fused") {
        "fused" => AttentionImpl::Fused,
        "matmul" => AttentionImpl::Matmul,
        other => {
            return Err(DiffusionError::Input(format!(
                "attention {other:?}: use fused or matmul"
            )));
        }
    };
    let levels_down = {
        let guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .ok_or(DiffusionError::NotLoaded)?
            .config
            .mult
            .len() as u32
            - 1
    };
    let unit = 1u32 << levels_down;
    if input.size == 0 || !input.size.is_multiple_of(unit) || input.batch == 0 || input.steps == 0 {
        return Err(DiffusionError::Input(format!(
            "size must be a positive multiple of {unit} (the network halves it {levels_down} times), batch and steps at least 1"
        )));
    }
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let state = guard.as_mut().ok_or(DiffusionError::NotLoaded)?;
    if !state.nets.iter().any(|(k, _)| *k == (dtype, layout)) {
        let net = build(&state.model, &state.config, layout, dtype)?;
        state.nets.push(((dtype, layout), net));
    }
    let net = &state
        .nets
        .iter()
        .find(|(k, _)| *k == (dtype, layout))
        .expect("built above")
        .1;
    let c = state.config.in_channels;
    // Noise in NCHW order whatever the layout, so a seed means one image.
    let noise = Tensor::random_normal(
        DType::F32,
        &[input.batch, c, input.size, input.size],
        input.seed,
        0.0,
        1.0,
    )?;
    let x = match layout {
        Layout::Nhwc => noise.permute(&[0, 2, 3, 1])?,
        Layout::Nchw => noise,
    }
    .cast(dtype)?;
    if let Some(d) = &input.denoise_step {
        let t = Tensor::from_f32(&[1], &[d.t as f32])?;
        let eps = net.eps(&x, &t, how)?;
        return Ok(Output {
            seed: input.seed,
            steps: 1,
            shape: Some(vec![input.batch, c, input.size, input.size]),
            x: Some(f32_base64(&net.to_nchw(&x)?)?),
            eps: Some(f32_base64(&net.to_nchw(&eps)?)?),
            ..Default::default()
        });
    }
    let rows: Vec<f32> = schedule(&state.config, input.steps)
        .into_iter()
        .flatten()
        .collect();
    let sched = Tensor::from_f32(&[input.steps, 3], &rows)?;
    if let Some(b) = &input.benchmark {
        // A warm-up run plans every op (cuDNN algorithms, kernels).
        // Each run starts from a copy: a graph run writes its latents in place.
        sample(
            net,
            x.scale(1.0, 0.0)?,
            &sched,
            input.steps,
            input.graph,
            how,
            false,
        )?
        .to_vec_f32()?;
        let mut times = Vec::new();
        for _ in 0..b.runs.max(1) {
            let start = x.scale(1.0, 0.0)?;
            let t0 = Instant::now();
            let out = sample(net, start, &sched, input.steps, input.graph, how, false)?;
            out.slice(0, 0, 1)?.to_vec_f32()?;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let med = times[times.len() / 2];
        return Ok(Output {
            seed: input.seed,
            steps: input.steps,
            benchmark: Some(BenchOut {
                batch: input.batch,
                size: input.size,
                steps: input.steps,
                dtype: format!("{dtype:?}").to_lowercase(),
                layout: format!("{layout:?}").to_lowercase(),
                graph: input.graph,
                runs: b.runs.max(1),
                median_s: med,
                steps_per_s: input.steps as f64 / med,
            }),
            ..Default::default()
        });
    }
    let out = sample(net, x, &sched, input.steps, input.graph, how, true)?;
    Ok(Output {
        images: net.images(&out)?,
        seed: input.seed,
        steps: input.steps,
        ..Default::default()
    })
}

wasmpod_sdk::handler!(handle, init = init);
