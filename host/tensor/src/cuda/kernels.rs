//! The NVRTC-compiled kernels (kernels.cu and decoder.cu): compiled once per process for
//! each GPU architecture, loaded once per device context, and looked up by
//! name through a cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};

use super::device::fault;
use crate::TensorError;

/// kernels.cu, then decoder.cu (which uses its helpers): one NVRTC
/// program, one module.
const SOURCE: &str = concat!(include_str!("kernels.cu"), "\n", include_str!("decoder.cu"));

/// PTX by target architecture ("compute_90"): NVRTC runs once per process
/// and architecture, whatever the number of devices and workers.
static COMPILED: Mutex<Vec<(String, Ptx)>> = Mutex::new(Vec::new());

/// The kernel module of one context and its functions, resolved on first use.
pub(crate) struct Kernels {
    module: Arc<CudaModule>,
    functions: RwLock<HashMap<String, CudaFunction>>,
}

fn ptx_for(arch: &str) -> Result<Ptx, TensorError> {
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, ptx)) = compiled.iter().find(|(a, _)| a == arch) {
        return Ok(ptx.clone());
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some("wasmpod_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(SOURCE, opts).map_err(|e| {
        TensorError::DeviceFault(format!("cuda: compiling the kernels for {arch}: {e}"))
    })?;
    compiled.push((arch.to_string(), ptx.clone()));
    Ok(ptx)
}

impl Kernels {
    pub(crate) fn load(
        ctx: &Arc<CudaContext>,
        major: i32,
        minor: i32,
    ) -> Result<Self, TensorError> {
        let ptx = ptx_for(&format!("compute_{major}{minor}"))?;
        let module = ctx.load_module(ptx).map_err(fault("loading the kernels"))?;
        Ok(Self {
            module,
            functions: RwLock::new(HashMap::new()),
        })
    }

    /// The kernel called `name` in kernels.cu.
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
            .module
            .load_function(name)
            .map_err(|e| TensorError::DeviceFault(format!("cuda: kernel {name}: {e:?}")))?;
        self.functions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), f.clone());
        Ok(f)
    }
}
