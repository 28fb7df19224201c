//! The `llm` example (a Llama-family decoder in the guest) against an
//! independent NumPy implementation of the same models: the test flow
//! writes tiny random-weight models in Hugging Face layout and the NumPy
//! decoder's greedy tokens and log-probabilities
//! (tests/fixtures/llm/make_model.py), then the real `wasmpod run` of the
//! real component must produce the same tokens and the same
//! log-probabilities, for a Llama (GQA, Llama 3 rope scaling), a Qwen2
//! (q/k/v biases, tied embeddings), a sharded f16 and a bf16 checkpoint.
//! Also: the tokenizer agrees with Hugging Face's, the chat template,
//! stop strings, seeded sampling, streaming, refusals, and FlashBoot.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common;

/// The models and the reference, made once per test binary.
fn fixture() -> &'static (tempfile::TempDir, Value) {
    static FIXTURE: OnceLock<(tempfile::TempDir, Value)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let models = dir.path().join("models");
        let out = Command::new("python3")
            .arg(common::root().join("tests/fixtures/llm/make_model.py"))
            .arg(&models)
            .output()
            .expect("running python3 tests/fixtures/llm/make_model.py");
        assert!(
            out.status.success(),
            "make_model.py failed (it needs numpy and tokenizers: scripts/setup.sh installs them): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference = std::fs::read_to_string(models.join("reference.json")).unwrap();
        (dir, serde_json::from_str(&reference).unwrap())
    })
}

fn models_dir() -> PathBuf {
    fixture().0.path().join("models")
}

fn reference(variant: &str) -> &'static Value {
    &fixture().1["models"][variant]
}

fn llm_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| common::example_wasm("llm"))
}

fn run_in(home: &Path, model: &str, input: &Value, extra: &[&str]) -> Output {
    Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(home)
        .arg("run")
        .arg(llm_wasm())
        .arg("--models")
        .arg(models_dir())
        .args(["--env", &format!("LLM_MODEL={model}")])
        .args(["--input", &input.to_string()])
        .args(extra)
        .output()
        .expect("running wasmpod")
}

/// One home for the test binary's runs: the component is compiled once
/// and its compiled code cached there.
fn shared_home() -> &'static Path {
    fixture().0.path()
}

fn run(model: &str, input: &Value) -> Output {
    run_in(shared_home(), model, input, &[])
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "wasmpod run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// The stream chunks `wasmpod run` printed, in order.
fn chunks(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("stream: "))
        .map(|c| serde_json::from_str(c).unwrap())
        .collect()
}

fn greedy_input(steps: usize) -> Value {
    json!({
        "prompt": fixture().1["prompt"], "max_tokens": steps, "temperature": 0,
        "logprobs": 5, "ignore_eos": true
    })
}

/// Steps to compare and the log-probability tolerance. f32 checkpoints
/// are compared at every step; f16/bf16 ones (the guest computes in the
/// storage dtype, NumPy in f64 from the same rounded weights) until the
/// first step whose reference top-2 margin is within rounding reach, since
/// after a near tie the sequences may part legitimately.
fn budget(variant: &str) -> (usize, f32) {
    let r = reference(variant);
    let steps = r["steps"].as_array().unwrap().len();
    let (tolerance, margin) = match r["dtype"].as_str().unwrap() {
        "F32" => (2e-3, 0.0),
        // Every op's result is rounded to the storage dtype (as PyTorch on a
        // GPU does), so errors build up through the layers: measured 0.04
        // (f16) and 0.26 (bf16) at worst on this fixture.
        "F16" => (0.1, 0.2),
        _ => (0.5, 0.3),
    };
    let compared = r["margins"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m.as_f64().unwrap() < margin)
        .unwrap_or(steps);
    assert!(
        compared >= 4,
        "{variant}: the fixture gives only {compared} comparable steps"
    );
    (compared, tolerance)
}

