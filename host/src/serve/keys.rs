//! API keys: generation, hashing, and the bootstrap admin key.

use sha2::{Digest, Sha256};

use crate::store::{ApiKeyRecord, Scope, Store, StoreError, now_ms};

/// Every key starts with this, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "wpk_";

/// A new random key (256 bits).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator");
    format!("{KEY_PREFIX}{}", hex::encode(bytes))
}

/// What the store keeps: keys are random and long, so a plain sha256 is
/// enough (no salt needed against guessing).
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Create and store a key; returns its record and the key itself (shown
/// once, never stored).
pub async fn create(
    store: &Store,
    name: &str,
    scope: Scope,
) -> Result<(ApiKeyRecord, String), StoreError> {
    let key = generate();
    let record = ApiKeyRecord {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        name: name.to_string(),
        prefix: key[..KEY_PREFIX.len() + 6].to_string(),
        scope,
        created_at: now_ms(),
        revoked_at: None,
    };
    store.insert_key(&record, &hash(&key)).await?;
    Ok((record, key))
}

/// What bootstrap did.
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
pub async fn bootstrap(store: &Store, env_key: Option<&str>) -> Result<Bootstrap, StoreError> {
    if let Some(key) = env_key {
        if store.find_key(&hash(key)).await?.is_some() {
            return Ok(Bootstrap::Existing);
        }
        let record = ApiKeyRecord {
            id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            name: "bootstrap (WASMPOD_ADMIN_KEY)".to_string(),
            prefix: key.chars().take(KEY_PREFIX.len() + 6).collect(),
            scope: Scope::Admin,
            created_at: now_ms(),
            revoked_at: None,
        };
        store.insert_key(&record, &hash(key)).await?;
        return Ok(Bootstrap::FromEnv);
    }
    if store.count_admin_keys().await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let (_, key) = create(store, "bootstrap", Scope::Admin).await?;
    Ok(Bootstrap::Generated(key))
}
