//! `wasmpod:serverless/device`: what the worker is pinned to.

use std::sync::Arc;

use crate::gpu::{DeviceKind, WorkerDevices};
use crate::runtime::bindings::device::{self, DeviceInfo};

/// The device interface's share of an instance's state: the slice's devices
/// (the same ones the tensor interface computes on).
pub struct DeviceCtx {
    pub(crate) devices: Arc<WorkerDevices>,
}

impl device::Host for DeviceCtx {
    fn devices(&mut self) -> wasmtime::Result<Vec<DeviceInfo>> {
        Ok(self
            .devices
            .infos()
            .enumerate()
            .map(|(index, d)| DeviceInfo {
                index: index as u32,
                kind: match d.kind {
                    DeviceKind::Cpu => device::DeviceKind::Cpu,
                    DeviceKind::Cuda => device::DeviceKind::Cuda,
                },
                name: d.name.clone(),
                uuid: d.uuid.clone(),
                mig_profile: d.mig_profile.clone(),
                memory_bytes: d.memory_bytes,
            })
            .collect())
    }

    fn quota_bytes(&mut self) -> wasmtime::Result<u64> {
        Ok(self.devices.account().limit())
    }

    fn used_bytes(&mut self) -> wasmtime::Result<u64> {
        Ok(self.devices.account().used())
    }
}
