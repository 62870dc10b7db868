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
use crate::projection::{SharedProjection, Status};

/// Marks a request one instance sends another: `1`, or `per-unit` for a
/// custom query answered per unit.
pub const FORWARDED: &str = "projector-forwarded";
/// On a forwarded read with `allow_stale`: the units (a comma list, or
/// `all` for a global projection) the receiver answers from the standby
/// copies it keeps, beside what it holds.
pub const STANDBY_UNITS: &str = "projector-standby-units";
/// On an answer that read a standby copy: `true`. Its offsets say how
/// current it is.
pub const STALE: &str = "projector-stale";

/// Units a read answers from this instance's standby copies (set by the
/// router on a request it lets read them).
#[derive(Debug, Clone, Default)]
pub struct StandbyUnits(pub Vec<u32>);

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
        return answer_forwarded(&projection, request, next).await;
    }
    let query = request.uri().query();
    let wait = query_param(query, "wait_ms").map_or(HANDOVER_WAIT, Duration::from_millis);
    // With allow_stale, a unit between owners is read from a standby.
    let stale = query_param::<bool>(query, "allow_stale") == Some(true)
        && projection.config.standby_replicas > 0;
    let replicas = stale.then_some(projection.config.standby_replicas);
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
        let target = UnitTarget {
            slot,
            unit: None,
            replicas,
        };
        return match forward_to_owner(&cluster, &name, target, &parts, body.clone(), wait).await {
            Owner::Answered(answer) => answer,
            Owner::Here => next.run(Request::from_parts(parts, Body::from(body))).await,
            Owner::Standby => {
                marked_stale(next.run(Request::from_parts(parts, Body::from(body))).await)
            }
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
    let local = |mark: &'static str, standbys: &[u32]| {
        let mut request = Request::from_parts(parts.clone(), Body::from(body.clone()));
        request
            .headers_mut()
            .insert(FORWARDED, HeaderValue::from_static(mark));
        request
            .extensions_mut()
            .insert(StandbyUnits(standbys.to_vec()));
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
            .copied();
            if let Some((unit, slot)) = routed {
                let target = UnitTarget {
                    slot,
                    unit: Some(unit),
                    replicas,
                };
                return match forward_to_owner(&cluster, &name, target, &parts, body.clone(), wait)
                    .await
                {
                    Owner::Answered(answer) => answer,
                    Owner::Here => next.run(local("1", &[])).await,
                    Owner::Standby => marked_stale(next.run(local("1", &[unit])).await),
                };
            }
            let mut owners = match owners(&cluster, &unit_slots, wait, replicas).await {
                Ok(owners) => owners,
                Err(error) => return error.into_response(),
            };
            let asked = Asked {
                cluster: &cluster,
                name: &name,
                unit_slots: &unit_slots,
                replicas,
                parts: &parts,
                body: &body,
            };
            let mut answers = match asked.every_owner(&mut owners, "1", true).await {
                Ok(answers) => answers,
                Err(failure) => return failure,
            };
            if let Some(found) = answers.pop_if(|a| a.status() != StatusCode::NOT_FOUND) {
                return found;
            }
            let here = next.run(local("1", &owners.standby_here)).await;
            owners.mark(here, None)
        }
        ReadKind::Scan | ReadKind::Query => {
            let mark = if matches!(kind, ReadKind::Scan) {
                "1"
            } else {
                "per-unit"
            };
            let mut owners = match owners(&cluster, &unit_slots, wait, replicas).await {
                Ok(owners) => owners,
                Err(error) => return error.into_response(),
            };
            let asked = Asked {
                cluster: &cluster,
                name: &name,
                unit_slots: &unit_slots,
                replicas,
                parts: &parts,
                body: &body,
            };
            let mut answers = match asked.every_owner(&mut owners, mark, false).await {
                Ok(answers) => answers,
                Err(failure) => return failure,
            };
            answers.push(next.run(local(mark, &owners.standby_here)).await);
            let merged = if matches!(kind, ReadKind::Scan) {
                merge_scans(
                    answers,
                    query_param(parts.uri.query(), "limit").unwrap_or(super::DEFAULT_SCAN_LIMIT),
                )
                .await
            } else {
                merge_queries(answers).await
            };
            if owners.any_standby() {
                marked_stale(merged)
            } else {
                merged
            }
        }
        ReadKind::Other => unreachable!("filtered above"),
    }
}

