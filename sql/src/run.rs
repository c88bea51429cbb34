//! A SQL script as a running job: [`SqlJob::compile`] parses and plans every
//! `INSERT INTO` (one branch each), checks every table's options, and builds the
//! engine pipeline; [`SqlJob::run`] runs it until its bounded inputs end or it is
//! stopped.
//!
//! ```text
//! script ──parse──> tables, views, inserts ──plan──> one Plan per INSERT
//!                                                        │ build (per incarnation)
//! Kafka tables present?  yes: KafkaJob (group member, transactions, changelogs)
//!                        no:  a plain engine Pipeline (files, print)
//! ```
//!
//! A table read by several branches is read once and forked. All Kafka tables of
//! a script share one cluster and one consumer group (`application.id`). A branch
//! whose plan is updating carries [`Change`]s from its GroupAggregate to its sink
//! (every other branch carries rows).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::tap::Tapped;
use bytes::Bytes;
use connectors::file::{BadLinePolicy, FileSink, FileSource};
use connectors::format::{Format, FormatError};
use connectors::kafka::{
    BadRecordPolicy, Codec, DeliveryGuarantee, KafkaConfig, KafkaJob, KafkaScope,
};
use connectors::postgres::{PgColumn, PgType, PgValue, PostgresSink, WriteMode};
use connectors::stdout::PrintSink;
use engine::{
    DataStream, JobState, JobStatus, NO_TIMESTAMP, Pipeline, PipelineConfig, WatermarkStrategy,
    Windowed, Windows,
};
use tokio::sync::watch;

use crate::aggregate::{
    Acc, GroupRetractions, GroupUpdates, Retraction, RowAggregate, retractions,
};
use crate::connect::{self, SinkConnector, SourceConnector};
use crate::error::{Result, SqlError};
use crate::expr::{EvalError, Projection, cast_value};
use crate::format::RowFormat;
use crate::parse::{Script, TableDef, parse_script};
use crate::plan::{ColumnsRead, Node, Plan, WindowSpec, plan_query, table_time};
use crate::types::{Change, DataType, Key, Row, Schema, Value};

/// How a script runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Read what the sources hold now, then end (flushing every window).
    pub bounded: bool,
    /// Checkpoint interval.
    pub checkpoint_interval: Duration,
    /// Whether a checkpoint comes early once the sources caught up
    /// ([`engine::PipelineConfig::checkpoint_when_caught_up`]); `None`: when
    /// some sink is exactly-once.
    pub checkpoint_when_caught_up: Option<bool>,
    /// Parallelism of the operators.
    pub parallelism: usize,
    /// `application.id` (group, transactional ids, internal topics) when the
    /// Kafka properties do not set one.
    pub application_id: String,
    /// `strom.instance` of this process (several processes of one pipeline).
    pub instance: Option<u32>,
    /// Kafka properties the tables' own `properties.*` override (e.g.
    /// `bootstrap.servers` from the environment).
    pub kafka_defaults: std::collections::BTreeMap<String, String>,
    /// Kafka properties that override the tables' (an explicit command-line flag).
    pub kafka_overrides: std::collections::BTreeMap<String, String>,
    /// Where the job reports its live status (operators, partitions, checkpoints,
    /// recent rows of every sink table); a new registry when unset.
    pub status: Option<JobStatus>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            bounded: false,
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_when_caught_up: None,
            parallelism: 1,
            application_id: "strom-sql".into(),
            instance: None,
            kafka_defaults: Default::default(),
            kafka_overrides: Default::default(),
            status: None,
        }
    }
}

/// One INSERT: its plan and sink.
#[derive(Debug, Clone)]
struct Branch {
    target: TableDef,
    sink: SinkConnector,
    plan: Plan,
    /// Per sink column: the type to cast the query's column to, if it differs.
    casts: Vec<Option<DataType>>,
}

/// A planned SQL script.
#[derive(Debug, Clone)]
pub struct SqlJob {
    script: Script,
    branches: Vec<Branch>,
    sources: HashMap<String, SourceConnector>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Restarts of a Kafka job (rebalances, rollbacks) plus one.
    pub incarnations: u32,
    /// Last checkpoint completed (Kafka jobs).
    pub last_checkpoint: u64,
    /// Whether it ended by a stop request (else its bounded input ended).
    pub stopped: bool,
}

/// Stops a running job gracefully (final checkpoint, then exit).
#[derive(Clone)]
pub struct StopSignal(watch::Sender<bool>);

