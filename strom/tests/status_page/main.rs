//! The status page of `strom run` driven in headless Chromium.
//!
//! ```text
//!   server (fixture, or `strom run`)  <-- GET /, /static/*, /api/jobs --  Chromium --dump-dom
//!        |                                                                    |
//!        +-- GET /api/jobs (the test, at about the same moment) --> check_page(DOM, JSON)
//! ```
//!
//! Chromium runs the page's script against the server (`--virtual-time-budget`
//! lets it poll a few times) and prints the DOM; [`check_page`] compares what the
//! page drew with an /api/jobs answer. The fixture tests serve the page's real
//! assets (`page::asset`, compiled into this test) and JSON that follows the
//! status contract; the live test points the same check at `strom run`.
//!
//! `browser.rs` runs Chromium, `server.rs` is the fixture server (and a small
//! client), `dom.rs` reads the printed DOM.
//!
//! Chromium comes from `scripts/chromium` (which installs Debian's package as
//! root). Without one the tests skip loudly, and fail under `CI=true`.
#![allow(clippy::unwrap_used)]

#[path = "../../src/http/page.rs"]
#[allow(dead_code)]
mod page;

mod browser;
mod dom;
mod server;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::workspace_root;
use serde_json::{Value, json};

use browser::{chromium, dump_dom, screenshot, wait_bounded};
use dom::{Element, by_id};
use server::{Fixture, fetch_jobs};

// ---------- the check ----------

/// Whether a number the page drew from one /api/jobs answer is close to the
/// same value in another answer taken a moment later: equal for a fixture;
/// within 20 % (or 2) for a live pipeline that changes between the two.
fn close(shown: Option<f64>, expected: Option<f64>) -> bool {
    match (shown, expected) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 2.0_f64.max(0.2 * a.abs().max(b.abs())),
        _ => false,
    }
}

/// An id as the page writes it into an attribute (the contract's ids are strings).
fn id_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn number(e: &Element, attr: &str) -> Option<f64> {
    e.attr(attr).map(|v| v.parse::<f64>().unwrap())
}

