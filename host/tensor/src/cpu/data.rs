//! Typed element buffers of the CPU backend and conversions between dtypes.
//!
//! f16 and bf16 are storage types: kernels read them as f32 and write f32
//! results back in the tensor's dtype. Integer kernels compute in i64 and
//! narrow (wrapping) to the tensor's dtype.

use std::borrow::Cow;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::DType;

/// A tensor's elements, one variant per dtype.
#[derive(Debug)]
pub enum CpuData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

/// Applies `$body` to the typed vector inside a [`CpuData`] (bound to `$v`),
/// rebuilding the same variant from the result: dtype-preserving data
/// movement (permute, slice, gather) written once for every dtype.
macro_rules! map_data {
    ($data:expr, |$v:ident| $body:expr) => {
        match $data {
            CpuData::F32($v) => CpuData::F32($body),
            CpuData::F16($v) => CpuData::F16($body),
            CpuData::BF16($v) => CpuData::BF16($body),
            CpuData::I32($v) => CpuData::I32($body),
            CpuData::I64($v) => CpuData::I64($body),
            CpuData::U8($v) => CpuData::U8($body),
        }
    };
}
pub(crate) use map_data;

impl CpuData {
    pub fn dtype(&self) -> DType {
        match self {
            CpuData::F32(_) => DType::F32,
            CpuData::F16(_) => DType::F16,
            CpuData::BF16(_) => DType::BF16,
            CpuData::I32(_) => DType::I32,
            CpuData::I64(_) => DType::I64,
            CpuData::U8(_) => DType::U8,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuData::F32(v) => v.len(),
            CpuData::F16(v) => v.len(),
            CpuData::BF16(v) => v.len(),
            CpuData::I32(v) => v.len(),
            CpuData::I64(v) => v.len(),
            CpuData::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as mutable little-endian bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            CpuData::F32(v) => bytemuck::cast_slice_mut(v),
            CpuData::F16(v) => bytemuck::cast_slice_mut(v),
            CpuData::BF16(v) => bytemuck::cast_slice_mut(v),
            CpuData::I32(v) => bytemuck::cast_slice_mut(v),
            CpuData::I64(v) => bytemuck::cast_slice_mut(v),
            CpuData::U8(v) => v,
        }
    }

