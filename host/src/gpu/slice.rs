//! The devices a worker is pinned to, as the guest's `device` interface
//! reports them, each with the worker's own backend (its memory account).

use std::sync::Arc;

use wasmpod_tensor::cpu::CpuBackend;
use wasmpod_tensor::cuda::CudaBackend;
use wasmpod_tensor::{Device, MemoryAccount, TensorError};

/// Which tensor backend a worker computes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendChoice {
    /// CUDA when a usable GPU is visible, else the CPU.
    #[default]
    Auto,
    /// The CPU backend, even when a GPU is visible.
    Cpu,
    /// Every visible CUDA device; an error when none is usable.
    Cuda,
}

/// Kind of compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

/// One device as a guest sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    pub name: String,
    pub uuid: String,
    pub mig_profile: Option<String>,
    pub memory_bytes: u64,
}

impl DeviceInfo {
    /// The host CPU, named after /proc/cpuinfo's model name.
    pub fn host_cpu() -> Self {
        let name = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "cpu".to_string());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| {
                        l.split_whitespace()
                            .nth(1)
                            .and_then(|kb| kb.parse::<u64>().ok())
                    })
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        Self {
            kind: DeviceKind::Cpu,
            name,
            uuid: "cpu".into(),
            mig_profile: None,
            memory_bytes,
        }
    }
}

/// A worker's devices: index i in `devices` is the guest's device index i.
/// All of them charge one memory account, the worker's quota.
pub struct WorkerDevices {
    devices: Vec<(DeviceInfo, Device)>,
    account: Arc<MemoryAccount>,
}

impl WorkerDevices {
    /// A CPU worker with `quota_bytes` of tensor memory.
    pub fn cpu(quota_bytes: u64) -> Arc<Self> {
        let account = MemoryAccount::new("worker tensor memory", quota_bytes);
        let device = Device::new(Arc::new(CpuBackend::new(Arc::clone(&account))));
        Arc::new(Self {
            devices: vec![(DeviceInfo::host_cpu(), device)],
            account,
        })
    }

    /// A worker on every CUDA device this process sees (an executor pinned
    /// with CUDA_VISIBLE_DEVICES sees exactly its slice), one stream each,
    /// all charging one quota of `quota_bytes`.
    pub fn cuda(quota_bytes: u64) -> Result<Arc<Self>, TensorError> {
        let count = wasmpod_tensor::cuda::device_count();
        if count == 0 {
            return Err(TensorError::DeviceFault(
                "no usable CUDA device (driver, cuBLAS or NVRTC missing, or no GPU visible); \
                 use the CPU backend instead"
                    .into(),
            ));
        }
        let account = MemoryAccount::new("worker tensor memory", quota_bytes);
        let mut devices = Vec::with_capacity(count);
        for ordinal in 0..count {
            let backend = CudaBackend::new(ordinal, Arc::clone(&account))?;
            let info = DeviceInfo {
                kind: DeviceKind::Cuda,
                name: backend.device_name().to_string(),
                uuid: format!("cuda:{ordinal}"),
                mig_profile: None,
                memory_bytes: backend.total_memory()?,
            };
            devices.push((info, Device::new(Arc::new(backend))));
        }
        Ok(Arc::new(Self { devices, account }))
    }

    /// The devices `choice` asks for: CUDA when asked (or, for `Auto`, when
    /// a GPU is usable), else the CPU.
    pub fn select(choice: BackendChoice, quota_bytes: u64) -> Result<Arc<Self>, TensorError> {
        match choice {
            BackendChoice::Cpu => Ok(Self::cpu(quota_bytes)),
            BackendChoice::Cuda => Self::cuda(quota_bytes),
            BackendChoice::Auto if wasmpod_tensor::cuda::available() => Self::cuda(quota_bytes),
            BackendChoice::Auto => Ok(Self::cpu(quota_bytes)),
        }
    }

    /// Build from explicit devices (GPU slices, tests).
    pub fn new(devices: Vec<(DeviceInfo, Device)>, account: Arc<MemoryAccount>) -> Arc<Self> {
        assert!(!devices.is_empty(), "a worker has at least one device");
        Arc::new(Self { devices, account })
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The device at `index`, if the slice has one.
    pub fn device(&self, index: usize) -> Option<&Device> {
        self.devices.get(index).map(|(_, d)| d)
    }

    /// The first device: where new tensors and model weights go.
    pub fn primary(&self) -> &Device {
        &self.devices[0].1
    }

    pub fn infos(&self) -> impl Iterator<Item = &DeviceInfo> {
        self.devices.iter().map(|(i, _)| i)
    }

    /// Index of the device whose backend owns `t`'s storage.
    pub fn index_of(&self, t: &wasmpod_tensor::Tensor) -> usize {
        self.devices
            .iter()
            .position(|(_, d)| d.backend().owns(t))
            .unwrap_or(0)
    }

    pub fn account(&self) -> &Arc<MemoryAccount> {
        &self.account
    }
}
