//! The HTTP API (axum). Key lookups and scans are served from redb read
//! transactions without calling Wasm; custom queries run on pooled read-only
//! instances. Every answer with state says the offsets it reflects.
//!
//! Hostile clients: [`serve`] bounds connections and times out slow request
//! heads and stalled writes; [`guard`] bounds requests in flight, times out
//! slow bodies and makes every error JSON; bodies are capped at
//! `max_request_bytes` (413, with or without a `Content-Length`); JSON is
//! parsed with serde_json's nesting limit (128), so deep documents are a 400,
//! not a stack overflow; mutating routes live on the admin router, behind
//! [`auth`]'s bearer token when one is configured.

pub mod auth;
mod cluster;
mod dashboard;
mod error;
mod failures;
mod guard;
pub mod ingest;
pub mod openapi;
mod reads;
pub mod serve;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub use error::ApiError;

use crate::config::HttpConfig;
use crate::event::Offsets;
use crate::projection::SharedProjection;
use crate::registry::Registry;
use crate::source::{EmbeddedLog, LogError, Source};

/// Response header carrying the offsets a key lookup reflects, as JSON.
pub const OFFSETS_HEADER: &str = "projector-offsets";
pub(crate) const DEFAULT_SCAN_LIMIT: usize = 100;
const MAX_SCAN_LIMIT: usize = 10_000;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub log: EmbeddedLog,
    /// This instance's group, when it is in one: reads of what other
    /// instances hold are answered through them.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Every route. Two routers, merged:
///
/// - `public`: reads, open to every client that can reach the address
///   (custom queries are reads even though they are POSTs);
/// - `admin`: everything that changes state. Its `route_layer` checks the
///   bearer token (when one is configured) on every route it holds, so a
///   route added there is protected without further code.
pub fn router(state: AppState, max_request_bytes: usize, http: &HttpConfig) -> Router {
    let metrics = Arc::new(crate::metrics::Metrics::new(
        state.registry.clone(),
        state.cluster.as_ref().map(|c| c.ownership.clone()),
    ));
    let http_metrics = metrics.http();
    let public = Router::new()
        .route(
            "/metrics",
            get(move || crate::metrics::serve(metrics.clone())),
        )
        .route("/", get(dashboard::index))
        .route("/ui/app.js", get(dashboard::app_js))
        .route("/ui/style.css", get(dashboard::style_css))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/health", get(health))
        .route("/v1/projections", get(list_projections))
        .route("/v1/projections/{name}", get(get_projection))
        .route("/v1/cluster", get(cluster::cluster_view))
        .route("/v1/projections/{name}/snapshots", get(list_snapshots))
        .route(
            "/v1/projections/{name}/snapshots/{file}",
            get(export_snapshot),
        )
        .route("/v1/projections/{name}/dead-letters", get(failures::list))
        .route("/v1/topics", get(list_topics))
        .route("/v1/read", post(reads::consistent_read));
    // In a group, reads of state other instances hold go through them.
    let state_reads = Router::new()
        .route("/v1/projections/{name}/state", get(scan_state))
        .route("/v1/projections/{name}/state/{*key}", get(get_key))
        .route("/v1/projections/{name}/query/{query}", post(run_query))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            cluster::route_reads,
        ));
    let public = public.merge(state_reads);
    let admin = Router::new()
        .route("/v1/projections/{name}/replay", post(replay))
        .route(
            "/v1/projections/{name}/dead-letters/retry",
            post(failures::retry),
        )
        .route("/v1/projections/{name}/resume", post(failures::resume))
        .route(
            "/v1/projections/{name}/dead-letters/purge",
            post(failures::purge),
        )
        .route("/v1/projections/{name}/snapshots", post(create_snapshot))
        .route(
            "/v1/projections/{name}/snapshots/{file}/restore",
            post(restore_snapshot),
        )
        .route("/v1/topics/{topic}", post(create_topic))
        .route("/v1/topics/{topic}/events", post(append_events))
        .route_layer(middleware::from_fn_with_state(
            http.api_token.clone().map(Arc::new),
            auth::require_token,
        ));
    public
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(middleware::from_fn_with_state(
            guard::RequestLimits::new(http.max_in_flight_requests, http.request_timeout),
            guard::limit_requests,
        ))
        .layer(middleware::from_fn(guard::json_errors))
        // Outermost, so it sees every answer's final status.
        .layer(middleware::from_fn_with_state(
            http_metrics,
            crate::metrics::track_http,
        ))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found("unknown_route", format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept this method", uri.path()),
    )
}

