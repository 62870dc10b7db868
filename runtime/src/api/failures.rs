//! `/v1/projections/{name}/dead-letters`: the events a projection's error
//! policy kept instead of halting (dead-lettered, parked, skipped), and the
//! retry that re-drives them through the serving version.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;

use super::{ApiError, AppState, blocking, key_json, optional_json_body, projection, value_json};
use crate::projection::{SharedProjection, Status};
use crate::registry::{ResumeError, ResumeRequest};
use crate::store::{FailedEvent, FailureKind};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// How long a retry request waits for the worker to report.
const RETRY_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// `dead_letter`, `parked`, `skipped`, or `all` (default).
    kind: Option<String>,
    /// Only records with a larger id (paging).
    after: Option<u64>,
    /// 1 to 1000, default 100.
    limit: Option<usize>,
}

/// One record as JSON: the event (payload as JSON when it is JSON), the
/// error, and the module version that failed on it.
fn record_json(record: &FailedEvent) -> Value {
    let key = record.key.as_deref().map(key_json);
    json!({
        "id": record.id,
        "kind": record.kind,
        "source": record.source,
        "partition": record.partition,
        "offset": record.offset,
        "key": key.as_ref().map(|k| k["key"].clone()),
        "key_hex": key.as_ref().and_then(|k| k.get("key_hex").cloned()),
        "payload": record.payload.as_deref().map(value_json),
        "timestamp_ms": record.timestamp_ms,
        "headers": record.headers.iter().map(|(k, v)| json!([k, String::from_utf8_lossy(v)])).collect::<Vec<_>>(),
        "error": record.error,
        "module_hash": record.module_hash,
        "module_version": record.module_version,
        "failed_at": record.failed_at,
        "attempts": record.attempts,
        "reason": record.reason,
    })
}

#[utoipa::path(
    get,
    path = "/v1/projections/{name}/dead-letters",
    tag = "failures",
    params(("name" = String, Path, description = "Projection name"), ListParams),
    responses(
        (status = 200, description = "Failed events kept, oldest first", body = super::openapi::FailureList),
        (status = 400, description = "bad_query_string, bad_kind or bad_limit", body = super::openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = super::openapi::ErrorBody),
        (status = 503, description = "state_unavailable: the state file cannot be read now", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_query_string", e.body_text()))?;
    let kind = match params.kind.as_deref() {
        None | Some("all") => None,
        Some(kind) => Some(
            kind.parse::<FailureKind>()
                .map_err(|e| ApiError::bad_request("bad_kind", e))?,
        ),
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be 1 to {MAX_LIMIT}, not {limit}"),
        ));
    }
    let projection = projection(&state, &name)?;
    blocking(move || {
        let reader = projection.reader()?;
        let mut records = reader.failures(kind, params.after, limit + 1)?;
        let more = records.len() > limit;
        records.truncate(limit);
        Ok(Json(json!({
            "projection": projection.name(),
            "error_policy": projection.config.error_policy,
            "counts": reader.failure_counts()?,
            "records": records.iter().map(record_json).collect::<Vec<_>>(),
            "next_after": if more { records.last().map(|r| r.id) } else { None },
        })))
    })
    .await
}

