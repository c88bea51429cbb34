//! Semantics of strom's SQL, end to end: each test writes input files, runs a
//! script over `filesystem` tables (bounded), reads the committed output files
//! back and compares them, sorted, with a reference the test computes itself in
//! plain Rust (maps and loops, no code of the sql crate) over the same input.
//!
//! ```text
//! seeded generator ──> in/input.json ──> SqlJob::run(bounded) ──> out/part-* ──┐
//!         └──────────> reference (BTreeMap over the same events) ─────────────┴─> equal?
//! ```
//!
//! Event times are one day's milliseconds (`2024-03-01 HH:mm:ss.SSS`, from 10:00
//! on). Every window size divides a day, so windows align the same way whether
//! counted from the epoch or from midnight.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as J, json};
use sql::{RunOptions, RunSummary, SqlJob};

mod common;
use common::{print_child, printed_changes, upsert_table};

const DAY: &str = "2024-03-01";
const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
/// 10:00:00.000, where generated input starts.
const T0: i64 = 10 * 60 * MIN;
/// Generated input spans 30 minutes of event time.
const SPAN: i64 = 30 * MIN;

const URLS: &[&str] = &[
    "/",
    "/index.html",
    "/api/users/17",
    "/api/Orders/903",
    "/api/items/x42",
    "/static/App.js",
    "/health",
    "/Login",
];

// ---------------------------------------------------------------------------
// Input generation
// ---------------------------------------------------------------------------

/// xorshift64: deterministic input without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `0..n` (n > 0).
    fn range(&mut self, n: i64) -> i64 {
        self.below(n as u64) as i64
    }

    /// True with `p` percent probability.
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// One web-log event; `None` fields are NULL (missing or `null` in the JSON).
#[derive(Clone, Debug)]
struct Event {
    ts: i64,
    url: Option<String>,
    ip: Option<String>,
    status: Option<i32>,
    bytes: Option<i32>,
}

impl Event {
    fn random(rng: &mut Rng, ts: i64, null_pct: u64) -> Event {
        let url = rng.pick(URLS).to_string();
        let ip = (!rng.percent(null_pct))
            .then(|| format!("10.0.{}.{}", rng.below(3), 1 + rng.below(20)));
        let status = (!rng.percent(null_pct)).then(|| match rng.below(20) {
            0..=12 => 200,
            13 => 304,
            14..=16 => 404,
            17 => 500,
            _ => 503,
        });
        let bytes = (!rng.percent(null_pct)).then(|| rng.below(50_000) as i32);
        Event {
            ts,
            url: Some(url),
            ip,
            status,
            bytes,
        }
    }

    /// The event as a JSON line: a NULL field is left out or written as `null`.
    fn json_line(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("ts".into(), J::String(ts_text(self.ts)));
        let fields = [
            ("url", self.url.clone().map(J::String)),
            ("ip", self.ip.clone().map(J::String)),
            ("status", self.status.map(J::from)),
            ("bytes", self.bytes.map(J::from)),
        ];
        for (name, v) in fields {
            match v {
                Some(v) => {
                    m.insert(name.into(), v);
                }
                None if self.ts % 2 == 0 => {}
                None => {
                    m.insert(name.into(), J::Null);
                }
            }
        }
        J::Object(m).to_string()
    }
}

/// `rows` web-log events over [`SPAN`] from [`T0`], in arrival order:
/// `disorder_pct` percent of them arrive late by less than `bound` (so they are
/// out of order but never behind the watermark), `null_pct` percent of each of
/// ip, status and bytes is NULL.
fn web_log(seed: u64, rows: usize, bound: i64, disorder_pct: u64, null_pct: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let step = SPAN / rows as i64;
    let mut timed: Vec<(i64, usize, Event)> = (0..rows)
        .map(|i| {
            // Strictly increasing event times, one per step.
            let ts = T0 + i as i64 * step + rng.range(step);
            let delay = if rng.percent(disorder_pct) {
                rng.range(bound)
            } else {
                0
            };
            (ts + delay, i, Event::random(&mut rng, ts, null_pct))
        })
        .collect();
    timed.sort_by_key(|(arrival, i, _)| (*arrival, *i));
    timed.into_iter().map(|(_, _, e)| e).collect()
}

/// How many events have an event time below the highest one before them.
fn out_of_order(events: &[Event]) -> usize {
    let mut max = i64::MIN;
    let mut n = 0;
    for e in events {
        if e.ts < max {
            n += 1;
        }
        max = max.max(e.ts);
    }
    n
}

/// `2024-03-01 HH:mm:ss.SSS` of a millisecond of the day.
fn ts_text(ms: i64) -> String {
    format!(
        "{DAY} {:02}:{:02}:{:02}.{:03}",
        ms / (60 * MIN),
        ms / MIN % 60,
        ms / SEC % 60,
        ms % SEC
    )
}

/// Start of the window of `size` holding `ts`.
fn floor(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

// ---------------------------------------------------------------------------
// Files, jobs, output
// ---------------------------------------------------------------------------

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "strom-sql-semantics-{test}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_events(path: &Path, events: &[Event]) {
    let mut text = String::new();
    for e in events {
        text.push_str(&e.json_line());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// `CREATE TABLE name` over JSON web-log lines at `path`, with
/// `WATERMARK FOR ts AS ts - INTERVAL {watermark}` if given.
fn logs_table(name: &str, path: &Path, watermark: Option<&str>) -> String {
    let wm = watermark.map_or(String::new(), |w| {
        format!(",\n  WATERMARK FOR ts AS ts - INTERVAL {w}")
    });
    format!(
        "CREATE TABLE {name} (\n  ts TIMESTAMP(3),\n  url STRING,\n  ip STRING,\n  status INT,\n  bytes INT{wm}\n) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
        path.display()
    )
}

/// `CREATE TABLE name (columns)` writing JSON lines into the directory `path`.
fn sink_table(name: &str, columns: &str, path: &Path) -> String {
    format!(
        "CREATE TABLE {name} ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n",
        path.display()
    )
}

async fn run_with(sql: &str, options: RunOptions) -> sql::Result<RunSummary> {
    let job = SqlJob::compile(sql)?;
    let (_stop, stop) = SqlJob::stop_signal();
    tokio::time::timeout(Duration::from_secs(60), job.run(options, stop))
        .await
        .expect("the bounded job did not end within 60 s")
}

async fn run(sql: &str) -> sql::Result<RunSummary> {
    run_with(
        sql,
        RunOptions {
            bounded: true,
            ..Default::default()
        },
    )
    .await
}

/// The rows of the committed files in `dir`, each as the values of `cols`.
fn read_rows(dir: &Path, cols: &[&str]) -> Vec<Vec<J>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let want: BTreeSet<&str> = cols.iter().copied().collect();
    let mut rows = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("part-"),
            "{name} in {}: only committed part files should be left",
            dir.display()
        );
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let J::Object(obj) = serde_json::from_str::<J>(line).unwrap() else {
                panic!("{name}: not a JSON object: {line}");
            };
            let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
            assert_eq!(keys, want, "columns of {line}");
            rows.push(cols.iter().map(|c| obj[*c].clone()).collect());
        }
    }
    rows
}

/// Compares two multisets of rows; on a difference shows what is missing and
/// what is unexpected.
fn assert_same_rows(what: &str, actual: &[Vec<J>], expected: &[Vec<J>]) {
    let count = |rows: &[Vec<J>]| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for r in rows {
            *m.entry(J::Array(r.clone()).to_string()).or_default() += 1;
        }
        m
    };
    let (a, e) = (count(actual), count(expected));
    if a == e {
        return;
    }
    let diff = |x: &BTreeMap<String, i64>, y: &BTreeMap<String, i64>| -> Vec<String> {
        x.iter()
            .filter_map(|(k, n)| {
                let m = y.get(k).copied().unwrap_or(0);
                (*n > m).then(|| format!("{k} x{}", n - m))
            })
            .collect()
    };
    let (missing, extra) = (diff(&e, &a), diff(&a, &e));
    panic!(
        "{what}: {} rows, expected {}\nmissing ({}):\n  {}\nunexpected ({}):\n  {}",
        actual.len(),
        expected.len(),
        missing.len(),
        missing
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
        extra.len(),
        extra
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}

fn opt<T: Into<J>>(v: Option<T>) -> J {
    v.map_or(J::Null, Into::into)
}

// ---------------------------------------------------------------------------
// Reference aggregates (SQL semantics: NULLs skipped, SUM/AVG of INT stay INT)
// ---------------------------------------------------------------------------

#[derive(Default, Clone)]
struct Agg {
    rows: i64,
    sum: Option<i64>,
    min: Option<i32>,
    max: Option<i32>,
    non_null: i64,
    ips: BTreeSet<String>,
}

impl Agg {
    fn add(&mut self, e: &Event) {
        self.rows += 1;
        if let Some(b) = e.bytes {
            self.sum = Some(self.sum.unwrap_or(0) + i64::from(b));
            self.min = Some(self.min.map_or(b, |m| m.min(b)));
            self.max = Some(self.max.map_or(b, |m| m.max(b)));
            self.non_null += 1;
        }
        if let Some(ip) = &e.ip {
            self.ips.insert(ip.clone());
        }
    }

