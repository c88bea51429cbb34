//! The status server of `strom run`: one axum server on `--http-addr`.
//!
//! ```text
//!  GET /               the status page           (page.rs)
//!  GET /static/<file>  its assets                (page.rs)
//!  GET /metrics        Prometheus text format    (the global metrics recorder + busy/backpressure from JobStatus)
//!  GET /healthz        200 "ok" while the process runs
//!  GET /readyz         200 "ready" once state is restored and partitions assigned, else 503 and why
//!  GET /api/jobs       {"jobs": [JobStatus::snapshot(), ...]}
//! ```
//!
//! The server binds before the pipeline starts, so a port in use ends `strom run`
//! before it joins a group or touches a topic.

pub mod page;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use engine::JobStatus;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets of every `*_seconds` histogram.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

struct AppState {
    prometheus: PrometheusHandle,
    jobs: Vec<JobStatus>,
}

/// Where the server listens: `--http-addr` parsed (`off` disables it).
pub fn parse_addr(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.eq_ignore_ascii_case("off")).then(|| s.to_string())
}

/// Binds `addr`, installs the Prometheus recorder as the global `metrics`
/// recorder, prints `strom: status at http://IP:PORT/` on stderr and serves the
/// routes in the background.
pub async fn serve(addr: &str, jobs: Vec<JobStatus>) -> anyhow::Result<()> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "cannot serve status on {addr}: address in use (pass --http-addr HOST:PORT or off)"
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot serve status on {addr} (pass --http-addr HOST:PORT or off)"
            )));
        }
    };
    let local = listener
        .local_addr()
        .context("the status server's address")?;
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = router(Arc::new(AppState { prometheus, jobs }));
    eprintln!("strom: status at http://{local}/");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the status server stopped");
        }
    });
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/static/{file}", get(static_file))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/jobs", get(jobs))
        .with_state(state)
}

fn asset(path: &str) -> Response {
    match page::asset(path) {
        Some((content_type, body)) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn index() -> Response {
    asset("")
}

async fn static_file(Path(file): Path<String>) -> Response {
    asset(&file)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut body = state.prometheus.render();
    render_task_times(&state.jobs, &mut body);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Appends busy and backpressured seconds per operator subtask: fractional
/// counters, which the `metrics` facade's integer counters cannot carry.
fn render_task_times(jobs: &[JobStatus], out: &mut String) {
    let times: Vec<_> = jobs.iter().flat_map(JobStatus::subtask_times).collect();
    if times.is_empty() {
        return;
    }
    for (name, help, value) in [
        (
            "strom_operator_busy_seconds_total",
            "Time an operator subtask spent working.",
            (|t: &engine::status::SubtaskTimes| t.busy_seconds) as fn(&_) -> f64,
        ),
        (
            "strom_operator_backpressured_seconds_total",
            "Time an operator subtask spent blocked sending downstream.",
            |t: &engine::status::SubtaskTimes| t.backpressured_seconds,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for t in &times {
            let _ = writeln!(
                out,
                "{name}{{operator=\"{}\",subtask=\"{}\"}} {}",
                escape_label(&t.operator),
                t.subtask,
                value(t)
            );
        }
        out.push('\n');
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_ready: Vec<String> = state
        .jobs
        .iter()
        .filter_map(|j| j.ready().err().map(|why| format!("{}: {why}", j.name())))
        .collect();
    if not_ready.is_empty() && !state.jobs.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else if not_ready.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "no job").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, not_ready.join("\n")).into_response()
    }
}

async fn jobs(State(state): State<Arc<AppState>>) -> Response {
    let jobs: Vec<_> = state.jobs.iter().map(JobStatus::snapshot).collect();
    axum::Json(serde_json::json!({ "jobs": jobs })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_disables_the_server() {
        assert_eq!(parse_addr("off"), None);
        assert_eq!(parse_addr("OFF"), None);
        assert_eq!(parse_addr("127.0.0.1:0").as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
