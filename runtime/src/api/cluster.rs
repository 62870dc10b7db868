//! Reads from any instance of a group: a read of state another instance
//! holds is answered through it. A global projection's reads go to its
//! owner whole; a partitioned projection's key lookup goes to the key's
//! unit's owner (when its sidecar's `key_templates` tell the unit) or to
//! every owner until one has the key, a prefix scan to every owner merged
//! in key order, and a custom query to every owner, answered per unit.
//! Requests between instances carry [`FORWARDED`], and are answered from
//! what the instance holds, never forwarded again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::cluster::Cluster;

/// Marks a request one instance sends another: `1`, or `per-unit` for a
/// custom query answered per unit.
pub const FORWARDED: &str = "projector-forwarded";
/// How long a read waits for a slot that is between owners, unless the
/// request's `wait_ms` says otherwise.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);
/// One forwarded request's time limit.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What a read of a projection asks for, from its path.
enum ReadKind {
    Key(Vec<u8>),
    Scan,
    Query,
    Other,
}

fn read_kind(path: &str) -> Option<(String, ReadKind)> {
    let rest = path.strip_prefix("/v1/projections/")?;
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok()?
        .into_owned();
    let kind = if tail == "state" {
        ReadKind::Scan
    } else if tail.starts_with("state/") {
        let (_, key) = super::name_and_key(path).ok()?;
        ReadKind::Key(key)
    } else if tail.starts_with("query/") {
        ReadKind::Query
    } else {
        ReadKind::Other
    };
    Some((name, kind))
}

/// The value of parameter `name` in a query string, parsed, if given.
fn query_param<T: std::str::FromStr>(query: Option<&str>, name: &str) -> Option<T> {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// The middleware in front of the projection read routes.
pub async fn route_reads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster.clone() else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED);
    let Some((name, kind)) = read_kind(request.uri().path()) else {
        return next.run(request).await;
    };
    let (ReadKind::Key(_) | ReadKind::Scan | ReadKind::Query) = &kind else {
        return next.run(request).await;
    };
    let Some(projection) = state.registry.get(&name) else {
        return next.run(request).await;
    };
    if forwarded {
        // Another instance asks what this one holds.
        if !projection.is_partitioned() && !projection.is_here() {
            return not_here(&name, "this instance no longer holds it").into_response();
        }
        return next.run(request).await;
    }
    let wait =
        query_param(request.uri().query(), "wait_ms").map_or(HANDOVER_WAIT, Duration::from_millis);
    if !projection.is_partitioned() {
        if projection.is_here() {
            return next.run(request).await;
        }
        let Some((_, slot)) = projection.cluster_slot() else {
            return next.run(request).await;
        };
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(e) => return ApiError::bad_request("bad_body", e.to_string()).into_response(),
        };
        return match forward_to_owner(&cluster, &name, slot, &parts, body.clone(), wait).await {
            Owner::Answered(answer) => answer,
            Owner::Here => next.run(Request::from_parts(parts, Body::from(body))).await,
        };
    }
    let unit_slots: Vec<(u32, u32)> = projection
        .units()
        .iter()
        .filter_map(|u| {
            u.cluster_slot()
                .zip(u.partitions.only())
                .map(|((_, slot), unit)| (unit, slot))
        })
        .collect();
    if unit_slots.is_empty() {
        // Not shared by the group (the embedded log's).
        return next.run(request).await;
    }
    if projection.units().iter().all(|u| u.is_here()) && !matches!(kind, ReadKind::Query) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return ApiError::bad_request("bad_body", e.to_string()).into_response(),
    };
    let local = |mark: &'static str| {
        let mut request = Request::from_parts(parts.clone(), Body::from(body.clone()));
        request
            .headers_mut()
            .insert(FORWARDED, HeaderValue::from_static(mark));
        request
    };
    match kind {
        ReadKind::Key(key) => {
            // The key's own unit, when the templates tell it.
            let routed = crate::store::route::unit_of(
                &projection.config.key_templates,
                &key,
                unit_slots.len(),
            )
            .and_then(|unit| unit_slots.iter().find(|(u, _)| *u as usize == unit))
            .map(|(_, slot)| *slot);
            if let Some(slot) = routed {
                return match forward_to_owner(&cluster, &name, slot, &parts, body.clone(), wait)
                    .await
                {
                    Owner::Answered(answer) => answer,
                    Owner::Here => next.run(local("1")).await,
                };
            }
            let here = next.run(local("1")).await;
            if here.status() != StatusCode::NOT_FOUND {
                return here;
            }
            let owners = match owners(&cluster, &unit_slots, wait).await {
                Ok(owners) => owners,
                Err(error) => return error.into_response(),
            };
            let mut last = here;
            for url in owners {
                match forward(&url, &parts, body.clone(), "1").await {
                    Ok(answer) if answer.status() != StatusCode::NOT_FOUND => return answer,
                    Ok(answer) => last = answer,
                    Err(e) => return unreachable_owner(&name, &url, &e).into_response(),
                }
            }
            last
        }
        ReadKind::Scan => {
            let here = next.run(local("1")).await;
            match every_owner(&cluster, &name, &unit_slots, wait, &parts, &body, "1", here).await {
                Ok(pages) => {
                    merge_scans(
                        pages,
                        query_param(parts.uri.query(), "limit")
                            .unwrap_or(super::DEFAULT_SCAN_LIMIT),
                    )
                    .await
                }
                Err(failure) => failure,
            }
        }
        ReadKind::Query => {
            let here = next.run(local("per-unit")).await;
            match every_owner(
                &cluster,
                &name,
                &unit_slots,
                wait,
                &parts,
                &body,
                "per-unit",
                here,
            )
            .await
            {
                Ok(answers) => merge_queries(answers).await,
                Err(failure) => failure,
            }
        }
        ReadKind::Other => unreachable!("filtered above"),
    }
}

