//! The web dashboard: one HTML page at `/` and its script and stylesheet
//! under `/ui/`, embedded in the binary (no build step, nothing fetched from
//! elsewhere). The page polls the JSON API like any other client.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// Only the page's own script and stylesheet run; data from the API is
/// inserted as text, and this policy keeps an injected script inert anyway.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
    script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        body,
    )
        .into_response()
}

/// The dashboard page.
#[utoipa::path(
    get,
    path = "/",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard", content_type = "text/html", body = String)),
)]
pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The dashboard's script.
#[utoipa::path(
    get,
    path = "/ui/app.js",
    tag = "dashboard",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)),
)]
pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The dashboard's stylesheet.
#[utoipa::path(
    get,
    path = "/ui/style.css",
    tag = "dashboard",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)),
)]
pub(super) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
