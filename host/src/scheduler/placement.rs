//! Placement of workers onto slices: a whole GPU, a MIG instance, a group of
//! N whole GPUs of one host, or the CPU, picked by the endpoint's GPU
//! priority list (first entry that has a free slice wins).

use std::collections::HashSet;

use crate::executor::SliceSpec;
use crate::gpu::{DeviceInfo, DeviceKind, Gpu, Inventory, InventorySource, MigDevice};

/// A slice chosen for a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub spec: SliceSpec,
    /// The billing/reporting type: "H100", "2xH100", "MIG-3g.40gb", "cpu".
    pub type_name: String,
    /// Device keys this slice occupies ("gpu0", "gpu1/mig0"); none for CPU.
    pub keys: Vec<String>,
}

/// Why no slice could be found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlacementError {
    /// Nothing in this host's inventory can ever satisfy the request.
    #[error(
        "no device on this host matches {wanted:?} with {gpus_per_worker} GPU(s) per worker; it has: {available}"
    )]
    NoMatch {
        wanted: Vec<String>,
        gpus_per_worker: u32,
        available: String,
    },
    /// Matching slices exist but all are taken: the worker is throttled.
    #[error("every slice matching {0:?} is in use")]
    Busy(Vec<String>),
}

/// Pick a slice for a worker. `busy` holds the keys of slices in use; the
/// CPU is never busy (each CPU worker gets its own slice id from `cpu_id`).
pub fn place(
    inventory: &Inventory,
    priority: &[String],
    gpus_per_worker: u32,
    busy: &HashSet<String>,
    cpu_id: usize,
) -> Result<Slice, PlacementError> {
    let n = gpus_per_worker.max(1) as usize;
    let simulated = inventory.source == InventorySource::Simulated;
    let mut any_match = false;
    for wanted in priority {
        let w = wanted.trim();
        if w.eq_ignore_ascii_case("cpu") {
            return Ok(slice_for_cpu(inventory, cpu_id));
        }
        if let Some(profile) = w.strip_prefix("MIG-").or_else(|| w.strip_prefix("mig-")) {
            if n != 1 {
                continue;
            }
            for gpu in inventory.gpus.iter().filter(|g| g.mig_enabled) {
                for (i, mig) in gpu.mig_devices.iter().enumerate() {
                    if !mig.profile.eq_ignore_ascii_case(profile) {
                        continue;
                    }
                    any_match = true;
                    let key = format!("gpu{}/mig{i}", gpu.index);
                    if !busy.contains(&key) {
                        return Ok(mig_slice(gpu, i, mig, key, simulated));
                    }
                }
            }
            continue;
        }
        let candidates: Vec<&Gpu> = inventory
            .gpus
            .iter()
            .filter(|g| !g.mig_enabled && matches_gpu(w, &g.name))
            .collect();
        if candidates.len() >= n {
            any_match = true;
            let free: Vec<&Gpu> = candidates
                .into_iter()
                .filter(|g| !busy.contains(&gpu_key(g)))
                .take(n)
                .collect();
            if free.len() == n {
                return Ok(gpu_slice(w, &free, simulated));
            }
        }
    }
    if any_match {
        Err(PlacementError::Busy(priority.to_vec()))
    } else {
        Err(PlacementError::NoMatch {
            wanted: priority.to_vec(),
            gpus_per_worker,
            available: describe(inventory),
        })
    }
}

/// Like [`place`], but when `preferred` (a slice holding something of the
/// worker's, e.g. its endpoint's parked FlashBoot state) is free and of the
/// same type as the slice `place` picks, that slice instead. The priority
/// list still decides the type.
pub fn place_preferring(
    inventory: &Inventory,
    priority: &[String],
    gpus_per_worker: u32,
    busy: &HashSet<String>,
    cpu_id: usize,
    preferred: &[Slice],
) -> Result<Slice, PlacementError> {
    let picked = place(inventory, priority, gpus_per_worker, busy, cpu_id)?;
    let free = |s: &&Slice| !s.keys.iter().any(|k| busy.contains(k));
    Ok(preferred
        .iter()
        .filter(free)
        .find(|s| {
            s.type_name == picked.type_name && s.spec.devices.len() == picked.spec.devices.len()
        })
        .cloned()
        .unwrap_or(picked))
}

