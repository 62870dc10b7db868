//! `projector test`: runs a module over a file of events in a temporary
//! folder, with the host's own Wasm host, overlay and state store, and
//! checks the resulting state against an expectation and against reruns
//! (a projection must be a deterministic fold of its events).
//!
//! The first run cuts the events as the live worker does (up to
//! [`BATCH`] per call, one instance). The reruns differ in what a replay,
//! a restart or a hot swap may differ in: one event per call, then
//! batches of seeded random sizes with new instances at random points. A
//! module whose state depends on those (a count kept in a global, say)
//! comes out different and is reported with the first key that differs.
//!
//! The module is compiled once per run, into a compiled-code cache that
//! outlives the run (the data folder's, else a per-user folder), so testing
//! the same module again starts at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;
use serde_json::value::RawValue;

use projector::api::ingest::{AppendParams, BodyFormat};
use projector::event::Offsets;
use projector::store::{CommitPositions, Overlay, StateStore};
use projector::wasm::bindings::{Event, QueryError};
use projector::wasm::{Instance, Limits, LoadedModule, RunError, WasmHost};

/// Events per module call, as the host's default `batch_max_events`.
const BATCH: usize = 1000;
/// Seed of the random batches of the last rerun, unless `--seed` is given.
const DEFAULT_SEED: u64 = 14;
/// Compiled modules kept in the per-user cache folder. Each build of a
/// module is a new entry (tens of MB for Python, whose builds differ every
/// time), so the folder would otherwise grow with every edit-build-test.
const KEPT_ENTRIES: usize = 20;
/// Longest payload quoted in a message.
const SHOWN_PAYLOAD: usize = 300;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The module to test (a component or a core module)
    module: PathBuf,
    /// JSON events, one per line (blank lines are skipped), fed in order as
    /// the payloads of offsets 0, 1, ... of partition 0
    #[arg(long, value_name = "FILE.jsonl")]
    events: PathBuf,
    /// Compare the final state with this JSON object of key -> value and
    /// print the differences instead of the state
    #[arg(long, value_name = "STATE.json")]
    expect: Option<PathBuf>,
    /// With --expect: also require each stored value to be byte for byte the
    /// expected value's text with its whitespace removed
    #[arg(long, requires = "expect")]
    exact: bool,
    /// Topic the events come from [default: the module's first source]
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// Take each event's key from this top-level JSON field (as `publish`)
    #[arg(long, value_name = "FIELD")]
    key_field: Option<String>,
    /// Answer this custom query on the final state and print the answer
    /// instead of the state
    #[arg(long, value_name = "NAME")]
    query: Option<String>,
    /// JSON arguments of --query
    #[arg(long, requires = "query", default_value = "{}")]
    args: String,
    /// Skip the reruns that check the state comes out the same with other
    /// batch boundaries and new instances at other points
    #[arg(long)]
    no_determinism_check: bool,
    /// Seed of the random batch sizes and instance restarts of the last
    /// rerun; a NOT DETERMINISTIC report names the one it used
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Keep compiled modules in this folder between runs (a Python or JS
    /// component takes seconds to compile) [default: DATA/cache with
    /// --data, else $XDG_CACHE_HOME/projector or ~/.cache/projector]
    #[arg(long, env = "PROJECTOR_TEST_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Data folder of a `projector run` whose compiled-module cache to
    /// share (DATA/cache); nothing else in it is read or written
    #[arg(long = "data", env = "PROJECTOR_DATA", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// One event to feed, with the line it came from.
struct Fed {
    line: usize,
    event: Event,
}

/// Why a run stopped before the end of the events.
struct Failure {
    line: usize,
    offset: u64,
    payload: String,
    message: String,
}

pub fn execute(args: TestArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let bytes = std::fs::read(&args.events)
        .with_context(|| format!("cannot read events file {}", args.events.display()))?;
    if let Some(query_args) = args.query.as_ref().map(|_| &args.args) {
        serde_json::from_str::<Value>(query_args)
            .with_context(|| format!("--args is not valid JSON: {query_args}"))?;
    }
    let expected = args.expect.as_deref().map(read_expected).transpose()?;

    let work = tempfile::tempdir().context("creating a temporary folder")?;
    let per_user = args.cache_dir.is_none() && args.data_dir.is_none();
    let cache = cache_dir(&args).unwrap_or_else(|| work.path().join("cache"));
    let host = WasmHost::new(&cache, Limits::default())?;
    let loading = Instant::now();
    let module = host.load(&args.module)?;
    let descriptor = &module.descriptor;
    let topic = match &args.topic {
        Some(topic) if !descriptor.sources.contains(topic) => bail!(
            "--topic {topic}: {} subscribes to {}; pick one of those",
            descriptor.name,
            descriptor.sources.join(", ")
        ),
        Some(topic) => topic.clone(),
        None => descriptor.sources[0].clone(),
    };
    let events = read_events(&bytes, &args.events, &topic, args.key_field.clone())?;
    eprintln!(
        "{} {} ({}): {} events on {topic}",
        descriptor.name,
        descriptor.version,
        args.module.display(),
        events.len()
    );
    eprintln!(
        "compiled code: {} in {:.2} s ({})",
        if module.from_cache {
            "loaded from the cache"
        } else {
            "compiled"
        },
        loading.elapsed().as_secs_f64(),
        cache.display()
    );
    if per_user && !module.from_cache {
        prune_cache(&cache, &module.hash);
    }

    let first = Run::start(&module, &work.path().join("first.redb"))?;
    let first = match first.feed(&events, &Plan::Live.calls(events.len()))? {
        Ok(run) => run,
        Err(failure) => {
            eprintln!(
                "FAILED at line {} of {} (offset {}): event {}\n  {}",
                failure.line,
                args.events.display(),
                failure.offset,
                failure.payload,
                failure.message
            );
            return Ok(ExitCode::from(1));
        }
    };
    let state = first.state()?;

    let mut failed = false;
    if !args.no_determinism_check {
        for (i, plan) in [Plan::OneEach, Plan::Random { seed: args.seed }]
            .into_iter()
            .enumerate()
        {
            let calls = plan.calls(events.len());
            let rerun = Run::start(&module, &work.path().join(format!("rerun-{i}.redb")))?;
            let problem = match rerun.feed(&events, &calls)? {
                Err(failure) => Some(format!(
                    "it failed at line {} (offset {}), which the first run accepted: {}",
                    failure.line, failure.offset, failure.message
                )),
                Ok(rerun) => {
                    let again = rerun.state()?;
                    (state_hash(&state) != state_hash(&again)).then(|| {
                        format!(
                            "it gave another state; {}",
                            first_difference(&state, &again)
                        )
                    })
                }
            };
            if let Some(problem) = problem {
                eprintln!(
                    "NOT DETERMINISTIC: a rerun over the same events with {} (the first run: {}): {problem}. \
                     A replay, a restart or a hot swap may cut the events and start instances like this; \
                     keep everything the state depends on in the state, not in globals",
                    plan.describe(&calls),
                    Plan::Live.describe(&[])
                );
                failed = true;
                break;
            }
        }
    }

    let mut out = std::io::stdout().lock();
    if let Some(expected) = &expected {
        let diff = compare(&state, &expected.values, args.exact);
        if diff.is_empty() {
            eprintln!(
                "ok: {} keys match {}{}",
                state.len(),
                args.expect.as_deref().unwrap_or(Path::new("")).display(),
                if args.exact { " byte for byte" } else { "" }
            );
        } else {
            writeln!(
                out,
                "state differs from {} ({}):",
                args.expect.as_deref().unwrap_or(Path::new("")).display(),
                diff.summary()
            )?;
            for line in &diff.lines {
                writeln!(out, "  {line}")?;
            }
            failed = true;
        }
    }
    if let Some(name) = &args.query {
        let mut instance = first.instance;
        let reader = first.store.reader()?;
        match instance.query(reader, name, args.args.as_bytes()) {
            Ok(Ok(answer)) => writeln!(out, "{}", show_value(&answer))?,
            Ok(Err(error)) => {
                let (kind, message) = match error {
                    QueryError::UnknownQuery => (
                        "unknown-query",
                        format!("the module lists {:?}", module.descriptor.queries),
                    ),
                    QueryError::BadArgs(m) => ("bad-args", m),
                    QueryError::Failed(m) => ("failed", m),
                };
                eprintln!("query {name} {}: {kind}: {message}", args.args);
                failed = true;
            }
            Err(error) => {
                eprintln!("query {name} {}: {error}", args.args);
                failed = true;
            }
        }
    } else if expected.is_none() {
        write!(out, "{}", render_state(&state))?;
    }
    eprintln!(
        "{} events, {} keys, state hash {}, {:.2} s",
        events.len(),
        state.len(),
        &state_hash(&state).to_hex()[..16],
        started.elapsed().as_secs_f64()
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where compiled modules are kept between runs: `--cache-dir`, else the
/// data folder's cache, else the per-user cache folder; `None` when there
/// is no home folder to put one in.
fn cache_dir(args: &TestArgs) -> Option<PathBuf> {
    if let Some(dir) = &args.cache_dir {
        return Some(dir.clone());
    }
    if let Some(data) = &args.data_dir {
        return Some(data.join("cache"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("projector"))
}

/// Deletes the per-user cache's compiled modules beyond the
/// [`KEPT_ENTRIES`] most recently written, never those of the module under
/// test (named after its hash). A problem is a warning: the cache is an
/// optimisation.
fn prune_cache(dir: &Path, keep_hash: &str) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = listing
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".cwasm") && !name.starts_with(keep_hash)
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    entries.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    for (_, path) in entries.into_iter().skip(KEPT_ENTRIES.saturating_sub(1)) {
        if let Err(e) = std::fs::remove_file(&path) {
            eprintln!(
                "warning: could not delete the old compiled module {}: {e}",
                path.display()
            );
        }
    }
}

/// How a run cuts the events into module calls and where it starts a new
/// instance.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// As the live worker: up to [`BATCH`] events a call, one instance.
    Live,
    /// One event a call, one instance.
    OneEach,
    /// Batches of random sizes and a new instance at random batch
    /// boundaries (at least one when there are two events or more).
    Random { seed: u64 },
}

/// One module call: the events it gets, and whether a new instance runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    events: Range<usize>,
    new_instance: bool,
}

impl Plan {
    fn calls(self, n: usize) -> Vec<Call> {
        let fixed = |size: usize| {
            (0..n)
                .step_by(size)
                .map(|start| Call {
                    events: start..n.min(start + size),
                    new_instance: false,
                })
                .collect::<Vec<Call>>()
        };
        match self {
            Plan::Live => fixed(BATCH),
            Plan::OneEach => fixed(1),
            Plan::Random { seed } => {
                let mut rng = SplitMix64(seed);
                // Smaller than the whole, so the boundaries differ from the
                // first run's even for a handful of events.
                let largest = (n / 2).clamp(1, BATCH) as u64;
                let mut calls: Vec<Call> = Vec::new();
                let mut start = 0;
                while start < n {
                    let size = 1 + (rng.next_u64() % largest) as usize;
                    calls.push(Call {
                        events: start..n.min(start + size),
                        new_instance: start > 0 && rng.next_u64().is_multiple_of(3),
                    });
                    start += size;
                }
                if calls.len() > 1 && !calls.iter().any(|c| c.new_instance) {
                    let middle = calls.len() / 2;
                    calls[middle].new_instance = true;
                }
                calls
            }
        }
    }

    /// What `calls` (made by this plan) do, in words.
    fn describe(self, calls: &[Call]) -> String {
        match self {
            Plan::Live => format!("calls of up to {BATCH} events to one instance"),
            Plan::OneEach => "one event a call to one instance".to_owned(),
            Plan::Random { seed } => format!(
                "{} calls of random sizes (--seed {seed}) and a new instance {} times",
                calls.len(),
                calls.iter().filter(|c| c.new_instance).count()
            ),
        }
    }
}

/// A small, fixed pseudo-random sequence (SplitMix64): the same seed
/// gives the same batches on every machine.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Events from NDJSON, parsed as `projector publish` and the HTTP API do.
fn read_events(
    bytes: &[u8],
    file: &Path,
    topic: &str,
    key_field: Option<String>,
) -> Result<Vec<Fed>> {
    let params = AppendParams {
        key_field,
        key: None,
        format: BodyFormat::Ndjson,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!(
            "{}: no events; write one JSON value per line",
            file.display()
        );
    }
    let records = projector::api::ingest::parse(bytes, None, &params)
        .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message))?;
    // The parser skips blank lines the same way; this recovers each
    // record's line number.
    let lines = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, _)| i + 1);
    Ok(records
        .into_iter()
        .zip(lines)
        .zip(0u64..)
        .map(|((record, line), offset)| Fed {
            line,
            event: Event {
                source: topic.to_owned(),
                partition: 0,
                offset,
                key: record.key,
                payload: record.payload,
                timestamp_ms: 0,
                headers: record.headers,
            },
        })
        .collect())
}