/// A read another instance sent: answered from what this one holds, and
/// from the standby copies the sender asks for ([`STANDBY_UNITS`]).
async fn answer_forwarded(
    projection: &crate::projection::SharedProjection,
    mut request: Request,
    next: Next,
) -> Response {
    let name = projection.name().to_owned();
    let standby = request
        .headers()
        .get(STANDBY_UNITS)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(standby) = standby else {
        if !projection.is_partitioned() && !projection.is_here() {
            return not_here(&name, "this instance no longer holds it").into_response();
        }
        return next.run(request).await;
    };
    let kept = |unit: &crate::projection::ProjectionRuntime| {
        unit.is_here() || unit.gate() == crate::cluster::Gate::Standby
    };
    if !projection.is_partitioned() {
        if !kept(projection) {
            return not_here(&name, "this instance keeps no standby of it").into_response();
        }
        return marked_stale(next.run(request).await);
    }
    let units: Vec<u32> = standby
        .split(',')
        .filter_map(|u| u.trim().parse().ok())
        .collect();
    let all = projection.units();
    if let Some(missing) = units
        .iter()
        .find(|u| all.get(**u as usize).is_none_or(|unit| !kept(unit)))
    {
        return not_here(
            &name,
            &format!("this instance keeps no standby of unit {missing}"),
        )
        .into_response();
    }
    request.extensions_mut().insert(StandbyUnits(units));
    marked_stale(next.run(request).await)
}

/// Marks an answer read (partly) from a standby copy.
fn marked_stale(mut answer: Response) -> Response {
    if answer.status().is_success() {
        answer
            .headers_mut()
            .insert(STALE, HeaderValue::from_static("true"));
    }
    answer
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

/// Who answers a read of several units: the other instances holding
/// them, and (with `allow_stale`) standbys of the units that have no owner
/// now.
#[derive(Debug, Default)]
struct Owners {
    holding: BTreeSet<String>,
    /// Units this instance reads from its own standby copies.
    standby_here: Vec<u32>,
    /// Units other instances read from their standby copies.
    standby_at: BTreeMap<String, Vec<u32>>,
}

impl Owners {
    /// Every other instance to ask, once each.
    fn urls(&self) -> BTreeSet<String> {
        let mut urls = self.holding.clone();
        urls.extend(self.standby_at.keys().cloned());
        urls
    }

    fn any_standby(&self) -> bool {
        !self.standby_here.is_empty() || !self.standby_at.is_empty()
    }

    /// Marks `answer` (from `url`, or here) stale when it read a standby.
    fn mark(&self, answer: Response, url: Option<&str>) -> Response {
        let standby = match url {
            None => !self.standby_here.is_empty(),
            Some(url) => self.standby_at.contains_key(url),
        };
        if standby {
            marked_stale(answer)
        } else {
            answer
        }
    }
}

/// One read of a partitioned projection sent to the instances holding
/// its units.
struct Asked<'a> {
    cluster: &'a Cluster,
    name: &'a str,
    unit_slots: &'a [(u32, u32)],
    replicas: Option<u32>,
    parts: &'a axum::http::request::Parts,
    body: &'a Bytes,
}

