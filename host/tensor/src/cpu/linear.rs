//! Linear layers with Hugging Face's `[out, in]` weights, read in place
//! (the GEMM walks the weight with transposed strides, no copy), and the
//! SwiGLU product.

use super::elementwise;

/// `y[rows, out] = x[rows, in] @ w[out, in]^T + bias + residual`.
pub fn linear(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    rows: usize,
    inputs: usize,
    outputs: usize,
) -> Vec<f32> {
    assert!(x.len() == rows * inputs && w.len() == outputs * inputs);
    let mut y = match residual {
        Some(r) => r.to_vec(),
        None => vec![0f32; rows * outputs],
    };
    if let Some(b) = bias {
        for row in y.chunks_mut(outputs.max(1)) {
            for (v, b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
    if rows * outputs == 0 || inputs == 0 {
        return y;
    }
    let threads = rayon::current_num_threads();
    let par = if rows * inputs * outputs >= 1 << 15 && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: y holds rows*outputs, x rows*inputs and w outputs*inputs f32s
    // (asserted / built above). dst walks [rows, outputs] with strides
    // (outputs, 1); lhs [rows, inputs] with (inputs, 1); rhs is w^T,
    // [inputs, outputs] with row stride 1 and column stride `inputs`, so
    // every index stays below the buffer lengths. y is a unique &mut.
    // read_dst = true with alpha 1 adds the product to the bias/residual.
    unsafe {
        gemm::gemm(
            rows,
            outputs,
            inputs,
            y.as_mut_ptr(),
            1,
            outputs as isize,
            true,
            x.as_ptr(),
            1,
            inputs as isize,
            w.as_ptr(),
            inputs as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    y
}

/// `silu(gate) * up`, elementwise.
pub fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| elementwise::silu(g) * u)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_reads_the_weight_transposed() {
        // x [2, 3], w [2 out, 3 in]
        let x = [1.0, 2.0, 3.0, -1.0, 0.5, 2.0];
        let w = [1.0, 0.0, -1.0, 2.0, 1.0, 0.5];
        let y = linear(&x, &w, Some(&[10.0, 20.0]), None, 2, 3, 2);
        assert_eq!(
            y,
            vec![
                1.0 - 3.0 + 10.0,
                2.0 + 2.0 + 1.5 + 20.0,
                -1.0 - 2.0 + 10.0,
                -2.0 + 0.5 + 1.0 + 20.0
            ]
        );
        let r = linear(&x, &w, None, Some(&[1.0, 1.0, 1.0, 1.0]), 2, 3, 2);
        assert_eq!(r, vec![-1.0, 6.5, -2.0, 0.5]);
    }
}
