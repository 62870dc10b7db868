//! The HTTP API against hostile clients: oversized and deep bodies, paths
//! that are not UTF-8, unknown routes, slow clients, a flood of
//! connections, and mutating requests without the admin token. The server
//! must answer each with its JSON error (never a 5xx or a crash), keep
//! serving everyone else, and keep its memory and sockets bounded.
//!
//! Every wait is on a condition (a socket closing, a task ending); timeouts
//! only bound how long a broken build hangs.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Server;
use projector_test_guests::ORDER_TOTALS;
use serde_json::Value;

/// Bounds every wait; reaching it means the test failed.
const PATIENCE: Duration = Duration::from_secs(120);

const EVENT: &str = r#"{"type":"OrderPlaced","order_id":"o1","customer":"alice","amount_cents":5}"#;

fn addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// A raw HTTP answer.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Value,
}

fn parse_raw(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete HTTP answer in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let body = match length {
        Some(n) => &rest.as_bytes()[..n.min(rest.len())],
        None => rest.as_bytes(),
    };
    Raw {
        status,
        head: head.to_owned(),
        body: serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
    }
}

/// Reads until the server closes the connection (end of file or reset).
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!(
                "the server did not close the connection ({e}); read so far: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
}

/// Sends `head` then `body` from a second thread while this one reads the
/// answer, as a server that answers before it has read everything (413)
/// must still be heard. The head should ask for `Connection: close`.
fn exchange(addr: SocketAddr, head: String, body: Vec<u8>) -> Raw {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let bytes = read_until_closed(&mut stream);
    // Unblocks the sender if the server stopped reading.
    let _ = stream.shutdown(Shutdown::Both);
    sender.join().unwrap();
    parse_raw(&bytes)
}

fn assert_error(reply: &Raw, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.body["error"]["code"], code, "{reply:?}");
    assert!(
        !reply.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{reply:?}"
    );
}

fn assert_json_error(reply: &common::Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    assert!(reply.body["error"]["message"].is_string(), "{}", reply.body);
}