impl Asked<'_> {
    /// Every other instance's answer. With `allow_stale`, an owner that
    /// does not answer is replaced by standbys of its units (the ones here
    /// join `owners.standby_here`, for the caller's own answer). With
    /// `first_found`, stops at the first answer that is not a 404 (last in
    /// the list).
    async fn every_owner(
        &self,
        owners: &mut Owners,
        mark: &'static str,
        first_found: bool,
    ) -> Result<Vec<Response>, Response> {
        let mut queue: Vec<(String, Option<Vec<u32>>)> = owners
            .urls()
            .into_iter()
            .map(|url| {
                let standbys = owners.standby_at.get(&url).cloned();
                (url, standbys)
            })
            .collect();
        let mut answers = Vec::new();
        while let Some((url, standbys)) = queue.pop() {
            match forward(&url, self.parts, self.body.clone(), mark, standbys.as_ref()).await {
                Ok(answer) => {
                    let found = answer.status() != StatusCode::NOT_FOUND;
                    answers.push(owners.mark(answer, Some(&url)));
                    if first_found && found {
                        break;
                    }
                }
                Err(e) => {
                    let gone = unreachable_owner(self.name, &url, &e).into_response();
                    let Some(replicas) = self.replicas.filter(|_| standbys.is_none()) else {
                        return Err(gone);
                    };
                    // Its units, from their standbys.
                    for (unit, slot) in self.unit_slots {
                        if self.cluster.directory.owner_of(*slot).as_deref() != Some(&url) {
                            continue;
                        }
                        match standby_of(self.cluster, *slot, replicas) {
                            Some(None) => owners.standby_here.push(*unit),
                            Some(Some(other)) => {
                                owners
                                    .standby_at
                                    .entry(other.clone())
                                    .or_default()
                                    .push(*unit);
                                match queue.iter_mut().find(|(u, _)| *u == other) {
                                    Some((_, units)) => {
                                        units.get_or_insert_with(Vec::new).push(*unit)
                                    }
                                    None => queue.push((other, Some(vec![*unit]))),
                                }
                            }
                            None => return Err(gone),
                        }
                    }
                }
            }
        }
        Ok(answers)
    }
}

/// Where a unit between owners can be read stale: this instance, or the
/// URL of another keeping a standby of it.
fn standby_of(cluster: &Cluster, slot: u32, replicas: u32) -> Option<Option<String>> {
    cluster
        .directory
        .standbys(slot, replicas)
        .into_iter()
        .next()
        .map(|url| (url != cluster.directory.me()).then_some(url))
}

