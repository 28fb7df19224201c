//! The NVRTC-compiled kernels. Each program is prelude.cu (shared types
//! and helpers) plus kernels: `kernels.cu` (the base ops) with `image.cu`
//! (the image ops and the elementwise long tail), loaded when a device
//! opens, and `decoder.cu`, compiled on first use once per float dtype
//! (and once for the dtype-free in-place writes), so a worker pays only for
//! the decoder kernels of the dtype its model uses, and workers that never
//! decode pay nothing. Each is compiled once per process and GPU
//! architecture to PTX (the driver JITs it at load and keeps the result in
//! its on-disk compute cache, so later processes load it at once), loaded
//! once per device context, and its functions looked up by name through a
//! cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};

use super::device::fault;
use crate::TensorError;

/// The programs, each compiled and loaded as one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Program {
    Base,
    /// decoder.cu for one float dtype ("f32", "f16", "bf16").
    Decoder(&'static str),
    /// decoder.cu's in-place writes.
    Writes,
}

impl Program {
    fn source(self) -> String {
        const PRELUDE: &str = include_str!("prelude.cu");
        match self {
            Program::Base => format!(
                "{PRELUDE}\n{}\n{}",
                include_str!("kernels.cu"),
                include_str!("image.cu")
            ),
            Program::Decoder(dtype) => {
                let c_type = match dtype {
                    "f32" => "float",
                    "f16" => "f16s",
                    _ => "bf16s",
                };
                format!(
                    "{PRELUDE}\n#define DECODER_DTYPE(X) X({dtype}, {c_type})\n{}",
                    include_str!("decoder.cu")
                )
            }
            Program::Writes => format!(
                "{PRELUDE}\n#define DECODER_WRITES 1\n{}",
                include_str!("decoder.cu")
            ),
        }
    }

    /// The program defining kernel `name` (decoder.cu's kernels by their
    /// prefixes, their dtype by the name's `_<dtype>` part).
    fn of(name: &str) -> Self {
        const DECODER: [&str; 7] = [
            "gemv",
            "linear_init_",
            "silu_mul_",
            "rope_",
            "cache_append_",
            "attention_",
            "sample_",
        ];
        if name.starts_with("write_w") {
            return Program::Writes;
        }
        if !DECODER.iter().any(|p| name.starts_with(p)) {
            return Program::Base;
        }
        let dtype = name
            .split('_')
            .find(|part| matches!(*part, "f32" | "f16" | "bf16"))
            .unwrap_or("f32");
        Program::Decoder(match dtype {
            "f16" => "f16",
            "bf16" => "bf16",
            _ => "f32",
        })
    }
}

/// PTX by (program, architecture "compute_90"): NVRTC runs once per
/// process for each, whatever the number of devices and workers.
static COMPILED: Mutex<Vec<(Program, String, Ptx)>> = Mutex::new(Vec::new());

/// Time spent compiling and loading decoder programs in this process.
static DECODER_TIME: Mutex<Duration> = Mutex::new(Duration::ZERO);

/// Wall time this process spent compiling (NVRTC) and loading (the
/// driver's JIT, unless its cache had them) decoder programs: the one-off
/// cost of a worker's first decoder op.
pub fn decoder_compile_time() -> Duration {
    *DECODER_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The modules of one context and their functions, resolved on first use.
pub(crate) struct Kernels {
    ctx: Arc<CudaContext>,
    arch: String,
    modules: Mutex<HashMap<Program, Arc<CudaModule>>>,
    functions: RwLock<HashMap<String, CudaFunction>>,
}

fn ptx_for(program: Program, arch: &str) -> Result<Ptx, TensorError> {
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, ptx)) = compiled.iter().find(|(p, a, _)| *p == program && a == arch) {
        return Ok(ptx.clone());
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some("wasmpod_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(program.source(), opts).map_err(|e| {
        TensorError::DeviceFault(format!(
            "cuda: compiling the kernels ({program:?}) for {arch}: {e}"
        ))
    })?;
    compiled.push((program, arch.to_string(), ptx.clone()));
    Ok(ptx)
}

impl Kernels {
    pub(crate) fn load(
        ctx: &Arc<CudaContext>,
        major: i32,
        minor: i32,
    ) -> Result<Self, TensorError> {
        let kernels = Self {
            ctx: Arc::clone(ctx),
            arch: format!("compute_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
            functions: RwLock::new(HashMap::new()),
        };
        kernels.module(Program::Base)?;
        Ok(kernels)
    }

    /// The loaded module of `program`, compiled and loaded on first use.
    fn module(&self, program: Program) -> Result<Arc<CudaModule>, TensorError> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(&program) {
            return Ok(Arc::clone(m));
        }
        let started = Instant::now();
        let module = self
            .ctx
            .load_module(ptx_for(program, &self.arch)?)
            .map_err(fault("loading the kernels"))?;
        if program != Program::Base {
            *DECODER_TIME.lock().unwrap_or_else(|p| p.into_inner()) += started.elapsed();
        }
        modules.insert(program, Arc::clone(&module));
        Ok(module)
    }

    /// The kernel called `name` in kernels.cu, image.cu or decoder.cu.
    pub(crate) fn get(&self, name: &str) -> Result<CudaFunction, TensorError> {
        if let Some(f) = self
            .functions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(f.clone());
        }
        let f = self
            .module(Program::of(name))?
            .load_function(name)
            .map_err(|e| TensorError::DeviceFault(format!("cuda: kernel {name}: {e:?}")))?;
        self.functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), f.clone());
        Ok(f)
    }
}
