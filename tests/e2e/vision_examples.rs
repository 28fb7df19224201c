//! End-to-end tests of the vision examples through the real `wasmpod run`:
//! `resnet` (a tiny random ResNet made by its make_model.py) against a
//! float64 NumPy forward pass, and `diffusion` (a small random UNet) with
//! one denoising step against a NumPy reference and a whole DDIM sampler
//! run (progress per step, PNGs, reproducible from its seed). The NumPy
//! references live in tests/fixtures/vision/; numpy is installed by
//! scripts/setup.sh (scripts/requirements-test.txt).

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;

use crate::common;

fn wasmpod_run(wasm: &Path, input: &str, models: &Path) -> Output {
    let home = tempfile::tempdir().expect("temp home");
    Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(home.path())
        .arg("run")
        .arg(wasm)
        .args(["--input", input])
        .arg("--models")
        .arg(models)
        .args(["--timeout", "300s"])
        .output()
        .expect("running wasmpod")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "wasmpod run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn python(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut cmd = Command::new("python3");
    for a in args {
        cmd.arg(a);
    }
    let out = cmd.output().expect("running python3");
    assert!(
        out.status.success(),
        "python3 failed (is numpy installed? run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tiny ResNet's logits for two PNGs (decoded, resized and normalised
/// in the guest, batch-norm folded into the convolutions at load) match a
/// float64 NumPy forward pass with batch-norm as PyTorch defines it; the
/// top-5 are the reference's five best classes in order, with softmax
/// probabilities; both layouts give the same answer.
#[test]
fn resnet_matches_the_numpy_reference() {
    let wasm = common::example_wasm("resnet");
    let dir = tempfile::tempdir().unwrap();
    let reference = common::root().join("tests/fixtures/vision/resnet_reference.py");
    python(&[&reference, &dir.path()]);
    let mut input: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("input.json")).unwrap()).unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(expected["logits"].clone()).unwrap();
    for layout in ["nhwc", "nchw"] {
        input["layout"] = layout.into();
        let out = stdout_json(&wasmpod_run(
            &wasm,
            &input.to_string(),
            &dir.path().join("models"),
        ));
        let got: Vec<Vec<f64>> = serde_json::from_value(out["logits"].clone())
            .unwrap_or_else(|e| panic!("no logits ({e}) in {out}"));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let diff = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                diff <= 1e-4 * scale,
                "{layout}: image {i}: logits differ by {diff} (scale {scale})\n got {g:?}\nwant {w:?}"
            );
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
            let preds = out["predictions"][i].as_array().expect("predictions");
            let classes: Vec<usize> = preds
                .iter()
                .map(|p| p["class"].as_u64().unwrap() as usize)
                .collect();
            assert_eq!(classes, order[..5], "{layout}: image {i}: top-5");
            let max = w.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = w.iter().map(|v| (v - max).exp()).sum();
            let p0 = (w[order[0]] - max).exp() / z;
            let got_p0 = preds[0]["probability"].as_f64().unwrap();
            assert!((got_p0 - p0).abs() < 1e-4, "{layout}: p {got_p0} vs {p0}");
            assert_eq!(preds[0]["label"], format!("class {}", order[0]));
        }
    }
}

/// Bytes that are no image fail the job with a message naming the image;
/// the handler stays usable (the same instance would take the next job).
#[test]
fn resnet_refuses_an_undecodable_image_clearly() {
    let wasm = common::example_wasm("resnet");
    let dir = tempfile::tempdir().unwrap();
    python(&[
        &common::root().join("examples/resnet/make_model.py"),
        &dir.path().join("resnet"),
        &"--depth",
        &"tiny",
    ]);
    let junk = base64::engine::general_purpose::STANDARD.encode(b"not a picture");
    let input = serde_json::json!({"images": [junk]}).to_string();
    let out = wasmpod_run(&wasm, &input, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("images[0] is not a PNG or JPEG image"),
        "stderr: {err}"
    );
}

/// Writes the small UNet (16 base channels, two levels, attention at the
/// lower one, 8 groups) under `dir`/diffusion.
fn make_unet(dir: &Path) {
    python(&[
        &common::root().join("examples/diffusion/make_model.py"),
        &dir.join("diffusion"),
        &"--channels",
        &"16",
        &"--mult",
        &"1,2",
        &"--attention",
        &"0,1",
        &"--groups",
        &"8",
        &"--seed",
        &"5",
    ]);
}

/// One denoising step of the UNet (group norm, convolutions, the
/// timestep embedding, self-attention, nearest upsampling) on the seed's
/// latents predicts the noise a float64 NumPy reference does, with the
/// fused attention op and with matmul + softmax, in both layouts.
#[test]
fn diffusion_step_matches_the_numpy_reference() {
    let wasm = common::example_wasm("diffusion");
    let dir = tempfile::tempdir().unwrap();
    make_unet(dir.path());
    let reference = common::root().join("tests/fixtures/vision/diffusion_reference.py");
    for (layout, attention) in [("nhwc", "fused"), ("nchw", "matmul")] {
        let input = serde_json::json!({
            "denoise_step": {"t": 500}, "seed": 1, "size": 16, "batch": 2,
            "layout": layout, "attention": attention,
        });
        let out = wasmpod_run(&wasm, &input.to_string(), dir.path());
        stdout_json(&out);
        let output = dir.path().join("step.json");
        std::fs::write(&output, &out.stdout).unwrap();
        let report = python(&[&reference, &dir.path().join("diffusion"), &output, &"500"]);
        let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
        let diff = report["max_abs_diff"].as_f64().unwrap();
        let scale = report["max_abs_ref"].as_f64().unwrap();
        assert!(scale > 0.1, "a degenerate reference: {report}");
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{layout}/{attention}: eps differs from NumPy by {diff} (max |eps| {scale})"
        );
    }
}

/// A whole sampler run: a progress line per step, one PNG per image of the
/// requested size, and the same seed gives the same PNG bytes again while
/// another seed gives another image.
#[test]
fn diffusion_samples_reproducible_images_with_progress() {
    let wasm = common::example_wasm("diffusion");
    let dir = tempfile::tempdir().unwrap();
    make_unet(dir.path());
    let run = |seed: u64| {
        let input = serde_json::json!({"seed": seed, "steps": 4, "batch": 2, "size": 16});
        let out = wasmpod_run(&wasm, &input.to_string(), dir.path());
        let json = stdout_json(&out);
        let progress = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("progress: "))
            .count();
        (json, progress)
    };
    let (a, progress) = run(3);
    assert_eq!(progress, 4, "one progress report per step");
    let images = a["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    for img in images {
        let png = base64::engine::general_purpose::STANDARD
            .decode(img.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h) = (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        );
        assert_eq!((w, h), (16, 16));
    }
    assert_ne!(images[0], images[1], "two latents, two images");
    let (b, _) = run(3);
    assert_eq!(a["images"], b["images"], "same seed, same images");
    let (c, _) = run(4);
    assert_ne!(
        a["images"][0], c["images"][0],
        "another seed, another image"
    );
}

/// Sizes the network cannot halve are refused with what to send instead.
#[test]
fn diffusion_refuses_a_size_it_cannot_halve() {
    let wasm = common::example_wasm("diffusion");
    let dir = tempfile::tempdir().unwrap();
    make_unet(dir.path());
    let out = wasmpod_run(&wasm, r#"{"size": 15}"#, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("size must be a positive multiple of 2"),
        "stderr: {err}"
    );
}
