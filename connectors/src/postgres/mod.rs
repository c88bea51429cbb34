//! [`PostgresSink`]: writes a stream into a PostgreSQL table, at-least-once or
//! exactly-once through two-phase commit (`PREPARE TRANSACTION`).
//!
//! ```text
//!  write(batch) --to_row, fit to columns--> RowBuffer (upsert: last row or delete per key wins)
//!       | every batch_size rows: BEGIN (once) + multi-row DELETE by key (upsert: the
//!       | records `deletes` picks) + multi-row INSERT [ON CONFLICT DO UPDATE]
//!       v
//!  one open transaction per checkpoint, on the subtask's own connection
//!       | barrier n: pre_commit(n)
//!       v
//!  at-least-once: COMMIT                                   state kept in checkpoint n:
//!  exactly-once:  PREPARE TRANSACTION 'strom-{name}-{subtask}-{n}'  -> gids not yet committed
//!       | checkpoint n durable: commit(n)
//!       v
//!  exactly-once:  COMMIT PREPARED every gid of a checkpoint <= n
//! ```
//!
//! A prepared transaction survives the connection and a server restart: it is
//! neither visible nor lost until someone commits or rolls it back by its gid.
//! That is what lets the commit wait for the checkpoint. The server must allow
//! prepared transactions (`max_prepared_transactions` > 0; `scripts/postgres`
//! sets 64); `open` checks.
//!
//! # Recovery
//! `open` lists the prepared transactions of the database. Gids in the restored
//! state that are still prepared belong to a completed checkpoint: it commits
//! them. Every other gid of this sink whose subtask maps to this subtask (`t %
//! parallelism == subtask`, as the engine maps restored state) belongs to a
//! checkpoint that never completed: it rolls them back. Gids of other sinks, and
//! of other subtasks, are left alone: their own subtask handles them.
//!
//! # Crash windows, as sequences of events
//! 1. Rows of checkpoint n are inserted, the process dies before barrier n: the
//!    connection closes, the server rolls the open transaction back. The job
//!    restores checkpoint n-1 and the rows are written again. Nothing twice.
//! 2. `PREPARE TRANSACTION g(n)` ran, the process dies before checkpoint n is
//!    durable: g(n) stays prepared, invisible. The job restores n-1, whose state
//!    does not name g(n); `open` rolls g(n) back; the rows are written again.
//! 3. Checkpoint n is durable, the process dies before `commit(n)` (or before
//!    `COMMIT PREPARED` reached the server): the job restores n, whose state names
//!    g(n) (and any older gid not yet committed at barrier n); `open` finds it
//!    prepared and commits it. The restored source positions are after its rows.
//! 4. `COMMIT PREPARED g(n)` reached the server, its answer did not: the restore of
//!    n finds g(n) gone and counts it as committed (nothing else removes our gids).
//! 5. The process dies inside `open`, between commits and rollbacks: the next
//!    `open` sees the same restored state and what is left prepared, and finishes.
//!
//! # Locks held by a prepared transaction
//! A prepared transaction keeps its row locks until `COMMIT PREPARED`. A statement
//! of the next checkpoint that touches one of its rows (an upsert of the same key,
//! an insert of the same unique value) would wait for a commit that only this
//! sink's own task can send, while that task waits for the statement: a hang. So,
//! exactly-once, rows that arrive between `pre_commit(n)` and `commit(n)` stay in
//! memory, up to 100 × `batch_size` rows; past that they are sent anyway, and the
//! session's `lock_timeout` (60 s) turns a wait into a rollback-class error rather
//! than a hang (the restart then commits or rolls back the prepared transaction
//! first). The same happens if barrier n+1 arrives before `commit(n)`.
//!
//! # Known limits
//! - `finish` (end of bounded input) commits directly: if the process dies after
//!   `finish` and before the job records its end, a restart from the last
//!   checkpoint writes the rows since that checkpoint again. The sink trait has no
//!   hook after the job's final commit.
//! - A changed parallelism is handled (gids of vanished subtasks are rolled back or
//!   committed by the subtask that restores their state), but a changed
//!   exactly-once name is not: the old name's unrestored gids stay prepared (and
//!   hold their locks) until rolled back by hand (`ROLLBACK PREPARED 'gid'`).
//! - A zombie process of an earlier incarnation is not fenced: it can prepare
//!   after the new incarnation's `open` cleaned up, leaving a gid that the next
//!   recovery rolls back.
//! - Numeric keys are deduplicated in a batch by their text (`1.0` and `1` are two
//!   keys to the buffer, one to the server, which then refuses the statement).
//! - No TLS yet: meant for loopback or a trusted network.