impl StopSignal {
    /// Asks the job to stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

fn assignable(from: DataType, to: DataType) -> bool {
    from == to
        || from == DataType::Null
        || (from.is_numeric() && to.is_numeric())
        || to == DataType::String
}

impl SqlJob {
    /// Parses and plans `sql`.
    pub fn compile(sql: &str) -> Result<SqlJob> {
        let script = parse_script(sql)?;
        if script.inserts.is_empty() {
            return Err(SqlError::plan(
                "the script has no INSERT INTO .. SELECT: nothing would run",
            ));
        }
        let mut branches = Vec::new();
        let mut sources = HashMap::new();
        for ins in &script.inserts {
            let target = script
                .table(&ins.target)
                .ok_or_else(|| {
                    SqlError::at(
                        ins.span,
                        format!("INSERT INTO {}: no such table", ins.target),
                    )
                })?
                .clone();
            let sink = connect::sink(&target)?;
            let plan = plan_query(&script, &ins.query)?;
            let sink_cols: Vec<usize> = if ins.columns.is_empty() {
                (0..target.schema.len()).collect()
            } else {
                if ins.columns.len() != target.schema.len() {
                    return Err(SqlError::at(
                        ins.span,
                        "INSERT INTO t (columns): list every column of the table",
                    ));
                }
                ins.columns
                    .iter()
                    .map(|c| {
                        target.schema.find(None, c).map_err(|_| {
                            SqlError::at(ins.span, format!("{}: no column {c}", target.name))
                        })
                    })
                    .collect::<Result<_>>()?
            };
            if plan.schema.len() != target.schema.len() {
                return Err(SqlError::at(
                    ins.span,
                    format!(
                        "the query has {} columns, table {} has {} ({})",
                        plan.schema.len(),
                        target.name,
                        target.schema.len(),
                        target.schema.describe()
                    ),
                ));
            }
            let mut casts = vec![None; target.schema.len()];
            for (q, &s) in sink_cols.iter().enumerate() {
                let (from, to) = (plan.schema.fields[q].ty, target.schema.fields[s].ty);
                if !assignable(from, to) {
                    return Err(SqlError::at(
                        ins.span,
                        format!(
                            "column {} of the query (`{}`) is {from}, but {}.{} is {to}; CAST it",
                            q + 1,
                            plan.schema.fields[q].name,
                            target.name,
                            target.schema.fields[s].name
                        ),
                    ));
                }
                if from != to {
                    casts[q] = Some(to);
                }
            }
            if sink_cols.iter().enumerate().any(|(q, s)| q != *s) {
                return Err(SqlError::at(
                    ins.span,
                    "INSERT INTO t (columns) must list the columns in table order",
                ));
            }
            if plan.updating && plan.upsert_key.is_none() {
                return Err(SqlError::at(
                    ins.span,
                    format!(
                        "the query emits updates (GROUP BY without a window) but its SELECT list leaves a group key out, so {} could not tell which row a change replaces: keep every GROUP BY column in the SELECT list, or aggregate the result again",
                        target.name
                    ),
                ));
            }
            if plan.updating {
                check_sink_key(&target, &sink, &plan, ins.span)?;
                if let SinkConnector::Kafka { key_fields, .. } = &sink {
                    if key_fields.is_empty() {
                        return Err(SqlError::at(
                            ins.span,
                            format!(
                                "the query emits updates (GROUP BY without a window), so {} needs a key: declare PRIMARY KEY (..) NOT ENFORCED or 'key.fields'",
                                target.name
                            ),
                        ));
                    }
                }
                if let SinkConnector::File { .. } = &sink {
                    return Err(SqlError::at(
                        ins.span,
                        "the query emits updates (GROUP BY without a window); files take only appends: use a window, or a Kafka, PostgreSQL or print sink",
                    ));
                }
            }
            let mut scans = Vec::new();
            plan.scans(&mut scans);
            for t in scans {
                if let Some(def) = script.table(&t) {
                    sources.insert(t.clone(), connect::source(def)?);
                }
            }
            branches.push(Branch {
                target,
                sink,
                plan,
                casts,
            });
        }
        let mut read = ColumnsRead::default();
        for b in &branches {
            read.add(&b.plan);
        }
        for (table, conn) in sources.iter_mut() {
            if let (Some(Some(columns)), Some(def)) = (read.0.get(table), script.table(table)) {
                read_only(conn, def, columns);
            }
        }
        Ok(SqlJob {
            script,
            branches,
            sources,
        })
    }

    /// Reads a SQL file, replaces its `${VARIABLES}` from the environment (see
    /// [`crate::vars`]) and compiles it.
    pub fn from_file(path: &Path) -> Result<SqlJob> {
        let text = std::fs::read_to_string(path).map_err(|e| SqlError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::compile(&crate::vars::substitute(&text, |n| std::env::var(n).ok())?)
    }

    /// The operator graph, one tree per INSERT.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for (i, b) in self.branches.iter().enumerate() {
            let sink = match &b.sink {
                SinkConnector::Kafka {
                    topic,
                    exactly_once,
                    ..
                } => {
                    format!(
                        "kafka topic={topic} {}",
                        if *exactly_once {
                            "exactly-once"
                        } else {
                            "at-least-once"
                        }
                    )
                }
                SinkConnector::File { path, .. } => format!("filesystem path={path}"),
                SinkConnector::Print { .. } => "print".into(),
                SinkConnector::Blackhole => "blackhole".into(),
                SinkConnector::Postgres {
                    table,
                    exactly_once,
                    ..
                } => {
                    format!(
                        "postgres table={table} {}",
                        if *exactly_once {
                            "exactly-once"
                        } else {
                            "at-least-once"
                        }
                    )
                }
            };
            let mode = if !b.target.primary_key.is_empty() {
                format!("upsert by ({})", b.target.primary_key.join(", "))
            } else if b.plan.upsert_key.is_some() {
                "upsert by the group key".to_string()
            } else {
                "append".to_string()
            };
            out.push_str(&format!(
                "INSERT #{} Sink {} [{sink}, {mode}]\n",
                i + 1,
                b.target.name
            ));
            for line in b.plan.explain().lines() {
                out.push_str("  ");
                out.push_str(line);
                if let Some(rest) = line.trim_start().strip_prefix("Scan ") {
                    let name = rest.split_whitespace().next().unwrap_or_default();
                    if let Some(src) = self.sources.get(name) {
                        out.push_str(&match src {
                            SourceConnector::Kafka { topics, .. } => {
                                format!(" <- kafka {}", topics.join(","))
                            }
                            SourceConnector::File { path, .. } => format!(" <- filesystem {path}"),
                            SourceConnector::Nexmark { kind, config, .. } => format!(
                                " <- nexmark {kind:?} events ({})",
                                config.max_events.map_or_else(
                                    || "unbounded".to_string(),
                                    |n| format!("{n} in all")
                                )
                            ),
                        });
                    }
                    if let Some(wm) = self.script.table(name).and_then(|t| t.watermark.as_ref()) {
                        out.push_str(&format!(" watermark {} AS {}", wm.column, wm.expr));
                    }
                    if let (Some(src), Some(t)) = (self.sources.get(name), self.script.table(name))
                    {
                        if let Some(cols) = columns_decoded(src, t) {
                            out.push_str(&format!(" decodes only [{}]", cols.join(", ")));
                        }
                    }
                }
                out.push('\n');
            }
        }
        if out.contains("(exchange by key") {
            out.push_str(if self.scales_out() {
                "keyed exchanges: through repartition topics {application.id}-q<INSERT>-key<n>-repartition (strom.scale.out=true: several processes share the pipeline)\n"
            } else {
                "keyed exchanges: in memory (the pipeline runs as one process; strom.scale.out=true routes them through repartition topics)\n"
            });
        }
        out
    }

    /// Whether the Kafka tables' properties set `strom.scale.out=true`.
    fn scales_out(&self) -> bool {
        self.uses_kafka()
            && connect::kafka_properties(&self.kafka_tables())
                .is_ok_and(|p| p.get("strom.scale.out").is_some_and(|v| v == "true"))
    }

    /// The Kafka tables of the script.
    fn kafka_tables(&self) -> Vec<&TableDef> {
        self.script
            .tables
            .iter()
            .filter(|t| t.option("connector") == Some("kafka"))
            .collect()
    }