/// Liveness: the server answers.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "projections",
    responses((status = 200, description = "The server is up", body = openapi::Health)),
)]
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn projection(state: &AppState, name: &str) -> Result<SharedProjection, ApiError> {
    state
        .registry
        .get(name)
        .ok_or_else(|| ApiError::unknown_projection(name))
}

fn projection_version(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<SharedProjection, ApiError> {
    let serving = projection(state, name)?;
    let building = state.registry.get_building(name);
    match version {
        None | Some("serving") => Ok(serving),
        Some("building") => building.ok_or_else(|| {
            ApiError::not_found(
                "no_building_version",
                format!("projection {name:?} has no version building in the shadow"),
            )
        }),
        Some(prefix) => [Some(serving), building]
            .into_iter()
            .flatten()
            .find(|p| !prefix.is_empty() && p.module.hash.starts_with(prefix))
            .ok_or_else(|| {
                ApiError::not_found(
                    "unknown_version",
                    format!(
                        "projection {name:?} has no version {prefix:?}; use serving, building or a hash prefix"
                    ),
                )
            }),
    }
}

fn listing(
    projection: &SharedProjection,
    building: Option<&SharedProjection>,
) -> Result<Value, ApiError> {
    let mut info = json!(
        projection
            .info()
            .map_err(|e| ApiError::internal(e.to_string()))?
    );
    if let Some(building) = building {
        info["building"] = json!(
            building
                .info()
                .map_err(|e| ApiError::internal(e.to_string()))?
        );
    }
    Ok(info)
}

/// Runs blocking storage or Wasm work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}

/// Every projection with its status, and the rejected module files.
#[utoipa::path(
    get,
    path = "/v1/projections",
    tag = "projections",
    responses(
        (status = 200, description = "Every projection", body = openapi::ProjectionList),
        (status = 503, description = "state_unavailable", body = openapi::ErrorBody),
    ),
)]
async fn list_projections(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let mut projections = Vec::new();
        for (serving, building) in state.registry.versions() {
            projections.push(listing(&serving, building.as_ref())?);
        }
        Ok(Json(json!({
            "projections": projections,
            "rejected": state.registry.rejected(),
            // The group this instance is in (`GET /v1/cluster`), if any.
            "group": state.cluster.as_ref().map(|c| c.config.group.clone()),
        })))
    })
    .await
}

/// One projection, with the version building in the shadow if any.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}",
    tag = "projections",
    params(("name" = String, Path, description = "Projection name")),
    responses(
        (status = 200, description = "The projection", body = openapi::ProjectionListing),
        (status = 400, description = "bad path", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = openapi::ErrorBody),
        (status = 503, description = "state_unavailable", body = openapi::ErrorBody),
    ),
)]
async fn get_projection(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let projection = projection(&state, &name)?;
    let building = state.registry.get_building(&name);
    blocking(move || Ok(Json(listing(&projection, building.as_ref())?))).await
}

fn snapshot_json(listed: &crate::snapshot::Listed) -> Value {
    use crate::snapshot::Listed;
    let file = listed
        .path()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match listed {
        Listed::Valid(info) => json!({
            "file": file,
            "valid": true,
            "hash": info.meta.hash,
            "unit": info.meta.hash.split_once(".unit-").and_then(|(_, unit)| unit.parse::<u32>().ok()),
            "state_version": info.meta.state_version,
            "created_unix_ms": info.meta.created_unix_ms,
            "events_applied": info.meta.events_applied,
            "keys": info.meta.key_count,
            "offsets": info.meta.offsets,
            "size_bytes": info.size_bytes,
        }),
        Listed::Invalid { reason, .. } => json!({
            "file": file,
            "valid": false,
            "reason": reason.to_string(),
        }),
    }
}

/// The snapshot file `file` of projection `name`, by file name.
fn find_snapshot(state: &AppState, name: &str, file: &str) -> Result<std::path::PathBuf, ApiError> {
    let listed = crate::snapshot::list(state.registry.snapshots_dir(), name)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    listed
        .iter()
        .map(|l| l.path().to_owned())
        .find(|p| p.file_name().is_some_and(|f| f == file))
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_snapshot",
                format!("projection {name:?} has no snapshot {file:?}; GET /v1/projections/{name}/snapshots lists them"),
            )
        })
}

