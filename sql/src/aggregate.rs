//! SQL aggregates (COUNT, COUNT DISTINCT, SUM, MIN, MAX, AVG) as one engine
//! [`AggregateFunction`] over pre-computed rows.
//!
//! The planner evaluates each aggregate's argument before the keyed exchange, so
//! an aggregate only reads a column: `[group keys.., arg 1, arg 2, ..]`. The
//! accumulator of a row is one [`Acc`] per aggregate; accumulators merge (panes of
//! sliding windows, session merges) and are kept in state with the engine's codec.
//! Result types follow Flink: SUM and AVG of an integer type keep that type.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::{
    AggregateFunction, KeyedProcessFunction, ProcessContext, StateCodec, StateRegistry, ValueState,
};

use crate::expr::{arith, cast_value};
use crate::types::{Change, DataType, Row, Value};

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(*)`.
    CountStar,
    /// `COUNT(x)`: non-NULL values.
    Count,
    /// `COUNT(DISTINCT x)`.
    CountDistinct,
    /// `SUM(x)`.
    Sum,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `AVG(x)`.
    Avg,
}

/// One aggregate call of a query.
#[derive(Debug, Clone)]
pub struct AggSpec {
    /// Which aggregate.
    pub kind: AggKind,
    /// The column of the pre-computed row holding its argument.
    pub arg: usize,
    /// The argument's type.
    pub input: DataType,
    /// The result type.
    pub output: DataType,
    /// The call as written.
    pub text: String,
}

impl AggSpec {
    /// The spec of `kind` over an argument of type `input`; `Err` names why the
    /// type does not fit.
    pub fn new(
        kind: AggKind,
        arg: usize,
        input: DataType,
        text: String,
    ) -> Result<AggSpec, String> {
        let output = match kind {
            AggKind::CountStar | AggKind::Count | AggKind::CountDistinct => DataType::BigInt,
            AggKind::Sum | AggKind::Avg => match input {
                DataType::Int | DataType::BigInt | DataType::Double | DataType::Null => {
                    if input == DataType::Null {
                        DataType::Int
                    } else {
                        input
                    }
                }
                DataType::Decimal(_, s) if kind == AggKind::Sum => DataType::Decimal(38, s),
                DataType::Decimal(_, s) => DataType::Decimal(38, s.max(6)),
                other => return Err(format!("{text}: cannot sum or average {other}")),
            },
            AggKind::Min | AggKind::Max => {
                if input == DataType::Interval {
                    return Err(format!("{text}: not defined on INTERVAL"));
                }
                input
            }
        };
        Ok(AggSpec {
            kind,
            arg,
            input,
            output,
            text,
        })
    }
}

/// The accumulator of one aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Acc {
    /// A count.
    Count(i64),
    /// A running sum (NULL before the first non-NULL value).
    Sum(Value),
    /// The least value so far.
    Min(Value),
    /// The greatest value so far.
    Max(Value),
    /// Sum and count of non-NULL values.
    Avg(Value, i64),
    /// The distinct values with their multiplicity.
    Distinct(BTreeMap<Value, u64>),
}

fn wide(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::BigInt(i64::from(*i)),
        other => other.clone(),
    }
}

fn add_values(a: &Value, b: &Value) -> Value {
    if a.is_null() {
        return wide(b);
    }
    if b.is_null() {
        return a.clone();
    }
    arith('+', wide(a), wide(b)).unwrap_or(Value::Null)
}

impl Acc {
    fn new(kind: AggKind) -> Acc {
        match kind {
            AggKind::CountStar | AggKind::Count => Acc::Count(0),
            AggKind::CountDistinct => Acc::Distinct(BTreeMap::new()),
            AggKind::Sum => Acc::Sum(Value::Null),
            AggKind::Min => Acc::Min(Value::Null),
            AggKind::Max => Acc::Max(Value::Null),
            AggKind::Avg => Acc::Avg(Value::Null, 0),
        }
    }

    fn add(&mut self, kind: AggKind, v: &Value) {
        if v.is_null() && kind != AggKind::CountStar {
            return;
        }
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Distinct(m) => *m.entry(v.clone()).or_insert(0) += 1,
            Acc::Sum(s) => *s = add_values(s, v),
            Acc::Min(m) => {
                if m.is_null() || v < m {
                    *m = v.clone()
                }
            }
            Acc::Max(m) => {
                if m.is_null() || v > m {
                    *m = v.clone()
                }
            }
            Acc::Avg(s, n) => {
                *s = add_values(s, v);
                *n += 1;
            }
        }
    }

    fn merge(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Distinct(a), Acc::Distinct(b)) => {
                for (k, n) in b {
                    *a.entry(k.clone()).or_insert(0) += n;
                }
            }
            (Acc::Sum(a), Acc::Sum(b)) => *a = add_values(a, b),
            (Acc::Min(a), Acc::Min(b)) if !b.is_null() && (a.is_null() || b < a) => *a = b.clone(),
            (Acc::Max(a), Acc::Max(b)) if !b.is_null() && (a.is_null() || b > a) => *a = b.clone(),
            (Acc::Avg(s, n), Acc::Avg(t, m)) => {
                *s = add_values(s, t);
                *n += m;
            }
            _ => {}
        }
    }

    fn result(&self, spec: &AggSpec) -> Value {
        match self {
            Acc::Count(n) => Value::BigInt(*n),
            Acc::Distinct(m) => Value::BigInt(m.len() as i64),
            // SUM of INT is INT and wraps on overflow, as Java's int (Flink) does.
            Acc::Sum(Value::BigInt(v)) if spec.output == DataType::Int => Value::Int(*v as i32),
            Acc::Sum(s) => cast_value(s.clone(), spec.output).unwrap_or(Value::Null),
            Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::Avg(_, 0) => Value::Null,
            Acc::Avg(s, n) => {
                let q = match s {
                    Value::Double(d) => Value::Double(d / *n as f64),
                    Value::Decimal(..) => {
                        arith('/', s.clone(), Value::BigInt(*n)).unwrap_or(Value::Null)
                    }
                    other => Value::BigInt(other.as_i64().unwrap_or(0) / n),
                };
                cast_value(q, spec.output).unwrap_or(Value::Null)
            }
        }
    }
}

impl StateCodec for Acc {
    fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Acc::Count(n) => {
                buf.push(0);
                n.encode(buf)
            }
            Acc::Sum(v) => {
                buf.push(1);
                v.encode(buf)
            }
            Acc::Min(v) => {
                buf.push(2);
                v.encode(buf)
            }
            Acc::Max(v) => {
                buf.push(3);
                v.encode(buf)
            }
            Acc::Avg(v, n) => {
                buf.push(4);
                v.encode(buf);
                n.encode(buf)
            }
            Acc::Distinct(m) => {
                buf.push(5);
                m.encode(buf)
            }
        }
    }

    fn decode(buf: &mut &[u8]) -> engine::Result<Self> {
        Ok(match u8::decode(buf)? {
            0 => Acc::Count(i64::decode(buf)?),
            1 => Acc::Sum(Value::decode(buf)?),
            2 => Acc::Min(Value::decode(buf)?),
            3 => Acc::Max(Value::decode(buf)?),
            4 => Acc::Avg(Value::decode(buf)?, i64::decode(buf)?),
            5 => Acc::Distinct(BTreeMap::decode(buf)?),
            t => {
                return Err(engine::EngineError::Codec(format!(
                    "unknown accumulator tag {t}"
                )));
            }
        })
    }
}

/// The aggregates of one GROUP BY, as one engine aggregate function.
#[derive(Clone)]
pub struct RowAggregate {
    specs: Arc<Vec<AggSpec>>,
}

impl RowAggregate {
    /// The aggregate of `specs`.
    pub fn new(specs: Vec<AggSpec>) -> RowAggregate {
        RowAggregate {
            specs: Arc::new(specs),
        }
    }

    /// Fresh accumulators.
    pub fn create_accs(&self) -> Vec<Acc> {
        self.specs.iter().map(|s| Acc::new(s.kind)).collect()
    }

    /// Adds a pre-computed row.
    pub fn add_row(&self, accs: &mut [Acc], row: &[Value]) {
        for (acc, spec) in accs.iter_mut().zip(self.specs.iter()) {
            let v = if spec.kind == AggKind::CountStar {
                &Value::Bool(true)
            } else {
                row.get(spec.arg).unwrap_or(&Value::Null)
            };
            acc.add(spec.kind, v);
        }
    }

    /// Merges accumulators.
    pub fn merge_accs(&self, accs: &mut [Acc], other: &[Acc]) {
        for (a, b) in accs.iter_mut().zip(other) {
            a.merge(b);
        }
    }

    /// The results.
    pub fn results(&self, accs: &[Acc]) -> Row {
        accs.iter()
            .zip(self.specs.iter())
            .map(|(a, s)| a.result(s))
            .collect()
    }
}

/// A GROUP BY without window: per key, the accumulators of its rows so far (one
/// value state, as the engine's rolling reduce keeps it); after each row, the
/// key's new result row as a [`Change::Upsert`], with the result it replaces
/// when `before` is asked for (a filter above reads it).
#[derive(Clone)]
pub(crate) struct GroupUpdates {
    agg: RowAggregate,
    before: bool,
    state: Option<ValueState<(Row, Vec<Acc>)>>,
}

impl GroupUpdates {
    /// The updates of `agg` over (key, accumulators of one row) pairs.
    pub(crate) fn new(agg: RowAggregate, before: bool) -> GroupUpdates {
        GroupUpdates {
            agg,
            before,
            state: None,
        }
    }

    fn result_row(&self, key: &Row, accs: &[Acc]) -> Row {
        let mut row = key.clone();
        row.extend(self.agg.results(accs));
        row
    }
}

impl KeyedProcessFunction<Row, (Row, Vec<Acc>)> for GroupUpdates {
    type Out = Change;

    fn open(&mut self, state: &mut StateRegistry<'_, Row>) -> engine::Result<()> {
        self.state = Some(state.value());
        Ok(())
    }

    fn process_element(
        &mut self,
        value: (Row, Vec<Acc>),
        ctx: &mut ProcessContext<'_, '_, Row, Change>,
    ) -> engine::Result<()> {
        let Some(s) = self.state else {
            return Ok(());
        };
        let (next, before) = match ctx.state().get(s) {
            Some((key, accs)) => {
                let before = self.before.then(|| self.result_row(key, accs));
                let mut merged = accs.clone();
                self.agg.merge_accs(&mut merged, &value.1);
                ((key.clone(), merged), before)
            }
            None => (value, None),
        };
        let row = self.result_row(&next.0, &next.1);
        ctx.state().set(s, next);
        ctx.collect(Change::Upsert { before, row });
        Ok(())
    }
}

impl AggregateFunction<Row> for RowAggregate {
    type Acc = Vec<Acc>;
    type Out = Row;

    fn create(&self) -> Vec<Acc> {
        self.create_accs()
    }

    fn add(&self, acc: &mut Vec<Acc>, value: &Row) {
        self.add_row(acc, value)
    }

    fn merge(&self, acc: &mut Vec<Acc>, other: &Vec<Acc>) {
        self.merge_accs(acc, other)
    }

    fn result(&self, acc: &Vec<Acc>) -> Row {
        self.results(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg() -> RowAggregate {
        let spec = |k, t| AggSpec::new(k, 0, t, format!("{k:?}")).expect("valid");
        RowAggregate::new(vec![
            spec(AggKind::CountStar, DataType::Int),
            spec(AggKind::Count, DataType::Int),
            spec(AggKind::CountDistinct, DataType::Int),
            spec(AggKind::Sum, DataType::Int),
            spec(AggKind::Min, DataType::Int),
            spec(AggKind::Max, DataType::Int),
            spec(AggKind::Avg, DataType::Int),
        ])
    }

    #[test]
    fn aggregates_follow_sql_null_rules_and_merge() {
        let a = agg();
        let mut x = a.create();
        for v in [Value::Int(4), Value::Null, Value::Int(1), Value::Int(4)] {
            a.add(&mut x, &vec![v]);
        }
        assert_eq!(
            a.result(&x),
            vec![
                Value::BigInt(4),
                Value::BigInt(3),
                Value::BigInt(2),
                Value::Int(9),
                Value::Int(1),
                Value::Int(4),
                Value::Int(3)
            ]
        );
        let mut y = a.create();
        a.add(&mut y, &vec![Value::Int(10)]);
        a.merge(&mut x, &y);
        assert_eq!(a.result(&x)[2], Value::BigInt(3));
        assert_eq!(a.result(&x)[5], Value::Int(10));
        let mut buf = Vec::new();
        x.encode(&mut buf);
        assert_eq!(Vec::<Acc>::decode(&mut buf.as_slice()).expect("decodes"), x);
    }

    #[test]
    fn a_sum_of_int_wraps_on_overflow_like_java() {
        let a = RowAggregate::new(vec![
            AggSpec::new(AggKind::Sum, 0, DataType::Int, "SUM(x)".into()).expect("valid"),
        ]);
        let mut x = a.create();
        a.add(&mut x, &vec![Value::Int(i32::MAX)]);
        a.add(&mut x, &vec![Value::Int(1)]);
        assert_eq!(a.result(&x), vec![Value::Int(i32::MIN)]);
    }

    #[test]
    fn empty_groups_give_nulls_except_counts() {
        let a = agg();
        let x = a.create();
        let r = a.result(&x);
        assert_eq!(r[0], Value::BigInt(0));
        assert!(r[3].is_null() && r[4].is_null() && r[6].is_null());
    }
}
