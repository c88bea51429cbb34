//! One connection to the server (a sink subtask has its own), and how its errors
//! become engine errors that name the table and say how the job gets past them.
//!
//! | failure | class |
//! |---|---|
//! | lost connection, connect failure, server shutting down or out of resources, with no transaction open | retriable |
//! | the same while a transaction holds rows since the last checkpoint; serialization failure, deadlock, lock timeout | rollback |
//! | any other SQL error (unknown table or column, bad data, constraint, permission), a bad connection string | fatal |

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use engine::{EngineError, ErrorClass};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::value::PgValue;

/// How long connecting may take unless the connection string sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Statements kept prepared per connection (one per kind and distinct row count).
const MAX_CACHED_STATEMENTS: usize = 8;

/// What a cached statement does to the rows it binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StatementKind {
    /// `INSERT` (or upsert) of whole rows.
    Insert,
    /// `DELETE` by the key columns.
    Delete,
}

/// A PostgreSQL failure, kept as the cause of an [`EngineError::External`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The server refused a statement, or the connection failed.
    #[error("{message}")]
    Sql {
        /// The server's message with severity and SQLSTATE (and detail and hint),
        /// or the client's description of a connection failure.
        message: String,
        /// The SQLSTATE code, for an error the server reported.
        code: Option<String>,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A row, the restored state or the sink's settings are invalid.
    #[error("{0}")]
    Invalid(String),
}

/// A client error as an engine error: `postgres table {table}: {what}: {message}`.
/// `in_txn`: a transaction holding rows since the last checkpoint was open, so a
/// lost connection lost them.
pub(crate) fn sql_error(
    table: &str,
    what: &str,
    error: tokio_postgres::Error,
    in_txn: bool,
) -> EngineError {
    let class = classify(&error, in_txn);
    let code = error.code().map(|c| c.code().to_string());
    let message = describe(&error);
    EngineError::external(
        format!("postgres table {table}: {what}"),
        PostgresError::Sql {
            message,
            code,
            source: error,
        },
        class,
    )
}

/// An invalid row, state or setting: fatal.
pub(crate) fn invalid(table: &str, message: impl Into<String>) -> EngineError {
    EngineError::external(
        format!("postgres table {table}"),
        PostgresError::Invalid(message.into()),
        ErrorClass::Fatal,
    )
}

fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!(" (hint: {hint})"));
        }
        s
    } else {
        match error.source() {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        }
    }
}

/// See the table in the module documentation.
pub(crate) fn classify(error: &tokio_postgres::Error, in_txn: bool) -> ErrorClass {
    let lost = if in_txn {
        ErrorClass::Rollback
    } else {
        ErrorClass::Retriable
    };
    if let Some(code) = error.code() {
        let code = code.code();
        return match code.get(..2) {
            // Connection exception; insufficient resources; operator intervention
            // (admin shutdown, cancel); system error.
            Some("08" | "53" | "57" | "58") => lost,
            // Serialization failure, deadlock: the transaction is gone.
            Some("40") => ErrorClass::Rollback,
            // lock_not_available: our lock_timeout (see the module doc of `postgres`).
            _ if code == "55P03" => ErrorClass::Rollback,
            _ => ErrorClass::Fatal,
        };
    }
    let io = error
        .source()
        .is_some_and(|c| c.downcast_ref::<std::io::Error>().is_some());
    if error.is_closed() || io {
        lost
    } else {
        // Bad connection string, a value the client could not encode, a protocol
        // violation: retrying cannot help.
        ErrorClass::Fatal
    }
}

/// A connection with its prepared insert and delete statements.
pub(crate) struct Session {
    client: Client,
    /// Prepared statements by kind and row count.
    statements: HashMap<(StatementKind, usize), Statement>,
}

impl Session {
    /// Connects (without TLS) and runs the connection on its own task, which ends
    /// when the session is dropped.
    pub(crate) async fn connect(connection: &str) -> Result<Session, tokio_postgres::Error> {
        let mut config: Config = connection.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("strom");
        }
        let (client, conn) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "postgres connection failed");
            }
        });
        Ok(Session {
            client,
            statements: HashMap::new(),
        })
    }

    /// Runs statements without parameters (simple query protocol).
    pub(crate) async fn execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client.batch_execute(sql).await
    }

    /// The value of a server setting (`SHOW name`).
    pub(crate) async fn show(&self, name: &str) -> Result<Option<String>, tokio_postgres::Error> {
        let rows = self.client.simple_query(&format!("SHOW {name}")).await?;
        Ok(rows.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        }))
    }

    /// The gids of the transactions prepared in this database (by any sink).
    pub(crate) async fn prepared_gids(&self) -> Result<Vec<String>, tokio_postgres::Error> {
        let rows = self
            .client
            .query(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await?;
        rows.iter().map(|r| r.try_get::<_, String>(0)).collect()
    }

    /// Runs the statement `sql(rows.len())` of `kind` binding every value of
    /// `rows`, prepared once per kind and row count and kept.
    pub(crate) async fn bind_rows(
        &mut self,
        kind: StatementKind,
        sql: impl Fn(usize) -> String,
        rows: &[Vec<PgValue>],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = match self.statements.get(&(kind, rows.len())) {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(&sql(rows.len())).await?;
                if self.statements.len() >= MAX_CACHED_STATEMENTS {
                    self.statements.clear();
                }
                self.statements.insert((kind, rows.len()), s.clone());
                s
            }
        };
        let params: Vec<&(dyn ToSql + Sync)> = rows
            .iter()
            .flatten()
            .map(|v| v as &(dyn ToSql + Sync))
            .collect();
        self.client.execute(&statement, &params).await
    }
}
