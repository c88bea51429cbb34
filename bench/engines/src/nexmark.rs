//! `nexmark`: the Nexmark queries of `examples/nexmark/` on strom (`strom run`
//! of SQL files) and on Flink SQL, over the same generated events, timed by
//! CPU per event.
//!
//! ```text
//!  driver (this binary, `nexmark`)
//!  ├─ load once: strom run --bounded load.sql   nexmark tables ──► JSON files
//!  │             strom produce --file           files ──► <prefix>-person, -auction, -bid
//!  └─ per query × system, one child each, until it exits (bounded input):
//!       strom-gen    strom run --bounded   ddl.sql (nexmark connector) + qN.sql
//!       strom-kafka  strom run --bounded   Kafka DDL over the topics   + qN.sql
//!       flink-kafka  java NexmarkSql       Kafka DDL over the topics   + qN.sql
//!     /proc of the child every 50 ms: CPU (user+sys), VmHWM ──► Markdown
//! ```
//!
//! The query files are used unchanged on every system; only the DDL differs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kafka_wire::client::admin::OffsetSpec;
use kafka_wire::client::config::{IsolationLevel, ProducerConfig};
use kafka_wire::client::{Admin, Client};

use crate::procfs;

/// Options of `nexmark`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Bootstrap broker, host:port (never started or stopped here).
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Events generated (all three kinds: 2% person, 6% auction, 92% bid).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Event-time rate of the generator, events per second of event time (the
    /// published benchmark's 10,000,000); it does not pace anything.
    #[arg(long, default_value_t = 10_000_000)]
    tps: u64,
    /// Partitions of each event topic.
    #[arg(long, default_value_t = 2)]
    partitions: i32,
    /// Parallelism of strom's operators and of Flink's job.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Checkpoint interval of both systems, ms.
    #[arg(long, default_value_t = 10_000)]
    checkpoint_ms: u64,
    /// Queries (file stems of examples/nexmark/); default every `q*.sql` there.
    #[arg(long, value_delimiter = ',')]
    queries: Vec<String>,
    /// Systems, in this order: strom-gen (nexmark connector in the process),
    /// strom-kafka, flink-kafka.
    #[arg(long, value_delimiter = ',', default_values = ["strom-gen", "strom-kafka", "flink-kafka"])]
    systems: Vec<String>,
    /// The `strom` binary (bench/engines/nexmark builds it).
    #[arg(long)]
    strom: PathBuf,
    /// Java classpath of bench/engines/java (its jar and dependencies).
    #[arg(long, default_value = "")]
    java_cp: String,
    /// Maximum heap of the JVM.
    #[arg(long, default_value = "2g")]
    java_heap: String,
    /// The directory of `ddl.sql` and the `q<N>.sql` queries.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/nexmark"))]
    examples: PathBuf,
    /// Reuse the event topics `<PREFIX>-person`, `-auction`, `-bid` of an earlier
    /// run (kept with --keep-topics) instead of loading new ones.
    #[arg(long)]
    topics: Option<String>,
    /// Keep the event topics at the end.
    #[arg(long)]
    keep_topics: bool,
    /// Write each query's result to a Kafka topic instead of `blackhole` and
    /// count its records (a check run: the sink costs CPU too).
    #[arg(long)]
    check: bool,
    /// Seconds one run may take before it is killed and counted as failed.
    #[arg(long, default_value_t = 1800)]
    timeout_secs: u64,
    /// SQL files and child logs.
    #[arg(long, default_value = "/tmp/strom-nexmark")]
    work_dir: PathBuf,
    /// Where to append the results (Markdown).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md"))]
    results: PathBuf,
}

/// The three streams: table name and columns, as in examples/nexmark/ddl.sql.
const TABLES: [(&str, &str); 3] = [
    (
        "person",
        "id BIGINT, name STRING, emailAddress STRING, creditCard STRING, city STRING, \
         state STRING, dateTime TIMESTAMP(3), extra STRING",
    ),
    (
        "auction",
        "id BIGINT, itemName STRING, description STRING, initialBid BIGINT, reserve BIGINT, \
         dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra STRING",
    ),
    (
        "bid",
        "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, \
         dateTime TIMESTAMP(3), extra STRING",
    ),
];

/// The blackhole sink every query of examples/nexmark declares.
const BLACKHOLE: &str = "'connector' = 'blackhole'";

