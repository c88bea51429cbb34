//! [`PrintSink`]: every record as one line on standard output (or standard
//! error), like Flink's `print` connector. For trying pipelines out and for demos;
//! it has no checkpoint semantics (a restart prints replayed records again).

use std::io::Write;
use std::sync::Arc;

use engine::{EngineError, Record, Sink};

/// Formats one record as its line.
type LineFn<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// Prints each record as one line, optionally prefixed (`prefix> line`).
pub struct PrintSink<T> {
    line: LineFn<T>,
    prefix: Option<String>,
    stderr: bool,
}

impl<T> Clone for PrintSink<T> {
    fn clone(&self) -> Self {
        PrintSink {
            line: self.line.clone(),
            prefix: self.prefix.clone(),
            stderr: self.stderr,
        }
    }
}

impl<T> PrintSink<T> {
    /// Prints `line(record)` for every record.
    pub fn new(line: impl Fn(&T) -> String + Send + Sync + 'static) -> PrintSink<T> {
        PrintSink {
            line: Arc::new(line),
            prefix: None,
            stderr: false,
        }
    }

    /// Puts `prefix> ` before every line (Flink's `print-identifier`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Writes to standard error instead of standard output.
    pub fn to_stderr(mut self, yes: bool) -> Self {
        self.stderr = yes;
        self
    }
}

impl<T: Send + 'static> Sink<T> for PrintSink<T> {
    fn name(&self) -> &str {
        "print"
    }

    fn kind(&self) -> &str {
        "stdout"
    }

    async fn write(&mut self, batch: Vec<Record<T>>) -> engine::Result<()> {
        let mut text = String::new();
        for r in &batch {
            if let Some(p) = &self.prefix {
                text.push_str(p);
                text.push_str("> ");
            }
            text.push_str(&(self.line)(&r.value));
            text.push('\n');
        }
        let result = if self.stderr {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush())
        };
        result.map_err(|e| EngineError::Operator {
            operator: "print".into(),
            subtask: 0,
            message: format!("writing to standard output: {e}"),
        })
    }
}