/// A CPU slice (the CPU is always a device; CPU workers never conflict).
pub fn slice_for_cpu(inventory: &Inventory, id: usize) -> Slice {
    Slice {
        spec: SliceSpec {
            id: format!("cpu{id}"),
            devices: vec![inventory.cpu.clone()],
            cuda_visible_devices: None,
            cuda: false,
        },
        type_name: "cpu".into(),
        keys: Vec::new(),
    }
}

/// "any" or "gpu" matches every GPU; otherwise a case-insensitive substring
/// of the GPU's name ("H100" matches "NVIDIA H100 80GB HBM3").
fn matches_gpu(wanted: &str, name: &str) -> bool {
    wanted.eq_ignore_ascii_case("any")
        || wanted.eq_ignore_ascii_case("gpu")
        || name.to_lowercase().contains(&wanted.to_lowercase())
}

fn gpu_key(g: &Gpu) -> String {
    format!("gpu{}", g.index)
}

fn gpu_device(g: &Gpu) -> DeviceInfo {
    DeviceInfo {
        kind: DeviceKind::Cuda,
        name: g.name.clone(),
        uuid: g.uuid.clone(),
        mig_profile: None,
        memory_bytes: g.memory_bytes,
    }
}

fn gpu_slice(wanted: &str, gpus: &[&Gpu], simulated: bool) -> Slice {
    let indices: Vec<String> = gpus.iter().map(|g| g.index.to_string()).collect();
    let id = if gpus.len() == 1 {
        format!("gpu{}", indices[0])
    } else {
        format!("gpus{}", indices.join("-"))
    };
    let type_name = if gpus.len() == 1 {
        wanted.to_string()
    } else {
        format!("{}x{wanted}", gpus.len())
    };
    Slice {
        spec: SliceSpec {
            id,
            devices: gpus.iter().map(|g| gpu_device(g)).collect(),
            cuda_visible_devices: (!simulated).then(|| indices.join(",")),
            cuda: !simulated,
        },
        type_name,
        keys: gpus.iter().map(|g| gpu_key(g)).collect(),
    }
}

fn mig_slice(gpu: &Gpu, i: usize, mig: &MigDevice, key: String, simulated: bool) -> Slice {
    Slice {
        spec: SliceSpec {
            id: format!("gpu{}-mig{i}", gpu.index),
            devices: vec![DeviceInfo {
                kind: DeviceKind::Cuda,
                name: format!("{} MIG {}", gpu.name, mig.profile),
                uuid: mig.uuid.clone(),
                mig_profile: Some(mig.profile.clone()),
                memory_bytes: mig.memory_bytes,
            }],
            cuda_visible_devices: (!simulated).then(|| mig.uuid.clone()),
            cuda: !simulated,
        },
        type_name: format!("MIG-{}", mig.profile),
        keys: vec![key],
    }
}