/// The column names of a column list.
fn column_names(cols: &str) -> Vec<&str> {
    cols.split(',')
        .filter_map(|c| c.split_whitespace().next())
        .collect()
}

/// The loader's first step: examples/nexmark/ddl.sql's nexmark tables into one
/// directory of JSON lines each (`strom run` needs a Kafka source to write to
/// Kafka, so `strom produce` sends the files on).
fn load_sql(examples: &Path, dir: &Path) -> Result<String> {
    let mut sql = std::fs::read_to_string(examples.join("ddl.sql"))?;
    for (name, cols) in TABLES {
        let _ = write!(
            sql,
            "\nCREATE TABLE {name}_out ({cols}) WITH (\n  'connector' = 'filesystem', 'path' = '{}', \
             'format' = 'json',\n  'sink.rolling-policy.file-size' = '1000gb');\n\n\
             INSERT INTO {name}_out SELECT {} FROM {name};\n",
            dir.join(name).display(),
            column_names(cols).join(", ")
        );
    }
    Ok(sql)
}

/// Kafka source tables over the event topics with the watermark of
/// examples/nexmark/ddl.sql; Flink's read to the end offsets at start
/// (`scan.bounded.mode`), strom's are bounded by `strom run --bounded`.
fn kafka_ddl(flink: bool, prefix: &str, bootstrap: &str, group: &str) -> String {
    let mut sql = String::from("-- The Nexmark streams from the Kafka topics the driver loaded.\n");
    for (name, cols) in TABLES {
        let bounded = if flink {
            format!(",\n  'properties.group.id' = '{group}', 'scan.bounded.mode' = 'latest-offset'")
        } else {
            String::new()
        };
        let _ = write!(
            sql,
            "CREATE TABLE {name} (\n  {cols},\n  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND\n\
             ) WITH (\n  'connector' = 'kafka', 'topic' = '{prefix}-{name}', 'format' = 'json',\n  \
             'properties.bootstrap.servers' = '{bootstrap}', 'scan.startup.mode' = 'earliest-offset'{bounded});\n\n"
        );
    }
    sql
}

/// Flink's form of a script: `dateTime` is a reserved word of Flink 2's parser,
/// so the identifier is back-quoted wherever it stands alone outside string
/// literals and comments (the only change made to a query for Flink).
fn flink_dialect(sql: &str) -> String {
    const WORD: &str = "dateTime";
    let mut out = String::with_capacity(sql.len() + 64);
    let mut quoted = false;
    let mut rest = sql;
    let mut prev: Option<char> = None;
    // Each pass consumes at least one character of `rest`.
    while let Some(c) = rest.chars().next() {
        let alone = |ch: Option<char>| {
            ch.is_none_or(|ch| !ch.is_ascii_alphanumeric() && ch != '_' && ch != '`')
        };
        if !quoted
            && rest.starts_with(WORD)
            && alone(prev)
            && alone(rest[WORD.len()..].chars().next())
        {
            out.push('`');
            out.push_str(WORD);
            out.push('`');
            rest = &rest[WORD.len()..];
            prev = Some('`');
            continue;
        }
        if !quoted && rest.starts_with("--") {
            // A comment, copied to its line's end.
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            prev = None;
            continue;
        }
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(c);
        prev = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The streams a query reads: the table names that follow FROM, JOIN or TABLE,
/// or a comma of a FROM list (`FROM auction A, bid B`).
fn streams_read(query: &str) -> Vec<&'static str> {
    let lower = query.to_lowercase();
    let mut tokens: Vec<&str> = Vec::new();
    let mut start = None;
    for (i, c) in lower.char_indices() {
        let word = c.is_ascii_alphanumeric() || c == '_';
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                tokens.push(&lower[s..i]);
                start = None;
            }
            _ => {}
        }
        if c == ',' {
            tokens.push(",");
        }
    }
    if let Some(s) = start {
        tokens.push(&lower[s..]);
    }
    // Whether each token is inside a FROM list (after FROM, before the next clause).
    let mut in_from = false;
    let mut read = Vec::new();
    for w in tokens.windows(2) {
        match w[0] {
            "from" => in_from = true,
            "where" | "group" | "select" | "on" | "having" | "window" | "order" => in_from = false,
            _ => {}
        }
        let opens = ["from", "join", "table"].contains(&w[0]) || (w[0] == "," && in_from);
        if opens {
            read.push(w[1]);
        }
    }
    TABLES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| read.contains(name))
        .collect()
}

