//! Reads at a position: `min_offsets` + `wait_ms` (read-your-writes),
//! `as_of` (a past position, rebuilt from a snapshot and the log), and
//! `POST /v1/read`: several projections read at one set of source offsets.
//!
//! Consistent reads: the target is, per partition of every topic that two
//! or more of the projections read, the furthest any of them has reached
//! (raised to `min_offsets` where given). Each projection registers a
//! barrier with its state file; the worker's commit that reaches the target
//! answers it with a read transaction opened right after that commit,
//! before any later one, so a projection whose commit lands exactly on the
//! target is read at exactly the target while it keeps running. A
//! projection whose batch jumps over the target is read as of the target
//! instead (snapshot + replay into a temporary file), so every answer is at
//! exactly the same offsets on every shared topic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, AppState, blocking, body_or_error, key_json, projection, value_json};
use crate::event::Offsets;
use crate::projection::{QueryFailure, SharedProjection};
use crate::reads::history::{self, HistoryError, PastState};
use crate::reads::{self as positions, WaitError};
use crate::store::{Barrier, BarrierOutcome, StateReader};

/// `wait_ms` when `min_offsets` is given without it.
pub const DEFAULT_WAIT_MS: u64 = 5_000;
/// The longest `wait_ms` accepted (below the request timeout).
pub const MAX_WAIT_MS: u64 = 30_000;
/// Most reads in one `POST /v1/read`.
const MAX_READS: usize = 100;

pub(super) use projector_formats::query::ReadParams;

/// Where a read is answered.
pub(super) enum ReadAt {
    /// The live state (after any `min_offsets` wait).
    Live,
    /// A past position, module topic names.
    AsOf(Offsets),
}

/// A read transaction and the offsets it reflects; for an as-of read, also
/// the temporary state it reads (deleted when this drops).
pub(super) struct View {
    pub reader: StateReader,
    pub offsets: Offsets,
    pub past: Option<PastState>,
}

fn bad_offsets(param: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("bad_offsets", format!("{param}: {err}"))
}

fn wait_budget(wait_ms: Option<u64>) -> Result<Duration, ApiError> {
    let ms = wait_ms.unwrap_or(DEFAULT_WAIT_MS);
    if ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            "bad_wait",
            format!("wait_ms {ms} is above the server's maximum of {MAX_WAIT_MS}; ask for less"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn timed_out(waited: Duration, wanted: Value, reached: Value) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "offsets_not_reached",
        format!(
            "the offsets asked for were not reached within {} ms; retry with a longer wait_ms (at most {MAX_WAIT_MS}) or check the projection's status and lag",
            waited.as_millis()
        ),
    )
    .with("wanted", wanted)
    .with("reached", reached)
    .with("waited_ms", waited.as_millis() as u64)
}

/// Whether a read of `version` follows the serving version across a swap
/// (it does unless a version was named).
pub(super) fn follows_serving(version: Option<&str>) -> bool {
    matches!(version, None | Some("serving"))
}