/// The projection's snapshot files, newest first.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/snapshots",
    tag = "snapshots",
    params(("name" = String, Path, description = "Projection name")),
    responses(
        (status = 200, description = "Snapshot files", body = openapi::SnapshotList),
        (status = 400, description = "bad path", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = openapi::ErrorBody),
    ),
)]
async fn list_snapshots(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    projection(&state, &name)?;
    blocking(move || {
        let listed = crate::snapshot::list(state.registry.snapshots_dir(), &name)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(Json(
            json!({ "snapshots": listed.iter().map(snapshot_json).collect::<Vec<_>>() }),
        ))
    })
    .await
}

/// Takes a snapshot of the serving version now.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/snapshots",
    tag = "snapshots",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Projection name")),
    responses(
        (status = 200, description = "The snapshot written", body = openapi::SnapshotEntry),
        (status = 400, description = "bad path", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = openapi::ErrorBody),
        (status = 503, description = "state_unavailable", body = openapi::ErrorBody),
    ),
)]
async fn create_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let projection = projection(&state, &name)?;
    blocking(move || {
        // A partitioned projection: one snapshot per unit, each of its own
        // state file.
        let parts: Vec<_> = if projection.is_partitioned() {
            projection.units().to_vec()
        } else {
            vec![projection.clone()]
        };
        let mut written = Vec::new();
        for part in parts {
            let reader = part
                .reader()
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let module = &part.module;
            let key = part.file_key();
            let version = crate::snapshot::ProjectionVersion {
                name: &module.descriptor.name,
                hash: &key,
                state_version: module.descriptor.state_version,
            };
            let info = crate::snapshot::write(
                state.registry.snapshots_dir(),
                version,
                &reader,
                state.registry.snapshots_keep(),
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
            if let Some(store) = state.registry.snapshot_store() {
                store.publish(&info, state.registry.snapshots_keep());
            }
            written.push(snapshot_json(&crate::snapshot::Listed::Valid(info)));
        }
        if !projection.is_partitioned() {
            return Ok(Json(written.pop().unwrap_or_default()));
        }
        let total = |field: &str| -> u64 { written.iter().filter_map(|w| w[field].as_u64()).sum() };
        Ok(Json(json!({
            "events_applied": total("events_applied"),
            "keys": total("keys"),
            "size_bytes": total("size_bytes"),
            "units": written,
        })))
    })
    .await
}

/// A snapshot file's bytes.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/snapshots/{file}",
    tag = "snapshots",
    params(("name" = String, Path, description = "Projection name"), ("file" = String, Path, description = "Snapshot file name, as listed")),
    responses(
        (status = 200, description = "The snapshot file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "bad path", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection or unknown_snapshot", body = openapi::ErrorBody),
    ),
)]
async fn export_snapshot(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    projection(&state, &name)?;
    blocking(move || {
        let path = find_snapshot(&state, &name, &file)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
    })
    .await
}

/// Rebuilds in the shadow from the snapshot plus the tail, then swaps.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/snapshots/{file}/restore",
    tag = "snapshots",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Projection name"), ("file" = String, Path, description = "Snapshot file name, as listed")),
    responses(
        (status = 200, description = "The rebuild started", body = openapi::RebuildStarted),
        (status = 400, description = "bad path", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection or unknown_snapshot", body = openapi::ErrorBody),
        (status = 409, description = "restore_refused", body = openapi::ErrorBody),
    ),
)]
async fn restore_snapshot(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    projection(&state, &name)?;
    let registry = state.registry.clone();
    blocking(move || {
        let path = find_snapshot(&state, &name, &file)?;
        registry
            .restore(&name, &path)
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, "restore_refused", e.to_string()))?;
        let building = registry.get_building(&name).map(|b| b.module.hash.clone());
        Ok(Json(
            json!({ "projection": name, "snapshot": file, "building": building }),
        ))
    })
    .await
}

