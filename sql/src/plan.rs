//! The query planner: SELECT statements to a tree of [`Plan`] nodes over the
//! engine's operators.
//!
//! ```text
//! INSERT INTO sink SELECT ..          Sink
//!   FROM TABLE(TUMBLE(t, ..))    ->     Calc (SELECT list, HAVING)
//!   WHERE ..                              WindowAggregate (keys, window, aggregates)
//!   GROUP BY window_start, ..               Calc (WHERE, pre-computed keys and arguments)
//!                                             Scan t
//! ```
//!
//! Every expression is compiled here (see [`crate::expr`]), so a plan that builds
//! runs without further checks. Each node knows its output schema, which column
//! (if any) is the event-time attribute the engine's record timestamps carry, and
//! whether it emits updates (a non-windowed GROUP BY) with which key columns.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use sqlparser::ast::{
    Expr, FunctionArguments, GroupByExpr, Join, JoinConstraint, JoinOperator, Query, Select,
    SelectItem, SetExpr, Spanned, TableFactor, TableWithJoins,
};

use crate::aggregate::{AggKind, AggSpec};
use crate::error::{Result, SqlError};
use crate::expr::{
    AGGREGATES, CExpr, Scope, column_name, compile, function_args, has_aggregate, interval_ms,
    visit,
};
use crate::parse::{Script, TableDef, object_name};
use crate::types::{DataType, Field, Schema};

/// A window of a window table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `TUMBLE(.., size)`.
    Tumble {
        /// Size in ms.
        size: i64,
    },
    /// `HOP(.., slide, size)`.
    Hop {
        /// Slide in ms.
        slide: i64,
        /// Size in ms.
        size: i64,
    },
    /// `SESSION(.., gap)`.
    Session {
        /// Gap in ms.
        gap: i64,
    },
}

/// `state TTL 90 s`: a state TTL as `strom explain` shows it.
fn ttl_text(d: &std::time::Duration) -> String {
    format!("state TTL {}", duration_text(d.as_millis() as i64))
}

/// `ms` in the largest unit that divides it (min, s or ms).
fn duration_text(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

impl std::fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = duration_text;
        match self {
            WindowSpec::Tumble { size } => write!(f, "TUMBLE(size {})", d(*size)),
            WindowSpec::Hop { slide, size } => {
                write!(f, "HOP(size {}, slide {})", d(*size), d(*slide))
            }
            WindowSpec::Session { gap } => write!(f, "SESSION(gap {})", d(*gap)),
        }
    }
}

/// One operator of a plan.
#[derive(Debug, Clone)]
pub enum Node {
    /// Reads a source table.
    Scan {
        /// The table.
        table: String,
    },
    /// Filters and projects rows. Over an updating input, a version that fails
    /// the filter deletes its key's row if the version it replaces passed (and is
    /// dropped if not); a delete passes if the row it deletes passed.
    Calc {
        /// Input.
        input: Box<Plan>,
        /// Rows pass when this is TRUE.
        filter: Option<CExpr>,
        /// The output columns.
        project: Vec<CExpr>,
    },
    /// Assigns each row its windows (a window table function without GROUP BY).
    WindowAssign {
        /// Input.
        input: Box<Plan>,
        /// The window.
        window: WindowSpec,
    },
    /// A GROUP BY over a window table function.
    WindowAggregate {
        /// Input.
        input: Box<Plan>,
        /// The window.
        window: WindowSpec,
        /// Group keys then aggregate arguments, computed on input rows.
        pre: Vec<CExpr>,
        /// How many of `pre` are keys.
        keys: usize,
        /// The aggregates.
        aggs: Vec<AggSpec>,
    },
    /// An inner join of rows with equal keys whose event times are at most a
    /// bounded interval apart: `lower <= right.ts - left.ts <= upper`.
    IntervalJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Key expressions over left rows.
        left_keys: Vec<CExpr>,
        /// Key expressions over right rows (same order).
        right_keys: Vec<CExpr>,
        /// Bounds of `right.ts - left.ts` in ms.
        lower: i64,
        /// Upper bound.
        upper: i64,
        /// The rest of the ON condition, over the joined row.
        filter: Option<CExpr>,
    },
    /// An inner join of every pair of rows with equal keys, whatever their times
    /// (Flink's regular join); each side's rows are kept until the state TTL.
    RegularJoin {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Key expressions over left rows.
        left_keys: Vec<CExpr>,
        /// Key expressions over right rows (same order).
        right_keys: Vec<CExpr>,
        /// The rest of the ON condition that reads both sides, over the joined row.
        filter: Option<CExpr>,
        /// How long a row is kept after it arrived (`SET 'table.exec.state.ttl'`);
        /// `None`: forever.
        state_ttl: Option<std::time::Duration>,
    },
    /// An inner join of the rows of two tumbling window table functions with equal
    /// keys in the same window.
    WindowJoin {
        /// Left input (without window columns).
        left: Box<Plan>,
        /// Right input (without window columns).
        right: Box<Plan>,
        /// Window size in ms.
        size: i64,
        /// The time column of each side.
        times: (usize, usize),
        /// Key expressions over left rows.
        left_keys: Vec<CExpr>,
        /// Key expressions over right rows.
        right_keys: Vec<CExpr>,
        /// The rest of the ON condition, over the joined row.
        filter: Option<CExpr>,
    },
    /// A GROUP BY without window: emits the updated result of a key per input row.
    /// Over an updating input, each change takes back the row it replaces (or
    /// deletes) before it adds its new one, and a key whose group is left empty
    /// is deleted.
    GroupAggregate {
        /// Input.
        input: Box<Plan>,
        /// Group keys then aggregate arguments, computed on input rows.
        pre: Vec<CExpr>,
        /// How many of `pre` are keys.
        keys: usize,
        /// The aggregates.
        aggs: Vec<AggSpec>,
        /// How long a key's state is kept without a row reaching it (`SET
        /// 'table.exec.state.ttl'`); `None`: forever.
        state_ttl: Option<std::time::Duration>,
    },
}