fn assert_healthy(server: &Server) {
    let reply = server.get("/v1/health");
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn topics(server: &Server) -> Value {
    server.get("/v1/topics").body
}

/// A server with order-totals and `toml` as its configuration file.
fn server_with_config(toml: &str, args: &[&str]) -> Server {
    let server = Server::with_modules(&[ORDER_TOTALS]);
    let config = server.dir.path().join("projector.toml");
    std::fs::write(&config, toml).unwrap();
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    server.args(&all).start()
}

#[test]
fn oversized_bodies_get_413_and_the_server_goes_on() {
    let server = server_with_config("max_request_bytes = 65536\n", &[]);
    let addr = addr(&server);
    let line = format!("{EVENT}\n");
    let body = line.repeat((1 << 20) / line.len()).into_bytes();

    for path in [
        "/v1/topics/orders/events",
        "/v1/projections/order-totals/query/top-customers",
    ] {
        // With a Content-Length.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        assert_error(&exchange(addr, head, body.clone()), 413, "body_too_large");

        // Chunked, without a Content-Length: the limit holds all the same.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        let mut chunked = Vec::new();
        for chunk in body.chunks(16 << 10) {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert_error(&exchange(addr, head, chunked), 413, "body_too_large");
        assert_healthy(&server);
    }
    assert_eq!(
        topics(&server)["topics"],
        serde_json::json!([]),
        "nothing appended"
    );

    // Just under the limit is fine.
    let small = line.repeat(60_000 / line.len());
    let reply = server.post(
        "/v1/topics/orders/events",
        "application/x-ndjson",
        small.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn deep_json_is_a_400_not_a_stack_overflow() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let depth = 100_000;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_object = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let unclosed = "[".repeat(depth);

    for body in [&deep, &deep_object, &unclosed] {
        for content_type in ["application/x-ndjson", "application/json"] {
            let reply = server.post("/v1/topics/orders/events", content_type, body.as_bytes());
            assert_json_error(&reply, 400, "malformed_event");
        }
        let envelope = format!("{{\"key\": \"k\", \"payload\": {body}}}");
        let reply = server.post(
            "/v1/topics/orders/events?format=envelope",
            "application/x-ndjson",
            envelope.as_bytes(),
        );
        assert_json_error(&reply, 400, "malformed_event");
        let reply = server.post(
            "/v1/topics/orders/events?format=envelope&key_field=a",
            "application/x-ndjson",
            envelope.as_bytes(),
        );
        assert_json_error(&reply, 400, "malformed_event");
        let reply = server.post(
            "/v1/projections/order-totals/query/top-customers",
            "application/json",
            body.as_bytes(),
        );
        assert_json_error(&reply, 400, "bad_query_args");
        let reply = server.post("/v1/topics/orders", "application/json", body.as_bytes());
        assert_json_error(&reply, 400, "bad_body");
        assert_healthy(&server);
    }
    assert_eq!(
        topics(&server)["topics"],
        serde_json::json!([]),
        "nothing appended"
    );
}

#[test]
fn paths_that_are_not_utf8_and_unknown_routes_get_json_errors() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    assert_eq!(
        server
            .post(
                "/v1/topics/orders/events",
                "application/x-ndjson",
                EVENT.as_bytes()
            )
            .status,
        200
    );
    server.wait_caught_up("order-totals");

    // Keys are bytes: %FF%FE is looked up as those two bytes.
    let reply = server.get("/v1/projections/order-totals/state/%FF%FE");
    assert_json_error(&reply, 404, "key_not_found");
    let reply = server.get("/v1/projections/order-totals/state/customer%2F%FF");
    assert_json_error(&reply, 404, "key_not_found");
    // Names are text.
    let reply = server.get("/v1/projections/%FF%FE/state/k");
    assert_json_error(&reply, 400, "bad_projection_name");
    let reply = server.get("/v1/projections/%FF%FE");
    assert_json_error(&reply, 400, "bad_request");
    let reply = server.get("/v1/projections/%FF%FE/snapshots");
    assert_json_error(&reply, 400, "bad_request");
    let reply = server.post(
        "/v1/topics/%FF/events",
        "application/x-ndjson",
        EVENT.as_bytes(),
    );
    assert_json_error(&reply, 400, "bad_request");
    let reply = server.post(
        "/v1/projections/order-totals/query/%C3%28",
        "application/json",
        b"{}",
    );
    assert_json_error(&reply, 400, "bad_request");
    // Query parameters are text: an invalid sequence reads as U+FFFD.
    let reply = server.get("/v1/projections/order-totals/state?prefix=%FF");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["items"], serde_json::json!([]));
    let reply = server.get("/v1/projections/order-totals/state?limit=%FF");
    assert_json_error(&reply, 400, "bad_query_string");

    assert_json_error(&server.get("/v1/nope"), 404, "unknown_route");
    assert_json_error(&server.get("/nope"), 404, "unknown_route");
    // `/` is the dashboard.
    assert_eq!(server.get("/").status, 200);
    let reply = exchange(
        addr(&server),
        "GET /v1/projections/order-totals/state/a/../../../../etc/passwd HTTP/1.1\r\n\
         host: x\r\nconnection: close\r\n\r\n"
            .into(),
        Vec::new(),
    );
    assert_error(&reply, 404, "key_not_found");
    assert_json_error(
        &server.post("/v1/health", "application/json", b"{}"),
        405,
        "method_not_allowed",
    );
    let reply = exchange(
        addr(&server),
        "DELETE /v1/topics/orders/events HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
        Vec::new(),
    );
    assert_error(&reply, 405, "method_not_allowed");
    let reply = exchange(
        addr(&server),
        "GET /v1/projections/order-totals/state/%FF HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            .into(),
        Vec::new(),
    );
    assert_error(&reply, 404, "key_not_found");
    assert_healthy(&server);
}

/// Waits until the server closes `stream`, asserting it sent nothing
/// (a request head that never completed gets no answer).
fn wait_disconnected(stream: &mut TcpStream) {
    let bytes = read_until_closed(stream);
    assert!(
        bytes.is_empty(),
        "unexpected answer: {}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    let mut server = Server::with_modules(&[ORDER_TOTALS])
        .args(&[
            "--header-read-timeout-ms",
            "1000",
            "--request-timeout-ms",
            "1000",
            "--max-connections",
            "64",
        ])
        .start();
    let addr = addr(&server);

    // Slowloris: half a request line, then nothing, on many connections.
    let mut stalled: Vec<TcpStream> = (0..32)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET /v1/hea").unwrap();
            stream
        })
        .collect();
    // An idle connection that never says anything.
    let mut silent = TcpStream::connect(addr).unwrap();
    // A body that stops half-way.
    let mut slow_body = TcpStream::connect(addr).unwrap();
    slow_body
        .write_all(
            b"POST /v1/topics/orders/events HTTP/1.1\r\nhost: x\r\n\
              content-type: application/x-ndjson\r\ncontent-length: 1000\r\n\r\n{\"type\":",
        )
        .unwrap();
    // Meanwhile everyone else is served.
    for _ in 0..20 {
        assert_healthy(&server);
        assert_eq!(server.get("/v1/projections/order-totals").status, 200);
    }
    for stream in &mut stalled {
        wait_disconnected(stream);
    }
    wait_disconnected(&mut silent);
    let reply = parse_raw(&read_until_closed(&mut slow_body));
    assert_error(&reply, 408, "request_timeout");
    assert!(
        reply
            .head
            .to_ascii_lowercase()
            .contains("connection: close")
    );

    // A keep-alive connection left idle after its answer is closed too.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let bytes = read_until_closed(&mut idle);
    assert_eq!(parse_raw(&bytes).status, 200);
    assert_eq!(topics(&server)["topics"], serde_json::json!([]));

    // Shutdown still completes with a stalled client connected.
    let mut last = TcpStream::connect(addr).unwrap();
    last.write_all(b"GET /v1/hea").unwrap();
    server.stop();
    let _ = read_until_closed(&mut last);
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64)
}

