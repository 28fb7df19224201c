//! A handler project on disk and how it becomes a component: its kind
//! (from `wasmpod.toml`, else from its files), and the build for that kind
//! (cargo for Rust; guest-sdk's build scripts, componentize-py and jco, for
//! Python and JavaScript). `wasmpod build` is this module's command;
//! `run` and `deploy` take a project directory through it too.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// A handler's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Rust,
    Python,
    Js,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rust => "rust",
            Kind::Python => "python",
            Kind::Js => "js",
        }
    }

    /// Where the built component of project `name` lands, relative to it.
    pub fn artifact(self, name: &str) -> String {
        match self {
            Kind::Rust => format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
            Kind::Python | Kind::Js => format!("build/{name}.wasm"),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `wasmpod.toml`: what `wasmpod new` writes at a project's root.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub kind: Kind,
    pub name: String,
}

impl Manifest {
    pub const FILE: &'static str = "wasmpod.toml";

    pub fn to_toml(&self) -> String {
        format!(
            "# A wasmpod handler project: `wasmpod build`, `wasmpod run .`, `wasmpod deploy . --endpoint {}`.\n{}",
            self.name,
            toml::to_string(self).expect("a manifest serializes")
        )
    }
}

/// Where guest-sdk's build scripts are (Python and JavaScript builds).
#[derive(clap::Args, Debug, Clone)]
pub struct SdkArgs {
    /// The guest-sdk directory of a wasmpod checkout (its Python and
    /// JavaScript build scripts); default: the checkout this binary was
    /// built from.
    #[arg(long, env = "WASMPOD_SDK")]
    pub sdk: Option<PathBuf>,
}

impl SdkArgs {
    fn dir(&self, kind: Kind) -> anyhow::Result<PathBuf> {
        let dir = self
            .sdk
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"));
        let script = dir.join(kind.as_str()).join("build.sh");
        if !script.is_file() {
            bail!(
                "building a {kind} handler needs wasmpod's guest-sdk build scripts, and {} is not there; pass --sdk (or set WASMPOD_SDK) to the guest-sdk directory of a wasmpod checkout",
                script.display()
            );
        }
        Ok(dir)
    }
}

/// A handler project directory.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub kind: Kind,
    pub name: String,
}

impl Project {
    /// The project at `dir`: `wasmpod.toml` says what it is, else its files
    /// do (Cargo.toml, app.py, app.js).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let manifest = dir.join(Manifest::FILE);
        if manifest.is_file() {
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let m: Manifest = toml::from_str(&text).with_context(|| {
                format!(
                    "{} must say `kind = \"rust\"|\"python\"|\"js\"` and `name = \"...\"`",
                    manifest.display()
                )
            })?;
            let name = match m.kind {
                Kind::Rust => cargo_package_name(dir)?,
                _ => m.name,
            };
            return Ok(Self {
                dir: dir.to_path_buf(),
                kind: m.kind,
                name,
            });
        }
        let dir_name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "handler".into());
        let (kind, name) = if dir.join("Cargo.toml").is_file() {
            (Kind::Rust, cargo_package_name(dir)?)
        } else if dir.join("app.py").is_file() {
            (Kind::Python, dir_name)
        } else if dir.join("app.js").is_file() {
            (Kind::Js, dir_name)
        } else {
            bail!(
                "{} is not a handler project: it has no {}, Cargo.toml, app.py or app.js; make one with `wasmpod new rust|python|js NAME`, or give a .wasm file",
                dir.display(),
                Manifest::FILE
            );
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            kind,
            name,
        })
    }

    /// Build the component; returns its path. The tools' output goes to
    /// stderr as they run.
    pub fn build(&self, sdk: &SdkArgs) -> anyhow::Result<PathBuf> {
        eprintln!(
            "building {} ({} handler in {})",
            self.name,
            self.kind,
            self.dir.display()
        );
        match self.kind {
            Kind::Rust => self.build_rust(),
            Kind::Python | Kind::Js => {
                let script = sdk
                    .dir(self.kind)?
                    .join(self.kind.as_str())
                    .join("build.sh");
                let out = self.dir.join(self.kind.artifact(&self.name));
                let status = Command::new("bash")
                    .arg(&script)
                    .arg(&self.dir)
                    .arg(&out)
                    .stdout(Stdio::inherit())
                    .status()
                    .with_context(|| format!("running {}", script.display()))?;
                if !status.success() {
                    bail!(
                        "building {} with {} failed ({status}); its messages are above",
                        self.dir.display(),
                        script.display()
                    );
                }
                Ok(out)
            }
        }
    }

    fn build_rust(&self) -> anyhow::Result<PathBuf> {
        require_wasm_target()?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = self.dir.join("Cargo.toml");
        let mut child = Command::new(&cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--message-format=json-render-diagnostics",
                "--manifest-path",
            ])
            .arg(&manifest)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!(
                    "running {}; install Rust with rustup",
                    cargo.to_string_lossy()
                )
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let want = manifest.canonicalize().unwrap_or(manifest.clone());
        let mut artifact = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.context("reading cargo's output")?;
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let ours = msg["manifest_path"]
                .as_str()
                .map(|p| Path::new(p).canonicalize().unwrap_or(PathBuf::from(p)) == want)
                .unwrap_or(false);
            if !ours {
                continue;
            }
            if let Some(files) = msg["filenames"].as_array() {
                for f in files.iter().filter_map(|f| f.as_str()) {
                    if f.ends_with(".wasm") {
                        artifact = Some(PathBuf::from(f));
                    }
                }
            }
        }
        let status = child.wait().context("waiting for cargo")?;
        if !status.success() {
            bail!(
                "cargo build of {} failed ({status}); its messages are above",
                self.dir.display()
            );
        }
        artifact.with_context(|| {
            format!(
                "cargo built no .wasm for {}; a handler crate needs `[lib] crate-type = [\"cdylib\"]`",
                manifest.display()
            )
        })
    }
}

fn cargo_package_name(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no [package] name", path.display()))
}

/// Cargo's own error for a missing target is a page about `core`; say it
/// plainly when rustup can tell.
fn require_wasm_target() -> anyhow::Result<()> {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(()); // no rustup: let cargo speak
    };
    let installed = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && !installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        bail!(
            "the wasm32-wasip2 Rust target is not installed; run `rustup target add wasm32-wasip2`"
        );
    }
    Ok(())
}

/// A project's `test_input.json`: RunPod's `{"input": ...}` file, or a bare
/// value; None when there is none.
pub fn test_input(dir: &Path) -> anyhow::Result<Option<serde_json::Value>> {
    let path = dir.join("test_input.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(Some(match v {
        serde_json::Value::Object(mut m) if m.len() == 1 && m.contains_key("input") => {
            m.remove("input").unwrap_or_default()
        }
        other => other,
    }))
}

/// A handler argument: a project directory (built now) or a `.wasm` file.
pub fn component(path: &Path, sdk: &SdkArgs) -> anyhow::Result<(PathBuf, Option<Project>)> {
    if path.is_dir() {
        let project = Project::open(path)?;
        let wasm = project.build(sdk)?;
        return Ok((wasm, Some(project)));
    }
    if !path.exists() {
        bail!(
            "{} does not exist; give a handler project directory or a .wasm component",
            path.display()
        );
    }
    Ok((path.to_path_buf(), None))
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub sdk: SdkArgs,
}

/// `wasmpod build [DIR]`: build the project, print the component's path.
pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let project = Project::open(&args.dir)?;
    let wasm = project.build(&args.sdk)?;
    println!("{}", wasm.display());
    Ok(ExitCode::SUCCESS)
}
