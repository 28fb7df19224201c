//! /v1/models: upload model files (safetensors and auxiliary files) into
//! the content-addressed model store, list and delete models.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::body::declared_length;
use super::doc::Rejected;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::validate::{ModelFilePath, ModelPath};
use crate::store::ModelFile;

/// A model and its files.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub name: String,
    /// Total bytes.
    pub size: i64,
    pub files: Vec<ModelFile>,
}

/// Answer of GET /v1/models.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelView>,
}

/// Answer of DELETE /v1/models/{model}.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedModel {
    pub name: String,
    pub deleted: bool,
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
    params(("model" = String, Path),
        ("path" = String, Path, max_length = 512, description = "File path inside the model, may contain '/'; no '..', hidden ('.') parts or control characters")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ModelFile),
        (status = 409, description = "The path clashes with another file of the model", body = ErrorBody),
        (status = 413, description = "Over --max-model-file-size", body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn upload_file(
    State(state): State<ApiState>,
    caller: Caller,
    ModelFilePath { model, path }: ModelFilePath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ModelFile>)> {
    caller.require_admin()?;
    let limit = state.app.config.max_model_file_bytes;
    if let Some(len) = declared_length(&headers)
        && len > limit
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is {len} bytes, over the limit of {limit} bytes"),
        ));
    }
    let file = state
        .app
        .models
        .upload(&model, &path, body.into_data_stream())
        .await?;
    Ok((StatusCode::CREATED, Json(file)))
}

/// List models.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = ModelList), Rejected),
    security(("api_key" = [])))]
pub async fn list_models(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<ModelList>> {
    caller.require_admin()?;
    let models: Vec<ModelView> = state
        .app
        .models
        .list()
        .await?
        .into_iter()
        .map(|(n, f)| model_view(n, f))
        .collect();
    Ok(Json(ModelList { models }))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "models",
    params(("model" = String, Path)),
    responses((status = 200, body = ModelView), (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn get_model(
    State(state): State<ApiState>,
    caller: Caller,
    ModelPath { model }: ModelPath,
) -> ApiResult<Json<ModelView>> {
    caller.require_admin()?;
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
    responses((status = 200, body = DeletedModel), (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn delete_model(
    State(state): State<ApiState>,
    caller: Caller,
    ModelPath { model }: ModelPath,
) -> ApiResult<Json<DeletedModel>> {
    caller.require_admin()?;
    state.app.models.delete(&model).await?;
    Ok(Json(DeletedModel {
        name: model,
        deleted: true,
    }))
}