/// A planned query: a node with its output.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The operator.
    pub node: Node,
    /// Output columns.
    pub schema: Schema,
    /// The output column whose value is the records' event time, if any.
    pub time: Option<usize>,
    /// The key columns of an updating result (a non-windowed GROUP BY's keys), if
    /// the output is a stream of changes (new versions of a key's row, and deletes
    /// of it: [`crate::types::Change`]) rather than of appends, and the SELECT
    /// list kept every key column.
    pub upsert_key: Option<Vec<usize>>,
    /// Whether the output is a stream of changes: with `upsert_key` `None`, a
    /// SELECT list left a group key out, so only an aggregate above (which
    /// retracts each change's old row) can read it, not a sink.
    pub updating: bool,
    /// Columns whose value is the record's event time plus a constant (a window
    /// aggregate's window_end is its window_time + 1 ms): join bounds may use them
    /// as time attributes.
    pub time_offsets: Vec<(usize, i64)>,
    /// A window aggregate's window_start and window_end columns, and the tumbling
    /// size that finds the window again from the record time (a HOP's slide): a
    /// GROUP BY over both is a window aggregate again (Flink's window propagation).
    pub window_cols: Option<(usize, usize, i64)>,
}

/// Where the time offsets and window columns of `input` land in a projection.
type Carried = (Vec<(usize, i64)>, Option<(usize, usize, i64)>);

fn carry(input: &Plan, project: &[CExpr]) -> Carried {
    let at = |c: usize| project.iter().position(|p| p.column == Some(c));
    let offsets = input
        .time_offsets
        .iter()
        .filter_map(|&(c, o)| at(c).map(|p| (p, o)))
        .collect();
    let window = input
        .window_cols
        .and_then(|(a, b, size)| Some((at(a)?, at(b)?, size)));
    (offsets, window)
}

impl Plan {
    fn explain_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let cols = |es: &[CExpr]| {
            es.iter()
                .map(|e| e.text.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let on = |l: &[CExpr], r: &[CExpr]| format!("on [{}] = [{}]", cols(l), cols(r));
        let filter_text = |f: &Option<CExpr>| {
            f.as_ref()
                .map_or_else(String::new, |f| format!(" where {}", f.text))
        };
        match &self.node {
            Node::Scan { table } => {
                let _ = writeln!(out, "{pad}Scan {table} [{}]", self.schema.describe());
            }
            Node::Calc {
                input,
                filter,
                project,
            } => {
                let _ = write!(out, "{pad}Calc [{}]", cols(project));
                if let Some(f) = filter {
                    let _ = write!(out, " where {}", f.text);
                    if input.updating {
                        out.push_str("  (a version failing it deletes its key's row)");
                    }
                }
                let dropped: Vec<&str> = input
                    .upsert_key
                    .iter()
                    .flatten()
                    .filter(|&&k| !project.iter().any(|c| c.column == Some(k)))
                    .map(|&k| match &input.node {
                        // The key as the GROUP BY wrote it (`A.id`).
                        Node::GroupAggregate { pre, .. } if k < pre.len() => pre[k].text.as_str(),
                        _ => input.schema.fields[k].name.as_str(),
                    })
                    .collect();
                if !dropped.is_empty() {
                    let _ = write!(
                        out,
                        "  (leaves group key {} out: updates without a key, each with the row it replaces)",
                        dropped.join(", ")
                    );
                }
                out.push('\n');
                input.explain_into(out, depth + 1);
            }
            Node::WindowAssign { input, window } => {
                let _ = writeln!(out, "{pad}WindowAssign {window}");
                input.explain_into(out, depth + 1);
            }
            Node::WindowAggregate {
                input,
                window,
                pre,
                keys,
                aggs,
            } => {
                let what = format!("WindowAggregate {window}");
                let _ = writeln!(
                    out,
                    "{pad}{}",
                    aggregate_line(&what, &pre[..*keys], aggs, "exchange by key")
                );
                input.explain_into(out, depth + 1);
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
                let _ = writeln!(
                    out,
                    "{pad}IntervalJoin {}, right time - left time in [{lower} ms, {upper} ms]{}  (exchange by key)",
                    on(left_keys, right_keys),
                    filter_text(filter)
                );
                left.explain_into(out, depth + 1);
                right.explain_into(out, depth + 1);
            }
            Node::RegularJoin {
                left,
                right,
                left_keys,
                right_keys,
                filter,
                state_ttl,
            } => {
                let state = match state_ttl {
                    Some(d) => ttl_text(d),
                    None => "state kept forever".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{pad}RegularJoin {}{}, {state}  (exchange by key)",
                    on(left_keys, right_keys),
                    filter_text(filter)
                );
                left.explain_into(out, depth + 1);
                right.explain_into(out, depth + 1);
            }
            Node::WindowJoin {
                left,
                right,
                size,
                left_keys,
                right_keys,
                filter,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "{pad}WindowJoin {} {}{}  (exchange by key)",
                    WindowSpec::Tumble { size: *size },
                    on(left_keys, right_keys),
                    filter_text(filter)
                );
                left.explain_into(out, depth + 1);
                right.explain_into(out, depth + 1);
            }
            Node::GroupAggregate {
                input,
                pre,
                keys,
                aggs,
                state_ttl,
            } => {
                let note = if input.updating {
                    "exchange by key, retracts the row each input change replaces, emits updates"
                } else {
                    "exchange by key, emits updates"
                };
                let note = match state_ttl {
                    Some(d) => format!("{note}, {}", ttl_text(d)),
                    None => note.to_string(),
                };
                let _ = writeln!(
                    out,
                    "{pad}{}",
                    aggregate_line("GroupAggregate", &pre[..*keys], aggs, &note)
                );
                input.explain_into(out, depth + 1);
            }
        }
    }

    /// The plan as an indented operator tree.
    pub fn explain(&self) -> String {
        let mut s = String::new();
        self.explain_into(&mut s, 0);
        s
    }

