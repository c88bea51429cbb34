//! The crate's one error type.

use sqlparser::tokenizer::Span;

/// Why a SQL script could not be parsed, planned or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The text is not valid SQL (as the parser reads it).
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What the parser expected.
        message: String,
    },
    /// Valid SQL that strom cannot plan: an unknown table or column, a type error, a
    /// construct outside the supported subset.
    #[error("line {line}, column {column}: {message}")]
    Plan {
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong and, for unsupported constructs, what is supported.
        message: String,
    },
    /// A table's `WITH` options are missing, unknown or invalid.
    #[error("table {table}: {message}")]
    Options {
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The pipeline failed while running.
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// A connector failed to start.
    #[error(transparent)]
    Connector(#[from] connectors::ConnectorError),
}

impl SqlError {
    /// A planning error at `span`.
    pub fn at(span: Span, message: impl Into<String>) -> SqlError {
        SqlError::Plan {
            line: span.start.line,
            column: span.start.column,
            message: message.into(),
        }
    }

    /// A planning error without a position.
    pub fn plan(message: impl Into<String>) -> SqlError {
        SqlError::Plan {
            line: 0,
            column: 0,
            message: message.into(),
        }
    }

    /// An option error of `table`.
    pub fn options(table: &str, message: impl Into<String>) -> SqlError {
        SqlError::Options {
            table: table.to_string(),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
