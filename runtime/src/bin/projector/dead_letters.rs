//! `projector dead-letters list|retry|purge NAME`: the events a
//! projection's error policy kept, re-driving them after a fix, and
//! removing skipped-event records.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::cli::ServerArg;
use crate::client::encode_segment;

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// Failed events kept by the error policy (dead-lettered, parked under
    /// a quarantined key, skipped), oldest first
    List {
        projection: String,
        /// Only `dead_letter`, `parked` or `skipped` records
        #[arg(long)]
        kind: Option<String>,
        /// Print the raw JSON answer
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Run the dead-lettered and parked events again on the serving
    /// version (after deploying a fix); events that fail again are kept
    Retry {
        projection: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove skipped-event records, oldest first (dead letters and parked
    /// events are kept: they are still to be applied)
    Purge {
        projection: String,
        /// Keep this many of the newest skipped records
        #[arg(long, default_value_t = 0)]
        keep: usize,
        #[command(flatten)]
        server: ServerArg,
    },
}

pub fn execute(command: DeadLetterCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        DeadLetterCommand::List {
            projection,
            kind,
            json,
            server,
        } => {
            let client = server.client()?;
            let mut after: Option<u64> = None;
            let mut all = Vec::new();
            let counts = loop {
                let mut path = format!(
                    "/v1/projections/{}/dead-letters?limit=1000",
                    encode_segment(&projection)
                );
                if let Some(kind) = &kind {
                    path.push_str(&format!("&kind={}", encode_segment(kind)));
                }
                if let Some(after) = after {
                    path.push_str(&format!("&after={after}"));
                }
                let answer = client.get(&path)?;
                if !answer.ok() {
                    eprintln!("{}", answer.error_message());
                    return Ok(ExitCode::from(1));
                }
                all.extend(
                    answer.body["records"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
                match answer.body["next_after"].as_u64() {
                    Some(next) => after = Some(next),
                    None => break answer.body["counts"].clone(),
                }
            };
            if json {
                let body = serde_json::json!({ "counts": counts, "records": all });
                writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{projection}: {} dead letters, {} parked, {} skipped",
                counts["dead_letters"], counts["parked"], counts["skipped"]
            )?;
            for record in &all {
                writeln!(
                    out,
                    "#{} {} {}/{}@{} key {} (version {}, {} attempt(s)): {}",
                    record["id"],
                    record["kind"].as_str().unwrap_or_default(),
                    record["source"].as_str().unwrap_or_default(),
                    record["partition"],
                    record["offset"],
                    record["key"],
                    record["module_hash"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .take(12)
                        .collect::<String>(),
                    record["attempts"],
                    record["error"].as_str().unwrap_or_default()
                )?;
                if let Some(reason) = record["reason"].as_str() {
                    writeln!(out, "    skipped by the operator: {reason}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterCommand::Purge {
            projection,
            keep,
            server,
        } => {
            let client = server.client()?;
            let body = serde_json::json!({ "keep": keep });
            let answer = client.post(
                &format!(
                    "/v1/projections/{}/dead-letters/purge",
                    encode_segment(&projection)
                ),
                "application/json",
                body.to_string().as_bytes(),
            )?;
            if !answer.ok() {
                eprintln!("{}", answer.error_message());
                return Ok(ExitCode::from(1));
            }
            writeln!(
                out,
                "{projection}: removed {} skipped records; {} skipped kept",
                answer.body["removed"], answer.body["remaining"]["skipped"]
            )?;
            Ok(ExitCode::SUCCESS)
        }
        DeadLetterCommand::Retry { projection, server } => {
            let client = server.client()?;
            let answer = client.post(
                &format!(
                    "/v1/projections/{}/dead-letters/retry",
                    encode_segment(&projection)
                ),
                "application/json",
                b"{}",
            )?;
            if !answer.ok() {
                eprintln!("{}", answer.error_message());
                return Ok(ExitCode::from(1));
            }
            let report = &answer.body["report"];
            let remaining = &answer.body["remaining"];
            writeln!(
                out,
                "{projection}: retried {}, applied {}, failed again {}, still parked {}; now {} dead letters, {} parked",
                report["retried"],
                report["applied"],
                report["failed"],
                report["still_parked"],
                remaining["dead_letters"],
                remaining["parked"]
            )?;
            Ok(if report["failed"].as_u64().unwrap_or(0) > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