fn not_here(name: &str, why: &str) -> ApiError {
    ApiError::unavailable(
        "owner_unavailable",
        format!(
            "projection {name:?}: {why}; the group is moving it between instances, try again in a moment"
        ),
    )
    .with_retry_after(1)
}

fn unreachable_owner(name: &str, url: &str, error: &str) -> ApiError {
    ApiError::unavailable(
        "owner_unreachable",
        format!("projection {name:?}: its owner {url} did not answer: {error}"),
    )
    .with_retry_after(1)
}

/// The other instances holding `slots` (every slot has a live owner),
/// waiting up to `wait` for slots between owners.
async fn owners(
    cluster: &Cluster,
    slots: &[(u32, u32)],
    wait: Duration,
) -> Result<BTreeSet<String>, ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let mut owners = BTreeSet::new();
        let mut missing = Vec::new();
        for (unit, slot) in slots {
            if cluster.ownership.gate(*slot) == crate::cluster::Gate::Held {
                continue;
            }
            match cluster.directory.owner_of(*slot) {
                Some(url) => {
                    owners.insert(url);
                }
                None => missing.push(*unit),
            }
        }
        if missing.is_empty() {
            return Ok(owners);
        }
        if Instant::now() >= deadline {
            return Err(ApiError::unavailable(
                "owner_unavailable",
                format!(
                    "units {missing:?} have no owner in the group yet (a handover in progress, or every instance holding them is gone); try again in a moment"
                ),
            )
            .with_retry_after(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `here` (this instance's answer) and every other owner's answer to the
/// same read, or the failure to answer with.
#[allow(clippy::too_many_arguments)]
async fn every_owner(
    cluster: &Cluster,
    name: &str,
    unit_slots: &[(u32, u32)],
    wait: Duration,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    mark: &'static str,
    here: Response,
) -> Result<Vec<Response>, Response> {
    let owners = owners(cluster, unit_slots, wait)
        .await
        .map_err(IntoResponse::into_response)?;
    let mut answers = vec![here];
    for url in &owners {
        match forward(url, parts, body.clone(), mark).await {
            Ok(answer) => answers.push(answer),
            Err(e) => return Err(unreachable_owner(name, url, &e).into_response()),
        }
    }
    Ok(answers)
}

/// Where a read of one slot is answered.
enum Owner {
    /// Here: the slot came to this instance meanwhile.
    Here,
    Answered(Response),
}

/// Sends the read to the owner of `slot`, waiting up to `wait` for one.
async fn forward_to_owner(
    cluster: &Cluster,
    name: &str,
    slot: u32,
    parts: &axum::http::request::Parts,
    body: Bytes,
    wait: Duration,
) -> Owner {
    let deadline = Instant::now() + wait;
    loop {
        if cluster.ownership.gate(slot) == crate::cluster::Gate::Held {
            return Owner::Here;
        }
        if let Some(url) = cluster.directory.owner_of(slot) {
            match forward(&url, parts, body.clone(), "1").await {
                // The owner gave it up meanwhile: ask again.
                Ok(answer)
                    if answer.status() == StatusCode::SERVICE_UNAVAILABLE
                        && Instant::now() < deadline => {}
                Ok(answer) => return Owner::Answered(answer),
                Err(e) if Instant::now() >= deadline => {
                    return Owner::Answered(unreachable_owner(name, &url, &e).into_response());
                }
                Err(_) => {}
            }
        }
        if Instant::now() >= deadline {
            return Owner::Answered(not_here(name, "no instance holds it yet").into_response());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one request to the instance at `base`, marked as forwarded.
async fn forward(
    base: &str,
    parts: &axum::http::request::Parts,
    body: Bytes,
    mark: &'static str,
) -> Result<Response, String> {
    let url = format!(
        "{base}{}",
        parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |p| p.as_str())
    );
    let method = parts.method.clone();
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(FORWARD_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url)
            .header(FORWARDED, mark);
        if let Some(value) = &content_type {
            builder = builder.header(header::CONTENT_TYPE.as_str(), value.as_bytes());
        }
        if let Some(value) = &authorization {
            builder = builder.header(header::AUTHORIZATION.as_str(), value.as_bytes());
        }
        let request = builder.body(body.to_vec()).map_err(|e| e.to_string())?;
        let response = if method == Method::GET {
            let (parts, _) = request.into_parts();
            agent.run(ureq::http::Request::from_parts(parts, ()))
        } else {
            agent.run(request)
        }
        .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            if matches!(
                name.as_str(),
                "content-type" | "projector-offsets" | "retry-after"
            ) && let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name.as_str().as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                headers.insert(name, value);
            }
        }
        let body = response
            .into_body()
            .read_to_vec()
            .map_err(|e| format!("{url}: {e}"))?;
        let status = StatusCode::from_u16(status).map_err(|e| e.to_string())?;
        Ok((status, headers, body).into_response())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn json_of(response: Response) -> Result<(StatusCode, Value), Response> {
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return Err(ApiError::internal(e.to_string()).into_response()),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) if status.is_success() => Ok((status, value)),
        _ => Err(Response::from_parts(parts, Body::from(bytes))),
    }
}

/// Adds `more`'s offsets (disjoint partitions) to `all`.
fn join_offsets(all: &mut Value, more: &Value) {
    let (Some(all), Some(more)) = (all.as_object_mut(), more.as_object()) else {
        return;
    };
    for (topic, partitions) in more {
        let entry = all.entry(topic.clone()).or_insert_with(|| json!({}));
        if let (Some(entry), Some(partitions)) = (entry.as_object_mut(), partitions.as_object()) {
            for (partition, next) in partitions {
                entry.insert(partition.clone(), next.clone());
            }
        }
    }
}

/// The sort key of a scanned item: its raw key bytes.
fn item_key(item: &Value) -> Vec<u8> {
    if let Some(hex) = item.get("key_hex").and_then(Value::as_str) {
        return (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
    }
    item.get("key")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .as_bytes()
        .to_vec()
}

/// The owners' pages of one scan, as one page in key order.
async fn merge_scans(pages: Vec<Response>, limit: usize) -> Response {
    let mut items = BTreeMap::new();
    let mut offsets = json!({});
    let mut more = false;
    for page in pages {
        let (_, page) = match json_of(page).await {
            Ok(page) => page,
            Err(failure) => return failure,
        };
        more |= !page["next_start_after"].is_null();
        join_offsets(&mut offsets, &page["offsets"]);
        for item in page["items"].as_array().into_iter().flatten() {
            items.insert(item_key(item), item.clone());
        }
    }
    more |= items.len() > limit;
    let items: Vec<Value> = items.into_values().take(limit).collect();
    let next = if more {
        items.last().and_then(|i| i.get("key").cloned())
    } else {
        None
    };
    axum::Json(json!({
        "items": items,
        "next_start_after": next,
        "offsets": offsets,
    }))
    .into_response()
}

/// The owners' per-unit answers of one custom query, in unit order.
async fn merge_queries(answers: Vec<Response>) -> Response {
    let mut units = BTreeMap::new();
    let mut offsets = json!({});
    for answer in answers {
        let (_, answer) = match json_of(answer).await {
            Ok(answer) => answer,
            Err(failure) => return failure,
        };
        join_offsets(&mut offsets, &answer["offsets"]);
        for unit in answer["units"].as_array().into_iter().flatten() {
            units.insert(unit["unit"].as_u64().unwrap_or(u64::MAX), unit.clone());
        }
    }
    axum::Json(json!({
        "units": units.into_values().collect::<Vec<_>>(),
        "offsets": offsets,
    }))
    .into_response()
}

/// `GET /v1/cluster`: the group as this instance sees it.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    responses(
        (status = 200, description = "Members (URL, slots, liveness), and each projection's units with their active instance, status and lag", content_type = "application/json"),
        (status = 404, description = "not_in_a_group: this instance runs without --group", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn cluster_view(
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, ApiError> {
    let Some(cluster) = state.cluster.clone() else {
        return Err(ApiError::not_found(
            "not_in_a_group",
            "this instance is not in a group: start it with --group NAME --advertise URL (and --kafka)",
        ));
    };
    let held = cluster.ownership.held();
    let owner = |slot: u32| -> Value {
        if held.contains(&slot) {
            json!(cluster.directory.me())
        } else {
            json!(cluster.directory.owner_of(slot))
        }
    };
    let projections: Vec<Value> = state
        .registry
        .all()
        .iter()
        .map(|projection| {
            let units: Vec<Value> = if projection.is_partitioned() {
                projection
                    .units()
                    .iter()
                    .filter_map(|unit| {
                        let (_, slot) = unit.cluster_slot()?;
                        let lag = if unit.is_here() {
                            unit.lag().ok()
                        } else {
                            None
                        };
                        Some(json!({
                            "unit": unit.partitions.only(),
                            "slot": slot,
                            "active": owner(slot),
                            "status": unit.status().label(),
                            "lag": lag,
                        }))
                    })
                    .collect()
            } else {
                projection
                    .cluster_slot()
                    .map(|(_, slot)| {
                        let lag = if projection.is_here() {
                            projection.lag().ok()
                        } else {
                            None
                        };
                        vec![json!({
                            "unit": Value::Null,
                            "slot": slot,
                            "active": owner(slot),
                            "status": projection.status().label(),
                            "lag": lag,
                        })]
                    })
                    .unwrap_or_default()
            };
            json!({
                "name": projection.name(),
                "version": projection.module.hash,
                "partitioned": projection.is_partitioned(),
                "units": units,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "group": cluster.config.group,
        "me": cluster.directory.me(),
        "slots": cluster.ownership.slot_count(),
        "held": held,
        "rebalances": cluster.ownership.rebalances(),
        "members": cluster.directory.members(),
        "projections": projections,
    })))
}
