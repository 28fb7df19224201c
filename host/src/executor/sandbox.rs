//! What an executor process may touch. Executors run untrusted guests; the
//! wasm sandbox is the first wall, this is the second: code that escaped
//! wasmtime inside an executor must find as little as the host can give.
//!
//! At its start, before any thread but the main one exists (Landlock
//! applies to the calling thread and the threads it starts later), an
//! executor sets `no_new_privs` and, where the kernel offers Landlock,
//! restricts itself to:
//!
//! - read-only: the directories the host names (its handlers, the managed
//!   model store, each endpoint's `models_dir`), the `wasmpod` binary, the
//!   directories of the libraries it has loaded, `/dev/urandom`, and its
//!   own `/proc/self`; on a GPU slice also the system library directories,
//!   `/proc` and `/sys`, which the CUDA driver reads;
//! - read-write: its cache (compiled code, snapshots, spill files),
//!   `/dev/null`, and on a GPU slice the `/dev/nvidia*` device files;
//! - no TCP (Landlock ABI 4), no signals to or abstract-socket connections
//!   with processes outside it (ABI 6), no `execve` of anything.
//!
//! Everything else, the host's database and key secret above all, cannot be
//! opened. Executors also drop every capability, and `wasmpod serve` makes
//! itself undumpable, so `/proc/<host pid>/environ` (where
//! `WASMPOD_ADMIN_KEY` may be) stays shut even where `/proc` is readable
//! for the CUDA driver: a GPU run showed Landlock's ptrace rule alone did
//! not shut it for a root host. On a kernel without Landlock only
//! `no_new_privs` and the dropped capabilities hold; the host says so at
//! start.

use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The newest Landlock ABI these rules were written and tested against;
/// a kernel offering less gets what it has (best effort).
const TESTED_ABI: ABI = ABI::V6;

/// Why the sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("dropping capabilities: {0}")]
    Capabilities(caps::errors::CapsError),
    #[error("building the Landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
}

/// The sandbox an executor is started with (the host's side: what it
/// passes on the command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Landlock off (`wasmpod serve --no-executor-sandbox`): the executor
    /// sees what the host's user sees. `no_new_privs` is set regardless.
    pub disabled: bool,
    /// Directories (or files) the executor reads.
    pub read_only: Vec<PathBuf>,
    /// Directories it writes (its cache is always one).
    pub read_write: Vec<PathBuf>,
}

impl SandboxPolicy {
    /// The executor's command-line arguments for this policy.
    pub fn args(&self) -> Vec<OsString> {
        let mut out = Vec::new();
        if self.disabled {
            out.push("--no-sandbox".into());
        }
        for p in &self.read_only {
            out.push("--sandbox-read".into());
            out.push(p.clone().into_os_string());
        }
        for p in &self.read_write {
            out.push("--sandbox-write".into());
            out.push(p.clone().into_os_string());
        }
        out
    }

    /// Whether an executor under this policy can read `path`.
    pub fn can_read(&self, path: &Path) -> bool {
        self.disabled
            || self
                .read_only
                .iter()
                .chain(&self.read_write)
                .any(|p| path.starts_with(p))
    }
}

/// What an executor must read to serve models from `dir`: the directory,
/// and where the symlinks in it and in its model directories lead (a
/// model linked in from elsewhere, a Hugging Face cache's blobs).
/// Landlock judges the file a path resolves to, not the link.
pub fn reads_for_models(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let visit = |entry: &std::fs::DirEntry, out: &mut Vec<PathBuf>| {
        if entry.file_type().is_ok_and(|t| t.is_symlink())
            && let Ok(target) = std::fs::canonicalize(entry.path())
            && !out.iter().any(|p| target.starts_with(p))
        {
            out.push(target);
        }
    };
    for model in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        visit(&model, &mut out);
        let inner = std::fs::read_dir(model.path())
            .into_iter()
            .flatten()
            .flatten();
        for file in inner {
            visit(&file, &mut out);
        }
    }
    out
}

/// The kernel's Landlock ABI version, `None` where it has none (not built
/// in, or not enabled at boot).
pub fn kernel_abi() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag,
    // landlock_create_ruleset only returns the ABI version (or an error).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as i32)
}

/// What the host logs once at start about the executors' sandbox.
pub fn describe_for_host(disabled: bool) {
    match (disabled, kernel_abi()) {
        (true, _) => tracing::warn!(
            "executor sandbox off (--no-executor-sandbox): executors can read and write whatever this user can, including the database; only no_new_privs is set"
        ),
        (false, Some(abi)) => tracing::info!(
            "executors are sandboxed with Landlock (kernel ABI {abi}): they reach only their cache, the handlers and the models"
        ),
        (false, None) => tracing::warn!(
            "this kernel does not offer Landlock (Linux 5.13 or later with Landlock enabled, e.g. lsm=landlock,... on the kernel command line): executors run with no_new_privs only and can read whatever this user can, including the database"
        ),
    }
}

/// How the sandbox came out in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Landlock enforces every rule.
    Full,
    /// Landlock enforces the rules this kernel's ABI knows.
    Partial,
    /// No Landlock (kernel lacks it, or the policy turned it off).
    NoLandlock(String),
}

fn no_new_privs() -> Result<(), SandboxError> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes the value 1 and unused zeros.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(SandboxError::NoNewPrivs(std::io::Error::last_os_error()))
    }
}

