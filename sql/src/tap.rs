//! [`Tapped`]: a sink that keeps the last rows it writes in the job's status
//! ([`engine::ResultRing`]), with the sink table's column names and types, for the
//! status page's chart (a delete of an updating result is no row of it, and is not
//! kept); everything else goes to the sink it wraps.

use std::future::Future;
use std::sync::Arc;

use engine::{CheckpointId, Record, ResultRing, ResultValue, Sink, SinkContext};

use crate::run::SinkRecord;
use crate::types::{DataType, Row, Schema, Value};

/// A sink named after its SQL table that feeds a [`ResultRing`].
#[derive(Clone)]
pub(crate) struct Tapped<S> {
    inner: S,
    name: String,
    ring: Arc<ResultRing>,
}

impl<S> Tapped<S> {
    /// Wraps `inner`, the sink of table `name` with columns `schema`, registering
    /// its ring in `status`.
    pub(crate) fn new(inner: S, name: &str, schema: &Schema, status: &engine::JobStatus) -> Self {
        let columns = schema.fields.iter().map(|f| f.name.clone()).collect();
        let types = schema
            .fields
            .iter()
            .map(|f| type_name(f.ty).to_string())
            .collect();
        Tapped {
            inner,
            name: name.to_string(),
            ring: status.results(name, columns, types),
        }
    }
}

/// The status API's name of a column type.
fn type_name(t: DataType) -> &'static str {
    match t {
        DataType::Timestamp => "timestamp",
        DataType::Int | DataType::BigInt | DataType::Double | DataType::Decimal(..) => "number",
        DataType::Interval => "number",
        DataType::Boolean => "boolean",
        DataType::String => "string",
        DataType::Bytes => "bytes",
        DataType::Null => "null",
    }
}

/// A SQL value as the status API shows it (timestamps as ms since the epoch).
fn result_value(v: &Value) -> ResultValue {
    match v {
        Value::Null | Value::Bytes(_) => ResultValue::Null,
        Value::Bool(b) => ResultValue::Bool(*b),
        Value::Int(i) => ResultValue::Int(i64::from(*i)),
        Value::BigInt(i) | Value::Timestamp(i) | Value::Interval(i) => ResultValue::Int(*i),
        Value::Double(_) | Value::Decimal(..) => {
            v.as_f64().map_or(ResultValue::Null, ResultValue::Float)
        }
        Value::String(s) => ResultValue::Text(s.clone()),
    }
}

impl<T: SinkRecord, S: Sink<T>> Sink<T> for Tapped<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn open(&mut self, ctx: &SinkContext) -> impl Future<Output = engine::Result<()>> + Send {
        self.inner.open(ctx)
    }

    fn write(&mut self, batch: Vec<Record<T>>) -> impl Future<Output = engine::Result<()>> + Send {
        // A delete is no row of the result (the chart shows rows).
        let rows: Vec<&Row> = batch
            .iter()
            .filter(|r| !r.value.is_delete())
            .map(|r| r.value.row())
            .collect();
        self.ring
            .push_batch(&rows, |r| r.iter().map(result_value).collect());
        self.inner.write(batch)
    }

    fn pre_commit(
        &mut self,
        checkpoint: CheckpointId,
    ) -> impl Future<Output = engine::Result<Vec<u8>>> + Send {
        self.inner.pre_commit(checkpoint)
    }

    fn commit(
        &mut self,
        checkpoint: CheckpointId,
    ) -> impl Future<Output = engine::Result<()>> + Send {
        self.inner.commit(checkpoint)
    }

    fn finish(&mut self) -> impl Future<Output = engine::Result<()>> + Send {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Field;

    #[test]
    fn rows_keep_column_types_and_timestamps_as_milliseconds() {
        let status = engine::JobStatus::new("t");
        let schema = Schema::new(vec![
            Field::new("window_start", DataType::Timestamp),
            Field::new("url", DataType::String),
            Field::new("errors", DataType::BigInt),
        ]);
        let t = Tapped::new(
            engine::CollectSink::<Row>::new(),
            "error_counts",
            &schema,
            &status,
        );
        t.ring.push_batch(
            &[vec![
                Value::Timestamp(1_764_770_000_000),
                Value::String("/a".into()),
                Value::BigInt(4),
            ]],
            |r| r.iter().map(result_value).collect(),
        );
        let snap = status.snapshot();
        let r = &snap.results[0];
        assert_eq!(r.sink, "error_counts");
        assert_eq!(r.types, vec!["timestamp", "string", "number"]);
        assert_eq!(
            r.rows,
            vec![vec![
                ResultValue::Int(1_764_770_000_000),
                ResultValue::Text("/a".into()),
                ResultValue::Int(4)
            ]]
        );
    }
}
