//! HTTP request metrics, labelled by the matched route template (never the
//! raw URL, whose keys and names would make one series per request).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

type Labels = Vec<(&'static str, String)>;

/// Upper bounds in seconds: from a key lookup to a long read-your-writes wait.
const HTTP_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(http_histogram as fn() -> Histogram),
        }
    }
}

impl HttpMetrics {
    pub(super) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "projector_http_requests",
            "HTTP requests answered, by method, route template and status code",
            self.requests.clone(),
        );
        registry.register(
            "projector_http_request_duration_seconds",
            "Time from a request's head to its answer, by method and route template",
            self.duration.clone(),
        );
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = vec![("method", method.to_owned()), ("route", route.to_owned())];
        self.duration.get_or_create(&labels).observe(seconds);
        let mut labels = labels;
        labels.push(("status", status.to_string()));
        self.requests.get_or_create(&labels).inc();
    }
}

/// Middleware: counts and times every request by its route template.
pub async fn track_http(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Only the methods the API knows, so a client cannot mint label values.
    let method = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