/// A module instance over a state file of its own.
struct Run<'m> {
    module: &'m LoadedModule,
    instance: Instance,
    store: StateStore,
    offsets: Offsets,
    applied: u64,
}

impl<'m> Run<'m> {
    fn start(module: &'m LoadedModule, file: &Path) -> Result<Self> {
        Ok(Self {
            module,
            instance: module.instantiate(&module.descriptor.name)?,
            store: StateStore::open(file)?,
            offsets: Offsets::default(),
            applied: 0,
        })
    }

    /// Applies every event in the batches `calls` cut, as the worker does:
    /// a failed batch is run again event by event to find the event at
    /// fault.
    fn feed(mut self, events: &[Fed], calls: &[Call]) -> Result<Result<Self, Failure>> {
        let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
        for call in calls {
            let chunk = &events[call.events.clone()];
            if call.new_instance {
                self.instance = self.module.instantiate(&self.module.descriptor.name)?;
            }
            batch.clear();
            batch.extend(chunk.iter().map(|fed| fed.event.clone()));
            let (result, overlay) =
                self.instance
                    .handle(&batch, self.store.reader()?, Overlay::default());
            match result {
                Ok(()) => self.commit(&overlay, chunk)?,
                Err(RunError::Storage(e)) => return Err(e.into()),
                Err(_) => {
                    if let Some(failure) = self.one_by_one(chunk)? {
                        return Ok(Err(failure));
                    }
                }
            }
        }
        Ok(Ok(self))
    }