mod buffer;
mod session;
mod sql;
mod value;
mod xact;

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::{CheckpointId, EngineError, Record, Sink, SinkContext};

pub use session::PostgresError;
pub use value::{PgColumn, PgType, PgValue};

use buffer::{Pending, RowBuffer};
use session::{Session, StatementKind, invalid, sql_error};
use sql::quote_literal;

/// Rows per insert batch unless [`PostgresSink::batch_size`] says otherwise.
const DEFAULT_BATCH_ROWS: usize = 1000;
/// Exactly-once: batches held in memory while a prepared transaction awaits its commit.
const HELD_BATCHES: usize = 100;
/// Exactly-once: how long a statement waits for a row lock (see the module doc).
const LOCK_TIMEOUT: &str = "60s";

/// How rows go into the table.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Every row is inserted.
    #[default]
    Append,
    /// Insert, or update the row with the same key (`ON CONFLICT (key) DO UPDATE`).
    /// The key columns need a unique index or primary key (`create_table` makes
    /// them the primary key). Within a checkpoint the last row for a key wins;
    /// a record [`PostgresSink::deletes`] picks deletes the row of its key instead.
    Upsert {
        /// Names of the key columns.
        key: Vec<String>,
    },
}

/// The row a value becomes.
type RowFn<T> = Arc<dyn Fn(&T) -> Vec<PgValue> + Send + Sync>;
/// Whether a value deletes the row of its key.
type DeleteFn<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

#[derive(Clone, Debug)]
struct Settings {
    connection: String,
    table: String,
    columns: Vec<PgColumn>,
    mode: WriteMode,
    exactly_once: Option<String>,
    create_table: bool,
    batch_rows: usize,
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        if self.columns.is_empty() {
            return Err("no columns".into());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("column {} is declared twice", c.name));
            }
        }
        if let WriteMode::Upsert { key } = &self.mode {
            if key.is_empty() {
                return Err("an upsert needs at least one key column".into());
            }
            for (i, k) in key.iter().enumerate() {
                if !self.columns.iter().any(|c| &c.name == k) {
                    return Err(format!("upsert key {k} is not a declared column"));
                }
                if key[..i].contains(k) {
                    return Err(format!("upsert key {k} is named twice"));
                }
            }
        }
        if let Some(name) = &self.exactly_once {
            xact::check_name(name)?;
        }
        Ok(())
    }

    /// Positions of the upsert key columns (empty for append).
    fn key_positions(&self) -> Vec<usize> {
        match &self.mode {
            WriteMode::Append => Vec::new(),
            WriteMode::Upsert { key } => key
                .iter()
                .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
                .collect(),
        }
    }
}

/// What an opened sink subtask holds.
struct Running {
    session: Session,
    subtask: usize,
    buffer: RowBuffer,
    /// `BEGIN` was sent and the transaction holds rows of the current checkpoint.
    in_txn: bool,
    /// Exactly-once: gids prepared and not yet committed, by checkpoint.
    prepared: BTreeMap<u64, String>,
}

/// A sink writing rows into a PostgreSQL table (one connection per subtask).
///
/// ```no_run
/// use connectors::postgres::{PgColumn, PgType, PgValue, PostgresSink, WriteMode};
///
/// struct Total { customer: String, amount: i64 }
///
/// let sink = PostgresSink::new(
///     "host=127.0.0.1 port=5432 user=postgres dbname=strom",
///     "totals",
///     vec![PgColumn::new("customer", PgType::Text), PgColumn::new("amount", PgType::BigInt)],
///     |t: &Total| vec![PgValue::Text(t.customer.clone()), PgValue::BigInt(t.amount)],
/// )
/// .mode(WriteMode::Upsert { key: vec!["customer".into()] })
/// .create_table(true)
/// .exactly_once("totals-v1");
/// ```
pub struct PostgresSink<T> {
    settings: Arc<Settings>,
    to_row: RowFn<T>,
    is_delete: Option<DeleteFn<T>>,
    run: Option<Running>,
    rows_total: metrics::Counter,
}

