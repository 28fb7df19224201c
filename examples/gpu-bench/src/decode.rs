//! Mode `decode`: a Llama-style decode step built from the decoder ops,
//! timed from inside the guest, eagerly (one host call per op) and recorded
//! once as a graph then replayed (one host call per step): what a decoder
//! handler pays for the contract. Random weights made in the guest; the
//! KV cache starts filled to `context`. Also checks that a replay computes
//! exactly what the eager step computes, and, when the worker has a model,
//! that one of its weights is refused as an in-place target.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmpod_sdk::{
    AttentionOptions, DType, Llama3Scaling, Model, RopeConfig, RopeLayout, RopeScaling, Sampling,
    Tensor, TensorError,
};

use crate::{BenchError, parse_dtype, pseudo_random};

/// The model's shape (defaults: Llama-3.2-1B's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    #[serde(default = "d_layers")]
    layers: u32,
    #[serde(default = "d_hidden")]
    hidden: u32,
    #[serde(default = "d_heads")]
    heads: u32,
    #[serde(default = "d_kv_heads")]
    kv_heads: u32,
    #[serde(default = "d_inter")]
    intermediate: u32,
    #[serde(default = "d_vocab")]
    vocab: u32,
    #[serde(default = "d_context")]
    context: u32,
    /// A model of the endpoint whose first weight the mode tries to write.
    model: Option<String>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            layers: d_layers(),
            hidden: d_hidden(),
            heads: d_heads(),
            kv_heads: d_kv_heads(),
            intermediate: d_inter(),
            vocab: d_vocab(),
            context: d_context(),
            model: None,
        }
    }
}

fn d_layers() -> u32 {
    16
}
fn d_hidden() -> u32 {
    2048
}
fn d_heads() -> u32 {
    32
}
fn d_kv_heads() -> u32 {
    8
}
fn d_inter() -> u32 {
    8192
}
fn d_vocab() -> u32 {
    128256
}
fn d_context() -> u32 {
    512
}

#[derive(Serialize)]
pub struct Decode {
    steps: u32,
    ops_per_step: usize,
    eager_ms_per_step: f64,
    graph_ms_per_step: f64,
    replay_matches_eager: bool,
    /// Token ids the replays produced (greedy).
    tokens: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight_write_refused: Option<bool>,
}

struct Layer {
    norm1: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    norm2: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    kc: Tensor,
    vc: Tensor,
}

struct Net {
    embed: Tensor,
    norm: Tensor,
    layers: Vec<Layer>,
    head_dim: u32,
    shape: (u32, u32, u32, u32),
}

fn weight(shape: &[u32], dtype: DType, seed: u32) -> Result<Tensor, TensorError> {
    let n: usize = shape.iter().map(|&d| d as usize).product();
    let values: Vec<f32> = pseudo_random(n, seed)
        .into_iter()
        .map(|v| v * 0.02)
        .collect();
    Tensor::from_f32(shape, &values)?.cast(dtype)
}

fn build(s: &Shape, dtype: DType) -> Result<Net, TensorError> {
    let head_dim = s.hidden / s.heads;
    let capacity = s.context + 64;
    let ones = |n: u32| Tensor::from_f32(&[n], &vec![1.0; n as usize])?.cast(dtype);
    let mut seed = 10;
    let mut next = || {
        seed += 1;
        seed
    };
    let mut layers = Vec::new();
    for _ in 0..s.layers {
        let cache = |seed: u32| -> Result<Tensor, TensorError> {
            let t = Tensor::zeros(dtype, &[1, capacity, s.kv_heads, head_dim])?;
            t.write(
                &weight(&[1, s.context, s.kv_heads, head_dim], dtype, seed)?,
                1,
                0,
                None,
            )?;
            Ok(t)
        };
        layers.push(Layer {
            norm1: ones(s.hidden)?,
            wq: weight(&[s.heads * head_dim, s.hidden], dtype, next())?,
            wk: weight(&[s.kv_heads * head_dim, s.hidden], dtype, next())?,
            wv: weight(&[s.kv_heads * head_dim, s.hidden], dtype, next())?,
            wo: weight(&[s.hidden, s.heads * head_dim], dtype, next())?,
            norm2: ones(s.hidden)?,
            gate: weight(&[s.intermediate, s.hidden], dtype, next())?,
            up: weight(&[s.intermediate, s.hidden], dtype, next())?,
            down: weight(&[s.hidden, s.intermediate], dtype, next())?,
            kc: cache(next())?,
            vc: cache(next())?,
        });
    }
    Ok(Net {
        embed: weight(&[s.vocab, s.hidden], dtype, 3)?,
        norm: ones(s.hidden)?,
        layers,
        head_dim,
        shape: (s.hidden, s.heads, s.kv_heads, s.vocab),
    })
}

const ROPE: RopeConfig = RopeConfig {
    theta: 500000.0,
    rotary_dim: 0,
    layout: RopeLayout::Half,
    scaling: RopeScaling::Llama3(Llama3Scaling {
        factor: 32.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    }),
};