    /// The source tables the plan reads.
    pub fn scans(&self, out: &mut Vec<String>) {
        match &self.node {
            Node::Scan { table } => out.push(table.clone()),
            Node::Calc { input, .. }
            | Node::WindowAssign { input, .. }
            | Node::WindowAggregate { input, .. }
            | Node::GroupAggregate { input, .. } => input.scans(out),
            Node::IntervalJoin { left, right, .. }
            | Node::RegularJoin { left, right, .. }
            | Node::WindowJoin { left, right, .. } => {
                left.scans(out);
                right.scans(out);
            }
        }
    }
}

/// The columns of each source table a set of plans reads (`None`: all of them),
/// for reading only those from the records. A Calc passes on what its kept
/// outputs and its filter read; any other operator reads every column of its
/// input.
#[derive(Debug, Default)]
pub struct ColumnsRead(
    pub std::collections::HashMap<String, Option<std::collections::BTreeSet<usize>>>,
);

impl ColumnsRead {
    /// Adds what `plan` reads of its source tables.
    pub fn add(&mut self, plan: &Plan) {
        self.visit(plan, None);
    }

    /// `needed`: the output columns of `plan` its parent reads (`None`: all).
    fn visit(&mut self, plan: &Plan, needed: Option<BTreeSet<usize>>) {
        match &plan.node {
            Node::Scan { table } => {
                let entry = self
                    .0
                    .entry(table.clone())
                    .or_insert_with(|| Some(Default::default()));
                match (entry.as_mut(), needed) {
                    (Some(have), Some(n)) => have.extend(n),
                    _ => *entry = None,
                }
            }
            Node::Calc {
                input,
                filter,
                project,
            } => {
                let kept: Vec<&CExpr> = match &needed {
                    Some(n) => n.iter().filter_map(|&i| project.get(i)).collect(),
                    None => project.iter().collect(),
                };
                let mut reads = BTreeSet::new();
                let known = filter.iter().chain(kept).all(|c| match &c.reads {
                    Some(r) => {
                        reads.extend(r.iter().copied());
                        true
                    }
                    None => false,
                });
                self.visit(input, known.then_some(reads));
            }
            Node::WindowAssign { input, .. } => {
                let below = input.schema.len();
                let needs = needed.map(|n| n.into_iter().filter(|&i| i < below).collect());
                self.visit(input, with_time(needs, input));
            }
            Node::WindowAggregate { input, pre, .. } | Node::GroupAggregate { input, pre, .. } => {
                let mut needs = BTreeSet::new();
                let known = pre.iter().all(|c| add_reads(&mut needs, c, 0, usize::MAX));
                self.visit(input, with_time(known.then_some(needs), input));
            }
            Node::IntervalJoin {
                left,
                right,
                left_keys,
                right_keys,
                filter,
                ..
            }
            | Node::RegularJoin {
                left,
                right,
                left_keys,
                right_keys,
                filter,
                ..
            } => {
                // The joined row is the left row then the right one.
                let split = left.schema.len();
                let side = |keys: &[CExpr], from: usize, to: usize| {
                    let mut needs: BTreeSet<usize> = needed
                        .as_ref()?
                        .iter()
                        .filter(|&&i| (from..to).contains(&i))
                        .map(|&i| i - from)
                        .collect();
                    let known = keys.iter().all(|c| add_reads(&mut needs, c, 0, usize::MAX))
                        && filter.iter().all(|c| add_reads(&mut needs, c, from, to));
                    known.then_some(needs)
                };
                let (l, r) = (
                    side(left_keys, 0, split),
                    side(right_keys, split, usize::MAX),
                );
                self.visit(left, with_time(l, left));
                self.visit(right, with_time(r, right));
            }
            Node::WindowJoin { left, right, .. } => {
                self.visit(left, None);
                self.visit(right, None);
            }
        }
    }
}

/// Adds to `needs` the columns in `from..to` that `c` reads, less `from`;
/// false when what `c` reads is not known.
fn add_reads(needs: &mut BTreeSet<usize>, c: &CExpr, from: usize, to: usize) -> bool {
    match &c.reads {
        Some(r) => {
            needs.extend(
                r.iter()
                    .filter(|&&i| (from..to).contains(&i))
                    .map(|&i| i - from),
            );
            true
        }
        None => false,
    }
}

/// `needs` and the event-time column of `input`, which its operator reads.
fn with_time(needs: Option<BTreeSet<usize>>, input: &Plan) -> Option<BTreeSet<usize>> {
    let mut needs = needs?;
    needs.extend(input.time);
    Some(needs)
}

/// `input` with only the rows where `filter` is TRUE: a Calc that keeps every
/// column (and so the time attribute, window columns and upsert key).
pub fn filtered(input: Plan, filter: CExpr) -> Plan {
    let project = input
        .schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| CExpr::column(i, f.ty, f.name.clone()))
        .collect();
    Plan {
        schema: input.schema.clone(),
        time: input.time,
        upsert_key: input.upsert_key.clone(),
        updating: input.updating,
        time_offsets: input.time_offsets.clone(),
        window_cols: input.window_cols,
        node: Node::Calc {
            input: Box::new(input),
            filter: Some(filter),
            project,
        },
    }
}

/// `what by [keys] compute [aggregates]  (note)` for explain.
fn aggregate_line(what: &str, keys: &[CExpr], aggs: &[AggSpec], note: &str) -> String {
    let keys: Vec<&str> = keys.iter().map(|k| k.text.as_str()).collect();
    let aggs: Vec<&str> = aggs.iter().map(|a| a.text.as_str()).collect();
    format!(
        "{what} by [{}] compute [{}]  ({note})",
        keys.join(", "),
        aggs.join(", ")
    )
}

/// Names visible while planning one query: CTEs (innermost last).
struct Ctx<'s> {
    script: &'s Script,
    ctes: Vec<(String, Query)>,
    /// Views being expanded (cycle check).
    expanding: Vec<String>,
}