    /// Runs `chunk` one event at a time; the first failure, or `None` if
    /// every event applied this time (the batch failed but none alone did).
    fn one_by_one(&mut self, chunk: &[Fed]) -> Result<Option<Failure>> {
        let mut overlay = Overlay::default();
        for fed in chunk {
            if self.instance.is_poisoned() {
                self.instance = self.module.instantiate(&self.module.descriptor.name)?;
            }
            let (result, after) = self.instance.handle(
                std::slice::from_ref(&fed.event),
                self.store.reader()?,
                overlay.clone(),
            );
            match result {
                Ok(()) => overlay = after,
                Err(RunError::Storage(e)) => return Err(e.into()),
                Err(error) => {
                    let message = match error {
                        RunError::Rejected { message, .. } => message,
                        other => other.to_string(),
                    };
                    return Ok(Some(Failure {
                        line: fed.line,
                        offset: fed.event.offset,
                        payload: shown_payload(fed.event.payload.as_deref()),
                        message,
                    }));
                }
            }
        }
        self.commit(&overlay, chunk)?;
        eprintln!(
            "warning: a batch of {} events from line {} failed as a whole but each of its events applied alone: the module's outcome depends on batching",
            chunk.len(),
            chunk[0].line
        );
        Ok(None)
    }

    fn commit(&mut self, overlay: &Overlay, chunk: &[Fed]) -> Result<()> {
        self.applied += chunk.len() as u64;
        if let Some(last) = chunk.last() {
            self.offsets
                .0
                .entry(last.event.source.clone())
                .or_default()
                .insert(0, last.event.offset + 1);
        }
        let positions = CommitPositions {
            offsets: &self.offsets,
            events_applied: self.applied,
        };
        self.store.commit(overlay, positions, false)?;
        Ok(())
    }

