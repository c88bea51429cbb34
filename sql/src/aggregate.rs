//! SQL aggregates (COUNT, COUNT DISTINCT, SUM, MIN, MAX, AVG) as one engine
//! [`AggregateFunction`] over pre-computed rows.
//!
//! The planner evaluates each aggregate's argument before the keyed exchange, so
//! an aggregate only reads a column: `[group keys.., arg 1, arg 2, ..]`. The
//! accumulator of a row is one [`Acc`] per aggregate; accumulators merge (panes of
//! sliding windows, session merges) and are kept in state with the engine's codec.
//! Result types follow Flink: SUM and AVG of an integer type keep that type.
//!
//! Over an updating input (the changes of another GROUP BY without window),
//! `GroupRetractions` takes a changed row's old version back before it adds
//! the new one, so every aggregate must be able to forget a value:
//!
//! ```text
//! aggregate        append accumulator      retracting accumulator
//! COUNT, COUNT(*)  count                   count (minus one)
//! SUM              sum                     sum and count (NULL at count 0)
//! AVG              sum and count           sum and count
//! COUNT DISTINCT   values with multiplicity
//! MIN, MAX         the extreme so far      values with multiplicity (the next
//!                                          extreme when the current one goes)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use engine::{
    AggregateFunction, KeyedProcessFunction, ProcessContext, StateCodec, StateRegistry, StateValue,
    TimeDomain, ValueState,
};

