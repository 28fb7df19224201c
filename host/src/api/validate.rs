//! Path parameters and query strings, checked before they reach the app:
//! every id a route takes has one format here (documented in the OpenAPI
//! document as a pattern), a malformed one is a 400 that says the format,
//! and only well-formed ids ever touch the filesystem or the database (an
//! unknown but well-formed one is the route's 404). Query strings that do
//! not parse are JSON 400s too, never axum's plain-text rejections.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Endpoint ids: lowercase letters, digits and '-', 1 to 64, not starting
/// with '-' (RunPod's ids are lowercase alphanumerics).
pub const ENDPOINT_ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,63}$";
/// Handler digests: sha256 in hex, optionally written `sha256:<hex>`.
pub const DIGEST_PATTERN: &str = "^(sha256:)?[0-9a-fA-F]{64}$";
/// Job ids: a UUID, with `sync-` in front for /runsync jobs.
pub const JOB_ID_PATTERN: &str =
    "^(sync-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// Batch ids: `batch-` and a UUID.
pub const BATCH_ID_PATTERN: &str =
    "^batch-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// A batch request's id: the id of the job it becomes (a UUID).
pub const REQUEST_ID_PATTERN: &str =
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// API key ids: 12 lowercase hex digits.
pub const KEY_ID_PATTERN: &str = "^[0-9a-f]{12}$";
/// Model names: letters, digits, '-', '_' and '.', not starting with '.'.
pub const MODEL_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";

/// Shown in messages: a bad value is quoted, cut to a readable length.
fn shown(v: &str) -> String {
    let cut: String = v.chars().take(80).collect();
    if cut.len() < v.len() {
        format!("{cut:?}... ({} bytes)", v.len())
    } else {
        format!("{cut:?}")
    }
}

/// An endpoint id, checked.
pub fn endpoint_id(id: &str) -> Result<String, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(id.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "endpoint id {} is malformed: it is 1-64 lowercase letters, digits or '-', not starting with '-'",
            shown(id)
        )))
    }
}

/// A handler digest, checked and normalised (lowercase, no `sha256:`).
pub fn digest(d: &str) -> Result<String, ApiError> {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    if hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(format!(
            "handler digest {} is malformed: it is the 64 hex characters of a sha256, as the \"digest\" POST /v1/handlers returns",
            shown(d)
        )))
    }
}

/// A job id, checked.
pub fn job_id(id: &str) -> Result<String, ApiError> {
    let uuid = id.strip_prefix("sync-").unwrap_or(id);
    let ok = uuid.len() == 36
        && uuid.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        });
    if ok {
        Ok(id.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "job id {} is malformed: use the \"id\" that /run or /runsync returned (a UUID, \"sync-<UUID>\" for /runsync)",
            shown(id)
        )))
    }
}

fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// A batch id, checked.
pub fn batch_id(id: &str) -> Result<String, ApiError> {
    if id.strip_prefix("batch-").is_some_and(is_uuid) {
        Ok(id.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "batch id {} is malformed: use the \"id\" POST /v2/{{endpoint}}/batch returned (\"batch-<UUID>\")",
            shown(id)
        )))
    }
}

/// A batch request's id, checked.
pub fn request_id(id: &str) -> Result<String, ApiError> {
    if is_uuid(id) {
        Ok(id.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "request id {} is malformed: use a request's \"id\" from GET .../batch/{{batch}}/requests (a UUID)",
            shown(id)
        )))
    }
}

/// An API key id, checked.
pub fn key_id(id: &str) -> Result<String, ApiError> {
    if id.len() == 12
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        Ok(id.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "key id {} is malformed: use the 12-character \"id\" GET /v1/keys lists",
            shown(id)
        )))
    }
}

/// The raw path parameters of a request, by name.
async fn params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<HashMap<String, String>, ApiError> {
    let Path(map) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the request path is malformed ({}); path parameters are UTF-8 text",
                e.body_text()
            ))
        })?;
    Ok(map)
}

fn param(map: &HashMap<String, String>, name: &str) -> Result<String, ApiError> {
    map.get(name)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("the route has no {{{name}}} parameter")))
}

macro_rules! path_extractor {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $param:literal => $check:path),+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name { $(pub $field: String),+ }

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;
            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let map = params(parts, state).await?;
                Ok(Self { $($field: $check(&param(&map, $param)?)?),+ })
            }
        }
    };
}

path_extractor!(
    /// `{endpoint_id}`.
    EndpointPath { endpoint: "endpoint_id" => endpoint_id }
);
path_extractor!(
    /// `{endpoint_id}` and `{job_id}`.
    JobPath { endpoint: "endpoint_id" => endpoint_id, job: "job_id" => job_id }
);
path_extractor!(
    /// `{endpoint_id}` and `{batch_id}`.
    BatchPath { endpoint: "endpoint_id" => endpoint_id, batch: "batch_id" => batch_id }
);
path_extractor!(
    /// `{endpoint_id}`, `{batch_id}` and `{request_id}`.
    BatchRequestPath {
        endpoint: "endpoint_id" => endpoint_id,
        batch: "batch_id" => batch_id,
        request: "request_id" => request_id
    }
);
path_extractor!(
    /// `{digest}` of a handler version (normalised).
    DigestPath { digest: "digest" => digest }
);
path_extractor!(
    /// `{key_id}`.
    KeyPath { key: "key_id" => key_id }
);

fn model_name(name: &str) -> Result<String, ApiError> {
    crate::serve::models::check_model_name(name)?;
    Ok(name.to_string())
}

fn model_file(path: &str) -> Result<String, ApiError> {
    crate::serve::models::check_file_path(path)?;
    Ok(path.to_string())
}

path_extractor!(
    /// `{model}`.
    ModelPath { model: "model" => model_name }
);
path_extractor!(
    /// `{model}` and the file `{*path}` inside it.
    ModelFilePath { model: "model" => model_name, path: "path" => model_file }
);

/// A query string parsed into `T`; a malformed one is a JSON 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(q) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the query string is malformed: {}; see /openapi.json for this route's parameters",
                    e.body_text()
                ))
            })?;
        Ok(Self(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_format_each() {
        assert!(endpoint_id("echo-2").is_ok());
        for bad in ["", "-x", "Echo", "a/b", "..", &"a".repeat(65), "x y"] {
            assert!(endpoint_id(bad).is_err(), "{bad:?}");
        }
        let d = "ab".repeat(32);
        assert_eq!(digest(&format!("sha256:{}", d.to_uppercase())).unwrap(), d);
        for bad in [
            "../victim",
            "/tmp/victim",
            &"a".repeat(300),
            &"g".repeat(64),
        ] {
            let e = digest(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad:?}");
            assert!(e.message.len() < 400, "long values are cut: {}", e.message);
        }
        let j = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert!(job_id(j).is_ok());
        assert!(job_id(&format!("sync-{j}")).is_ok());
        for bad in ["not-a-job", &j.to_uppercase(), &format!("x{j}"), ""] {
            assert!(job_id(bad).is_err(), "{bad:?}");
        }
        assert!(batch_id(&format!("batch-{j}")).is_ok());
        for bad in [
            j,
            "batch-",
            "batch-../x",
            &format!("batch-{}", j.to_uppercase()),
        ] {
            assert!(batch_id(bad).is_err(), "{bad:?}");
        }
        assert!(request_id(j).is_ok());
        assert!(request_id(&format!("sync-{j}")).is_err());
        assert!(key_id("0123456789ab").is_ok());
        assert!(key_id("0123456789abc").is_err());
        assert!(key_id("../../etc/pa").is_err());
    }
}