    fn state(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let reader = self.store.reader()?;
        let entries = reader.iter_all()?.collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }
}

fn shown_payload(payload: Option<&[u8]>) -> String {
    let Some(bytes) = payload else {
        return "(tombstone)".to_owned();
    };
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() > SHOWN_PAYLOAD {
        let cut: String = text.chars().take(SHOWN_PAYLOAD).collect();
        format!("{cut}... ({} bytes)", bytes.len())
    } else {
        text.into_owned()
    }
}

/// blake3 of every entry in key order, each part length-prefixed.
fn state_hash(state: &[(Vec<u8>, Vec<u8>)]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    for (key, value) in state {
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key);
        hasher.update(&(value.len() as u64).to_le_bytes());
        hasher.update(value);
    }
    hasher.finalize()
}

/// The first key at which two sorted states differ, in words.
fn first_difference(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut a = a.iter().peekable();
    let mut b = b.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return "yet every entry is equal (a bug in this check)".to_owned(),
            (Some((k, v)), None) => {
                return format!(
                    "first differing key {}: {} in the first run, absent in the second",
                    show_key(k),
                    show_value(v)
                );
            }
            (None, Some((k, v))) => {
                return format!(
                    "first differing key {}: absent in the first run, {} in the second",
                    show_key(k),
                    show_value(v)
                );
            }
            (Some((ka, va)), Some((kb, vb))) => {
                if ka < kb {
                    return format!(
                        "first differing key {}: {} in the first run, absent in the second",
                        show_key(ka),
                        show_value(va)
                    );
                }
                if kb < ka {
                    return format!(
                        "first differing key {}: absent in the first run, {} in the second",
                        show_key(kb),
                        show_value(vb)
                    );
                }
                if va != vb {
                    return format!(
                        "first differing key {}: {} in the first run, {} in the second",
                        show_key(ka),
                        show_value(va),
                        show_value(vb)
                    );
                }
                a.next();
                b.next();
            }
        }
    }
}

