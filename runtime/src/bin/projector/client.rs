//! A small blocking HTTP client for the CLI commands that talk to a running
//! `projector run`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// Characters left as they are in a key path segment (RFC 3986 unreserved).
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Largest response the CLI reads.
const MAX_RESPONSE: u64 = 1 << 30;

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Bearer <token>`, sent with every request when the user gave one.
    authorization: Option<String>,
}

/// The server answered with an error: its message is all the user needs
/// (exit code 1), where a failure of the CLI itself exits with 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A JSON answer with its HTTP status.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The `error.message` of an error answer, or the whole body.
    pub fn error_message(&self) -> String {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| self.body.to_string(), str::to_owned)
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a success; any other answer is [`Refused`].
    pub fn into_ok(self) -> Result<Value> {
        if self.ok() {
            Ok(self.body)
        } else {
            Err(Refused(self.error_message()).into())
        }
    }
}

pub fn encode_segment(text: &str) -> String {
    utf8_percent_encode(text, KEY_SEGMENT).to_string()
}

impl Client {
    pub fn new(server: &str, api_token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Self {
            base: server.trim_end_matches('/').to_owned(),
            agent,
            authorization: api_token.map(|token| format!("Bearer {token}")),
        }
    }

    fn get_request(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let request = self.agent.get(url);
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    fn post_request(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let request = self.agent.post(url);
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        what: &str,
    ) -> Result<Answer> {
        let mut response = response.with_context(|| {
            format!(
                "cannot reach projector at {} ({what}); is `projector run` running? pass --server URL",
                self.base
            )
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .with_context(|| format!("reading the answer to {what}"))?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        self.answer(self.get_request(&url).call(), &format!("GET {path}"))
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        self.answer(
            self.post_request(&url)
                .header("content-type", content_type)
                .send(body),
            &format!("POST {path}"),
        )
    }

    /// POST of a JSON body to one of a projection's admin actions,
    /// `/v1/projections/{projection}/{action}`, that must succeed.
    pub fn post_action(&self, projection: &str, action: &str, body: &Value) -> Result<Value> {
        self.post(
            &format!("/v1/projections/{}/{action}", encode_segment(projection)),
            "application/json",
            body.to_string().as_bytes(),
        )?
        .into_ok()
    }

    /// GET of raw bytes that must succeed.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let mut response = self.get_request(&url).call().with_context(|| {
            format!("cannot reach projector at {}; pass --server URL", self.base)
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()?;
        if !(200..300).contains(&status) {
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let answer = Answer { status, body };
            bail!("{} (HTTP {status})", answer.error_message());
        }
        Ok(bytes)
    }

    /// GET that must succeed.
    pub fn get_ok(&self, path: &str) -> Result<Value> {
        let answer = self.get(path)?;
        if !answer.ok() {
            bail!("{} (HTTP {})", answer.error_message(), answer.status);
        }
        Ok(answer.body)
    }
}