/// Plans a query of `script`.
pub fn plan_query(script: &Script, query: &Query) -> Result<Plan> {
    let mut ctx = Ctx {
        script,
        ctes: Vec::new(),
        expanding: Vec::new(),
    };
    ctx.query(query)
}

fn err_at(e: &impl Spanned, msg: impl Into<String>) -> SqlError {
    SqlError::at(e.span(), msg)
}

/// The time attribute of a table: its WATERMARK column.
pub fn table_time(t: &TableDef) -> Option<usize> {
    t.watermark
        .as_ref()
        .and_then(|w| t.schema.find(None, &w.column).ok())
}

impl<'s> Ctx<'s> {
    fn query(&mut self, q: &Query) -> Result<Plan> {
        if q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
            return Err(err_at(
                q,
                "ORDER BY, LIMIT and FETCH are not supported on unbounded streams",
            ));
        }
        let pushed = q.with.as_ref().map_or(0, |w| w.cte_tables.len());
        if let Some(w) = &q.with {
            for cte in &w.cte_tables {
                self.ctes
                    .push((cte.alias.name.value.clone(), (*cte.query).clone()));
            }
        }
        let out = match q.body.as_ref() {
            SetExpr::Select(s) => self.select(s),
            SetExpr::Query(inner) => self.query(inner),
            other => Err(err_at(
                other,
                "only SELECT queries are supported (no UNION, VALUES or set operations yet)",
            )),
        };
        self.ctes.truncate(self.ctes.len() - pushed);
        out
    }

    /// A named relation: a CTE, a view or a table.
    fn named(&mut self, name: &str, at: &impl Spanned) -> Result<Plan> {
        if let Some(pos) = self
            .ctes
            .iter()
            .rposition(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            let (_, q) = self.ctes[pos].clone();
            // A CTE sees only the CTEs declared before it.
            let saved = self.ctes.split_off(pos);
            let out = self.query(&q);
            self.ctes.extend(saved);
            return out;
        }
        if let Some(v) = self.script.view(name) {
            if self.expanding.iter().any(|x| x.eq_ignore_ascii_case(name)) {
                return Err(err_at(at, format!("view {name} refers to itself")));
            }
            self.expanding.push(name.to_string());
            let saved = std::mem::take(&mut self.ctes);
            let out = self.query(&v.query.clone());
            self.ctes = saved;
            self.expanding.pop();
            return out;
        }
        if let Some(t) = self.script.table(name) {
            return Ok(Plan {
                node: Node::Scan {
                    table: t.name.clone(),
                },
                schema: t.schema.clone(),
                time: table_time(t),
                upsert_key: None,
                updating: false,
                time_offsets: Vec::new(),
                window_cols: None,
            });
        }
        Err(err_at(at, format!("unknown table or view {name}")))
    }

    fn relation(
        &mut self,
        twj: &TableWithJoins,
        selection: Option<&Expr>,
    ) -> Result<(Plan, Option<(WindowSpec, usize)>)> {
        match twj.joins.as_slice() {
            [] => self.factor(&twj.relation),
            [join] => {
                let left = self.factor(&twj.relation)?;
                let right = self.factor(&join.relation)?;
                let ttl = self.script.settings.state_ttl;
                Ok((
                    crate::join::plan_join(left, right, join, selection, ttl)?,
                    None,
                ))
            }
            [_, more, ..] => Err(err_at(
                &more.relation,
                "one JOIN per SELECT: join the result of a subquery to join three inputs",
            )),
        }
    }

    /// One FROM item: a table, view or CTE, a subquery, or a window table function
    /// (then its input plan, the window and the time column).
    fn factor(&mut self, f: &TableFactor) -> Result<(Plan, Option<(WindowSpec, usize)>)> {
        match f {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let n = object_name(name);
                let mut p = self.named(&n, name)?;
                let q = alias.as_ref().map_or(n, |a| a.name.value.clone());
                p.schema = p.schema.qualified(&q);
                Ok((p, None))
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let mut p = self.query(subquery)?;
                if let Some(a) = alias {
                    p.schema = p.schema.qualified(&a.name.value);
                }
                Ok((p, None))
            }
            TableFactor::TableFunction { expr, alias } => {
                let (mut p, spec, time) = self.window_tvf(expr)?;
                if let Some(a) = alias {
                    p.schema = p.schema.qualified(&a.name.value);
                }
                Ok((p, Some((spec, time))))
            }
            other => Err(err_at(
                other,
                "unsupported FROM item: use a table, a view, a CTE, a subquery or TABLE(TUMBLE|HOP|SESSION(..))",
            )),
        }
    }

    /// `TUMBLE|HOP|SESSION(t, DESCRIPTOR(col), ..)`: the input plan (with the three
    /// window columns appended to its schema), the window, and the time column.
    fn window_tvf(&mut self, e: &Expr) -> Result<(Plan, WindowSpec, usize)> {
        let Expr::Function(f) = e else {
            return Err(err_at(e, "TABLE(..) takes TUMBLE, HOP or SESSION"));
        };
        let name = f.name.to_string().to_ascii_uppercase();
        let args = function_args(e, f)?;
        let usage = "TUMBLE(TABLE t, DESCRIPTOR(ts), size), HOP(TABLE t, DESCRIPTOR(ts), slide, size) or SESSION(TABLE t, DESCRIPTOR(ts), gap)";
        let want = match name.as_str() {
            "TUMBLE" | "SESSION" => 3,
            "HOP" => 4,
            "CUMULATE" => {
                return Err(err_at(
                    e,
                    format!("CUMULATE windows are not supported; use {usage}"),
                ));
            }
            _ => {
                return Err(err_at(
                    e,
                    format!("unknown window function {name}; use {usage}"),
                ));
            }
        };
        if args.len() != want {
            return Err(err_at(e, format!("{name} takes {want} arguments: {usage}")));
        }
        let input_name = match args[0] {
            Expr::Identifier(i) => i.value.clone(),
            Expr::CompoundIdentifier(parts) => {
                parts.last().map(|i| i.value.clone()).unwrap_or_default()
            }
            other => {
                return Err(err_at(
                    other,
                    format!("the first argument of {name} is TABLE <name>"),
                ));
            }
        };
        let mut input = self.named(&input_name, args[0])?;
        input.schema = input.schema.qualified(&input_name);
        let col = match args[1] {
            Expr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                let a = function_args(args[1], d)?;
                match a.as_slice() {
                    [c] => column_name(c),
                    _ => None,
                }
            }
            _ => None,
        }
        .ok_or_else(|| err_at(args[1], "the second argument is DESCRIPTOR(<time column>)"))?;
        let idx = input
            .schema
            .find(None, &col)
            .map_err(|_| err_at(args[1], format!("DESCRIPTOR({col}): no such column")))?;
        if input.time != Some(idx) {
            return Err(err_at(
                args[1],
                format!(
                    "DESCRIPTOR({col}): {col} is not a time attribute (a column with WATERMARK FOR in its table, or window_time of a window aggregate kept in the output)"
                ),
            ));
        }
        let dur = |x: &Expr| -> Result<i64> {
            match x {
                Expr::Interval(iv) => interval_ms(iv).map_err(|m| err_at(x, m)),
                other => Err(err_at(
                    other,
                    "expected an INTERVAL, e.g. INTERVAL '1' MINUTE",
                )),
            }
        };
        let spec = match name.as_str() {
            "TUMBLE" => WindowSpec::Tumble {
                size: dur(args[2])?,
            },
            "HOP" => {
                let (slide, size) = (dur(args[2])?, dur(args[3])?);
                if slide <= 0 || size % slide != 0 {
                    return Err(err_at(
                        e,
                        "HOP: the size must be a positive multiple of the slide",
                    ));
                }
                WindowSpec::Hop { slide, size }
            }
            _ => WindowSpec::Session { gap: dur(args[2])? },
        };
        let bad = match spec {
            WindowSpec::Tumble { size } => size <= 0,
            WindowSpec::Hop { size, .. } => size <= 0,
            WindowSpec::Session { gap } => gap <= 0,
        };
        if bad {
            return Err(err_at(e, "window sizes must be positive"));
        }
        Ok((input, spec, idx))
    }

    fn select(&mut self, s: &Select) -> Result<Plan> {
        if s.distinct.is_some() {
            return Err(SqlError::at(
                s.select_token.0.span,
                "SELECT DISTINCT is not supported; use GROUP BY",
            ));
        }
        // The WHERE of a join is part of its condition (time bounds may be there).
        let joined = s.from.len() > 1 || s.from.first().is_some_and(|f| !f.joins.is_empty());
        let selection = if joined { None } else { s.selection.as_ref() };
        let (input, window) = match s.from.as_slice() {
            [one] => self.relation(one, s.selection.as_ref())?,
            [] => return Err(SqlError::at(s.select_token.0.span, "SELECT needs a FROM")),
            [a, b] if a.joins.is_empty() && b.joins.is_empty() => {
                // `FROM a, b WHERE ..` is `FROM a JOIN b ON ..`.
                let Some(on) = &s.selection else {
                    return Err(err_at(
                        &b.relation,
                        "FROM a, b is a join: give its condition in WHERE (at least a.key = b.key)",
                    ));
                };
                let join = Join {
                    relation: b.relation.clone(),
                    global: false,
                    join_operator: JoinOperator::Inner(JoinConstraint::On(on.clone())),
                };
                let left = self.factor(&a.relation)?;
                let right = self.factor(&b.relation)?;
                let ttl = self.script.settings.state_ttl;
                (crate::join::plan_join(left, right, &join, None, ttl)?, None)
            }
            [_, more, ..] => {
                return Err(err_at(
                    &more.relation,
                    "one join per SELECT: FROM a, b or FROM a JOIN b; join the result of a subquery to join three inputs",
                ));
            }
        };
        let group_by: Vec<Expr> = match &s.group_by {
            GroupByExpr::Expressions(exprs, mods) if mods.is_empty() => exprs.clone(),
            other => {
                return Err(err_at(
                    other,
                    "GROUP BY ALL and grouping modifiers are not supported",
                ));
            }
        };
        let aggregating = !group_by.is_empty()
            || s.projection.iter().any(|i| match i {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    has_aggregate(e)
                }
                _ => false,
            });
        if let Some(w) = selection {
            if has_aggregate(w) {
                return Err(err_at(w, "aggregates are not allowed in WHERE; use HAVING"));
            }
        }
        if !aggregating {
            if let Some(h) = &s.having {
                return Err(err_at(h, "HAVING needs GROUP BY"));
            }
            let input = match window {
                Some((spec, _)) => {
                    if matches!(spec, WindowSpec::Session { .. }) {
                        return Err(SqlError::at(
                            s.select_token.0.span,
                            "SESSION windows need a GROUP BY window_start, window_end",
                        ));
                    }
                    // The rows keep their own event time (window_time is not a
                    // time attribute here).
                    let time = input.time;
                    let mut p = with_window_columns(Plan {
                        schema: input.schema.clone(),
                        time,
                        upsert_key: None,
                        updating: false,
                        time_offsets: Vec::new(),
                        window_cols: None,
                        node: Node::WindowAssign {
                            input: Box::new(input),
                            window: spec,
                        },
                    });
                    p.time = time;
                    p
                }
                None => input,
            };
            return self.calc(input, s, selection, &[]);
        }
        // Over updates, a GROUP BY retracts each change's old row (see
        // `aggregate::GroupRetractions`); a window's rows are final when it fires,
        // and an updating result has no time attribute to window by anyway.
        if input.updating && window.is_some() {
            return Err(SqlError::at(
                s.select_token.0.span,
                "a window aggregate over the updates of a GROUP BY without window is not supported: aggregate them with a GROUP BY without window",
            ));
        }
        // WHERE filters the input rows before they are grouped.
        let input = match selection {
            Some(w) => {
                let filter = bool_expr(w, &input.schema, &[])?;
                filtered(input, filter)
            }
            None => input,
        };
        // Group keys: the window columns, and expressions over the input.
        let mut keys = Vec::new();
        let mut window_cols: Vec<(String, &'static str)> = Vec::new();
        for g in &group_by {
            let wname = column_name(g).map(|c| c.to_ascii_lowercase()).filter(|c| {
                window.is_some()
                    && ["window_start", "window_end", "window_time"].contains(&c.as_str())
            });
            match wname {
                Some(c) => {
                    let w: &'static str = match c.as_str() {
                        "window_start" => "window_start",
                        "window_end" => "window_end",
                        _ => "window_time",
                    };
                    window_cols.push((g.to_string(), w));
                }
                None => keys.push(compile(g, &Scope::of(&input.schema)).map_err(|e| match e {
                    SqlError::Plan { line, column, message } if window.is_some() => SqlError::Plan {
                        line,
                        column,
                        message: format!("{message} (group keys of a window aggregate are input columns or window_start/window_end)"),
                    },
                    other => other,
                })?),
            }
        }
        // A GROUP BY over the window_start and window_end of a window aggregate's
        // result is a window aggregate again: its records' time finds the window.
        let propagated = match (window, input.window_cols) {
            (None, Some((ws, we, bucket))) => {
                let ks = keys.iter().position(|k| k.column == Some(ws));
                let ke = keys.iter().position(|k| k.column == Some(we));
                ks.zip(ke).map(|(a, b)| (a, b, bucket))
            }
            _ => None,
        };
        if window.is_some() {
            let has = |w: &str| window_cols.iter().any(|(_, x)| *x == w);
            if !(has("window_start") && has("window_end")) {
                return Err(err_at(
                    &group_by[0],
                    "a GROUP BY over a window table function must include window_start and window_end",
                ));
            }
        }
        // Aggregate calls of the SELECT list and HAVING.
        let mut calls: Vec<(String, AggKind, Option<Expr>)> = Vec::new();
        let mut collect = |e: &Expr| -> Result<()> {
            let mut found: Vec<Result<(String, AggKind, Option<Expr>)>> = Vec::new();
            visit(e, &mut |x| {
                if let Expr::Function(f) = x {
                    let name = f.name.to_string().to_ascii_uppercase();
                    if AGGREGATES.contains(&name.as_str()) {
                        found.push(agg_call(x, f, &name));
                    }
                }
            });
            for c in found {
                let c = c?;
                if !calls.iter().any(|(t, ..)| *t == c.0) {
                    calls.push(c);
                }
            }
            Ok(())
        };
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    collect(e)?
                }
                other => {
                    return Err(err_at(
                        other,
                        "SELECT * is not allowed with GROUP BY; list the columns",
                    ));
                }
            }
        }
        if let Some(h) = &s.having {
            collect(h)?;
        }
        let nkeys = keys.len();
        let mut pre = keys;
        let mut aggs = Vec::new();
        for (text, kind, arg) in &calls {
            let (idx, ty) = match arg {
                Some(a) => {
                    if has_aggregate(a) {
                        return Err(err_at(a, "aggregates cannot be nested"));
                    }
                    let c = compile(a, &Scope::of(&input.schema))?;
                    let ty = c.ty;
                    pre.push(c);
                    (pre.len() - 1, ty)
                }
                None => (0, DataType::BigInt),
            };
            let spec = AggSpec::new(*kind, idx, ty, text.clone()).map_err(|m| match arg {
                Some(a) => err_at(a, m),
                None => SqlError::plan(m),
            })?;
            aggs.push(spec);
        }
        // The aggregate's output: keys, [window_start, window_end, window_time], aggregates.
        let mut fields: Vec<Field> = pre[..nkeys]
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let name = k.column.map_or_else(
                    || format!("key${i}"),
                    |c| input.schema.fields[c].name.clone(),
                );
                Field::new(&name, k.ty)
            })
            .collect();
        let mut subst: Vec<(String, usize)> = group_by
            .iter()
            .filter(|g| !window_cols.iter().any(|(t, _)| *t == g.to_string()))
            .enumerate()
            .map(|(i, g)| (g.to_string(), i))
            .collect();
        let mut time = None;
        let node_window = match (window, propagated) {
            (Some((spec, _)), _) => Some(spec),
            (None, Some((_, _, bucket))) => Some(WindowSpec::Tumble { size: bucket }),
            _ => None,
        };
        let mut time_offsets = Vec::new();
        let mut window_out = None;
        if let Some(spec) = node_window {
            if propagated.is_none() {
                for w in ["window_start", "window_end", "window_time"] {
                    subst.push((w.to_string(), fields.len()));
                    fields.push(Field::new(w, DataType::Timestamp));
                }
            } else {
                for w in ["window_start", "window_end", "window_time"] {
                    fields.push(Field::new(&format!("{w}$"), DataType::Timestamp));
                }
            }
            time = Some(nkeys + 2);
            // window_end = window_time + 1; window_start = window_end - size.
            let (len, bucket) = match spec {
                WindowSpec::Tumble { size } => (Some(size), Some(size)),
                WindowSpec::Hop { slide, size } => (Some(size), Some(slide)),
                WindowSpec::Session { .. } => (None, None),
            };
            match propagated {
                Some((ks, ke, bucket)) => {
                    // The keys that were the input's window columns keep their offsets.
                    for (k, key) in pre[..nkeys].iter().enumerate() {
                        if let Some(o) = key.column.and_then(|c| {
                            input
                                .time_offsets
                                .iter()
                                .find(|(x, _)| *x == c)
                                .map(|(_, o)| *o)
                        }) {
                            time_offsets.push((k, o));
                        }
                    }
                    window_out = Some((ks, ke, bucket));
                }
                None => {
                    time_offsets.push((nkeys + 1, 1));
                    if let Some(len) = len {
                        time_offsets.push((nkeys, 1 - len));
                    }
                    window_out = bucket.map(|b| (nkeys, nkeys + 1, b));
                }
            }
        }
        for (j, (text, _, _)) in calls.iter().enumerate() {
            subst.push((text.clone(), fields.len() + j));
        }
        for a in &aggs {
            fields.push(Field::new(&a.text, a.output));
        }
        let schema = Schema::new(fields);
        let agg_plan = match node_window {
            Some(spec) => Plan {
                node: Node::WindowAggregate {
                    input: Box::new(input),
                    window: spec,
                    pre,
                    keys: nkeys,
                    aggs,
                },
                schema,
                time,
                upsert_key: None,
                updating: false,
                time_offsets,
                window_cols: window_out,
            },
            None => Plan {
                node: Node::GroupAggregate {
                    input: Box::new(input),
                    pre,
                    keys: nkeys,
                    aggs,
                    state_ttl: self.script.settings.state_ttl,
                },
                schema,
                time: None,
                upsert_key: Some((0..nkeys).collect()),
                updating: true,
                time_offsets: Vec::new(),
                window_cols: None,
            },
        };
        self.calc_having(agg_plan, s, &subst)
    }

    /// SELECT list and WHERE over `input` (no aggregation).
    fn calc(
        &mut self,
        input: Plan,
        s: &Select,
        selection: Option<&Expr>,
        subst: &[(String, usize)],
    ) -> Result<Plan> {
        let filter = match selection {
            Some(w) => Some(bool_expr(w, &input.schema, subst)?),
            None => None,
        };
        self.project(input, s, filter, subst)
    }

    /// SELECT list and HAVING over an aggregate's output.
    fn calc_having(&mut self, input: Plan, s: &Select, subst: &[(String, usize)]) -> Result<Plan> {
        let filter = match &s.having {
            Some(h) => Some(bool_expr(h, &input.schema, subst)?),
            None => None,
        };
        self.project(input, s, filter, subst)
    }

    fn project(
        &mut self,
        input: Plan,
        s: &Select,
        filter: Option<CExpr>,
        subst: &[(String, usize)],
    ) -> Result<Plan> {
        let scope = Scope {
            schema: &input.schema,
            subst,
        };
        let mut project = Vec::new();
        let mut fields = Vec::new();
        for (i, item) in s.projection.iter().enumerate() {
            match item {
                SelectItem::Wildcard(_) => {
                    for (j, f) in input.schema.fields.iter().enumerate() {
                        project.push(CExpr::column(j, f.ty, f.name.clone()));
                        fields.push(Field::new(&f.name, f.ty));
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let q = kind.to_string();
                    let mut any = false;
                    for (j, f) in input.schema.fields.iter().enumerate() {
                        if f.qualifier
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(&q))
                        {
                            project.push(CExpr::column(j, f.ty, f.name.clone()));
                            fields.push(Field::new(&f.name, f.ty));
                            any = true;
                        }
                    }
                    if !any {
                        return Err(err_at(item, format!("{q}.*: no such table in FROM")));
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let c = compile(e, &scope)?;
                    let name = column_name(e).unwrap_or_else(|| match e {
                        Expr::Function(f) if matches!(f.args, FunctionArguments::List(_)) => {
                            c.text.clone()
                        }
                        _ => format!("EXPR${i}"),
                    });
                    fields.push(Field::new(&name, c.ty));
                    project.push(c);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let c = compile(expr, &scope)?;
                    fields.push(Field::new(&alias.value, c.ty));
                    project.push(c);
                }
                other => return Err(err_at(other, "unsupported SELECT item")),
            }
        }
        let time = input
            .time
            .and_then(|t| project.iter().position(|c| c.column == Some(t)));
        // Updates whose key the SELECT list leaves out (Nexmark q4's inner
        // `GROUP BY A.id, A.category` selecting only the category) stay updates
        // without a key: an aggregate above retracts their old rows, a sink
        // refuses them.
        let upsert_key = input.upsert_key.as_ref().and_then(|keys| {
            keys.iter()
                .map(|k| project.iter().position(|c| c.column == Some(*k)))
                .collect::<Option<Vec<usize>>>()
        });
        // A projection that keeps every column in order and filters nothing is
        // the input itself.
        let identity = filter.is_none()
            && project.len() == input.schema.len()
            && project.iter().enumerate().all(|(i, c)| c.column == Some(i));
        if identity {
            let mut p = input;
            p.schema = Schema::new(fields);
            return Ok(p);
        }
        let (time_offsets, window_cols) = carry(&input, &project);
        Ok(Plan {
            schema: Schema::new(fields),
            time,
            upsert_key,
            updating: input.updating,
            time_offsets,
            window_cols,
            node: Node::Calc {
                input: Box::new(input),
                filter,
                project,
            },
        })
    }
}