fn check_against_numpy(variant: &str) {
    let r = reference(variant);
    let steps = r["steps"].as_array().unwrap();
    let (compared, tolerance) = budget(variant);
    let out = run(variant, &greedy_input(steps.len()));
    let v = ok_json(&out);
    assert_eq!(
        v["usage"]["prompt_tokens"].as_u64().unwrap() as usize,
        r["prompt_ids"].as_array().unwrap().len(),
        "{variant}: the guest's tokenizer disagrees with Hugging Face's on the prompt"
    );
    let ids: Vec<u64> = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = steps.iter().map(|s| s["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids[..compared],
        expected[..compared],
        "{variant}: greedy tokens differ from NumPy's"
    );
    let mut worst = 0f32;
    for (i, (got, want)) in v["logprobs"].as_array().unwrap()[..compared]
        .iter()
        .zip(steps)
        .enumerate()
    {
        let top = got["top"].as_array().unwrap();
        for (g, w) in top.iter().zip(want["top"].as_array().unwrap()) {
            let diff = (g["logprob"].as_f64().unwrap() - w[1].as_f64().unwrap()).abs() as f32;
            worst = worst.max(diff);
            assert!(
                diff <= tolerance,
                "{variant} step {i}: logprob {} vs NumPy {} (token {} vs {})",
                g["logprob"],
                w[1],
                g["id"],
                w[0]
            );
        }
        assert_eq!(got["id"], want["id"], "{variant} step {i}");
    }
    eprintln!(
        "{variant}: {compared} greedy tokens match NumPy; largest logprob difference {worst:e}"
    );

    // Every token was streamed, in order, and the stream adds up to the text.
    let streamed = chunks(&out);
    let tokens: Vec<u64> = streamed
        .iter()
        .filter_map(|c| c["token"].as_u64())
        .collect();
    assert_eq!(tokens, ids, "{variant}: one chunk per token");
    let text: String = streamed
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, v["text"].as_str().unwrap());
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], steps.len());
    assert!(v["timings"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn llama_greedy_decoding_matches_numpy() {
    check_against_numpy("llama");
}

#[test]
fn qwen2_with_biases_and_tied_embeddings_matches_numpy() {
    check_against_numpy("qwen2");
}

#[test]
fn sharded_f16_checkpoint_matches_numpy() {
    check_against_numpy("sharded");
}

#[test]
fn bf16_checkpoint_matches_numpy() {
    check_against_numpy("bf16");
}

#[test]
fn chat_messages_go_through_the_template() {
    for variant in ["llama", "qwen2"] {
        let out = run(
            variant,
            &json!({"messages": fixture().1["chat"], "max_tokens": 2, "temperature": 0}),
        );
        let v = ok_json(&out);
        assert_eq!(
            v["usage"]["prompt_tokens"].as_u64().unwrap() as usize,
            reference(variant)["chat_prompt_ids"]
                .as_array()
                .unwrap()
                .len(),
            "{variant}: the rendered chat does not tokenize like the template's text"
        );
    }
}

#[test]
fn stop_strings_cut_the_text_and_end_generation() {
    // The qwen2 fixture repeats "12" for a while: stop at the first "21".
    let plain = ok_json(&run(
        "qwen2",
        &json!({"prompt": fixture().1["prompt"], "max_tokens": 8, "temperature": 0}),
    ));
    let text = plain["text"].as_str().unwrap();
    assert!(text.starts_with("1212"), "the fixture changed: {text:?}");
    let out = run(
        "qwen2",
        &json!({"prompt": fixture().1["prompt"], "max_tokens": 8, "temperature": 0, "stop": ["21", "zz"]}),
    );
    let v = ok_json(&out);
    assert_eq!(v["text"], "1");
    assert_eq!(v["finish_reason"], "stop");
    let streamed: String = chunks(&out)
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, "1", "no part of the stop string was streamed");
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let sample = |seed: u64| {
        let v = ok_json(&run(
            "llama",
            &json!({"prompt": "a", "max_tokens": 12, "temperature": 1.5, "top_k": 50,
                    "top_p": 0.95, "seed": seed, "ignore_eos": true}),
        ));
        v["token_ids"].clone()
    };
    let a = sample(7);
    assert_eq!(a, sample(7), "the same seed gave different tokens");
    assert_ne!(a, sample(8), "different seeds gave the same 12 tokens");
}

#[test]
fn bad_requests_say_what_to_change() {
    let cases = [
        (json!({"max_tokens": 4}), "needs \"prompt\""),
        (json!({"prompt": "a", "messages": []}), "not both"),
        (
            json!({"prompt": "a", "max_tokens": 100000}),
            "context is 4096 tokens",
        ),
        (json!({"prompt": "a", "temperature": -1}), "temperature"),
        (json!({"prompt": "a", "top_p": 0}), "top_p"),
        (json!({"prompt": "a", "logprobs": 99}), "logprobs"),
        (
            json!({"prompt": "a", "frequency": 1}),
            "unknown field `frequency`",
        ),
    ];
    for (input, expected) in cases {
        let out = run("llama", &input);
        assert!(!out.status.success(), "{input} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{input}: {err}");
    }
}

#[test]
fn a_model_directory_of_several_models_needs_llm_model() {
    let out = Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(shared_home())
        .arg("run")
        .arg(llm_wasm())
        .arg("--models")
        .arg(models_dir())
        .args(["--input", r#"{"prompt": "a"}"#])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set LLM_MODEL"), "{err}");
}

#[test]
fn flashboot_parks_and_restores_the_instance_with_the_same_answers() {
    let home = tempfile::tempdir().unwrap();
    let input = greedy_input(6);
    // Cold start with a snapshot taken after init; then the instance is
    // paged out and back in between its two runs, as a parked worker.
    let first = run_in(
        home.path(),
        "llama",
        &input,
        &["--flashboot", "--page-out", "--repeat", "2", "--timings"],
    );
    let cold = ok_json(&first);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("snapshot taken after init"), "{err}");
    assert!(err.contains("paged out"), "{err}");
    // The next start is from the snapshot: init does not run.
    let second = run_in(home.path(), "llama", &input, &["--flashboot", "--timings"]);
    let warm = ok_json(&second);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("served by pre-initialised"), "{err}");
    assert_eq!(warm["token_ids"], cold["token_ids"]);
    assert_eq!(warm["logprobs"], cold["logprobs"]);
}
