//! The device inventory: GPUs (whole, or split into MIG instances) found by
//! NVML at run time, or declared in a simulated inventory file for machines
//! without GPUs and for tests; the CPU is always there.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::slice::DeviceInfo;

/// Why the inventory could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("reading the simulated inventory {path}: {message}")]
    SimulatedFile { path: String, message: String },
    #[error("invalid simulated inventory: {0}")]
    Invalid(String),
}

/// Where an inventory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InventorySource {
    /// NVML found no GPU (or is not installed): CPU only.
    CpuOnly,
    /// GPUs read from NVML.
    Nvml,
    /// GPUs declared in a file; their work runs on the CPU backend.
    Simulated,
}

/// One MIG instance of a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigDevice {
    pub uuid: String,
    /// Profile such as "3g.40gb".
    pub profile: String,
    pub memory_bytes: u64,
}

/// One physical GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// NVML index (the CUDA_VISIBLE_DEVICES ordinal).
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub memory_bytes: u64,
    pub mig_enabled: bool,
    /// MIG instances when `mig_enabled`.
    pub mig_devices: Vec<MigDevice>,
}

/// Everything a host can place workers on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    pub source: InventorySource,
    pub gpus: Vec<Gpu>,
    pub cpu: DeviceInfo,
    /// Why NVML was not used, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Inventory {
    /// The inventory of this machine: a simulated one when `simulated` is
    /// given, else NVML's (loaded at run time), else CPU only.
    pub fn discover(simulated: Option<&Path>) -> Result<Self, InventoryError> {
        if let Some(path) = simulated {
            return Self::simulated_from_file(path);
        }
        match nvml_gpus() {
            Ok(gpus) if !gpus.is_empty() => Ok(Self {
                source: InventorySource::Nvml,
                gpus,
                cpu: DeviceInfo::host_cpu(),
                note: None,
            }),
            Ok(_) => Ok(Self::cpu_only(Some("NVML reports no GPU".into()))),
            Err(e) => Ok(Self::cpu_only(Some(format!(
                "NVML unavailable ({e}); CPU only"
            )))),
        }
    }

    /// A CPU-only inventory.
    pub fn cpu_only(note: Option<String>) -> Self {
        Self {
            source: InventorySource::CpuOnly,
            gpus: Vec::new(),
            cpu: DeviceInfo::host_cpu(),
            note,
        }
    }

    /// Parse a simulated inventory (TOML). Example:
    ///
    /// ```toml
    /// [[gpu]]
    /// name = "NVIDIA H100 80GB HBM3"
    /// memory_gib = 80
    /// count = 1
    ///
    /// [[gpu]]
    /// name = "NVIDIA H100 80GB HBM3"
    /// memory_gib = 80
    /// mig = ["3g.40gb", "3g.40gb"]
    /// ```
    pub fn simulated(text: &str) -> Result<Self, InventoryError> {
        let file: SimulatedFile =
            toml::from_str(text).map_err(|e| InventoryError::Invalid(e.to_string()))?;
        let mut gpus = Vec::new();
        for spec in file.gpu {
            if spec.name.trim().is_empty() {
                return Err(InventoryError::Invalid("every [[gpu]] needs a name".into()));
            }
            for _ in 0..spec.count.unwrap_or(1) {
                let index = gpus.len() as u32;
                let memory_bytes = (spec.memory_gib * (1u64 << 30) as f64) as u64;
                let mig_devices: Vec<MigDevice> = spec
                    .mig
                    .iter()
                    .enumerate()
                    .map(|(i, profile)| {
                        Ok(MigDevice {
                            uuid: format!("MIG-sim-{index}-{i}"),
                            profile: profile.clone(),
                            memory_bytes: mig_memory(profile)?,
                        })
                    })
                    .collect::<Result<_, InventoryError>>()?;
                gpus.push(Gpu {
                    index,
                    uuid: format!("GPU-sim-{index}"),
                    name: spec.name.clone(),
                    memory_bytes,
                    mig_enabled: !mig_devices.is_empty(),
                    mig_devices,
                });
            }
        }
        Ok(Self {
            source: InventorySource::Simulated,
            gpus,
            cpu: DeviceInfo::host_cpu(),
            note: None,
        })
    }

    pub fn simulated_from_file(path: &Path) -> Result<Self, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError::SimulatedFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::simulated(&text)
    }

    /// A human-readable table, as `wasmpod gpus` prints it.
    pub fn render(&self) -> String {
        let mut out = format!("source: {:?}\n", self.source).to_lowercase();
        if let Some(note) = &self.note {
            out.push_str(&format!("note: {note}\n"));
        }
        for g in &self.gpus {
            out.push_str(&format!(
                "gpu {}: {} ({:.1} GiB) {}{}\n",
                g.index,
                g.name,
                g.memory_bytes as f64 / (1u64 << 30) as f64,
                g.uuid,
                if g.mig_enabled { " [MIG]" } else { "" }
            ));
            for m in &g.mig_devices {
                out.push_str(&format!(
                    "  mig {}: {:.1} GiB {}\n",
                    m.profile,
                    m.memory_bytes as f64 / (1u64 << 30) as f64,
                    m.uuid
                ));
            }
        }
        out.push_str(&format!(
            "cpu: {} ({:.1} GiB)\n",
            self.cpu.name,
            self.cpu.memory_bytes as f64 / (1u64 << 30) as f64
        ));
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedFile {
    #[serde(default)]
    gpu: Vec<SimulatedGpu>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedGpu {
    name: String,
    memory_gib: f64,
    count: Option<u32>,
    #[serde(default)]
    mig: Vec<String>,
}

/// Memory of a MIG profile "<n>g.<m>gb".
fn mig_memory(profile: &str) -> Result<u64, InventoryError> {
    profile
        .split_once('.')
        .and_then(|(_, mem)| mem.strip_suffix("gb"))
        .and_then(|gb| gb.parse::<u64>().ok())
        .map(|gb| gb << 30)
        .ok_or_else(|| {
            InventoryError::Invalid(format!(
                "MIG profile {profile:?} is not of the form 3g.40gb"
            ))
        })
}

/// Memory in use on one device now, as NVML reports it (the driver's view:
/// every process's allocations and contexts on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceMemory {
    /// The device key: "gpu0", or "gpu1/mig0" for a MIG instance.
    pub device: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

impl Inventory {
    /// Memory in use on each GPU and MIG instance now; empty unless the
    /// inventory came from NVML (simulated and CPU-only hosts have no
    /// device memory to read).
    pub fn memory_used(&self) -> Vec<DeviceMemory> {
        if self.source != InventorySource::Nvml {
            return Vec::new();
        }
        static NVML: std::sync::OnceLock<Option<nvml_wrapper::Nvml>> = std::sync::OnceLock::new();
        let Some(nvml) = NVML.get_or_init(|| nvml_wrapper::Nvml::init().ok()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for gpu in &self.gpus {
            let Ok(dev) = nvml.device_by_index(gpu.index) else {
                continue;
            };
            if gpu.mig_enabled {
                for i in 0..gpu.mig_devices.len() as u32 {
                    if let Ok(m) = dev.mig_device_by_index(i).and_then(|m| m.memory_info()) {
                        out.push(DeviceMemory {
                            device: format!("gpu{}/mig{i}", gpu.index),
                            used_bytes: m.used,
                            total_bytes: m.total,
                        });
                    }
                }
            } else if let Ok(m) = dev.memory_info() {
                out.push(DeviceMemory {
                    device: format!("gpu{}", gpu.index),
                    used_bytes: m.used,
                    total_bytes: m.total,
                });
            }
        }
        out
    }
}

/// GPUs as NVML reports them. NVML is loaded at run time, so this fails
/// cleanly on machines without the driver.
fn nvml_gpus() -> Result<Vec<Gpu>, nvml_wrapper::error::NvmlError> {
    let nvml = nvml_wrapper::Nvml::init()?;
    let mut gpus = Vec::new();
    for index in 0..nvml.device_count()? {
        let dev = nvml.device_by_index(index)?;
        let mig_enabled = dev.mig_mode().map(|m| m.current == 1).unwrap_or(false);
        let mut mig_devices = Vec::new();
        if mig_enabled {
            for i in 0..dev.mig_device_count().unwrap_or(0) {
                let Ok(mig) = dev.mig_device_by_index(i) else {
                    continue;
                };
                let name = mig.name().unwrap_or_default();
                mig_devices.push(MigDevice {
                    uuid: mig.uuid()?,
                    profile: name.rsplit(' ').next().unwrap_or("").to_string(),
                    memory_bytes: mig.memory_info().map(|m| m.total).unwrap_or(0),
                });
            }
        }
        gpus.push(Gpu {
            index,
            uuid: dev.uuid()?,
            name: dev.name()?,
            memory_bytes: dev.memory_info()?.total,
            mig_enabled,
            mig_devices,
        });
    }
    Ok(gpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_inventory_with_mig() {
        let inv = Inventory::simulated(
            r#"
            [[gpu]]
            name = "NVIDIA H100 80GB HBM3"
            memory_gib = 80
            [[gpu]]
            name = "NVIDIA H100 80GB HBM3"
            memory_gib = 80
            mig = ["3g.40gb", "3g.40gb"]
            "#,
        )
        .unwrap();
        assert_eq!(inv.gpus.len(), 2);
        assert!(!inv.gpus[0].mig_enabled);
        assert!(inv.gpus[1].mig_enabled);
        assert_eq!(inv.gpus[1].mig_devices.len(), 2);
        assert_eq!(inv.gpus[1].mig_devices[0].memory_bytes, 40 << 30);
        assert!(inv.render().contains("mig 3g.40gb"));
    }

    #[test]
    fn count_expands_and_bad_profiles_are_refused() {
        let inv =
            Inventory::simulated("[[gpu]]\nname = \"A100\"\nmemory_gib = 40\ncount = 4\n").unwrap();
        assert_eq!(
            inv.gpus.iter().map(|g| g.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        let err =
            Inventory::simulated("[[gpu]]\nname = \"A100\"\nmemory_gib = 40\nmig = [\"big\"]\n")
                .unwrap_err();
        assert!(err.to_string().contains("not of the form 3g.40gb"), "{err}");
        let err = Inventory::simulated("[[gpu]]\nname = \"A100\"\nmemroy_gib = 40\n").unwrap_err();
        assert!(err.to_string().contains("memroy_gib"), "{err}");
    }
}