    /// AVG of an INT column: the integer quotient, as Flink computes it.
    fn avg(&self) -> Option<i64> {
        self.sum.map(|s| s / self.non_null)
    }
}

// ---------------------------------------------------------------------------
// 1. Filter and projection
// ---------------------------------------------------------------------------

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// `REGEXP_EXTRACT(url, '^/api/([a-zA-Z]+)/([0-9]+)$', 2)`, by hand.
fn api_id(url: &str) -> Option<String> {
    let (kind, id) = url.strip_prefix("/api/")?.split_once('/')?;
    let ok = !kind.is_empty()
        && kind.chars().all(|c| c.is_ascii_alphabetic())
        && !id.is_empty()
        && id.chars().all(|c| c.is_ascii_digit());
    ok.then(|| id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_and_projection_follow_sql_null_semantics() {
    let dir = TempDir::new("projection");
    let mut rng = Rng::new(11);
    let mut events = web_log(1, 2000, 5 * SEC, 6, 6);
    for e in &mut events {
        if rng.percent(3) {
            e.url = None;
        }
    }
    assert!(events.iter().any(|e| e.url.is_none()) && events.iter().any(|e| e.ip.is_none()));
    write_events(&dir.join("input.json"), &events);
    let out = dir.join("out");
    let cols = [
        "ts",
        "url_lower",
        "section",
        "id",
        "ip_prefix",
        "url_at_ip",
        "status_class",
        "big",
        "kib",
        "kind",
        "status_text",
        "hhmm",
        "minute_of_hour",
        "hour_of_day",
        "no_ip",
        "bytes_or_minus_one",
        "ip_or_unknown",
    ];
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), None),
        sink_table(
            "out",
            "ts TIMESTAMP(3), url_lower STRING, section STRING, id STRING, ip_prefix STRING, \
             url_at_ip STRING, status_class INT, big BIGINT, kib DOUBLE, kind STRING, \
             status_text STRING, hhmm STRING, minute_of_hour BIGINT, hour_of_day BIGINT, \
             no_ip BOOLEAN, bytes_or_minus_one INT, ip_or_unknown STRING",
            &out
        ),
        "INSERT INTO out
SELECT
  ts,
  LOWER(url) AS url_lower,
  UPPER(SPLIT_INDEX(url, '/', 1)) AS section,
  REGEXP_EXTRACT(url, '^/api/([a-zA-Z]+)/([0-9]+)$', 2) AS id,
  SUBSTRING(ip FROM 1 FOR 6) AS ip_prefix,
  CONCAT(url, '@', ip) AS url_at_ip,
  status / 100 AS status_class,
  CAST(bytes AS BIGINT) * 100000 + 7 AS big,
  CAST(bytes AS DOUBLE) / 1024 AS kib,
  CASE WHEN status >= 500 THEN 'server'
       WHEN status >= 400 THEN 'client'
       WHEN status IS NULL THEN 'unknown'
       ELSE 'ok' END AS kind,
  CAST(status AS STRING) AS status_text,
  DATE_FORMAT(ts, 'HH:mm') AS hhmm,
  EXTRACT(MINUTE FROM ts) AS minute_of_hour,
  HOUR(ts) AS hour_of_day,
  ip IS NULL AS no_ip,
  COALESCE(bytes, -1) AS bytes_or_minus_one,
  COALESCE(ip, 'unknown') AS ip_or_unknown
FROM logs
WHERE (status >= 400 OR bytes > 40000 OR status IS NULL)
  AND NOT (url = '/health' OR url LIKE '/static%');"
    );
    run(&sql).await.unwrap();

    let mut expected = Vec::new();
    for e in &events {
        let url = e.url.as_deref();
        let keep = and3(
            or3(
                or3(e.status.map(|s| s >= 400), e.bytes.map(|b| b > 40_000)),
                Some(e.status.is_none()),
            ),
            or3(
                url.map(|u| u == "/health"),
                url.map(|u| u.starts_with("/static")),
            )
            .map(|b| !b),
        );
        if keep != Some(true) {
            continue;
        }
        let kind = match e.status {
            Some(s) if s >= 500 => "server",
            Some(s) if s >= 400 => "client",
            None => "unknown",
            Some(_) => "ok",
        };
        expected.push(vec![
            json!(ts_text(e.ts)),
            opt(url.map(str::to_lowercase)),
            opt(url.and_then(|u| u.split('/').nth(1)).map(str::to_uppercase)),
            opt(url.and_then(api_id)),
            opt(e
                .ip
                .as_ref()
                .map(|ip| ip.chars().take(6).collect::<String>())),
            opt(url.zip(e.ip.as_ref()).map(|(u, ip)| format!("{u}@{ip}"))),
            opt(e.status.map(|s| s / 100)),
            opt(e.bytes.map(|b| i64::from(b) * 100_000 + 7)),
            opt(e.bytes.map(|b| f64::from(b) / 1024.0)),
            json!(kind),
            opt(e.status.map(|s| s.to_string())),
            json!(format!("{:02}:{:02}", e.ts / (60 * MIN), e.ts / MIN % 60)),
            json!(e.ts / MIN % 60),
            json!(e.ts / (60 * MIN)),
            json!(e.ip.is_none()),
            json!(e.bytes.unwrap_or(-1)),
            json!(e.ip.clone().unwrap_or_else(|| "unknown".into())),
        ]);
    }
    // The filter must keep some rows of every kind and drop others.
    assert!(expected.len() > 200 && expected.len() < events.len() / 2);
    assert_same_rows("filter and projection", &read_rows(&out, &cols), &expected);
}

// ---------------------------------------------------------------------------
// 2. TUMBLE aggregates with out-of-order rows inside the watermark bound
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumble_aggregates_match_exactly_with_out_of_order_rows_inside_the_bound() {
    let dir = TempDir::new("tumble");
    let events = web_log(2, 4000, 5 * SEC, 8, 4);
    let disorder = out_of_order(&events);
    assert!(
        disorder >= events.len() / 20,
        "only {disorder} rows out of order"
    );
    write_events(&dir.join("input.json"), &events);
    let out = dir.join("out");
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'5' SECOND")),
        sink_table(
            "out",
            "url STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), \
             window_time TIMESTAMP(3), cnt BIGINT, sum_bytes INT, min_bytes INT, max_bytes INT, \
             avg_bytes INT, cnt_bytes BIGINT, ips BIGINT",
            &out
        ),
        "INSERT INTO out
SELECT url, window_start, window_end, window_time, COUNT(*), SUM(bytes), MIN(bytes),
       MAX(bytes), AVG(bytes), COUNT(bytes), COUNT(DISTINCT ip)
FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY url, window_start, window_end;"
    );
    run(&sql).await.unwrap();

    let mut groups: BTreeMap<(String, i64), Agg> = BTreeMap::new();
    for e in &events {
        let key = (e.url.clone().unwrap(), floor(e.ts, MIN));
        groups.entry(key).or_default().add(e);
    }
    let expected: Vec<Vec<J>> = groups
        .iter()
        .map(|((url, start), a)| {
            vec![
                json!(url),
                json!(ts_text(*start)),
                json!(ts_text(start + MIN)),
                // window_end is exclusive: window_time is the last millisecond in.
                json!(ts_text(start + MIN - 1)),
                json!(a.rows),
                opt(a.sum),
                opt(a.min),
                opt(a.max),
                opt(a.avg()),
                json!(a.non_null),
                json!(a.ips.len()),
            ]
        })
        .collect();
    let cols = [
        "url",
        "window_start",
        "window_end",
        "window_time",
        "cnt",
        "sum_bytes",
        "min_bytes",
        "max_bytes",
        "avg_bytes",
        "cnt_bytes",
        "ips",
    ];
    assert_same_rows("TUMBLE 1 min per url", &read_rows(&out, &cols), &expected);
}

// ---------------------------------------------------------------------------
// 3. Late rows
// ---------------------------------------------------------------------------

/// What the engine does with event time, as read in engine/src/time/watermark.rs,
/// engine/src/operators/pane_window.rs and engine/src/runtime/task.rs:
///
/// - The source emits `max event time seen - bound - 1` (Flink's
///   `BoundedOutOfOrdernessWatermarks`), once per polled batch, after the batch
///   went through the chain: records of a batch see the watermark of the batches
///   before it. A file source's batch is up to `PipelineConfig::batch_size`
///   (1024) lines.
/// - A window `[start, end)` fires when the watermark reaches `end - 1` (its
///   `max_timestamp`); a record whose window satisfies `end - 1 <= watermark` is
///   late and dropped (no allowed lateness in SQL).
///
/// With `M` the highest event time before the row: late iff `end <= M - bound`,
/// i.e. the window end is at or below "max seen minus bound". Because the source
/// advances the watermark per batch, `M` is really "highest event time of the
/// earlier batches"; the input is built so that the answer is the same for every
/// batch size up to [`BATCH_INDEPENDENT_UP_TO`] rows (checked in the test).
const BATCH_INDEPENDENT_UP_TO: usize = 2048;

