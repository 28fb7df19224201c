//! The CLI client against the real server: `wasmpod new` makes a project
//! that builds (offline, outside the repository) and runs, `deploy` serves
//! it and hot-swaps it, `invoke` runs jobs, `logs` shows (and follows) their
//! log lines, `jobs`, `endpoints` and `keys` read the server; a wrong key
//! and an unreachable server say what to do.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use crate::common::server;

/// `wasmpod ARGS` against `s`, with no key or URL from the environment.
fn cli(s: &server::Server, args: &[&str]) -> Output {
    cli_with(
        args,
        &[("WASMPOD_URL", &s.base), ("WASMPOD_API_KEY", &s.key)],
    )
}

fn cli_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::wasmpod_bin());
    cmd.args(args)
        .env_remove("WASMPOD_URL")
        .env_remove("WASMPOD_API_KEY")
        .env_remove("WASMPOD_ADMIN_KEY")
        // The project is built offline, from the crates the workspace build
        // already fetched; its own target dir is kept warm across runs.
        .env("CARGO_NET_OFFLINE", "true")
        .env(
            "CARGO_TARGET_DIR",
            common::root().join("target/cli-test-projects"),
        )
        .env("WASMPOD_HOME", common::root().join("target/cli-test-home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running wasmpod")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

fn new_project(dir: &Path, kind: &str, name: &str) -> PathBuf {
    let project = dir.join(name);
    let out = cli_with(
        &["new", kind, name, "--dir", project.to_str().unwrap()],
        &[],
    );
    let said = ok(&out);
    assert!(said.contains("wasmpod deploy"), "{said}");
    project
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rust_project_deploys_serves_hot_swaps_and_shows_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project(dir.path(), "rust", "hello");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "test_input.json",
        "wasmpod.toml",
        "vendor/wasmpod-sdk/wit/serverless.wit",
    ] {
        assert!(project.join(f).is_file(), "{f} missing");
    }
    // As generated, it runs locally on its test_input.json.
    let run = cli_with(&["run", project.to_str().unwrap()], &[]);
    let out = ok(&run);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"greeting": "hello, ada"})
    );
    assert!(
        text(&run.stderr).contains("log[info]: greeting ada"),
        "{}",
        text(&run.stderr)
    );

    let s = server::start(dir.path().join("home").as_path(), &[]);
    let deploy = cli(
        &s,
        &[
            "deploy",
            project.to_str().unwrap(),
            "--endpoint",
            "hello",
            "--max-workers",
            "2",
        ],
    );
    let said = ok(&deploy);
    let url = format!("{}/v2/hello", s.base);
    assert!(said.contains(&url), "{said}");
    assert!(said.contains("curl") && said.contains("/runsync"), "{said}");
    let err = text(&deploy.stderr);
    assert!(err.contains("created endpoint hello"), "{err}");
    assert!(err.contains("test_input served"), "{err}");

    let invoked = json_of(&cli(
        &s,
        &["invoke", "hello", "--input", r#"{"name": "cli"}"#, "--json"],
    ));
    assert_eq!(invoked["status"], "COMPLETED", "{invoked}");
    assert_eq!(invoked["output"], json!({"greeting": "hello, cli"}));
    let job = invoked["id"].as_str().unwrap().to_string();

    // Its log line, by job, in the table and as JSON.
    let logs = ok(&cli(&s, &["logs", "hello", "--job", &job]));
    assert!(
        logs.contains("greeting cli") && logs.contains(&job),
        "{logs}"
    );
    assert!(
        !logs.contains("greeting ada"),
        "only that job's lines: {logs}"
    );
    let all = json_of(&cli(&s, &["logs", "hello", "--json"]));
    let lines = all["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["source"] == "system"
                && l["message"].as_str().unwrap().contains("worker ready")),
        "{all}"
    );
    let jobs = ok(&cli(&s, &["jobs", "hello", "--status", "completed"]));
    assert!(jobs.contains(&job) && jobs.contains("COMPLETED"), "{jobs}");
    let detail = ok(&cli(&s, &["jobs", "hello", &job]));
    assert!(
        detail.contains("hello, cli") && detail.contains("greeting cli"),
        "{detail}"
    );
    let eps = json_of(&cli(&s, &["endpoints", "--json"]));
    assert_eq!(eps["endpoints"][0]["id"], "hello");
    assert_eq!(eps["endpoints"][0]["max_workers"], 2);

    // --follow prints lines as they come.
    let mut follow = Command::new(common::wasmpod_bin())
        .args([
            "logs",
            "hello",
            "--follow",
            "--limit",
            "1",
            "--url",
            &s.base,
            "--api-key",
            &s.key,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the backlog line");
    ok(&cli(
        &s,
        &["invoke", "hello", "--input", r#"{"name": "followed"}"#],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("the followed job's line");
        if line.contains("greeting followed") {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();

    // A changed handler deploys as a hot swap of the same endpoint.
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib)
        .unwrap()
        .replace("hello, {}", "hi again, {}");
    std::fs::write(&lib, source).unwrap();
    let redeploy = cli(
        &s,
        &["deploy", project.to_str().unwrap(), "--endpoint", "hello"],
    );
    ok(&redeploy);
    let err = text(&redeploy.stderr);
    assert!(
        err.contains("updated endpoint hello (generation 2"),
        "{err}"
    );
    let out = json_of(&cli(
        &s,
        &["invoke", "hello", "--input", r#"{"name": "bo"}"#],
    ));
    assert_eq!(out, json!({"greeting": "hi again, bo"}));

    // Keys: an invoke key is made, listed and revoked.
    let created = json_of(&cli(
        &s,
        &["keys", "create", "ci", "--endpoint", "hello", "--json"],
    ));
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let listed = ok(&cli(&s, &["keys"]));
    assert!(
        listed.contains(&id) && listed.contains("invoke hello"),
        "{listed}"
    );
    // The invoke key runs jobs but may not read the admin API.
    let with_invoke_key = [
        ("WASMPOD_URL", s.base.as_str()),
        ("WASMPOD_API_KEY", key.as_str()),
    ];
    ok(&cli_with(&["invoke", "hello"], &with_invoke_key));
    let refused = cli_with(&["endpoints"], &with_invoke_key);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("may only invoke"),
        "{}",
        text(&refused.stderr)
    );
    ok(&cli(&s, &["keys", "revoke", &id]));
    let revoked = cli_with(&["invoke", "hello"], &with_invoke_key);
    assert!(
        text(&revoked.stderr).contains("refused the API key"),
        "{}",
        text(&revoked.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_of_a_component_file_uploads_its_models_once() {
    let dir = tempfile::tempdir().unwrap();
    let models = common::make_mlp_models(&dir.path().join("models"));
    let wasm = common::example_wasm("mlp");
    let s = server::start(dir.path().join("home").as_path(), &[]);
    let input = r#"{"inputs": [[1, 1]]}"#;
    let args = [
        "deploy",
        wasm.to_str().unwrap(),
        "--endpoint",
        "mlp",
        "--models",
        models.to_str().unwrap(),
        "--test-input",
        input,
        "--flashboot",
        "false",
    ];
    let files = std::fs::read_dir(models.join("mlp")).unwrap().count();
    let first = cli(&s, &args);
    ok(&first);
    let said = format!("model mlp: {files} file(s) uploaded");
    assert!(
        text(&first.stderr).contains(&said),
        "{}",
        text(&first.stderr)
    );
    let second = cli(&s, &args);
    ok(&second);
    assert!(
        text(&second.stderr).contains("model mlp: 0 file(s) uploaded"),
        "{}",
        text(&second.stderr)
    );
    assert!(
        text(&second.stderr).contains("already on the server"),
        "{}",
        text(&second.stderr)
    );
    let out = json_of(&cli(&s, &["invoke", "mlp", "--input", input]));
    assert_eq!(out["classes"], json!([0]), "{out}");
    // init's log line is the worker's, not a job's.
    let logs = json_of(&cli(&s, &["logs", "mlp", "--json"]));
    let loaded = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .unwrap_or_default()
                .contains("mlp loaded")
        })
        .unwrap_or_else(|| panic!("no init line in {logs}"))
        .clone();
    assert_eq!(loaded["job"], Value::Null);
    assert!(
        loaded["worker"].as_str().unwrap().starts_with("mlp-"),
        "{loaded}"
    );

    // A file needs --endpoint.
    let no_endpoint = cli(&s, &["deploy", wasm.to_str().unwrap()]);
    assert_eq!(no_endpoint.status.code(), Some(2));
    assert!(
        text(&no_endpoint.stderr).contains("--endpoint"),
        "{}",
        text(&no_endpoint.stderr)
    );
}

#[test]
fn a_wrong_key_no_key_and_an_unreachable_server_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(dir.path(), &[]);
    let wrong = cli_with(
        &["endpoints"],
        &[("WASMPOD_URL", &s.base), ("WASMPOD_API_KEY", "wpk_wrong")],
    );
    assert_eq!(wrong.status.code(), Some(2));
    let err = text(&wrong.stderr);
    assert!(
        err.contains("refused the API key") && err.contains("--api-key"),
        "{err}"
    );

    let none = cli_with(&["endpoints"], &[("WASMPOD_URL", &s.base)]);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none.stderr).contains("no API key"),
        "{}",
        text(&none.stderr)
    );

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["endpoints"],
        vec!["logs", "x", "--follow"],
        vec!["deploy", "nowhere.wasm", "--endpoint", "x"],
    ] {
        let out = cli_with(&args, &[("WASMPOD_URL", &url), ("WASMPOD_API_KEY", "k")]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("cannot reach the wasmpod server at {url}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("wasmpod serve"), "{err}");
    }

    // An unknown endpoint's logs: the server's own message.
    let missing = cli(&s, &["logs", "nope"]);
    assert!(
        text(&missing.stderr).contains("no endpoint \"nope\""),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn new_refuses_bad_names_and_busy_directories() {
    let dir = tempfile::tempdir().unwrap();
    let bad = cli_with(&["new", "rust", "Hello World"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("lowercase"),
        "{}",
        text(&bad.stderr)
    );
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "").unwrap();
    let out = cli_with(&["new", "js", "busy", "--dir", busy.to_str().unwrap()], &[]);
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    let not_project = cli_with(&["build", dir.path().to_str().unwrap()], &[]);
    assert!(
        text(&not_project.stderr).contains("not a handler project"),
        "{}",
        text(&not_project.stderr)
    );
}

#[test]
fn python_and_js_projects_build_and_run_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["python", "js"] {
        let project = new_project(dir.path(), kind, &format!("hello-{kind}"));
        let run = cli_with(
            &[
                "run",
                project.to_str().unwrap(),
                "--input",
                r#"{"name": "grace"}"#,
            ],
            &[],
        );
        let out = ok(&run);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"greeting": "hello, grace"}),
            "{kind}"
        );
        assert!(
            text(&run.stderr).contains("log[info]: greeting grace"),
            "{kind}: {}",
            text(&run.stderr)
        );
    }
}
