//! The admin bearer token. When one is configured, every route of the
//! admin router (see [`super::router`]) answers 401 unless the request
//! carries `Authorization: Bearer <token>`; reads stay open.
//!
//! Tokens are compared as BLAKE3 digests, whose equality is constant-time,
//! so neither the token's bytes nor its length leak through timing.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// What a client must do to get through, for the 401 messages.
const HOW_TO_PASS: &str = "send `Authorization: Bearer <token>` (CLI: pass --api-token or set PROJECTOR_API_TOKEN to the server's token)";

/// The secret admin token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiToken {
    digest: blake3::Hash,
}

/// Why a configured token is unusable.
#[derive(Debug, thiserror::Error)]
pub enum InvalidToken {
    #[error("the token is empty")]
    Empty,
    #[error(
        "the token has whitespace or control characters; use printable ASCII, e.g. `openssl rand -hex 32`"
    )]
    BadCharacter,
}

impl ApiToken {
    /// Accepts printable ASCII without spaces (what fits in a header
    /// unchanged). Surrounding whitespace, such as a token file's final
    /// newline, is trimmed first.
    pub fn new(token: &str) -> Result<Self, InvalidToken> {
        let token = token.trim();
        if token.is_empty() {
            return Err(InvalidToken::Empty);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidToken::BadCharacter);
        }
        Ok(Self {
            digest: blake3::hash(token.as_bytes()),
        })
    }

    /// Constant-time comparison (`blake3::Hash` equality is constant-time).
    pub fn matches(&self, presented: &[u8]) -> bool {
        blake3::hash(presented) == self.digest
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// The bearer token of an `Authorization` header value, if it is one
/// (the scheme is case-insensitive, RFC 7235).
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let bytes = value.as_bytes();
    let scheme = bytes.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(bytes[7..].trim_ascii())
}

fn unauthorized(code: &'static str, message: String) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Middleware of the admin router: lets a request through when no token is
/// configured or when it carries the right one, before its body is read.
pub async fn require_token(
    State(token): State<Option<Arc<ApiToken>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let presented = request.headers().get(header::AUTHORIZATION);
    match presented.map(bearer) {
        None => unauthorized(
            "missing_token",
            format!(
                "{} {} changes state and needs the admin token: {HOW_TO_PASS}",
                request.method(),
                request.uri().path()
            ),
        ),
        Some(None) => unauthorized(
            "bad_token",
            format!("the Authorization header is not a bearer token: {HOW_TO_PASS}"),
        ),
        Some(Some(bytes)) if token.matches(bytes) => next.run(request).await,
        Some(Some(_)) => unauthorized("bad_token", format!("wrong admin token: {HOW_TO_PASS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_validated_trimmed_and_hidden() {
        assert!(matches!(ApiToken::new("  \n"), Err(InvalidToken::Empty)));
        assert!(matches!(
            ApiToken::new("a b"),
            Err(InvalidToken::BadCharacter)
        ));
        assert!(matches!(
            ApiToken::new("tökén"),
            Err(InvalidToken::BadCharacter)
        ));
        let token = ApiToken::new("s3cret\n").unwrap();
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cret "));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let value = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(&value("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&value("bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&value("Basic abc")), None);
        assert_eq!(bearer(&value("Bearer")), None);
    }
}