/// Starts a rebuild from the beginning in the shadow.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/replay",
    tag = "projections",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Projection name")),
    responses(
        (status = 200, description = "The rebuild started", body = openapi::RebuildStarted),
        (status = 400, description = "bad path", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = openapi::ErrorBody),
        (status = 409, description = "replay_refused", body = openapi::ErrorBody),
    ),
)]
async fn replay(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    projection(&state, &name)?;
    let registry = state.registry.clone();
    blocking(move || {
        registry
            .replay(&name)
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, "replay_refused", e.to_string()))?;
        let building = registry.get_building(&name).map(|b| b.module.hash.clone());
        Ok(Json(json!({ "projection": name, "building": building })))
    })
    .await
}

fn offsets_header(offsets: &Offsets) -> HeaderValue {
    let text = serde_json::to_string(offsets).expect("offsets serialize");
    HeaderValue::from_str(&text).expect("JSON of topic names is a valid header")
}

/// Decodes a percent-encoded key strictly (`projector_formats::query`,
/// where the fuzz targets drive it): `%` must be followed by two hex
/// digits. Keys are bytes, so `%FF` is allowed.
fn decode_key(raw: &str) -> Result<Vec<u8>, ApiError> {
    projector_formats::query::decode_key(raw)
        .map_err(|e| ApiError::bad_request("bad_key_encoding", e.to_string()))
}

/// The projection name and key of `/v1/projections/{name}/state/{*key}`,
/// from the raw path: keys are bytes, so `%FF` or `%2F` are looked up as
/// those bytes rather than refused as invalid UTF-8 or split as `/`. Names
/// are text: one that is not UTF-8 is a 400.
pub(crate) fn name_and_key(path: &str) -> Result<(String, Vec<u8>), ApiError> {
    let rest = path.strip_prefix("/v1/projections/").unwrap_or_default();
    let (raw_name, raw_key) = rest
        .split_once("/state/")
        .ok_or_else(|| ApiError::bad_request("bad_path", format!("{path} names no key")))?;
    let name = percent_encoding::percent_decode_str(raw_name)
        .decode_utf8()
        .map_err(|_| {
            ApiError::bad_request(
                "bad_projection_name",
                format!("projection name {raw_name:?} is not UTF-8 once percent-decoded"),
            )
        })?
        .into_owned();
    Ok((name, decode_key(raw_key)?))
}