/// What one child process measured.
struct Measured {
    secs: f64,
    cpu: Option<f64>,
    rss: Option<u64>,
    /// Why it failed (exit status and the log's telling line).
    error: Option<String>,
}

/// Runs `cmd` to its exit (or kills it after `timeout`), its output into `log`,
/// sampling its CPU and peak RSS from /proc every 50 ms.
fn measure(mut cmd: Command, log: &Path, timeout: Duration, clk_tck: f64) -> Result<Measured> {
    let file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let (mut cpu, mut rss) = (None, None);
    // Bounded by `timeout`: the child is killed then.
    let status = loop {
        if let Some(c) = procfs::cpu_secs(child.id(), clk_tck) {
            cpu = Some(c);
        }
        if let Some(r) = procfs::peak_rss(child.id()) {
            rss = Some(r);
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = start.elapsed().as_secs_f64();
    let error = match status {
        Some(s) if s.success() => None,
        Some(s) => Some(format!("{s}: {}", telling_line(log))),
        None => Some(format!("killed after {} s", timeout.as_secs())),
    };
    Ok(Measured {
        secs,
        cpu,
        rss,
        error,
    })
}

/// The line of a failed child's log that says why: Java's last `Caused by:`, else
/// the last line that mentions an error, else the last line.
fn telling_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Caused by:"))
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| l.to_lowercase().contains("error"))
        })
        .or(lines.last())
        .copied()
        .unwrap_or("(empty log)");
    line.chars().take(400).collect()
}

/// One query × system.
struct Row {
    query: String,
    system: String,
    /// Events the system read: every generated event for strom-gen, the records
    /// of the topics the query reads for the Kafka systems.
    events: u64,
    m: Measured,
    /// Flink's job time from its log (submission to end), start-up excluded.
    job_secs: Option<f64>,
    /// Result records (check runs).
    rows: Option<u64>,
}

/// The driver's state over one `nexmark` run.
struct Driver<'a> {
    args: &'a Args,
    run_id: String,
    prefix: String,
    client: Client,
    admin: Admin,
    clk_tck: f64,
    /// Records per event topic.
    loaded: BTreeMap<String, u64>,
}

