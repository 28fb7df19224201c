//! /v1/keys: create, list and revoke API keys (admin only). The key itself
//! is shown once, in the answer to its creation.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::body::read_json;
use super::doc::Rejected;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::validate::{self, KeyPath};
use crate::store::{ApiKeyRecord, Scope};

/// Create a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label to recognise it by (not blank).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// "admin" (everything) or "invoke" (one endpoint's /v2 routes).
    #[schema(value_type = KeyScope)]
    pub scope: String,
    /// The endpoint an "invoke" key may call (none for an admin key).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub endpoint_id: Option<String>,
}

/// What a key may do.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the schema of CreateKey.scope and KeyView.scope
pub enum KeyScope {
    Admin,
    Invoke,
}

/// Answer of GET /v1/keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// Answer of DELETE /v1/keys/{key_id}.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedKey {
    pub id: String,
    pub revoked: bool,
}

/// A key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    #[schema(value_type = KeyScope)]
    pub scope: String,
    pub endpoint_id: Option<String>,
    /// The first characters of a generated key, to recognise it by; empty
    /// for an operator-chosen key (WASMPOD_ADMIN_KEY), all of which is
    /// secret.
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Answer of a key creation: the only time `key` is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    pub key: String,
}

fn view(k: ApiKeyRecord) -> KeyView {
    let (scope, endpoint_id) = match k.scope {
        Scope::Admin => ("admin".to_string(), None),
        Scope::Invoke { endpoint_id } => ("invoke".to_string(), Some(endpoint_id)),
    };
    KeyView {
        id: k.id,
        name: k.name,
        scope,
        endpoint_id,
        prefix: k.prefix,
        created_at: k.created_at,
        revoked_at: k.revoked_at,
    }
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn create_key(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require_admin()?;
    let req: CreateKey = read_json(
        &headers,
        body,
        r#"{"name": "ci", "scope": "invoke", "endpoint_id": "my-endpoint"}"#,
    )
    .await?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    let scope = match (req.scope.as_str(), req.endpoint_id) {
        ("admin", None) => Scope::Admin,
        ("admin", Some(_)) => {
            return Err(ApiError::bad_request(
                "an admin key is not tied to an endpoint; drop endpoint_id or use scope \"invoke\"",
            ));
        }
        ("invoke", Some(endpoint_id)) => {
            let endpoint_id = validate::endpoint_id(&endpoint_id)?;
            if state.app.endpoint(&endpoint_id).await?.is_none() {
                return Err(ApiError::bad_request(format!(
                    "no endpoint {endpoint_id:?} for this invoke key; create the endpoint first"
                )));
            }
            Scope::Invoke { endpoint_id }
        }
        ("invoke", None) => {
            return Err(ApiError::bad_request(
                "an invoke key needs the endpoint_id it may call",
            ));
        }
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "scope {other:?} is not one of \"admin\", \"invoke\""
            )));
        }
    };
    if req.name.len() > 200 {
        return Err(ApiError::bad_request("name must be at most 200 characters"));
    }
    let (record, key) = state.app.create_key(req.name.trim(), scope).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            view: view(record),
            key,
        }),
    ))
}

/// List API keys.
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), Rejected),
    security(("api_key" = [])))]
pub async fn list_keys(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<KeyList>> {
    caller.require_admin()?;
    let keys: Vec<KeyView> = state.app.list_keys().await?.into_iter().map(view).collect();
    Ok(Json(KeyList { keys }))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path)),
    responses((status = 200, body = RevokedKey), (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn revoke_key(
    State(state): State<ApiState>,
    caller: Caller,
    KeyPath { key: id }: KeyPath,
) -> ApiResult<Json<RevokedKey>> {
    caller.require_admin()?;
    if !state.app.revoke_key(&id).await? {
        return Err(ApiError::not_found(format!(
            "no live API key with id {id:?}; list them with GET /v1/keys"
        )));
    }
    state.keys.clear();
    Ok(Json(RevokedKey { id, revoked: true }))
}
