//! `wasmpod:serverless/device`: what the worker is pinned to.

use crate::gpu::DeviceKind;
use crate::runtime::bindings::device::{self, DeviceInfo};
use crate::runtime::state::WorkerState;

impl device::Host for WorkerState {
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