impl Driver<'_> {
    async fn create_topic(&self, topic: &str) -> Result<()> {
        crate::create_topic(&self.client, &self.admin, topic, self.args.partitions).await
    }

    /// Records in `topic`: the sum of its partitions' end offsets (written
    /// without transactions, so no markers among them).
    async fn records(&self, topic: &str) -> Result<u64> {
        let meta = self.client.topic(topic).await?;
        let partitions: Vec<i32> = (0..meta.partitions.len() as i32).collect();
        let ends = self
            .admin
            .list_offsets(
                topic,
                &partitions,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await?;
        Ok(ends.values().map(|o| o.offset.max(0) as u64).sum())
    }

    fn strom(&self, sql: &Path, app: &str, parallelism: usize) -> Command {
        let mut c = Command::new(&self.args.strom);
        c.args(crate::strom_sql::run_args(
            sql,
            app,
            parallelism,
            self.args.checkpoint_ms,
            true,
        ))
        .env("EVENTS_NUM", self.args.events.to_string())
        .env("TPS", self.args.tps.to_string());
        c
    }

    fn flink(&self, sql: &Path, state: &Path) -> Result<Command> {
        if self.args.java_cp.is_empty() {
            bail!("flink-kafka needs --java-cp (bench/engines/nexmark builds it)");
        }
        let mut c = Command::new("java");
        c.arg(format!("-Xmx{}", self.args.java_heap))
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args([
                "-cp",
                &crate::java_classpath(&self.args.java_cp, "flink"),
                "strom.bench.NexmarkSql",
            ])
            .args(["--sql", &sql.display().to_string()])
            .args(["--parallelism", &self.args.parallelism.to_string()])
            .args(["--checkpoint-ms", &self.args.checkpoint_ms.to_string()])
            .args(["--state-dir", &state.display().to_string()]);
        Ok(c)
    }

    /// Loads the events into the three topics with `strom run` (nexmark tables to
    /// JSON files) and `strom produce` (each file to its topic), and checks their count.
    async fn load(&mut self) -> Result<String> {
        let dir = self.args.work_dir.join("events");
        let _ = std::fs::remove_dir_all(&dir);
        let sql = self.args.work_dir.join("load.sql");
        std::fs::write(&sql, load_sql(&self.args.examples, &dir)?)?;
        let timeout = Duration::from_secs(self.args.timeout_secs);
        // One subtask: each file, and so each partition, holds its stream in event-time order.
        let cmd = self.strom(&sql, &format!("{}-load", self.prefix), 1);
        let log = self.args.work_dir.join("load.log");
        let generate = measure(cmd, &log, timeout, self.clk_tck)?;
        if let Some(e) = generate.error {
            bail!("generating the events: {e} (log {})", log.display());
        }
        let mut produce = (0.0, 0.0);
        for (name, _) in TABLES {
            let topic = format!("{}-{name}", self.prefix);
            self.create_topic(&topic).await?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(name))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            for file in files {
                let mut cmd = Command::new(&self.args.strom);
                cmd.args([
                    "produce",
                    "--bootstrap",
                    &self.args.bootstrap,
                    "--topic",
                    &topic,
                ])
                .args(["-X", "compression.type=lz4", "-X", "linger.ms=5"])
                .args(["-X", "batch.size=262144"])
                .arg("--file")
                .arg(&file);
                let log = self.args.work_dir.join(format!("produce-{name}.log"));
                let m = measure(cmd, &log, timeout, self.clk_tck)?;
                if let Some(e) = m.error {
                    bail!("producing {}: {e} (log {})", file.display(), log.display());
                }
                produce.0 += m.secs;
                produce.1 += m.cpu.unwrap_or(0.0);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        self.count_loaded().await?;
        Ok(format!(
            "generated by `strom run` into JSON files in {:.1} s ({:.1} CPU s), sent by `strom produce` \
             in {:.1} s ({:.1} CPU s)",
            generate.secs,
            generate.cpu.unwrap_or(f64::NAN),
            produce.0,
            produce.1
        ))
    }

    async fn count_loaded(&mut self) -> Result<()> {
        for (name, _) in TABLES {
            let n = self.records(&format!("{}-{name}", self.prefix)).await?;
            self.loaded.insert(name.to_string(), n);
        }
        let total: u64 = self.loaded.values().sum();
        if total != self.args.events {
            bail!(
                "the topics hold {total} records ({:?}), not --events {}",
                self.loaded,
                self.args.events
            );
        }
        Ok(())
    }

    /// Runs `query` on `system`.
    async fn run(&self, query: &str, system: &str) -> Result<Row> {
        let text = std::fs::read_to_string(self.args.examples.join(format!("{query}.sql")))?;
        let tag = format!("{query}-{system}");
        let out_topic = format!("{}-{}-{tag}-out", self.prefix, self.run_id);
        let out_dir = self.args.work_dir.join(format!("{tag}-out"));
        let text = if self.args.check {
            if !text.contains(BLACKHOLE) {
                bail!("{query}.sql: no {BLACKHOLE} sink to replace");
            }
            // strom-gen has no Kafka source, and `strom run` writes to Kafka only
            // from one: its rows go to files.
            let sink = if system == "strom-gen" {
                let _ = std::fs::remove_dir_all(&out_dir);
                format!(
                    "'connector' = 'filesystem', 'path' = '{}', 'format' = 'json'",
                    out_dir.display()
                )
            } else {
                self.create_topic(&out_topic).await?;
                format!(
                    "'connector' = 'kafka', 'topic' = '{out_topic}', 'format' = 'json', \
                     'properties.bootstrap.servers' = '{}'",
                    self.args.bootstrap
                )
            };
            text.replace(BLACKHOLE, &sink)
        } else {
            text
        };
        let app = format!("{}-{}-{tag}", self.prefix, self.run_id);
        let (ddl, events) = match system {
            "strom-gen" => (
                std::fs::read_to_string(self.args.examples.join("ddl.sql"))?,
                self.args.events,
            ),
            "strom-kafka" | "flink-kafka" => (
                kafka_ddl(
                    system == "flink-kafka",
                    &self.prefix,
                    &self.args.bootstrap,
                    &app,
                ),
                streams_read(&text).iter().map(|s| self.loaded[*s]).sum(),
            ),
            other => bail!("unknown system {other} (strom-gen, strom-kafka, flink-kafka)"),
        };
        let sql = self.args.work_dir.join(format!("{tag}.sql"));
        let script = format!("{ddl}\n{text}");
        let script = if system == "flink-kafka" {
            flink_dialect(&script)
        } else {
            script
        };
        std::fs::write(&sql, script)?;
        let state = self.args.work_dir.join(format!("{tag}-checkpoints"));
        let cmd = if system == "flink-kafka" {
            self.flink(&sql, &state)?
        } else {
            self.strom(&sql, &app, self.args.parallelism)
        };
        let log = self.args.work_dir.join(format!("{tag}.log"));
        eprintln!(
            "[nexmark] {query} on {system} ({events} events), log {}",
            log.display()
        );
        let m = measure(
            cmd,
            &log,
            Duration::from_secs(self.args.timeout_secs),
            self.clk_tck,
        )?;
        let _ = std::fs::remove_dir_all(&state);
        let job_secs = std::fs::read_to_string(&log).ok().and_then(|t| {
            t.lines().find_map(|l| {
                l.split_once("] job ")?
                    .1
                    .split_once(" done in ")?
                    .1
                    .strip_suffix(" s")?
                    .parse()
                    .ok()
            })
        });
        let rows = match (self.args.check && m.error.is_none(), system) {
            (false, _) => None,
            (true, "strom-gen") => Some(lines(&out_dir)?),
            (true, _) => Some(self.records(&out_topic).await?),
        };
        let _ = std::fs::remove_dir_all(&out_dir);
        // The output topic, and the changelog topics strom made under its application id.
        crate::delete_topics(&self.client, &self.admin, &app).await;
        let row = Row {
            query: query.to_string(),
            system: system.to_string(),
            events,
            m,
            job_secs,
            rows,
        };
        eprintln!("[nexmark] {}", line(&row));
        Ok(row)
    }
}

/// Lines of the files (not the hidden ones) in `dir`.
fn lines(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if !entry.file_name().to_string_lossy().starts_with('.') {
            n += std::fs::read_to_string(entry.path())?.lines().count() as u64;
        }
    }
    Ok(n)
}