/// For each row in arrival order: whether it is late for TUMBLE windows of `size`
/// when the watermark lags `lag` rows behind (0: per record).
fn late_rows(events: &[Event], size: i64, bound: i64, lag: usize) -> Vec<bool> {
    let mut prefix_max = Vec::with_capacity(events.len() + 1);
    prefix_max.push(None);
    for e in events {
        let last: Option<i64> = *prefix_max.last().unwrap();
        prefix_max.push(Some(last.map_or(e.ts, |m: i64| m.max(e.ts))));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let seen = prefix_max[i.saturating_sub(lag)];
            seen.is_some_and(|m| floor(e.ts, size) + size <= m - bound)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_behind_a_fired_window_are_dropped_but_rows_beyond_the_bound_in_open_windows_count() {
    const BOUND: i64 = 5 * SEC;
    let dir = TempDir::new("late");
    let mut events = web_log(3, 4000, BOUND, 8, 3);
    let mut rng = Rng::new(33);
    let mut inserts: Vec<(usize, Event)> = Vec::new();
    // Delayed by more than the bound, but into a window that is still open: the
    // window end is above "max seen - bound", so the row counts.
    for pos in (500..3000).step_by(60) {
        let max = events[..pos].iter().map(|e| e.ts).max().unwrap();
        let wm = max - BOUND;
        let start = floor(wm, MIN);
        if wm - start > 3 * SEC {
            let ts = start + rng.range(wm - start - 2 * SEC);
            inserts.push((pos, Event::random(&mut rng, ts, 3)));
        }
    }
    let beyond_bound = inserts.len();
    // Far behind: event times in 10:00-10:06, after 20+ minutes of input.
    for k in 0..40 {
        let ts = T0 + rng.range(6 * MIN);
        inserts.push((3000 + 25 * k, Event::random(&mut rng, ts, 3)));
    }
    inserts.sort_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    for (pos, e) in inserts {
        events.insert(pos, e);
    }
    write_events(&dir.join("input.json"), &events);

    let late = late_rows(&events, MIN, BOUND, 0);
    assert_eq!(
        late,
        late_rows(&events, MIN, BOUND, BATCH_INDEPENDENT_UP_TO),
        "the input must not depend on how the source batches rows"
    );
    assert_eq!(late.iter().filter(|l| **l).count(), 40);
    let delayed_beyond_bound = {
        let mut max = i64::MIN;
        let mut n = 0;
        for (e, l) in events.iter().zip(&late) {
            if !l && e.ts < max.saturating_sub(BOUND) {
                n += 1;
            }
            max = max.max(e.ts);
        }
        n
    };
    assert!(beyond_bound >= 10 && delayed_beyond_bound >= beyond_bound);

    let out = dir.join("out");
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'5' SECOND")),
        sink_table(
            "out",
            "url STRING, window_start TIMESTAMP(3), cnt BIGINT, sum_bytes INT",
            &out
        ),
        "INSERT INTO out
SELECT url, window_start, COUNT(*), SUM(bytes)
FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY url, window_start, window_end;"
    );
    run(&sql).await.unwrap();

    let reference = |drop_late: bool| -> Vec<Vec<J>> {
        let mut groups: BTreeMap<(String, i64), Agg> = BTreeMap::new();
        for (e, l) in events.iter().zip(&late) {
            if drop_late && *l {
                continue;
            }
            let key = (e.url.clone().unwrap(), floor(e.ts, MIN));
            groups.entry(key).or_default().add(e);
        }
        groups
            .iter()
            .map(|((url, start), a)| {
                vec![
                    json!(url),
                    json!(ts_text(*start)),
                    json!(a.rows),
                    opt(a.sum),
                ]
            })
            .collect()
    };
    let expected = reference(true);
    assert_ne!(expected, reference(false), "the late rows must matter");
    let cols = ["url", "window_start", "cnt", "sum_bytes"];
    assert_same_rows(
        "TUMBLE with late rows dropped",
        &read_rows(&out, &cols),
        &expected,
    );
}

// ---------------------------------------------------------------------------
// 4. HOP
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_windows_count_each_row_in_every_window_it_falls_in() {
    let dir = TempDir::new("hop");
    let events = web_log(4, 3000, 5 * SEC, 8, 4);
    write_events(&dir.join("input.json"), &events);
    let out = dir.join("out");
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'5' SECOND")),
        sink_table(
            "out",
            "url STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT, \
             sum_bytes INT, ips BIGINT",
            &out
        ),
        "INSERT INTO out
SELECT url, window_start, window_end, COUNT(*), SUM(bytes), COUNT(DISTINCT ip)
FROM TABLE(HOP(TABLE logs, DESCRIPTOR(ts), INTERVAL '2' MINUTE, INTERVAL '10' MINUTE))
GROUP BY url, window_start, window_end;"
    );
    // Two parallel window and sink subtasks: the key exchange and a source
    // subtask without splits must not change the result.
    let options = RunOptions {
        bounded: true,
        parallelism: 2,
        ..Default::default()
    };
    run_with(&sql, options).await.unwrap();

    const SIZE: i64 = 10 * MIN;
    const SLIDE: i64 = 2 * MIN;
    let mut groups: BTreeMap<(String, i64), Agg> = BTreeMap::new();
    for e in &events {
        let mut start = floor(e.ts, SLIDE);
        while start > e.ts - SIZE {
            groups
                .entry((e.url.clone().unwrap(), start))
                .or_default()
                .add(e);
            start -= SLIDE;
        }
    }
    // Windows that start before the first row (09:52 ..) are included.
    assert!(groups.keys().any(|(_, s)| *s < T0));
    let expected: Vec<Vec<J>> = groups
        .iter()
        .map(|((url, start), a)| {
            vec![
                json!(url),
                json!(ts_text(*start)),
                json!(ts_text(start + SIZE)),
                json!(a.rows),
                opt(a.sum),
                json!(a.ips.len()),
            ]
        })
        .collect();
    let cols = [
        "url",
        "window_start",
        "window_end",
        "cnt",
        "sum_bytes",
        "ips",
    ];
    assert_same_rows(
        "HOP 10 min / 2 min per url",
        &read_rows(&out, &cols),
        &expected,
    );
}

// ---------------------------------------------------------------------------
// 5. SESSION
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_split_on_gaps_and_merge_when_a_row_bridges_two_sessions() {
    const GAP: i64 = MIN;
    const BOUND: i64 = MIN;
    let dir = TempDir::new("session");
    let mut rng = Rng::new(5);
    // (arrival, event): per ip, bursts of activity separated by idle time.
    let mut timed: Vec<(i64, Event)> = Vec::new();
    for u in 0..15 {
        let ip = format!("10.1.0.{u}");
        let mut t = T0 + rng.range(2 * MIN);
        while t < T0 + SPAN {
            for _ in 0..1 + rng.below(6) {
                let mut e = Event::random(&mut rng, t, 0);
                e.ip = Some(ip.clone());
                let delay = if rng.percent(8) { rng.range(BOUND) } else { 0 };
                timed.push((t + delay, e));
                t += rng.range(75 * SEC);
            }
            t += MIN + rng.range(5 * MIN);
        }
    }
    let explicit = |ip: &str, ts: i64, arrival: i64| {
        let mut e = Event::random(&mut Rng::new(ts as u64), ts, 0);
        e.ip = Some(ip.to_string());
        (arrival, e)
    };
    let at = |m: i64, s: i64| T0 + m * MIN + s * SEC;
    // 10:02:00 and 10:03:30 are 90 s apart (> gap): two sessions, until the row
    // of 10:02:45 arrives after both (50 s late, inside the bound) and touches
    // both: one session [10:02:00, 10:04:30) of 3 rows.
    timed.push(explicit("192.168.0.1", at(2, 0), at(2, 0)));
    timed.push(explicit("192.168.0.1", at(3, 30), at(3, 30)));
    timed.push(explicit("192.168.0.1", at(2, 45), at(3, 35)));
    // The same two rows without the bridge stay two sessions.
    timed.push(explicit("192.168.0.2", at(2, 0), at(2, 0)));
    timed.push(explicit("192.168.0.2", at(3, 30), at(3, 30)));
    // Exactly one gap apart: [10:20, 10:21) and [10:21, 10:22) touch, and
    // touching windows merge (Flink's TimeWindow.intersects).
    timed.push(explicit("192.168.0.3", at(20, 0), at(20, 0)));
    timed.push(explicit("192.168.0.3", at(21, 0), at(21, 0)));
    timed.sort_by_key(|(arrival, _)| *arrival);
    let events: Vec<Event> = timed.into_iter().map(|(_, e)| e).collect();
    write_events(&dir.join("input.json"), &events);

    let out = dir.join("out");
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'1' MINUTE")),
        sink_table(
            "out",
            "ip STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT, sum_bytes INT",
            &out
        ),
        "INSERT INTO out
SELECT ip, window_start, window_end, COUNT(*), SUM(bytes)
FROM TABLE(SESSION(TABLE logs PARTITION BY ip, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY ip, window_start, window_end;"
    );
    run(&sql).await.unwrap();

    // Per ip, by event time: a row starts a new session unless its window
    // [ts, ts + gap) intersects (or touches) the current session.
    let mut by_ip: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_ip.entry(e.ip.clone().unwrap()).or_default().push(e);
    }
    let mut expected = Vec::new();
    for (ip, mut rows) in by_ip {
        rows.sort_by_key(|e| e.ts);
        let mut sessions: Vec<(i64, i64, Agg)> = Vec::new();
        for e in rows {
            match sessions.last_mut() {
                Some((_, end, agg)) if e.ts <= *end => {
                    *end = (*end).max(e.ts + GAP);
                    agg.add(e);
                }
                _ => {
                    let mut agg = Agg::default();
                    agg.add(e);
                    sessions.push((e.ts, e.ts + GAP, agg));
                }
            }
        }
        for (start, end, a) in sessions {
            expected.push(vec![
                json!(ip),
                json!(ts_text(start)),
                json!(ts_text(end)),
                json!(a.rows),
                opt(a.sum),
            ]);
        }
    }
    let has = |ip: &str, start: i64, end: i64, n: i64| {
        expected.contains(&vec![
            json!(ip),
            json!(ts_text(start)),
            json!(ts_text(end)),
            json!(n),
            expected
                .iter()
                .find(|r| r[0] == json!(ip) && r[1] == json!(ts_text(start)))
                .map_or(J::Null, |r| r[4].clone()),
        ])
    };
    assert!(has("192.168.0.1", at(2, 0), at(4, 30), 3), "bridged");
    assert!(has("192.168.0.2", at(2, 0), at(3, 0), 1), "not bridged");
    assert!(has("192.168.0.2", at(3, 30), at(4, 30), 1), "not bridged");
    assert!(has("192.168.0.3", at(20, 0), at(22, 0), 2), "touching");
    assert!(expected.len() > 100, "{} sessions", expected.len());
    let cols = ["ip", "window_start", "window_end", "cnt", "sum_bytes"];
    assert_same_rows(
        "SESSION gap 1 min per ip",
        &read_rows(&out, &cols),
        &expected,
    );
}