/// Validates the position parameters and waits for `min_offsets`. Returns
/// the version to answer from: with `follow`, a swap during the wait hands
/// it over to the version that now serves, which answers once it reaches
/// the offsets (a version named by the request stays that version).
pub(super) async fn position(
    state: &AppState,
    projection: SharedProjection,
    follow: bool,
    min_offsets: Option<&str>,
    wait_ms: Option<u64>,
    as_of: Option<&str>,
) -> Result<(SharedProjection, ReadAt), ApiError> {
    match (min_offsets, as_of) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "bad_position",
            "give min_offsets (wait for a position) or as_of (read a past one), not both",
        )),
        (None, None) => {
            if wait_ms.is_some() {
                return Err(ApiError::bad_request(
                    "bad_wait",
                    "wait_ms needs min_offsets: it bounds the wait for them",
                ));
            }
            Ok((projection, ReadAt::Live))
        }
        (None, Some(spec)) => {
            let wanted = positions::parse_offsets(spec).map_err(|e| bad_offsets("as_of", e))?;
            let wanted = positions::to_module_topics(&projection, &wanted)
                .map_err(|e| bad_offsets("as_of", e))?;
            Ok((projection, ReadAt::AsOf(wanted)))
        }
        (Some(spec), None) => {
            let budget = wait_budget(wait_ms)?;
            let given =
                positions::parse_offsets(spec).map_err(|e| bad_offsets("min_offsets", e))?;
            let deadline = Instant::now() + budget;
            let mut projection = projection;
            let mut slots = state.registry.watch_slots();
            loop {
                let wanted = positions::to_module_topics(&projection, &given)
                    .map_err(|e| bad_offsets("min_offsets", e))?;
                // Seen before looking up the serving version, so a swap
                // after the look wakes the wait below.
                slots.borrow_and_update();
                if follow
                    && let Some(serving) = state.registry.get(projection.name())
                    && serving.instance != projection.instance
                {
                    projection = serving;
                    continue;
                }
                let swapped = async {
                    if follow && slots.changed().await.is_ok() {
                        return;
                    }
                    std::future::pending::<()>().await;
                };
                let outcome = tokio::select! {
                    outcome = positions::wait_for(&projection, &wanted, deadline) => outcome,
                    () = swapped => continue,
                };
                return match outcome {
                    Ok(_) => Ok((projection, ReadAt::Live)),
                    Err(WaitError::Store(e)) => Err(e.into()),
                    Err(WaitError::TimedOut { reached }) => Err(timed_out(
                        budget,
                        json!(given),
                        json!(positions::to_source_topics(&projection.topics, &reached)),
                    )),
                };
            }
        }
    }
}

pub(super) fn history_error(err: HistoryError) -> ApiError {
    let (status, code) = match &err {
        HistoryError::Incomplete { .. } => (StatusCode::BAD_REQUEST, "bad_offsets"),
        HistoryError::Ahead { .. } => (StatusCode::CONFLICT, "as_of_ahead"),
        HistoryError::Halted { .. } => (StatusCode::CONFLICT, "as_of_past_halt"),
        HistoryError::Gone { .. } => (StatusCode::GONE, "history_gone"),
        HistoryError::Stuck { .. } => (StatusCode::SERVICE_UNAVAILABLE, "replay_stuck"),
        HistoryError::Store(e) if e.needs_reopen() => {
            (StatusCode::SERVICE_UNAVAILABLE, "state_unavailable")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "as_of_failed"),
    };
    ApiError::new(status, code, err.to_string())
}

/// The state to answer from (blocking: an as-of read replays).
/// `standbys`: units read from this instance's standby copies (a stale
/// read in a group).
pub(super) fn view(
    state: &AppState,
    projection: &SharedProjection,
    at: ReadAt,
    standbys: &[u32],
) -> Result<View, ApiError> {
    match at {
        ReadAt::Live => {
            let reader = projection.reader_including(standbys)?;
            let offsets = reader.offsets()?;
            Ok(View {
                reader,
                offsets,
                past: None,
            })
        }
        ReadAt::AsOf(as_of) => {
            let past = history::state_at(projection, state.registry.snapshots_dir(), &as_of)
                .map_err(history_error)?;
            let reader = past.reader()?;
            let offsets = reader.offsets()?;
            Ok(View {
                reader,
                offsets,
                past: Some(past),
            })
        }
    }
}

/// The JSON fields an as-of answer adds.
pub(super) fn as_of_json(view: &View) -> Option<Value> {
    view.past.as_ref().map(|past| {
        json!({
            "snapshot": past.snapshot.as_ref().and_then(|p| p.file_name()).map(|f| f.to_string_lossy().into_owned()),
            "replayed_events": past.replayed,
        })
    })
}

pub(super) use projector_formats::query::{ReadKind as Kind, ReadRequest, ReadSpec};

/// What read `index` of `POST /v1/read` asks for, or a 400 `bad_read`
/// naming it.
fn read_kind(read: &ReadSpec, index: usize) -> Result<Kind<'_>, ApiError> {
    read.kind(index)
        .map_err(|e| ApiError::bad_request("bad_read", e.to_string()).with("read", e.index as u64))
}

/// How each projection of a consistent read is read.
enum Reached {
    Exact(Box<StateReader>),
    /// Went past the target: read as of the target instead.
    Passed(Offsets),
}

