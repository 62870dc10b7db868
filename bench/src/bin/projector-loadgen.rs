//! The load generator of scenario C, a process of its own so its CPU and
//! scheduling are not the measured server's: `GET
//! /v1/projections/{name}/state/customer%2Fc<k>` at a fixed rate, open
//! loop, over keep-alive connections, each request's latency taken from the
//! moment it was due (so a stall counts for every request it delayed: no
//! coordinated omission). Prints one JSON object on stdout: counts, errors
//! by kind, and exact percentiles from the sorted samples of the measuring
//! window (after the warm-up).
//!
//! `projector-loadgen --addr 127.0.0.1:7878 --projection order-totals
//! --customers 10000 --rate 5000 --warmup-secs 1 --secs 10 --connections 8`

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    addr: String,
    #[arg(long)]
    projection: String,
    /// Keys are `customer/c<k>` for k uniformly in 0..customers.
    #[arg(long)]
    customers: u64,
    /// Requests per second, all connections together.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Requests sent but not recorded first (connections, caches).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Keep-alive connections, one thread each; request i goes on
    /// connection i mod connections.
    #[arg(long, default_value_t = 8)]
    connections: u64,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Latency from due time to the end of the answer, ns, measuring
    /// window only.
    latencies: Vec<u64>,
    /// How late a request was sent after its due time (timer overshoot, or
    /// waiting for the previous answer on this connection), ns.
    send_late: Vec<u64>,
    errors: BTreeMap<String, u64>,
    sent: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let total = ((args.warmup_secs + args.secs) * args.rate as f64) as u64;
    let warmup = (args.warmup_secs * args.rate as f64) as u64;
    let interval_ns = 1e9 / args.rate as f64;
    // Connect everything before the clock starts.
    let mut connections = Vec::new();
    for _ in 0..args.connections {
        connections.push(Connection::open(&args.addr)?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let start_unix = unix_ms(SystemTime::now()) + 50.0;
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = connections
            .into_iter()
            .enumerate()
            .map(|(lane, connection)| {
                let args = &args;
                scope.spawn(move || {
                    run_lane(
                        args,
                        connection,
                        lane as u64,
                        start,
                        interval_ns,
                        warmup,
                        total,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let finished = start.elapsed().as_secs_f64();

    let mut latencies = Vec::new();
    let mut send_late = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut sent = 0;
    for tally in tallies {
        latencies.extend(tally.latencies);
        send_late.extend(tally.send_late);
        sent += tally.sent;
        for (kind, n) in tally.errors {
            *errors.entry(kind).or_default() += n;
        }
    }
    latencies.sort_unstable();
    send_late.sort_unstable();
    let error_count: u64 = errors.values().sum();
    let us = |sorted: &[u64], q: f64| percentile(sorted, q) as f64 / 1e3;
    let out = serde_json::json!({
        "rate": args.rate,
        "connections": args.connections,
        "sent": sent,
        "expected": total,
        "measured": latencies.len(),
        "errors": error_count,
        "errors_by_kind": errors,
        "window_start_unix_ms": start_unix + args.warmup_secs * 1e3,
        "window_end_unix_ms": start_unix + (args.warmup_secs + args.secs) * 1e3,
        "elapsed_secs": finished,
        "p50_us": us(&latencies, 0.50),
        "p90_us": us(&latencies, 0.90),
        "p99_us": us(&latencies, 0.99),
        "p999_us": us(&latencies, 0.999),
        "max_us": latencies.last().copied().unwrap_or_default() as f64 / 1e3,
        "send_late_p50_us": us(&send_late, 0.50),
        "send_late_p99_us": us(&send_late, 0.99),
    });
    println!("{out}");
    Ok(())
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run_lane(
    args: &Args,
    mut connection: Connection,
    lane: u64,
    start: Instant,
    interval_ns: f64,
    warmup: u64,
    total: u64,
) -> Tally {
    let mut tally = Tally::default();
    // A per-lane xorshift: reproducible keys, no shared state.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (lane + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut i = lane;
    while i < total {
        let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let sent_at = Instant::now();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = rng % args.customers;
        let path = format!(
            "/v1/projections/{}/state/customer%2Fc{key}",
            args.projection
        );
        let outcome = connection.get(&path);
        let done = Instant::now();
        tally.sent += 1;
        if i >= warmup {
            tally.latencies.push((done - due).as_nanos() as u64);
            tally
                .send_late
                .push(sent_at.saturating_duration_since(due).as_nanos() as u64);
        }
        match outcome {
            Ok(200) => {}
            Ok(status) => *tally.errors.entry(format!("status {status}")).or_default() += 1,
            Err(e) => {
                *tally.errors.entry(format!("io: {e:#}")).or_default() += 1;
                // Reconnect; if that fails too, the next request counts it.
                if let Ok(fresh) = Connection::open(&args.addr) {
                    connection = fresh;
                }
            }
        }
        i += args.connections;
    }
    tally
}

/// One keep-alive HTTP/1.1 connection: just enough client to send a GET
/// and read a `content-length` answer, with no allocation per request
/// beyond the path.
struct Connection {
    host: String,
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    fn open(addr: &str) -> Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            host: addr.to_owned(),
            reader: BufReader::new(stream),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// The status of `GET path`; the body is read and dropped.
    fn get(&mut self, path: &str) -> Result<u16> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.reader.get_mut().write_all(request.as_bytes())?;
        self.line.clear();
        self.reader.read_line(&mut self.line)?;
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = None;
        let mut close = false;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line)? == 0 {
                bail!("connection closed in the headers");
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                close = true;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("chunked answers are not supported by this load generator");
            }
        }
        let length = length.context("answer without content-length")?;
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body)?;
        if close {
            bail!("server closed the connection (status {status})");
        }
        Ok(status)
    }
}