impl<T> Clone for PostgresSink<T> {
    fn clone(&self) -> Self {
        PostgresSink {
            settings: self.settings.clone(),
            to_row: self.to_row.clone(),
            is_delete: self.is_delete.clone(),
            run: None,
            rows_total: self.rows_total.clone(),
        }
    }
}

impl<T> PostgresSink<T> {
    /// A sink appending rows to `table` (`name` or `schema.name`, quoted as given),
    /// at-least-once. `connection` is a tokio-postgres connection string
    /// (`host=127.0.0.1 port=5432 user=postgres dbname=strom`, or a
    /// `postgresql://` URL); `to_row` gives one value per column, in order.
    pub fn new(
        connection: &str,
        table: &str,
        columns: Vec<PgColumn>,
        to_row: impl Fn(&T) -> Vec<PgValue> + Send + Sync + 'static,
    ) -> Self {
        PostgresSink {
            settings: Arc::new(Settings {
                connection: connection.to_string(),
                table: table.to_string(),
                columns,
                mode: WriteMode::Append,
                exactly_once: None,
                create_table: false,
                batch_rows: DEFAULT_BATCH_ROWS,
            }),
            to_row: Arc::new(to_row),
            is_delete: None,
            run: None,
            rows_total: metrics::counter!("strom_postgres_sink_rows_total", "table" => table.to_string()),
        }
    }

