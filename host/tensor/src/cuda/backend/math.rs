//! [`MathBackend`] for CUDA: the long-tail kernels of `image.cu`, launched
//! over the same broadcast plans as the binary ops.

use cudarc::driver::PushKernelArg;

use super::{CudaBackend, ELEMENTWISE_THREADS, Fill, element_width, grid, index_width};
use crate::cuda::layout::{self, contiguous};
use crate::math::{CompareOp, Distribution, MathBackend, MathOp, PairOp, Range};
use crate::shape::broadcast_strides;
use crate::{DType, Result, Tensor};

fn strides_to(shape: &[usize], out: &[usize]) -> Vec<i64> {
    broadcast_strides(shape, out)
        .into_iter()
        .map(|s| s as i64)
        .collect()
}

impl MathBackend for CudaBackend {
    fn math(&self, op: MathOp, a: &Tensor) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        let n = a.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let (px, code) = (self.ptr(a), op.code());
        self.reading(&[a], || {
            launch!(
                self,
                format!("math_{dtype}"),
                grid(n, ELEMENTWISE_THREADS),
                px,
                py,
                n,
                code
            )
        })?;
        Ok(out)
    }

    fn clamp(&self, a: &Tensor, lo: Option<f32>, hi: Option<f32>) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        let n = a.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let (flo, fhi) = (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY));
        let ilo = lo.map_or(i64::MIN, |l| l.ceil() as i64);
        let ihi = hi.map_or(i64::MAX, |h| h.floor() as i64);
        let px = self.ptr(a);
        self.reading(&[a], || {
            launch!(
                self,
                format!("clamp_{dtype}"),
                grid(n, ELEMENTWISE_THREADS),
                px,
                py,
                n,
                flo,
                fhi,
                ilo,
                ihi
            )
        })?;
        Ok(out)
    }

    fn pair(&self, op: PairOp, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, po) = self.alloc(dtype, out_shape, Fill::Overwritten)?;
        let (sa, sb, so) = (
            strides_to(a.shape(), out_shape),
            strides_to(b.shape(), out_shape),
            contiguous(out_shape),
        );
        let (pa, pb, code) = (self.ptr(a), self.ptr(b), op.code());
        self.reading(&[a, b], || {
            for l in layout::plan(out_shape, [sa, sb, so], [0; 3]) {
                let (lay, n) = (l.layout, l.numel);
                launch!(
                    self,
                    format!("pair_{dtype}_{}", index_width(n)),
                    grid(n, ELEMENTWISE_THREADS),
                    lay,
                    pa,
                    pb,
                    po,
                    n,
                    code
                )?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn compare(
        &self,
        op: CompareOp,
        a: &Tensor,
        b: &Tensor,
        out_shape: &[usize],
    ) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, po) = self.alloc(DType::U8, out_shape, Fill::Overwritten)?;
        let (sa, sb, so) = (
            strides_to(a.shape(), out_shape),
            strides_to(b.shape(), out_shape),
            contiguous(out_shape),
        );
        let (pa, pb, code) = (self.ptr(a), self.ptr(b), op.code());
        self.reading(&[a, b], || {
            for l in layout::plan(out_shape, [sa, sb, so], [0; 3]) {
                let (lay, n) = (l.layout, l.numel);
                launch!(
                    self,
                    format!("compare_{dtype}_{}", index_width(n)),
                    grid(n, ELEMENTWISE_THREADS),
                    lay,
                    pa,
                    pb,
                    po,
                    n,
                    code
                )?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, po) = self.alloc(dtype, out_shape, Fill::Overwritten)?;
        let strides = [
            strides_to(cond.shape(), out_shape),
            strides_to(a.shape(), out_shape),
            strides_to(b.shape(), out_shape),
        ];
        let (pc, pa, pb) = (self.ptr(cond), self.ptr(a), self.ptr(b));
        let (cdt, width) = (cond.dtype(), element_width(dtype));
        self.reading(&[cond, a, b], || {
            // Launches come in row-major order of the output, which is
            // contiguous: each starts where the previous one ended.
            let mut base = 0u64;
            for l in layout::plan(out_shape, strides, [0; 3]) {
                let (lay, n) = (l.layout, l.numel);
                launch!(
                    self,
                    format!("select_{cdt}_w{width}_{}", index_width(n)),
                    grid(n, ELEMENTWISE_THREADS),
                    lay,
                    pc,
                    pa,
                    pb,
                    po,
                    n,
                    base
                )?;
                base += n;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn cumsum(&self, a: &Tensor, axis: usize) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        if a.numel() == 0 {
            return Ok(out);
        }
        let s = a.shape();
        let (outer, len, inner) = (
            s[..axis].iter().product::<usize>() as i64,
            s[axis] as i64,
            s[axis + 1..].iter().product::<usize>() as i64,
        );
        let px = self.ptr(a);
        let lanes = (outer * inner) as u64;
        self.reading(&[a], || {
            launch!(
                self,
                format!("cumsum_{dtype}"),
                grid(lanes, ELEMENTWISE_THREADS),
                px,
                py,
                outer,
                len,
                inner
            )
        })?;
        Ok(out)
    }

    fn range(&self, dtype: DType, range: &Range) -> Result<Tensor> {
        let n = range.len();
        let (out, py) = self.alloc(dtype, &[n], Fill::Overwritten)?;
        if n == 0 {
            return Ok(out);
        }
        let (start, step, end, lin) = match *range {
            Range::Arange { start, step, .. } => (start, step, 0.0f64, 0i32),
            Range::Linspace { start, end, .. } => (start, 0.0, end, 1),
        };
        let n = n as u64;
        self.bind()?;
        launch!(
            self,
            format!("range_{dtype}"),
            grid(n, ELEMENTWISE_THREADS),
            py,
            n,
            start,
            step,
            end,
            lin
        )?;
        Ok(out)
    }

    fn random(
        &self,
        dtype: DType,
        shape: &[usize],
        seed: u64,
        dist: Distribution,
    ) -> Result<Tensor> {
        let (out, py) = self.alloc(dtype, shape, Fill::Overwritten)?;
        let n = out.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let (normal, a, b) = match dist {
            Distribution::Uniform { low, high } => (0i32, low, high),
            Distribution::Normal { mean, std } => (1, mean, std),
        };
        self.bind()?;
        launch!(
            self,
            format!("random_{dtype}"),
            grid(n.div_ceil(4), ELEMENTWISE_THREADS),
            py,
            n,
            seed,
            normal,
            a,
            b
        )?;
        Ok(out)
    }
}