/// One greedy step: reads `token` [1, 1] and `pos` [1], writes the next
/// token into `token`, advances `pos`; returns the logits.
fn step(n: &Net, token: &Tensor, pos: &Tensor, one: &Tensor) -> Result<Tensor, TensorError> {
    let (hidden, heads, kv_heads, vocab) = n.shape;
    let hd = i64::from(n.head_dim);
    let causal = AttentionOptions {
        causal: true,
        scale: None,
        window: None,
    };
    let greedy = Sampling {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    };
    let mut x = n.embed.gather(token)?;
    for l in &n.layers {
        let h = x.rms_norm(Some(&l.norm1), 1e-5)?;
        let qkv = h.linear_many(&[&l.wq, &l.wk, &l.wv], &[])?;
        let q = qkv[0].reshape(&[1, 1, i64::from(heads), hd])?;
        let k = qkv[1].reshape(&[1, 1, i64::from(kv_heads), hd])?;
        let v = qkv[2].reshape(&[1, 1, i64::from(kv_heads), hd])?;
        let a = q
            .attention_cached(&k, &v, &l.kc, &l.vc, pos, Some(&ROPE), &causal)?
            .reshape(&[1, 1, i64::from(hidden)])?;
        x = a.linear(&l.wo, None, Some(&x))?;
        let h = x.rms_norm(Some(&l.norm2), 1e-5)?;
        let gu = h.linear_many(&[&l.gate, &l.up], &[])?;
        x = gu[0].silu_mul(&gu[1])?.linear(&l.down, None, Some(&x))?;
    }
    let logits = x
        .rms_norm(Some(&n.norm), 1e-5)?
        .linear(&n.embed, None, None)?
        .reshape(&[1, i64::from(vocab)])?;
    let id = logits.sample(&greedy, pos)?;
    token.write(&id.reshape(&[1, 1])?, 0, 0, None)?;
    pos.write(&pos.add(one)?, 0, 0, None)?;
    Ok(logits)
}

pub fn decode(s: &Shape, dtype_name: &str, steps: u32) -> Result<Decode, BenchError> {
    if s.heads == 0
        || s.kv_heads == 0
        || !s.hidden.is_multiple_of(s.heads)
        || !s.heads.is_multiple_of(s.kv_heads)
    {
        return Err(BenchError::Input(
            "hidden must split into heads, and heads into kv_heads".into(),
        ));
    }
    if steps > 64 {
        return Err(BenchError::Input(
            "decode runs at most 64 steps (the cache's headroom)".into(),
        ));
    }
    let dtype = parse_dtype(dtype_name)?;
    let net = build(s, dtype)?;
    let token = Tensor::from_i64(&[1, 1], &[1])?;
    let pos = Tensor::from_i64(&[1], &[i64::from(s.context)])?;
    let one = Tensor::from_i64(&[1], &[1])?;
    let restart = || -> Result<(), TensorError> {
        token.write(&Tensor::from_i64(&[1, 1], &[1])?, 0, 0, None)?;
        pos.write(
            &Tensor::from_i64(&[1], &[i64::from(s.context)])?,
            0,
            0,
            None,
        )
    };
    // Warm-up (the first decoder op compiles the decoder kernels).
    step(&net, &token, &pos, &one)?;
    restart()?;
    let started = Instant::now();
    let mut eager = Vec::new();
    for _ in 0..steps {
        step(&net, &token, &pos, &one)?;
        eager.push(token.to_vec_i64()?[0]);
    }
    let eager_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(steps);
    restart()?;
    let first_eager = step(&net, &token, &pos, &one)?.to_bytes()?;
    restart()?;
    let (graph, logits) = wasmpod_sdk::capture(|| step(&net, &token, &pos, &one))?;
    // Recording ran the step once; start over for the replays.
    restart()?;
    graph.replay()?;
    let replay_matches_eager = logits.to_bytes()? == first_eager;
    restart()?;
    let started = Instant::now();
    let mut tokens = Vec::new();
    for _ in 0..steps {
        graph.replay()?;
        tokens.push(token.to_vec_i64()?[0]);
    }
    let graph_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(steps);
    let weight_write_refused = match &s.model {
        Some(name) => {
            let model = Model::open(name)?;
            let first = model
                .weights()
                .first()
                .map(|w| w.name.clone())
                .ok_or_else(|| BenchError::Input(format!("model {name} has no weights")))?;
            let w = model.weight(&first)?;
            let copy = w.scale(1.0, 0.0)?;
            Some(matches!(
                w.write(&copy, 0, 0, None),
                Err(TensorError::InvalidArgument(_))
            ))
        }
        None => None,
    };
    Ok(Decode {
        steps,
        // Host calls: the embedding, 12 per layer, 8 for the head and the
        // token/position updates.
        ops_per_step: 1 + 12 * s.layers as usize + 8,
        eager_ms_per_step: eager_ms,
        graph_ms_per_step: graph_ms,
        replay_matches_eager: replay_matches_eager && tokens == eager,
        tokens,
        weight_write_refused,
    })
}