/// The other instances holding `slots` (every slot has a live owner, or
/// with `stale` replicas, a standby), waiting up to `wait` for slots
/// between owners.
async fn owners(
    cluster: &Cluster,
    slots: &[(u32, u32)],
    wait: Duration,
    stale: Option<u32>,
) -> Result<Owners, ApiError> {
    let deadline = Instant::now() + wait;
    loop {
        let mut owners = Owners::default();
        let mut missing = Vec::new();
        for (unit, slot) in slots {
            if cluster.ownership.gate(*slot) == crate::cluster::Gate::Held {
                continue;
            }
            if let Some(url) = cluster.directory.owner_of(*slot) {
                owners.holding.insert(url);
                continue;
            }
            match stale.and_then(|replicas| standby_of(cluster, *slot, replicas)) {
                Some(None) => owners.standby_here.push(*unit),
                Some(Some(url)) => owners.standby_at.entry(url).or_default().push(*unit),
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
                    "units {missing:?} have no owner in the group yet (a handover in progress, or every instance holding them is gone); try again in a moment{}",
                    if stale.is_some() {
                        ", no standby of them is live either"
                    } else {
                        ", or pass allow_stale=true to be answered by a standby"
                    }
                ),
            )
            .with_retry_after(1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where a read of one slot is answered.
enum Owner {
    /// Here: the slot came to this instance meanwhile.
    Here,
    /// Here, from this instance's standby copy (`allow_stale`).
    Standby,
    Answered(Response),
}

/// The slot (and unit, of a partitioned projection) a read goes to, and
/// with `allow_stale` how many standbys it has.
struct UnitTarget {
    slot: u32,
    unit: Option<u32>,
    replicas: Option<u32>,
}

/// Sends the read to the owner of the target's slot, waiting up to `wait`
/// for one; with `allow_stale`, a slot without owner is read from a
/// standby at once.
async fn forward_to_owner(
    cluster: &Cluster,
    name: &str,
    target: UnitTarget,
    parts: &axum::http::request::Parts,
    body: Bytes,
    wait: Duration,
) -> Owner {
    let deadline = Instant::now() + wait;
    let slot = target.slot;
    loop {
        if cluster.ownership.gate(slot) == crate::cluster::Gate::Held {
            return Owner::Here;
        }
        let owner = cluster.directory.owner_of(slot);
        if let Some(url) = &owner {
            match forward(url, parts, body.clone(), "1", None).await {
                // The owner gave it up meanwhile: ask again.
                Ok(answer)
                    if answer.status() == StatusCode::SERVICE_UNAVAILABLE
                        && Instant::now() < deadline => {}
                Ok(answer) => return Owner::Answered(answer),
                Err(e) if Instant::now() >= deadline || target.replicas.is_some() => {
                    // With allow_stale, a standby answers for an owner
                    // that does not.
                    if target.replicas.is_none() {
                        return Owner::Answered(unreachable_owner(name, url, &e).into_response());
                    }
                }
                Err(_) => {}
            }
        }
        let failed_owner = owner.is_some();
        if !failed_owner || target.replicas.is_some() {
            match target
                .replicas
                .and_then(|replicas| standby_of(cluster, slot, replicas))
            {
                Some(None) => return Owner::Standby,
                Some(Some(url)) => {
                    let units = vec![target.unit.unwrap_or(u32::MAX)];
                    match forward(&url, parts, body.clone(), "1", Some(&units)).await {
                        Ok(answer) => return Owner::Answered(answer),
                        Err(e) if Instant::now() >= deadline => {
                            return Owner::Answered(
                                unreachable_owner(name, &url, &e).into_response(),
                            );
                        }
                        Err(_) => {}
                    }
                }
                None => {}
            }
        }
        if Instant::now() >= deadline {
            return Owner::Answered(not_here(name, "no instance holds it yet").into_response());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one request to the instance at `base`, marked as forwarded.
/// `standby_units`: units the receiver reads from its standby copies
/// (`u32::MAX` alone: a global projection).
async fn forward(
    base: &str,
    parts: &axum::http::request::Parts,
    body: Bytes,
    mark: &'static str,
    standby_units: Option<&Vec<u32>>,
) -> Result<Response, String> {
    let standby_units = standby_units.map(|units| {
        if units.as_slice() == [u32::MAX] {
            "all".to_owned()
        } else {
            units
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    });
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
        if let Some(units) = &standby_units {
            builder = builder.header(STANDBY_UNITS, units.as_str());
        }
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
                "content-type" | "projector-offsets" | "retry-after" | STALE
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

/// What a unit's state file here holds, read at one instant: its
/// offsets, events applied, and the hash of its entries (a standby's equals
/// its active's at equal offsets).
async fn state_hash(unit: &SharedProjection) -> Result<Value, ApiError> {
    let unit = unit.clone();
    tokio::task::spawn_blocking(move || {
        let reader = unit.reader()?;
        Ok::<_, crate::store::StoreError>(json!({
            "offsets": reader.offsets()?,
            "events_applied": reader.events_applied()?,
            "hash": reader.content_hash()?.to_hex().to_string(),
        }))
    })
    .await
    .map_err(|e| ApiError::internal(format!("hashing the state crashed: {e}")))?
    .map_err(ApiError::from)
}

/// `GET /v1/cluster`: the group as this instance sees it.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    params(
        ("hashes" = Option<bool>, Query, description = "Add each unit folded here (active or standby) its state's offsets, events applied and BLAKE3 hash: a full scan of each"),
    ),
    responses(
        (status = 200, description = "Members (URL, slots, liveness), and each projection's units with their active instance, status and lag", content_type = "application/json"),
        (status = 404, description = "not_in_a_group: this instance runs without --group", body = super::openapi::ErrorBody),
    ),
)]
pub(super) async fn cluster_view(
    State(state): State<AppState>,
    uri: axum::http::Uri,
) -> Result<axum::Json<Value>, ApiError> {
    let Some(cluster) = state.cluster.clone() else {
        return Err(ApiError::not_found(
            "not_in_a_group",
            "this instance is not in a group: start it with --group NAME --advertise URL (and --kafka)",
        ));
    };
    let hashes = query_param::<bool>(uri.query(), "hashes").unwrap_or(false);
    let held = cluster.ownership.held();
    let owner = |slot: u32| -> Value {
        if held.contains(&slot) {
            json!(cluster.directory.me())
        } else {
            json!(cluster.directory.owner_of(slot))
        }
    };
    let mut views = Vec::new();
    for projection in state.registry.all() {
        let units: Vec<SharedProjection> = if projection.is_partitioned() {
            projection.units().to_vec()
        } else {
            vec![projection.clone()]
        };
        let mut unit_views = Vec::new();
        for unit in units {
            let Some((_, slot)) = unit.cluster_slot() else {
                continue;
            };
            let status = unit.status();
            let folded_here = unit.is_here() || matches!(status, Status::Standby);
            let mut view = json!({
                "unit": unit.partitions.only(),
                "slot": slot,
                "active": owner(slot),
                "standbys": cluster.directory.standbys(slot, unit.config.standby_replicas),
                "status": status.label(),
                "lag": if folded_here { unit.lag().ok() } else { None },
            });
            if hashes && folded_here {
                view["state"] = state_hash(&unit).await?;
            }
            unit_views.push(view);
        }
        views.push(json!({
            "name": projection.name(),
            "version": projection.module.hash,
            "partitioned": projection.is_partitioned(),
            "standby_replicas": projection.config.standby_replicas,
            "units": unit_views,
        }));
    }
    let projections = views;
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

/// `POST /v1/read` in a group, when the projections it reads are folded
/// by several instances: this instance coordinates. It asks every
/// instance holding a part where its part stands (`projector-forwarded:
/// probe`), fixes the target from all of them as one instance would
/// (per shared partition, the furthest any projection reached, raised to
/// `min_offsets`), then has every instance read its part at exactly that
/// target (`projector-forwarded: 1` and the body's `target`) and joins
/// the parts: a key from the part that has it, a prefix scan merged in
/// key order, a query of a partitioned projection per unit (`{"units":
/// [{"unit", "result"}]}`), a global projection's query from its owner.
pub(super) async fn coordinate_read(
    state: &AppState,
    cluster: &Cluster,
    headers: &HeaderMap,
    request: &projector_formats::query::ReadRequest,
    body: &Bytes,
    deadline: Instant,
) -> Result<Response, ApiError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    let involved = super::reads::involved(state, request)?;
    // Every other instance holding a part of one of them.
    let mut urls = BTreeSet::new();
    for p in &involved {
        if p.is_partitioned() {
            let unit_slots: Vec<(u32, u32)> = p
                .units()
                .iter()
                .filter_map(|u| {
                    u.cluster_slot()
                        .zip(u.partitions.only())
                        .map(|((_, slot), unit)| (unit, slot))
                })
                .collect();
            urls.extend(owners(cluster, &unit_slots, budget, None).await?.holding);
        } else if !p.is_here()
            && let Some((_, slot)) = p.cluster_slot()
        {
            let owner = owners(cluster, &[(0, slot)], budget, None).await?;
            urls.extend(owner.holding);
        }
    }
    let mut parts = Request::builder()
        .method(Method::POST)
        .uri("/v1/read")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = headers.get(header::AUTHORIZATION) {
        parts = parts.header(header::AUTHORIZATION, token);
    }
    let (parts, ()) = parts
        .body(())
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into_parts();
    // An instance's answer, or the response to pass on (boxed: large).
    let ask = |url: String, mark: &'static str, body: Bytes| {
        let parts = &parts;
        async move {
            let answer = forward(&url, parts, body, mark, None).await.map_err(|e| {
                Box::new(
                    unreachable_owner("(a read of several projections)", &url, &e).into_response(),
                )
            })?;
            json_of(answer)
                .await
                .map(|(_, value)| value)
                .map_err(Box::new)
        }
    };
    let asked = |mark: &'static str, body: Bytes| {
        futures_util::future::join_all(urls.iter().map(|url| ask(url.clone(), mark, body.clone())))
    };

    // Where each projection stands, over all its parts.
    let mut current: Vec<crate::event::Offsets> = Vec::new();
    for p in &involved {
        current.push(if super::reads::has_part_here(p) {
            crate::reads::to_source_topics(&p.topics, &p.reader()?.offsets()?)
        } else {
            crate::event::Offsets::default()
        });
    }
    for answer in asked("probe", body.clone()).await {
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => return Ok(*failure),
        };
        for (i, p) in involved.iter().enumerate() {
            let offsets: crate::event::Offsets =
                serde_json::from_value(answer["projections"][p.name()]["offsets"].clone())
                    .unwrap_or_default();
            for (topic, partition, next) in offsets.iter() {
                current[i].set(topic, partition, next);
            }
        }
    }
    let (target, _) = super::reads::target_of(&involved, &current, request)?;

    // Every part at exactly the target.
    let mut with_target: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?;
    with_target["target"] = json!(target);
    let part_body = Bytes::from(serde_json::to_vec(&with_target).unwrap_or_default());
    let mut here_request = request.clone();
    here_request.target = Some(json!(target));
    let here =
        super::reads::read_here(state, &here_request, budget, deadline, Some(target.clone()))
            .await?;
    let mut answers = vec![here];
    for answer in asked("1", part_body).await {
        match answer {
            Ok(answer) => answers.push(answer),
            Err(failure) => return Ok(*failure),
        }
    }
    Ok(axum::Json(join_parts(&involved, request, &target, answers)).into_response())
}

/// One read's answer from the parts that hold something of it.
fn join_parts(
    involved: &[crate::projection::SharedProjection],
    request: &projector_formats::query::ReadRequest,
    target: &crate::event::Offsets,
    answers: Vec<Value>,
) -> Value {
    let mut results = Vec::new();
    for (index, read) in request.reads.iter().enumerate() {
        let parts: Vec<&Value> = answers
            .iter()
            .map(|a| &a["results"][index])
            .filter(|r| r.is_object() && r["absent"] != true)
            .collect();
        let mut result = json!({ "projection": read.projection });
        let Some(first) = parts.first() else {
            results.push(result);
            continue;
        };
        if let Some(key) = first.get("key") {
            let found = parts.iter().find(|r| r["found"] == true);
            result["key"] = key.clone();
            result["found"] = json!(found.is_some());
            result["value"] = found.map_or(Value::Null, |r| r["value"].clone());
        } else if let Some(prefix) = first.get("prefix") {
            let limit = read.limit.unwrap_or(super::DEFAULT_SCAN_LIMIT);
            let mut items = BTreeMap::new();
            let mut more = false;
            for part in &parts {
                more |= !part["next_start_after"].is_null();
                for item in part["items"].as_array().into_iter().flatten() {
                    items.insert(item_key(item), item.clone());
                }
            }
            more |= items.len() > limit;
            let items: Vec<Value> = items.into_values().take(limit).collect();
            result["prefix"] = prefix.clone();
            result["next_start_after"] = if more {
                items
                    .last()
                    .and_then(|i| i.get("key").cloned())
                    .unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            result["items"] = json!(items);
        } else if let Some(query) = first.get("query") {
            result["query"] = query.clone();
            let partitioned = involved
                .iter()
                .any(|p| p.name() == read.projection && p.is_partitioned());
            result["result"] = if partitioned {
                let mut units = BTreeMap::new();
                for part in &parts {
                    for unit in part["result"]["units"].as_array().into_iter().flatten() {
                        units.insert(unit["unit"].as_u64().unwrap_or(u64::MAX), unit.clone());
                    }
                }
                json!({ "units": units.into_values().collect::<Vec<_>>() })
            } else {
                first["result"].clone()
            };
        }
        results.push(result);
    }
    let mut projections = serde_json::Map::new();
    for p in involved {
        let mut offsets = json!({});
        let mut as_of = None;
        for answer in &answers {
            let part = &answer["projections"][p.name()];
            join_offsets(&mut offsets, &part["offsets"]);
            if as_of.is_none() && !part["as_of"].is_null() {
                as_of = Some(part["as_of"].clone());
            }
        }
        let mut entry = json!({ "offsets": offsets });
        if let Some(as_of) = as_of {
            entry["as_of"] = as_of;
        }
        projections.insert(p.name().to_owned(), entry);
    }
    json!({
        "offsets": target,
        "projections": projections,
        "results": results,
    })
}