/// Loads the page at `base_url` in headless Chromium and checks what it drew
/// against `expected`, an /api/jobs answer fetched at about the same moment:
/// the job's name and state; one box per operator with its name and its in/out
/// rates (as text, and close to the expected ones); the edges; one row per
/// partition with a lag close to the expected one; checkpoint ids around the
/// newest expected ones; a chart with 1 to 5 series when some sink has results
/// to draw. Returns the DOM for further checks.
fn check_page(base_url: &str, expected: &Value) -> String {
    let dom = dump_dom(base_url);
    let job = &expected["jobs"][0];

    let connection = by_id(&dom, "connection");
    assert_eq!(
        connection.attr("data-ok"),
        Some("true"),
        "page reports: {}",
        connection.text()
    );
    assert_eq!(
        by_id(&dom, "job-name").text(),
        job["name"].as_str().unwrap()
    );
    assert_eq!(
        by_id(&dom, "job-state").text(),
        job["state"].as_str().unwrap()
    );

    // The operator graph.
    let graph = by_id(&dom, "graph");
    assert!(graph.inner.contains("<svg"), "no graph drawn");
    let boxes = graph.all("data-operator-id");
    let shown: BTreeSet<&str> = boxes
        .iter()
        .map(|b| b.attr("data-operator-id").unwrap())
        .collect();
    let operators = job["operators"].as_array().unwrap();
    let wanted: BTreeSet<String> = operators.iter().map(|o| id_of(&o["id"])).collect();
    assert_eq!(
        shown,
        wanted.iter().map(String::as_str).collect(),
        "operator boxes"
    );
    let rate = |text: &str, dir: &str| {
        let rest = text.strip_prefix(dir).unwrap_or_else(|| panic!("{text:?}"));
        rest == " –"
            || rest
                .trim()
                .strip_suffix("/s")
                .and_then(|n| n.trim_end_matches(['k', 'M', 'G']).parse::<f64>().ok())
                .is_some()
    };
    for op in operators {
        let id = id_of(&op["id"]);
        let b = boxes
            .iter()
            .find(|b| b.attr("data-operator-id") == Some(id.as_str()))
            .unwrap();
        let name = op["name"].as_str().unwrap_or("–");
        let prefix: String = name.chars().take(25).collect();
        assert!(
            b.text().contains(&prefix),
            "box {id} lacks {name:?}: {}",
            b.text()
        );
        let in_rate = &b.with_class("in-rate")[0];
        let out_rate = &b.with_class("out-rate")[0];
        assert!(rate(&in_rate.text(), "in"), "{}", in_rate.text());
        assert!(rate(&out_rate.text(), "out"), "{}", out_rate.text());
        for (attr, field) in [
            ("data-in-rate", "records_in_per_s"),
            ("data-out-rate", "records_out_per_s"),
        ] {
            assert!(
                close(number(b, attr), op[field].as_f64()),
                "operator {id}: {attr}={:?}, expected {}",
                b.attr(attr),
                op[field]
            );
        }
    }
    let edges = graph.all("data-from");
    for e in job["edges"].as_array().unwrap() {
        assert!(
            edges
                .iter()
                .any(|p| p.attr("data-from") == Some(id_of(&e["from"]).as_str())
                    && p.attr("data-to") == Some(id_of(&e["to"]).as_str())),
            "no arrow {e}"
        );
    }

    // The partitions.
    let rows = by_id(&dom, "partitions").all("data-partition");
    let partitions = job["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), partitions.len(), "partition rows");
    for p in partitions {
        let topic = p["topic"].as_str().unwrap();
        let partition = p["partition"].to_string();
        let row = rows
            .iter()
            .find(|r| {
                r.attr("data-topic") == Some(topic) && r.attr("data-partition") == Some(&partition)
            })
            .unwrap_or_else(|| panic!("no row for {topic}/{partition}"));
        let lag = &row.with_class("lag")[0];
        assert!(
            close(number(lag, "data-lag"), p["lag"].as_f64()),
            "{topic}/{partition}: lag {:?}, expected {}",
            lag.attr("data-lag"),
            p["lag"]
        );
        if let Some(shown) = number(lag, "data-lag") {
            assert_eq!(lag.text().replace(',', ""), format!("{shown}"));
        }
    }

    // The checkpoints: the newest shown is at most a few behind the newest expected,
    // and every id shown in the expected range was expected.
    let shown: Vec<u64> = by_id(&dom, "checkpoints")
        .all("data-checkpoint-id")
        .iter()
        .map(|r| r.attr("data-checkpoint-id").unwrap().parse().unwrap())
        .collect();
    let history: Vec<u64> = job["checkpoints"]["history"]
        .as_array()
        .map(|h| h.iter().map(|c| c["id"].as_u64().unwrap()).collect())
        .unwrap_or_default();
    if let (Some(&newest), Some(&oldest)) = (history.iter().max(), history.iter().min()) {
        let newest_shown = shown.iter().copied().max().expect("no checkpoint rows");
        assert!(
            newest_shown + 5 >= newest && newest_shown <= newest + LIVE_CHECKPOINTS_AHEAD,
            "newest checkpoint shown {newest_shown}, expected {newest}"
        );
        // A live job checkpoints on while the page loads: ids past the expected
        // newest are new, not wrong.
        for id in shown.iter().filter(|&&id| id >= oldest && id <= newest) {
            assert!(
                history.contains(id),
                "checkpoint {id} was not in {history:?}"
            );
        }
    } else {
        assert!(
            shown.is_empty(),
            "checkpoints {shown:?} shown, none expected"
        );
    }

    // The chart: some series when a sink has rows with a timestamp and a number.
    let drawable = job["results"].as_array().is_some_and(|results| {
        results.iter().any(|r| {
            let types = r["types"].as_array().cloned().unwrap_or_default();
            types.iter().any(|t| t == "timestamp")
                && types.iter().any(|t| t == "number")
                && r["rows"].as_array().is_some_and(|rows| !rows.is_empty())
        })
    });
    let series = by_id(&dom, "chart").with_class("series");
    let paths = series.iter().filter(|e| e.tag == "path").count();
    if drawable {
        assert!((1..=5).contains(&paths), "{paths} series drawn");
    }

    assert_eq!(
        by_id(&dom, "dead-letters").text().replace(',', ""),
        job["dead_letters"]
            .as_u64()
            .map_or("–".to_string(), |n| n.to_string())
    );
    dom
}

// ---------- the fixtures ----------

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An /api/jobs answer shaped like the log-processing example's, every field of
/// the contract present.
fn log_processing_jobs() -> Value {
    let now = now_ms();
    let minute = 60_000;
    let op = |id: &str, name: &str, kind: &str, p: u32, in_s: f64, out_s: f64, busy: Value| {
        json!({
            "id": id, "name": name, "kind": kind, "parallelism": p,
            "records_in": (in_s * 600.0) as u64, "records_out": (out_s * 600.0) as u64,
            "records_in_per_s": in_s, "records_out_per_s": out_s,
            "busy_ratio": busy, "backpressured_ratio": 0.01
        })
    };
    let operators = vec![
        op(
            "1",
            "kafka: log_topic",
            "source",
            3,
            0.0,
            1000.5,
            json!(0.21),
        ),
        op(
            "2",
            "parse, filter: parsed_logs",
            "operator",
            3,
            1000.5,
            990.0,
            json!(0.42),
        ),
        op(
            "3",
            "window: error_counts",
            "operator",
            2,
            120.0,
            3.5,
            json!(0.05),
        ),
        op(
            "4",
            "window: status_bytes",
            "operator",
            2,
            990.0,
            0.4,
            json!(null),
        ),
        op(
            "5",
            "window: url_hits",
            "operator",
            2,
            990.0,
            12.0,
            json!(0.3),
        ),
        op("6", "kafka: error_counts", "sink", 1, 3.5, 3.5, json!(0.0)),
        op(
            "7",
            "postgres: status_bytes",
            "sink",
            1,
            0.4,
            0.4,
            json!(0.9),
        ),
        op("8", "postgres: url_hits", "sink", 1, 12.0, 12.0, json!(0.6)),
        op(
            "9",
            "kafka: dead letters",
            "sink",
            1,
            10.5,
            10.5,
            json!(0.0),
        ),
    ];
    let edge = |from: &str, to: &str, kind: &str| json!({"from": from, "to": to, "kind": kind});
    let edges = vec![
        edge("1", "2", "forward"),
        edge("2", "3", "hash"),
        edge("2", "4", "hash"),
        edge("2", "5", "hash"),
        edge("3", "6", "forward"),
        edge("4", "7", "forward"),
        edge("5", "8", "forward"),
        edge("1", "9", "forward"),
    ];
    let partitions = vec![
        json!({"topic": "log_topic", "partition": 0, "position": 1000, "log_end": 1200, "lag": 200,
               "watermark": now - 5 * minute, "idle": false}),
        json!({"topic": "log_topic", "partition": 1, "position": 3000, "log_end": 3000, "lag": 0,
               "watermark": now - 4 * minute, "idle": true}),
        json!({"topic": "log_topic", "partition": 2, "position": 10, "log_end": 12510, "lag": 12500,
               "watermark": null, "idle": false}),
    ];
    let history: Vec<Value> = (3..=14)
        .map(|id| {
            json!({"id": id, "started_at": now - (15 - id) * 2000, "duration_ms": 20 + (id * 37) % 90,
                   "size_bytes": 2048 * id, "outcome": if id == 7 { "failed" } else { "completed" }})
        })
        .collect();
    let urls = [
        "/",
        "/api/login",
        "/api/cart",
        "/static/app.js",
        "/search",
        "/about",
        "/admin",
    ];
    let mut error_rows = Vec::new();
    for w in 0..12u64 {
        for (i, url) in urls.iter().enumerate() {
            // Totals fall with i, so the top five are the first five URLs.
            let errors = (urls.len() - i) as u64 * 3 + (w * (i as u64 + 1)) % 4;
            error_rows.push(json!([now - (12 - w) * minute, url, errors]));
        }
    }
    let status_rows: Vec<Value> = (0..10u64)
        .flat_map(|w| {
            ["2xx", "4xx", "5xx"].iter().map(move |class| {
                json!([now - (10 - w) * minute, class, 100 + w, 20_000 * (w + 1)])
            })
        })
        .collect();
    json!({"jobs": [{
        "name": "log-processing",
        "state": "running",
        "started_at": now - 3_723_000,
        "incarnation": 2,
        "operators": operators,
        "edges": edges,
        "partitions": partitions,
        "sinks": [
            {"name": "error_counts", "kind": "kafka", "records": 84, "transactions_committed": 12, "transactions_aborted": 1},
            {"name": "status_bytes", "kind": "postgres", "records": 30, "transactions_committed": 12, "transactions_aborted": 0},
            {"name": "url_hits", "kind": "postgres", "records": 0, "transactions_committed": 12, "transactions_aborted": 0}
        ],
        "checkpoints": {
            "completed": 11, "failed": 1, "last_id": 14, "last_completed_at": now - 2000,
            "restore_ms": 35, "history": history
        },
        "errors": [
            {"at": now - 90_000, "message": "checkpoint 7 failed: transaction aborted (rolled back to 6)"},
            {"at": now - 30_000, "message": "log_topic/2: fetch timed out, retrying"}
        ],
        "dead_letters": 3,
        "results": [
            {"sink": "error_counts", "columns": ["window_start", "url", "errors"],
             "types": ["timestamp", "string", "number"], "rows": error_rows},
            {"sink": "status_bytes", "columns": ["window_end", "status_class", "requests", "bytes"],
             "types": ["timestamp", "string", "number", "number"], "rows": status_rows},
            {"sink": "url_hits", "columns": ["window_end", "url", "hits"],
             "types": ["timestamp", "string", "number"], "rows": []}
        ]
    }]})
}

// ---------- the tests ----------

#[test]
fn status_page_draws_every_part_of_the_job() {
    if chromium().is_none() {
        return;
    }
    let jobs = log_processing_jobs();
    let fixture = Fixture::start(Some(jobs.clone()));
    assert_eq!(fetch_jobs(&fixture.base_url), jobs);
    let dom = check_page(&fixture.base_url, &jobs);
    // About once a second during Chromium's 5 virtual seconds (plus the test's own).
    let polls = fixture.polls.load(Ordering::Relaxed);
    assert!((4..=10).contains(&polls), "/api/jobs asked {polls} times");

    // Exact where the fixture stands still.
    let graph = by_id(&dom, "graph");
    let parse = graph
        .all("data-operator-id")
        .into_iter()
        .find(|b| b.attr("data-operator-id") == Some("2"))
        .unwrap();
    assert!(parse.text().contains("in 1.0k/s"), "{}", parse.text());
    assert!(parse.text().contains("out 990/s"), "{}", parse.text());
    assert!(parse.text().contains("busy 42%"), "{}", parse.text());
    assert_eq!(parse.attr("data-in-rate"), Some("1000.5"));
    let lags: Vec<String> = by_id(&dom, "partitions")
        .with_class("lag")
        .iter()
        .map(Element::text)
        .collect();
    assert_eq!(lags, ["200", "0", "12,500"]);
    let ids: Vec<String> = by_id(&dom, "checkpoints")
        .all("data-checkpoint-id")
        .iter()
        .map(|r| r.attr("data-checkpoint-id").unwrap().to_string())
        .collect();
    let newest_first: Vec<String> = (3..=14).rev().map(|i| i.to_string()).collect();
    assert_eq!(ids, newest_first);
    let failed = by_id(&dom, "checkpoints").all("data-outcome");
    assert_eq!(
        failed
            .iter()
            .filter(|r| r.attr("data-outcome") == Some("failed"))
            .count(),
        1
    );
    assert_eq!(by_id(&dom, "checkpoints-completed").text(), "11");
    assert_eq!(by_id(&dom, "checkpoints-failed").text(), "1");
    assert_eq!(by_id(&dom, "job-incarnation").text(), "2");
    assert!(
        by_id(&dom, "job-uptime").text().starts_with("1h 2m"),
        "{}",
        by_id(&dom, "job-uptime").text()
    );
    assert!(by_id(&dom, "errors").text().contains("checkpoint 7 failed"));

    // The chart: the first sink with rows, its five biggest URLs; a picker for two sinks.
    let chart = by_id(&dom, "chart");
    let series: Vec<String> = chart
        .with_class("series")
        .iter()
        .filter(|e| e.tag == "path")
        .map(|e| e.attr("data-series").unwrap().to_string())
        .collect();
    assert_eq!(
        series,
        ["/", "/api/login", "/api/cart", "/static/app.js", "/search"]
    );
    let picker = by_id(&dom, "sink-picker");
    assert!(!picker.attrs.contains_key("hidden"), "no sink picker");
    assert_eq!(
        picker
            .all("value")
            .iter()
            .map(|o| o.attr("value").unwrap())
            .collect::<Vec<_>>(),
        ["error_counts", "status_bytes"]
    );

    screenshot(
        &fixture.base_url,
        &workspace_root().join("target/status-page.png"),
    );
}

#[test]
fn status_page_tolerates_nulls_and_missing_fields() {
    if chromium().is_none() {
        return;
    }
    let jobs = json!({"jobs": [{
        "name": "sparse",
        "state": "starting",
        "started_at": null,
        "incarnation": null,
        "operators": [
            {"id": "1", "name": null, "kind": "source"},
            {"id": "2", "name": "map", "kind": "operator", "parallelism": null,
             "records_in_per_s": null, "records_out_per_s": 5.0, "busy_ratio": null},
            {"id": "3", "name": "cycle back", "kind": "sink"}
        ],
        "edges": [{"from": "1", "to": "2"}, {"from": "2", "to": "3", "kind": null},
                  {"from": "3", "to": "2", "kind": "forward"}, {"from": "2", "to": "99", "kind": "hash"}],
        "partitions": [{"topic": "t", "partition": 0, "position": null, "log_end": null, "lag": null,
                        "watermark": null, "idle": null}],
        "sinks": null,
        "checkpoints": {"completed": null, "history": [{"id": 1}]},
        "errors": [{"at": null, "message": null}],
        "dead_letters": null,
        "results": [
            {"sink": "no-time", "columns": ["a"], "types": ["number"], "rows": [[1]]},
            {"sink": "nulls", "columns": ["t", "k", "v"], "types": ["timestamp", "string", "number"],
             "rows": [[null, "a", 1], [1764770000000_u64, null, null], [1764770000000_u64, null, 2], "junk"]}
        ]
    }]});
    let fixture = Fixture::start(Some(jobs.clone()));
    let mut checked = jobs.clone();
    // The arrow to a missing operator is not drawn, so check_page must not expect it.
    checked["jobs"][0]["edges"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["to"] != "99");
    let dom = check_page(&fixture.base_url, &checked);
    assert_eq!(by_id(&dom, "job-uptime").text(), "–");
    assert_eq!(by_id(&dom, "partitions").with_class("lag")[0].text(), "–");
    let chart = by_id(&dom, "chart");
    assert_eq!(
        chart
            .with_class("series")
            .iter()
            .filter(|e| e.tag == "path")
            .count(),
        1,
        "the one row with a time and a value is drawn as series \"–\""
    );
}

#[test]
fn status_page_says_when_the_backend_is_unreachable() {
    if chromium().is_none() {
        return;
    }
    let fixture = Fixture::start(None);
    let dom = dump_dom(&fixture.base_url);
    let connection = by_id(&dom, "connection");
    assert_eq!(connection.attr("data-ok"), Some("false"));
    assert!(
        connection.text().contains("backend unreachable"),
        "{}",
        connection.text()
    );
}

/// How many checkpoints a live job may complete between the /api/jobs fetch and
/// the page's own last poll (5 virtual seconds at 2 per second, with room).
const LIVE_CHECKPOINTS_AHEAD: u64 = 30;

/// `strom run` with its status server, while the log-processing example runs:
/// the page against the live /api/jobs. Needs Kafka and PostgreSQL like
/// `sql_examples.rs`.
#[test]
fn status_page_shows_the_running_log_processing_example() {
    let bootstrap = integration_tests::require_broker!();
    let Some(pg) = integration_tests::postgres_url() else {
        return;
    };
    if chromium().is_none() {
        return;
    }
    let random = integration_tests::random_topic;
    let (input, output, dlq) = (
        random("log-topic"),
        random("log-processed"),
        random("log-dlq"),
    );
    for (topic, partitions) in [(&input, "3"), (&output, "3"), (&dlq, "1")] {
        run_strom(
            &[
                "--bootstrap",
                &bootstrap,
                "topics",
                "create",
                topic,
                "--partitions",
                partitions,
            ],
            None,
        );
    }
    let suffix = input.replace(['-', '.'], "_");
    let mut strom = Command::new(env!("CARGO_BIN_EXE_strom"))
        .current_dir(workspace_root())
        .args([
            "--bootstrap",
            &bootstrap,
            "run",
            "--http-addr",
            "127.0.0.1:0",
            "--checkpoint-interval-ms",
            "500",
            "examples/log-processing.sql",
        ])
        .env("LOG_TOPIC", &input)
        .env("OUTPUT_TOPIC", &output)
        .env("DEAD_LETTER_TOPIC", &dlq)
        .env("APP", random("log-app"))
        .env("POSTGRES_URL", &pg)
        .env("STATUS_TABLE", format!("sb_{suffix}"))
        .env("HITS_TABLE", format!("uh_{suffix}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base_url = status_url(&mut strom);

    // Demo input while the pipeline runs.
    let log = std::env::temp_dir().join(random("status-page-log"));
    let generated = Command::new("python3")
        .arg(workspace_root().join("scripts/logdemo.py"))
        .args(["generate", "20000", "42"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    std::fs::write(&log, generated.stdout).unwrap();
    run_strom(
        &["--bootstrap", &bootstrap, "produce", "--topic", &input],
        Some(&log),
    );
    screenshot(
        &base_url,
        &workspace_root().join("target/status-page-live-busy.png"),
    );

    // Steady state: all input read, results written, a checkpoint completed, rates
    // settled (they average over ~5 s) — then the page must match /api/jobs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = fetch_jobs(&base_url);
        let job = &jobs["jobs"][0];
        let lag: u64 = job["partitions"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["lag"].as_u64()).sum())
            .unwrap_or(u64::MAX);
        let has_results = job["results"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|r| r["rows"].as_array().is_some_and(|x| !x.is_empty()))
        });
        if job["state"] == "running"
            && lag == 0
            && has_results
            && job["checkpoints"]["completed"].as_u64() > Some(0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "pipeline not caught up: {job}");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(6));
    let expected = fetch_jobs(&base_url);
    check_page(&base_url, &expected);
    screenshot(
        &base_url,
        &workspace_root().join("target/status-page-live.png"),
    );

    // SIGTERM: a final checkpoint, then exit.
    let pid = strom.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_bounded(
        &mut strom,
        Duration::from_secs(60),
        "strom run after SIGTERM",
    );
    assert!(status.success(), "strom run: {status}");
    let _ = std::fs::remove_file(&log);
}

/// Reads `strom run`'s stderr up to its `strom: status at http://IP:PORT/` line
/// (within 60 s) and keeps draining the rest in the background.
fn status_url(strom: &mut Child) -> String {
    let stderr = strom.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("strom: {line}");
            if !sent {
                if let Some(url) = line.strip_prefix("strom: status at ") {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => url,
        Err(e) => {
            let _ = strom.kill();
            panic!("no `strom: status at` line from strom run: {e}");
        }
    }
}

/// Runs the strom binary to completion (within 2 min), optionally with a file on stdin.
fn run_strom(args: &[&str], stdin: Option<&Path>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom"));
    cmd.current_dir(workspace_root()).args(args);
    cmd.stdin(match stdin {
        Some(path) => Stdio::from(std::fs::File::open(path).unwrap()),
        None => Stdio::null(),
    });
    let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(120), "strom");
    assert!(status.success(), "strom {args:?}: {status}");
}
