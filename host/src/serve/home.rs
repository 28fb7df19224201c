//! The state directory (`--home`): job inputs and outputs, API key hashes
//! and the key secret live there, so it is private to wasmpod's user.
//! Everything the process creates gets mode 0700 (directories) or 0600
//! (files) through a umask of 077: the database and its -wal/-shm files,
//! handlers, models, the compiled-code cache, snapshots and spill files
//! (executors inherit the umask). A home that already exists is left as it
//! is, with a warning when other users can read it.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Make every file and directory this process (and its children) creates
/// private to its user.
pub fn private_umask() {
    // SAFETY: umask only sets the process's file-mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Create `home` (0700, with any missing parents) or check an existing one.
pub fn prepare(home: &Path) -> std::io::Result<()> {
    private_umask();
    match std::fs::metadata(home) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    home = %home.display(),
                    mode = format!("{mode:04o}"),
                    "the home directory is open to other users: they may read job inputs and outputs, the database and the key secret. Make it private with `chmod -R go-rwx {}`",
                    home.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home),
        Err(e) => Err(e),
    }
}