fn describe(inventory: &Inventory) -> String {
    let mut parts: Vec<String> = Vec::new();
    for g in &inventory.gpus {
        if g.mig_enabled {
            for m in &g.mig_devices {
                parts.push(format!("MIG-{} (on gpu {})", m.profile, g.index));
            }
        } else {
            parts.push(format!("{} (gpu {})", g.name, g.index));
        }
    }
    parts.push("cpu".into());
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        Inventory::simulated(
            r#"
            [[gpu]]
            name = "NVIDIA H100 80GB HBM3"
            memory_gib = 80
            count = 4
            [[gpu]]
            name = "NVIDIA H100 80GB HBM3"
            memory_gib = 80
            mig = ["3g.40gb", "3g.40gb"]
            [[gpu]]
            name = "NVIDIA A100-SXM4-40GB"
            memory_gib = 40
            "#,
        )
        .unwrap()
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn priority_order_and_fallback() {
        let inv = inv();
        let mut busy = HashSet::new();
        let s = place(&inv, &list(&["A100", "H100"]), 1, &busy, 0).unwrap();
        assert_eq!((s.spec.id.as_str(), s.type_name.as_str()), ("gpu5", "A100"));
        busy.extend(s.keys);
        // A100 taken: fall back to H100, whole GPUs only (gpu4 is in MIG mode).
        let s = place(&inv, &list(&["A100", "H100"]), 1, &busy, 0).unwrap();
        assert_eq!(s.spec.id, "gpu0");
        assert!(!s.spec.cuda, "simulated slices compute on the CPU backend");
    }

    #[test]
    fn mig_slices_and_throttling() {
        let inv = inv();
        let mut busy = HashSet::new();
        for expected in ["gpu4-mig0", "gpu4-mig1"] {
            let s = place(&inv, &list(&["MIG-3g.40gb"]), 1, &busy, 0).unwrap();
            assert_eq!(s.spec.id, expected);
            assert_eq!(s.type_name, "MIG-3g.40gb");
            assert_eq!(s.spec.devices[0].mig_profile.as_deref(), Some("3g.40gb"));
            busy.extend(s.keys);
        }
        assert_eq!(
            place(&inv, &list(&["MIG-3g.40gb"]), 1, &busy, 0),
            Err(PlacementError::Busy(list(&["MIG-3g.40gb"])))
        );
        let cpu = place(&inv, &list(&["MIG-3g.40gb", "cpu"]), 1, &busy, 7).unwrap();
        assert_eq!(
            (cpu.spec.id.as_str(), cpu.type_name.as_str()),
            ("cpu7", "cpu")
        );
    }

    #[test]
    fn a_free_preferred_slice_of_the_picked_type_wins() {
        let inv = inv();
        let busy = HashSet::new();
        let h100 = list(&["H100"]);
        // An endpoint's worker parked on gpu2: its next start goes there.
        let gpu2 = place(
            &inv,
            &h100,
            1,
            &["gpu0", "gpu1"].map(String::from).into(),
            0,
        )
        .unwrap();
        assert_eq!(gpu2.spec.id, "gpu2");
        let s = place_preferring(&inv, &h100, 1, &busy, 0, std::slice::from_ref(&gpu2)).unwrap();
        assert_eq!(s.spec.id, "gpu2");
        // Not while gpu2 is busy...
        let taken: HashSet<String> = gpu2.keys.iter().cloned().collect();
        let s = place_preferring(&inv, &h100, 1, &taken, 0, std::slice::from_ref(&gpu2)).unwrap();
        assert_eq!(s.spec.id, "gpu0");
        // ...and never against the priority list: A100 first means A100.
        let s = place_preferring(&inv, &list(&["A100", "H100"]), 1, &busy, 0, &[gpu2]).unwrap();
        assert_eq!(s.spec.id, "gpu5");
    }

    #[test]
    fn gpu_groups_do_not_overlap() {
        let inv = inv();
        let mut busy = HashSet::new();
        let a = place(&inv, &list(&["H100"]), 2, &busy, 0).unwrap();
        assert_eq!(
            (a.spec.id.as_str(), a.type_name.as_str()),
            ("gpus0-1", "2xH100")
        );
        assert_eq!(a.spec.devices.len(), 2);
        busy.extend(a.keys.clone());
        let b = place(&inv, &list(&["H100"]), 2, &busy, 0).unwrap();
        assert_eq!(b.spec.id, "gpus2-3");
        busy.extend(b.keys);
        assert!(matches!(
            place(&inv, &list(&["H100"]), 2, &busy, 0),
            Err(PlacementError::Busy(_))
        ));
        let four = place(&inv, &list(&["H100"]), 4, &HashSet::new(), 0).unwrap();
        assert_eq!(four.keys, list(&["gpu0", "gpu1", "gpu2", "gpu3"]));
        // Five whole H100s do not exist (one is in MIG mode).
        let err = place(&inv, &list(&["H100"]), 5, &HashSet::new(), 0).unwrap_err();
        assert!(matches!(err, PlacementError::NoMatch { .. }), "{err:?}");
        assert!(err.to_string().contains("MIG-3g.40gb (on gpu 4)"), "{err}");
    }
}