    /// Append (the default) or upsert by key.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        Arc::make_mut(&mut self.settings).mode = mode;
        self
    }

    /// Upsert mode: a record for which `is_delete` is true deletes the row with its
    /// key (`DELETE .. WHERE (key) IN ..`, in the same transaction as the upserts),
    /// an updating result's retraction of a key (Flink's `-D`). Its columns outside
    /// the key are not read. A delete reaching an append sink fails it.
    pub fn deletes(mut self, is_delete: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.is_delete = Some(Arc::new(is_delete));
        self
    }

    /// Exactly-once through prepared transactions named
    /// `strom-{name}-{subtask}-{checkpoint}`. `name` must stay the same across
    /// restarts of the job and differ between sinks of one database (1 to 100 of
    /// `A-Z a-z 0-9 _ . -`). At-least-once by default.
    pub fn exactly_once(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.settings).exactly_once = Some(name.to_string());
        self
    }

    /// Whether `open` runs `CREATE TABLE IF NOT EXISTS` with the declared columns
    /// (the upsert key as primary key). Off by default.
    pub fn create_table(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.settings).create_table = yes;
        self
    }

    /// Rows buffered before they are sent to the open transaction (1000 by default,
    /// at least 1): bounds the sink's memory and the statements' size.
    pub fn batch_size(mut self, rows: usize) -> Self {
        Arc::make_mut(&mut self.settings).batch_rows = rows.max(1);
        self
    }

    fn table(&self) -> &str {
        &self.settings.table
    }

    fn running(&mut self) -> engine::Result<&mut Running> {
        let table = &self.settings.table;
        self.run.as_mut().ok_or_else(|| {
            invalid(
                table,
                "the sink is not open (open was not called, or an earlier call failed)",
            )
        })
    }

    /// Sends the buffered rows into the open transaction (beginning one if needed).
    async fn flush(&mut self) -> engine::Result<()> {
        let settings = self.settings.clone();
        let rows_total = self.rows_total.clone();
        let run = self.running()?;
        if run.buffer.is_empty() {
            return Ok(());
        }
        let table = settings.table.as_str();
        if !run.in_txn {
            run.session
                .execute("BEGIN")
                .await
                .map_err(|e| sql_error(table, "BEGIN", e, false))?;
            run.in_txn = true;
        }
        let key = settings.key_positions();
        let mut rows = Vec::new();
        let mut deletes = Vec::new();
        for pending in run.buffer.take() {
            match pending {
                Pending::Write(row) => rows.push(row),
                // Only the key columns, in the key's order (the buffer keeps one
                // entry per key, so these keys differ from every upserted one).
                Pending::Delete(row) => {
                    deletes.push(key.iter().filter_map(|&i| row.get(i).cloned()).collect())
                }
            }
        }
        if !deletes.is_empty() {
            let key_columns: Vec<&PgColumn> = key.iter().map(|&i| &settings.columns[i]).collect();
            let per_statement = sql::rows_per_statement(settings.batch_rows, key_columns.len());
            for chunk in deletes.chunks(per_statement) {
                run.session
                    .bind_rows(
                        StatementKind::Delete,
                        |n| sql::delete(table, &key_columns, n),
                        chunk,
                    )
                    .await
                    .map_err(|e| {
                        sql_error(table, &format!("deleting {} keys", chunk.len()), e, true)
                    })?;
            }
        }
        let per_statement = sql::rows_per_statement(settings.batch_rows, settings.columns.len());
        for chunk in rows.chunks(per_statement) {
            run.session
                .bind_rows(
                    StatementKind::Insert,
                    |n| sql::insert(table, &settings.columns, n, &settings.mode),
                    chunk,
                )
                .await
                .map_err(|e| {
                    sql_error(table, &format!("inserting {} rows", chunk.len()), e, true)
                })?;
        }
        rows_total.increment((rows.len() + deletes.len()) as u64);
        tracing::debug!(
            table,
            subtask = run.subtask,
            rows = rows.len(),
            deletes = deletes.len(),
            "rows sent"
        );
        Ok(())
    }

    /// Commits the prepared transactions of checkpoints up to `upto` (all: `None`).
    async fn commit_prepared(&mut self, upto: Option<u64>) -> engine::Result<()> {
        let table = self.settings.table.clone();
        let run = self.running()?;
        let due: Vec<(u64, String)> = run
            .prepared
            .range(..=upto.unwrap_or(u64::MAX))
            .map(|(c, g)| (*c, g.clone()))
            .collect();
        for (checkpoint, gid) in due {
            run.session
                .execute(&format!("COMMIT PREPARED {}", quote_literal(&gid)))
                .await
                .map_err(|e| {
                    sql_error(&table, &format!("COMMIT PREPARED '{gid}'"), e, run.in_txn)
                })?;
            run.prepared.remove(&checkpoint);
            tracing::debug!(table, subtask = run.subtask, checkpoint, gid, "committed");
        }
        Ok(())
    }

    async fn do_open(&mut self, ctx: &SinkContext) -> engine::Result<()> {
        let settings = self.settings.clone();
        let table = settings.table.as_str();
        settings.validate().map_err(|m| invalid(table, m))?;
        let session = Session::connect(&settings.connection)
            .await
            .map_err(|e| sql_error(table, "connecting", e, false))?;
        let sql_err = |what: &str| {
            let what = what.to_string();
            move |e| sql_error(table, &what, e, false)
        };
        if settings.exactly_once.is_some() {
            let max = session
                .show("max_prepared_transactions")
                .await
                .map_err(sql_err("SHOW max_prepared_transactions"))?;
            if max.as_deref().is_none_or(|m| m.trim() == "0") {
                return Err(invalid(
                    table,
                    "exactly-once needs prepared transactions: set max_prepared_transactions > 0 on the server",
                ));
            }
            session
                .execute(&format!("SET lock_timeout = '{LOCK_TIMEOUT}'"))
                .await
                .map_err(sql_err("SET lock_timeout"))?;
        }
        if settings.create_table {
            // Subtasks create concurrently; CREATE TABLE IF NOT EXISTS is not safe
            // against itself (both may pass the check), so they take turns.
            let lock_key = quote_literal(&format!("strom-create-table:{table}"));
            session
                .execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(hashtext({lock_key})); {}; COMMIT",
                    sql::create_table(table, &settings.columns, &settings.mode)
                ))
                .await
                .map_err(sql_err("creating the table"))?;
        }
        let mut restored = Vec::new();
        for bytes in &ctx.restored {
            let gids = xact::decode_state(bytes)
                .map_err(|m| EngineError::Codec(format!("postgres table {table}: {m}")))?;
            restored.extend(gids);
        }
        if settings.exactly_once.is_some() || !restored.is_empty() {
            let prepared = session
                .prepared_gids()
                .await
                .map_err(sql_err("listing prepared transactions"))?;
            let mut plan = xact::plan_recovery(
                settings.exactly_once.as_deref().unwrap_or_default(),
                ctx.subtask,
                ctx.parallelism,
                &restored,
                &prepared,
            );
            if settings.exactly_once.is_none() {
                // At-least-once now, exactly-once in the restored run: finish what
                // the checkpoint names, touch nothing else.
                plan.rollback.clear();
            }
            for gid in &plan.already_committed {
                tracing::debug!(
                    table,
                    subtask = ctx.subtask,
                    gid,
                    "restored transaction was committed before"
                );
            }
            for gid in &plan.commit {
                session
                    .execute(&format!("COMMIT PREPARED {}", quote_literal(gid)))
                    .await
                    .map_err(sql_err(&format!("COMMIT PREPARED '{gid}' (restore)")))?;
                tracing::info!(
                    table,
                    subtask = ctx.subtask,
                    gid,
                    "committed the restored checkpoint's transaction"
                );
            }
            for gid in &plan.rollback {
                session
                    .execute(&format!("ROLLBACK PREPARED {}", quote_literal(gid)))
                    .await
                    .map_err(sql_err(&format!("ROLLBACK PREPARED '{gid}'")))?;
                tracing::info!(
                    table,
                    subtask = ctx.subtask,
                    gid,
                    "rolled back a transaction of an incomplete checkpoint"
                );
            }
        }
        tracing::debug!(
            table,
            subtask = ctx.subtask,
            exactly_once = settings.exactly_once.is_some(),
            "postgres sink open"
        );
        self.run = Some(Running {
            session,
            subtask: ctx.subtask,
            buffer: RowBuffer::new(settings.key_positions()),
            in_txn: false,
            prepared: BTreeMap::new(),
        });
        Ok(())
    }

    async fn do_write(&mut self, batch: Vec<Record<T>>) -> engine::Result<()> {
        let settings = self.settings.clone();
        let to_row = self.to_row.clone();
        let is_delete = self.is_delete.clone();
        let table = settings.table.as_str();
        let key = settings.key_positions();
        let run = self.running()?;
        for record in &batch {
            let delete = is_delete.as_ref().is_some_and(|d| d(&record.value));
            if delete && key.is_empty() {
                return Err(invalid(
                    table,
                    format!(
                        "the record at {} deletes a row, but an append sink has no key to delete by: use WriteMode::Upsert",
                        record.position
                    ),
                ));
            }
            let row = to_row(&record.value);
            if row.len() != settings.columns.len() {
                return Err(invalid(
                    table,
                    format!(
                        "the record at {} became {} values for {} columns",
                        record.position,
                        row.len(),
                        settings.columns.len()
                    ),
                ));
            }
            let mut fitted = Vec::with_capacity(row.len());
            for (i, (value, column)) in row.into_iter().zip(&settings.columns).enumerate() {
                // A delete reads its key alone: the rest need not fit.
                if delete && !key.contains(&i) {
                    fitted.push(PgValue::Null);
                    continue;
                }
                let value = column.ty.fit(value).map_err(|m| {
                    invalid(
                        table,
                        format!(
                            "column {} of the record at {}: {m}",
                            column.name, record.position
                        ),
                    )
                })?;
                fitted.push(value);
            }
            run.buffer.push(if delete {
                Pending::Delete(fitted)
            } else {
                Pending::Write(fitted)
            });
        }
        // Exactly-once, while a prepared transaction awaits its commit, rows wait
        // here (see "Locks held by a prepared transaction" in the module doc).
        let limit = if run.prepared.is_empty() {
            settings.batch_rows
        } else {
            settings.batch_rows.saturating_mul(HELD_BATCHES)
        };
        if run.buffer.len() >= limit {
            if !run.prepared.is_empty() {
                tracing::warn!(
                    table,
                    subtask = run.subtask,
                    rows = run.buffer.len(),
                    "rows held for a commit exceed the limit; sending them before the prepared transaction committed"
                );
            }
            self.flush().await?;
        }
        Ok(())
    }

    async fn do_pre_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<Vec<u8>> {
        self.flush().await?;
        let settings = self.settings.clone();
        let table = settings.table.as_str();
        let run = self.running()?;
        if run.in_txn {
            match &settings.exactly_once {
                None => {
                    run.session
                        .execute("COMMIT")
                        .await
                        .map_err(|e| sql_error(table, "COMMIT", e, true))?;
                    tracing::debug!(
                        table,
                        subtask = run.subtask,
                        checkpoint = checkpoint.0,
                        "committed"
                    );
                }
                Some(name) => {
                    let gid = xact::gid(name, run.subtask, checkpoint.0);
                    run.session
                        .execute(&format!("PREPARE TRANSACTION {}", quote_literal(&gid)))
                        .await
                        .map_err(|e| {
                            sql_error(table, &format!("PREPARE TRANSACTION '{gid}'"), e, true)
                        })?;
                    tracing::debug!(
                        table,
                        subtask = run.subtask,
                        checkpoint = checkpoint.0,
                        gid,
                        "prepared"
                    );
                    run.prepared.insert(checkpoint.0, gid);
                }
            }
            run.in_txn = false;
        }
        Ok(xact::encode_state(run.prepared.values()))
    }

    async fn do_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<()> {
        self.commit_prepared(Some(checkpoint.0)).await?;
        let batch_rows = self.settings.batch_rows;
        let run = self.running()?;
        // Rows held while the transaction was prepared can go now.
        if run.prepared.is_empty() && run.buffer.len() >= batch_rows {
            self.flush().await?;
        }
        Ok(())
    }

    async fn do_finish(&mut self) -> engine::Result<()> {
        self.commit_prepared(None).await?;
        self.flush().await?;
        let table = self.settings.table.clone();
        let run = self.running()?;
        if run.in_txn {
            run.session
                .execute("COMMIT")
                .await
                .map_err(|e| sql_error(&table, "COMMIT (finish)", e, true))?;
            run.in_txn = false;
        }
        tracing::debug!(table, subtask = run.subtask, "postgres sink finished");
        Ok(())
    }

    /// After a failure the connection's state is unknown (an aborted transaction
    /// would turn a later `COMMIT` into a silent rollback): drop it, so every
    /// later call fails too.
    fn poison_on_error<R>(&mut self, result: engine::Result<R>) -> engine::Result<R> {
        if result.is_err() {
            self.run = None;
        }
        result
    }
}

impl<T: Send + 'static> Sink<T> for PostgresSink<T> {
    fn name(&self) -> &str {
        "postgres-sink"
    }

    fn kind(&self) -> &str {
        "postgres"
    }

    async fn open(&mut self, ctx: &SinkContext) -> engine::Result<()> {
        self.run = None;
        let r = self.do_open(ctx).await;
        self.poison_on_error(r)
    }

    async fn write(&mut self, batch: Vec<Record<T>>) -> engine::Result<()> {
        let r = self.do_write(batch).await;
        self.poison_on_error(r)
    }

    async fn pre_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<Vec<u8>> {
        let r = self.do_pre_commit(checkpoint).await;
        self.poison_on_error(r)
    }

    async fn commit(&mut self, checkpoint: CheckpointId) -> engine::Result<()> {
        let r = self.do_commit(checkpoint).await;
        self.poison_on_error(r)
    }

    async fn finish(&mut self) -> engine::Result<()> {
        let r = self.do_finish().await;
        self.poison_on_error(r)
    }
}

impl<T> std::fmt::Debug for PostgresSink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("table", &self.table())
            .field("mode", &self.settings.mode)
            .field("exactly_once", &self.settings.exactly_once)
            .field("open", &self.run.is_some())
            .finish()
    }
}
