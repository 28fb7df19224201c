//! /v1/keys: create, list and revoke API keys (admin only). The key itself
//! is shown once, in the answer to its creation.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::body::read_json;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::store::{ApiKeyRecord, Scope};

/// Create a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label to recognise it by.
    pub name: String,
    /// "admin" (everything) or "invoke" (one endpoint's /v2 routes).
    pub scope: String,
    /// The endpoint an "invoke" key may call.
    pub endpoint_id: Option<String>,
}

/// A key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub endpoint_id: Option<String>,
    /// The key's first characters.
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
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
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
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_keys(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let keys: Vec<KeyView> = state.app.list_keys().await?.into_iter().map(view).collect();
    Ok(Json(json!({ "keys": keys })))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", tag = "keys",
    params(("key_id" = String, Path)),
    responses((status = 200), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn revoke_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    if !state.app.revoke_key(&id).await? {
        return Err(ApiError::not_found(format!(
            "no live API key with id {id:?}; list them with GET /v1/keys"
        )));
    }
    state.keys.clear();
    Ok(Json(json!({ "id": id, "revoked": true })))
}