/// The queries to run: the given stems, or every `q<N>.sql` of `examples` by N.
fn queries(examples: &Path, given: &[String]) -> Result<Vec<String>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let mut found: Vec<(u32, String)> = std::fs::read_dir(examples)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".sql")?;
            let n: u32 = stem.strip_prefix('q')?.parse().ok()?;
            Some((n, stem.to_string()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, s)| s).collect())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// A number with thousands separators.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_core(r: &Row) -> Option<f64> {
    r.m.cpu
        .map(|c| r.events as f64 / c)
        .filter(|x| x.is_finite())
}

fn rate(r: &Row) -> f64 {
    r.events as f64 / r.m.secs
}

/// One Markdown table row.
fn line(r: &Row) -> String {
    let result = match (&r.m.error, r.rows) {
        (Some(e), _) => format!("FAILED: {}", e.replace('|', "\\|")),
        (None, Some(n)) => format!("{} rows", thousands(n)),
        (None, None) => "ok".into(),
    };
    format!(
        "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
        r.query,
        r.system,
        thousands(r.events),
        r.m.secs,
        opt(r.job_secs, 1),
        thousands(rate(r) as u64),
        opt(r.m.cpu, 1),
        opt(r.m.cpu.map(|c| c / (r.events as f64 / 1e6)), 2),
        per_core(r).map_or("-".into(), |x| thousands(x as u64)),
        opt(r.m.rss.map(|b| b as f64 / 1e6), 0),
        result
    )
}