    /// Whether any table is a Kafka table.
    fn uses_kafka(&self) -> bool {
        self.sources
            .values()
            .any(|s| matches!(s, SourceConnector::Kafka { .. }))
            || self
                .branches
                .iter()
                .any(|b| matches!(b.sink, SinkConnector::Kafka { .. }))
    }

    /// A signal and the receiver the run watches.
    pub fn stop_signal() -> (StopSignal, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (StopSignal(tx), rx)
    }

    /// Runs the script until its bounded input ends or `stop` fires.
    pub async fn run(self, options: RunOptions, stop: watch::Receiver<bool>) -> Result<RunSummary> {
        let status = options
            .status
            .clone()
            .unwrap_or_else(|| JobStatus::new(&options.application_id));
        let mut config = PipelineConfig::default()
            .checkpoint_interval(options.checkpoint_interval)
            .parallelism(options.parallelism.max(1))
            .status(status.clone());
        config.checkpoint_when_caught_up = options.checkpoint_when_caught_up;
        let result = self.run_with(options, stop, config).await;
        match &result {
            Ok(s) => status.set_state(if s.stopped {
                JobState::Stopped
            } else {
                JobState::Finished
            }),
            Err(e) => {
                status.set_state(JobState::Failed);
                status.error(e.to_string());
            }
        }
        result
    }

    async fn run_with(
        self,
        options: RunOptions,
        mut stop: watch::Receiver<bool>,
        config: PipelineConfig,
    ) -> Result<RunSummary> {
        let job = Arc::new(self);
        if job.uses_kafka() {
            let mut props = options.kafka_defaults.clone();
            props.extend(connect::kafka_properties(&job.kafka_tables())?);
            props.extend(options.kafka_overrides.clone());
            if !props.contains_key("application.id") {
                let app = props
                    .get("group.id")
                    .cloned()
                    .unwrap_or_else(|| options.application_id.clone());
                props.insert("application.id".into(), app);
            }
            props.remove("group.id");
            if let Some(i) = options.instance {
                props.insert("strom.instance".into(), i.to_string());
            }
            if let (Some(app), Some(status)) = (props.get("application.id"), &config.status) {
                status.set_name(app);
            }
            let kafka = KafkaConfig::from_properties(props)?;
            let kjob = KafkaJob::new(kafka, config);
            let handle = kjob.stop_handle();
            let watcher = tokio::spawn(async move {
                while stop.changed().await.is_ok() {
                    if *stop.borrow() {
                        handle.stop();
                        return;
                    }
                }
            });
            let bounded = options.bounded;
            let j = job.clone();
            let report = kjob.run(move |p, k| j.build(p, Some(k), bounded)).await;
            watcher.abort();
            let report = report?;
            Ok(RunSummary {
                incarnations: report.incarnations,
                last_checkpoint: report.last_checkpoint.0,
                stopped: matches!(report.end, connectors::kafka::JobEnd::Stopped),
            })
        } else {
            let p = Pipeline::with_config(config);
            job.build(&p, None, true)?;
            let handle = p.start()?;
            handle.status().next_incarnation();
            let controller = handle.controller();
            let watcher = tokio::spawn(async move {
                while stop.changed().await.is_ok() {
                    if *stop.borrow() {
                        controller.stop();
                        return;
                    }
                }
            });
            let result = handle.wait().await;
            watcher.abort();
            let result = result?;
            Ok(RunSummary {
                incarnations: 1,
                last_checkpoint: 0,
                stopped: result.stopped,
            })
        }
    }

    /// Defines the pipeline on `p` (called once per incarnation of a Kafka job).
    fn build(&self, p: &Pipeline, k: Option<&KafkaScope>, bounded: bool) -> engine::Result<()> {
        let b = Builder {
            job: self,
            p,
            k,
            bounded,
            scans: RefCell::new(HashMap::new()),
            uses: RefCell::new(HashMap::new()),
            exchanges: std::cell::Cell::new(0),
        };
        // How often each table is read, so a table read twice is forked.
        for br in &self.branches {
            let mut scans = Vec::new();
            br.plan.scans(&mut scans);
            for s in scans {
                *b.uses.borrow_mut().entry(s).or_insert(0usize) += 1;
            }
        }
        for (i, br) in self.branches.iter().enumerate() {
            let name = format!("q{}", i + 1);
            if br.plan.updating {
                let changes = b.changes(&br.plan, &name, &mut 0, false)?;
                b.sink(insert_casts(changes, &br.casts), br, i)?;
            } else {
                let rows = insert_casts(b.stream(&br.plan, &name, &mut 0)?, &br.casts);
                match &br.sink {
                    SinkConnector::File {
                        path,
                        format,
                        max_file_size,
                    } => {
                        let mut sink = FileSink::<Row>::new(path.clone()).format(format.clone());
                        if let Some(m) = max_file_size {
                            sink = sink.max_file_size(*m);
                        }
                        let schema = br.target.schema.clone();
                        rows.sink(Tapped::new(sink, &br.target.name, &schema, &b.status()));
                    }
                    _ => b.sink(rows, br, i)?,
                }
            }
        }
        Ok(())
    }
}

/// What a branch hands its sink: rows (appends), or the [`Change`]s of an
/// updating result.
pub(crate) trait SinkRecord: serde::Serialize + Send + Sync + 'static {
    /// The row upserted, or the row a delete removes.
    fn row(&self) -> &Row;
    /// The row, to cast in place.
    fn row_mut(&mut self) -> &mut Row;
    /// Whether this deletes its key's row.
    fn is_delete(&self) -> bool;
    /// A row read back (a sink format's decoding side).
    fn upsert(row: Row) -> Self;
}

impl SinkRecord for Row {
    fn row(&self) -> &Row {
        self
    }
    fn row_mut(&mut self) -> &mut Row {
        self
    }
    fn is_delete(&self) -> bool {
        false
    }
    fn upsert(row: Row) -> Self {
        row
    }
}

impl SinkRecord for Change {
    fn row(&self) -> &Row {
        Change::row(self)
    }
    fn row_mut(&mut self) -> &mut Row {
        Change::row_mut(self)
    }
    fn is_delete(&self) -> bool {
        Change::is_delete(self)
    }
    fn upsert(row: Row) -> Self {
        Change::Upsert { before: None, row }
    }
}

