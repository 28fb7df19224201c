//! The device types an endpoint's `gpus` list may name: NVIDIA's GPU
//! models and MIG profiles (whether or not this host has them: a fleet's
//! endpoints are configured before every host is), "cpu", and "any"/"gpu".
//! A name that is none of these is a typo and is refused, listing the
//! names; a known type this host lacks is accepted, with a warning.

use super::Inventory;

/// NVIDIA GPU models, most recent first. An entry matches a `gpus` name
/// equal to it or starting with it followed by a separator ("H100",
/// "H100 80GB HBM3", "A100-SXM4-80GB"), after an optional "NVIDIA",
/// "GeForce" or "Tesla".
pub const GPU_MODELS: &[&str] = &[
    "B300",
    "GB300",
    "B200",
    "GB200",
    "B100",
    "H200",
    "GH200",
    "H100",
    "H800",
    "H20",
    "L40S",
    "L40",
    "L20",
    "L4",
    "A100",
    "A800",
    "A40",
    "A30",
    "A16",
    "A10G",
    "A10",
    "A2",
    "V100",
    "T4",
    "P100",
    "P40",
    "P4",
    "RTX PRO 6000",
    "RTX 6000 Ada",
    "RTX 5000 Ada",
    "RTX 4000 Ada",
    "RTX A6000",
    "RTX A5000",
    "RTX A4500",
    "RTX A4000",
    "RTX 5090",
    "RTX 5080",
    "RTX 4090",
    "RTX 4080",
    "RTX 4070 Ti",
    "RTX 4070",
    "RTX 3090 Ti",
    "RTX 3090",
    "RTX 3080 Ti",
    "RTX 3080",
    "RTX 3070",
];

/// MIG profiles of the GPUs that have MIG (A30, A100, H100, H200, B200...),
/// written as in `nvidia-smi mig -lgip`; `gpus` names them `MIG-<profile>`.
pub const MIG_PROFILES: &[&str] = &[
    "1g.5gb",
    "1g.5gb+me",
    "1g.6gb",
    "1g.6gb+me",
    "1g.10gb",
    "1g.10gb+me",
    "1g.12gb",
    "1g.12gb+me",
    "1g.18gb",
    "1g.18gb+me",
    "1g.20gb",
    "1g.23gb",
    "1g.23gb+me",
    "1g.24gb",
    "1g.35gb",
    "1g.45gb",
    "1g.47gb",
    "2g.10gb",
    "2g.12gb",
    "2g.12gb+me",
    "2g.20gb",
    "2g.24gb",
    "2g.35gb",
    "2g.45gb",
    "3g.20gb",
    "3g.40gb",
    "3g.47gb",
    "3g.48gb",
    "3g.71gb",
    "3g.90gb",
    "4g.20gb",
    "4g.24gb",
    "4g.40gb",
    "4g.47gb",
    "4g.48gb",
    "4g.71gb",
    "4g.90gb",
    "7g.40gb",
    "7g.80gb",
    "7g.94gb",
    "7g.96gb",
    "7g.141gb",
    "7g.180gb",
];

/// What a `gpus` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cpu,
    /// "any" or "gpu": every GPU.
    AnyGpu,
    Model,
    Mig,
}

fn model_matches(wanted: &str, model: &str) -> bool {
    let w = wanted.trim().to_ascii_lowercase();
    let mut w = w.as_str();
    for vendor in ["nvidia ", "geforce ", "tesla "] {
        w = w.strip_prefix(vendor).unwrap_or(w);
    }
    let m = model.to_ascii_lowercase();
    match w.strip_prefix(m.as_str()) {
        Some("") => true,
        Some(rest) => rest.starts_with([' ', '-', '_']),
        None => false,
    }
}

/// Classify a `gpus` entry; `None` when it names nothing wasmpod knows and
/// nothing on this host.
pub fn classify(wanted: &str, inventory: &Inventory) -> Option<Kind> {
    let w = wanted.trim();
    if w.eq_ignore_ascii_case("cpu") {
        return Some(Kind::Cpu);
    }
    if w.eq_ignore_ascii_case("any") || w.eq_ignore_ascii_case("gpu") {
        return Some(Kind::AnyGpu);
    }
    if let Some(profile) = w.strip_prefix("MIG-").or_else(|| w.strip_prefix("mig-")) {
        let known = MIG_PROFILES.iter().any(|p| p.eq_ignore_ascii_case(profile))
            || inventory
                .gpus
                .iter()
                .flat_map(|g| &g.mig_devices)
                .any(|m| m.profile.eq_ignore_ascii_case(profile));
        return known.then_some(Kind::Mig);
    }
    let lower = w.to_lowercase();
    let known = GPU_MODELS.iter().any(|m| model_matches(w, m))
        // A host's own GPUs (as NVML or a simulated inventory names them)
        // are always known, by the same substring match placement uses.
        || (!lower.is_empty()
            && inventory
                .gpus
                .iter()
                .any(|g| g.name.to_lowercase().contains(&lower)));
    known.then_some(Kind::Model)
}

/// The names a `gpus` list may use, for error messages.
pub fn known_names() -> String {
    let mut names: Vec<String> = vec!["cpu".into(), "any".into()];
    names.extend(GPU_MODELS.iter().map(|m| m.to_string()));
    names.extend(MIG_PROFILES.iter().map(|p| format!("MIG-{p}")));
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_profiles_and_host_names() {
        let inv = Inventory::simulated(
            "[[gpu]]\nname = \"Acme Tensor X1\"\nmemory_gib = 8\nmig = [\"9g.99gb\"]\n",
        )
        .unwrap();
        for (name, kind) in [
            ("cpu", Kind::Cpu),
            ("CPU", Kind::Cpu),
            ("any", Kind::AnyGpu),
            ("H100", Kind::Model),
            ("h100", Kind::Model),
            ("NVIDIA H100 80GB HBM3", Kind::Model),
            ("A100-SXM4-80GB", Kind::Model),
            ("A10", Kind::Model),
            ("NVIDIA GeForce RTX 4090", Kind::Model),
            ("MIG-3g.40gb", Kind::Mig),
            ("MIG-1g.10gb+me", Kind::Mig),
            ("Tensor X1", Kind::Model),
            ("MIG-9g.99gb", Kind::Mig),
        ] {
            assert_eq!(classify(name, &inv), Some(kind), "{name}");
        }
        for bad in ["H9000", "A1000", "H100x", "MIG-3g.41gb", "gpu0", ""] {
            assert_eq!(classify(bad, &inv), None, "{bad}");
        }
        assert!(known_names().contains("MIG-7g.141gb"));
    }
}