/// A key as a JSON string; one that is not UTF-8 as `"$hex:..."`.
fn key_text(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("$hex:{}", hex(key)),
    }
}

fn show_key(key: &[u8]) -> String {
    Value::String(key_text(key)).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A stored value as one line of JSON: its bytes as they are when they are
/// JSON (whitespace outside strings removed if they span lines); other
/// bytes as `{"$text": "..."}` (printable UTF-8) or `{"$hex": "..."}`.
fn show_value(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            if text.contains(['\n', '\r']) {
                compact(text)
            } else {
                text.to_owned()
            }
        }
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
        {
            serde_json::json!({ "$text": text }).to_string()
        }
        _ => serde_json::json!({ "$hex": hex(bytes) }).to_string(),
    }
}

/// The state as a JSON object, keys in bytewise order, one entry a line.
fn render_state(state: &[(Vec<u8>, Vec<u8>)]) -> String {
    if state.is_empty() {
        return "{}\n".to_owned();
    }
    let mut text = String::from("{\n");
    for (i, (key, value)) in state.iter().enumerate() {
        let comma = if i + 1 < state.len() { "," } else { "" };
        let _ = writeln!(text, "  {}: {}{comma}", show_key(key), show_value(value));
    }
    text.push_str("}\n");
    text
}

/// JSON text without the whitespace outside strings.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// The expected state: each value parsed and as written.
struct Expected {
    values: BTreeMap<String, (Value, String)>,
}

fn read_expected(path: &Path) -> Result<Expected> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read expected state {}", path.display()))?;
    let raw: BTreeMap<String, Box<RawValue>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected state must be one JSON object of key -> value",
            path.display()
        )
    })?;
    let values = raw
        .into_iter()
        .map(|(key, raw)| {
            let value: Value = serde_json::from_str(raw.get())
                .with_context(|| format!("{}: value of {key:?}", path.display()))?;
            Ok((key, (value, compact(raw.get()))))
        })
        .collect::<Result<_>>()?;
    Ok(Expected { values })
}

#[derive(Default)]
struct Diff {
    missing: usize,
    extra: usize,
    different: usize,
    lines: Vec<String>,
}

impl Diff {
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.missing, "missing"),
            (self.extra, "extra"),
            (self.different, "different"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join(", ")
    }
}

/// Missing, extra and different keys, in key order.
fn compare(
    state: &[(Vec<u8>, Vec<u8>)],
    expected: &BTreeMap<String, (Value, String)>,
    exact: bool,
) -> Diff {
    let got: BTreeMap<String, &[u8]> = state
        .iter()
        .map(|(k, v)| (key_text(k), v.as_slice()))
        .collect();
    let mut diff = Diff::default();
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(expected.keys()).collect();
    for key in keys {
        let shown = Value::String(key.clone()).to_string();
        match (got.get(key), expected.get(key)) {
            (Some(bytes), None) => {
                diff.extra += 1;
                diff.lines
                    .push(format!("extra   {shown}: got {}", show_value(bytes)));
            }
            (None, Some((_, text))) => {
                diff.missing += 1;
                diff.lines.push(format!("missing {shown}: expected {text}"));
            }
            (Some(bytes), Some((want, text))) => {
                let shown_got = show_value(bytes);
                let got_value: Value = serde_json::from_slice(bytes)
                    .unwrap_or_else(|_| serde_json::from_str(&shown_got).unwrap_or(Value::Null));
                if !same_json(&got_value, want) {
                    diff.different += 1;
                    diff.lines
                        .push(format!("differs {shown}: expected {text}, got {shown_got}"));
                } else if exact && !same_bytes(bytes, &shown_got, text) {
                    diff.different += 1;
                    diff.lines.push(format!(
                        "bytes   {shown}: expected {text}, got {} (equal as JSON, different bytes)",
                        String::from_utf8_lossy(bytes)
                    ));
                }
            }
            (None, None) => {}
        }
    }
    diff
}