/// A sink table's row format over [`SinkRecord`]s: a delete is a null value,
/// a tombstone of its key (what compacted topics, Kafka Streams and Flink's
/// upsert-kafka read as the end of the key's row).
#[derive(Clone)]
struct SinkFormat(RowFormat, Option<Vec<usize>>);

impl<T: SinkRecord> Format<T> for SinkFormat {
    fn deserialize(&self, bytes: Option<&[u8]>) -> std::result::Result<T, FormatError> {
        self.0.deserialize(bytes).map(T::upsert)
    }

    /// A delete is a tombstone; with EXCEPT_KEY (`self.1`) the value holds only
    /// the non-key columns.
    fn serialize(&self, record: &T) -> std::result::Result<Option<Bytes>, FormatError> {
        if record.is_delete() {
            return Ok(None);
        }
        match &self.1 {
            None => self.0.serialize(record.row()),
            Some(cols) => self.0.serialize(&pick(record.row(), cols)),
        }
    }
}

/// Refuses a sink key (`key.fields` or PRIMARY KEY) that is not exactly the
/// group keys of an updating result: an upsert or a tombstone keyed by other
/// columns would not replace the row of the group it belongs to (a column
/// outside the group keys changes between versions; a subset merges groups).
fn check_sink_key(
    target: &TableDef,
    sink: &SinkConnector,
    plan: &Plan,
    span: sqlparser::tokenizer::Span,
) -> Result<()> {
    let mut declared: Vec<usize> = match sink {
        SinkConnector::Kafka { key_fields, .. } => key_fields.clone(),
        SinkConnector::Postgres { .. } => target
            .primary_key
            .iter()
            .filter_map(|n| target.schema.find(None, n).ok())
            .collect(),
        _ => Vec::new(),
    };
    let Some(group) = &plan.upsert_key else {
        return Ok(());
    };
    let mut group = group.clone();
    declared.sort_unstable();
    declared.dedup();
    group.sort_unstable();
    if declared.is_empty() || declared == group {
        return Ok(());
    }
    let names = |cols: &[usize]| {
        cols.iter()
            .map(|&c| target.schema.fields.get(c).map_or("?", |f| f.name.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(SqlError::at(
        span,
        format!(
            "table {} is keyed by ({}) but the query's updates are keyed by its GROUP BY columns ({}): an update or delete keyed by other columns would not replace the right row; key the table by ({}) (PRIMARY KEY or 'key.fields'), or drop its key",
            target.name,
            names(&declared),
            names(&group),
            names(&group)
        ),
    ))
}

/// The values of columns `cols` of `row` (NULL past its end).
fn pick(row: &[Value], cols: &[usize]) -> Row {
    cols.iter()
        .map(|&c| row.get(c).cloned().unwrap_or(Value::Null))
        .collect()
}

/// `stream` with the query's columns cast to the sink table's types where they
/// differ (`casts`: per column, the type to cast to).
fn insert_casts<T: SinkRecord>(stream: DataStream<T>, casts: &[Option<DataType>]) -> DataStream<T> {
    if casts.iter().all(Option::is_none) {
        return stream;
    }
    let casts = casts.to_vec();
    stream.try_map_named("insert-cast", move |mut record: T| {
        for (v, c) in record.row_mut().iter_mut().zip(&casts) {
            if let Some(to) = c {
                *v = cast_value(std::mem::replace(v, Value::Null), *to)?;
            }
        }
        Ok::<_, EvalError>(record)
    })
}

struct Builder<'a> {
    job: &'a SqlJob,
    p: &'a Pipeline,
    k: Option<&'a KafkaScope>,
    bounded: bool,
    scans: RefCell<HashMap<String, DataStream<Row>>>,
    uses: RefCell<HashMap<String, usize>>,
    /// Keyed exchanges built so far (they name the repartition topics).
    exchanges: std::cell::Cell<usize>,
}

fn invalid(m: impl Into<String>) -> engine::EngineError {
    engine::EngineError::InvalidPipeline(m.into())
}

fn windows(spec: WindowSpec) -> Windows {
    match spec {
        WindowSpec::Tumble { size } => Windows::tumbling(Duration::from_millis(size as u64)),
        WindowSpec::Hop { slide, size } => Windows::sliding(
            Duration::from_millis(size as u64),
            Duration::from_millis(slide as u64),
        ),
        WindowSpec::Session { gap } => Windows::session(Duration::from_millis(gap as u64)),
    }
}

/// The watermark delay of `WATERMARK FOR ts AS ts - INTERVAL ..`.
fn watermark_delay(t: &TableDef) -> engine::Result<Option<(usize, i64)>> {
    let Some(wm) = &t.watermark else {
        return Ok(None);
    };
    let idx =
        table_time(t).ok_or_else(|| invalid(format!("{}: no column {}", t.name, wm.column)))?;
    if t.schema.fields[idx].ty != DataType::Timestamp {
        return Err(invalid(format!(
            "{}: WATERMARK FOR {}: the column must be TIMESTAMP(3)",
            t.name, wm.column
        )));
    }
    use sqlparser::ast::{BinaryOperator, Expr};
    let delay = match &wm.expr {
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case(&wm.column) => 0,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::Identifier(i), Expr::Interval(iv))
                if i.value.eq_ignore_ascii_case(&wm.column) =>
            {
                crate::expr::interval_ms(iv).map_err(invalid)?
            }
            _ => {
                return Err(invalid(format!(
                    "{}: WATERMARK FOR {c} AS {c} - INTERVAL '..' unit is supported",
                    t.name,
                    c = wm.column
                )));
            }
        },
        _ => {
            return Err(invalid(format!(
                "{}: WATERMARK FOR {c} AS {c} - INTERVAL '..' unit is supported",
                t.name,
                c = wm.column
            )));
        }
    };
    Ok(Some((idx, delay)))
}