use crate::expr::{arith, cast_value};
use crate::types::{Change, DataType, Key, Row, Value};

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
    /// Sum and count of non-NULL values (AVG, and SUM over updates: NULL again
    /// once every value is taken back).
    Avg(Value, i64),
    /// The values with their multiplicity (COUNT DISTINCT, and MIN and MAX over
    /// updates).
    Values(BTreeMap<Value, u64>),
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
            AggKind::CountDistinct => Acc::Values(BTreeMap::new()),
            AggKind::Sum => Acc::Sum(Value::Null),
            AggKind::Min => Acc::Min(Value::Null),
            AggKind::Max => Acc::Max(Value::Null),
            AggKind::Avg => Acc::Avg(Value::Null, 0),
        }
    }

    /// The accumulator of `kind` over an updating input: one that can take a
    /// value back.
    fn retracting(kind: AggKind) -> Acc {
        match kind {
            AggKind::Sum => Acc::Avg(Value::Null, 0),
            AggKind::Min | AggKind::Max => Acc::Values(BTreeMap::new()),
            other => Acc::new(other),
        }
    }

    fn add(&mut self, kind: AggKind, v: &Value) {
        if v.is_null() && kind != AggKind::CountStar {
            return;
        }
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Values(m) => *m.entry(v.clone()).or_insert(0) += 1,
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

    /// Takes back a value added before (accumulators made by
    /// [`Acc::retracting`]; the append-only MIN, MAX and SUM cannot).
    fn retract(&mut self, kind: AggKind, v: &Value) {
        if v.is_null() && kind != AggKind::CountStar {
            return;
        }
        match self {
            Acc::Count(n) => *n -= 1,
            Acc::Values(m) => {
                if let Some(c) = m.get_mut(v) {
                    *c -= 1;
                    if *c == 0 {
                        m.remove(v);
                    }
                }
            }
            Acc::Avg(s, n) => {
                *n -= 1;
                // Back to NULL rather than a zero (or a float's rounding rest).
                *s = if *n == 0 {
                    Value::Null
                } else {
                    arith('-', wide(s), wide(v)).unwrap_or(Value::Null)
                };
            }
            Acc::Sum(_) | Acc::Min(_) | Acc::Max(_) => {}
        }
    }

    fn merge(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Values(a), Acc::Values(b)) => {
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
            Acc::Values(m) => match spec.kind {
                AggKind::Min => m.keys().next().cloned().unwrap_or(Value::Null),
                AggKind::Max => m.keys().next_back().cloned().unwrap_or(Value::Null),
                _ => Value::BigInt(m.len() as i64),
            },
            Acc::Sum(s) => sum_result(s, spec),
            Acc::Min(v) | Acc::Max(v) => v.clone(),
            Acc::Avg(_, 0) => Value::Null,
            Acc::Avg(s, _) if spec.kind == AggKind::Sum => sum_result(s, spec),
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

/// A SUM's result from its running sum (kept as BIGINT for integers).
fn sum_result(s: &Value, spec: &AggSpec) -> Value {
    match s {
        // SUM of INT is INT and wraps on overflow, as Java's int (Flink) does.
        Value::BigInt(v) if spec.output == DataType::Int => Value::Int(*v as i32),
        s => cast_value(s.clone(), spec.output).unwrap_or(Value::Null),
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
            Acc::Values(m) => {
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
            5 => Acc::Values(BTreeMap::decode(buf)?),
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
    retracting: bool,
}

impl RowAggregate {
    /// The aggregate of `specs` over appends.
    pub fn new(specs: Vec<AggSpec>) -> RowAggregate {
        RowAggregate {
            specs: Arc::new(specs),
            retracting: false,
        }
    }

    /// The aggregate of `specs` over updates: its accumulators can take a row
    /// back ([`RowAggregate::retract_row`]).
    pub fn retracting(specs: Vec<AggSpec>) -> RowAggregate {
        RowAggregate {
            specs: Arc::new(specs),
            retracting: true,
        }
    }

    /// Fresh accumulators.
    pub fn create_accs(&self) -> Vec<Acc> {
        self.specs
            .iter()
            .map(|s| match self.retracting {
                true => Acc::retracting(s.kind),
                false => Acc::new(s.kind),
            })
            .collect()
    }

    /// The value of `spec`'s argument in a pre-computed row.
    fn arg<'r>(spec: &AggSpec, row: &'r [Value]) -> &'r Value {
        if spec.kind == AggKind::CountStar {
            &Value::Bool(true)
        } else {
            row.get(spec.arg).unwrap_or(&Value::Null)
        }
    }

    /// Takes back a pre-computed row added before (accumulators of
    /// [`RowAggregate::retracting`]).
    pub fn retract_row(&self, accs: &mut [Acc], row: &[Value]) {
        for (acc, spec) in accs.iter_mut().zip(self.specs.iter()) {
            acc.retract(spec.kind, Self::arg(spec, row));
        }
    }

    /// Adds a pre-computed row.
    pub fn add_row(&self, accs: &mut [Acc], row: &[Value]) {
        for (acc, spec) in accs.iter_mut().zip(self.specs.iter()) {
            acc.add(spec.kind, Self::arg(spec, row));
        }
    }

    /// Merges accumulators.
    pub fn merge_accs(&self, accs: &mut [Acc], other: &[Acc]) {
        for (a, b) in accs.iter_mut().zip(other) {
            a.merge(b);
        }
    }

    /// A GROUP BY's output row: `key`, then the results.
    pub fn result_row(&self, key: &[Value], accs: &[Acc]) -> Row {
        let mut row = Vec::with_capacity(key.len() + accs.len());
        row.extend_from_slice(key);
        row.extend(self.result_values(accs));
        row
    }

    /// The results.
    pub fn results(&self, accs: &[Acc]) -> Row {
        self.result_values(accs).collect()
    }

    fn result_values<'a>(&'a self, accs: &'a [Acc]) -> impl Iterator<Item = Value> + 'a {
        accs.iter().zip(self.specs.iter()).map(|(a, s)| a.result(s))
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
    state: Option<ValueState<(Key, Vec<Acc>)>>,
    ttl: Option<StateTtl>,
}

impl GroupUpdates {
    /// The updates of `agg` over (key, accumulators of one row) pairs; a key's
    /// state is dropped after `ttl` without a row (kept forever with `None`).
    pub(crate) fn new(agg: RowAggregate, before: bool, ttl: Option<Duration>) -> GroupUpdates {
        GroupUpdates {
            agg,
            before,
            state: None,
            ttl: ttl.map(StateTtl::new),
        }
    }
}

impl KeyedProcessFunction<Key, (Key, Vec<Acc>)> for GroupUpdates {
    type Out = Change;

    fn open(&mut self, state: &mut StateRegistry<'_, Key>) -> engine::Result<()> {
        self.state = Some(state.value());
        if let Some(t) = self.ttl.as_mut() {
            t.open(state);
        }
        Ok(())
    }

    fn process_element(
        &mut self,
        value: (Key, Vec<Acc>),
        ctx: &mut ProcessContext<'_, '_, Key, Change>,
    ) -> engine::Result<()> {
        let Some(s) = self.state else {
            return Ok(());
        };
        if let Some(t) = &self.ttl {
            t.touch(ctx);
        }
        let (next, before) = match ctx.state().get(s) {
            Some((key, accs)) => {
                let before = self.before.then(|| self.agg.result_row(key, accs));
                let mut merged = accs.clone();
                self.agg.merge_accs(&mut merged, &value.1);
                ((key.clone(), merged), before)
            }
            None => (value, None),
        };
        let row = self.agg.result_row(&next.0, &next.1);
        ctx.state().set(s, next);
        ctx.collect(Change::Upsert { before, row });
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, '_, Key, Change>,
    ) -> engine::Result<()> {
        if let Some(t) = &self.ttl {
            t.on_timer(at, domain, self.state, ctx);
        }
        Ok(())
    }
}

/// Idle state retention of a GROUP BY without window (`SET
/// 'table.exec.state.ttl'`, as Flink's): a key's state is dropped once no row
/// has reached it for the TTL, in processing time; a later row starts the key
/// afresh. Dropping emits nothing.
///
/// Each key keeps the processing time of its last row (a second value state)
/// and one processing-time timer, set when the key's state is created. A timer
/// that finds a later row re-arms itself for that row's expiry instead of one
/// timer per row. State and timers are both in the operator's checkpoint, so a
/// restored job expires the same keys.
///
/// ```text
/// row at 0      last 0, timer at 300
/// row at 200    last 200              (no new timer)
/// timer at 300  200 + 300 > 300: timer at 500
/// timer at 500  idle for 300: state and last dropped
/// ```
#[derive(Clone, Copy)]
struct StateTtl {
    /// TTL in ms (at least 1).
    ttl: i64,
    /// Processing time of the key's last row.
    last: Option<ValueState<i64>>,
}

impl StateTtl {
    fn new(ttl: Duration) -> StateTtl {
        StateTtl {
            ttl: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1),
            last: None,
        }
    }

    /// Declares the last-row state (after the aggregate's own, so a checkpoint
    /// without TTL keeps its layout).
    fn open(&mut self, state: &mut StateRegistry<'_, Key>) {
        self.last = Some(state.value());
    }

    /// A row reached the current key: its state lives another TTL.
    fn touch<O>(&self, ctx: &mut ProcessContext<'_, '_, Key, O>) {
        let Some(last) = self.last else {
            return;
        };
        let now = ctx.processing_time();
        if ctx.state().get(last).is_none() {
            ctx.register_processing_timer(now.saturating_add(self.ttl));
        }
        ctx.state().set(last, now);
    }

    /// A timer of the current key fired at `at`: drops the key's `state` and
    /// last-row time if it had no row for the TTL; else re-arms the timer
    /// for the key's current expiry.
    fn on_timer<V: StateValue, O>(
        &self,
        at: i64,
        domain: TimeDomain,
        state: Option<ValueState<V>>,
        ctx: &mut ProcessContext<'_, '_, Key, O>,
    ) {
        let (Some(last), Some(state)) = (self.last, state) else {
            return;
        };
        if domain != TimeDomain::ProcessingTime {
            return;
        }
        match ctx.state().get(last).copied() {
            Some(l) if l.saturating_add(self.ttl) > at => {
                ctx.register_processing_timer(l.saturating_add(self.ttl));
            }
            Some(_) => {
                ctx.state().clear(last);
                ctx.state().clear(state);
            }
            None => {}
        }
    }
}

/// One change of an updating input to a [`GroupRetractions`], for one group
/// key: the pre-computed row it takes back and the one it adds (both when a
/// row's old and new versions fall in the same group).
pub(crate) type Retraction = (Key, Option<Row>, Option<Row>);

/// The records of one input change for a GROUP BY over updates (pre-computed
/// rows, their first `keys` values the group key): one when the old and new
/// rows fall in the same group, else one per group.
pub(crate) fn retractions(old: Option<Row>, new: Option<Row>, keys: usize) -> Vec<Retraction> {
    fn cols(r: &[Value], keys: usize) -> &[Value] {
        &r[..keys.min(r.len())]
    }
    let key = |r: &Row| Key::of(cols(r, keys));
    match (old, new) {
        (Some(o), Some(n)) if cols(&o, keys) == cols(&n, keys) => {
            vec![(key(&n), Some(o), Some(n))]
        }
        (old, new) => old
            .map(|o| (key(&o), Some(o), None))
            .into_iter()
            .chain(new.map(|n| (key(&n), None, Some(n))))
            .collect(),
    }
}

/// A GROUP BY without window over an updating input: per key, how many input
/// rows it holds now and their retracting accumulators (one value state). A
/// change takes its old row back and adds its new one; then the key's result is
/// upserted (with the row it replaces) if it changed, or deleted once no input
/// row is left in the group, as Flink's group aggregate does with retractions.
///
/// ```text
/// input change (by inner key)    records (by group key)        output
/// +U old (c=1, 30) -> (c=1, 45)  (c=1, -30 +45)                +U c=1 avg 45
/// +U old (c=1, 45) -> (c=2, 45)  (c=1, -45)  (c=2, +45)        -D c=1, +U c=2
/// ```
#[derive(Clone)]
pub(crate) struct GroupRetractions {
    agg: RowAggregate,
    state: Option<ValueState<(i64, Vec<Acc>)>>,
    ttl: Option<StateTtl>,
}

impl GroupRetractions {
    /// The updates of `agg` (made by [`RowAggregate::retracting`]); a key's
    /// state is dropped after `ttl` without a change (kept forever with `None`).
    pub(crate) fn new(agg: RowAggregate, ttl: Option<Duration>) -> GroupRetractions {
        GroupRetractions {
            agg,
            state: None,
            ttl: ttl.map(StateTtl::new),
        }
    }
}

impl KeyedProcessFunction<Key, Retraction> for GroupRetractions {
    type Out = Change;

    fn open(&mut self, state: &mut StateRegistry<'_, Key>) -> engine::Result<()> {
        self.state = Some(state.value());
        if let Some(t) = self.ttl.as_mut() {
            t.open(state);
        }
        Ok(())
    }

    fn process_element(
        &mut self,
        (key, old, new): Retraction,
        ctx: &mut ProcessContext<'_, '_, Key, Change>,
    ) -> engine::Result<()> {
        let Some(s) = self.state else {
            return Ok(());
        };
        if let Some(t) = &self.ttl {
            t.touch(ctx);
        }
        let (mut rows, mut accs, before) = match ctx.state().take(s) {
            Some((rows, accs)) => {
                let before = self.agg.result_row(&key, &accs);
                (rows, accs, Some(before))
            }
            None => (0, self.agg.create_accs(), None),
        };
        // A key without state has no row to take back: its state expired (or
        // never held the row), and the change starts it afresh, as Flink's
        // group aggregate ignores a retraction without accumulators.
        let old = old.filter(|_| before.is_some());
        if let Some(old) = &old {
            self.agg.retract_row(&mut accs, old);
            rows -= 1;
        }
        if let Some(new) = &new {
            self.agg.add_row(&mut accs, new);
            rows += 1;
        }
        if rows <= 0 {
            if let Some(before) = before {
                ctx.collect(Change::Delete(before));
            }
            return Ok(());
        }
        let row = self.agg.result_row(&key, &accs);
        ctx.state().set(s, (rows, accs));
        // An unchanged result is not emitted again (a bid below an auction's
        // maximum changes nothing above it).
        if before.as_ref() != Some(&row) {
            ctx.collect(Change::Upsert { before, row });
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        at: i64,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, '_, Key, Change>,
    ) -> engine::Result<()> {
        if let Some(t) = &self.ttl {
            t.on_timer(at, domain, self.state, ctx);
        }
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
    fn retracting_accumulators_take_values_back_exactly() {
        let spec = |k, t| AggSpec::new(k, 0, t, format!("{k:?}")).expect("valid");
        let kinds = [
            AggKind::CountStar,
            AggKind::Count,
            AggKind::CountDistinct,
            AggKind::Sum,
            AggKind::Min,
            AggKind::Max,
            AggKind::Avg,
        ];
        let a = RowAggregate::retracting(kinds.iter().map(|&k| spec(k, DataType::Int)).collect());
        let mut x = a.create_accs();
        for v in [4, 1, 4, 9] {
            a.add_row(&mut x, &[Value::Int(v)]);
        }
        a.add_row(&mut x, &[Value::Null]);
        let ints = |v: [i64; 7]| -> Row {
            v.iter()
                .zip(kinds)
                .map(|(&n, k)| match k {
                    AggKind::CountStar | AggKind::Count | AggKind::CountDistinct => {
                        Value::BigInt(n)
                    }
                    _ => Value::Int(n as i32),
                })
                .collect()
        };
        a.retract_row(&mut x, &[Value::Int(9)]);
        assert_eq!(a.results(&x), ints([4, 3, 2, 9, 1, 4, 3]));
        // MAX keeps 4 while one of its two rows is left.
        a.retract_row(&mut x, &[Value::Int(4)]);
        assert_eq!(a.results(&x), ints([3, 2, 2, 5, 1, 4, 2]));
        a.retract_row(&mut x, &[Value::Int(4)]);
        assert_eq!(a.results(&x), ints([2, 1, 1, 1, 1, 1, 1]));
        let mut buf = Vec::new();
        x.encode(&mut buf);
        assert_eq!(Vec::<Acc>::decode(&mut buf.as_slice()).expect("decodes"), x);
        // Only the NULL row is left: counts of it, NULL for the rest (not a 0).
        a.retract_row(&mut x, &[Value::Int(1)]);
        let r = a.results(&x);
        assert_eq!(
            r[..3],
            [Value::BigInt(1), Value::BigInt(0), Value::BigInt(0)]
        );
        assert!(r[3..].iter().all(Value::is_null), "{r:?}");
    }

    /// An updating input for [`GroupRetractions`]: ten inner keys, each row
    /// `i` the new version of key `i % 10` (value `i * 37 % 101`) replacing
    /// the previous one; grouped by value % 3, so rows move between groups.
    /// Keys 5 to 9 change no more after row 1,000: their last rows stay in the
    /// result only through the state.
    fn inner_changes(i: u64) -> Vec<Retraction> {
        if i >= 1_000 && i % 10 >= 5 {
            return Vec::new();
        }
        let row = |i: u64| {
            let v = (i * 37 % 101) as i64;
            vec![Value::BigInt(v % 3), Value::BigInt(v)]
        };
        let old = (i >= 10).then(|| row(i - 10));
        // Every 7th version deletes its key's row (and the next one adds it).
        let new = (i % 7 != 6).then(|| row(i));
        let old = old.filter(|_| (i - 10) % 7 != 6);
        retractions(old, new, 1)
    }

    fn retracting_job(p: &engine::Pipeline, sink: &engine::CollectSink<Change>) {
        let kinds = [
            AggKind::CountStar,
            AggKind::Sum,
            AggKind::Min,
            AggKind::Max,
            AggKind::Avg,
        ];
        let specs = kinds
            .iter()
            .map(|&k| AggSpec::new(k, 1, DataType::BigInt, format!("{k:?}")).expect("valid"))
            .collect();
        // One source task: each group sees the changes in one order, so its
        // updates are the same in every run.
        p.source_with_parallelism(
            engine::GeneratorSource::new(inner_changes)
                .rate_per_second(10_000.0)
                .limit(20_000),
            engine::WatermarkStrategy::no_watermarks(),
            1,
        )
        .flat_map(|v| v)
        .key_by(|r: &Retraction| r.0.clone())
        .process(GroupRetractions::new(RowAggregate::retracting(specs), None))
        .uid("retractions")
        .sink(sink.clone());
    }

    /// The table an upsert sink ends with after `changes`: per group, its last
    /// row unless deleted after it.
    fn final_table(changes: Vec<Change>) -> BTreeMap<String, Row> {
        let mut out = BTreeMap::new();
        for c in changes {
            let key = c.row()[0].to_text();
            match c {
                Change::Upsert { row, .. } => out.insert(key, row),
                Change::Delete(_) => out.remove(&key),
            };
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retracting_state_restored_from_a_checkpoint_continues_exactly() {
        let config = || engine::PipelineConfig::default().parallelism(2);
        let reference = engine::CollectSink::transactional();
        let p = engine::Pipeline::with_config(config());
        retracting_job(&p, &reference);
        p.run().await.expect("runs");
        let deletes = reference.values().iter().filter(|c| c.is_delete()).count();
        let reference = final_table(reference.values());
        assert_eq!(reference.len(), 3, "{reference:?}");
        assert!(deletes > 0, "no group emptied");

        let sink = engine::CollectSink::transactional();
        let p = engine::Pipeline::with_config(config());
        retracting_job(&p, &sink);
        let job = p.start().expect("starts");
        // A checkpoint that committed some output, well before the input's end
        // (the sink commits just after the job reports the checkpoint complete).
        let ms = std::time::Duration::from_millis;
        let mut checkpoint = None;
        for _ in 0..20 {
            tokio::time::sleep(ms(100)).await;
            let id = job.trigger_checkpoint().await.expect("checkpoints");
            for _ in 0..80 {
                if !sink.values().is_empty() {
                    break;
                }
                tokio::time::sleep(ms(25)).await;
            }
            if !sink.values().is_empty() {
                checkpoint = job.checkpoints().get(id);
                break;
            }
        }
        let checkpoint = checkpoint.expect("a checkpoint committed output");
        job.abort();
        let _ = job.wait().await;
        let before = sink.values().len();
        assert!(before > 0, "nothing committed by the checkpoint");

        // Without its counts and values the restored job would take back rows it
        // never added, and end with other results.
        let p = engine::Pipeline::with_config(config());
        retracting_job(&p, &sink);
        p.restore_from(checkpoint);
        p.run().await.expect("runs restored");
        assert!(
            sink.values().len() > before,
            "the checkpoint came after the input"
        );
        assert_eq!(final_table(sink.values()), reference);
    }

    /// Ten rows a second (row `i` at `i * 100` ms): key `idle` at rows 0, 1
    /// and 30, key `busy` at every other row (never 300 ms without one), or
    /// no row there when `quiet`.
    fn ttl_rows(i: u64, quiet: bool) -> Option<(Key, Vec<Acc>)> {
        let key = if matches!(i, 0 | 1 | 30) {
            "idle"
        } else if quiet {
            return None;
        } else {
            "busy"
        };
        let agg = count_star();
        let mut accs = agg.create_accs();
        agg.add_row(&mut accs, &[]);
        Some((Key::from(vec![Value::String(key.into())]), accs))
    }

    fn count_star() -> RowAggregate {
        RowAggregate::new(vec![
            AggSpec::new(AggKind::CountStar, 0, DataType::Int, "COUNT(*)".into()).expect("valid"),
        ])
    }

    /// [`ttl_rows`] through a COUNT(*) GROUP BY key with a 300 ms state TTL,
    /// processing time starting at 0.
    fn ttl_job(quiet: bool, sink: &engine::CollectSink<Change>) -> engine::Pipeline {
        let p = engine::Pipeline::with_config(
            engine::PipelineConfig::default()
                .parallelism(1)
                .processing_time_start(0),
        );
        p.source_with_parallelism(
            engine::GeneratorSource::new(move |i| ttl_rows(i, quiet))
                .rate_per_second(10.0)
                .limit(40),
            engine::WatermarkStrategy::no_watermarks(),
            1,
        )
        .flat_map(|r| r)
        .key_by(|r: &(Key, Vec<Acc>)| r.0.clone())
        .process(GroupUpdates::new(
            count_star(),
            false,
            Some(Duration::from_millis(300)),
        ))
        .uid("group")
        .sink(sink.clone());
        p
    }

    /// The counts `key` was upserted with, in order.
    fn counts(changes: &[Change], key: &str) -> Vec<i64> {
        changes
            .iter()
            .filter(|c| c.row()[0] == Value::String(key.into()))
            .filter_map(|c| c.row()[1].as_i64())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_key_restarts_after_its_state_ttl_and_a_busy_one_never_expires() {
        let sink = engine::CollectSink::new();
        ttl_job(false, &sink).run().await.expect("runs");
        let changes = sink.values();
        // Idle from 100 ms to 3 s: its state went, its count starts over.
        assert_eq!(counts(&changes, "idle"), vec![1, 2, 1]);
        assert_eq!(counts(&changes, "busy"), (1..=37).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn state_ttl_timers_restored_from_a_checkpoint_still_expire_idle_keys() {
        for quiet in [false, true] {
            restored_ttl_run(quiet).await;
        }
    }

    /// Checkpoints [`ttl_job`] at 250 ms and runs it again from there, `quiet`
    /// after the restore or not.
    async fn restored_ttl_run(quiet: bool) {
        let sink = engine::CollectSink::transactional();
        let job = ttl_job(false, &sink).start().expect("starts");
        // After the idle key's two rows, before its expiry at 400 ms.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let id = job.trigger_checkpoint().await.expect("checkpoints");
        let checkpoint = job.checkpoints().get(id).expect("kept");
        job.abort();
        let _ = job.wait().await;
        assert_eq!(counts(&sink.values(), "idle"), vec![1, 2]);

        // The restored job replays from the checkpoint's position; the idle
        // key's state comes back with its timer, which drops it 300 ms after
        // its last row (processing time restarts at 0 here), also when no row
        // follows the restore before it is due.
        let restored = engine::CollectSink::transactional();
        let p = ttl_job(quiet, &restored);
        p.restore_from(checkpoint);
        p.run().await.expect("runs restored");
        let changes = restored.values();
        assert_eq!(
            counts(&changes, "idle"),
            vec![1],
            "quiet {quiet}: {changes:?}"
        );
        let busy = counts(&changes, "busy");
        if !quiet {
            assert_eq!(busy.last(), Some(&37), "{busy:?}");
        }
    }

    /// The bytes of the `group` operator's keyed state in a checkpoint of `job`
    /// taken now.
    async fn group_state_bytes(job: &engine::JobHandle) -> usize {
        let id = job.trigger_checkpoint().await.expect("checkpoints");
        let c = job.checkpoints().get(id).expect("kept");
        let (op, _) = c.uids.iter().find(|(_, u)| *u == "group").expect("group");
        c.operators
            .get(op)
            .map_or(0, |s| s.key_groups.values().map(Vec::len).sum())
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_key_leaves_the_checkpoint() {
        let sink = engine::CollectSink::transactional();
        let start = tokio::time::Instant::now();
        let job = ttl_job(true, &sink).start().expect("starts");
        // The idle key (rows at 0 and 100 ms) is held at 250 ms, gone at 1 s.
        tokio::time::sleep_until(start + Duration::from_millis(250)).await;
        let held = group_state_bytes(&job).await;
        tokio::time::sleep_until(start + Duration::from_millis(1_000)).await;
        let expired = group_state_bytes(&job).await;
        job.abort();
        let _ = job.wait().await;
        assert!(held > 0, "no state held");
        assert_eq!(expired, 0, "expired state still in the checkpoint");
    }

    #[tokio::test(start_paused = true)]
    async fn over_updates_an_expired_key_starts_afresh_without_taking_rows_back() {
        // Key `k` gets value 5 at 0 ms, is replaced by 7 at 1 s (its state
        // expired at 300 ms), then by 9 at 1.1 s.
        let p = engine::Pipeline::with_config(
            engine::PipelineConfig::default()
                .parallelism(1)
                .processing_time_start(0),
        );
        let sink = engine::CollectSink::new();
        let row = |v: i64| Some(vec![Value::String("k".into()), Value::BigInt(v)]);
        p.source_with_parallelism(
            engine::GeneratorSource::new(move |i| match i {
                0 => retractions(None, row(5), 1),
                10 => retractions(row(5), row(7), 1),
                11 => retractions(row(7), row(9), 1),
                _ => Vec::new(),
            })
            .rate_per_second(10.0)
            .limit(12),
            engine::WatermarkStrategy::no_watermarks(),
            1,
        )
        .flat_map(|v| v)
        .key_by(|r: &Retraction| r.0.clone())
        .process(GroupRetractions::new(
            RowAggregate::retracting(vec![
                AggSpec::new(AggKind::Sum, 1, DataType::BigInt, "SUM(v)".into()).expect("valid"),
            ]),
            Some(Duration::from_millis(300)),
        ))
        .sink(sink.clone());
        p.run().await.expect("runs");
        let changes = sink.values();
        assert_eq!(counts(&changes, "k"), vec![5, 7, 9]);
        // 7 is a new row for the key, not an update of 5.
        let replaced: Vec<bool> = changes
            .iter()
            .map(|c| {
                matches!(
                    c,
                    Change::Upsert {
                        before: Some(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(replaced, vec![false, false, true], "{changes:?}");
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
