//! Test harness: runs the real `projector` binary on a temporary data and
//! modules folder, with modules built from `examples/` and `testing/guests/`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Upper bound for waiting on the server; tests wait for conditions, never
/// for a fixed time, so this only limits how long a broken build hangs.
pub const PATIENCE: Duration = Duration::from_secs(120);

pub fn events_file(name: &str) -> PathBuf {
    Path::new(projector_test_guests::EXAMPLE_EVENTS_DIR).join(name)
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub mod core_counter;
pub mod hostile;
pub mod kafka;
pub mod orders;
pub mod s3;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub url: String,
    child: Option<Child>,
    port: u16,
    extra_args: Vec<String>,
    extra_env: Vec<(String, String)>,
}

/// A server program the tests start: `$var` when set, else `relative` under
/// the workspace's `target/tools` (where its install script puts it);
/// panics with `missing` (which names the script) when there is none.
pub fn installed_tool(var: &str, relative: &str, missing: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let path = workspace.join("target/tools").join(relative);
    assert!(path.is_file(), "{missing}, or set {var}");
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A response: status, headers we care about, body as JSON (or a string).
pub struct Reply {
    pub status: u16,
    pub offsets_header: Option<String>,
    /// `projector-stale`: the answer read a standby copy.
    pub stale_header: Option<String>,
    pub body: Value,
    pub raw: Vec<u8>,
}

fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = response.expect("server reachable");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let offsets_header = header("projector-offsets");
    let stale_header = header("projector-stale");
    let raw = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let body = serde_json::from_slice(&raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
    Reply {
        status,
        offsets_header,
        stale_header,
        body,
        raw,
    }
}

impl Server {
    /// Starts a server with copies of `modules` (paths to .wasm files) in its
    /// modules folder. Extra files may be added with [`Server::add_module`]
    /// before [`Server::start`].
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("projections")).unwrap();
        let port = free_port();
        Self {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            child: None,
            port,
            extra_args: Vec::new(),
            extra_env: Vec::new(),
        }
    }

    /// Adds flags to `projector run`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets an environment variable of `projector run`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn with_modules(modules: &[&str]) -> Self {
        let server = Self::new();
        for module in modules {
            server.add_module(module);
        }
        server
    }

    pub fn add_module(&self, path: &str) {
        let name = Path::new(path).file_name().unwrap();
        std::fs::copy(path, self.modules_dir().join(name)).unwrap();
    }

    pub fn add_file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.modules_dir().join(name), bytes).unwrap();
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.dir.path().join("projections")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn start(mut self) -> Self {
        self.spawn();
        self
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_up();
    }

    /// Starts the process without waiting for it to answer (e.g. to kill it
    /// during start-up); [`Server::wait_up`] waits for it.
    pub fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        // Small batches by default so a test exercises many commits.
        let batch: &[&str] = if self.extra_args.iter().any(|a| a == "--batch-max-events") {
            &[]
        } else {
            &["--batch-max-events", "7"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_projector"))
            .args(["run", "--data"])
            .arg(self.data_dir())
            .arg("--modules")
            .arg(self.modules_dir())
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(batch)
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("PROJECTOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits until the launched process answers health checks; panics with
    /// its log if it exits first.
    pub fn wait_up(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("projector exited early ({status}):\n{}", self.log());
            }
            let up = agent()
                .get(format!("{}/v1/health", self.url))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Graceful stop (SIGTERM), waiting for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "projector exited with {status}:\n{}",
                self.log()
            );
        }
    }

    /// Abrupt stop (SIGKILL): nothing gets to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGKILL, returning how the process ended: killed by the signal, or
    /// (if it had already exited on its own) its exit status. `None` if
    /// no process was running.
    pub fn sigkill(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        Some(child.wait().unwrap())
    }

    /// Launches the process and waits for it to exit on its own, as a
    /// start-up that must fail does; panics if it keeps running.
    pub fn run_to_exit(&mut self) -> std::process::ExitStatus {
        self.launch();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("projector kept running:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn get(&self, path: &str) -> Reply {
        reply(agent().get(format!("{}{path}", self.url)).call())
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        reply(
            agent()
                .post(format!("{}{path}", self.url))
                .header("content-type", content_type)
                .send(body),
        )
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_projector"))
            .args(args)
            .env("PROJECTOR_SERVER", &self.url)
            .output()
            .unwrap()
    }

    pub fn projection(&self, name: &str) -> Value {
        let reply = self.get(&format!("/v1/projections/{name}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    }

    /// Waits until `check` holds for `name`'s listing, or it fails.
    pub fn wait_for(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_listing_of(name, what, true, check)
    }

    /// Waits until `check` holds for `name`'s listing, through a failed
    /// status too (one that a change is about to end).
    pub fn wait_through_failure(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_listing_of(name, what, false, check)
    }

    fn wait_for_listing_of(
        &self,
        name: &str,
        what: &str,
        stop_on_failure: bool,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let info = self.projection(name);
            if check(&info) {
                return info;
            }
            assert!(
                !stop_on_failure || info["status"]["state"] != "failed",
                "{name} failed while waiting for {what}: {info}"
            );
            assert!(
                Instant::now() < deadline,
                "{name}: gave up waiting for {what}: {info}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `check` holds for the whole listing.
    pub fn wait_for_listing(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let listing = self.get("/v1/projections").body;
            if check(&listing) {
                return listing;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}: {listing}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `name` has applied `count` events in all.
    /// A version restored from a snapshot has its events before its worker
    /// runs: the wait also ends its `starting` status, so what follows sees
    /// the worker's status, whatever the machine's speed.
    pub fn wait_applied(&self, name: &str, count: u64) -> Value {
        self.wait_for(name, &format!("{count} events applied"), |info| {
            info["events_applied"].as_u64() == Some(count) && info["status"]["state"] != "starting"
        })
    }

    /// Waits until `name` has applied everything up to each partition's
    /// head, or has failed; returns its listing.
    pub fn wait_caught_up(&self, name: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let info = self.projection(name);
            let state = info["status"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let partitions = info["partitions"].as_array().cloned().unwrap_or_default();
            if state == "failed"
                || (state == "running" && !partitions.is_empty() && info["lag"] == 0)
            {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not catch up: {info}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every key and value of a projection's state, as one JSON object.
    pub fn state(&self, name: &str) -> Value {
        self.try_state(name)
            .unwrap_or_else(|reply| panic!("{}", reply.body))
    }

    /// Every key and value of a projection's state, or the first page's
    /// answer that was not a 200.
    pub fn try_state(&self, name: &str) -> Result<Value, Reply> {
        let mut all = serde_json::Map::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/projections/{name}/state?limit=1000");
            if let Some(a) = &after {
                path.push_str(&format!("&start_after={}", percent(a)));
            }
            let reply = self.get(&path);
            if reply.status != 200 {
                return Err(reply);
            }
            for item in reply.body["items"].as_array().unwrap() {
                all.insert(
                    item["key"].as_str().unwrap().to_owned(),
                    item["value"].clone(),
                );
            }
            match reply.body["next_start_after"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => return Ok(Value::Object(all)),
            }
        }
    }
}

impl Server {
    /// Waits for the snapshot of `name` taken at `events_applied` events;
    /// its path under the data folder.
    pub fn wait_for_snapshot(&self, name: &str, events_applied: usize) -> PathBuf {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let listing = self.get(&format!("/v1/projections/{name}/snapshots")).body;
            let found = listing["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["valid"] == true && s["events_applied"] == events_applied as u64);
            if let Some(snapshot) = found {
                return self
                    .data_dir()
                    .join("snapshots")
                    .join(name)
                    .join(snapshot["hash"].as_str().unwrap())
                    .join(snapshot["file"].as_str().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "no snapshot at {events_applied} events: {listing}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Offsets as `topic:partition=next,...` (the form `min_offsets` and the
/// CLI's `--min-offsets` take) from their JSON form.
pub fn compact(offsets: &Value) -> String {
    let mut items = Vec::new();
    for (topic, parts) in offsets.as_object().unwrap() {
        for (partition, next) in parts.as_object().unwrap() {
            items.push(format!("{topic}:{partition}={next}"));
        }
    }
    items.join(",")
}