/// One key's stored value, itself (JSON, or bytes).
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/state/{key}",
    tag = "state",
    params(
        ("name" = String, Path, description = "Projection name"),
        ("key" = String, Path, description = "The key, percent-encoded (`customer%2Falice`; a literal `/` works too); bytes, so `%FF` is the byte 0xFF"),
        reads::ReadParams,
    ),
    responses(
        (status = 200, description = "The stored value", headers(("projector-offsets" = String, description = "The offsets the value reflects, as JSON")),
            content((Value = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = 400, description = "bad_query_string, bad_offsets, bad_wait or bad_key_encoding", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection, key_not_found (with `offsets`), unknown_version or no_building_version", body = openapi::ErrorBody),
        (status = 409, description = "as_of_ahead or as_of_past_halt: as_of cannot be answered", body = openapi::ErrorBody),
        (status = 410, description = "history_gone: no snapshot or log history reaches back to as_of", body = openapi::ErrorBody),
        (status = 503, description = "state_unavailable or replay_stuck", body = openapi::ErrorBody),
        (status = 504, description = "offsets_not_reached within wait_ms (with `wanted`, `reached`)", body = openapi::ErrorBody),
    ),
)]
async fn get_key(
    State(state): State<AppState>,
    standbys: Option<axum::Extension<cluster::StandbyUnits>>,
    params: Result<Query<reads::ReadParams>, axum::extract::rejection::QueryRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_query_string", e.body_text()))?;
    let (name, key) = name_and_key(uri.path())?;
    let projection = projection_version(&state, &name, params.version.as_deref())?;
    let (projection, at) = reads::position(
        &state,
        projection,
        reads::follows_serving(params.version.as_deref()),
        params.min_offsets.as_deref(),
        params.wait_ms,
        params.as_of.as_deref(),
    )
    .await?;
    blocking(move || {
        let view = reads::view(&state, &projection, at, &standby_units(standbys))?;
        let (reader, offsets) = (&view.reader, &view.offsets);
        let value = reader
            .get(&key)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let Some(value) = value else {
            return Err(ApiError::not_found(
                "key_not_found",
                format!(
                    "projection {:?} has no key {:?}",
                    projection.name(),
                    String::from_utf8_lossy(&key)
                ),
            )
            .with("offsets", json!(offsets)));
        };
        let content_type = if serde_json::from_slice::<serde::de::IgnoredAny>(&value).is_ok() {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(OFFSETS_HEADER, offsets_header(offsets));
        Ok((headers, value).into_response())
    })
    .await
}

use projector_formats::query::ScanParams;

/// A stored value as JSON: the value itself if it is JSON, else its text.
fn value_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn key_json(key: &[u8]) -> Value {
    match std::str::from_utf8(key) {
        Ok(text) => json!({ "key": text }),
        Err(_) => json!({
            "key": String::from_utf8_lossy(key),
            "key_hex": key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        }),
    }
}

/// A page of keys and values in key order, from a prefix.
#[utoipa::path(
    get,
    path = "/v1/projections/{name}/state",
    tag = "state",
    params(("name" = String, Path, description = "Projection name"), ScanParams),
    responses(
        (status = 200, description = "A page of entries", body = openapi::ScanReply),
        (status = 400, description = "bad_query_string, bad_offsets, bad_wait or bad_limit", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection, unknown_version or no_building_version", body = openapi::ErrorBody),
        (status = 409, description = "as_of_ahead or as_of_past_halt: as_of cannot be answered", body = openapi::ErrorBody),
        (status = 410, description = "history_gone: no snapshot or log history reaches back to as_of", body = openapi::ErrorBody),
        (status = 503, description = "state_unavailable or replay_stuck", body = openapi::ErrorBody),
        (status = 504, description = "offsets_not_reached within wait_ms (with `wanted`, `reached`)", body = openapi::ErrorBody),
    ),
)]
async fn scan_state(
    State(state): State<AppState>,
    standbys: Option<axum::Extension<cluster::StandbyUnits>>,
    Path(name): Path<String>,
    params: Result<Query<ScanParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_query_string", e.body_text()))?;
    let projection = projection_version(&state, &name, params.version.as_deref())?;
    let limit = params.limit.unwrap_or(DEFAULT_SCAN_LIMIT);
    if limit == 0 || limit > MAX_SCAN_LIMIT {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be 1 to {MAX_SCAN_LIMIT}, not {limit}"),
        ));
    }
    let (projection, at) = reads::position(
        &state,
        projection,
        reads::follows_serving(params.version.as_deref()),
        params.min_offsets.as_deref(),
        params.wait_ms,
        params.as_of.as_deref(),
    )
    .await?;
    blocking(move || {
        let view = reads::view(&state, &projection, at, &standby_units(standbys))?;
        let (reader, offsets) = (&view.reader, &view.offsets);
        // One extra entry tells whether another page exists.
        let mut entries = reader
            .scan(
                params.prefix.as_bytes(),
                params.start_after.as_deref().map(str::as_bytes),
                limit + 1,
            )
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next = more.then(|| {
            entries
                .last()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        });
        let items: Vec<Value> = entries
            .iter()
            .map(|(k, v)| {
                let mut item = key_json(k);
                item["value"] = value_json(v);
                item
            })
            .collect();
        let mut answer = json!({
            "items": items,
            "next_start_after": next.flatten(),
            "offsets": offsets,
        });
        if let Some(as_of) = reads::as_of_json(&view) {
            answer["as_of"] = as_of;
        }
        Ok(Json(answer))
    })
    .await
}

/// A request body that must be the JSON `expected` describes.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    let body = body_or_error(body)?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("expected {expected}: {e}")))
}

/// Like [`json_body`], where every field is optional: an empty body means
/// all defaults, so `curl -X POST` with no body works.
fn optional_json_body<T: serde::de::DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    let bytes = body_or_error(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(Ok(bytes), expected)
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body exceeds max_request_bytes; split the request or raise the limit",
            )
        } else {
            ApiError::bad_request("bad_body", rejection.body_text())
        }
    })
}