fn bool_expr(e: &Expr, schema: &Schema, subst: &[(String, usize)]) -> Result<CExpr> {
    let c = compile(e, &Scope { schema, subst })?;
    if !matches!(c.ty, DataType::Boolean | DataType::Null) {
        return Err(err_at(e, format!("`{}` is {}, not BOOLEAN", c.text, c.ty)));
    }
    Ok(c)
}

/// The input schema plus window_start, window_end, window_time; window_time is the
/// time attribute.
pub(crate) fn with_window_columns(mut p: Plan) -> Plan {
    for w in ["window_start", "window_end", "window_time"] {
        p.schema.fields.push(Field::new(w, DataType::Timestamp));
    }
    p.time = Some(p.schema.len() - 1);
    p
}

fn agg_call(
    e: &Expr,
    f: &sqlparser::ast::Function,
    name: &str,
) -> Result<(String, AggKind, Option<Expr>)> {
    if f.over.is_some() || f.filter.is_some() {
        return Err(err_at(e, "OVER and FILTER on aggregates are not supported"));
    }
    let distinct = match &f.args {
        FunctionArguments::List(l) => matches!(
            l.duplicate_treatment,
            Some(sqlparser::ast::DuplicateTreatment::Distinct)
        ),
        _ => false,
    };
    let star = matches!(&f.args, FunctionArguments::List(l)
        if matches!(l.args.as_slice(), [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Wildcard)]));
    if star {
        return if name == "COUNT" && !distinct {
            Ok((e.to_string(), AggKind::CountStar, None))
        } else {
            Err(err_at(e, format!("{name}(*) is not valid; only COUNT(*)")))
        };
    }
    let args = function_args(e, f)?;
    let [arg] = args.as_slice() else {
        return Err(err_at(e, format!("{name} takes one argument")));
    };
    let kind = match (name, distinct) {
        ("COUNT", false) => AggKind::Count,
        ("COUNT", true) => AggKind::CountDistinct,
        ("SUM", false) => AggKind::Sum,
        ("MIN", _) => AggKind::Min,
        ("MAX", _) => AggKind::Max,
        ("AVG", false) => AggKind::Avg,
        _ => {
            return Err(err_at(
                e,
                format!("{name}(DISTINCT ..) is not supported; only COUNT(DISTINCT ..)"),
            ));
        }
    };
    Ok((e.to_string(), kind, Some((*arg).clone())))
}