/// Whether stored bytes are the expected text: the bytes themselves when
/// they are JSON, else their `$text`/`$hex` rendering.
fn same_bytes(bytes: &[u8], shown: &str, expected: &str) -> bool {
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        bytes == expected.as_bytes()
    } else {
        shown == expected
    }
}

/// JSON equality where numbers compare by value (1 equals 1.0).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_keeps_strings_and_number_text() {
        assert_eq!(
            compact("{ \"a b\" : [1.0, 2e3],\n \"c\\\" d\": \" x \" }"),
            "{\"a b\":[1.0,2e3],\"c\\\" d\":\" x \"}"
        );
    }

    #[test]
    fn values_render_on_one_line() {
        assert_eq!(show_value(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(show_value(b"{\n \"a\": 1\n}"), "{\"a\":1}");
        assert_eq!(show_value(b"plain"), "{\"$text\":\"plain\"}");
        assert_eq!(show_value(&[0xff, 0x00]), "{\"$hex\":\"ff00\"}");
        assert_eq!(show_value(b"4\0"), "{\"$hex\":\"3400\"}");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same_json(&json!({"a": [1]}), &json!({"a": [1.0]})));
        assert!(!same_json(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!same_json(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn diff_names_missing_extra_and_different_keys() {
        let state = vec![
            (b"a".to_vec(), b"{\"n\":1}".to_vec()),
            (b"b".to_vec(), b"{\"n\":2}".to_vec()),
            (b"c".to_vec(), b"{\"n\":3}".to_vec()),
        ];
        let expected: BTreeMap<String, (Value, String)> = [
            ("a", "{\"n\": 1.0}"),
            ("b", "{\"n\": 5}"),
            ("d", "{\"n\": 4}"),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_owned(), (serde_json::from_str(t).unwrap(), compact(t))))
        .collect();
        let diff = compare(&state, &expected, false);
        assert_eq!(diff.summary(), "1 missing, 1 extra, 1 different");
        assert_eq!(
            diff.lines,
            [
                "differs \"b\": expected {\"n\":5}, got {\"n\":2}",
                "extra   \"c\": got {\"n\":3}",
                "missing \"d\": expected {\"n\":4}",
            ]
        );
        let exact = compare(&state, &expected, true);
        assert!(
            exact.lines[0].starts_with("bytes   \"a\""),
            "{:?}",
            exact.lines
        );
    }

    /// Every plan feeds every event once, in order.
    fn covers(calls: &[Call], n: usize) -> bool {
        let mut next = 0;
        for call in calls {
            if call.events.start != next || call.events.is_empty() {
                return false;
            }
            next = call.events.end;
        }
        next == n
    }

    #[test]
    fn reruns_cut_the_events_otherwise_than_the_first_run() {
        for n in [0, 1, 2, 6, 52, 999, 1000, 1001, 5000] {
            let live = Plan::Live.calls(n);
            let one = Plan::OneEach.calls(n);
            let random = Plan::Random { seed: DEFAULT_SEED }.calls(n);
            for calls in [&live, &one, &random] {
                assert!(covers(calls, n), "{n}: {calls:?}");
            }
            assert_eq!(live.len(), n.div_ceil(BATCH));
            assert_eq!(one.len(), n);
            assert!(live.iter().chain(&one).all(|c| !c.new_instance));
            if n >= 2 {
                assert_ne!(random, live, "{n}");
                assert!(random.iter().any(|c| c.new_instance), "{n}");
                assert!(!random[0].new_instance);
            }
            assert_eq!(random, Plan::Random { seed: DEFAULT_SEED }.calls(n));
        }
        assert_ne!(
            Plan::Random { seed: 1 }.calls(5000),
            Plan::Random { seed: 2 }.calls(5000)
        );
    }

    #[test]
    fn hash_and_first_difference() {
        let a = vec![(b"k".to_vec(), b"1".to_vec())];
        let b = vec![(b"k".to_vec(), b"2".to_vec())];
        assert_ne!(state_hash(&a), state_hash(&b));
        assert!(first_difference(&a, &b).contains("\"k\": 1 in the first run, 2 in the second"));
    }
}
