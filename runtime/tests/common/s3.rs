//! A real S3-compatible server for tests: moto's server (PyPI
//! `moto[server]`), one process per test on its own port, speaking the S3
//! API over HTTP. Requests to it are made here with plain HTTP, never with
//! Projector's own code.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(120);

/// `$PROJECTOR_S3_SERVER`, or where `scripts/install-s3-server.sh` puts it.
fn moto_binary() -> PathBuf {
    super::installed_tool(
        "PROJECTOR_S3_SERVER",
        "moto-5.2.5/bin/moto_server",
        "snapshot store tests need moto's S3 server: run scripts/install-s3-server.sh (README's test command does)",
    )
}

pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl S3Server {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Self {
        let port = super::free_port();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PATIENCE;
        while super::agent().get(&server.endpoint).call().is_err() {
            assert!(Instant::now() < deadline, "moto_server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        let response = super::agent()
            .put(format!("{}/{bucket}", self.endpoint))
            .send_empty()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "create bucket {bucket}");
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut response = super::agent()
            .get(format!(
                "{}/{bucket}?list-type=2&prefix={}",
                self.endpoint,
                super::percent(prefix)
            ))
            .call()
            .unwrap();
        let xml = response.body_mut().read_to_string().unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }

    /// The variables `projector run` reads to reach this server.
    pub fn env(&self) -> [(&'static str, String); 5] {
        Self::env_for(&self.endpoint)
    }

    /// The variables that point `projector run` at an S3 API at `endpoint`.
    pub fn env_for(endpoint: &str) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT", endpoint.to_owned()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