    /// The elements as little-endian bytes (the host is little-endian).
    pub fn bytes(&self) -> &[u8] {
        match self {
            CpuData::F32(v) => bytemuck::cast_slice(v),
            CpuData::F16(v) => bytemuck::cast_slice(v),
            CpuData::BF16(v) => bytemuck::cast_slice(v),
            CpuData::I32(v) => bytemuck::cast_slice(v),
            CpuData::I64(v) => bytemuck::cast_slice(v),
            CpuData::U8(v) => v,
        }
    }

    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => CpuData::F32(vec![0.0; n]),
            DType::F16 => CpuData::F16(vec![f16::ZERO; n]),
            DType::BF16 => CpuData::BF16(vec![bf16::ZERO; n]),
            DType::I32 => CpuData::I32(vec![0; n]),
            DType::I64 => CpuData::I64(vec![0; n]),
            DType::U8 => CpuData::U8(vec![0; n]),
        }
    }

    /// Elements from little-endian bytes; `bytes.len()` must be a multiple
    /// of the dtype's size (checked by the front). Copies byte-wise, so the
    /// source needs no alignment.
    pub fn from_bytes(dtype: DType, bytes: &[u8]) -> Self {
        let mut d = Self::zeros(dtype, bytes.len() / dtype.size());
        let dst: &mut [u8] = match &mut d {
            CpuData::F32(v) => bytemuck::cast_slice_mut(v),
            CpuData::F16(v) => bytemuck::cast_slice_mut(v),
            CpuData::BF16(v) => bytemuck::cast_slice_mut(v),
            CpuData::I32(v) => bytemuck::cast_slice_mut(v),
            CpuData::I64(v) => bytemuck::cast_slice_mut(v),
            CpuData::U8(v) => v,
        };
        dst.copy_from_slice(bytes);
        d
    }

    /// The values as f32 (borrowed when already f32). Integers round to the
    /// nearest f32.
    pub fn f32s(&self) -> Cow<'_, [f32]> {
        match self {
            CpuData::F32(v) => Cow::Borrowed(v),
            // `half`'s slice conversions use F16C/SIMD when the CPU has it.
            CpuData::F16(v) => Cow::Owned(v.to_f32_vec()),
            CpuData::BF16(v) => Cow::Owned(v.to_f32_vec()),
            CpuData::I32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            CpuData::I64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            CpuData::U8(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
        }
    }

    /// The values as i64 (borrowed when already i64). Floats truncate toward
    /// zero, saturating at the i64 range (NaN becomes 0).
    pub fn i64s(&self) -> Cow<'_, [i64]> {
        match self {
            CpuData::I64(v) => Cow::Borrowed(v),
            CpuData::I32(v) => Cow::Owned(v.iter().map(|&x| x as i64).collect()),
            CpuData::U8(v) => Cow::Owned(v.iter().map(|&x| x as i64).collect()),
            other => Cow::Owned(other.f32s().iter().map(|&x| x as i64).collect()),
        }
    }

    /// `dtype` data from f32 values. Floats round to nearest; integer
    /// targets truncate toward zero and saturate at their range (NaN -> 0).
    pub fn from_f32(dtype: DType, v: Vec<f32>) -> Self {
        match dtype {
            DType::F32 => CpuData::F32(v),
            DType::F16 => {
                let mut out = vec![f16::ZERO; v.len()];
                out.convert_from_f32_slice(&v);
                CpuData::F16(out)
            }
            DType::BF16 => {
                let mut out = vec![bf16::ZERO; v.len()];
                out.convert_from_f32_slice(&v);
                CpuData::BF16(out)
            }
            DType::I32 => CpuData::I32(v.iter().map(|&x| x as i32).collect()),
            DType::I64 => CpuData::I64(v.iter().map(|&x| x as i64).collect()),
            DType::U8 => CpuData::U8(v.iter().map(|&x| x as u8).collect()),
        }
    }

    /// `dtype` data from i64 values: narrower integers wrap (two's
    /// complement, as a C cast would), floats round to nearest.
    pub fn from_i64(dtype: DType, v: Vec<i64>) -> Self {
        match dtype {
            DType::I64 => CpuData::I64(v),
            DType::I32 => CpuData::I32(v.iter().map(|&x| x as i32).collect()),
            DType::U8 => CpuData::U8(v.iter().map(|&x| x as u8).collect()),
            DType::F32 => CpuData::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F16 => CpuData::F16(v.iter().map(|&x| f16::from_f32(x as f32)).collect()),
            DType::BF16 => CpuData::BF16(v.iter().map(|&x| bf16::from_f32(x as f32)).collect()),
        }
    }
}

/// Little-endian bytes of `dtype` as f64 values (exact for every dtype but
/// i64 beyond 2^53).
pub fn bytes_to_f64(dtype: DType, bytes: &[u8]) -> Vec<f64> {
    match CpuData::from_bytes(dtype, bytes) {
        CpuData::F32(v) => v.into_iter().map(f64::from).collect(),
        CpuData::F16(v) => v.into_iter().map(f64::from).collect(),
        CpuData::BF16(v) => v.into_iter().map(f64::from).collect(),
        CpuData::I32(v) => v.into_iter().map(f64::from).collect(),
        CpuData::I64(v) => v.into_iter().map(|x| x as f64).collect(),
        CpuData::U8(v) => v.into_iter().map(f64::from).collect(),
    }
}

/// Little-endian bytes of `dtype` as f32 values (what `to-f32` returns).
pub fn bytes_to_f32(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    CpuData::from_bytes(dtype, bytes).f32s().into_owned()
}

/// Little-endian bytes of an integer `dtype` as i64 values (floats would
/// truncate; the front only calls this for integers).
pub fn bytes_to_i64(dtype: DType, bytes: &[u8]) -> Vec<i64> {
    CpuData::from_bytes(dtype, bytes).i64s().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let d = CpuData::from_f32(DType::BF16, vec![1.5, -2.0, 257.0]);
        assert_eq!(d.f32s().as_ref(), &[1.5, -2.0, 256.0]);
        assert_eq!(
            CpuData::from_f32(DType::U8, vec![-3.0, 2.9, 300.0])
                .i64s()
                .as_ref(),
            &[0, 2, 255]
        );
        assert_eq!(
            CpuData::from_i64(DType::I32, vec![1 << 32 | 5, -1])
                .i64s()
                .as_ref(),
            &[5, -1]
        );
        let bytes = CpuData::I64(vec![-7, 9]).bytes().to_vec();
        assert_eq!(bytes_to_i64(DType::I64, &bytes), vec![-7, 9]);
        assert_eq!(bytes_to_f64(DType::I64, &bytes), vec![-7.0, 9.0]);
    }
}