/// An executor needs no capability: where the host runs as root, its
/// executors would otherwise keep root's (CAP_SYS_PTRACE reads any
/// process's /proc entries, CAP_DAC_OVERRIDE ignores file modes). The
/// bounding set is emptied too where this process may (root), so nothing
/// it could exec regains them; `no_new_privs` already stops setuid.
fn drop_capabilities() -> Result<(), SandboxError> {
    use caps::CapSet;
    if caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        // Only those the kernel has (an older one refuses unknown ones).
        let bounding = caps::read(None, CapSet::Bounding).map_err(SandboxError::Capabilities)?;
        for cap in bounding {
            caps::drop(None, CapSet::Bounding, cap).map_err(SandboxError::Capabilities)?;
        }
    }
    // Ambient capabilities need Linux 4.3; where there are none, none leak.
    let _ = caps::clear(None, CapSet::Ambient);
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(SandboxError::Capabilities)?;
    }
    Ok(())
}

/// The host's side: no process without CAP_SYS_PTRACE may read this
/// process's memory or its /proc entries (`environ` holds
/// `WASMPOD_ADMIN_KEY`), not even one of the same user; executors have no
/// capabilities at all (above). The price: no core dumps of the host.
pub fn shield_host() {
    // SAFETY: PR_SET_DUMPABLE takes 0 or 1 and unused zeros.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if r != 0 {
        tracing::warn!(
            "could not make the host undumpable ({}); processes of its user may read its environment",
            std::io::Error::last_os_error()
        );
    }
}

/// Directories of the shared libraries this process has mapped (a library
/// loaded later from one of them, or one it re-opens, stays readable).
fn mapped_library_dirs() -> Vec<PathBuf> {
    let Ok(maps) = std::fs::File::open("/proc/self/maps") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in std::io::BufReader::new(maps).lines().map_while(Result::ok) {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        let path = Path::new(path);
        if path.is_absolute()
            && path.to_string_lossy().contains(".so")
            && let Some(dir) = path.parent()
            && !dirs.iter().any(|d| d == dir)
        {
            dirs.push(dir.to_path_buf());
        }
    }
    dirs
}

/// Paths of the GPU's device files (`/dev/nvidia0`, `/dev/nvidiactl`,
/// `/dev/nvidia-uvm`, `/dev/nvidia-caps`...).
fn nvidia_devices() -> Vec<PathBuf> {
    std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("nvidia"))
        .map(|e| e.path())
        .collect()
}

/// Restrict this process (call it before starting any other thread) to
/// `policy` plus what an executor itself needs; `gpu` adds what the CUDA
/// driver reads and the GPU's device files.
pub fn apply(policy: &SandboxPolicy, gpu: bool) -> Result<Applied, SandboxError> {
    no_new_privs()?;
    drop_capabilities()?;
    if policy.disabled {
        return Ok(Applied::NoLandlock(
            "turned off by the host (--no-executor-sandbox)".into(),
        ));
    }
    let abi = TESTED_ABI;
    let read = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);

    let mut read_only: Vec<PathBuf> = policy.read_only.clone();
    read_only.extend(mapped_library_dirs());
    if let Ok(exe) = std::env::current_exe() {
        read_only.push(exe);
    }
    read_only.push("/dev/urandom".into());
    // Its own /proc entries only (the rule binds /proc/<pid> itself).
    read_only.push("/proc/self".into());
    let mut read_write: Vec<PathBuf> = policy.read_write.clone();
    read_write.push("/dev/null".into());
    if gpu {
        for dir in [
            "/usr",
            "/lib",
            "/lib64",
            "/opt",
            "/etc/ld.so.cache",
            "/etc/ld.so.conf",
            "/etc/ld.so.conf.d",
            "/proc",
            "/sys",
        ] {
            read_only.push(dir.into());
        }
        if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
            read_only.extend(std::env::split_paths(&paths));
        }
        read_write.extend(nvidia_devices());
    }

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?;
    // A path that does not exist here (an endpoint's models_dir not made
    // yet, /lib64 on some systems) is skipped: nothing can be read there
    // anyway until it is made, and then the next executor covers it.
    for (paths, access) in [(&read_only, read), (&read_write, all)] {
        for path in paths {
            match PathFd::new(path) {
                Ok(fd) => {
                    let access = if path.is_dir() {
                        access
                    } else {
                        access & AccessFs::from_file(abi)
                    };
                    ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
                }
                Err(e) => tracing::debug!(path = %path.display(), "sandbox: skipped: {e}"),
            }
        }
    }
    let status = ruleset.restrict_self()?;
    Ok(match (status.ruleset, status.landlock) {
        (RulesetStatus::FullyEnforced, _) => Applied::Full,
        (RulesetStatus::PartiallyEnforced, _) => Applied::Partial,
        (RulesetStatus::NotEnforced, LandlockStatus::NotEnabled) => {
            Applied::NoLandlock("Landlock is built into this kernel but not enabled".into())
        }
        (RulesetStatus::NotEnforced, _) => {
            Applied::NoLandlock("this kernel does not offer Landlock".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_round_trips_to_arguments_and_covers_its_paths() {
        let p = SandboxPolicy {
            disabled: false,
            read_only: vec!["/srv/handlers".into(), "/srv/models".into()],
            read_write: vec!["/srv/cache".into()],
        };
        let args: Vec<String> = p
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--sandbox-read",
                "/srv/handlers",
                "--sandbox-read",
                "/srv/models",
                "--sandbox-write",
                "/srv/cache"
            ]
        );
        assert!(p.can_read(Path::new("/srv/models/mlp/w.safetensors")));
        assert!(!p.can_read(Path::new("/srv/wasmpod.db")));
        assert!(!p.can_read(Path::new("/srv/handlersx")));
    }
}
