//! Planning `a JOIN b ON ..`: two joins that stay bounded in state on unbounded
//! streams, and the regular join, whose state grows unless a state TTL is set.
//!
//! ```text
//! ON a.seller = b.id AND a.category = 10
//!    └ keys ──────┘     └ regular join: every pair with equal keys; a.category = 10
//!                         reads only a, so it filters a before the join
//!
//! ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '1' MINUTE AND a.ts + INTERVAL '2' MINUTE
//!    └ keys ┘     └ interval join: -60000 <= b.ts - a.ts <= 120000 ┘
//!
//! FROM TABLE(TUMBLE(TABLE a, ..)) x JOIN TABLE(TUMBLE(TABLE b, ..)) y
//! ON x.window_start = y.window_start AND x.window_end = y.window_end AND x.k = y.k
//!    └──────────── window join: pairs with equal keys in the same window ────────┘
//! ```
//!
//! The ON condition is split at AND: equalities between a left-only and a
//! right-only expression are the keys; comparisons between the two time
//! attributes (plus or minus an interval) bound the interval; the rest filters
//! the joined rows. Rows with a NULL key join nothing (SQL equality). Without
//! an interval (both bounds) or windows, the join is a regular join; in a
//! regular or interval join a condition that reads one side only filters that
//! side before the join. Every join reads appends only.

use sqlparser::ast::{BinaryOperator, Expr, Join, JoinConstraint, JoinOperator, Spanned};

use crate::error::{Result, SqlError};
use crate::expr::{CExpr, Scope, column_name, compile, interval_ms};
use crate::plan::{Node, Plan, WindowSpec, filtered, with_window_columns};
use crate::types::{DataType, Schema};

fn err(e: &impl Spanned, m: impl Into<String>) -> SqlError {
    SqlError::at(e.span(), m)
}

fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Which side(s) an expression reads: it compiles against one schema only.
fn side_of(e: &Expr, left: &Schema, right: &Schema) -> Option<bool> {
    let l = compile(e, &Scope::of(left)).is_ok();
    let r = compile(e, &Scope::of(right)).is_ok();
    match (l, r) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// `x.ts`, `x.ts + INTERVAL ..` or `x.ts - INTERVAL ..` over a time attribute
/// (or a column that is the time plus a constant, like a window's window_end):
/// (is left, offset of the term from the record time, ms).
fn time_term(e: &Expr, left: &Plan, right: &Plan) -> Option<(bool, i64)> {
    let (base, offset) = match e {
        Expr::BinaryOp {
            left: b,
            op,
            right: i,
        } => match (op, i.as_ref()) {
            (BinaryOperator::Plus, Expr::Interval(iv)) => (b.as_ref(), interval_ms(iv).ok()?),
            (BinaryOperator::Minus, Expr::Interval(iv)) => (b.as_ref(), -interval_ms(iv).ok()?),
            _ => return None,
        },
        Expr::Nested(inner) => return time_term(inner, left, right),
        other => (other, 0),
    };
    let is_left = side_of(base, &left.schema, &right.schema)?;
    let plan = if is_left { left } else { right };
    let col = compile(base, &Scope::of(&plan.schema)).ok()?.column?;
    if plan.time == Some(col) {
        return Some((is_left, offset));
    }
    let (_, o) = plan.time_offsets.iter().find(|(c, _)| *c == col)?;
    Some((is_left, offset + o))
}

/// Bounds on `right.ts - left.ts` from `p op q` over time terms, if it is one.
fn time_bound(
    p: &Expr,
    op: &BinaryOperator,
    q: &Expr,
    left: &Plan,
    right: &Plan,
) -> Option<(Option<i64>, Option<i64>)> {
    let (ps, po) = time_term(p, left, right)?;
    let (qs, qo) = time_term(q, left, right)?;
    if ps == qs {
        return None;
    }
    // p.ts + po  op  q.ts + qo  <=>  p.ts - q.ts  op  qo - po
    let c = qo - po;
    let (lo, hi) = match op {
        BinaryOperator::Eq => (Some(c), Some(c)),
        BinaryOperator::GtEq => (Some(c), None),
        BinaryOperator::Gt => (Some(c + 1), None),
        BinaryOperator::LtEq => (None, Some(c)),
        BinaryOperator::Lt => (None, Some(c - 1)),
        _ => return None,
    };
    // Expressed for right - left: negate when p is the left side.
    Some(if ps {
        (hi.map(|h| -h), lo.map(|l| -l))
    } else {
        (lo, hi)
    })
}

/// The AND of `conds` compiled over `schema` (`None` when there are none); each
/// must be BOOLEAN.
fn conjunction(conds: &[&Expr], schema: &Schema) -> Result<Option<CExpr>> {
    if conds.is_empty() {
        return Ok(None);
    }
    let mut cs = Vec::new();
    for c in conds {
        let x = compile(c, &Scope::of(schema))?;
        if !matches!(x.ty, DataType::Boolean | DataType::Null) {
            return Err(err(*c, format!("`{}` is {}, not BOOLEAN", x.text, x.ty)));
        }
        cs.push(x);
    }
    Ok(Some(all(cs)))
}

/// `plan` filtered by `conds` (conditions of an inner join that read only this
/// side), or `plan` itself when there are none.
fn push_down(plan: Plan, conds: &[&Expr]) -> Result<Plan> {
    Ok(match conjunction(conds, &plan.schema)? {
        Some(f) => filtered(plan, f),
        None => plan,
    })
}

/// Plans `left JOIN right ON ..` (the WHERE of the SELECT is part of the
/// condition); a regular join keeps its rows for `state_ttl` (forever: `None`).
pub fn plan_join(
    left: (Plan, Option<(WindowSpec, usize)>),
    right: (Plan, Option<(WindowSpec, usize)>),
    join: &Join,
    selection: Option<&Expr>,
    state_ttl: Option<std::time::Duration>,
) -> Result<Plan> {
    let on = match &join.join_operator {
        JoinOperator::Join(JoinConstraint::On(e)) | JoinOperator::Inner(JoinConstraint::On(e)) => e,
        JoinOperator::Left(_)
        | JoinOperator::LeftOuter(_)
        | JoinOperator::Right(_)
        | JoinOperator::RightOuter(_)
        | JoinOperator::FullOuter(_) => {
            return Err(err(
                &join.relation,
                "outer joins are not supported yet: strom runs inner joins (regular, interval and window joins)",
            ));
        }
        _ => {
            return Err(err(
                &join.relation,
                "a join needs ON <condition> (INNER JOIN .. ON)",
            ));
        }
    };
    let ((mut lp, lw), (mut rp, rw)) = (left, right);
    let windowed = match (lw, rw) {
        (Some((ls, lt)), Some((rs, rt))) => {
            let WindowSpec::Tumble { size } = ls else {
                return Err(err(
                    on,
                    "window joins support TUMBLE windows (HOP and SESSION joins are not supported yet)",
                ));
            };
            if ls != rs {
                return Err(err(on, "a window join needs the same window on both sides"));
            }
            let keep = |p: Plan| {
                let q = p.schema.fields.first().and_then(|f| f.qualifier.clone());
                let mut p = with_window_columns(p);
                if let Some(q) = q {
                    p.schema = p.schema.qualified(&q);
                }
                p
            };
            let (l0, r0) = (lp.clone(), rp.clone());
            lp = keep(lp);
            rp = keep(rp);
            Some((size, lt, rt, l0, r0))
        }
        (None, None) => None,
        _ => {
            return Err(err(
                on,
                "join a window table function with another one of the same window (window join), or two tables by an interval of their time attributes (interval join)",
            ));
        }
    };
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    if let Some(w) = selection {
        conjuncts(w, &mut parts);
    }
    let (mut left_keys, mut right_keys) = (Vec::new(), Vec::new());
    let (mut lower, mut upper): (Option<i64>, Option<i64>) = (None, None);
    let (mut start_eq, mut end_eq) = (false, false);
    let mut rest: Vec<&Expr> = Vec::new();
    // The conditions that bounded the interval (a regular join filters by them).
    let mut bounds: Vec<&Expr> = Vec::new();
    for c in parts {
        if let Expr::BinaryOp {
            left: a,
            op,
            right: b,
        } = c
        {
            if *op == BinaryOperator::Eq {
                if windowed.is_none() {
                    // Equal times (a.window_end = b.window_end) bound the interval
                    // to one instant; the columns are join keys as well.
                    if let Some((lo, hi)) = time_bound(a, op, b, &lp, &rp) {
                        lower = max_opt(lower, lo);
                        upper = min_opt(upper, hi);
                        bounds.push(c);
                    }
                }
                if windowed.is_some() {
                    let (an, bn) = (
                        column_name(a).map(|n| n.to_ascii_lowercase()),
                        column_name(b).map(|n| n.to_ascii_lowercase()),
                    );
                    if an == bn && an.as_deref() == Some("window_start") {
                        start_eq = true;
                        continue;
                    }
                    if an == bn && an.as_deref() == Some("window_end") {
                        end_eq = true;
                        continue;
                    }
                }
                match (
                    side_of(a, &lp.schema, &rp.schema),
                    side_of(b, &lp.schema, &rp.schema),
                ) {
                    (Some(true), Some(false)) => {
                        left_keys.push(compile(a, &Scope::of(&lp.schema))?);
                        right_keys.push(compile(b, &Scope::of(&rp.schema))?);
                        continue;
                    }
                    (Some(false), Some(true)) => {
                        left_keys.push(compile(b, &Scope::of(&lp.schema))?);
                        right_keys.push(compile(a, &Scope::of(&rp.schema))?);
                        continue;
                    }
                    _ => {}
                }
            }
            if windowed.is_none() {
                if let Some((lo, hi)) = time_bound(a, op, b, &lp, &rp) {
                    lower = max_opt(lower, lo);
                    upper = min_opt(upper, hi);
                    bounds.push(c);
                    continue;
                }
            }
        }
        if let Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } = c
        {
            if windowed.is_none() {
                let lo = time_bound(expr, &BinaryOperator::GtEq, low, &lp, &rp);
                let hi = time_bound(expr, &BinaryOperator::LtEq, high, &lp, &rp);
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    lower = max_opt(max_opt(lower, lo.0), hi.0);
                    upper = min_opt(min_opt(upper, lo.1), hi.1);
                    bounds.push(c);
                    continue;
                }
            }
        }
        rest.push(c);
    }
    if left_keys.is_empty() {
        return Err(err(
            on,
            "a join needs at least one equality between a left and a right column (the join key)",
        ));
    }
    for (l, r) in left_keys.iter().zip(&right_keys) {
        let ok = l.ty == r.ty
            || (l.ty.is_numeric() && r.ty.is_numeric())
            || l.ty == DataType::Null
            || r.ty == DataType::Null;
        if !ok {
            return Err(err(
                on,
                format!(
                    "join keys `{}` ({}) and `{}` ({}) have different types",
                    l.text, l.ty, r.text, r.ty
                ),
            ));
        }
    }
    if windowed.is_none() && (lp.updating || rp.updating) {
        return Err(err(
            on,
            "a join reads appends only, not the updates of a GROUP BY without window (join before aggregating, or aggregate over a window)",
        ));
    }
    let mut schema = lp.schema.clone();
    schema.fields.extend(rp.schema.fields.iter().cloned());
    let Some((size, lt, rt, l0, r0)) = windowed else {
        let interval = match (lower, upper) {
            (Some(lower), Some(upper)) => Some((lower, upper)),
            // One bound only: no interval to evict by, so a regular join whose
            // condition includes the bound (as Flink plans it).
            _ => {
                rest.extend(bounds);
                None
            }
        };
        // An inner join drops a row that fails a condition on its side whatever
        // it would have met: filter it before the join, so state holds only rows
        // that can join.
        let (mut on_left, mut on_right, mut on_both) = (Vec::new(), Vec::new(), Vec::new());
        for c in rest {
            match side_of(c, &lp.schema, &rp.schema) {
                Some(true) => on_left.push(c),
                Some(false) => on_right.push(c),
                None => on_both.push(c),
            }
        }
        let filter = conjunction(&on_both, &schema)?;
        let (lp, rp) = (push_down(lp, &on_left)?, push_down(rp, &on_right)?);
        let node = match interval {
            Some((lower, upper)) => {
                if lower > upper {
                    return Err(err(
                        on,
                        format!("the time interval is empty ({lower} ms > {upper} ms)"),
                    ));
                }
                Node::IntervalJoin {
                    left: Box::new(lp),
                    right: Box::new(rp),
                    left_keys,
                    right_keys,
                    lower,
                    upper,
                    filter,
                }
            }
            None => Node::RegularJoin {
                left: Box::new(lp),
                right: Box::new(rp),
                left_keys,
                right_keys,
                filter,
                state_ttl,
            },
        };
        return Ok(Plan {
            node,
            schema,
            // Joined rows carry the later of the two event times; neither
            // column is a time attribute downstream.
            time: None,
            upsert_key: None,
            updating: false,
            time_offsets: Vec::new(),
            window_cols: None,
        });
    };
    let filter = conjunction(&rest, &schema)?;
    if !(start_eq && end_eq) {
        return Err(err(
            on,
            "a window join needs a.window_start = b.window_start AND a.window_end = b.window_end",
        ));
    }
    let (ln, rn) = (l0.schema.len(), r0.schema.len());
    let time = Some(ln + 2);
    // Both sides' window columns relate to the joined record's time (its
    // window's window_time).
    let off = |at: usize| vec![(at, 1 - size), (at + 1, 1), (at + 2, 0)];
    let mut time_offsets = off(ln);
    time_offsets.extend(off(ln + 3 + rn));
    Ok(Plan {
        time_offsets,
        window_cols: Some((ln, ln + 1, size)),
        node: Node::WindowJoin {
            left: Box::new(l0),
            right: Box::new(r0),
            size,
            times: (lt, rt),
            left_keys,
            right_keys,
            filter,
        },
        schema,
        time,
        upsert_key: None,
        updating: false,
    })
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The AND of boolean expressions.
fn all(cs: Vec<CExpr>) -> CExpr {
    let text = cs
        .iter()
        .map(|c| c.text.clone())
        .collect::<Vec<_>>()
        .join(" AND ");
    let reads = cs
        .iter()
        .map(|c| c.reads.as_deref())
        .collect::<Option<Vec<_>>>()
        .map(|r| {
            let mut r: Vec<usize> = r.concat();
            r.sort_unstable();
            r.dedup();
            r.into()
        });
    let fs: Vec<_> = cs.into_iter().map(|c| c.eval).collect();
    CExpr {
        eval: std::sync::Arc::new(move |row| {
            let mut null = false;
            for f in &fs {
                match f(row)? {
                    crate::types::Value::Bool(false) => {
                        return Ok(crate::types::Value::Bool(false));
                    }
                    crate::types::Value::Bool(true) => {}
                    _ => null = true,
                }
            }
            Ok(if null {
                crate::types::Value::Null
            } else {
                crate::types::Value::Bool(true)
            })
        }),
        ty: DataType::Boolean,
        text,
        column: None,
        constant: None,
        reads,
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::parse_script;
    use crate::plan::plan_query;

    const DDL: &str = "SET 'table.exec.state.ttl' = '90 s';
CREATE TABLE auction (id BIGINT, seller BIGINT, category BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'print');
CREATE TABLE person (id BIGINT, name STRING, state STRING, ts TIMESTAMP(3)) WITH ('connector' = 'print');
CREATE TABLE bid (auction BIGINT, price BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'print');
";

    /// The plan of `query` over [`DDL`] as `strom explain` shows it, or the error.
    fn explain(query: &str) -> Result<String, String> {
        explain_with(DDL, query)
    }

    fn explain_with(ddl: &str, query: &str) -> Result<String, String> {
        let script = parse_script(&format!("{ddl}INSERT INTO person {query};"))
            .map_err(|e| e.to_string())?;
        plan_query(&script, &script.inserts[0].query)
            .map(|p| p.explain())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_equi_join_without_time_bounds_is_a_regular_join_with_side_filters_pushed_down() {
        let plan = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction AS A INNER JOIN person AS P \
             ON A.seller = P.id WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID') \
             AND A.id < P.id",
        )
        .expect("plans");
        let lines: Vec<&str> = plan.lines().map(str::trim).collect();
        assert!(
            lines[1].starts_with(
                "RegularJoin on [A.seller] = [P.id] where A.id < P.id, state TTL 90 s"
            ),
            "{plan}"
        );
        assert!(
            lines[2].starts_with("Calc [") && lines[2].ends_with("where A.category = 10"),
            "{plan}"
        );
        assert!(lines[3].starts_with("Scan auction"), "{plan}");
        assert!(lines[5].starts_with("Scan person"), "{plan}");
        assert!(
            lines[4].ends_with("where P.state = 'OR' OR P.state = 'ID'"),
            "{plan}"
        );
    }

    #[test]
    fn without_set_the_state_is_kept_forever() {
        let ddl = DDL.replace("SET 'table.exec.state.ttl' = '90 s';", "");
        let plan = explain_with(
            &ddl,
            "SELECT P.id, P.name, P.state, A.ts FROM auction A JOIN person P ON A.seller = P.id",
        )
        .expect("plans");
        assert!(
            plan.starts_with("Calc")
                && plan.contains("RegularJoin on [A.seller] = [P.id], state kept forever"),
            "{plan}"
        );
    }

    #[test]
    fn both_time_bounds_make_an_interval_join_and_one_bound_a_regular_join_filter() {
        let q = |cond: &str| {
            explain(&format!(
                "SELECT B.auction, 'x', 'y', B.ts FROM auction A JOIN bid B ON A.id = B.auction AND {cond}"
            ))
            .expect("plans")
        };
        let plan = q("B.ts BETWEEN A.ts AND A.ts + INTERVAL '1' MINUTE AND B.price > 5");
        assert!(
            plan.contains(
                "IntervalJoin on [A.id] = [B.auction], right time - left time in [0 ms, 60000 ms]  "
            ) && plan.contains("where B.price > 5"),
            "{plan}"
        );
        let plan = q("B.ts >= A.ts");
        assert!(
            plan.contains("RegularJoin on [A.id] = [B.auction] where B.ts >= A.ts"),
            "{plan}"
        );
    }

    #[test]
    fn a_comma_join_takes_its_condition_from_where() {
        let plan = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction A, person P \
             WHERE A.seller = P.id AND P.state = 'CA'",
        )
        .expect("plans");
        assert!(
            plan.contains("RegularJoin on [A.seller] = [P.id], state TTL 90 s"),
            "{plan}"
        );
        assert!(plan.contains("where P.state = 'CA'"), "{plan}");
        let err = explain("SELECT P.id, P.name, P.state, A.ts FROM auction A, person P")
            .expect_err("no condition");
        assert!(err.contains("FROM a, b is a join"), "{err}");
        let err = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction A, person P, bid B WHERE A.seller = P.id",
        )
        .expect_err("three");
        assert!(err.contains("one join per SELECT"), "{err}");
    }

    #[test]
    fn joins_without_a_key_outer_joins_and_updating_inputs_are_refused() {
        let err = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction A JOIN person P ON A.seller > P.id",
        )
        .expect_err("no key");
        assert!(err.contains("a join needs at least one equality"), "{err}");
        let err = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction A LEFT JOIN person P ON A.seller = P.id",
        )
        .expect_err("outer");
        assert!(err.contains("outer joins are not supported yet"), "{err}");
        let err = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction A JOIN \
             (SELECT id, COUNT(*) AS n FROM person GROUP BY id) P ON A.seller = P.id",
        )
        .expect_err("updating");
        assert!(err.contains("a join reads appends only"), "{err}");
        let err = explain(
            "SELECT P.id, P.name, P.state, A.ts FROM auction A JOIN person P ON A.seller = P.name",
        )
        .expect_err("types");
        assert!(err.contains("have different types"), "{err}");
    }
}
