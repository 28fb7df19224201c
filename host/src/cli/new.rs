//! `wasmpod new rust|python|js NAME`: a handler project from a template
//! embedded in the binary, ready for `wasmpod build`, `wasmpod run .` and
//! `wasmpod deploy`.
//!
//! A Rust project gets a vendored copy of the SDK and of the WIT contract
//! (`vendor/wasmpod-sdk/`) and this repository's Cargo.lock, so it builds
//! outside the repository and offline wherever the SDK's dependencies are
//! in cargo's cache, with the versions the SDK was tested with. Python and
//! JavaScript projects are built by guest-sdk's build scripts, which bring
//! their SDK and tools themselves.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::project::{Kind, Manifest};

#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The handler's language.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Project name: the directory made, and the default endpoint id
    /// (lowercase letters, digits and '-').
    pub name: String,
    /// Where to make it (default: ./NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// One file of a template: path in the project, contents.
type File = (&'static str, &'static str);

const README: &str = include_str!("../../templates/README.md");
const RUST: &[File] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    (
        "test_input.json",
        include_str!("../../templates/rust/test_input.json"),
    ),
];
const PYTHON: &[File] = &[
    ("app.py", include_str!("../../templates/python/app.py")),
    (
        "test_input.json",
        include_str!("../../templates/python/test_input.json"),
    ),
];
const JS: &[File] = &[
    ("app.js", include_str!("../../templates/js/app.js")),
    (
        "test_input.json",
        include_str!("../../templates/js/test_input.json"),
    ),
];

/// The Rust SDK as this binary was built with it, vendored into projects.
const SDK_MANIFEST: &str = include_str!("../../../guest-sdk/rust/Cargo.toml");
const SDK_SOURCES: &[File] = &[
    ("lib.rs", include_str!("../../../guest-sdk/rust/src/lib.rs")),
    (
        "decoder.rs",
        include_str!("../../../guest-sdk/rust/src/decoder.rs"),
    ),
    (
        "device.rs",
        include_str!("../../../guest-sdk/rust/src/device.rs"),
    ),
    (
        "entry.rs",
        include_str!("../../../guest-sdk/rust/src/entry.rs"),
    ),
    (
        "http.rs",
        include_str!("../../../guest-sdk/rust/src/http.rs"),
    ),
    ("job.rs", include_str!("../../../guest-sdk/rust/src/job.rs")),
    (
        "vision.rs",
        include_str!("../../../guest-sdk/rust/src/vision.rs"),
    ),
    (
        "model.rs",
        include_str!("../../../guest-sdk/rust/src/model.rs"),
    ),
    (
        "tensor.rs",
        include_str!("../../../guest-sdk/rust/src/tensor.rs"),
    ),
];
const WIT: &str = include_str!("../../../wit/serverless.wit");
/// The WASI packages world `http-handler` imports (`wit/deps/`): the SDK
/// generates both worlds' bindings, so a project needs them too.
const WIT_DEPS: &[File] = &[
    ("cli.wit", include_str!("../../../wit/deps/cli.wit")),
    ("clocks.wit", include_str!("../../../wit/deps/clocks.wit")),
    (
        "filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    ("http.wit", include_str!("../../../wit/deps/http.wit")),
    ("io.wit", include_str!("../../../wit/deps/io.wit")),
    ("random.wit", include_str!("../../../wit/deps/random.wit")),
    ("sockets.wit", include_str!("../../../wit/deps/sockets.wit")),
];
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");
/// The workspace's lock: cargo keeps the versions of what the project uses
/// (the SDK's dependencies) and drops the rest on the first build.
const WORKSPACE_LOCK: &str = include_str!("../../../Cargo.lock");
/// Where the SDK finds the WIT in this repository, and in a project.
const SDK_WIT_PATH: (&str, &str) = ("path: \"../../wit\"", "path: \"wit\"");

pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "project name {name:?} must start with a lowercase letter and hold only lowercase letters, digits and '-' (it is also the endpoint id), e.g. hello or my-model"
        );
    }
    Ok(())
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; pick another name or --dir",
            dir.display()
        );
    }
    let files = project_files(args.kind, &args.name)?;
    for (path, contents) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    let shown = dir.display();
    println!("created {} handler project {shown}", args.kind);
    println!("  cd {shown}");
    println!("  wasmpod run .                                # build it and run test_input.json");
    println!(
        "  wasmpod deploy . --endpoint {}               # serve it (--url, --api-key)",
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Every file of a new project of `kind` named `name`.
pub fn project_files(kind: Kind, name: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let fill = |s: &str| {
        s.replace("{{name}}", name)
            .replace("{{kind}}", kind.as_str())
            .replace("{{artifact}}", &kind.artifact(name))
    };
    let template = match kind {
        Kind::Rust => RUST,
        Kind::Python => PYTHON,
        Kind::Js => JS,
    };
    let mut files: Vec<(PathBuf, String)> = template
        .iter()
        .map(|(p, c)| (PathBuf::from(p), fill(c)))
        .collect();
    files.push(("README.md".into(), fill(README)));
    files.push((
        Manifest::FILE.into(),
        Manifest {
            kind,
            name: name.to_string(),
        }
        .to_toml(),
    ));
    files.push((".gitignore".into(), "/target\n/build\n".into()));
    if kind == Kind::Rust {
        files.extend(vendored_sdk()?);
        files.push(("Cargo.lock".into(), WORKSPACE_LOCK.to_string()));
    }
    Ok(files)
}

/// `vendor/wasmpod-sdk/`: the SDK's sources, its WIT, and a manifest with
/// the workspace's inherited settings written out.
fn vendored_sdk() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let root = Path::new("vendor/wasmpod-sdk");
    let mut files = Vec::new();
    for (name, source) in SDK_SOURCES {
        let source = if *name == "lib.rs" {
            anyhow::ensure!(
                source.contains(SDK_WIT_PATH.0),
                "the SDK no longer finds its WIT at {}; update SDK_WIT_PATH",
                SDK_WIT_PATH.0
            );
            source.replace(SDK_WIT_PATH.0, SDK_WIT_PATH.1)
        } else {
            source.to_string()
        };
        files.push((root.join("src").join(name), source));
    }
    files.push((root.join("wit/serverless.wit"), WIT.to_string()));
    for (name, source) in WIT_DEPS {
        files.push((root.join("wit/deps").join(name), source.to_string()));
    }
    files.push((root.join("Cargo.toml"), sdk_manifest()?));
    Ok(files)
}

