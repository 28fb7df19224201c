//! The OpenAPI document at `/openapi.json`, generated (utoipa) from the
//! types the routes read and answer. Two fix-ups make it say exactly what
//! the server does: a `#[serde(flatten)]`ed struct becomes one flat object
//! (utoipa writes an `allOf` that a strict part makes unsatisfiable), and
//! every path parameter gets the pattern [`super::validate`] checks it
//! against. Every route lists each status it can answer.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, Object, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{IntoResponses, OpenApi};

use super::error::ErrorBody;
use super::validate;
use super::{admin, batches, fleet, history, jobs, keys, lb, logs, metrics, models, openai, stats};

/// What every route with an API key can answer besides its own results.
#[derive(IntoResponses)]
#[allow(dead_code)] // only its documentation is used
pub enum Rejected {
    /// Malformed: a path parameter, the query string or the body; the
    /// message says what to send instead.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No API key, or one that is unknown or revoked.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key's scope does not cover this route.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The host failed (never because of the request); the message says
    /// what failed.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// What a rate-limited route answers past its endpoint's limit
/// ([`super::ratelimit`]).
#[derive(IntoResponses)]
#[allow(dead_code)] // only its documentation is used
pub enum Limited {
    /// Past the endpoint's rate limit for this operation (requests per
    /// window, or requests at once); retry after the seconds in
    /// `Retry-After`.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds until a retry can be admitted")))]
    TooManyRequests(ErrorBody),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasmpod",
        description = "Self-hosted serverless runtime for WebAssembly GPU handlers. /v2 is RunPod's job API; /v1 is the admin API. Every /v1 and /v2 route needs `Authorization: Bearer <key>`."
    ),
    paths(
        jobs::run, jobs::runsync, jobs::status, jobs::stream, jobs::cancel, jobs::retry,
        jobs::purge_queue, jobs::health,
        batches::create, batches::list, batches::get, batches::add_requests, batches::requests,
        batches::remove_request, batches::update_request, batches::finalize, batches::cancel,
        openai::chat_completions, openai::completions, openai::models,
        admin::upload_handler, admin::list_handlers, admin::get_handler, admin::delete_handler,
        admin::create_endpoint, admin::list_endpoints, admin::get_endpoint, admin::update_endpoint,
        admin::delete_endpoint,
        history::list_jobs, history::get_job, logs::logs, stats::endpoint_stats, stats::all_stats,
        models::upload_file, models::list_models, models::get_model, models::delete_model,
        keys::create_key, keys::list_keys, keys::revoke_key,
        fleet::inventory, fleet::hosts, fleet::usage, metrics::metrics,
        lb::lb,
    ),
    modifiers(&BearerAuth, &FlatObjects, &PathPatterns),
    tags(
        (name = "jobs", description = "RunPod v2 job API"),
        (name = "batches", description = "RunPod's batch jobs: sets of requests run behind real-time jobs"),
        (name = "openai", description = "OpenAI-compatible routes of an endpoint running an LLM handler (examples/llm)"),
        (name = "handlers", description = "Handler versions (.wasm components)"),
        (name = "endpoints", description = "Endpoints and their settings"),
        (name = "models", description = "The content-addressed model store"),
        (name = "keys", description = "API keys"),
        (name = "fleet", description = "Devices, slices, executors, metering and metrics"),
        (name = "load-balancing", description = "HTTP requests to load-balancing endpoints' handlers"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Merges each `allOf` of objects (what utoipa makes of `#[serde(flatten)]`)
/// into one object with every property: what serde reads and writes.
struct FlatObjects;

impl utoipa::Modify for FlatObjects {
    fn modify(&self, openapi: &mut Document) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let schemas = components.schemas.clone();
        let resolve = |item: &RefOr<Schema>| -> Option<Object> {
            match item {
                RefOr::T(Schema::Object(o)) => Some(o.clone()),
                RefOr::Ref(r) => {
                    let name = r.ref_location.strip_prefix("#/components/schemas/")?;
                    match schemas.get(name)? {
                        RefOr::T(Schema::Object(o)) => Some(o.clone()),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        for schema in components.schemas.values_mut() {
            let RefOr::T(Schema::AllOf(all)) = schema else {
                continue;
            };
            let Some(parts) = all.items.iter().map(resolve).collect::<Option<Vec<_>>>() else {
                continue;
            };
            let mut flat = Object::new();
            flat.description = all.description.clone();
            let mut strict = false;
            for part in parts {
                strict |= matches!(
                    part.additional_properties.as_deref(),
                    Some(AdditionalProperties::FreeForm(false))
                );
                for (name, prop) in part.properties {
                    flat.properties.insert(name, prop);
                }
                for r in part.required {
                    if !flat.required.contains(&r) {
                        flat.required.push(r);
                    }
                }
            }
            if strict {
                flat.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            *schema = RefOr::T(Schema::Object(flat));
        }
    }
}

/// The format of every path parameter, by name ([`validate`]'s patterns).
struct PathPatterns;

fn pattern_of(name: &str) -> Option<(&'static str, usize)> {
    Some(match name {
        "endpoint_id" => (validate::ENDPOINT_ID_PATTERN, 64),
        "job_id" => (validate::JOB_ID_PATTERN, 41),
        "digest" => (validate::DIGEST_PATTERN, 71),
        "key_id" => (validate::KEY_ID_PATTERN, 12),
        "batch_id" => (validate::BATCH_ID_PATTERN, 42),
        "request_id" => (validate::REQUEST_ID_PATTERN, 36),
        "model" => (validate::MODEL_PATTERN, 128),
        _ => return None,
    })
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl utoipa::Modify for PathPatterns {
    fn modify(&self, openapi: &mut Document) {
        for item in openapi.paths.paths.values_mut() {
            for op in operations(item) {
                for param in op.parameters.iter_mut().flatten() {
                    if param.parameter_in != ParameterIn::Path {
                        continue;
                    }
                    let Some((pattern, max)) = pattern_of(&param.name) else {
                        continue;
                    };
                    if let Some(RefOr::T(Schema::Object(o))) = param.schema.as_mut() {
                        o.pattern = Some(pattern.to_string());
                        o.max_length = Some(max);
                        o.min_length = Some(1);
                    }
                }
            }
        }
    }
}
