//! /v1/models: upload model files (safetensors and auxiliary files) into
//! the content-addressed model store, list and delete models.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::serve::models::check_model_name;
use crate::store::ModelFile;

/// A model and its files.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub name: String,
    /// Total bytes.
    pub size: i64,
    pub files: Vec<ModelFile>,
}

fn model_view(name: String, files: Vec<ModelFile>) -> ModelView {
    ModelView {
        size: files.iter().map(|f| f.size).sum(),
        name,
        files,
    }
}

/// Upload one file of a model (raw bytes as the body). `.safetensors`
/// files are checked; an existing path is replaced.
#[utoipa::path(put, path = "/v1/models/{model}/files/{path}", tag = "models",
    params(("model" = String, Path), ("path" = String, Path, description = "File path inside the model, may contain '/'")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ModelFile), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn upload_file(
    State(state): State<ApiState>,
    caller: Caller,
    Path((model, path)): Path<(String, String)>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ModelFile>)> {
    caller.require_admin()?;
    let file = state
        .app
        .models
        .upload(&model, &path, body.into_data_stream())
        .await?;
    Ok((StatusCode::CREATED, Json(file)))
}

/// List models.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = Vec<ModelView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_models(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    let models: Vec<ModelView> = state
        .app
        .models
        .list()
        .await?
        .into_iter()
        .map(|(n, f)| model_view(n, f))
        .collect();
    Ok(Json(json!({ "models": models })))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "models",
    params(("model" = String, Path)),
    responses((status = 200, body = ModelView), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_model(
    State(state): State<ApiState>,
    caller: Caller,
    Path(model): Path<String>,
) -> ApiResult<Json<ModelView>> {
    caller.require_admin()?;
    check_model_name(&model)?;
    let files = state
        .app
        .models
        .list()
        .await?
        .remove(&model)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no model {model:?}; upload its files with PUT /v1/models/{model}/files/<path>"
            ))
        })?;
    Ok(Json(model_view(model, files)))
}

/// Delete a model (blobs no other model uses are removed).
#[utoipa::path(delete, path = "/v1/models/{model}", tag = "models",
    params(("model" = String, Path)),
    responses((status = 200), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_model(
    State(state): State<ApiState>,
    caller: Caller,
    Path(model): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require_admin()?;
    state.app.models.delete(&model).await?;
    Ok(Json(json!({ "name": model, "deleted": true })))
}
