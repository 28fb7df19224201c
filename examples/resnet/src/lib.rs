//! `resnet`: image classification with a torchvision ResNet (18/34/50/101/
//! 152, or any depth and width with the same parameter names) from a
//! safetensors file, run with host tensor ops.
//!
//! `init` opens the model "resnet" (torchvision's `state_dict()` names:
//! `conv1.weight`, `bn1.*`, `layer{1-4}.{i}.conv{1-3}.weight`,
//! `...bn{1-3}.*`, `...downsample.{0,1}.*`, `fc.*`), plus an optional
//! `config.json` (`image_size`, `resize`, `mean`, `std`) and `labels.txt`
//! (one class name per line). The first job in a dtype and layout builds
//! that network: every batch-norm is folded into the convolution before it
//! (`w * γ/√(σ²+ε)`, `β - μ·γ/√(σ²+ε)`), weights are permuted to the
//! layout and cast to the dtype, so a whole conv-bn-(add)-relu block is one
//! `conv2d-fused` call. The forward pass is then ~55 host calls at any batch.
//!
//! Input (JSON): `image` (base64 PNG or JPEG) or `images` (a list, one
//! batch), or `tensor` (`{"shape": [n, 3, h, w], "data": base64 of f32 LE,
//! NCHW}`, already normalised), or `synthetic` (`{"batch": 64, "seed": 0}`:
//! a normal random batch made on the device). Options: `dtype` (`f32`,
//! `f16`, `bf16`), `layout` (`nhwc`, default, or `nchw`), `top_k` (5),
//! `return_logits`, `return_input` (the batch the network saw, base64 f32
//! NCHW, as `tensor` takes it), and `benchmark` (`{"iterations": 50, "warmup": 5,
//! "graph": false}`: times the forward pass in the guest; with `graph` it
//! is recorded once and replayed). Output: `predictions` per image (class,
//! label, probability), `logits` when asked, `benchmark`.
//!
//! Images are decoded and resized in the guest with the `image` crate
//! (shorter side to `resize`, centre crop to `image_size`, triangle filter,
//! then ImageNet's mean and std), as torchvision's classification
//! transforms do.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Mutex;
use std::time::Instant;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use wasmpod_sdk::{
    Activation, ConvParams, DType, Layout, Model, ModelError, PoolParams, Tensor, TensorError,
};

/// Everything that can go wrong, worded for the job's `error`.
#[derive(Debug, thiserror::Error)]
enum ResnetError {
    #[error("model resnet: {0}")]
    Model(#[from] ModelError),
    #[error("model resnet: {0}")]
    Layout(String),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("images[{index}] is not a PNG or JPEG image we can decode: {source}")]
    Image {
        index: usize,
        source: image::ImageError,
    },
    #[error("the model is not loaded (init did not run)")]
    NotLoaded,
}

type Result<T, E = ResnetError> = std::result::Result<T, E>;

/// Preprocessing, from the model's config.json (torchvision's defaults).
#[derive(Deserialize, Clone)]
#[serde(default)]
struct Config {
    image_size: u32,
    resize: u32,
    mean: [f32; 3],
    std: [f32; 3],
    eps: f32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            image_size: 224,
            resize: 256,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            eps: 1e-5,
        }
    }
}

/// A convolution with its batch-norm folded in.
struct Conv {
    w: Tensor,
    b: Tensor,
    params: ConvParams,
}

impl Conv {
    fn run(&self, x: &Tensor, residual: Option<&Tensor>, act: Activation) -> Result<Tensor> {
        Ok(x.conv2d_fused(&self.w, Some(&self.b), residual, act, &self.params)?)
    }
}

/// A residual block: basic (two 3×3) or bottleneck (1×1, 3×3, 1×1).
struct Block {
    convs: Vec<Conv>,
    downsample: Option<Conv>,
}