/// Runs one of the module's custom queries (read-only).
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/query/{query}",
    tag = "state",
    params(("name" = String, Path, description = "Projection name"), ("query" = String, Path, description = "A query the module lists in `queries`"), reads::ReadParams),
    request_body(content = Value, content_type = "application/json", description = "The query's arguments as JSON; empty means `{}`"),
    responses(
        (status = 200, description = "The module's answer", body = openapi::QueryReply),
        (status = 400, description = "bad_query_string, bad_offsets, bad_wait or bad_query_args", body = openapi::ErrorBody),
        (status = 404, description = "unknown_projection, unknown_version or no_building_version or unknown_query", body = openapi::ErrorBody),
        (status = 409, description = "as_of_ahead or as_of_past_halt: as_of cannot be answered", body = openapi::ErrorBody),
        (status = 410, description = "history_gone: no snapshot or log history reaches back to as_of", body = openapi::ErrorBody),
        (status = 503, description = "state_unavailable or replay_stuck", body = openapi::ErrorBody),
        (status = 504, description = "offsets_not_reached within wait_ms (with `wanted`, `reached`)", body = openapi::ErrorBody),
        (status = 422, description = "query_failed: the module failed, trapped or ran out of time", body = openapi::ErrorBody),
    ),
)]
async fn run_query(
    State(state): State<AppState>,
    standbys: Option<axum::Extension<cluster::StandbyUnits>>,
    headers: HeaderMap,
    Path((name, query)): Path<(String, String)>,
    params: Result<Query<reads::ReadParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_query_string", e.body_text()))?;
    let projection = projection_version(&state, &name, params.version.as_deref())?;
    let body = body_or_error(body)?;
    let (projection, at) = reads::position(
        &state,
        projection,
        reads::follows_serving(params.version.as_deref()),
        params.min_offsets.as_deref(),
        params.wait_ms,
        params.as_of.as_deref(),
    )
    .await?;
    let args = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    if headers
        .get(cluster::FORWARDED)
        .is_some_and(|mark| mark == "per-unit")
    {
        return blocking(move || {
            per_unit_query(&projection, &query, &args, &standby_units(standbys))
        })
        .await;
    }
    blocking(move || {
        let view = reads::view(&state, &projection, at, &standby_units(standbys))?;
        match projection.query_reader(view.reader.fork()?, &query, &args) {
            Ok((answer, offsets)) => {
                let mut answer = json!({
                    "result": value_json(&answer),
                    "offsets": offsets,
                });
                if let Some(as_of) = reads::as_of_json(&view) {
                    answer["as_of"] = as_of;
                }
                Ok(Json(answer))
            }
            Err(failure) => Err(reads::query_error(&projection, &query, failure)),
        }
    })
    .await
}

/// A custom query run over each unit this instance holds on its own (in a
/// group, where the units of a partitioned projection are spread): the
/// instance asking merges the units' answers of every owner.
/// The units a read answers from standby copies here (none unless the
/// group router allowed a stale read).
fn standby_units(extension: Option<axum::Extension<cluster::StandbyUnits>>) -> Vec<u32> {
    extension.map(|e| e.0.0).unwrap_or_default()
}

fn per_unit_query(
    projection: &SharedProjection,
    query: &str,
    args: &[u8],
    standbys: &[u32],
) -> Result<Json<Value>, ApiError> {
    let mut units = Vec::new();
    let mut all = Offsets::default();
    let read = projection
        .units()
        .iter()
        .enumerate()
        .filter(|(i, unit)| unit.is_here() || standbys.contains(&(*i as u32)));
    for (_, unit) in read {
        let reader = unit.reader()?;
        match projection.query_reader(reader, query, args) {
            Ok((answer, offsets)) => {
                for (topic, partition, next) in offsets.iter() {
                    all.set(topic, partition, next);
                }
                units.push(json!({
                    "unit": unit.partitions.only(),
                    "result": value_json(&answer),
                    "offsets": offsets,
                }));
            }
            Err(failure) => return Err(reads::query_error(projection, query, failure)),
        }
    }
    Ok(Json(json!({ "units": units, "offsets": all })))
}

