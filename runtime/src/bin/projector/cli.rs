//! Command-line interface: `run`, `publish`, `query`, `status`, and the
//! authoring tools `test` and `new`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use projector::config::{Config, FileConfig, Overrides};

use crate::client::{Client, encode_segment};

const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";
/// Publish sends files in requests of about this size; each request is
/// appended atomically.
const PUBLISH_CHUNK_BYTES: usize = 8 << 20;

/// Runs event-sourcing projections written as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "projector", version, about, long_about = None)]
pub struct Cli {
    /// Log lines as text (auto, the default, is text) or as one JSON
    /// object per line, each line about a projection with `projection` and
    /// `version` fields
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PROJECTOR_LOG_FORMAT",
        default_value = "auto"
    )]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the host: embedded log, every module in the modules folder, HTTP API.
    Run(RunArgs),
    /// Append JSON events (one per line) to a topic of a running projector.
    Publish(PublishArgs),
    /// Read projection state: one key, a prefix scan, or a custom query.
    Query(QueryArgs),
    /// Read several projections at one set of source offsets (POST /v1/read)
    Read(ReadArgs),
    /// Show every projection's status, offsets and lag, and rejected modules.
    Status(StatusArgs),
    /// Rebuild a projection from the beginning in the shadow; the serving
    /// version answers queries until the rebuild has caught up.
    Replay(ReplayArgs),
    /// Start a failed projection again: run the event it failed on again
    /// (after a transient cause is gone), or pass over it with --skip
    Resume(ResumeArgs),
    /// List, take, restore or export snapshots of a projection's state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// List or retry the failed events a projection's error policy kept.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(crate::dead_letters::DeadLetterCommand),
    /// Run a module over a file of events, offline, and check the state it
    /// builds (against an expectation, and against a second run)
    Test(crate::author_test::TestArgs),
    /// Write a new projection project (source, build script, sample events,
    /// expected state, unit test) for one language
    New(crate::scaffold::NewArgs),
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Snapshots of a projection, newest first
    List {
        projection: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Take a snapshot of the serving version now
    Create {
        projection: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Rebuild from a snapshot plus the events after it (in the shadow)
    Restore {
        projection: String,
        /// Snapshot file name, as `snapshot list` shows it
        snapshot: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Copy a snapshot file out, e.g. for a backup
    Export {
        projection: String,
        snapshot: String,
        /// Where to write it
        file: PathBuf,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Projection name
    projection: String,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
struct ResumeArgs {
    /// Projection name
    projection: String,
    /// Record the failed event as `skipped` (with the time and --reason)
    /// and go on after it, instead of running it again
    #[arg(long)]
    skip: bool,
    /// Why the event is skipped; kept in its record (`dead-letters list`)
    #[arg(long, value_name = "TEXT", requires = "skip")]
    reason: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML configuration file (keys: data_dir, modules_dir, listen,
    /// default_partitions, batch_max_events, batch_linger_ms,
    /// sync_interval_ms, max_request_bytes, api_token, api_token_file,
    /// request_timeout_ms, header_read_timeout_ms, max_connections,
    /// max_in_flight_requests, stall_after_ms, [limits] max_memory_bytes,
    /// max_key_bytes, max_value_bytes, max_scan_entries, max_module_bytes,
    /// call_timeout_ms, [kafka] bootstrap, commit_group_offsets,
    /// refresh_interval_ms, request_timeout_ms, [kafka.properties],
    /// [cluster] group, advertise, slots, session_timeout_ms,
    /// standby_replicas). Flags
    /// and environment variables override it.
    #[arg(long, env = "PROJECTOR_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder: embedded log, state files, compiled-module cache [default: ./data]
    #[arg(long = "data", env = "PROJECTOR_DATA", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Folder of projection modules (*.wasm) [default: ./projections]
    #[arg(long = "modules", env = "PROJECTOR_MODULES", value_name = "DIR")]
    modules_dir: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:7878, this machine only];
    /// `0.0.0.0:7878` serves other machines too (set an API token then)
    #[arg(long, env = "PROJECTOR_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin token: appends, topic creation, replay, resume, snapshot
    /// create/restore and dead-letter retry/purge then need `Authorization:
    /// Bearer TOKEN`; reads stay open [default: none, no check]
    #[arg(
        long,
        env = "PROJECTOR_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// Read the admin token from this file (keeps it out of `ps`)
    #[arg(long, env = "PROJECTOR_API_TOKEN_FILE", value_name = "FILE")]
    api_token_file: Option<PathBuf>,
    /// Longest a request may take to arrive after its head (408 after
    /// that) or wait for a free slot (503) [default: 60000]
    #[arg(long, env = "PROJECTOR_REQUEST_TIMEOUT_MS", value_name = "MS")]
    request_timeout_ms: Option<u64>,
    /// Longest a connection may take to send a request head, or stay idle
    /// between requests [default: 10000]
    #[arg(long, env = "PROJECTOR_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    header_read_timeout_ms: Option<u64>,
    /// Most open HTTP connections; more wait to be accepted [default: 1024]
    #[arg(long, env = "PROJECTOR_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Most requests worked on at once; more wait [default: 256]
    #[arg(long, env = "PROJECTOR_MAX_IN_FLIGHT_REQUESTS", value_name = "N")]
    max_in_flight_requests: Option<usize>,
    /// A projection with lag that applies nothing for this long is flagged
    /// `stalled` in status, metrics and logs [default: 30000]
    #[arg(long, env = "PROJECTOR_STALL_AFTER_MS", value_name = "MS")]
    stall_after_ms: Option<u64>,
    /// Partitions of topics created by a first append [default: 3]
    #[arg(long, env = "PROJECTOR_PARTITIONS", value_name = "N")]
    partitions: Option<u32>,
    /// Most events per batch (one module call, one commit) [default: 1000]
    #[arg(long, env = "PROJECTOR_BATCH_MAX_EVENTS", value_name = "N")]
    batch_max_events: Option<usize>,
    /// Wait this long for a batch to fill [default: 0]
    #[arg(long, env = "PROJECTOR_BATCH_LINGER_MS", value_name = "MS")]
    batch_linger_ms: Option<u64>,
    /// Longest time between durable (fsynced) state commits [default: 1000]
    #[arg(long, env = "PROJECTOR_SYNC_INTERVAL_MS", value_name = "MS")]
    sync_interval_ms: Option<u64>,
    /// Kafka bootstrap servers; projections then read Kafka unless their
    /// sidecar `<module>.toml` says `source = "embedded"`
    #[arg(long, env = "PROJECTOR_KAFKA", value_name = "BOOTSTRAP")]
    kafka: Option<String>,
    /// A librdkafka property passed through, e.g. `-X security.protocol=ssl`
    /// (repeatable)
    #[arg(short = 'X', long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    kafka_properties: Vec<(String, String)>,
    /// Shared snapshot store: every snapshot is uploaded there too, and a
    /// newer one found there is downloaded before a restore (a folder, or
    /// a file://, s3://, gs:// or az:// URL, configured by the cloud's
    /// usual variables, e.g. AWS_ENDPOINT, AWS_ACCESS_KEY_ID)
    #[arg(long, env = "PROJECTOR_SNAPSHOT_STORE", value_name = "URL")]
    snapshot_store: Option<String>,
    /// Units of one partitioned projection folding at once [default: the
    /// machine's cores]
    #[arg(long, env = "PROJECTOR_WORKER_THREADS", value_name = "N")]
    worker_threads: Option<usize>,
    /// Share the projections with every instance started with the same
    /// group name (a Kafka consumer group: needs --kafka and --advertise);
    /// see docs/scaling.md
    #[arg(long, env = "PROJECTOR_GROUP", value_name = "NAME")]
    group: Option<String>,
    /// This instance's HTTP API as the other instances of the group reach
    /// it, e.g. http://10.0.0.5:7878
    #[arg(long, env = "PROJECTOR_ADVERTISE", value_name = "URL")]
    advertise: Option<String>,
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[derive(Debug, Args)]
pub struct ServerArg {
    /// URL of the running projector
    #[arg(long, env = "PROJECTOR_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// The server's admin token, sent as `Authorization: Bearer TOKEN`
    /// (needed by publish, replay, resume, dead-letters retry/purge and
    /// snapshot create/restore when the
    /// server has one)
    #[arg(
        long,
        env = "PROJECTOR_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// Read the admin token from this file (`--api-token` wins)
    #[arg(long, env = "PROJECTOR_API_TOKEN_FILE", value_name = "FILE")]
    api_token_file: Option<PathBuf>,
}

impl ServerArg {
    pub fn client(&self) -> Result<Client> {
        let token = match (&self.api_token, &self.api_token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read API token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        Ok(Client::new(&self.server, token))
    }
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// Topic to append to (created with the default partition count if new)
    topic: String,
    /// File of JSON events, one per line; `-` or nothing reads standard input
    file: Option<PathBuf>,
    /// Take each event's key from this top-level JSON field
    #[arg(long, value_name = "FIELD")]
    key_field: Option<String>,
    /// Use this key for every event
    #[arg(long, conflicts_with = "key_field")]
    key: Option<String>,
    /// Print the server's receipts as JSON instead of a summary
    #[arg(long)]
    json: bool,
    /// Produce straight to this Kafka cluster (bootstrap servers) instead
    /// of a running projector's embedded log
    #[arg(long, value_name = "BOOTSTRAP", conflicts_with = "json")]
    kafka: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["key", "prefix", "query"])))]
struct QueryArgs {
    /// Projection name
    projection: String,
    /// State key to look up (prints its JSON value; exit code 1 if absent)
    key: Option<String>,
    /// List entries whose key starts with this prefix, as a JSON array
    #[arg(long)]
    prefix: Option<String>,
    /// With --prefix: at most this many entries
    #[arg(long, requires = "prefix")]
    limit: Option<usize>,
    /// Run this custom query of the projection
    #[arg(long, value_name = "NAME")]
    query: Option<String>,
    /// JSON arguments of the custom query
    #[arg(long, requires = "query", default_value = "{}")]
    args: String,
    /// Which version answers: serving (default), building, or a hash prefix
    #[arg(long = "version", value_name = "VERSION")]
    version: Option<String>,
    /// Answer once the projection has reached these offsets
    /// (`topic:partition=next,...`, as `publish` prints them)
    #[arg(long, value_name = "OFFSETS")]
    min_offsets: Option<String>,
    /// With --min-offsets: wait at most this long (server default 5000, max 30000)
    #[arg(long, value_name = "MS", requires = "min_offsets")]
    wait_ms: Option<u64>,
    /// Read the state as it was at these offsets (every partition the
    /// projection reads), rebuilt from a snapshot and the log
    #[arg(long, value_name = "OFFSETS", conflicts_with = "min_offsets")]
    as_of: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// The request: JSON `{"reads": [{"projection": P, "key"|"prefix"|"query": ...}, ...]}`, or `-` for stdin
    request: String,
    /// Offsets every read must reflect (`topic:partition=next,...`)
    #[arg(long, value_name = "OFFSETS")]
    min_offsets: Option<String>,
    /// Wait at most this long for the slower projections
    #[arg(long, value_name = "MS")]
    wait_ms: Option<u64>,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Print the raw JSON listing
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

pub fn execute(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(args),
        Command::Publish(args) => publish(args),
        Command::Query(args) => query(args),
        Command::Read(args) => read(args),
        Command::Status(args) => status(args),
        Command::Replay(args) => replay(args),
        Command::Resume(args) => resume(args),
        Command::Snapshot(command) => snapshot(command),
        Command::DeadLetters(command) => crate::dead_letters::execute(command),
        Command::Test(args) => crate::author_test::execute(args),
        Command::New(args) => crate::scaffold::execute(args),
    }
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    let config = Config::resolve(
        file,
        Overrides {
            data_dir: args.data_dir,
            modules_dir: args.modules_dir,
            listen: args.listen,
            default_partitions: args.partitions,
            batch_max_events: args.batch_max_events,
            batch_linger_ms: args.batch_linger_ms,
            sync_interval_ms: args.sync_interval_ms,
            kafka_bootstrap: args.kafka,
            kafka_properties: args.kafka_properties,
            api_token: args.api_token,
            api_token_file: args.api_token_file,
            request_timeout_ms: args.request_timeout_ms,
            header_read_timeout_ms: args.header_read_timeout_ms,
            max_connections: args.max_connections,
            max_in_flight_requests: args.max_in_flight_requests,
            stall_after_ms: args.stall_after_ms,
            snapshot_store: args.snapshot_store,
            worker_threads: args.worker_threads,
            group: args.group,
            advertise: args.advertise,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(projector::server::run(config))?;
    Ok(ExitCode::SUCCESS)
}

fn read_input(file: Option<&PathBuf>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match file {
        Some(path) if path.as_os_str() != "-" => {
            bytes = std::fs::read(path)
                .with_context(|| format!("cannot read events file {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading events from standard input")?;
        }
    }
    Ok(bytes)
}

/// Splits NDJSON into chunks of whole lines of about `max` bytes, remembering
/// each chunk's first line number so errors point into the file.
fn chunks(bytes: &[u8], max: usize) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = 1;
    let mut chunk_line = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            line += 1;
            if i + 1 - start >= max {
                out.push((chunk_line, &bytes[start..=i]));
                start = i + 1;
                chunk_line = line;
            }
        }
        i += 1;
    }
    if bytes[start..].iter().any(|b| !b.is_ascii_whitespace()) {
        out.push((chunk_line, &bytes[start..]));
    }
    out
}

fn publish(args: PublishArgs) -> Result<ExitCode> {
    let bytes = read_input(args.file.as_ref())?;
    if let Some(bootstrap) = &args.kafka {
        let params = projector::api::ingest::AppendParams {
            key_field: args.key_field.clone(),
            key: args.key.clone(),
            ..Default::default()
        };
        let delivered = crate::kafka_publish::publish(bootstrap, &args.topic, &bytes, &params)?;
        let total: u64 = delivered.values().map(|d| d.2).sum();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "published {total} events to Kafka topic {}",
            args.topic
        )?;
        for (partition, (first, last, count)) in &delivered {
            writeln!(
                out,
                "  partition {partition}: offsets {first}..={last} ({count} events)"
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let client = args.server.client()?;
    let mut query = Vec::new();
    if let Some(field) = &args.key_field {
        query.push(format!("key_field={}", encode_segment(field)));
    }
    if let Some(key) = &args.key {
        query.push(format!("key={}", encode_segment(key)));
    }
    let path = format!(
        "/v1/topics/{}/events{}{}",
        encode_segment(&args.topic),
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    );
    let mut receipts = Vec::new();
    let mut total = 0u64;
    for (first_line, chunk) in chunks(&bytes, PUBLISH_CHUNK_BYTES) {
        let answer = client.post(&path, "application/x-ndjson", chunk)?;
        if !answer.ok() {
            let mut message = answer.error_message();
            if let Some(line) = answer.body.pointer("/error/line").and_then(Value::as_u64) {
                let file_line = first_line as u64 + line - 1;
                message =
                    message.replacen(&format!("line {line}"), &format!("line {file_line}"), 1);
            }
            bail!(
                "publish to {:?} failed after {total} events: {message} (HTTP {})",
                args.topic,
                answer.status
            );
        }
        total += answer.body["count"].as_u64().unwrap_or(0);
        receipts.push(answer.body);
    }
    if total == 0 {
        bail!("no events to publish: the input has no JSON lines");
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&receipts)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "published {total} events to {}", args.topic)?;
    let mut next = json!({});
    for receipt in &receipts {
        for range in receipt["partitions"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  partition {}: offsets {}..={} ({} events)",
                range["partition"], range["first_offset"], range["last_offset"], range["count"]
            )?;
        }
        if let Some(offsets) = receipt["next_offsets"][&args.topic].as_object() {
            for (partition, offset) in offsets {
                next[partition] = offset.clone();
            }
        }
    }
    let next: projector::event::Offsets = serde_json::from_value(json!({ &args.topic: next }))
        .context("the server's next_offsets are not offsets")?;
    // The form `query --min-offsets` / `--as-of` and `POST /v1/read` take.
    writeln!(
        out,
        "next offsets: {}",
        projector::reads::format_offsets(&next)
    )?;
    Ok(ExitCode::SUCCESS)
}

fn query(args: QueryArgs) -> Result<ExitCode> {
    let client = args.server.client()?;
    let projection = encode_segment(&args.projection);
    let mut params = Vec::new();
    if let Some(v) = &args.version {
        params.push(format!("version={}", encode_segment(v)));
    }
    if let Some(spec) = &args.min_offsets {
        projector::reads::parse_offsets(spec).context("--min-offsets")?;
        params.push(format!("min_offsets={}", encode_segment(spec)));
    }
    if let Some(ms) = args.wait_ms {
        params.push(format!("wait_ms={ms}"));
    }
    if let Some(spec) = &args.as_of {
        projector::reads::parse_offsets(spec).context("--as-of")?;
        params.push(format!("as_of={}", encode_segment(spec)));
    }
    let version = (!params.is_empty()).then(|| params.join("&"));
    let mut out = std::io::stdout().lock();
    if let Some(key) = &args.key {
        let answer = client
            .get(&format!(
                "/v1/projections/{projection}/state/{}{}",
                encode_segment(key),
                version
                    .as_deref()
                    .map(|v| format!("?{v}"))
                    .unwrap_or_default()
            ))?
            .into_ok()?;
        writeln!(out, "{}", answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(prefix) = &args.prefix {
        let mut items = Vec::new();
        let mut start_after: Option<String> = None;
        let wanted = args.limit.unwrap_or(usize::MAX);
        loop {
            let page = (wanted - items.len()).min(1000);
            let mut path = format!(
                "/v1/projections/{projection}/state?prefix={}&limit={page}",
                encode_segment(prefix)
            );
            if let Some(v) = &version {
                path.push_str(&format!("&{v}"));
            }
            if let Some(after) = &start_after {
                path.push_str(&format!("&start_after={}", encode_segment(after)));
            }
            let body = client.get_ok(&path)?;
            items.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next_start_after"].as_str() {
                Some(next) if items.len() < wanted => start_after = Some(next.to_owned()),
                _ => break,
            }
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.query.as_deref().unwrap_or_default();
    serde_json::from_str::<Value>(&args.args)
        .with_context(|| format!("--args is not valid JSON: {}", args.args))?;
    let answer = client
        .post(
            &format!(
                "/v1/projections/{projection}/query/{}{}",
                encode_segment(name),
                version
                    .as_deref()
                    .map(|v| format!("?{v}"))
                    .unwrap_or_default()
            ),
            "application/json",
            args.args.as_bytes(),
        )?
        .into_ok()?;
    writeln!(out, "{}", serde_json::to_string_pretty(&answer["result"])?)?;
    Ok(ExitCode::SUCCESS)
}

fn read(args: ReadArgs) -> Result<ExitCode> {
    let client = args.server.client()?;
    let text = if args.request == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the request from stdin")?;
        text
    } else {
        args.request.clone()
    };
    let mut request: Value = serde_json::from_str(&text)
        .with_context(|| format!("the request is not JSON; give {{\"reads\": [...]}}: {text}"))?;
    if let Some(spec) = &args.min_offsets {
        projector::reads::parse_offsets(spec).context("--min-offsets")?;
        request["min_offsets"] = json!(spec);
    }
    if let Some(ms) = args.wait_ms {
        request["wait_ms"] = json!(ms);
    }
    let answer = client.post(
        "/v1/read",
        "application/json",
        serde_json::to_vec(&request)?.as_slice(),
    )?;
    if !answer.ok() {
        eprintln!("{}", answer.error_message());
        if let Some(reached) = answer.body.pointer("/error/reached") {
            eprintln!("reached: {reached}");
        }
        return Ok(ExitCode::from(1));
    }
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&answer.body)?
    )?;
    Ok(ExitCode::SUCCESS)
}

fn status(args: StatusArgs) -> Result<ExitCode> {
    let client = args.server.client()?;
    let listing = client.get_ok("/v1/projections")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let projections = listing["projections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rows: Vec<[String; 7]> = projections
        .iter()
        .map(|p| {
            [
                p["name"].as_str().unwrap_or_default().to_owned(),
                if p["stalled"] == Value::Bool(true) {
                    "stalled".to_owned()
                } else {
                    p["status"]["state"].as_str().unwrap_or_default().to_owned()
                },
                p["hash"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
                p["events_applied"].to_string(),
                p["lag"].to_string(),
                p["keys"].to_string(),
                p["sources"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME", "STATUS", "VERSION", "EVENTS", "LAG", "KEYS", "SOURCES",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&header))?;
    for (row, p) in rows.iter().zip(&projections) {
        writeln!(out, "{}", line(&row.each_ref().map(String::as_str)))?;
        if let Some(status) = p["status"].as_object()
            && status.get("state").and_then(Value::as_str) == Some("failed")
        {
            let at = match (
                status.get("source"),
                status.get("partition"),
                status.get("offset"),
            ) {
                (Some(Value::String(s)), Some(p), Some(o)) => format!(" at {s}/{p}@{o}"),
                _ => String::new(),
            };
            writeln!(
                out,
                "  failed{at}: {}",
                status
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )?;
            writeln!(
                out,
                "  `projector resume {0}` runs it again once the cause is fixed; `projector resume {0} --skip --reason TEXT` passes over the event",
                p["name"].as_str().unwrap_or_default()
            )?;
        }
        if p["stalled"] == Value::Bool(true) {
            writeln!(
                out,
                "  stalled: {} events of lag and nothing applied for {:.0} s (stall_after_ms)",
                p["lag"],
                p["seconds_since_progress"].as_f64().unwrap_or_default()
            )?;
        }
        if p["status"]["state"] == "paused" {
            writeln!(
                out,
                "  paused: {}",
                p["status"]["reason"].as_str().unwrap_or_default()
            )?;
        }
        if let Some(note) = units_note(p) {
            writeln!(out, "  {note}")?;
        }
        if let Some(note) = failures_note(p) {
            writeln!(out, "  {note}")?;
        }
        for note in source_notes(&p["source"]) {
            writeln!(out, "  {note}")?;
        }
        if let Some(building) = p.get("building") {
            writeln!(out, "  {}", building_note(building))?;
        }
    }
    if projections.is_empty() {
        writeln!(
            out,
            "(no projections: put .wasm modules in the modules folder)"
        )?;
    }
    for rejected in listing["rejected"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "rejected {}: {}",
            rejected["file"].as_str().unwrap_or_default(),
            rejected["error"].as_str().unwrap_or_default()
        )?;
    }
    // In a group: who holds what (404 without a group).
    let cluster = client.get("/v1/cluster")?;
    if cluster.ok() {
        for line in group_lines(&cluster.body) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The group this instance is in, as `GET /v1/cluster` tells it: the
/// members with their slots, and where each projection (or unit) is folded.
fn group_lines(cluster: &Value) -> Vec<String> {
    let list = |value: &Value| -> String {
        let items: Vec<String> = value
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let members = cluster["members"].as_array().cloned().unwrap_or_default();
    let mut lines = vec![format!(
        "group {}: {} slots, {} members, this instance {} holds slots {} ({} rebalances)",
        cluster["group"].as_str().unwrap_or_default(),
        cluster["slots"],
        members.iter().filter(|m| m["alive"] == true).count(),
        cluster["me"].as_str().unwrap_or_default(),
        list(&cluster["held"]),
        cluster["rebalances"],
    )];
    for member in &members {
        lines.push(format!(
            "  member {}{}: slots {}{}",
            member["url"].as_str().unwrap_or_default(),
            if member["me"] == true {
                " (this one)"
            } else {
                ""
            },
            list(&member["slots"]),
            if member["alive"] == true {
                String::new()
            } else {
                format!(", not seen for {} ms", member["seen_ms_ago"])
            }
        ));
    }
    for projection in cluster["projections"].as_array().into_iter().flatten() {
        let units = projection["units"].as_array().cloned().unwrap_or_default();
        if units.is_empty() {
            continue;
        }
        let active = |unit: &Value| -> String {
            let on = unit["active"].as_str().unwrap_or("no instance yet");
            let standbys: Vec<&str> = unit["standbys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if standbys.is_empty() {
                on.to_owned()
            } else {
                format!("{on} (standby on {})", standbys.join(", "))
            }
        };
        let placed = if projection["partitioned"] == true {
            units
                .iter()
                .map(|u| format!("unit {} on {}", u["unit"], active(u)))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!("on {}", active(&units[0]))
        };
        lines.push(format!(
            "  {}: {placed}",
            projection["name"].as_str().unwrap_or_default()
        ));
    }
    lines
}

/// A partitioned projection's units, one line: `4 units (partition p of
/// each topic): 0 running 512 events, 1 failed 20 events, ...`.
fn units_note(projection: &Value) -> Option<String> {
    let units = projection["units"].as_array()?;
    let each: Vec<String> = units
        .iter()
        .map(|u| {
            format!(
                "{} {} {} events lag {}",
                u["unit"],
                u["status"]["state"].as_str().unwrap_or_default(),
                u["events_applied"],
                u["lag"]
            )
        })
        .collect();
    Some(format!(
        "{} units (partition p of each topic): {}",
        units.len(),
        each.join(", ")
    ))
}

/// A shadow build's progress, one line.
fn building_note(building: &Value) -> String {
    let hash: String = building["hash"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let progress = &building["progress"];
    let done = progress["events_done"].as_u64().unwrap_or_default();
    let total = progress["events_total"].as_u64().unwrap_or_default();
    let rate = progress["events_per_second"].as_f64().unwrap_or_default();
    let eta = progress["eta_seconds"]
        .as_f64()
        .map_or_else(|| "unknown".to_owned(), |s| format!("{s:.0}s"));
    let state = building["status"]["state"].as_str().unwrap_or_default();
    format!("building {hash} ({state}): {done}/{total} events, {rate:.0} events/s, ETA {eta}")
}

fn snapshot(command: SnapshotCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let (client, answer) = match &command {
        SnapshotCommand::List { projection, server } => {
            let client = server.client()?;
            let answer = client.get(&format!(
                "/v1/projections/{}/snapshots",
                encode_segment(projection)
            ))?;
            (client, answer)
        }
        SnapshotCommand::Create { projection, server } => {
            let client = server.client()?;
            let answer = client.post(
                &format!("/v1/projections/{}/snapshots", encode_segment(projection)),
                "application/json",
                b"{}",
            )?;
            (client, answer)
        }
        SnapshotCommand::Restore {
            projection,
            snapshot,
            server,
        } => {
            let client = server.client()?;
            let answer = client.post(
                &format!(
                    "/v1/projections/{}/snapshots/{}/restore",
                    encode_segment(projection),
                    encode_segment(snapshot)
                ),
                "application/json",
                b"{}",
            )?;
            (client, answer)
        }
        SnapshotCommand::Export {
            projection,
            snapshot,
            file,
            server,
        } => {
            let client = server.client()?;
            let bytes = client.get_bytes(&format!(
                "/v1/projections/{}/snapshots/{}",
                encode_segment(projection),
                encode_segment(snapshot)
            ))?;
            std::fs::write(file, &bytes).with_context(|| format!("writing {}", file.display()))?;
            writeln!(out, "wrote {} ({} bytes)", file.display(), bytes.len())?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    drop(client);
    let answer = answer.into_ok()?;
    match command {
        SnapshotCommand::List { .. } => {
            for snap in answer["snapshots"].as_array().into_iter().flatten() {
                if snap["valid"] == Value::Bool(true) {
                    writeln!(
                        out,
                        "{}  version {}  {} events  {} keys  {} bytes",
                        snap["file"].as_str().unwrap_or_default(),
                        snap["hash"]
                            .as_str()
                            .unwrap_or_default()
                            .chars()
                            .take(12)
                            .collect::<String>(),
                        snap["events_applied"],
                        snap["keys"],
                        snap["size_bytes"]
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}  INVALID: {}",
                        snap["file"].as_str().unwrap_or_default(),
                        snap["reason"].as_str().unwrap_or_default()
                    )?;
                }
            }
        }
        SnapshotCommand::Create { .. } => {
            // A partitioned projection answers one snapshot per unit.
            let written = match answer["units"].as_array() {
                Some(units) => units.clone(),
                None => vec![answer],
            };
            for snap in written {
                let unit = snap["unit"]
                    .as_u64()
                    .map(|unit| format!("unit {unit}: "))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{unit}snapshot {} written ({} events, {} keys, {} bytes)",
                    snap["file"].as_str().unwrap_or_default(),
                    snap["events_applied"],
                    snap["keys"],
                    snap["size_bytes"]
                )?;
            }
        }
        _ => writeln!(
            out,
            "restoring in the shadow as {}; `projector status` shows progress",
            answer["building"].as_str().unwrap_or("?")
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let client = args.server.client()?;
    let answer = client.post_action(&args.projection, "replay", &json!({}))?;
    println!(
        "rebuilding {} in the shadow as {}; `projector status` shows progress",
        args.projection,
        answer["building"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

fn resume(args: ResumeArgs) -> Result<ExitCode> {
    let client = args.server.client()?;
    let body = json!({ "skip": args.skip, "reason": args.reason });
    let answer = client.post_action(&args.projection, "resume", &body)?;
    let skipped = &answer["skipped"];
    if skipped.is_null() {
        println!(
            "{} resumed: running the failed event again; `projector status` shows whether it passes",
            args.projection
        );
    } else {
        println!(
            "{} resumed: {}/{}@{} recorded as skipped ({}); `projector dead-letters list {} --kind skipped` shows it",
            args.projection,
            skipped["source"].as_str().unwrap_or_default(),
            skipped["partition"],
            skipped["offset"],
            skipped["reason"].as_str().unwrap_or_default(),
            args.projection
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Failed events the error policy kept, and the newest one, if any.
fn failures_note(projection: &Value) -> Option<String> {
    let counts = &projection["failures"];
    let count = |k: &str| counts[k].as_u64().unwrap_or(0);
    let (dead, parked, skipped) = (count("dead_letters"), count("parked"), count("skipped"));
    if dead + parked + skipped == 0 {
        return None;
    }
    let last = &projection["last_failure"];
    Some(format!(
        "{} policy kept {dead} dead letters, {parked} parked, {skipped} skipped; last at {}/{}@{}: {} (`projector dead-letters list {}`)",
        projection["error_policy"].as_str().unwrap_or_default(),
        last["source"].as_str().unwrap_or_default(),
        last["partition"],
        last["offset"],
        last["error"].as_str().unwrap_or_default(),
        projection["name"].as_str().unwrap_or_default()
    ))
}

/// What status says about a projection's source when it is not simply ok.
fn source_notes(source: &Value) -> Vec<String> {
    let kind = source["kind"].as_str().unwrap_or("source");
    let health = &source["health"];
    let mut notes = Vec::new();
    match health["state"].as_str() {
        Some("unavailable") => {
            let since = health["since"].as_u64().unwrap_or_default();
            let ago = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |now| now.as_secs().saturating_sub(since));
            notes.push(format!(
                "{kind} source unavailable since {ago}s ago: {}",
                health["error"].as_str().unwrap_or_default()
            ));
        }
        Some("waiting_for_topics") => {
            let topics: Vec<&str> = health["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            notes.push(format!("waiting for topic {}", topics.join(", ")));
        }
        _ => {}
    }
    for warning in source["warnings"].as_array().into_iter().flatten() {
        notes.push(format!("warning: {}", warning.as_str().unwrap_or_default()));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_problems_are_spelled_out() {
        let notes = source_notes(&json!({
            "kind": "kafka",
            "health": {"state": "waiting_for_topics", "topics": ["a", "b"]},
            "warnings": ["history incomplete: a/0"],
        }));
        assert_eq!(
            notes,
            ["waiting for topic a, b", "warning: history incomplete: a/0"]
        );
        let notes = source_notes(&json!({
            "kind": "kafka",
            "health": {"state": "unavailable", "since": 0, "error": "metadata request failed"},
            "warnings": [],
        }));
        assert!(
            notes[0].starts_with("kafka source unavailable since"),
            "{notes:?}"
        );
        assert!(
            source_notes(&json!({"kind": "embedded", "health": {"state": "ok"}, "warnings": []}))
                .is_empty()
        );
    }

    #[test]
    fn chunks_keep_whole_lines_and_their_numbers() {
        let text = b"a\nbb\nccc\ndddd\n";
        let parts = chunks(text, 4);
        let joined: Vec<u8> = parts.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        assert_eq!(joined, text);
        assert!(parts.iter().all(|(_, c)| c.ends_with(b"\n")));
        assert_eq!(parts[0].0, 1);
        assert_eq!(parts.last().unwrap().0, 4);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn default_listen_matches_the_server_default() {
        assert!(DEFAULT_SERVER.ends_with(projector::config::DEFAULT_LISTEN));
    }
}
