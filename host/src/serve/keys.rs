//! API keys: generation, hashing, verification and the bootstrap admin key.
//!
//! The store keeps HMAC-SHA256(install secret, key), the secret being 32
//! random bytes in `<home>/key.secret` (0600), so a copy of the database
//! alone does not let anyone test guesses of a low-entropy key (a generated
//! key has 256 random bits; an operator-chosen one may have far fewer).
//! Rows of older versions hold a plain sha256: they are re-hashed the first
//! time their key is used (the environment's admin key at the next start).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::store::{
    ApiKeyRecord, KEY_HASH_SCHEME, LEGACY_KEY_HASH_SCHEME, Scope, Store, StoreError, now_ms,
};

/// Every key starts with this, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "wpk_";

/// The shortest admin key accepted from WASMPOD_ADMIN_KEY.
pub const MIN_ADMIN_KEY_LEN: usize = 32;
/// And the fewest distinct characters in it (refuses "aaaa...", "abab...").
const MIN_DISTINCT_CHARS: usize = 10;

/// The name the environment's admin key is stored under.
const ENV_KEY_NAME: &str = "bootstrap (WASMPOD_ADMIN_KEY)";

/// Why keys could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the install's key secret {path}: {source}; it must be readable by wasmpod (it is made on first start)"
    )]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the install's key secret {0} is corrupt (not 64 hex digits); restore it from a backup (without it every API key must be re-created)"
    )]
    CorruptSecret(PathBuf),
    #[error(
        "WASMPOD_ADMIN_KEY is too weak ({0}): an admin key must be at least {MIN_ADMIN_KEY_LEN} characters of random text, so nobody can guess it. Make one with `openssl rand -hex 32`, or unset WASMPOD_ADMIN_KEY and wasmpod prints a generated key on its first start"
    )]
    WeakAdminKey(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hashes keys with the install's secret.
#[derive(Clone)]
pub struct KeyHasher {
    secret: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    /// The secret file of an install under `home`.
    pub fn secret_path(home: &Path) -> PathBuf {
        home.join("key.secret")
    }

    /// Read the install's secret under `home`, making it (0600) on first
    /// start.
    pub fn open(home: &Path) -> Result<Self, KeyError> {
        Self::open_file(&Self::secret_path(home))
    }

    /// The same with the secret at `path` (hosts of a cluster share one).
    pub fn open_file(path: &Path) -> Result<Self, KeyError> {
        let path = path.to_path_buf();
        let err = |source| KeyError::Secret {
            path: path.clone(),
            source,
        };
        let mut secret = [0u8; 32];
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                getrandom::fill(&mut secret).expect("the OS random number generator");
                file.write_all(hex::encode(secret).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(err)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut text = String::new();
                std::fs::File::open(&path)
                    .and_then(|mut f| f.read_to_string(&mut text))
                    .map_err(err)?;
                hex::decode_to_slice(text.trim(), &mut secret)
                    .map_err(|_| KeyError::CorruptSecret(path.clone()))?;
            }
            Err(e) => return Err(err(e)),
        }
        Ok(Self { secret })
    }

    /// What the store keeps for `key`.
    pub fn hash(&self, key: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The hash rows of older versions hold.
fn legacy_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// What a key's listing shows of it: the start of a generated key, nothing
/// of an operator-chosen one.
fn prefix_of(key: &str) -> String {
    let generated = key.len() == KEY_PREFIX.len() + 64
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit());
    if generated {
        key[..KEY_PREFIX.len() + 6].to_string()
    } else {
        String::new()
    }
}

/// A new random key (256 bits).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator");
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Create and store a key; returns its record and the key itself (shown
/// once, never stored).
pub async fn create(
    store: &Store,
    hasher: &KeyHasher,
    name: &str,
    scope: Scope,
) -> Result<(ApiKeyRecord, String), StoreError> {
    let key = generate();
    let record = ApiKeyRecord {
        id: new_id(),
        name: name.to_string(),
        prefix: prefix_of(&key),
        scope,
        created_at: now_ms(),
        revoked_at: None,
    };
    store.insert_key(&record, &hasher.hash(&key)).await?;
    Ok((record, key))
}

/// The key's record, live or revoked; a row of an older version found by
/// its plain sha256 is re-hashed on the way.
async fn lookup(
    store: &Store,
    hasher: &KeyHasher,
    key: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let hash = hasher.hash(key);
    if let Some(record) = store.key_with_hash(&hash, KEY_HASH_SCHEME).await? {
        return Ok(Some(record));
    }
    let Some(record) = store
        .key_with_hash(&legacy_hash(key), LEGACY_KEY_HASH_SCHEME)
        .await?
    else {
        return Ok(None);
    };
    let prefix = prefix_of(key);
    store.rehash_key(&record.id, &hash, &prefix).await?;
    tracing::info!(key = %record.id, "API key re-hashed with the install secret");
    Ok(Some(ApiKeyRecord { prefix, ..record }))
}

/// The live key a caller presented, if any.
pub async fn authenticate(
    store: &Store,
    hasher: &KeyHasher,
    key: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    if let Some(record) = store.find_key(&hasher.hash(key)).await? {
        return Ok(Some(record));
    }
    Ok(lookup(store, hasher, key)
        .await?
        .filter(|r| r.revoked_at.is_none()))
}

/// Whether `key` may be an admin key: long and varied enough that guessing
/// is hopeless.
pub fn check_admin_key(key: &str) -> Result<(), KeyError> {
    let len = key.chars().count();
    if len < MIN_ADMIN_KEY_LEN {
        return Err(KeyError::WeakAdminKey(format!("{len} characters")));
    }
    let distinct: std::collections::HashSet<char> = key.chars().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(KeyError::WeakAdminKey(format!(
            "only {} different characters",
            distinct.len()
        )));
    }
    Ok(())
}

/// What bootstrap did.
#[derive(Debug)]
pub enum Bootstrap {
    /// An admin key already existed (or the env key was already stored).
    Existing,
    /// The key from the environment was stored as an admin key.
    FromEnv,
    /// A new admin key was made; print it once.
    Generated(String),
}

/// Make sure there is an admin key: the one from `env_key` if given (stored
/// if new), else a generated one when there is none yet.
///
/// A revoked env key stays revoked (revoking is how an operator locks out a
/// leaked key; a restart must not undo it): the start warns, and if no
/// admin key is left a new one is generated and printed, as on a first
/// start.
pub async fn bootstrap(
    store: &Store,
    hasher: &KeyHasher,
    env_key: Option<&str>,
) -> Result<Bootstrap, KeyError> {
    if let Some(key) = env_key {
        check_admin_key(key)?;
        match lookup(store, hasher, key).await? {
            Some(record) if record.revoked_at.is_none() => {
                if record.scope != Scope::Admin {
                    tracing::warn!(
                        key = %record.id,
                        "WASMPOD_ADMIN_KEY is stored as an invoke key, not an admin key; it keeps that scope"
                    );
                }
                return Ok(Bootstrap::Existing);
            }
            Some(record) => {
                tracing::warn!(
                    key = %record.id,
                    revoked_at = record.revoked_at,
                    "WASMPOD_ADMIN_KEY is a key that was revoked: it stays revoked and is refused. Unset WASMPOD_ADMIN_KEY, or set it to a new key (`openssl rand -hex 32`)"
                );
            }
            None => {
                let record = ApiKeyRecord {
                    id: new_id(),
                    name: ENV_KEY_NAME.to_string(),
                    prefix: String::new(),
                    scope: Scope::Admin,
                    created_at: now_ms(),
                    revoked_at: None,
                };
                store.insert_key(&record, &hasher.hash(key)).await?;
                return Ok(Bootstrap::FromEnv);
            }
        }
    }
    if store.count_admin_keys().await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let (_, key) = create(store, hasher, "bootstrap", Scope::Admin).await?;
    Ok(Bootstrap::Generated(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_admin_keys_are_refused_with_how_to_make_one() {
        let e = check_admin_key("my-admin-key").unwrap_err().to_string();
        assert!(e.contains("12 characters"), "{e}");
        assert!(e.contains("openssl rand -hex 32"), "{e}");
        assert!(check_admin_key(&"ab".repeat(20)).is_err());
        assert!(check_admin_key(&generate()).is_ok());
    }

    #[test]
    fn only_generated_keys_keep_a_prefix() {
        let k = generate();
        assert_eq!(prefix_of(&k), k[..10]);
        assert_eq!(prefix_of("wpk_my_own_admin_key_that_is_long_enough"), "");
    }

    #[test]
    fn the_secret_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = KeyHasher::open(dir.path()).unwrap();
        let b = KeyHasher::open(dir.path()).unwrap();
        assert_eq!(a.hash("k"), b.hash("k"));
        assert_ne!(a.hash("k"), legacy_hash("k"));
        let mode = std::fs::metadata(KeyHasher::secret_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            KeyHasher::open(other.path()).unwrap().hash("k"),
            a.hash("k")
        );
    }
}