// ---------------------------------------------------------------------------
// 6. GROUP BY without a window: updates
// ---------------------------------------------------------------------------

const UPDATES: &str = "SELECT url, COUNT(*) AS cnt, SUM(bytes) AS total, MAX(status) AS worst
FROM logs
GROUP BY url";

#[test]
fn updating_group_by_is_planned_as_upserts_and_refused_by_file_sinks() {
    let input = Path::new("/nonexistent/input.json");
    let print = format!(
        "{}CREATE TABLE out (url STRING, cnt BIGINT, total INT, worst INT) WITH ('connector' = 'print');\nINSERT INTO out {UPDATES};",
        logs_table("logs", input, None)
    );
    let plan = SqlJob::compile(&print).unwrap().explain();
    assert!(plan.contains("[print, upsert"), "{plan}");
    let group = plan
        .lines()
        .find(|l| l.contains("GroupAggregate"))
        .unwrap_or_else(|| panic!("no GroupAggregate in\n{plan}"));
    assert!(
        group.contains("by [url]") && group.contains("emits updates"),
        "{plan}"
    );

    let files = format!(
        "{}{}INSERT INTO out {UPDATES};",
        logs_table("logs", input, None),
        sink_table(
            "out",
            "url STRING, cnt BIGINT, total INT, worst INT",
            Path::new("/nonexistent/out")
        )
    );
    let err = SqlJob::compile(&files).unwrap_err().to_string();
    assert!(
        err.contains("emits updates") && err.contains("files take only appends"),
        "{err}"
    );
}

