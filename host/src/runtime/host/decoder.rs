//! The host side of the decoder ops (issue 18): WIT records turned into the
//! tensor crate's settings, and operands gathered from the resource table
//! onto one device.

use wasmpod_tensor::{
    AttentionOptions, RopeConfig, RopeLayout, RopeScaling, Sampling, Tensor, TensorError,
};
use wasmtime::component::Resource;

use super::fault::TensorFault;
use super::tensor::{TensorEntry, TensorView};
use crate::runtime::bindings::tensor as wit;

type TensorResult<T> = Result<T, TensorFault>;

pub(super) fn rope_config(c: &wit::RopeConfig) -> RopeConfig {
    RopeConfig {
        theta: c.theta,
        rotary_dim: c.rotary_dim,
        layout: match c.layout {
            wit::RopeLayout::Half => RopeLayout::Half,
            wit::RopeLayout::Interleaved => RopeLayout::Interleaved,
        },
        scaling: match c.scaling {
            wit::RopeScaling::None => RopeScaling::None,
            wit::RopeScaling::Linear(f) => RopeScaling::Linear(f),
            wit::RopeScaling::Llama3(s) => RopeScaling::Llama3 {
                factor: s.factor,
                low_freq_factor: s.low_freq_factor,
                high_freq_factor: s.high_freq_factor,
                original_max_position_embeddings: s.original_max_position_embeddings,
            },
        },
    }
}

fn attention_options(o: &wit::AttentionOptions) -> AttentionOptions {
    AttentionOptions {
        causal: o.causal,
        scale: o.scale,
        window: o.window,
    }
}

pub(super) fn sampling(p: &wit::Sampling) -> Sampling {
    Sampling {
        temperature: p.temperature,
        top_k: p.top_k,
        top_p: p.top_p,
        seed: p.seed,
    }
}

impl TensorView<'_> {
    /// The tensors behind `handles` and the device index they all sit on.
    pub(super) fn operands(
        &self,
        handles: &[&Resource<TensorEntry>],
    ) -> TensorResult<(usize, Vec<Tensor>)> {
        let mut device = None;
        let mut tensors = Vec::with_capacity(handles.len());
        for h in handles {
            let e = self.entry(h)?;
            match device {
                Some(d) if d != e.device => {
                    return Err(TensorError::InvalidArgument(format!(
                        "operands are on devices {d} and {}; move them to one device with to-device first",
                        e.device
                    ))
                    .into());
                }
                _ => device = Some(e.device),
            }
            tensors.push(e.tensor.clone());
        }
        Ok((device.unwrap_or(0), tensors))
    }

    pub(super) fn linear_op(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        residual: Option<Resource<TensorEntry>>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let mut handles = vec![&x, &weight];
        handles.extend(bias.as_ref());
        handles.extend(residual.as_ref());
        let (index, t) = self.operands(&handles)?;
        let bias = bias.is_some().then(|| &t[2]);
        let residual = residual.is_some().then(|| &t[t.len() - 1]);
        let device = self.device_at(index);
        let y = self.recorded(|| device.linear(&t[0], &t[1], bias, residual))?;
        self.push_tensor(y, index)
    }

    pub(super) fn linear_many_op(
        &mut self,
        x: Resource<TensorEntry>,
        weights: Vec<Resource<TensorEntry>>,
        biases: Vec<Resource<TensorEntry>>,
    ) -> TensorResult<Vec<Resource<TensorEntry>>> {
        let mut handles = vec![&x];
        handles.extend(&weights);
        handles.extend(&biases);
        let (index, t) = self.operands(&handles)?;
        let n = weights.len();
        let ws: Vec<&Tensor> = t[1..=n].iter().collect();
        let bs: Vec<&Tensor> = t[1 + n..].iter().collect();
        let device = self.device_at(index);
        let ys = self.recorded(|| device.linear_many(&t[0], &ws, &bs))?;
        ys.into_iter().map(|y| self.push_tensor(y, index)).collect()
    }

    pub(super) fn attention_op(
        &mut self,
        q: Resource<TensorEntry>,
        k: Resource<TensorEntry>,
        v: Resource<TensorEntry>,
        options: wit::AttentionOptions,
        valid: Option<Resource<TensorEntry>>,
        key_mask: Option<Resource<TensorEntry>>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let mut handles = vec![&q, &k, &v];
        handles.extend(valid.as_ref());
        handles.extend(key_mask.as_ref());
        let (index, t) = self.operands(&handles)?;
        let valid = valid.is_some().then(|| &t[3]);
        let mask = key_mask.is_some().then(|| &t[t.len() - 1]);
        let options = attention_options(&options);
        let device = self.device_at(index);
        let y = self.recorded(|| device.attention(&t[0], &t[1], &t[2], &options, valid, mask))?;
        self.push_tensor(y, index)
    }

    /// `handles`: q, k, v, k-cache, v-cache, positions.
    pub(super) fn attention_cached_op(
        &mut self,
        handles: [Resource<TensorEntry>; 6],
        rope: Option<wit::RopeConfig>,
        options: wit::AttentionOptions,
    ) -> TensorResult<Resource<TensorEntry>> {
        let refs: Vec<&Resource<TensorEntry>> = handles.iter().collect();
        let (index, t) = self.operands(&refs)?;
        let rope = rope.as_ref().map(rope_config);
        let options = attention_options(&options);
        let device = self.device_at(index);
        let y = self.recorded(|| {
            device.attention_cached(
                &t[0],
                &t[1],
                &t[2],
                &t[3],
                &t[4],
                &t[5],
                rope.as_ref(),
                &options,
            )
        })?;
        self.push_tensor(y, index)
    }

    pub(super) fn write_op(
        &mut self,
        target: Resource<TensorEntry>,
        src: Resource<TensorEntry>,
        axis: i32,
        start: u32,
        offset: Option<Resource<TensorEntry>>,
    ) -> TensorResult<()> {
        let mut handles = vec![&target, &src];
        handles.extend(offset.as_ref());
        let (index, t) = self.operands(&handles)?;
        let device = self.device_at(index);
        Ok(self.recorded(|| device.write(&t[0], &t[1], axis, start as usize, t.get(2)))?)
    }
}
