//! API keys on every /v1 and /v2 route: `Authorization: Bearer <key>` or
//! RunPod's bare `Authorization: <key>`. A missing or unknown key is 401; a
//! key without the needed scope is 403. Verified keys are cached briefly in
//! memory (revoking clears the cache).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::ApiState;
use super::error::ApiError;
use crate::store::{ApiKeyRecord, Scope};

const CACHE_FOR: Duration = Duration::from_secs(30);

/// Recently verified keys, by their (keyed) hash.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, (ApiKeyRecord, Instant)>>);

impl KeyCache {
    pub fn clear(&self) {
        self.0.lock().expect("key cache lock").clear();
    }
}

/// The verified caller of a request.
pub struct Caller(pub ApiKeyRecord);

impl Caller {
    /// Admin routes need an admin key.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.0.scope {
            Scope::Admin => Ok(()),
            Scope::Invoke { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "API key {:?} may only invoke its endpoint; admin routes need a key with scope \"admin\"",
                    self.0.name
                ),
            )),
        }
    }

    /// An endpoint's /v2 routes need an admin key or its invoke key.
    pub fn require_invoke(&self, endpoint_id: &str) -> Result<(), ApiError> {
        match &self.0.scope {
            Scope::Admin => Ok(()),
            Scope::Invoke { endpoint_id: e } if e == endpoint_id => Ok(()),
            Scope::Invoke { endpoint_id: e } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "API key {:?} may only invoke endpoint {e:?}, not {endpoint_id:?}; use that endpoint's key or an admin key",
                    self.0.name
                ),
            )),
        }
    }
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, m)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized(
                "missing API key: send it as `Authorization: Bearer <key>`",
            ));
        };
        let value = value.to_str().map_err(|_| {
            unauthorized(
                "the Authorization header is not valid text; send `Authorization: Bearer <key>`",
            )
        })?;
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        if key.is_empty() {
            return Err(unauthorized(
                "the Authorization header has no key; send `Authorization: Bearer <key>`",
            ));
        }
        let hash = state.app.keys.hash(key);
        if let Some((record, at)) = state.keys.0.lock().expect("key cache lock").get(&hash)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(Caller(record.clone()));
        }
        let record = state.app.authenticate(key).await?.ok_or_else(|| {
            unauthorized(
                "invalid or revoked API key; create one with POST /v1/keys using an admin key",
            )
        })?;
        state
            .keys
            .0
            .lock()
            .expect("key cache lock")
            .insert(hash, (record.clone(), Instant::now()));
        Ok(Caller(record))
    }
}