#[test]
fn a_sink_key_other_than_the_group_keys_of_an_updating_result_is_refused() {
    let input = Path::new("/nonexistent/input.json");
    let kafka = |key: &str| {
        format!(
            "{}CREATE TABLE out (url STRING, cnt BIGINT, total INT, worst INT{key}) WITH ('connector' = 'kafka', 'topic' = 'o', 'properties.bootstrap.servers' = '127.0.0.1:1'{});\nINSERT INTO out {UPDATES};",
            logs_table("logs", input, None),
            if key.is_empty() {
                ", 'key.fields' = 'url;cnt'"
            } else {
                ""
            }
        )
    };
    // key.fields (url, cnt): a superset with a column that changes per version.
    let err = SqlJob::compile(&kafka("")).unwrap_err().to_string();
    assert!(
        err.contains("table out is keyed by (url, cnt)")
            && err.contains("keyed by its GROUP BY columns (url)"),
        "{err}"
    );
    // PRIMARY KEY (worst): not the group key at all.
    let err = SqlJob::compile(&kafka(", PRIMARY KEY (worst) NOT ENFORCED"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("keyed by (worst)") && err.contains("GROUP BY columns (url)"),
        "{err}"
    );
    // The group key itself is accepted.
    SqlJob::compile(&kafka(", PRIMARY KEY (url) NOT ENFORCED")).unwrap();
    let postgres = format!(
        "{}CREATE TABLE out (url STRING, cnt BIGINT, total INT, worst INT, PRIMARY KEY (url, worst) NOT ENFORCED) WITH ('connector' = 'postgres', 'url' = 'host=127.0.0.1 port=1');\nINSERT INTO out {UPDATES};",
        logs_table("logs", input, None)
    );
    let err = SqlJob::compile(&postgres).unwrap_err().to_string();
    assert!(err.contains("keyed by (url, worst)"), "{err}");
}

/// Names the input file for [`updating_group_by_print_child`].
const CHILD_INPUT: &str = "STROM_SQL_SEMANTICS_UPDATES_INPUT";

/// Writes `events` as the input of the ignored test `child` (in a temporary
/// directory named after `test`), runs it in a child process and returns its
/// standard output.
fn print_child_over(test: &str, child: &str, events: &[Event]) -> String {
    let dir = TempDir::new(test);
    let input = dir.join("input.json");
    write_events(&input, events);
    print_child(child, &[(CHILD_INPUT, &input.display().to_string())])
}

/// In a child process [`print_child_over`] started: runs `script` (print sink
/// tables and INSERTs) over its input as table `logs`; in a plain test run,
/// nothing.
async fn run_over_child_input(script: &str) {
    let Ok(input) = std::env::var(CHILD_INPUT) else {
        return;
    };
    let logs = logs_table("logs", Path::new(&input), None);
    run(&format!("{logs}{script}")).await.unwrap();
}

/// The print sink writes to the process's standard output (not through the test
/// harness's capture), so its update stream is read by running this test in a
/// child process: the parent below sets [`CHILD_INPUT`] and reads its stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of updating_group_by_emits_the_running_aggregate_per_row"]
async fn updating_group_by_print_child() {
    run_over_child_input(&format!(
        "CREATE TABLE out (url STRING, cnt BIGINT, total INT, worst INT) WITH ('connector' = 'print', 'print-identifier' = 'upd');\nINSERT INTO out {UPDATES};"
    ))
    .await;
}

#[test]
fn updating_group_by_emits_the_running_aggregate_per_row() {
    let events = web_log(6, 1500, 5 * SEC, 8, 5);
    let stdout = print_child_over("updates", "updating_group_by_print_child", &events);
    // `upd> +U[url, cnt, total, worst]`, per url in the order emitted.
    let mut actual: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stdout.lines() {
        // The harness prints `test name ... ` without a newline before the
        // child's first line.
        let Some(at) = line.find("upd> ") else {
            continue;
        };
        let row = &line[at + "upd> ".len()..];
        let fields = row
            .strip_prefix("+U[")
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or_else(|| panic!("not an update: {line}"));
        let (url, rest) = fields.split_once(", ").unwrap();
        actual
            .entry(url.to_string())
            .or_default()
            .push(rest.to_string());
    }
    // Reference: one update per input row of the key, in arrival order, with the
    // aggregates of the rows so far.
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut state: BTreeMap<String, (i64, Option<i64>, Option<i32>)> = BTreeMap::new();
    let text = |v: Option<String>| v.unwrap_or_else(|| "NULL".into());
    for e in &events {
        let url = e.url.clone().unwrap();
        let s = state.entry(url.clone()).or_default();
        s.0 += 1;
        if let Some(b) = e.bytes {
            s.1 = Some(s.1.unwrap_or(0) + i64::from(b));
        }
        if let Some(st) = e.status {
            s.2 = Some(s.2.map_or(st, |m| m.max(st)));
        }
        expected.entry(url).or_default().push(format!(
            "{}, {}, {}",
            s.0,
            text(s.1.map(|x| x.to_string())),
            text(s.2.map(|x| x.to_string()))
        ));
    }
    assert_eq!(actual.len(), expected.len(), "keys: {:?}", actual.keys());
    for (url, want) in &expected {
        assert_eq!(actual.get(url), Some(want), "updates of {url}");
    }
}

/// HAVING over a GROUP BY, into print sink `hav`: keys drop out when their count
/// becomes a multiple of 3 and their worst status reaches 400, and come back.
const HAVING: &str = "SELECT url, COUNT(*) AS cnt, MAX(status) AS worst FROM logs GROUP BY url
HAVING COUNT(*) % 3 <> 0 OR MAX(status) < 400";

/// WHERE over an updating subquery, into print sink `sub`: the key is the second
/// column, and the filtered column is not projected.
const FILTERED_SUBQUERY: &str = "SELECT cnt, url
FROM (SELECT url, COUNT(*) AS cnt, SUM(bytes) AS total FROM logs GROUP BY url)
WHERE total % 2 = 0";

/// A WHERE over a HAVING, into print sink `two`: the outer filter sees the
/// inner one's changes (upserts that replace a row, deletes of one).
const TWO_FILTERS: &str = "SELECT url, cnt
FROM (SELECT url, COUNT(*) AS cnt, SUM(bytes) AS total FROM logs GROUP BY url HAVING COUNT(*) % 3 <> 0)
WHERE total % 2 = 0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of filters_over_updates_delete_a_key_when_its_new_version_fails_and_its_last_one_passed"]
async fn filtered_updates_print_child() {
    run_over_child_input(&format!(
        "CREATE TABLE hav (url STRING, cnt BIGINT, worst INT) WITH ('connector' = 'print', 'print-identifier' = 'hav');
CREATE TABLE sub (cnt BIGINT, url STRING) WITH ('connector' = 'print', 'print-identifier' = 'sub');
CREATE TABLE two (url STRING, cnt BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'two');
INSERT INTO hav {HAVING};
INSERT INTO sub {FILTERED_SUBQUERY};
INSERT INTO two {TWO_FILTERS};"
    ))
    .await;
}

#[test]
fn filters_over_updates_delete_a_key_when_its_new_version_fails_and_its_last_one_passed() {
    let events = web_log(11, 1200, 5 * SEC, 8, 10);
    let stdout = print_child_over("filtered-updates", "filtered_updates_print_child", &events);
    let (hav, sub, two) = (
        printed_changes(&stdout, "hav", 0),
        printed_changes(&stdout, "sub", 1),
        printed_changes(&stdout, "two", 0),
    );

    // Reference: the running aggregates of each url after each of its rows, and
    // the change each filter makes of that version: an upsert if it passes, else a
    // delete of the previous version if that passed, else nothing.
    let text = |v: Option<i64>| v.map_or_else(|| "NULL".to_string(), |x| x.to_string());
    let mut state: BTreeMap<String, (i64, Option<i32>, Option<i64>)> = BTreeMap::new();
    let mut want_hav: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
    let mut want_sub: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
    let mut want_two: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
    // Per sink and url: the row it holds now.
    let mut held: BTreeMap<(&str, String), String> = BTreeMap::new();
    let mut change = |want: &mut BTreeMap<String, Vec<(bool, String)>>,
                      sink: &'static str,
                      url: &str,
                      pass: bool,
                      row: String| {
        let key = (sink, url.to_string());
        if pass {
            held.insert(key, row.clone());
            want.entry(url.to_string()).or_default().push((true, row));
        } else if let Some(old) = held.remove(&key) {
            want.entry(url.to_string()).or_default().push((false, old));
        }
    };
    for e in &events {
        let url = e.url.clone().unwrap();
        let s = state.entry(url.clone()).or_default();
        s.0 += 1;
        if let Some(st) = e.status {
            s.1 = Some(s.1.map_or(st, |m| m.max(st)));
        }
        if let Some(b) = e.bytes {
            s.2 = Some(s.2.unwrap_or(0) + i64::from(b));
        }
        let (cnt, worst, total) = *s;
        let worst_text = text(worst.map(i64::from));
        // COUNT(*) % 3 <> 0 OR MAX(status) < 400, with NULL < 400 unknown.
        let pass = cnt % 3 != 0 || worst.is_some_and(|w| w < 400);
        let row = format!("{url}, {cnt}, {worst_text}");
        change(&mut want_hav, "hav", &url, pass, row);
        // total % 2 = 0, with a NULL total unknown.
        let pass = total.is_some_and(|t| t % 2 == 0);
        change(&mut want_sub, "sub", &url, pass, format!("{cnt}, {url}"));
        let pass = cnt % 3 != 0 && pass;
        change(&mut want_two, "two", &url, pass, format!("{url}, {cnt}"));
    }
    assert_eq!(hav, want_hav, "HAVING: the changes per key");
    assert_eq!(sub, want_sub, "WHERE over a subquery: the changes per key");
    assert_eq!(two, want_two, "WHERE over a HAVING: the changes per key");

    // The final tables equal the filters of the final aggregates.
    let final_hav: BTreeMap<String, String> = state
        .iter()
        .filter(|(_, (cnt, worst, _))| cnt % 3 != 0 || worst.is_some_and(|w| w < 400))
        .map(|(url, (cnt, worst, _))| {
            (
                url.clone(),
                format!("{url}, {cnt}, {}", text(worst.map(i64::from))),
            )
        })
        .collect();
    let final_sub: BTreeMap<String, String> = state
        .iter()
        .filter(|(_, (_, _, total))| total.is_some_and(|t| t % 2 == 0))
        .map(|(url, (cnt, _, _))| (url.clone(), format!("{cnt}, {url}")))
        .collect();
    assert_eq!(upsert_table(&hav), final_hav, "HAVING: the final table");
    assert_eq!(upsert_table(&sub), final_sub, "WHERE: the final table");
    let final_two: BTreeMap<String, String> = state
        .iter()
        .filter(|(_, (cnt, _, total))| cnt % 3 != 0 && total.is_some_and(|t| t % 2 == 0))
        .map(|(url, (cnt, _, _))| (url.clone(), format!("{url}, {cnt}")))
        .collect();
    assert_eq!(upsert_table(&two), final_two, "both: the final table");
    // A key is deleted only while it has a row.
    for (what, changes) in [("HAVING", &hav), ("WHERE", &sub), ("both", &two)] {
        for (k, cs) in changes {
            assert!(
                cs.first().is_none_or(|c| c.0) && !cs.windows(2).any(|w| !w[0].0 && !w[1].0),
                "{what}: {k} deleted without a row: {cs:?}"
            );
        }
    }
    // The input makes both filters drop and readmit keys.
    for (what, changes) in [("HAVING", &hav), ("WHERE", &sub), ("both", &two)] {
        let readmitted = changes
            .values()
            .filter(|cs| cs.windows(2).any(|w| !w[0].0 && w[1].0))
            .count();
        assert!(
            readmitted > 0,
            "{what}: no key was deleted and upserted again"
        );
    }
    assert!(
        final_hav.len() < state.len() && final_sub.len() < state.len(),
        "some keys end deleted: {final_hav:?} {final_sub:?}"
    );
}

/// Aggregates over updates whose group key (ip) the inner SELECT list leaves
/// out, as Nexmark q4 does, into print sink `ret`: the inner HAVING deletes an
/// (url, ip) row when its count becomes a multiple of 3 and brings it back.
const RETRACTED: &str = "SELECT url, COUNT(*) AS ips, SUM(n) AS total, AVG(n) AS mean,
  MIN(big) AS low, MAX(big) AS high, COUNT(DISTINCT n) AS counts
FROM (SELECT url, COUNT(*) AS n, MAX(bytes) AS big FROM logs GROUP BY url, ip
      HAVING COUNT(*) % 3 <> 0)
GROUP BY url";

/// A histogram of the running counts, into print sink `his`: every row moves
/// its url from the group of its old count to the group of its new one, and a
/// group left without urls is deleted.
const HISTOGRAM: &str = "SELECT n, COUNT(*) AS urls, MIN(url) AS first_url, MAX(url) AS last_url
FROM (SELECT url, COUNT(*) AS n FROM logs GROUP BY url)
GROUP BY n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of aggregates_over_updates_retract_the_row_each_change_replaces"]
async fn retracting_aggregates_print_child() {
    run_over_child_input(&format!(
        "CREATE TABLE ret (url STRING, ips BIGINT, total BIGINT, mean BIGINT, low INT, high INT, counts BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'ret');
CREATE TABLE his (n BIGINT, urls BIGINT, first_url STRING, last_url STRING) WITH ('connector' = 'print', 'print-identifier' = 'his');
INSERT INTO ret {RETRACTED};
INSERT INTO his {HISTOGRAM};"
    ))
    .await;
}

/// The change an upsert sink gets when a key's result goes from `held` to
/// `now` (`None`: the key has no row): an upsert of a new result, a delete of a
/// row no longer there, nothing when the result did not change.
fn expect_change(
    want: &mut BTreeMap<String, Vec<(bool, String)>>,
    held: &mut BTreeMap<String, String>,
    key: &str,
    now: Option<String>,
) {
    match now {
        Some(row) if held.get(key) != Some(&row) => {
            held.insert(key.to_string(), row.clone());
            want.entry(key.to_string()).or_default().push((true, row));
        }
        Some(_) => {}
        None => {
            if let Some(old) = held.remove(key) {
                want.entry(key.to_string()).or_default().push((false, old));
            }
        }
    }
}

#[test]
fn aggregates_over_updates_retract_the_row_each_change_replaces() {
    let events = web_log(23, 1500, 5 * SEC, 8, 10);
    let stdout = print_child_over("retracting", "retracting_aggregates_print_child", &events);
    let (ret, his) = (
        printed_changes(&stdout, "ret", 0),
        printed_changes(&stdout, "his", 0),
    );

    // Reference: after each row, the outer results recomputed from scratch over
    // the inner rows as they are now (no retraction involved).
    let text = |v: Option<i64>| v.map_or_else(|| "NULL".to_string(), |x| x.to_string());
    // (url, ip) -> (count, max bytes); url -> count.
    let mut inner: BTreeMap<(String, Option<String>), (i64, Option<i32>)> = BTreeMap::new();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let (mut want_ret, mut held_ret) = (BTreeMap::new(), BTreeMap::new());
    let (mut want_his, mut held_his) = (BTreeMap::new(), BTreeMap::new());
    for e in &events {
        let url = e.url.clone().unwrap();
        let g = inner.entry((url.clone(), e.ip.clone())).or_default();
        g.0 += 1;
        if let Some(b) = e.bytes {
            g.1 = Some(g.1.map_or(b, |m| m.max(b)));
        }
        // The rows of this url that pass the inner HAVING.
        let rows: Vec<(i64, Option<i32>)> = inner
            .iter()
            .filter(|((u, _), (n, _))| *u == url && n % 3 != 0)
            .map(|(_, r)| *r)
            .collect();
        let now = (!rows.is_empty()).then(|| {
            let total: i64 = rows.iter().map(|r| r.0).sum();
            let bigs: Vec<i64> = rows.iter().filter_map(|r| r.1.map(i64::from)).collect();
            let distinct: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
            format!(
                "{url}, {}, {total}, {}, {}, {}, {}",
                rows.len(),
                total / rows.len() as i64,
                text(bigs.iter().min().copied()),
                text(bigs.iter().max().copied()),
                distinct.len()
            )
        });
        expect_change(&mut want_ret, &mut held_ret, &url, now);

        let n = counts.entry(url.clone()).or_default();
        *n += 1;
        let n = *n;
        // The url left the group of n - 1 (retracted first) and joined that of n.
        for group in [n - 1, n] {
            let urls: Vec<&String> = counts
                .iter()
                .filter(|(_, c)| **c == group)
                .map(|(u, _)| u)
                .collect();
            let now = match (urls.first(), urls.last()) {
                (Some(first), Some(last)) if group > 0 => {
                    Some(format!("{group}, {}, {first}, {last}", urls.len()))
                }
                _ => None,
            };
            expect_change(&mut want_his, &mut held_his, &group.to_string(), now);
        }
    }
    assert_eq!(
        ret, want_ret,
        "aggregates over keyless updates: the changes per url"
    );
    assert_eq!(his, want_his, "histogram of counts: the changes per count");

    // The final tables: the aggregates of the final inner results.
    assert_eq!(upsert_table(&ret), held_ret, "the final table per url");
    assert_eq!(upsert_table(&his), held_his, "the final histogram");
    let final_counts: BTreeSet<String> = counts.values().map(|c| c.to_string()).collect();
    assert_eq!(
        upsert_table(&his).keys().cloned().collect::<BTreeSet<_>>(),
        final_counts
    );
    // The input makes the inner HAVING delete rows the outer aggregates took
    // back, and empties histogram groups.
    let deletes = |c: &BTreeMap<String, Vec<(bool, String)>>| {
        c.values().flatten().filter(|(upsert, _)| !upsert).count()
    };
    assert!(
        deletes(&his) > 10,
        "histogram groups deleted: {}",
        deletes(&his)
    );
    let shrank = ret
        .values()
        .flat_map(|cs| cs.windows(2))
        .filter(|w| {
            let ips = |r: &str| r.split(", ").nth(1).unwrap().parse::<i64>().unwrap();
            ips(&w[1].1) < ips(&w[0].1)
        })
        .count();
    assert!(shrank > 0, "no url lost an (url, ip) row to the HAVING");
}

// ---------------------------------------------------------------------------
// 7. Subqueries, CTEs, views, aggregates over window results
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subqueries_in_from_filter_and_project_like_their_flat_equivalents() {
    let dir = TempDir::new("derived");
    let events = web_log(7, 3000, 5 * SEC, 8, 4);
    write_events(&dir.join("input.json"), &events);
    let (busy, big) = (dir.join("busy"), dir.join("big"));
    let sql = format!(
        "{}{}{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'5' SECOND")),
        sink_table(
            "busy",
            "url STRING, window_start TIMESTAMP(3), cnt BIGINT, ips BIGINT",
            &busy
        ),
        sink_table("big", "u STRING, kb INT", &big),
        "INSERT INTO busy
SELECT t.url, t.window_start, t.cnt, t.ips
FROM (
  SELECT url, window_start, window_end, COUNT(*) AS cnt, COUNT(DISTINCT ip) AS ips
  FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(ts), INTERVAL '2' MINUTE))
  GROUP BY url, window_start, window_end
) AS t
WHERE t.cnt >= 26 AND t.ips > 20;
",
        "INSERT INTO big