/// Column names of a table or plan, for messages.
pub fn names(schema: &Schema) -> HashMap<String, usize> {
    schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::parse::parse_script;
    use crate::plan::{Node, Plan, plan_query};

    const DDL: &str = "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'print');
CREATE TABLE out (k STRING, c BIGINT) WITH ('connector' = 'print');
";

    fn plan(query: &str) -> Result<Plan, String> {
        let script =
            parse_script(&format!("{DDL}INSERT INTO out {query};")).map_err(|e| e.to_string())?;
        plan_query(&script, &script.inserts[0].query).map_err(|e| e.to_string())
    }

    /// The filter of the plan's top Calc, and whether its input is updating.
    fn top_filter(p: &Plan) -> Option<(String, bool)> {
        match &p.node {
            Node::Calc {
                input,
                filter: Some(f),
                ..
            } => Some((f.text.clone(), input.upsert_key.is_some())),
            _ => None,
        }
    }

    #[test]
    fn having_over_a_group_by_filters_its_updates_and_keeps_the_upsert_key() {
        let p = plan("SELECT k, COUNT(*) AS c FROM t GROUP BY k HAVING COUNT(*) < 10").unwrap();
        assert_eq!(p.upsert_key, Some(vec![0]));
        assert_eq!(top_filter(&p), Some(("COUNT(*) < 10".into(), true)));
        let text = p.explain();
        assert!(
            text.starts_with(
                "Calc [k, COUNT(*)] where COUNT(*) < 10  (a version failing it deletes its key's row)"
            ),
            "{text}"
        );
    }

    #[test]
    fn where_over_an_updating_subquery_filters_its_updates_with_the_key_moved() {
        let p = plan(
            "SELECT k, c FROM (SELECT COUNT(*) AS c, k FROM t GROUP BY k) WHERE c < 10 AND k <> 'x'",
        )
        .unwrap();
        assert_eq!(p.upsert_key, Some(vec![0]), "k is the first output column");
        let (text, updating) = top_filter(&p).unwrap();
        assert!(updating && text.contains("c < 10"), "{text}");
    }

    #[test]
    fn a_filter_over_appends_deletes_nothing() {
        let p = plan("SELECT k, v FROM t WHERE v < 10").unwrap();
        assert_eq!(p.upsert_key, None);
        assert_eq!(top_filter(&p), Some(("v < 10".into(), false)));
        assert!(!p.explain().contains("deletes"), "{}", p.explain());
    }

    #[test]
    fn a_projection_over_updates_that_drops_the_key_gives_updates_without_a_key() {
        let p = plan("SELECT c, c FROM (SELECT k, COUNT(*) AS c FROM t GROUP BY k) WHERE c < 10")
            .unwrap();
        assert!(p.updating && p.upsert_key.is_none());
        assert!(
            p.explain()
                .contains("(leaves group key k out: updates without a key"),
            "{}",
            p.explain()
        );
    }

    #[test]
    fn an_aggregate_over_updates_retracts_and_emits_updates_by_its_own_keys() {
        let p = plan("SELECT c, COUNT(*) FROM (SELECT COUNT(*) AS c FROM t GROUP BY k) GROUP BY c")
            .unwrap();
        assert_eq!(p.upsert_key, Some(vec![0]));
        let text = p.explain();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        assert!(
            lines[0].starts_with("GroupAggregate by [c] compute [COUNT(*)]")
                && lines[0].contains("retracts the row each input change replaces"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("Calc [COUNT(*)]") && lines[1].contains("leaves group key k out"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("GroupAggregate by [k]") && !lines[2].contains("retracts"),
            "{text}"
        );
    }

    #[test]
    fn explain_shows_the_state_ttl_of_every_group_aggregate() {
        let query = "INSERT INTO out SELECT c, COUNT(*) FROM \
                     (SELECT COUNT(*) AS c FROM t GROUP BY k) GROUP BY c;";
        let script = parse_script(&format!(
            "SET 'table.exec.state.ttl' = '300 ms';\n{DDL}{query}"
        ))
        .unwrap();
        let text = plan_query(&script, &script.inserts[0].query)
            .unwrap()
            .explain();
        let groups: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("GroupAggregate"))
            .collect();
        assert_eq!(groups.len(), 2, "{text}");
        assert!(
            groups
                .iter()
                .all(|l| l.ends_with("emits updates, state TTL 300 ms)")),
            "{text}"
        );
        // Without SET the line is as before: state is kept forever.
        let text = plan("SELECT k, COUNT(*) FROM t GROUP BY k")
            .unwrap()
            .explain();
        assert!(!text.contains("TTL"), "{text}");
    }

    #[test]
    fn a_join_over_updates_is_still_refused() {
        let err = plan(
            "SELECT a.k, b.c FROM t a JOIN (SELECT k, COUNT(*) AS c FROM t GROUP BY k) b ON a.k = b.k",
        )
        .unwrap_err();
        assert!(err.contains("a join reads appends only"), "{err}");
    }
}