struct Net {
    layout: Layout,
    dtype: DType,
    stem: Conv,
    blocks: Vec<Block>,
    fc_w: Tensor,
    fc_b: Tensor,
    classes: usize,
}

struct State {
    model: Model,
    config: Config,
    labels: Vec<String>,
    nets: HashMap<(u8, u8), Net>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn dtype_code(d: DType) -> u8 {
    d as u8
}

fn layout_code(l: Layout) -> u8 {
    l as u8
}

/// Folds `{bn}.*` into the convolution weight `{conv}` and lays it out.
fn folded(
    model: &Model,
    conv: &str,
    bn: &str,
    stride: u32,
    layout: Layout,
    dtype: DType,
    eps: f32,
) -> Result<Conv> {
    let w = model.weight(&format!("{conv}.weight"))?;
    let shape = w.shape();
    let &[o, _, kh, kw] = shape.as_slice() else {
        return Err(ResnetError::Layout(format!(
            "{conv}.weight has shape {shape:?}, expected [out, in, kh, kw]"
        )));
    };
    let gamma = model.weight(&format!("{bn}.weight"))?;
    let beta = model.weight(&format!("{bn}.bias"))?;
    let mean = model.weight(&format!("{bn}.running_mean"))?;
    let var = model.weight(&format!("{bn}.running_var"))?;
    for (name, t) in [
        ("weight", &gamma),
        ("bias", &beta),
        ("running_mean", &mean),
        ("running_var", &var),
    ] {
        if t.shape() != [o] {
            return Err(ResnetError::Layout(format!(
                "{bn}.{name} has shape {:?}, expected [{o}]",
                t.shape()
            )));
        }
    }
    let scale = var.scale(1.0, eps)?.rsqrt()?.mul(&gamma)?;
    let w = w.mul(&scale.reshape(&[o as i64, 1, 1, 1])?)?;
    let b = beta.sub(&mean.mul(&scale)?)?;
    let w = match layout {
        Layout::Nhwc => w.permute(&[0, 2, 3, 1])?,
        Layout::Nchw => w,
    };
    let params = ConvParams::default().stride(stride).layout(layout);
    let params = ConvParams {
        padding: (kh / 2, kw / 2),
        ..params
    };
    Ok(Conv {
        w: w.cast(dtype)?,
        b: b.cast(dtype)?,
        params,
    })
}

fn build(model: &Model, config: &Config, layout: Layout, dtype: DType) -> Result<Net> {
    let names: Vec<String> = model.weights().into_iter().map(|w| w.name).collect();
    let has = |n: &str| names.iter().any(|x| x == n);
    let bottleneck = has("layer1.0.conv3.weight");
    let eps = config.eps;
    let stem = folded(model, "conv1", "bn1", 2, layout, dtype, eps)?;
    let mut blocks = Vec::new();
    for layer in 1..=4 {
        let mut i = 0;
        while has(&format!("layer{layer}.{i}.conv1.weight")) {
            let p = format!("layer{layer}.{i}");
            let stride = if layer > 1 && i == 0 { 2 } else { 1 };
            let count = if bottleneck { 3 } else { 2 };
            // torchvision strides the 3×3 convolution: conv2 of a
            // bottleneck (v1.5), conv1 of a basic block.
            let strided = if bottleneck { 2 } else { 1 };
            let convs = (1..=count)
                .map(|c| {
                    let s = if c == strided { stride } else { 1 };
                    folded(
                        model,
                        &format!("{p}.conv{c}"),
                        &format!("{p}.bn{c}"),
                        s,
                        layout,
                        dtype,
                        eps,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let downsample = if has(&format!("{p}.downsample.0.weight")) {
                Some(folded(
                    model,
                    &format!("{p}.downsample.0"),
                    &format!("{p}.downsample.1"),
                    stride,
                    layout,
                    dtype,
                    eps,
                )?)
            } else {
                None
            };
            blocks.push(Block { convs, downsample });
            i += 1;
        }
        if i == 0 {
            return Err(ResnetError::Layout(format!(
                "no layer{layer}.0.conv1.weight: not a torchvision ResNet"
            )));
        }
    }
    let fc_w = model.weight("fc.weight")?;
    let classes = fc_w.shape().first().copied().unwrap_or(0) as usize;
    Ok(Net {
        layout,
        dtype,
        stem,
        blocks,
        fc_w: fc_w.cast(dtype)?,
        fc_b: model.weight("fc.bias")?.cast(dtype)?,
        classes,
    })
}

impl Net {
    /// Logits `[n, classes]` of a batch in the net's layout and dtype.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let l = self.layout;
        let mut x = self.stem.run(x, None, Activation::Relu)?;
        x = x.max_pool2d(&PoolParams::new(3, 2).padding(1).layout(l))?;
        for block in &self.blocks {
            let shortcut = match &block.downsample {
                Some(d) => Some(d.run(&x, None, Activation::None)?),
                None => None,
            };
            let identity = shortcut.as_ref().unwrap_or(&x);
            let (last, inner) = block.convs.split_last().expect("blocks have convolutions");
            let mut y = None;
            for c in inner {
                y = Some(c.run(y.as_ref().unwrap_or(&x), None, Activation::Relu)?);
            }
            let y = y.expect("at least two convolutions");
            x = last.run(&y, Some(identity), Activation::Relu)?;
        }
        let pooled = x.adaptive_avg_pool2d((1, 1), l)?;
        let features = pooled.shape();
        let n = features[0] as i64;
        let pooled = pooled.reshape(&[n, -1])?;
        Ok(pooled.linear(&self.fc_w, Some(&self.fc_b), None)?)
    }
}

fn init() -> Result<()> {
    let model = Model::open("resnet")?;
    let files = model.files();
    let config = if files.iter().any(|f| f == "config.json") {
        serde_json::from_str(&model.read_to_string("config.json")?)
            .map_err(|e| ResnetError::Layout(format!("config.json: {e}")))?
    } else {
        Config::default()
    };
    let labels = if files.iter().any(|f| f == "labels.txt") {
        model
            .read_to_string("labels.txt")?
            .lines()
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    *STATE.lock().unwrap_or_else(|p| p.into_inner()) = Some(State {
        model,
        config,
        labels,
        nets: HashMap::new(),
    });
    Ok(())
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TensorInput {
    shape: Vec<u32>,
    data: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Synthetic {
    batch: u32,
    #[serde(default)]
    seed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bench {
    #[serde(default = "default_iterations")]
    iterations: u32,
    #[serde(default = "default_warmup")]
    warmup: u32,
    #[serde(default)]
    graph: bool,
}

fn default_iterations() -> u32 {
    50
}
fn default_warmup() -> u32 {
    5
}
fn default_top_k() -> u32 {
    5
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    tensor: Option<TensorInput>,
    #[serde(default)]
    synthetic: Option<Synthetic>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    layout: Option<String>,
    #[serde(default = "default_top_k")]
    top_k: u32,
    #[serde(default)]
    return_logits: bool,
    #[serde(default)]
    return_input: bool,
    #[serde(default)]
    benchmark: Option<Bench>,
}

#[derive(Serialize)]
struct Prediction {
    class: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    probability: f32,
}

#[derive(Serialize)]
struct BenchOut {
    batch: u32,
    dtype: String,
    layout: String,
    graph: bool,
    iterations: u32,
    median_ms: f64,
    min_ms: f64,
    images_per_s: f64,
}

#[derive(Serialize)]
struct Output {
    predictions: Vec<Vec<Prediction>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logits: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    benchmark: Option<BenchOut>,
    /// The batch the network saw, when asked (`return_input`).
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<TensorInput>,
}

fn parse_dtype(s: Option<&str>) -> Result<DType> {
    match s.unwrap_or("f32") {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::Bf16),
        other => Err(ResnetError::Input(format!(
            "dtype {other:?}: use f32, f16 or bf16"
        ))),
    }
}

fn parse_layout(s: Option<&str>) -> Result<Layout> {
    match s.unwrap_or("nhwc") {
        "nhwc" => Ok(Layout::Nhwc),
        "nchw" => Ok(Layout::Nchw),
        other => Err(ResnetError::Input(format!(
            "layout {other:?}: use nhwc or nchw"
        ))),
    }
}

fn base64(s: &str, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| ResnetError::Input(format!("{what} is not valid base64: {e}")))
}

/// One image as normalised `[h, w, 3]` f32 values (HWC is NHWC's order).
fn preprocess(bytes: &[u8], index: usize, c: &Config) -> Result<Vec<f32>> {
    let img = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ResnetError::Input(format!("images[{index}]: {e}")))?
        .decode()
        .map_err(|source| ResnetError::Image { index, source })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let short = w.min(h).max(1);
    let (rw, rh) = (
        (w as u64 * c.resize as u64 / short as u64).max(c.image_size as u64) as u32,
        (h as u64 * c.resize as u64 / short as u64).max(c.image_size as u64) as u32,
    );
    let resized = image::imageops::resize(&img, rw, rh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((rw - c.image_size) / 2, (rh - c.image_size) / 2);
    let crop = image::imageops::crop_imm(&resized, x0, y0, c.image_size, c.image_size).to_image();
    Ok(crop
        .pixels()
        .flat_map(|p| (0..3).map(move |ch| (p[ch] as f32 / 255.0 - c.mean[ch]) / c.std[ch]))
        .collect())
}

/// The input batch in the net's layout and dtype.
fn input_batch(input: &Input, config: &Config, layout: Layout, dtype: DType) -> Result<Tensor> {
    let size = config.image_size;
    let nhwc = |t: Tensor| -> Result<Tensor> {
        Ok(match layout {
            Layout::Nhwc => t,
            Layout::Nchw => t.permute(&[0, 3, 1, 2])?,
        })
    };
    let x = if let Some(s) = &input.synthetic {
        if s.batch == 0 {
            return Err(ResnetError::Input(
                "synthetic.batch must be at least 1".into(),
            ));
        }
        nhwc(Tensor::random_normal(
            DType::F32,
            &[s.batch, size, size, 3],
            s.seed,
            0.0,
            1.0,
        )?)?
    } else if let Some(t) = &input.tensor {
        let bytes = base64(&t.data, "tensor.data")?;
        if t.shape.len() != 4 || t.shape[1] != 3 {
            return Err(ResnetError::Input(format!(
                "tensor.shape {:?} must be [n, 3, h, w]",
                t.shape
            )));
        }
        let x = Tensor::from_bytes(DType::F32, &t.shape, &bytes)?;
        match layout {
            Layout::Nchw => x,
            Layout::Nhwc => x.permute(&[0, 2, 3, 1])?,
        }
    } else {
        let images: Vec<&String> = input.image.iter().chain(&input.images).collect();
        if images.is_empty() {
            return Err(ResnetError::Input(
                "give `image` or `images` (base64 PNG/JPEG), `tensor` or `synthetic`".into(),
            ));
        }
        let mut data = Vec::with_capacity(images.len() * (size * size * 3) as usize);
        for (i, b64) in images.iter().enumerate() {
            data.extend(preprocess(
                &base64(b64, &format!("images[{i}]"))?,
                i,
                config,
            )?);
        }
        nhwc(Tensor::from_f32(
            &[images.len() as u32, size, size, 3],
            &data,
        )?)?
    };
    Ok(x.cast(dtype)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn handle(input: Input) -> Result<Output> {
    let dtype = parse_dtype(input.dtype.as_deref())?;
    let layout = parse_layout(input.layout.as_deref())?;
    let mut guard = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let state = guard.as_mut().ok_or(ResnetError::NotLoaded)?;
    let key = (dtype_code(dtype), layout_code(layout));
    if !state.nets.contains_key(&key) {
        let net = build(&state.model, &state.config, layout, dtype)?;
        wasmpod_sdk::info!(
            "resnet: {} blocks, {} classes, {dtype:?} {layout:?}",
            net.blocks.len(),
            net.classes
        );
        state.nets.insert(key, net);
    }
    let net = &state.nets[&key];
    let x = input_batch(&input, &state.config, net.layout, net.dtype)?;
    let batch = x.shape()[0];
    let k = input.top_k.min(net.classes as u32);
    let head = |logits: &Tensor| -> Result<(Tensor, Tensor)> {
        Ok(logits.cast(DType::F32)?.softmax(-1)?.top_k(k)?)
    };
    let mut benchmark = None;
    let (logits, (probs, classes)) = match &input.benchmark {
        None => {
            let logits = net.forward(&x)?;
            let top = head(&logits)?;
            (logits, top)
        }
        Some(b) => {
            let iterations = b.iterations.max(1);
            let mut times = Vec::with_capacity(iterations as usize);
            let result = if b.graph {
                let (graph, (logits, top)) = wasmpod_sdk::capture(|| {
                    let logits = net.forward(&x).map_err(|e| match e {
                        ResnetError::Tensor(t) => t,
                        other => TensorError::InvalidArgument(other.to_string()),
                    })?;
                    let top = logits.cast(DType::F32)?.softmax(-1)?.top_k(k)?;
                    Ok((logits, top))
                })?;
                for i in 0..b.warmup + iterations {
                    let t0 = Instant::now();
                    graph.replay()?;
                    top.1.to_vec_i64()?;
                    if i >= b.warmup {
                        times.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                }
                (logits, top)
            } else {
                let mut last = None;
                for i in 0..b.warmup + iterations {
                    let t0 = Instant::now();
                    let logits = net.forward(&x)?;
                    let top = head(&logits)?;
                    top.1.to_vec_i64()?;
                    if i >= b.warmup {
                        times.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    last = Some((logits, top));
                }
                last.expect("at least one iteration")
            };
            let min = times.iter().copied().fold(f64::INFINITY, f64::min);
            let med = median(times);
            benchmark = Some(BenchOut {
                batch,
                dtype: format!("{dtype:?}").to_lowercase(),
                layout: format!("{layout:?}").to_lowercase(),
                graph: b.graph,
                iterations,
                median_ms: med,
                min_ms: min,
                images_per_s: batch as f64 / (med / 1e3),
            });
            result
        }
    };
    let probs = probs.to_vec_f32()?;
    let classes = classes.to_vec_i64()?;
    let predictions = probs
        .chunks(k.max(1) as usize)
        .zip(classes.chunks(k.max(1) as usize))
        .map(|(p, c)| {
            p.iter()
                .zip(c)
                .map(|(&probability, &class)| Prediction {
                    class: class as usize,
                    label: state.labels.get(class as usize).cloned(),
                    probability,
                })
                .collect()
        })
        .collect();
    let logits = if input.return_logits {
        Some(
            logits
                .to_vec_f32()?
                .chunks(net.classes.max(1))
                .map(<[f32]>::to_vec)
                .collect(),
        )
    } else {
        None
    };
    let input = if input.return_input {
        let nchw = match net.layout {
            Layout::Nhwc => x.permute(&[0, 3, 1, 2])?,
            Layout::Nchw => x.reshape(&x.shape().iter().map(|&d| d as i64).collect::<Vec<_>>())?,
        };
        let shape = nchw.shape();
        let bytes: Vec<u8> = nchw
            .cast(DType::F32)?
            .to_vec_f32()?
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        Some(TensorInput {
            shape,
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    } else {
        None
    };
    Ok(Output {
        predictions,
        logits,
        benchmark,
        input,
    })
}

wasmpod_sdk::handler!(handle, init = init);