impl Builder<'_> {
    fn source(&self, table: &str) -> engine::Result<DataStream<Row>> {
        let t = self
            .job
            .script
            .table(table)
            .ok_or_else(|| invalid(format!("no table {table}")))?;
        let conn = self
            .job
            .sources
            .get(table)
            .ok_or_else(|| invalid(format!("{table} is not a source")))?;
        let mut wm = match watermark_delay(t)? {
            Some((idx, delay)) => WatermarkStrategy::bounded_out_of_orderness(
                Duration::from_millis(delay.max(0) as u64),
            )
            .with_timestamp(move |r: &Row| {
                r.get(idx).and_then(Value::as_i64).unwrap_or(NO_TIMESTAMP)
            }),
            None => WatermarkStrategy::no_watermarks(),
        };
        Ok(match conn {
            SourceConnector::Kafka {
                topics,
                format,
                dead_letter,
                skip_bad,
                idle,
            } => {
                let k = self
                    .k
                    .ok_or_else(|| invalid("a Kafka table outside a Kafka job"))?;
                if let Some(d) = idle {
                    wm = wm.with_idleness(*d);
                }
                let policy = match (dead_letter, skip_bad) {
                    (Some(t), _) => BadRecordPolicy::DeadLetter(t.clone()),
                    (None, true) => BadRecordPolicy::Skip,
                    _ => BadRecordPolicy::Fail,
                };
                let mut src = k.source().topics(topics.clone()).on_bad_record(policy);
                if self.bounded {
                    src = src.bounded();
                }
                let rows = format.clone();
                let src = src.decode_records(move |r| {
                    rows.decode_record(r.key.as_deref(), r.value.as_deref())
                });
                self.p.source(src, wm).name(&format!("scan {table}"))
            }
            SourceConnector::Nexmark {
                config,
                kind,
                fields,
            } => {
                let fields = fields.clone();
                let src = connectors::nexmark::NexmarkSource::new(config.clone())
                    .only(*kind)
                    .splits(self.p.config().parallelism.max(1))
                    .named(format!("scan {table}"));
                let wm = match watermark_delay(t)? {
                    Some((_, delay)) => WatermarkStrategy::bounded_out_of_orderness(
                        Duration::from_millis(delay.max(0) as u64),
                    )
                    .with_timestamp(|e: &connectors::nexmark::Event| e.date_time()),
                    None => WatermarkStrategy::no_watermarks(),
                };
                self.p
                    .source(src, wm)
                    .map(move |e| nexmark_row(&e, &fields))
            }
            SourceConnector::File {
                path,
                format,
                header,
                skip_bad,
            } => {
                let src = FileSource::new(path.clone())
                    .format(format.clone())
                    .skip_header_lines(u64::from(*header))
                    .on_bad_line(if *skip_bad {
                        BadLinePolicy::Skip
                    } else {
                        BadLinePolicy::Fail
                    })
                    .named(format!("scan {table}"));
                self.p.source(src, wm)
            }
        })
    }

    fn scan(&self, table: &str) -> engine::Result<DataStream<Row>> {
        let cached = self.scans.borrow_mut().remove(table);
        let stream = match cached {
            Some(s) => s,
            None => self.source(table)?,
        };
        let mut uses = self.uses.borrow_mut();
        let left = uses.entry(table.to_string()).or_insert(1);
        *left = left.saturating_sub(1);
        if *left > 0 {
            let (a, b) = stream.fork();
            self.scans.borrow_mut().insert(table.to_string(), a);
            Ok(b)
        } else {
            Ok(stream)
        }
    }

    /// The rows of an appending plan.
    fn stream(&self, plan: &Plan, branch: &str, n: &mut usize) -> engine::Result<DataStream<Row>> {
        if plan.updating {
            return Err(invalid("an updating result where the plan expects appends"));
        }
        Ok(match &plan.node {
            Node::Scan { table } => self.scan(table)?,
            Node::Calc {
                input,
                filter,
                project,
            } => {
                let input = self.stream(input, branch, n)?;
                let filter = filter.as_ref().map(|f| f.eval.clone());
                let project = Projection::new(project);
                input.try_flat_map(
                    "calc",
                    move |row: Row| -> std::result::Result<Option<Row>, EvalError> {
                        if let Some(f) = &filter {
                            if !f(&row)?.is_true() {
                                return Ok(None);
                            }
                        }
                        project.apply(row).map(Some)
                    },
                )
            }
            Node::WindowAssign { input, window } => {
                let time = input
                    .time
                    .ok_or_else(|| invalid("window over a stream without time"))?;
                let input = self.stream(input, branch, n)?;
                let spec = *window;
                input.flat_map(move |row: Row| {
                    let ts = row.get(time).and_then(Value::as_i64).unwrap_or(0);
                    let (size, slide) = match spec {
                        WindowSpec::Tumble { size } => (size, size),
                        WindowSpec::Hop { slide, size } => (size, slide),
                        WindowSpec::Session { gap } => (gap, gap),
                    };
                    let last = ts - ts.rem_euclid(slide);
                    let mut out = Vec::new();
                    let mut start = last;
                    while start > ts - size {
                        let mut r = row.clone();
                        r.extend([
                            Value::Timestamp(start),
                            Value::Timestamp(start + size),
                            Value::Timestamp(start + size - 1),
                        ]);
                        out.push(r);
                        start -= slide;
                    }
                    out.reverse();
                    out
                })
            }
            Node::WindowAggregate {
                input,
                window,
                pre,
                keys,
                aggs,
            } => {
                let input = self.stream(input, branch, n)?;
                *n += 1;
                let uid = format!("{branch}-window{n}");
                let pre = Projection::new(pre);
                let k = *keys;
                let rows = input.try_map_named("group-keys", move |row: Row| pre.apply(row));
                self.key_by(rows, branch, move |r: &Row| Key::of(&r[..k]))
                    .window(windows(*window))
                    .aggregate(RowAggregate::new(aggs.clone()))
                    .uid(&uid)
                    .map(|w: Windowed<Key, Row>| {
                        let mut out = Vec::with_capacity(w.key.len() + 3 + w.value.len());
                        w.key.append_to(&mut out);
                        out.push(Value::Timestamp(w.window.start));
                        out.push(Value::Timestamp(w.window.end));
                        out.push(Value::Timestamp(w.window.end - 1));
                        out.extend(w.value);
                        out
                    })
            }
            Node::IntervalJoin {
                left,
                right,
                left_keys,
                right_keys,
                lower,
                upper,
                filter,
            } => {
                let (l, la) = self.keyed_side(self.stream(left, branch, n)?, left_keys, branch);
                let (r, ra) = self.keyed_side(self.stream(right, branch, n)?, right_keys, branch);
                *n += 1;
                let joined = l
                    .interval_join(r, *lower, *upper, concat_rows(la, ra))
                    .uid(&format!("{branch}-join{n}"));
                filtered(joined, filter)
            }
            Node::RegularJoin {
                left,
                right,
                left_keys,
                right_keys,
                filter,
                state_ttl,
            } => {
                let (l, la) = self.keyed_side(self.stream(left, branch, n)?, left_keys, branch);
                let (r, ra) = self.keyed_side(self.stream(right, branch, n)?, right_keys, branch);
                *n += 1;
                let joined = l
                    .regular_join(r, *state_ttl, concat_rows(la, ra))
                    .uid(&format!("{branch}-join{n}"));
                filtered(joined, filter)
            }
            Node::WindowJoin {
                left,
                right,
                size,
                times,
                left_keys,
                right_keys,
                filter,
            } => {
                let (l, la) = self.keyed_side(self.stream(left, branch, n)?, left_keys, branch);
                let (r, ra) = self.keyed_side(self.stream(right, branch, n)?, right_keys, branch);
                *n += 1;
                let (size, (lt, rt)) = (*size, *times);
                // Both rows lie in the same tumbling window: the one of their time.
                let with_window = move |row: &[Value], t: usize| {
                    let ts = row.get(t).and_then(Value::as_i64).unwrap_or(0);
                    let start = ts - ts.rem_euclid(size);
                    let mut out = row.to_vec();
                    out.extend([
                        Value::Timestamp(start),
                        Value::Timestamp(start + size),
                        Value::Timestamp(start + size - 1),
                    ]);
                    out
                };
                let joined = l
                    .window_join(
                        r,
                        Windows::tumbling(Duration::from_millis(size as u64)),
                        move |a: &Row, b: &Row| {
                            let mut row = with_window(own_columns(a, la), lt);
                            row.extend(with_window(own_columns(b, ra), rt));
                            row
                        },
                    )
                    .uid(&format!("{branch}-join{n}"));
                filtered(joined, filter)
            }
            Node::GroupAggregate { .. } => {
                return Err(invalid("a GROUP BY without window emits updates"));
            }
        })
    }

    /// The changes of an updating plan: a GROUP BY without window, and filters
    /// and projections over it. A filter passes a version that passes it; a
    /// version that fails it deletes the key's row if the version it replaces
    /// passed, and is dropped if not (as Flink retracts); a delete passes if the
    /// row it deletes passed. `before`: whether a filter above reads the version
    /// an upsert replaces (kept per key by the GroupAggregate's state anyway).
    fn changes(
        &self,
        plan: &Plan,
        branch: &str,
        n: &mut usize,
        before: bool,
    ) -> engine::Result<DataStream<Change>> {
        Ok(match &plan.node {
            Node::Calc {
                input,
                filter,
                project,
            } => {
                let input = self.changes(input, branch, n, before || filter.is_some())?;
                let filter = filter.as_ref().map(|f| f.eval.clone());
                let project = Projection::new(project);
                let passes = move |row: &Row| -> std::result::Result<bool, EvalError> {
                    match &filter {
                        Some(f) => Ok(f(row)?.is_true()),
                        None => Ok(true),
                    }
                };
                let projected = move |row: Row| project.apply(row);
                input.try_flat_map(
                    "calc",
                    move |change: Change| -> std::result::Result<Option<Change>, EvalError> {
                        Ok(match change {
                            Change::Delete(row) => {
                                if passes(&row)? {
                                    Some(Change::Delete(projected(row)?))
                                } else {
                                    None
                                }
                            }
                            Change::Upsert { before: old, row } => {
                                let old = match old {
                                    Some(old) if passes(&old)? => Some(old),
                                    _ => None,
                                };
                                if passes(&row)? {
                                    Some(Change::Upsert {
                                        before: match old.filter(|_| before) {
                                            Some(old) => Some(projected(old)?),
                                            None => None,
                                        },
                                        row: projected(row)?,
                                    })
                                } else {
                                    match old {
                                        Some(old) => Some(Change::Delete(projected(old)?)),
                                        None => None,
                                    }
                                }
                            }
                        })
                    },
                )
            }
            Node::GroupAggregate {
                input,
                pre,
                keys,
                aggs,
                state_ttl,
            } if input.updating => {
                // Every change must carry the row it replaces, to take it back.
                let input = self.changes(input, branch, n, true)?;
                *n += 1;
                let uid = format!("{branch}-group{n}");
                let pre = Projection::new(pre);
                let k = *keys;
                let computed = move |row: Row| pre.apply(row);
                let records = input.try_flat_map(
                    "group-keys",
                    move |change: Change| -> std::result::Result<Vec<Retraction>, EvalError> {
                        let (old, new) = match change {
                            Change::Upsert { before, row } => {
                                (before.map(&computed).transpose()?, Some(computed(row)?))
                            }
                            Change::Delete(row) => (Some(computed(row)?), None),
                        };
                        Ok(retractions(old, new, k))
                    },
                );
                self.key_by(records, branch, |t: &Retraction| t.0.clone())
                    .process(GroupRetractions::new(
                        RowAggregate::retracting(aggs.clone()),
                        *state_ttl,
                    ))
                    .uid(&uid)
            }
            Node::GroupAggregate {
                input,
                pre,
                keys,
                aggs,
                state_ttl,
            } => {
                let input = self.stream(input, branch, n)?;
                *n += 1;
                let uid = format!("{branch}-group{n}");
                let pre = Projection::new(pre);
                let k = *keys;
                let agg = RowAggregate::new(aggs.clone());
                let a1 = agg.clone();
                let rows = input.try_map_named(
                    "group-keys",
                    move |row: Row| -> std::result::Result<(Key, Vec<Acc>), EvalError> {
                        let vals = pre.apply(row)?;
                        let mut accs = a1.create_accs();
                        a1.add_row(&mut accs, &vals);
                        Ok((Key::of(&vals[..k]), accs))
                    },
                );
                self.key_by(rows, branch, |t: &(Key, Vec<Acc>)| t.0.clone())
                    .process(GroupUpdates::new(agg, before, *state_ttl))
                    .uid(&uid)
            }
            _ => return Err(invalid("an appending plan where updates are expected")),
        })
    }

    /// The job's status registry (a new one when the pipeline has none).
    fn status(&self) -> JobStatus {
        self.p
            .config()
            .status
            .unwrap_or_else(|| JobStatus::new("sql"))
    }

    /// Writes `stream` into the branch's sink table (every sink but files, which
    /// take only appends and are built by the caller).
    fn sink<T: SinkRecord>(
        &self,
        stream: DataStream<T>,
        br: &Branch,
        i: usize,
    ) -> engine::Result<()> {
        let schema: Arc<Schema> = Arc::new(br.target.schema.clone());
        let status = self.status();
        let table: &str = &br.target.name;
        let upsert = br.plan.upsert_key.clone();
        match &br.sink {
            SinkConnector::Kafka {
                topic,
                format,
                key_fields,
                key_format,
                value_fields,
                exactly_once,
            } => {
                let k = self
                    .k
                    .ok_or_else(|| invalid("a Kafka table outside a Kafka job"))?;
                // Without key.fields or a PRIMARY KEY, an updating result is
                // keyed by its group keys as a JSON object.
                let (key_fields, key_format) = if key_fields.is_empty() {
                    let cols = upsert.unwrap_or_default();
                    let key_schema =
                        Schema::new(cols.iter().map(|&c| schema.fields[c].clone()).collect());
                    let json = RowFormat::Json {
                        schema: Arc::new(key_schema),
                        required: None,
                    };
                    (cols, json)
                } else {
                    (key_fields.clone(), key_format.clone())
                };
                let mut sink = k
                    .sink::<T>(topic)
                    .format(SinkFormat(format.clone(), value_fields.clone()))
                    .delivery(if *exactly_once {
                        DeliveryGuarantee::ExactlyOnce
                    } else {
                        DeliveryGuarantee::AtLeastOnce
                    });
                if !key_fields.is_empty() {
                    sink = sink.key(move |record: &T| {
                        key_format
                            .serialize(&pick(record.row(), &key_fields))
                            .ok()
                            .flatten()
                    });
                }
                stream.sink(Tapped::new(sink, table, &schema, &status));
            }
            SinkConnector::File { .. } => {
                return Err(invalid("files take only appends"));
            }
            SinkConnector::Blackhole => stream.sink(Tapped::new(
                connectors::blackhole::BlackholeSink,
                table,
                &schema,
                &status,
            )),
            SinkConnector::Print { prefix, stderr } => {
                let tag = if upsert.is_some() { "+U" } else { "+I" };
                let mut sink = PrintSink::new(move |record: &T| {
                    format!(
                        "{}[{}]",
                        if record.is_delete() { "-D" } else { tag },
                        record
                            .row()
                            .iter()
                            .map(Value::to_text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .to_stderr(*stderr);
                if let Some(p) = prefix {
                    sink = sink.prefix(p.clone());
                }
                stream.sink(Tapped::new(sink, table, &schema, &status));
            }
            SinkConnector::Postgres {
                connection,
                table,
                exactly_once,
                create,
            } => {
                let columns: Vec<PgColumn> = schema
                    .fields
                    .iter()
                    .map(|f| PgColumn::new(f.name.clone(), pg_type(f.ty)))
                    .collect();
                let mut sink = PostgresSink::new(connection, table, columns, |record: &T| {
                    record.row().iter().map(pg_value).collect()
                })
                .deletes(|record: &T| record.is_delete())
                .create_table(*create);
                let key: Vec<String> = if !br.target.primary_key.is_empty() {
                    br.target.primary_key.clone()
                } else {
                    upsert
                        .unwrap_or_default()
                        .iter()
                        .map(|&c| schema.fields[c].name.clone())
                        .collect()
                };
                if !key.is_empty() {
                    sink = sink.mode(WriteMode::Upsert { key });
                }
                if *exactly_once {
                    sink = sink.exactly_once(&format!("{}-{}", br.target.name, i + 1));
                }
                stream.sink(Tapped::new(sink, table, &schema, &status));
            }
        }
        Ok(())
    }
}

/// Rows keyed by their join key (rows with a NULL key join nothing).
impl Builder<'_> {
    /// Keys `stream` by `key`: in memory, or through a repartition topic when
    /// the Kafka properties set `strom.scale.out=true` (several processes).
    fn key_by<T>(
        &self,
        stream: DataStream<T>,
        branch: &str,
        key: impl Fn(&T) -> Key + Send + Sync + 'static,
    ) -> engine::KeyedStream<Key, T>
    where
        T: engine::StateCodec + Send + 'static,
    {
        let i = self.exchanges.get() + 1;
        self.exchanges.set(i);
        match self.k.filter(|k| scale_out(k.config())) {
            Some(k) => k.key_by(stream, &format!("{branch}-key{i}"), key, Codec),
            None => stream.key_by(key),
        }
    }

    /// One side of a join keyed by its join keys (rows with a NULL key dropped),
    /// and how many values were appended to each row for its key. Keys that are
    /// plain columns are read from the row; other keys are computed once and
    /// appended after its columns, so the state holds one row per record
    /// rather than a (key, row) pair.
    fn keyed_side(
        &self,
        stream: DataStream<Row>,
        keys: &[crate::expr::CExpr],
        branch: &str,
    ) -> (engine::KeyedStream<Key, Row>, usize) {
        let columns: Option<Vec<usize>> = keys.iter().map(|k| k.column).collect();
        if let Some(columns) = columns {
            let read = columns.clone();
            let rows = stream.try_flat_map(
                "join-keys",
                move |row: Row| -> std::result::Result<Option<Row>, EvalError> {
                    let null = read.iter().any(|i| row.get(*i).is_none_or(Value::is_null));
                    Ok((!null).then_some(row))
                },
            );
            let keyed = self.key_by(rows, branch, move |row: &Row| match columns[..] {
                [i] => Key::of(row.get(i..=i).unwrap_or(&[Value::Null])),
                _ => Key::from(
                    columns
                        .iter()
                        .map(|i| row.get(*i).cloned().unwrap_or(Value::Null))
                        .collect::<Row>(),
                ),
            });
            return (keyed, 0);
        }
        let appended = keys.len();
        let keys: Vec<_> = keys.iter().map(|k| k.eval.clone()).collect();
        let rows = stream.try_flat_map(
            "join-keys",
            move |mut row: Row| -> std::result::Result<Option<Row>, EvalError> {
                let k = keys
                    .iter()
                    .map(|f| f(&row))
                    .collect::<std::result::Result<Row, _>>()?;
                if k.iter().any(Value::is_null) {
                    return Ok(None);
                }
                row.extend(k);
                Ok(Some(row))
            },
        );
        let keyed = self.key_by(rows, branch, move |row: &Row| {
            Key::of(&row[row.len().saturating_sub(appended)..])
        });
        (keyed, appended)
    }
}

/// The columns of a keyed join side's row, without the key values
/// [`Builder::keyed_side`] appended.
fn own_columns(row: &Row, appended: usize) -> &[Value] {
    &row[..row.len().saturating_sub(appended)]
}

/// The joined row of a left and a right row: left columns, then right.
fn concat_rows(la: usize, ra: usize) -> impl Fn(&Row, &Row) -> Row + Clone + Send + Sync {
    move |a: &Row, b: &Row| {
        let (a, b) = (own_columns(a, la), own_columns(b, ra));
        let mut row = Vec::with_capacity(a.len() + b.len());
        row.extend_from_slice(a);
        row.extend_from_slice(b);
        row
    }
}

/// Whether the Kafka properties ask for repartition topics (`strom.scale.out`).
fn scale_out(config: &KafkaConfig) -> bool {
    config.get("strom.scale.out") == Some("true")
}

/// The rows of `stream` for which `filter` is TRUE.
fn filtered(stream: DataStream<Row>, filter: &Option<crate::expr::CExpr>) -> DataStream<Row> {
    match filter {
        Some(f) => {
            let f = f.eval.clone();
            stream.try_flat_map(
                "join-filter",
                move |row: Row| -> std::result::Result<Option<Row>, EvalError> {
                    Ok(f(&row)?.is_true().then_some(row))
                },
            )
        }
        None => stream,
    }
}

/// The row of a Nexmark event under a table's column mapping.
/// Makes `conn` decode only `columns` of table `def` (and its event time), the
/// others read as NULL. Tables with computed columns are read whole.
fn read_only(conn: &mut SourceConnector, def: &TableDef, columns: &BTreeSet<usize>) {
    if !def.computed.is_empty() {
        return;
    }
    let time = table_time(def);
    let wanted = |i: usize| columns.contains(&i) || time == Some(i);
    match conn {
        // With the key columns in the record key, the value holds only the
        // others: read whole.
        SourceConnector::Kafka { format, .. } | SourceConnector::File { format, .. }
            if format.key.is_none() =>
        {
            format.read = Some((0..def.physical.len()).map(wanted).collect());
        }
        SourceConnector::Kafka { .. } | SourceConnector::File { .. } => {}
        SourceConnector::Nexmark { fields, .. } => {
            for (i, f) in fields.iter_mut().enumerate() {
                if !wanted(i) {
                    *f = connect::NexmarkField::Unread;
                }
            }
        }
    }
}

/// The columns `conn` decodes of table `def`, when [`read_only`] left some out.
fn columns_decoded(conn: &SourceConnector, def: &TableDef) -> Option<Vec<String>> {
    let read: Vec<bool> = match conn {
        SourceConnector::Kafka { format, .. } | SourceConnector::File { format, .. } => {
            format.read.as_deref()?.to_vec()
        }
        SourceConnector::Nexmark { fields, .. } => fields
            .iter()
            .map(|f| *f != connect::NexmarkField::Unread)
            .collect(),
    };
    if read.iter().all(|r| *r) {
        return None;
    }
    Some(
        def.physical
            .fields
            .iter()
            .zip(read)
            .filter(|(_, r)| *r)
            .map(|(f, _)| f.name.clone())
            .collect(),
    )
}

fn nexmark_row(e: &connectors::nexmark::Event, fields: &[connect::NexmarkField]) -> Row {
    use connect::NexmarkField as F;
    use connectors::nexmark::Event;
    let s = |x: &str| Value::str(x);
    fields
        .iter()
        .map(|f| match (e, f) {
            (_, F::DateTime) => Value::Timestamp(e.date_time()),
            (Event::Person(p), F::Id) => Value::BigInt(p.id),
            (Event::Person(p), F::Name) => s(&p.name),
            (Event::Person(p), F::EmailAddress) => s(&p.email_address),
            (Event::Person(p), F::CreditCard) => s(&p.credit_card),
            (Event::Person(p), F::City) => s(&p.city),
            (Event::Person(p), F::State) => s(&p.state),
            (Event::Person(p), F::Extra) => s(&p.extra),
            (Event::Auction(a), F::Id) => Value::BigInt(a.id),
            (Event::Auction(a), F::ItemName) => s(&a.item_name),
            (Event::Auction(a), F::Description) => s(&a.description),
            (Event::Auction(a), F::InitialBid) => Value::BigInt(a.initial_bid),
            (Event::Auction(a), F::Reserve) => Value::BigInt(a.reserve),
            (Event::Auction(a), F::Expires) => Value::Timestamp(a.expires),
            (Event::Auction(a), F::Seller) => Value::BigInt(a.seller),
            (Event::Auction(a), F::Category) => Value::BigInt(a.category),
            (Event::Auction(a), F::Extra) => s(&a.extra),
            (Event::Bid(b), F::Auction) => Value::BigInt(b.auction),
            (Event::Bid(b), F::Bidder) => Value::BigInt(b.bidder),
            (Event::Bid(b), F::Price) => Value::BigInt(b.price),
            (Event::Bid(b), F::Channel) => s(&b.channel),
            (Event::Bid(b), F::Url) => s(&b.url),
            (Event::Bid(b), F::Extra) => s(&b.extra),
            _ => Value::Null,
        })
        .collect()
}

fn pg_type(t: DataType) -> PgType {
    match t {
        DataType::Boolean => PgType::Boolean,
        DataType::Int => PgType::Integer,
        DataType::BigInt | DataType::Interval => PgType::BigInt,
        DataType::Double => PgType::Double,
        DataType::Decimal(..) => PgType::Numeric,
        DataType::String | DataType::Null => PgType::Text,
        DataType::Bytes => PgType::Bytea,
        DataType::Timestamp => PgType::Timestamp,
    }
}

fn pg_value(v: &Value) -> PgValue {
    match v {
        Value::Null => PgValue::Null,
        Value::Bool(b) => PgValue::Bool(*b),
        Value::Int(i) => PgValue::Int(*i),
        Value::BigInt(i) | Value::Interval(i) => PgValue::BigInt(*i),
        Value::Double(d) => PgValue::Double(*d),
        Value::Decimal(..) => PgValue::Numeric(v.to_string()),
        Value::String(s) => PgValue::Text(s.to_string()),
        Value::Bytes(b) => PgValue::Bytes(b.to_vec()),
        Value::Timestamp(ms) => PgValue::Timestamp(*ms),
    }
}