/// Lets this process open `wanted` files at once.
fn raise_open_files(wanted: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c >= wanted) || limit.current.is_none() {
        return;
    }
    // Raising the hard limit too works for root.
    let maximum = limit.maximum.map(|max| max.max(wanted));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum,
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "this test opens {wanted} sockets; the open-files limit is {limit:?} and cannot be raised: {e}"
        )
    });
}

/// One flood client: a health request read to its end, or (`stall`) half a
/// request line, then waiting to be closed. (A stalled client sends some
/// bytes: a connection the kernel dropped from a full accept queue then
/// gets retransmitted into the server or reset, where a client that sent
/// nothing would wait forever.)
async fn flood_client(addr: SocketAddr, stall: bool) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut request: &[u8] = if stall {
        b"GET /v1/hea"
    } else {
        b"GET /v1/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    };
    {
        while !request.is_empty() {
            stream.writable().await.map_err(|e| e.to_string())?;
            match stream.try_write(request) {
                Ok(n) => request = &request[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream.readable().await.map_err(|e| e.to_string())?;
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if stall && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    match (stall, answer.starts_with(b"HTTP/1.1 200")) {
        (true, _) if answer.is_empty() => Ok(()),
        (false, true) => Ok(()),
        _ => Err(format!("answer: {:?}", String::from_utf8_lossy(&answer))),
    }
}

#[test]
fn ten_thousand_connections_stay_bounded() {
    const CONNECTIONS: usize = 10_000;
    const MAX_CONNECTIONS: u64 = 256;
    raise_open_files(CONNECTIONS as u64 + 512);
    let mut server = Server::with_modules(&[ORDER_TOTALS])
        .args(&[
            "--max-connections",
            &MAX_CONNECTIONS.to_string(),
            "--header-read-timeout-ms",
            "1000",
        ])
        .start();
    let addr = addr(&server);
    let pid = server.pid().unwrap();
    assert_healthy(&server);
    let base_rss = proc_status_kib(pid, "VmRSS:");
    let base_files = open_files(pid);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut rss, mut files) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                rss = rss.max(proc_status_kib(pid, "VmRSS:"));
                files = files.max(open_files(pid));
                std::thread::sleep(Duration::from_millis(5));
            }
            (rss, files)
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let outcomes = runtime.block_on(async {
        // Every client at once; one in ten stalls and must be closed by
        // the server's header-read timeout.
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|i| tokio::spawn(flood_client(addr, i % 10 == 0)))
            .collect();
        let mut outcomes = Vec::with_capacity(CONNECTIONS);
        for client in clients {
            let outcome = tokio::time::timeout(PATIENCE, client)
                .await
                .expect("a flood client did not finish in time")
                .unwrap();
            outcomes.push(outcome);
        }
        outcomes
    });
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (max_rss, max_files) = sampler.join().unwrap();
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {CONNECTIONS} clients failed, e.g. {:?}\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        server.log()
    );

    // The server answers a fresh connection afterwards, and its sockets
    // and memory stayed bounded meanwhile.
    assert_healthy(&server);
    eprintln!(
        "flood of {CONNECTIONS} took {took:?}: RSS {base_rss} -> max {max_rss} KiB, \
         open files {base_files} -> max {max_files}"
    );
    assert!(
        max_files <= base_files + MAX_CONNECTIONS + 16,
        "open files grew from {base_files} to {max_files} with max_connections {MAX_CONNECTIONS}"
    );
    assert!(
        max_rss < base_rss + 200 * 1024,
        "RSS grew from {base_rss} KiB to {max_rss} KiB"
    );
    server.stop();
}

fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let url = format!("{}{path}", server.url);
    let agent = common::agent();
    let response = match method {
        "GET" => {
            let mut request = agent.get(&url);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            request.call()
        }
        _ => {
            let mut request = agent.post(&url).header("content-type", "application/json");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            request.send(body)
        }
    };
    let mut response = response.expect("server reachable");
    let status = response.status().as_u16();
    let bytes = response.body_mut().read_to_vec().unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn cli(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_projector"));
    command
        .args(args)
        .env("PROJECTOR_SERVER", &server.url)
        .env_remove("PROJECTOR_API_TOKEN")
        .env_remove("PROJECTOR_API_TOKEN_FILE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn mutating_routes_need_the_admin_token() {
    const TOKEN: &str = "s3cret-token-0123456789";
    let server = Server::with_modules(&[ORDER_TOTALS])
        .args(&["--api-token", TOKEN])
        .start();
    let append = "/v1/topics/orders/events";

    let (status, body) = send(&server, "POST", append, None, EVENT.as_bytes());
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "missing_token", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--api-token") && message.contains("PROJECTOR_API_TOKEN"),
        "{message}"
    );
    let (status, body) = send(&server, "POST", append, Some("wrong"), EVENT.as_bytes());
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "bad_token", "{body}");
    let (status, body) = send(
        &server,
        "POST",
        append,
        Some(&format!("{TOKEN}x")),
        EVENT.as_bytes(),
    );
    assert_eq!((status, &body["error"]["code"]), (401, &"bad_token".into()));
    assert_eq!(topics(&server)["topics"], serde_json::json!([]));
    let (status, body) = send(&server, "POST", append, Some(TOKEN), EVENT.as_bytes());
    assert_eq!(status, 200, "{body}");
    server.wait_caught_up("order-totals");

    // Every other mutating route, known projection or not: 401 before
    // anything else is looked at.
    for path in [
        "/v1/topics/other",
        "/v1/projections/order-totals/replay",
        "/v1/projections/order-totals/snapshots",
        "/v1/projections/order-totals/snapshots/none.snap/restore",
        "/v1/projections/nope/replay",
        "/v1/projections/order-totals/resume",
        "/v1/projections/order-totals/dead-letters/retry",
        "/v1/projections/order-totals/dead-letters/purge",
    ] {
        let (status, body) = send(&server, "POST", path, None, b"{\"partitions\": 1}");
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"]["code"], "missing_token", "{path}: {body}");
    }

    // Reads stay open, queries included.
    for path in [
        "/v1/health",
        "/v1/projections",
        "/v1/projections/order-totals",
        "/v1/projections/order-totals/state/customer%2Falice",
        "/v1/projections/order-totals/state?prefix=customer/",
        "/v1/projections/order-totals/snapshots",
        "/v1/topics",
    ] {
        let (status, body) = send(&server, "GET", path, None, b"");
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = send(
        &server,
        "POST",
        "/v1/projections/order-totals/query/top-customers",
        None,
        b"{\"n\": 1}",
    );
    assert_eq!(status, 200, "{body}");

    // The CLI sends the token from --api-token or PROJECTOR_API_TOKEN.
    let events = common::events_file("orders.jsonl");
    let events = events.to_str().unwrap();
    let refused = cli(&server, &["publish", "orders", events], &[]);
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused).contains("--api-token"),
        "{}",
        common::stderr(&refused)
    );
    let published = cli(
        &server,
        &["publish", "orders", events],
        &[("PROJECTOR_API_TOKEN", TOKEN)],
    );
    assert!(published.status.success(), "{}", common::stderr(&published));
    let token_file = server.dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let snapshot = cli(
        &server,
        &[
            "snapshot",
            "create",
            "order-totals",
            "--api-token-file",
            token_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(snapshot.status.success(), "{}", common::stderr(&snapshot));
    let replay = cli(
        &server,
        &["replay", "order-totals", "--api-token", TOKEN],
        &[],
    );
    assert!(replay.status.success(), "{}", common::stderr(&replay));
    let status = cli(&server, &["status"], &[]);
    assert!(status.status.success(), "{}", common::stderr(&status));
}