/// Runs the dead-lettered and parked events again on the serving version
/// and answers with what happened.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/dead-letters/retry",
    tag = "failures",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Projection name")),
    responses(
        (status = 200, description = "What the retry did", body = super::openapi::RetryReply),
        (status = 400, description = "bad path", body = super::openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = super::openapi::ErrorBody),
        (status = 409, description = "not_running or retry_failed", body = super::openapi::ErrorBody),
        (status = 503, description = "state_unavailable", body = super::openapi::ErrorBody),
        (status = 504, description = "retry_pending: it goes on", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let projection = projection(&state, &name)?;
    require_worker(
        &projection,
        "nothing can run its failed events; deploy a module that loads (or restart it) and retry",
    )?;
    let report = projection.request_retry();
    blocking(move || {
        let report = worker_reply(report, &projection, WorkerRequest::Retry)?;
        let counts = projection.reader()?.failure_counts()?;
        Ok(Json(json!({
            "projection": projection.name(),
            "hash": projection.module.hash,
            "report": report,
            "remaining": counts,
        })))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    #[serde(default)]
    skip: bool,
    reason: Option<String>,
}

/// Longest operator reason kept with a skipped event.
const MAX_REASON_BYTES: usize = 4096;

/// Starts a failed projection again: runs the event it failed on again
/// (after a transient cause is gone), or with `skip` records that event as
/// skipped with the operator's reason and goes on after it.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/resume",
    tag = "failures",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Projection name")),
    request_body(content = super::openapi::ResumeBody, description = "`{\"skip\": bool, \"reason\": str}`; an empty body runs the event again", content_type = "application/json"),
    responses(
        (status = 200, description = "The projection runs again", body = super::openapi::ResumeReply),
        (status = 400, description = "bad_body", body = super::openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = super::openapi::ErrorBody),
        (status = 409, description = "not_failed (the message names the status), nothing_to_skip or resume_failed", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: ResumeBody =
        optional_json_body(body, r#"{"skip": bool, "reason": str} (both optional)"#)?;
    if request
        .reason
        .as_ref()
        .is_some_and(|r| r.len() > MAX_REASON_BYTES)
    {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("reason is longer than {MAX_REASON_BYTES} bytes; shorten it"),
        ));
    }
    projection(&state, &name)?;
    let registry = state.registry.clone();
    blocking(move || {
        let resumed = registry
            .resume(
                &name,
                ResumeRequest {
                    skip: request.skip,
                    reason: request.reason,
                },
            )
            .map_err(|e| {
                let code = match &e {
                    ResumeError::Unknown(name) => return ApiError::unknown_projection(name),
                    ResumeError::NotFailed { .. } => "not_failed",
                    ResumeError::NothingToSkip { .. } => "nothing_to_skip",
                    _ => "resume_failed",
                };
                ApiError::new(StatusCode::CONFLICT, code, e.to_string())
            })?;
        Ok(Json(json!({
            "projection": name,
            "hash": resumed.hash,
            "skipped": resumed.skipped,
        })))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    #[serde(default)]
    keep: usize,
}

/// Removes skipped-event records, oldest first, keeping the `keep` newest
/// (default 0). Dead letters and parked events are never purged: they are
/// still to be applied.
#[utoipa::path(
    post,
    path = "/v1/projections/{name}/dead-letters/purge",
    tag = "failures",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Projection name")),
    request_body(content = super::openapi::PurgeBody, description = "`{\"keep\": N}`; an empty body removes every skipped record", content_type = "application/json"),
    responses(
        (status = 200, description = "How many records were removed", body = super::openapi::PurgeReply),
        (status = 400, description = "bad_body", body = super::openapi::ErrorBody),
        (status = 404, description = "unknown_projection", body = super::openapi::ErrorBody),
        (status = 409, description = "not_running or purge_failed", body = super::openapi::ErrorBody),
        (status = 503, description = "state_unavailable", body = super::openapi::ErrorBody),
        (status = 504, description = "purge_pending: it goes on", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn purge(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: PurgeBody = optional_json_body(body, r#"{"keep": N} (optional, default 0)"#)?;
    let projection = projection(&state, &name)?;
    require_worker(
        &projection,
        "its records cannot be purged now (the worker writes them); resume it first (`projector resume`)",
    )?;
    let removed = projection.request_purge(request.keep);
    blocking(move || {
        let removed = worker_reply(removed, &projection, WorkerRequest::Purge)?;
        let counts = projection.reader()?.failure_counts()?;
        Ok(Json(json!({
            "projection": projection.name(),
            "removed": removed,
            "remaining": counts,
        })))
    })
    .await
}

/// Requests that only a running worker can serve (it owns the write side
/// of the state): refused with `why` otherwise.
fn require_worker(projection: &SharedProjection, why: &str) -> Result<(), ApiError> {
    match projection.status() {
        Status::Running | Status::Starting | Status::Paused { .. } => Ok(()),
        status => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!(
                "projection {:?} is {}, so {why}",
                projection.name(),
                status.label()
            ),
        )),
    }
}

/// A request the worker serves between batches.
#[derive(Clone, Copy)]
enum WorkerRequest {
    Retry,
    Purge,
}

impl WorkerRequest {
    fn name(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Purge => "purge",
        }
    }

    /// Error codes for a timeout (the worker goes on with it) and a refusal.
    fn codes(self) -> (&'static str, &'static str) {
        match self {
            Self::Retry => ("retry_pending", "retry_failed"),
            Self::Purge => ("purge_pending", "purge_failed"),
        }
    }
}

/// Waits for the worker's answer to a request.
fn worker_reply<T>(
    reply: Receiver<Result<T, String>>,
    projection: &SharedProjection,
    request: WorkerRequest,
) -> Result<T, ApiError> {
    let action = request.name();
    let (pending, failed) = request.codes();
    let outcome = reply.recv_timeout(RETRY_WAIT).map_err(|e| match e {
        RecvTimeoutError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            pending,
            format!(
                "the {action} did not finish within {} s; it goes on, check GET /v1/projections/{}/dead-letters",
                RETRY_WAIT.as_secs(),
                projection.name()
            ),
        ),
        RecvTimeoutError::Disconnected => ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!(
                "projection {:?} stopped before running the {action}; check its status",
                projection.name()
            ),
        ),
    })?;
    outcome.map_err(|message| ApiError::new(StatusCode::CONFLICT, failed, message))
}