/// The SDK's Cargo.toml with every `workspace = true` replaced by the
/// workspace's value.
fn sdk_manifest() -> anyhow::Result<String> {
    let workspace: toml::Table =
        toml::from_str(WORKSPACE_MANIFEST).context("workspace Cargo.toml")?;
    let mut sdk: toml::Table = toml::from_str(SDK_MANIFEST).context("SDK Cargo.toml")?;
    let ws = workspace
        .get("workspace")
        .and_then(|w| w.as_table())
        .context("Cargo.toml has no [workspace]")?;
    let ws_package = ws.get("package").and_then(|p| p.as_table());
    let ws_deps = ws.get("dependencies").and_then(|d| d.as_table());
    if let Some(package) = sdk.get_mut("package").and_then(|p| p.as_table_mut()) {
        for (key, value) in package.iter_mut() {
            if is_inherited(value) {
                *value = ws_package
                    .and_then(|p| p.get(key))
                    .cloned()
                    .with_context(|| format!("[workspace.package] has no {key}"))?;
            }
        }
    }
    if let Some(deps) = sdk.get_mut("dependencies").and_then(|d| d.as_table_mut()) {
        for (name, spec) in deps.iter_mut() {
            if !is_inherited(spec) {
                continue;
            }
            let mut resolved = match ws_deps.and_then(|d| d.get(name)) {
                Some(toml::Value::String(v)) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), toml::Value::String(v.clone()));
                    t
                }
                Some(toml::Value::Table(t)) => t.clone(),
                _ => bail!("[workspace.dependencies] has no {name}"),
            };
            // A member may add features to the workspace's.
            if let Some(extra) = spec.get("features").and_then(|f| f.as_array()) {
                let features = resolved
                    .entry("features")
                    .or_insert_with(|| toml::Value::Array(Vec::new()));
                if let Some(list) = features.as_array_mut() {
                    list.extend(extra.iter().cloned());
                }
            }
            *spec = toml::Value::Table(resolved);
        }
    }
    // Written by hand to keep [package] first (toml's tables sort keys).
    let mut out = format!(
        "# The wasmpod SDK, vendored by `wasmpod new` (wasmpod {}).\n[package]\n",
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in sdk
        .get("package")
        .and_then(|p| p.as_table())
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out.push_str("\n[lib]\npath = \"src/lib.rs\"\n\n[dependencies]\n");
    for (k, v) in sdk
        .get("dependencies")
        .and_then(|d| d.as_table())
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("{k} = {v}\n"));
    }
    Ok(out)
}

fn is_inherited(v: &toml::Value) -> bool {
    v.get("workspace").and_then(|w| w.as_bool()) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_sdk_manifest_inherits_nothing() {
        let manifest = sdk_manifest().unwrap();
        assert!(!manifest.contains("workspace"), "{manifest}");
        let parsed: toml::Table = toml::from_str(&manifest).unwrap();
        assert_eq!(parsed["package"]["name"].as_str(), Some("wasmpod-sdk"));
        assert!(parsed["dependencies"]["wit-bindgen"]["version"].is_str());
        assert_eq!(parsed["package"]["edition"].as_str(), Some("2024"));
    }

    #[test]
    fn every_sdk_source_is_vendored() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/rust/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut vendored: Vec<String> = SDK_SOURCES.iter().map(|(n, _)| n.to_string()).collect();
        vendored.sort();
        assert_eq!(on_disk, vendored, "add the SDK's new files to SDK_SOURCES");
    }

    #[test]
    fn bad_names_are_refused_with_the_rule() {
        for bad in ["", "Hello", "-x", "a b", "1abc", "x_y"] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("lowercase"), "{bad}: {e}");
        }
        check_name("my-model2").unwrap();
    }
}