/// The embedded log's topics and their heads.
#[utoipa::path(
    get,
    path = "/v1/topics",
    tag = "topics",
    responses(
        (status = 200, description = "Every topic", body = openapi::TopicList),
        (status = 503, description = "log_unavailable", body = openapi::ErrorBody),
    ),
)]
async fn list_topics(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let topics = state.log.topics().map_err(log_error)?;
        let mut out = Vec::new();
        for (name, partitions) in topics {
            let heads = state.log.heads(&name);
            out.push(json!({ "name": name, "partitions": partitions, "heads": heads }));
        }
        Ok(Json(json!({ "topics": out })))
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTopic {
    #[schema(minimum = 1)]
    partitions: u32,
}

/// Creates a topic (idempotent with the same partition count).
#[utoipa::path(
    post,
    path = "/v1/topics/{topic}",
    tag = "topics",
    security(("bearer" = [])),
    params(("topic" = String, Path, description = "Topic name")),
    request_body(content = CreateTopic, description = "The partition count"),
    responses(
        (status = 200, description = "The topic exists with this count", body = openapi::TopicPartitions),
        (status = 400, description = "bad_body, bad_topic or bad_partitions", body = openapi::ErrorBody),
        (status = 409, description = "topic_exists with another partition count", body = openapi::ErrorBody),
        (status = 503, description = "log_unavailable", body = openapi::ErrorBody),
    ),
)]
async fn create_topic(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: CreateTopic = json_body(body, "{\"partitions\": N}")?;
    blocking(move || {
        state
            .log
            .create_topic(&topic, request.partitions)
            .map_err(log_error)?;
        Ok(Json(
            json!({ "name": topic, "partitions": request.partitions }),
        ))
    })
    .await
}

fn log_error(err: LogError) -> ApiError {
    match err {
        LogError::InvalidTopic(_) => ApiError::bad_request("bad_topic", err.to_string()),
        LogError::InvalidPartitions(..) => ApiError::bad_request("bad_partitions", err.to_string()),
        LogError::PartitionMismatch { .. } => {
            ApiError::new(StatusCode::CONFLICT, "topic_exists", err.to_string())
        }
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_unavailable",
            other.to_string(),
        ),
    }
}

/// Appends events, atomically and durably once answered.
#[utoipa::path(
    post,
    path = "/v1/topics/{topic}/events",
    tag = "topics",
    security(("bearer" = [])),
    params(("topic" = String, Path, description = "Topic name (created with one partition if new)"), ingest::AppendParams),
    request_body(
        description = "NDJSON, one event per line (`?format=envelope`: `{\"key\", \"payload\", \"headers\"}` per line); with `content-type: application/json`, one event or an array",
        content(
            (String = "application/x-ndjson"),
            (Value = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "The offsets the events were given", body = crate::source::AppendReceipt),
        (status = 400, description = "malformed_event (with `line`), bad_body, bad_topic or bad_query_string", body = openapi::ErrorBody),
        (status = 409, description = "topic_exists: partition mismatch", body = openapi::ErrorBody),
        (status = 503, description = "log_unavailable", body = openapi::ErrorBody),
    ),
)]
async fn append_events(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    params: Result<Query<ingest::AppendParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_query_string", e.body_text()))?;
    let body = body_or_error(body)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    blocking(move || {
        let records = ingest::parse(&body, content_type.as_deref(), &params).map_err(|e| {
            let err = ApiError::bad_request("malformed_event", e.message);
            match e.line {
                Some(line) => err.with("line", line),
                None => err,
            }
        })?;
        let receipt = state.log.append(&topic, records).map_err(log_error)?;
        Ok(Json(json!(receipt)))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_strictly_and_allow_any_byte() {
        assert_eq!(decode_key("customer%2Falice").unwrap(), b"customer/alice");
        assert_eq!(decode_key("customer/alice").unwrap(), b"customer/alice");
        assert_eq!(decode_key("%ff%00").unwrap(), vec![0xff, 0x00]);
        assert_eq!(decode_key("a%zz").unwrap_err().code, "bad_key_encoding");
        assert_eq!(decode_key("a%4").unwrap_err().code, "bad_key_encoding");
        // Found by the query_params fuzz target: a sign is not a hex digit.
        assert_eq!(decode_key("a%+f").unwrap_err().code, "bad_key_encoding");
        assert_eq!(decode_key("%-1").unwrap_err().code, "bad_key_encoding");
        assert!(decode_key("").is_err());
    }

    #[test]
    fn key_paths_keep_raw_bytes_and_need_a_utf8_name() {
        let (name, key) = name_and_key("/v1/projections/a%20b/state/x/%FF%FE").unwrap();
        assert_eq!(name, "a b");
        assert_eq!(key, b"x/\xff\xfe");
        assert_eq!(
            name_and_key("/v1/projections/%FF/state/k")
                .unwrap_err()
                .code,
            "bad_projection_name"
        );
    }
}
