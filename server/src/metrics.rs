//! Prometheus metrics (`GET /metrics`, text format 0.0.4) and the request log.
//!
//! Requests are counted and timed per method, route *template* and status: the
//! template (`/v1/records/{provider}/{record}`), never the path, so neither the metrics
//! nor the log line of a request carry an id, a token or a body. The store's sizes are
//! read when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use medvault::Cloud;

/// Upper bounds (seconds) of the latency histogram's buckets: from a cached read to a
/// 100 MB upload over a slow link.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct Latencies {
    count: u64,
    sum_seconds: f64,
    /// Requests at or under each bound of [`BUCKETS`] (not yet cumulative).
    buckets: [u64; BUCKETS.len()],
}

/// What the server counts.
#[derive(Default)]
pub struct Metrics {
    /// (method, route template, status) → latencies.
    requests: Mutex<BTreeMap<(String, String, u16), Latencies>>,
    merges: AtomicU64,
    merge_failures: AtomicU64,
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let entry = requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            entry.buckets[i] += 1;
        }
    }

    /// Counts a merge (by the admin's route or `--merge-interval`).
    pub fn merged(&self, ok: bool) {
        if ok {
            self.merges.fetch_add(1, Ordering::Relaxed);
        } else {
            self.merge_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self, cloud: &Cloud) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP medvault_requests_total Requests answered, by method, route and status.\n",
        );
        out.push_str("# TYPE medvault_requests_total counter\n");
        for ((method, route, status), l) in requests.iter() {
            let _ = writeln!(
                out,
                "medvault_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                l.count
            );
        }
        out.push_str(
            "# HELP medvault_request_duration_seconds Time from the request's headers to its response.\n",
        );
        out.push_str("# TYPE medvault_request_duration_seconds histogram\n");
        // The histogram is per route (statuses summed), as dashboards want it.
        let mut per_route: BTreeMap<(String, String), Latencies> = BTreeMap::new();
        for ((method, route, _), l) in requests.iter() {
            let sum = per_route
                .entry((method.clone(), route.clone()))
                .or_default();
            sum.count += l.count;
            sum.sum_seconds += l.sum_seconds;
            for (total, n) in sum.buckets.iter_mut().zip(l.buckets) {
                *total += n;
            }
        }
        drop(requests);
        for ((method, route), l) in &per_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(l.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "medvault_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "medvault_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                l.count
            );
            let _ = writeln!(
                out,
                "medvault_request_duration_seconds_sum{{{labels}}} {}",
                l.sum_seconds
            );
            let _ = writeln!(
                out,
                "medvault_request_duration_seconds_count{{{labels}}} {}",
                l.count
            );
        }
        let records = cloud.records();
        let bytes: u64 = records.iter().map(|r| r.size).sum();
        let segments = cloud.manifest().segments;
        let entries: u64 = segments.iter().sum();
        let gauges: [(&str, &str, &str, u64); 6] = [
            (
                "medvault_records",
                "gauge",
                "Sealed records stored.",
                records.len() as u64,
            ),
            (
                "medvault_record_bytes",
                "gauge",
                "Bytes of sealed records stored.",
                bytes,
            ),
            (
                "medvault_index_segments",
                "gauge",
                "Index segments (a merge makes one).",
                segments.len() as u64,
            ),
            (
                "medvault_index_entries",
                "gauge",
                "Encrypted index entries in all segments.",
                entries,
            ),
            (
                "medvault_merges_total",
                "counter",
                "Merges done.",
                self.merges.load(Ordering::Relaxed),
            ),
            (
                "medvault_merge_failures_total",
                "counter",
                "Merges that failed.",
                self.merge_failures.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// Times and counts each request, and logs one line for it (route template, status,
/// microseconds: nothing that names a party, a patient or a secret).
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(no route)".to_owned());
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    metrics.observe(&method, &route, status, seconds);
    tracing::info!(
        method,
        route,
        status,
        micros = (seconds * 1e6) as u64,
        "request"
    );
    response
}