SELECT u, kb FROM (SELECT LOWER(url) AS u, bytes / 1000 AS kb FROM logs) WHERE kb >= 45;"
    );
    run(&sql).await.unwrap();

    let mut groups: BTreeMap<(String, i64), Agg> = BTreeMap::new();
    for e in &events {
        groups
            .entry((e.url.clone().unwrap(), floor(e.ts, 2 * MIN)))
            .or_default()
            .add(e);
    }
    let expected: Vec<Vec<J>> = groups
        .iter()
        .filter(|(_, a)| a.rows >= 26 && a.ips.len() > 20)
        .map(|((url, start), a)| {
            vec![
                json!(url),
                json!(ts_text(*start)),
                json!(a.rows),
                json!(a.ips.len()),
            ]
        })
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < groups.len() / 2,
        "{} of {} windows pass",
        expected.len(),
        groups.len()
    );
    assert_same_rows(
        "filter over a window aggregate in FROM",
        &read_rows(&busy, &["url", "window_start", "cnt", "ips"]),
        &expected,
    );

    let expected: Vec<Vec<J>> = events
        .iter()
        .filter_map(|e| {
            let kb = e.bytes? / 1000;
            (kb >= 45).then(|| vec![json!(e.url.clone().unwrap().to_lowercase()), json!(kb)])
        })
        .collect();
    assert!(!expected.is_empty());
    assert_same_rows(
        "filter over a projection in FROM",
        &read_rows(&big, &["u", "kb"]),
        &expected,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cte_keeps_the_time_attribute_for_a_window_over_it() {
    let dir = TempDir::new("cte");
    let events = web_log(8, 3000, 5 * SEC, 8, 4);
    write_events(&dir.join("input.json"), &events);
    let out = dir.join("out");
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'5' SECOND")),
        sink_table(
            "out",
            "url STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), errors BIGINT, \
             first_status INT, bytes_sum INT",
            &out
        ),
        "INSERT INTO out
WITH errors AS (
  SELECT ts, url, status, bytes FROM logs WHERE status >= 400
),
server_errors AS (
  SELECT * FROM errors WHERE status >= 500 OR url = '/Login'
)
SELECT url, window_start, window_end, COUNT(*), MIN(status), SUM(bytes)
FROM TABLE(TUMBLE(TABLE server_errors, DESCRIPTOR(ts), INTERVAL '5' MINUTE))
GROUP BY url, window_start, window_end;"
    );
    run(&sql).await.unwrap();

    let mut groups: BTreeMap<(String, i64), (i64, i32, Option<i64>)> = BTreeMap::new();
    for e in &events {
        let (Some(status), Some(url)) = (e.status, e.url.clone()) else {
            continue;
        };
        if status < 400 || !(status >= 500 || url == "/Login") {
            continue;
        }
        let g = groups
            .entry((url, floor(e.ts, 5 * MIN)))
            .or_insert((0, i32::MAX, None));
        g.0 += 1;
        g.1 = g.1.min(status);
        if let Some(b) = e.bytes {
            g.2 = Some(g.2.unwrap_or(0) + i64::from(b));
        }
    }
    let expected: Vec<Vec<J>> = groups
        .iter()
        .map(|((url, start), (n, min, sum))| {
            vec![
                json!(url),
                json!(ts_text(*start)),
                json!(ts_text(start + 5 * MIN)),
                json!(n),
                json!(min),
                opt(*sum),
            ]
        })
        .collect();
    let cols = [
        "url",
        "window_start",
        "window_end",
        "errors",
        "first_status",
        "bytes_sum",
    ];
    assert_same_rows(
        "TUMBLE over chained CTEs",
        &read_rows(&out, &cols),
        &expected,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_of_per_minute_counts_rolls_up_into_ten_minute_windows() {
    let dir = TempDir::new("view");
    let events = web_log(9, 4000, 5 * SEC, 8, 4);
    write_events(&dir.join("input.json"), &events);
    let out = dir.join("out");
    let sql = format!(
        "{}{}{}",
        logs_table("logs", &dir.join("input.json"), Some("'5' SECOND")),
        sink_table(
            "out",
            "url STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), peak BIGINT, \
             total BIGINT, minutes BIGINT",
            &out
        ),
        "CREATE VIEW per_minute AS
SELECT url, window_start, window_end, window_time, COUNT(*) AS cnt
FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY url, window_start, window_end;

INSERT INTO out
SELECT url, window_start, window_end, MAX(cnt), SUM(cnt), COUNT(*)
FROM TABLE(TUMBLE(TABLE per_minute, DESCRIPTOR(window_time), INTERVAL '10' MINUTE))
GROUP BY url, window_start, window_end;"
    );
    run(&sql).await.unwrap();

    let mut per_minute: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for e in &events {
        *per_minute
            .entry((e.url.clone().unwrap(), floor(e.ts, MIN)))
            .or_default() += 1;
    }
    // A minute's row has event time window_time = its end - 1 ms.
    let mut rollup: BTreeMap<(String, i64), (i64, i64, i64)> = BTreeMap::new();
    for ((url, start), cnt) in &per_minute {
        let window_time = start + MIN - 1;
        let r = rollup
            .entry((url.clone(), floor(window_time, 10 * MIN)))
            .or_default();
        r.0 = r.0.max(*cnt);
        r.1 += cnt;
        r.2 += 1;
    }
    let expected: Vec<Vec<J>> = rollup
        .iter()
        .map(|((url, start), (peak, total, minutes))| {
            vec![
                json!(url),
                json!(ts_text(*start)),
                json!(ts_text(start + 10 * MIN)),
                json!(peak),
                json!(total),
                json!(minutes),
            ]
        })
        .collect();
    let cols = [
        "url",
        "window_start",
        "window_end",
        "peak",
        "total",
        "minutes",
    ];
    assert_same_rows(
        "10-minute rollup of a per-minute view",
        &read_rows(&out, &cols),
        &expected,
    );
}

// ---------------------------------------------------------------------------
// 8. CSV
// ---------------------------------------------------------------------------

fn csv_field(s: &str, force_quotes: bool) -> String {
    if force_quotes || s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_source_skips_its_header_and_reads_quoted_fields() {
    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (X11, Linux x86_64)",
        "curl/8.5.0",
        "say \"hi\", then leave",
        "",
        "comma,at,every,step",
        "\"quoted\"",
    ];
    let dir = TempDir::new("csv");
    let mut rng = Rng::new(10);
    let mut text = String::from("ts,url,agent,status,bytes\n");
    let mut rows = Vec::new();
    for i in 0..600 {
        let ts = T0 + i * 3 * SEC + rng.range(3 * SEC);
        let url = rng.pick(URLS);
        let agent = rng.pick(AGENTS);
        let status = [200, 404, 500][rng.below(3) as usize];
        let bytes = (!rng.percent(10)).then(|| rng.range(10_000));
        text.push_str(&format!(
            "{},{},{},{status},{}\n",
            ts_text(ts),
            csv_field(url, rng.percent(30)),
            csv_field(agent, rng.percent(30)),
            bytes.map_or(String::new(), |b| b.to_string())
        ));
        rows.push((ts, url, agent, status, bytes));
    }
    std::fs::write(dir.join("input.csv"), text).unwrap();
    let out = dir.join("out");
    let sql = format!(
        "CREATE TABLE logs (ts TIMESTAMP(3), url STRING, agent STRING, status INT, bytes BIGINT)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'csv.header' = 'true');
{}INSERT INTO out
SELECT ts, url, agent, CHAR_LENGTH(agent), status, COALESCE(bytes, 0)
FROM logs WHERE status <> 404;",
        dir.join("input.csv").display(),
        sink_table(
            "out",
            "ts TIMESTAMP(3), url STRING, agent STRING, agent_len INT, status INT, bytes BIGINT",
            &out
        )
    );
    run(&sql).await.unwrap();
    let expected: Vec<Vec<J>> = rows
        .iter()
        .filter(|r| r.3 != 404)
        .map(|(ts, url, agent, status, bytes)| {
            vec![
                json!(ts_text(*ts)),
                json!(url),
                json!(agent),
                json!(agent.chars().count()),
                json!(status),
                json!(bytes.unwrap_or(0)),
            ]
        })
        .collect();
    let cols = ["ts", "url", "agent", "agent_len", "status", "bytes"];
    assert_same_rows("CSV with header", &read_rows(&out, &cols), &expected);
}

/// A regular join emits every pair of rows with equal keys once, whatever the
/// order they arrive in: here the left input has no watermark at all, the
/// right one is out of order by more than its watermark bound, and ips repeat
/// on both sides (duplicates). NULL keys join nothing; conditions on one side
/// and on both follow SQL's three-valued logic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regular_join_pairs_every_matching_row_in_any_order_without_watermarks() {
    let dir = TempDir::new("regular-join");
    let left = web_log(21, 300, 5 * SEC, 20, 8);
    let right = web_log(22, 200, 60 * SEC, 30, 8);
    assert!(out_of_order(&right) > 5);
    write_events(&dir.join("left.json"), &left);
    write_events(&dir.join("right.json"), &right);
    let out = dir.join("out");
    let cols = ["lts", "rts", "ip", "lbytes", "rbytes"];
    let sql = format!(
        "{}{}{}INSERT INTO out
SELECT a.ts, b.ts, b.ip, a.bytes, b.bytes
FROM l a JOIN r b ON a.ip = b.ip
WHERE a.status = 200 AND b.bytes > 1000 AND a.bytes < b.bytes;",
        logs_table("l", &dir.join("left.json"), None),
        logs_table("r", &dir.join("right.json"), Some("'1' SECOND")),
        sink_table(
            "out",
            "lts TIMESTAMP(3), rts TIMESTAMP(3), ip STRING, lbytes INT, rbytes INT",
            &out
        ),
    );
    let plan = SqlJob::compile(&sql).unwrap().explain();
    assert!(
        plan.contains("RegularJoin on [a.ip] = [b.ip] where a.bytes < b.bytes"),
        "{plan}"
    );
    run(&sql).await.unwrap();
    let mut expected = Vec::new();
    for a in &left {
        for b in &right {
            let (Some(ip), Some(bip)) = (&a.ip, &b.ip) else {
                continue;
            };
            let (Some(ab), Some(bb)) = (a.bytes, b.bytes) else {
                continue;
            };
            if ip == bip && a.status == Some(200) && bb > 1000 && ab < bb {
                expected.push(vec![
                    J::from(ts_text(a.ts)),
                    J::from(ts_text(b.ts)),
                    J::from(bip.clone()),
                    J::from(ab),
                    J::from(bb),
                ]);
            }
        }
    }
    assert!(expected.len() > 100, "{}", expected.len());
    assert_same_rows("regular join", &read_rows(&out, &cols), &expected);
    // A state TTL longer than the run expires nothing.
    std::fs::remove_dir_all(&out).unwrap();
    let sql = format!("SET 'table.exec.state.ttl' = '1 h';\n{sql}");
    let plan = SqlJob::compile(&sql).unwrap().explain();
    assert!(plan.contains("state TTL 60 min"), "{plan}");
    run(&sql).await.unwrap();
    assert_same_rows(
        "regular join with a TTL",
        &read_rows(&out, &cols),
        &expected,
    );
    // Computed keys (kept after the row's own columns in the join's state) pair
    // the same rows, and the output has only the selected columns.
    std::fs::remove_dir_all(&out).unwrap();
    let sql = sql.replace(
        "ON a.ip = b.ip",
        "ON CONCAT(a.ip, '/') = CONCAT(b.ip, '/') AND a.status + 0 = a.status",
    );
    let plan = SqlJob::compile(&sql).unwrap().explain();
    assert!(plan.contains("RegularJoin on [CONCAT("), "{plan}");
    run(&sql).await.unwrap();
    assert_same_rows(
        "regular join on computed keys",
        &read_rows(&out, &cols),
        &expected,
    );
}

// ---------------------------------------------------------------------------
// 9. Errors: one clear message, never a panic
// ---------------------------------------------------------------------------

/// A script over a JSON `logs` table (with a watermark clause, which the parser
/// cuts out before parsing: positions after it must still be the user's).
fn with_logs(query: &str) -> String {
    format!(
        "{}CREATE TABLE out (a STRING) WITH ('connector' = 'print');\n{query}",
        logs_table(
            "logs",
            Path::new("/nonexistent/input.json"),
            Some("'5' SECOND")
        )
    )
}

/// (line, column), 1-based, of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {text}"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn compile_error(sql: &str) -> String {
    match SqlJob::compile(sql) {
        Ok(_) => panic!("compiled:\n{sql}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_sql_is_reported_at_the_line_and_column_of_the_offending_token() {
    let sql = with_logs("INSERT INTO out\nSELECT url,, status FROM logs;");
    let (line, column) = position(&sql, ", status");
    let err = compile_error(&sql);
    assert!(
        err.starts_with(&format!("line {line}, column {column}:")),
        "expected line {line}, column {column}: {err}"
    );
    // A statement strom does not run: its position too.
    let sql = with_logs("INSERT INTO out SELECT url FROM logs;\nDELETE FROM logs;");
    let err = compile_error(&sql);
    let (line, column) = position(&sql, "DELETE");
    assert!(
        err.starts_with(&format!("line {line}, column {column}:")) && err.contains("DELETE"),
        "{err}"
    );
}

#[test]
fn unknown_table_option_is_refused_naming_the_options_the_connector_takes() {
    let sql = "CREATE TABLE logs (ts TIMESTAMP(3), url STRING)
WITH ('connector' = 'filesystem', 'path' = '/tmp/x', 'format' = 'json', 'scan.startup.mode' = 'earliest-offset');
CREATE TABLE out (url STRING) WITH ('connector' = 'print');
INSERT INTO out SELECT url FROM logs;";
    let err = compile_error(sql);
    assert!(
        err.starts_with("table logs: unknown option 'scan.startup.mode'")
            && err.contains("path")
            && err.contains("scan.bad-records"),
        "{err}"
    );
}

#[test]
fn unknown_column_error_lists_the_available_columns() {
    let sql = with_logs("INSERT INTO out SELECT uri FROM logs;");
    let err = compile_error(&sql);
    let (line, column) = position(&sql, "uri");
    assert!(
        err.starts_with(&format!("line {line}, column {column}: unknown column uri")),
        "{err}"
    );
    for c in ["ts", "url", "ip", "status", "bytes"] {
        assert!(err.contains(&format!("logs.{c}")), "{c} missing: {err}");
    }
}

#[test]
fn type_errors_are_found_when_the_query_is_planned() {
    let at = |sql: &str, needle: &str| {
        let (line, column) = position(sql, needle);
        format!("line {line}, column {column}: ")
    };
    let sql = with_logs("INSERT INTO out SELECT CAST(status + 'x' AS STRING) FROM logs;");
    let err = compile_error(&sql);
    assert!(
        err.starts_with(&at(&sql, "status + 'x'"))
            && err.contains("cannot apply + to INT and STRING"),
        "{err}"
    );
    let sql = with_logs("INSERT INTO out SELECT url FROM logs WHERE url;");
    let err = compile_error(&sql);
    assert!(
        err.starts_with(&at(&sql, "url;")) && err.contains("`url` is STRING, not BOOLEAN"),
        "{err}"
    );
    // No position here (the message starts `line 0, column 0:`).
    let err = compile_error(&with_logs(
        "INSERT INTO out SELECT url FROM logs GROUP BY url HAVING SUM(url) > 0;",
    ));
    assert!(
        err.contains("SUM(url): cannot sum or average STRING"),
        "{err}"
    );
}

#[test]
fn keyless_updating_and_outer_joins_and_order_by_are_refused_as_unsupported() {
    // Regular, interval and window joins are supported; a join needs a key.
    let sql = with_logs("INSERT INTO out SELECT a.url FROM logs a JOIN logs b ON a.ip <> b.ip;");
    let err = compile_error(&sql);
    let (line, column) = position(&sql, "a.ip <> b.ip");
    assert!(
        err.starts_with(&format!(
            "line {line}, column {column}: a join needs at least one equality"
        )),
        "{err}"
    );
    // A GROUP BY without window emits updates, which a join cannot take back.
    let sql = with_logs(
        "INSERT INTO out SELECT a.url FROM logs a JOIN \
         (SELECT ip, COUNT(*) AS n FROM logs GROUP BY ip) b ON a.ip = b.ip;",
    );
    let err = compile_error(&sql);
    let (line, column) = position(&sql, "a.ip = b.ip");
    assert!(
        err.starts_with(&format!(
            "line {line}, column {column}: a join reads appends only"
        )),
        "{err}"
    );
    // An aggregate over those updates retracts (see
    // aggregates_over_updates_retract_the_row_each_change_replaces), but a sink
    // cannot take updates whose group key the SELECT list left out.
    let sql = with_logs(
        "INSERT INTO out SELECT CAST(n AS STRING) FROM \
         (SELECT ip, COUNT(*) AS n FROM logs GROUP BY ip) c;",
    );
    let err = compile_error(&sql);
    let (line, column) = position(&sql, "INSERT INTO out");
    assert!(
        err.starts_with(&format!(
            "line {line}, column {column}: the query emits updates (GROUP BY without a window) but its SELECT list leaves a group key out"
        )),
        "{err}"
    );
    let err = compile_error(&with_logs(
        "INSERT INTO out SELECT a.url FROM logs a LEFT JOIN logs b ON a.ip = b.ip \
         AND b.ts BETWEEN a.ts - INTERVAL '1' MINUTE AND a.ts;",
    ));
    assert!(err.contains("outer joins are not supported"), "{err}");
    let err = compile_error(&with_logs(
        "INSERT INTO out SELECT url FROM logs ORDER BY ts;",
    ));
    assert!(err.contains("ORDER BY"), "{err}");
    let err = compile_error(&with_logs(
        "INSERT INTO out SELECT url FROM logs UNION ALL SELECT url FROM logs;",
    ));
    assert!(err.contains("UNION"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_path_fails_the_run_naming_the_path() {
    let dir = TempDir::new("missing");
    let input = dir.join("no-such-input.json");
    let sql = format!(
        "{}{}INSERT INTO out SELECT url FROM logs;",
        logs_table("logs", &input, None),
        sink_table("out", "url STRING", &dir.join("out"))
    );
    let err = run(&sql).await.unwrap_err().to_string();
    assert!(
        err.contains(&input.display().to_string()),
        "the error should name {}: {err}",
        input.display()
    );
}

/// The job over [`write_with_bad_rows`]'s input, writing into `dir/out`, or
/// printing when `print`.
fn bad_records_script(dir: &TempDir, policy: &str, print: bool) -> String {
    let sink = if print {
        "CREATE TABLE out (url STRING, cnt BIGINT) WITH ('connector' = 'print');\n".to_string()
    } else {
        sink_table("out", "url STRING, cnt BIGINT", &dir.join("out"))
    };
    format!(
        "CREATE TABLE logs (ts TIMESTAMP(3), url STRING, status INT, WATERMARK FOR ts AS ts)
WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json', 'scan.bad-records' = '{policy}');
{}INSERT INTO out SELECT url, COUNT(status) FROM TABLE(TUMBLE(TABLE logs, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY url, window_start, window_end;",
        dir.join("input.json").display(),
        sink
    )
}

/// 100 good rows for /a in one minute, and bad ones in between.
fn write_with_bad_rows(dir: &TempDir) {
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!(
            "{{\"ts\": \"{}\", \"url\": \"/a\", \"status\": 200}}\n",
            ts_text(T0 + i * 100)
        ));
        if i == 40 {
            text.push_str(&format!(
                "{{\"ts\": \"{}\", \"url\": \"/a\", \"status\": \"two hundred\"}}\n",
                ts_text(T0 + i * 100)
            ));
        }
        if i == 60 {
            text.push_str("not json at all\n");
        }
    }
    std::fs::write(dir.join("input.json"), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_row_fails_the_run_naming_the_field() {
    let dir = TempDir::new("bad-fail");
    write_with_bad_rows(&dir);
    // A print sink: after a failure the engine aborts its tasks without waiting
    // for them, and a file sink still opening could create its directory after
    // this test removed the temp dir.
    let err = run(&bad_records_script(&dir, "fail", true))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("status") && err.contains("two hundred"),
        "the error should name the field and value: {err}"
    );
    assert!(err.contains("input.json"), "and the file: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rows_are_skipped_with_scan_bad_records_skip() {
    let dir = TempDir::new("bad-skip");
    write_with_bad_rows(&dir);
    run(&bad_records_script(&dir, "skip", false)).await.unwrap();
    assert_same_rows(
        "bad rows skipped",
        &read_rows(&dir.join("out"), &["url", "cnt"]),
        &[vec![json!("/a"), json!(100)]],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_no_query_reads_are_not_decoded() {
    let dir = TempDir::new("unread");
    write_with_bad_rows(&dir);
    // COUNT(*) reads no `status`: the row whose status is text is counted
    // (JSON syntax is still checked, so the line that is no JSON fails).
    let script = bad_records_script(&dir, "skip", false).replace("COUNT(status)", "COUNT(*)");
    let job = sql::SqlJob::compile(&script).unwrap();
    assert!(
        job.explain().contains("decodes only [ts, url]"),
        "{}",
        job.explain()
    );
    run(&script).await.unwrap();
    assert_same_rows(
        "the unread column's text is not checked",
        &read_rows(&dir.join("out"), &["url", "cnt"]),
        &[vec![json!("/a"), json!(101)]],
    );
}