/// strom-kafka / flink-kafka of `f` for `query`, when both ran.
fn ratio(rows: &[Row], query: &str, f: impl Fn(&Row) -> Option<f64>) -> String {
    let get = |system: &str| {
        rows.iter()
            .find(|r| r.query == query && r.system == system && r.m.error.is_none())
            .and_then(&f)
    };
    match (get("strom-kafka"), get("flink-kafka")) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// Loads the events (unless --topics), runs every query × system, appends the report.
pub fn run(args: &Args) -> Result<()> {
    std::fs::create_dir_all(&args.work_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let load_before = procfs::load_average();
        let uptime_before = uptime();
        let run_id = format!("{:x}", crate::now_ms());
        let client = Client::connect(ProducerConfig::new(&args.bootstrap)?.client).await?;
        let mut driver = Driver {
            args,
            prefix: args
                .topics
                .clone()
                .unwrap_or_else(|| format!("nexmark-{run_id}")),
            run_id,
            admin: Admin::new(client.clone()),
            client,
            clk_tck: procfs::clk_tck(),
            loaded: BTreeMap::new(),
        };
        let load = if args.topics.is_some() {
            driver.count_loaded().await?;
            "loaded by an earlier run (--topics)".to_string()
        } else {
            driver.load().await?
        };
        eprintln!("[nexmark] {} {:?}: {load}", driver.prefix, driver.loaded);
        let mut rows = Vec::new();
        for q in queries(&args.examples, &args.queries)? {
            for system in &args.systems {
                rows.push(driver.run(&q, system).await?);
            }
        }
        if !args.keep_topics && args.topics.is_none() {
            let names: Vec<String> = TABLES
                .iter()
                .map(|(n, _)| format!("{}-{n}", driver.prefix))
                .collect();
            if let Err(e) = driver.admin.delete_topics(&names).await {
                eprintln!("[nexmark] deleting {names:?}: {e}");
            }
        }
        let md = render(&driver, &load, &rows, &load_before, &uptime_before);
        print!("{md}");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&args.results)?;
        std::io::Write::write_all(&mut f, md.as_bytes())?;
        eprintln!("[nexmark] appended to {}", args.results.display());
        Ok(())
    })
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "n/a".into())
}

fn render(d: &Driver, load: &str, rows: &[Row], load_before: &str, uptime_before: &str) -> String {
    let a = d.args;
    let mut md = String::new();
    let when = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(md, "\n## Nexmark, {when}\n");
    let _ = writeln!(md, "`{}`\n", crate::command_line());
    let _ = writeln!(md, "- machine: {}", procfs::machine());
    let _ = writeln!(
        md,
        "- load averages before / after: {load_before} / {} (`uptime` before: {uptime_before}; after: {})",
        procfs::load_average(),
        uptime()
    );
    let _ = writeln!(
        md,
        "- events: {} at {} events/s of event time; topics `{}-{{person,auction,bid}}`, {} partitions each, \
         JSON ({}), {load}",
        thousands(a.events),
        thousands(a.tps),
        d.prefix,
        a.partitions,
        d.loaded
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "- parallelism {}, checkpoint interval {} ms, Flink heap {} (state `hashmap`); sink: {}",
        a.parallelism,
        a.checkpoint_ms,
        a.java_heap,
        if a.check {
            "a Kafka topic per run (check run), its record count in the last column"
        } else {
            "`blackhole`"
        }
    );
    let _ = writeln!(
        md,
        "- events: strom-gen counts every generated event (as the published benchmark); the Kafka \
         systems count the records of the topics the query reads\n"
    );
    md.push_str(
        "| query | system | events | wall s | Flink job s | events/s | CPU s | CPU s / M events | \
         events / CPU s | peak RSS MB | result |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        md.push_str(&line(r));
        md.push('\n');
    }
    if a.systems.iter().any(|s| s == "flink-kafka") {
        md.push_str(
            "\nstrom-kafka / flink-kafka (the same records read):\n\n\
             | query | events/s | events / CPU s | peak RSS |\n|---|---:|---:|---:|\n",
        );
        let mut seen = Vec::new();
        for r in rows {
            if seen.contains(&r.query) {
                continue;
            }
            seen.push(r.query.clone());
            let q = &r.query;
            let _ = writeln!(
                md,
                "| {q} | {} | {} | {} |",
                ratio(rows, q, |r| Some(rate(r))),
                ratio(rows, q, per_core),
                ratio(rows, q, |r| r.m.rss.map(|b| b as f64))
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streams_of_every_query_are_found() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nexmark");
        for (query, streams) in [
            ("q0", vec!["bid"]),
            ("q3", vec!["person", "auction"]),
            ("q4", vec!["auction", "bid"]),
            ("q5", vec!["bid"]),
            ("q7", vec!["bid"]),
            ("q8", vec!["person", "auction"]),
        ] {
            let text =
                std::fs::read_to_string(dir.join(format!("{query}.sql"))).unwrap_or_default();
            assert_eq!(streams_read(&text), streams, "{query}");
        }
    }
}