/// Resolves once a slot change replaced the serving version of one of
/// `involved` (never if the registry is gone).
async fn swapped_out(
    state: &AppState,
    involved: &[SharedProjection],
    slots: &mut tokio::sync::watch::Receiver<u64>,
) {
    while slots.changed().await.is_ok() {
        let replaced = involved.iter().any(|p| {
            state
                .registry
                .get(p.name())
                .is_some_and(|serving| serving.instance != p.instance)
        });
        if replaced {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// `POST /v1/read`.
#[utoipa::path(
    post,
    path = "/v1/read",
    tag = "state",
    request_body(content = ReadRequest, description = "Reads of several projections, answered at one set of offsets"),
    responses(
        (status = 200, description = "Every read, at the same offsets", body = super::openapi::ConsistentReadReply),
        (status = 400, description = "bad_body, bad_read, bad_offsets, bad_wait or bad_limit", body = super::openapi::ErrorBody),
        (status = 404, description = "unknown_projection or unknown_query", body = super::openapi::ErrorBody),
        (status = 409, description = "as_of_ahead or as_of_past_halt", body = super::openapi::ErrorBody),
        (status = 410, description = "history_gone", body = super::openapi::ErrorBody),
        (status = 422, description = "query_failed", body = super::openapi::ErrorBody),
        (status = 503, description = "state_unavailable, replay_stuck, or in a group owner_unavailable / owner_unreachable", body = super::openapi::ErrorBody),
        (status = 504, description = "offsets_not_reached within wait_ms", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn consistent_read(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let body = body_or_error(body)?;
    let request =
        ReadRequest::parse(&body).map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
    if request.reads.is_empty() || request.reads.len() > MAX_READS {
        return Err(ApiError::bad_request(
            "bad_read",
            format!("give 1 to {MAX_READS} reads, not {}", request.reads.len()),
        ));
    }
    for (i, read) in request.reads.iter().enumerate() {
        read_kind(read, i)?;
    }
    let budget = wait_budget(request.wait_ms)?;
    let deadline = Instant::now() + budget;
    let mark = headers
        .get(super::cluster::FORWARDED)
        .and_then(|v| v.to_str().ok());
    let fixed = match (mark, request.target()) {
        // Another instance of the group asks where this one stands...
        (Some("probe"), _) => return Ok(Json(probe(&state, &request)?).into_response()),
        // ...or for its part, at the target it fixed.
        (Some(_), Some(target)) => Some(target.map_err(|e| bad_offsets("target", e))?),
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "bad_body",
                "a part of a group's read needs the target its coordinator fixed",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "bad_body",
                "target is set between instances of a group; give min_offsets to read at least some offsets",
            ));
        }
        (None, None) => None,
    };
    if fixed.is_none()
        && let Some(cluster) = &state.cluster
        && needs_the_group(&state, &request)?
    {
        return super::cluster::coordinate_read(
            &state, cluster, &headers, &request, &body, deadline,
        )
        .await;
    }
    let answer = read_here(&state, &request, budget, deadline, fixed).await?;
    Ok(Json(answer).into_response())
}

/// Whether a read must be answered by several instances of the group:
/// a projection it reads is folded (wholly or in part) elsewhere, or is a
/// partitioned projection shared by the group that it queries (answered
/// per unit, the same whichever instance is asked).
fn needs_the_group(state: &AppState, request: &ReadRequest) -> Result<bool, ApiError> {
    for (index, read) in request.reads.iter().enumerate() {
        let p = projection(state, &read.projection)?;
        if !p.wholly_here() {
            return Ok(true);
        }
        let shared = p
            .units()
            .first()
            .is_some_and(|u| u.cluster_slot().is_some());
        if shared && matches!(read_kind(read, index)?, Kind::Query(_)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether this instance folds some of `p` (in a group; always outside).
pub(super) fn has_part_here(p: &SharedProjection) -> bool {
    if p.is_partitioned() {
        p.units().iter().any(|u| u.is_here())
    } else {
        p.is_here()
    }
}

/// The projections a read involves, each once, in order of first mention.
pub(super) fn involved(
    state: &AppState,
    request: &ReadRequest,
) -> Result<Vec<SharedProjection>, ApiError> {
    let mut involved: Vec<SharedProjection> = Vec::new();
    for read in &request.reads {
        if !involved.iter().any(|p| p.name() == read.projection) {
            involved.push(projection(state, &read.projection)?);
        }
    }
    Ok(involved)
}

/// Where this instance's part of each projection of the read stands:
/// `{"projections": {name: {"offsets"}}}`, for those it folds some of.
fn probe(state: &AppState, request: &ReadRequest) -> Result<Value, ApiError> {
    let mut projections = serde_json::Map::new();
    for p in involved(state, request)? {
        if has_part_here(&p) {
            let offsets = p.reader()?.offsets()?;
            projections.insert(
                p.name().to_owned(),
                json!({ "offsets": positions::to_source_topics(&p.topics, &offsets) }),
            );
        }
    }
    Ok(json!({ "projections": projections }))
}

/// The source topics each of `involved` reads -> the projections
/// (indexes) that read it.
fn readers_of(involved: &[SharedProjection]) -> BTreeMap<String, BTreeSet<usize>> {
    let mut readers: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (i, p) in involved.iter().enumerate() {
        for binding in &p.topics {
            readers
                .entry(binding.physical.clone())
                .or_default()
                .insert(i);
        }
    }
    readers
}

/// The offsets a consistent read is answered at, from where each of
/// `involved` stands (`current`, source topics): per partition of every
/// topic two or more read, the furthest any reached, raised to
/// `min_offsets` there; and per projection the `min_offsets` of the topics
/// it alone reads.
pub(super) fn target_of(
    involved: &[SharedProjection],
    current: &[Offsets],
    request: &ReadRequest,
) -> Result<(Offsets, Vec<Offsets>), ApiError> {
    let readers = readers_of(involved);
    let mut target = Offsets::default();
    for (topic, who) in readers.iter().filter(|(_, who)| who.len() > 1) {
        for &i in who {
            if let Some(parts) = current[i].0.get(topic) {
                for (&partition, &next) in parts {
                    if target.get(topic, partition) < next {
                        target.set(topic, partition, next);
                    }
                }
            }
        }
    }
    let mut at_least = vec![Offsets::default(); involved.len()];
    if let Some(given) = request.min_offsets() {
        let given = given.map_err(|e| bad_offsets("min_offsets", e))?;
        for (topic, partition, next) in given.iter() {
            let who = readers.get(topic).ok_or_else(|| {
                bad_offsets(
                    "min_offsets",
                    format!(
                        "no projection in this request reads topic {topic:?}; give offsets of topics they read ({})",
                        readers.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            if who.len() > 1 {
                if target.get(topic, partition) < next {
                    target.set(topic, partition, next);
                }
            } else if let Some(&i) = who.first() {
                at_least[i].set(topic, partition, next);
            }
        }
    }
    Ok((target, at_least))
}

/// Answers the read from this instance: every projection whole, or with
/// `fixed` (a part of a group's read, at the target its coordinator
/// fixed) what this instance folds of each; the reads of a projection it
/// folds nothing of are `{"projection", "absent": true}`, and a query of a
/// partitioned projection answers per unit (`result: {"units": [{"unit",
/// "result"}]}`).
pub(super) async fn read_here(
    state: &AppState,
    request: &ReadRequest,
    budget: Duration,
    deadline: Instant,
    fixed: Option<Offsets>,
) -> Result<Value, ApiError> {
    let part = fixed.is_some();
    let mut slots = state.registry.watch_slots();
    let (involved, target, exact, reached, late) = 'attempt: loop {
        // Seen before the projections are looked up: a swap after it wakes
        // the waits below.
        slots.borrow_and_update();
        let mut involved = involved(state, request)?;
        if part {
            involved.retain(has_part_here);
        }
        let readers = readers_of(&involved);
        let (target, at_least) = match &fixed {
            Some(fixed) => {
                // The coordinator checked min_offsets and raised the
                // target to them on shared topics; here they bound the
                // topics one projection alone reads.
                let mut at_least = vec![Offsets::default(); involved.len()];
                if let Some(Ok(given)) = request.min_offsets() {
                    for (topic, partition, next) in given.iter() {
                        for &i in readers.get(topic).into_iter().flatten() {
                            at_least[i].set(topic, partition, next);
                        }
                    }
                }
                (fixed.clone(), at_least)
            }
            None => {
                let mut current = Vec::new();
                for p in &involved {
                    let offsets = p.reader()?.offsets()?;
                    current.push(positions::to_source_topics(&p.topics, &offsets));
                }
                target_of(&involved, &current, request)?
            }
        };
        // Barriers first, then a look at where each stands: a commit between
        // the two answers the barrier, and is seen by the look as well.
        let mut exact = Vec::new();
        let mut outcomes = Vec::new();
        for (i, p) in involved.iter().enumerate() {
            let mine: Offsets = {
                let mut mine = Offsets::default();
                for (topic, partition, next) in target.iter() {
                    // (A part of a group's read: the target also names
                    // topics only projections folded elsewhere read.)
                    if readers.get(topic).is_some_and(|who| who.contains(&i)) {
                        mine.set(topic, partition, next);
                    }
                }
                mine
            };
            let barrier = Barrier {
                exact: positions::to_module_topics(p, &mine)
                    .map_err(|e| bad_offsets("target", e))?,
                at_least: positions::to_module_topics(p, &at_least[i])
                    .map_err(|e| bad_offsets("min_offsets", e))?,
            };
            let reader = p.reader()?;
            let now = reader.offsets()?;
            let early = match barrier.check(&now) {
                Some(true) => Some(Reached::Exact(Box::new(reader))),
                Some(false) => Some(Reached::Passed(now)),
                None => None,
            };
            let pending = match early {
                Some(_) => None,
                None => Some(p.barrier(Barrier {
                    exact: barrier.exact.clone(),
                    at_least: barrier.at_least.clone(),
                })),
            };
            exact.push(barrier.exact);
            outcomes.push((early, pending));
        }
        let mut reached = Vec::new();
        let mut late = Vec::new();
        for (i, (early, pending)) in outcomes.into_iter().enumerate() {
            let outcome = match (early, pending) {
                (Some(early), _) => Some(early),
                (None, Some(pending)) => {
                    tokio::select! {
                        outcome = tokio::time::timeout_at(deadline.into(), pending) => match outcome {
                            Ok(Ok(BarrierOutcome::Exact(reader))) => Some(Reached::Exact(reader)),
                            Ok(Ok(BarrierOutcome::Passed(offsets))) => Some(Reached::Passed(offsets)),
                            _ => None,
                        },
                        // A swapped-out version never commits again: start
                        // over with the versions serving now.
                        () = swapped_out(state, &involved, &mut slots) => continue 'attempt,
                    }
                }
                (None, None) => None,
            };
            match outcome {
                Some(outcome) => reached.push(outcome),
                None => late.push(i),
            }
        }
        break (involved, target, exact, reached, late);
    };
    if !late.is_empty() {
        let mut stood = serde_json::Map::new();
        for p in &involved {
            let offsets = p.reader()?.offsets()?;
            stood.insert(
                p.name().to_owned(),
                json!(positions::to_source_topics(&p.topics, &offsets)),
            );
        }
        let slow: Vec<&str> = late.iter().map(|&i| involved[i].name()).collect();
        return Err(timed_out(budget, json!(target), Value::Object(stood))
            .with("slow_projections", json!(slow)));
    }

    let state = state.clone();
    let request = request.clone();
    let answer = blocking(move || {
        let mut views = Vec::new();
        for ((p, outcome), exact) in involved.iter().zip(reached).zip(&exact) {
            let view = match outcome {
                Reached::Exact(reader) => {
                    let offsets = reader.offsets()?;
                    View {
                        reader: *reader,
                        offsets,
                        past: None,
                    }
                }
                Reached::Passed(passed) => {
                    // Exactly the target on shared partitions; anything it
                    // reached elsewhere (nothing else constrains those).
                    let mut as_of = passed;
                    for (topic, partition, next) in exact.iter() {
                        as_of.set(topic, partition, next);
                    }
                    for binding in &p.topics {
                        for partition in 0..p.source.heads(&binding.physical).len() as u32 {
                            let known = as_of
                                .0
                                .get(&binding.logical)
                                .is_some_and(|parts| parts.contains_key(&partition));
                            if !known {
                                as_of.set(&binding.logical, partition, 0);
                            }
                        }
                    }
                    view(&state, p, ReadAt::AsOf(as_of), &[])?
                }
            };
            views.push(view);
        }
        let mut results = Vec::new();
        for (index, read) in request.reads.iter().enumerate() {
            let mut result = json!({ "projection": read.projection });
            // A part of a group's read: nothing of this one is here.
            let Some(at) = involved.iter().position(|p| p.name() == read.projection) else {
                result["absent"] = json!(true);
                results.push(result);
                continue;
            };
            let (p, view) = (&involved[at], &views[at]);
            match read_kind(read, index)? {
                Kind::Key(key) => {
                    let value = view.reader.get(key.as_bytes())?;
                    result["key"] = json!(key);
                    result["found"] = json!(value.is_some());
                    result["value"] = value.as_deref().map_or(Value::Null, value_json);
                }
                Kind::Prefix(prefix) => {
                    let limit = read.limit.unwrap_or(super::DEFAULT_SCAN_LIMIT);
                    if limit == 0 || limit > super::MAX_SCAN_LIMIT {
                        return Err(ApiError::bad_request(
                            "bad_limit",
                            format!(
                                "read {index}: limit must be 1 to {}, not {limit}",
                                super::MAX_SCAN_LIMIT
                            ),
                        ));
                    }
                    let mut entries = view.reader.scan(
                        prefix.as_bytes(),
                        read.start_after.as_deref().map(str::as_bytes),
                        limit + 1,
                    )?;
                    let more = entries.len() > limit;
                    entries.truncate(limit);
                    result["prefix"] = json!(prefix);
                    result["items"] = entries
                        .iter()
                        .map(|(k, v)| {
                            let mut item = key_json(k);
                            item["value"] = value_json(v);
                            item
                        })
                        .collect();
                    result["next_start_after"] = json!(
                        more.then(|| {
                            entries
                                .last()
                                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                        })
                        .flatten()
                    );
                }
                Kind::Query(query) => {
                    let args = match &read.args {
                        None => b"{}".to_vec(),
                        Some(args) => serde_json::to_vec(args).expect("JSON values serialize"),
                    };
                    result["query"] = json!(query);
                    if part && p.is_partitioned() {
                        // Each unit here on its own: the coordinator lists
                        // them with the other instances' units.
                        let mut units = Vec::new();
                        for (unit, reader) in p.units_here().iter().zip(view.reader.fork()?.split())
                        {
                            let answer = p
                                .query_reader(reader, query, &args)
                                .map_err(|e| query_error(p, query, e).with("read", index as u64))?;
                            units.push(json!({
                                "unit": unit.partitions.only(),
                                "result": value_json(&answer.0),
                            }));
                        }
                        result["result"] = json!({ "units": units });
                    } else {
                        let answer = p
                            .query_reader(view.reader.fork()?, query, &args)
                            .map_err(|e| query_error(p, query, e).with("read", index as u64))?;
                        result["result"] = value_json(&answer.0);
                    }
                }
            }
            results.push(result);
        }
        let mut projections = serde_json::Map::new();
        for (p, view) in involved.iter().zip(&views) {
            let mut entry = json!({
                "offsets": positions::to_source_topics(&p.topics, &view.offsets),
            });
            if let Some(as_of) = as_of_json(view) {
                entry["as_of"] = as_of;
            }
            projections.insert(p.name().to_owned(), entry);
        }
        Ok(json!({
            "offsets": target,
            "projections": projections,
            "results": results,
        }))
    })
    .await?;
    Ok(answer)
}

/// A custom query's failure as an API error.
pub(super) fn query_error(
    projection: &SharedProjection,
    query: &str,
    failure: QueryFailure,
) -> ApiError {
    match failure {
        failure @ QueryFailure::UnknownQuery { .. } => {
            ApiError::not_found("unknown_query", failure.to_string()).with("query", query)
        }
        QueryFailure::BadArgs(message) => ApiError::bad_request(
            "bad_query_args",
            format!("query {query:?} rejected its arguments: {message}"),
        ),
        failure => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "query_failed",
            format!(
                "query {query:?} of {:?} failed: {failure}",
                projection.name()
            ),
        ),
    }
}
