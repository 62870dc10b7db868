//! The real `projector run` as a child process, for the scenarios that
//! measure the server itself (C, D, E): where its binary is, starting it on
//! a free port, reading its JSON API, its memory, and stopping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The `projector` binary: `$PROJECTOR_BIN`, else next to this bench's own
/// executable (the same cargo target dir).
pub fn projector_bin() -> Result<PathBuf> {
    let path = match std::env::var_os("PROJECTOR_BIN") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .context("locating projector-bench itself")?
            .with_file_name(format!("projector{}", std::env::consts::EXE_SUFFIX)),
    };
    if !path.is_file() {
        bail!(
            "the projector binary is not at {}: build it first with \
             `cargo build --release -p projector` (same CARGO_TARGET_DIR as the bench), \
             or set PROJECTOR_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// A sibling binary of this bench (built by `cargo build -p projector-bench`).
pub fn bench_bin(name: &str) -> Result<PathBuf> {
    let path = std::env::current_exe()
        .context("locating projector-bench itself")?
        .with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "{name} is not at {}: build it with `cargo build --release -p projector-bench`",
            path.display()
        );
    }
    Ok(path)
}

/// Prints which binary is used and how old it is: a stale build explains a
/// surprising number.
pub fn describe_bin(path: &Path) -> String {
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(
            || "age unknown".to_owned(),
            |age| format!("built {}s ago", age.as_secs()),
        );
    format!("{} ({age})", path.display())
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A running `projector run`; killed when dropped unless stopped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub url: String,
    log: PathBuf,
    agent: ureq::Agent,
}

impl Server {
    /// Spawns `projector run` over `data` and `modules` on a free port; its
    /// stderr goes to `log`. Does not wait for it to answer.
    pub fn launch(bin: &Path, data: &Path, modules: &Path, log: &Path) -> Result<Self> {
        Self::launch_with(bin, data, modules, log, |_| Vec::new(), "warn")
    }

    /// [`Server::launch`] with more flags (given the URL it will answer
    /// at) and a log level.
    pub fn launch_with(
        bin: &Path,
        data: &Path,
        modules: &Path,
        log: &Path,
        extra: impl FnOnce(&str) -> Vec<String>,
        log_level: &str,
    ) -> Result<Self> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new(bin)
            .arg("run")
            .arg("--data")
            .arg(data)
            .arg("--modules")
            .arg(modules)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra(&url))
            .env("PROJECTOR_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            child: Some(child),
            port,
            url,
            log: log.to_owned(),
            agent: agent(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails, with the end of its log, if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("projector exited ({status}):\n{}", self.log_tail());
        }
        Ok(())
    }

    /// Its whole log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// GET `path`: the status and the body.
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        let mut response = self.agent.get(format!("{}{path}", self.url)).call()?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()?;
        Ok((status, body))
    }

    /// GET `path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.get(path)?;
        if status != 200 {
            bail!(
                "GET {path}: {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// Whether `/v1/health` answers 200 (no error when it is not up yet).
    pub fn healthy(&self) -> bool {
        self.get("/v1/health")
            .is_ok_and(|(status, _)| status == 200)
    }

    /// Waits until the server answers health checks.
    pub fn wait_up(&mut self, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        while !self.healthy() {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "projector did not answer within {patience:?}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Waits until `check` holds for the listing of every projection in
    /// `names` (`GET /v1/projections/{name}`); fails if one fails.
    pub fn wait_all(
        &mut self,
        names: &[String],
        what: &str,
        patience: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + patience;
        for name in names {
            loop {
                self.check_alive()?;
                let info = self.get_json(&format!("/v1/projections/{name}"))?;
                if check(&info) {
                    break;
                }
                if info["status"]["state"] == "failed" {
                    bail!("{name} failed while waiting for {what}: {info}");
                }
                if Instant::now() > deadline {
                    bail!("{name}: gave up waiting for {what} after {patience:?}: {info}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Graceful stop (SIGTERM), waiting for the process to exit.
    pub fn stop(mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let status = child.wait()?;
            if !status.success() {
                bail!("projector exited with {status}:\n{}", self.log_tail());
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A field of `/proc/<pid>/status` in kB (`VmHWM`, `VmRSS`).
pub fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Total bytes of the files under `dir` (recursively).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Writes `count` sidecar-named copies of order-totals into `modules`
/// (`order-totals-0`, ...); returns their names. The copies are
/// byte-identical: one compiled module serves them all.
pub fn order_totals_copies(modules: &Path, count: usize) -> Result<Vec<String>> {
    write_copies(modules, count, false)
}

/// As [`order_totals_copies`], but each copy carries a custom section with
/// its own number: 10 distinct files (distinct hashes), so a cold start
/// compiles each of them, as it would 10 different projections.
pub fn distinct_order_totals(modules: &Path, count: usize) -> Result<Vec<String>> {
    write_copies(modules, count, true)
}

fn write_copies(modules: &Path, count: usize, distinct: bool) -> Result<Vec<String>> {
    std::fs::create_dir_all(modules)?;
    let module = std::fs::read(projector_test_guests::ORDER_TOTALS)?;
    let names: Vec<String> = (0..count).map(|i| format!("order-totals-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        std::fs::write(
            modules.join(format!("{name}.toml")),
            format!("name = \"{name}\"\n"),
        )?;
        let mut bytes = module.clone();
        if distinct {
            bytes.extend(custom_section(
                "projector-bench-copy",
                &(i as u64).to_le_bytes(),
            ));
        }
        std::fs::write(modules.join(format!("{name}.wasm")), bytes)?;
    }
    Ok(names)
}

/// A custom section (id 0: a name and bytes the runtime ignores), valid at
/// the end of a core module or a component alike.
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = leb128(name.len() as u64);
    body.extend(name.as_bytes());
    body.extend(payload);
    let mut section = vec![0u8];
    section.extend(leb128(body.len() as u64));
    section.extend(body);
    section
}

fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use projector::wasm::{Limits, WasmHost};

    #[test]
    fn leb128_encodes_as_the_wasm_spec_says() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [0x7f]);
        assert_eq!(leb128(128), [0x80, 0x01]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }

    /// D's cold start must compile every module: distinct copies are
    /// distinct files that each load (compile) on their own, and still run.
    #[test]
    fn distinct_copies_each_compile_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules");
        let names = distinct_order_totals(&modules, 3).unwrap();
        let files: Vec<Vec<u8>> = names
            .iter()
            .map(|n| std::fs::read(modules.join(format!("{n}.wasm"))).unwrap())
            .collect();
        assert_ne!(files[0], files[1]);
        assert_ne!(files[1], files[2]);
        let host = WasmHost::new(&dir.path().join("cache"), Limits::default()).unwrap();
        for name in &names {
            let loaded = host.load(&modules.join(format!("{name}.wasm"))).unwrap();
            assert!(
                !loaded.from_cache,
                "{name} came from the cache: not distinct"
            );
            assert_eq!(loaded.descriptor.name, "order-totals");
        }
        // The identical copies, by contrast, compile once.
        let same = dir.path().join("same");
        let names = order_totals_copies(&same, 2).unwrap();
        let host = WasmHost::new(&dir.path().join("cache2"), Limits::default()).unwrap();
        let first = host.load(&same.join(format!("{}.wasm", names[0]))).unwrap();
        let second = host.load(&same.join(format!("{}.wasm", names[1]))).unwrap();
        assert!(!first.from_cache);
        assert!(
            second.from_cache,
            "identical copies share one compiled module"
        );
    }
}
