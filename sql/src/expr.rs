//! Expressions compiled once into closures over rows.
//!
//! [`compile`] type-checks a parsed expression against a [`Scope`] (the input
//! schema, plus sub-expressions the planner already computed, such as group keys
//! and aggregates) and returns a [`CExpr`]: its result type and a closure the
//! operators call per row. Nothing walks the syntax tree per record.
//!
//! NULL handling follows SQL: operators and functions return NULL when an input is
//! NULL (`AND`/`OR` use three-valued logic; `IS NULL`, `COALESCE`, `CASE` look at
//! NULLs themselves). Errors at run time (division by zero, a failed `CAST`) fail
//! the record, which the job's error policy then handles; `TRY_CAST` gives NULL.

use std::cmp::Ordering;
use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, CastKind, DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Spanned, UnaryOperator,
};

use crate::error::{Result, SqlError};
use crate::functions;
use crate::parse::data_type;
use crate::time::parse_timestamp;
use crate::types::{DataType, Schema, Value, parse_decimal, rescale};

/// A failure evaluating an expression on one row.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Result of evaluating an expression.
pub type EvalResult = std::result::Result<Value, EvalError>;

impl EvalError {
    /// A number out of its type's range (decimal arithmetic, negation, `ABS`).
    pub fn overflow() -> EvalError {
        EvalError("numeric overflow".into())
    }
}

/// The compiled function of an expression.
pub type EvalFn = Arc<dyn Fn(&[Value]) -> EvalResult + Send + Sync>;

/// A compiled expression: its type, its closure and its SQL text.
#[derive(Clone)]
pub struct CExpr {
    /// Evaluates the expression on a row.
    pub eval: EvalFn,
    /// The result type.
    pub ty: DataType,
    /// The expression as written (normalised by the parser), for explain and errors.
    pub text: String,
    /// The column this expression reads directly, if it is a plain column.
    pub column: Option<usize>,
    /// The value, if the expression is a constant.
    pub constant: Option<Value>,
    /// The input columns the expression reads, sorted; `None` when not known
    /// (an expression built outside [`compile`]), which counts as all of them.
    pub reads: Option<Arc<[usize]>>,
}

impl std::fmt::Debug for CExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} : {}", self.text, self.ty)
    }
}

impl CExpr {
    fn new(
        ty: DataType,
        text: String,
        eval: impl Fn(&[Value]) -> EvalResult + Send + Sync + 'static,
    ) -> CExpr {
        CExpr {
            eval: Arc::new(eval),
            ty,
            text,
            column: None,
            constant: None,
            reads: None,
        }
    }

    /// A constant.
    pub fn constant(v: Value, ty: DataType, text: String) -> CExpr {
        let c = v.clone();
        CExpr {
            eval: Arc::new(move |_| Ok(c.clone())),
            ty,
            text,
            column: None,
            constant: Some(v),
            reads: Some(Arc::new([])),
        }
    }

    /// A column reference.
    pub fn column(index: usize, ty: DataType, text: String) -> CExpr {
        READS.with(|r| {
            if let Some(r) = r.borrow_mut().as_mut() {
                r.push(index);
            }
        });
        CExpr {
            eval: Arc::new(move |row: &[Value]| Ok(row.get(index).cloned().unwrap_or(Value::Null))),
            ty,
            text,
            column: Some(index),
            constant: None,
            reads: Some(Arc::new([index])),
        }
    }
}

/// The output columns of a projection, evaluated together: plain columns of an
/// owned input row are moved into the output (cloned only where a column is
/// output more than once), computed ones evaluated before any column moves.
#[derive(Clone)]
pub struct Projection {
    slots: Arc<[Slot]>,
}

#[derive(Clone)]
enum Slot {
    /// Input column `index`; `last` when no later slot outputs it again.
    Column {
        index: usize,
        last: bool,
    },
    Computed(EvalFn),
}

impl Projection {
    /// The projection of these output expressions.
    pub fn new(exprs: &[CExpr]) -> Projection {
        let mut slots: Vec<Slot> = exprs
            .iter()
            .map(|e| match e.column {
                Some(index) => Slot::Column { index, last: true },
                None => Slot::Computed(e.eval.clone()),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for slot in slots.iter_mut().rev() {
            if let Slot::Column { index, last } = slot {
                *last = seen.insert(*index);
            }
        }
        Projection {
            slots: slots.into(),
        }
    }

    /// The output row of an input row it may consume.
    pub fn apply(&self, mut row: Vec<Value>) -> std::result::Result<Vec<Value>, EvalError> {
        let mut out = vec![Value::Null; self.slots.len()];
        for (o, slot) in out.iter_mut().zip(self.slots.iter()) {
            if let Slot::Computed(f) = slot {
                *o = f(&row)?;
            }
        }
        for (o, slot) in out.iter_mut().zip(self.slots.iter()) {
            if let Slot::Column { index, last } = *slot {
                if let Some(v) = row.get_mut(index) {
                    *o = if last {
                        std::mem::replace(v, Value::Null)
                    } else {
                        v.clone()
                    };
                }
            }
        }
        Ok(out)
    }
}

/// What names resolve to while compiling.
pub struct Scope<'a> {
    /// The input row's columns.
    pub schema: &'a Schema,
    /// Expressions already computed into columns of the input (by their SQL text).
    pub subst: &'a [(String, usize)],
}

impl<'a> Scope<'a> {
    /// A scope of plain columns.
    pub fn of(schema: &'a Schema) -> Scope<'a> {
        Scope { schema, subst: &[] }
    }
}

/// Names of the aggregate functions (they are planned by the query planner).
pub const AGGREGATES: &[&str] = &["COUNT", "SUM", "MIN", "MAX", "AVG"];

/// Whether `e` contains an aggregate call.
pub fn has_aggregate(e: &Expr) -> bool {
    let mut found = false;
    visit(e, &mut |x| {
        if let Expr::Function(f) = x {
            let name = f.name.to_string().to_ascii_uppercase();
            if AGGREGATES.contains(&name.as_str()) {
                found = true;
            }
        }
    });
    found
}

/// Calls `f` on `e` and its sub-expressions (not into subqueries).
pub fn visit(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match e {
        Expr::BinaryOp { left, right, .. } => {
            visit(left, f);
            visit(right, f);
        }
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr)
        | Expr::IsTrue(expr)
        | Expr::IsFalse(expr)
        | Expr::IsNotTrue(expr)
        | Expr::IsNotFalse(expr)
        | Expr::Cast { expr, .. }
        | Expr::Extract { expr, .. }
        | Expr::Ceil { expr, .. }
        | Expr::Floor { expr, .. } => visit(expr, f),
        Expr::Between {
            expr, low, high, ..
        } => {
            visit(expr, f);
            visit(low, f);
            visit(high, f);
        }
        Expr::In { expr, target, .. } => {
            visit(expr, f);
            if let sqlparser::ast::InTarget::List(list) = target {
                list.iter().for_each(|x| visit(x, f));
            }
        }
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
            visit(expr, f);
            visit(pattern, f);
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            visit(expr, f);
            substring_from.iter().for_each(|x| visit(x, f));
            substring_for.iter().for_each(|x| visit(x, f));
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.iter().for_each(|x| visit(x, f));
            for c in conditions {
                visit(&c.condition, f);
                visit(&c.result, f);
            }
            else_result.iter().for_each(|x| visit(x, f));
        }
        Expr::Function(func) => {
            if let FunctionArguments::List(list) = &func.args {
                for a in &list.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        visit(x, f);
                    }
                }
            }
        }
        _ => {}
    }
}

fn err(e: &Expr, msg: impl Into<String>) -> SqlError {
    SqlError::at(e.span(), msg)
}

/// The unqualified column name an expression reads, if it is a column.
pub fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column_name(inner),
        _ => None,
    }
}

thread_local! {
    /// The columns read by the expression [`compile`] is compiling, collected
    /// by [`CExpr::column`] (the only expression that reads the row).
    static READS: std::cell::RefCell<Option<Vec<usize>>> = const { std::cell::RefCell::new(None) };
}

/// Compiles `e` against `scope`, noting the columns it reads ([`CExpr::reads`]).
pub fn compile(e: &Expr, scope: &Scope<'_>) -> Result<CExpr> {
    let outermost = READS.with(|r| {
        let mut r = r.borrow_mut();
        let fresh = r.is_none();
        if fresh {
            *r = Some(Vec::new());
        }
        fresh
    });
    let compiled = compile_expr(e, scope);
    if !outermost {
        return compiled;
    }
    let mut reads = READS.with(|r| r.borrow_mut().take()).unwrap_or_default();
    reads.sort_unstable();
    reads.dedup();
    compiled.map(|mut c| {
        c.reads = Some(reads.into());
        c
    })
}

fn compile_expr(e: &Expr, scope: &Scope<'_>) -> Result<CExpr> {
    let text = e.to_string();
    if let Some((_, i)) = scope.subst.iter().find(|(t, _)| *t == text) {
        return Ok(CExpr::column(*i, scope.schema.fields[*i].ty, text));
    }
    match e {
        Expr::Identifier(id) => resolve(e, scope, None, &id.value, text),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] => resolve(e, scope, Some(&q.value), &c.value, text),
            _ => Err(err(
                e,
                format!("unsupported name {text}: use column or table.column"),
            )),
        },
        Expr::Nested(inner) => {
            let mut c = compile(inner, scope)?;
            c.text = text;
            Ok(c)
        }
        Expr::Value(v) => literal(e, &v.value, text),
        Expr::TypedString(ts) => {
            let s = match &ts.value.value {
                sqlparser::ast::Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            };
            let ty = data_type(&ts.data_type).unwrap_or(DataType::String);
            let dt = ts.data_type.to_string().to_ascii_uppercase();
            if ty == DataType::Timestamp || dt == "DATE" {
                let ms = parse_timestamp(&s).ok_or_else(|| {
                    err(
                        e,
                        format!("'{s}' is not a timestamp (yyyy-MM-dd HH:mm:ss.SSS)"),
                    )
                })?;
                Ok(CExpr::constant(
                    Value::Timestamp(ms),
                    DataType::Timestamp,
                    text,
                ))
            } else {
                Err(err(
                    e,
                    format!("unsupported typed literal {dt}: use TIMESTAMP '..' or DATE '..'"),
                ))
            }
        }
        Expr::Interval(iv) => {
            let ms = interval_ms(iv).map_err(|m| err(e, m))?;
            Ok(CExpr::constant(
                Value::Interval(ms),
                DataType::Interval,
                text,
            ))
        }
        Expr::UnaryOp { op, expr } => {
            let x = compile(expr, scope)?;
            match op {
                UnaryOperator::Not => {
                    expect_bool(expr, &x)?;
                    let f = x.eval;
                    Ok(CExpr::new(DataType::Boolean, text, move |r| {
                        Ok(match f(r)? {
                            Value::Bool(b) => Value::Bool(!b),
                            _ => Value::Null,
                        })
                    }))
                }
                UnaryOperator::Minus => {
                    if !x.ty.is_numeric() && x.ty != DataType::Interval {
                        return Err(err(e, format!("cannot negate {}", x.ty)));
                    }
                    let f = x.eval;
                    Ok(CExpr::new(x.ty, text, move |r| negate(f(r)?)))
                }
                UnaryOperator::Plus => Ok(x),
                other => Err(err(e, format!("unsupported operator {other}"))),
            }
        }
        Expr::BinaryOp { left, op, right } => binary(e, left, op, right, scope, text),
        Expr::IsNull(x) | Expr::IsNotNull(x) => {
            let want_null = matches!(e, Expr::IsNull(_));
            let f = compile(x, scope)?.eval;
            Ok(CExpr::new(DataType::Boolean, text, move |r| {
                Ok(Value::Bool(f(r)?.is_null() == want_null))
            }))
        }
        Expr::IsTrue(x) | Expr::IsFalse(x) | Expr::IsNotTrue(x) | Expr::IsNotFalse(x) => {
            let c = compile(x, scope)?;
            expect_bool(x, &c)?;
            let (target, negated) = match e {
                Expr::IsTrue(_) => (true, false),
                Expr::IsFalse(_) => (false, false),
                Expr::IsNotTrue(_) => (true, true),
                _ => (false, true),
            };
            let f = c.eval;
            Ok(CExpr::new(DataType::Boolean, text, move |r| {
                let hit = matches!(f(r)?, Value::Bool(b) if b == target);
                Ok(Value::Bool(hit != negated))
            }))
        }
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let (x, lo, hi) = (
                compile(expr, scope)?,
                compile(low, scope)?,
                compile(high, scope)?,
            );
            comparable(e, x.ty, lo.ty)?;
            comparable(e, x.ty, hi.ty)?;
            let (fx, fl, fh, neg) = (x.eval, lo.eval, hi.eval, *negated);
            Ok(CExpr::new(DataType::Boolean, text, move |r| {
                let v = fx(r)?;
                let (a, b) = (v.sql_cmp(&fl(r)?), v.sql_cmp(&fh(r)?));
                Ok(match (a, b) {
                    (Some(a), Some(b)) => {
                        Value::Bool((a != Ordering::Less && b != Ordering::Greater) != neg)
                    }
                    _ => Value::Null,
                })
            }))
        }
        Expr::In {
            expr,
            target,
            negated,
            ..
        } => {
            let sqlparser::ast::InTarget::List(list) = target else {
                return Err(err(e, "IN supports a list of values, not a subquery"));
            };
            let x = compile(expr, scope)?;
            let items = list
                .iter()
                .map(|i| {
                    let c = compile(i, scope)?;
                    comparable(i, x.ty, c.ty)?;
                    Ok(c.eval)
                })
                .collect::<Result<Vec<_>>>()?;
            let (fx, neg) = (x.eval, *negated);
            Ok(CExpr::new(DataType::Boolean, text, move |r| {
                let v = fx(r)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for f in &items {
                    match v.sql_cmp(&f(r)?) {
                        Some(Ordering::Equal) => return Ok(Value::Bool(!neg)),
                        None => saw_null = true,
                        _ => {}
                    }
                }
                Ok(if saw_null {
                    Value::Null
                } else {
                    Value::Bool(neg)
                })
            }))
        }
        Expr::Like {
            negated,
            expr,
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            negated,
            expr,
            pattern,
            escape_char,
            ..
        } => {
            if escape_char.is_some() {
                return Err(err(e, "LIKE .. ESCAPE is not supported"));
            }
            let insensitive = matches!(e, Expr::ILike { .. });
            let x = compile(expr, scope)?;
            let p = compile(pattern, scope)?;
            if x.ty != DataType::String || p.ty != DataType::String {
                return Err(err(e, "LIKE compares STRING with a STRING pattern"));
            }
            functions::like(x, p, *negated, insensitive, text).map_err(|m| err(e, m))
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let op = operand.as_ref().map(|o| compile(o, scope)).transpose()?;
            let mut branches = Vec::new();
            let mut ty = DataType::Null;
            for c in conditions {
                let cond = compile(&c.condition, scope)?;
                match &op {
                    Some(o) => comparable(&c.condition, o.ty, cond.ty)?,
                    None => expect_bool(&c.condition, &cond)?,
                }
                let res = compile(&c.result, scope)?;
                ty = unify(&c.result, ty, res.ty)?;
                branches.push((cond.eval, res.eval));
            }
            let otherwise = match else_result {
                Some(x) => {
                    let c = compile(x, scope)?;
                    ty = unify(x, ty, c.ty)?;
                    Some(c.eval)
                }
                None => None,
            };
            let op = op.map(|o| o.eval);
            Ok(CExpr::new(ty, text, move |r| {
                let subject = match &op {
                    Some(f) => Some(f(r)?),
                    None => None,
                };
                for (cond, res) in &branches {
                    let c = cond(r)?;
                    let hit = match &subject {
                        Some(s) => s.sql_cmp(&c) == Some(Ordering::Equal),
                        None => c.is_true(),
                    };
                    if hit {
                        return res(r);
                    }
                }
                match &otherwise {
                    Some(f) => f(r),
                    None => Ok(Value::Null),
                }
            }))
        }
        Expr::Cast {
            kind,
            expr,
            data_type: dt,
            ..
        } => {
            let x = compile(expr, scope)?;
            let to = data_type(dt).map_err(|m| err(e, m))?;
            let lenient = matches!(kind, CastKind::TryCast | CastKind::SafeCast);
            cast_expr(e, x, to, lenient, text)
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![compile(expr, scope)?];
            if let Some(f) = substring_from {
                args.push(compile(f, scope)?);
            }
            if let Some(f) = substring_for {
                args.push(compile(f, scope)?);
            }
            functions::call(e, "SUBSTRING", args, text)
        }
        Expr::Extract { field, expr, .. } => {
            let x = compile(expr, scope)?;
            if x.ty != DataType::Timestamp {
                return Err(err(e, format!("EXTRACT needs a TIMESTAMP, not {}", x.ty)));
            }
            let name = match field {
                DateTimeField::Year | DateTimeField::Years => "YEAR",
                DateTimeField::Month | DateTimeField::Months => "MONTH",
                DateTimeField::Day | DateTimeField::Days => "DAYOFMONTH",
                DateTimeField::Hour | DateTimeField::Hours => "HOUR",
                DateTimeField::Minute | DateTimeField::Minutes => "MINUTE",
                DateTimeField::Second | DateTimeField::Seconds => "SECOND",
                other => {
                    return Err(err(
                        e,
                        format!(
                            "EXTRACT({other}) is not supported: YEAR, MONTH, DAY, HOUR, MINUTE, SECOND"
                        ),
                    ));
                }
            };
            functions::call(e, name, vec![x], text)
        }
        Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } => {
            let name = if matches!(e, Expr::Ceil { .. }) {
                "CEIL"
            } else {
                "FLOOR"
            };
            let x = compile(expr, scope)?;
            functions::call(e, name, vec![x], text)
        }
        Expr::Function(func) => {
            let name = func.name.to_string().to_ascii_uppercase();
            if AGGREGATES.contains(&name.as_str()) {
                return Err(err(
                    e,
                    format!(
                        "aggregate {name}(..) is only allowed in the SELECT list or HAVING of a GROUP BY query"
                    ),
                ));
            }
            if func.over.is_some() {
                return Err(err(
                    e,
                    "OVER windows are not supported; use TUMBLE, HOP or SESSION with GROUP BY",
                ));
            }
            let args = function_args(e, func)?
                .iter()
                .map(|a| compile(a, scope))
                .collect::<Result<Vec<_>>>()?;
            functions::call(e, &name, args, text)
        }
        _ => Err(err(
            e,
            format!(
                "unsupported expression `{text}`: strom supports columns, literals, arithmetic, comparisons, AND/OR/NOT, IS [NOT] NULL, BETWEEN, IN, LIKE, CASE, CAST and the scalar functions"
            ),
        )),
    }
}

/// The plain argument expressions of a function call.
pub fn function_args<'e>(e: &Expr, func: &'e sqlparser::ast::Function) -> Result<Vec<&'e Expr>> {
    match &func.args {
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Ok(x),
                _ => Err(err(e, format!("unsupported argument `{a}`"))),
            })
            .collect(),
        FunctionArguments::Subquery(_) => Err(err(e, "subquery arguments are not supported")),
    }
}

fn resolve(
    e: &Expr,
    scope: &Scope<'_>,
    q: Option<&str>,
    name: &str,
    text: String,
) -> Result<CExpr> {
    match scope.schema.find(q, name) {
        Ok(i) => Ok(CExpr::column(i, scope.schema.fields[i].ty, text)),
        Err(true) => Err(err(
            e,
            format!("column {text} is ambiguous: qualify it with its table"),
        )),
        Err(false) => {
            let names: Vec<String> = scope
                .schema
                .fields
                .iter()
                .map(|f| match &f.qualifier {
                    Some(q) => format!("{q}.{}", f.name),
                    None => f.name.clone(),
                })
                .collect();
            Err(err(
                e,
                format!("unknown column {text} (available: {})", names.join(", ")),
            ))
        }
    }
}

fn literal(e: &Expr, v: &sqlparser::ast::Value, text: String) -> Result<CExpr> {
    use sqlparser::ast::Value as V;
    Ok(match v {
        V::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                CExpr::constant(Value::Int(i), DataType::Int, text)
            } else if let Ok(i) = n.parse::<i64>() {
                CExpr::constant(Value::BigInt(i), DataType::BigInt, text)
            } else if n.contains(['e', 'E']) {
                let f: f64 = n.parse().map_err(|_| err(e, format!("bad number {n}")))?;
                CExpr::constant(Value::Double(f), DataType::Double, text)
            } else {
                let scale = n.split_once('.').map_or(0, |(_, f)| f.len()) as u8;
                let digits = n.chars().filter(char::is_ascii_digit).count() as u8;
                let d = parse_decimal(n, scale).ok_or_else(|| err(e, format!("bad number {n}")))?;
                CExpr::constant(
                    Value::decimal(d, scale),
                    DataType::Decimal(digits.clamp(1, 38), scale),
                    text,
                )
            }
        }
        V::SingleQuotedString(s) | V::DoubleQuotedString(s) => {
            CExpr::constant(Value::str(s), DataType::String, text)
        }
        V::Boolean(b) => CExpr::constant(Value::Bool(*b), DataType::Boolean, text),
        V::Null => CExpr::constant(Value::Null, DataType::Null, text),
        other => return Err(err(e, format!("unsupported literal {other}"))),
    })
}

/// Milliseconds of an `INTERVAL '..' UNIT` literal.
pub fn interval_ms(iv: &sqlparser::ast::Interval) -> std::result::Result<i64, String> {
    let raw = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            sqlparser::ast::Value::SingleQuotedString(s) => s.clone(),
            sqlparser::ast::Value::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        other => return Err(format!("INTERVAL needs a literal, not {other}")),
    };
    let n: f64 = raw.trim().parse().map_err(|_| {
        format!("INTERVAL '{raw}': write a number and a unit, e.g. INTERVAL '5' SECOND")
    })?;
    let unit = match &iv.leading_field {
        Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => 1.0,
        Some(DateTimeField::Second | DateTimeField::Seconds) => 1000.0,
        Some(DateTimeField::Minute | DateTimeField::Minutes) => 60_000.0,
        Some(DateTimeField::Hour | DateTimeField::Hours) => 3_600_000.0,
        Some(DateTimeField::Day | DateTimeField::Days) => 86_400_000.0,
        Some(other) => {
            return Err(format!(
                "INTERVAL unit {other} is not supported: MILLISECOND, SECOND, MINUTE, HOUR or DAY"
            ));
        }
        None => return Err("INTERVAL needs a unit, e.g. INTERVAL '5' SECOND".into()),
    };
    if iv.last_field.is_some() {
        return Err("INTERVAL ranges (DAY TO SECOND) are not supported".into());
    }
    Ok((n * unit).round() as i64)
}

fn expect_bool(e: &Expr, c: &CExpr) -> Result<()> {
    if matches!(c.ty, DataType::Boolean | DataType::Null) {
        Ok(())
    } else {
        Err(err(e, format!("`{}` is {}, not BOOLEAN", c.text, c.ty)))
    }
}

/// Whether values of `a` and `b` can be compared.
fn comparable(e: &Expr, a: DataType, b: DataType) -> Result<()> {
    let ok = a == b
        || a == DataType::Null
        || b == DataType::Null
        || (a.is_numeric() && b.is_numeric())
        || matches!((a, b), (DataType::Decimal(..), DataType::Decimal(..)));
    if ok {
        Ok(())
    } else {
        Err(err(
            e,
            format!("cannot compare {a} with {b}; CAST one side"),
        ))
    }
}

/// The common type of two branches (CASE, COALESCE).
pub fn unify(e: &Expr, a: DataType, b: DataType) -> Result<DataType> {
    Ok(match (a, b) {
        (x, y) if x == y => x,
        (DataType::Null, y) => y,
        (x, DataType::Null) => x,
        (DataType::Double, y) | (y, DataType::Double) if y.is_numeric() => DataType::Double,
        (DataType::Decimal(p, s), DataType::Decimal(q, t)) => DataType::Decimal(p.max(q), s.max(t)),
        (DataType::Decimal(p, s), y) | (y, DataType::Decimal(p, s)) if y.is_numeric() => {
            DataType::Decimal(p.max(19), s)
        }
        (DataType::BigInt, DataType::Int) | (DataType::Int, DataType::BigInt) => DataType::BigInt,
        (x, y) => return Err(err(e, format!("branches have different types {x} and {y}"))),
    })
}

fn negate(v: Value) -> EvalResult {
    Ok(match v {
        Value::Int(i) => Value::Int(i.wrapping_neg()),
        Value::BigInt(i) => Value::BigInt(i.wrapping_neg()),
        Value::Double(d) => Value::Double(-d),
        Value::Decimal(d, s) => {
            Value::decimal(d.get().checked_neg().ok_or_else(EvalError::overflow)?, s)
        }
        Value::Interval(i) => Value::Interval(i.wrapping_neg()),
        _ => Value::Null,
    })
}

fn binary(
    e: &Expr,
    left: &Expr,
    op: &BinaryOperator,
    right: &Expr,
    scope: &Scope<'_>,
    text: String,
) -> Result<CExpr> {
    let l = compile(left, scope)?;
    let r = compile(right, scope)?;
    let (fl, fr) = (l.eval.clone(), r.eval.clone());
    match op {
        BinaryOperator::And | BinaryOperator::Or => {
            expect_bool(left, &l)?;
            expect_bool(right, &r)?;
            let and = matches!(op, BinaryOperator::And);
            Ok(CExpr::new(DataType::Boolean, text, move |row| {
                let a = fl(row)?;
                // Short circuit: FALSE AND x, TRUE OR x.
                if let Value::Bool(b) = a {
                    if b != and {
                        return Ok(Value::Bool(b));
                    }
                }
                let b = fr(row)?;
                Ok(match (a, b) {
                    (Value::Bool(x), Value::Bool(y)) => {
                        Value::Bool(if and { x && y } else { x || y })
                    }
                    (_, Value::Bool(y)) if y != and => Value::Bool(y),
                    _ => Value::Null,
                })
            }))
        }
        BinaryOperator::Eq
        | BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => {
            comparable(e, l.ty, r.ty)?;
            let test: fn(Ordering) -> bool = match op {
                BinaryOperator::Eq => |o| o == Ordering::Equal,
                BinaryOperator::NotEq => |o| o != Ordering::Equal,
                BinaryOperator::Lt => |o| o == Ordering::Less,
                BinaryOperator::LtEq => |o| o != Ordering::Greater,
                BinaryOperator::Gt => |o| o == Ordering::Greater,
                _ => |o| o != Ordering::Less,
            };
            Ok(CExpr::new(DataType::Boolean, text, move |row| {
                Ok(match fl(row)?.sql_cmp(&fr(row)?) {
                    Some(o) => Value::Bool(test(o)),
                    None => Value::Null,
                })
            }))
        }
        BinaryOperator::StringConcat => functions::call(e, "CONCAT", vec![l, r], text),
        BinaryOperator::Plus
        | BinaryOperator::Minus
        | BinaryOperator::Multiply
        | BinaryOperator::Divide
        | BinaryOperator::Modulo => {
            let sym = match op {
                BinaryOperator::Plus => '+',
                BinaryOperator::Minus => '-',
                BinaryOperator::Multiply => '*',
                BinaryOperator::Divide => '/',
                _ => '%',
            };
            let ty = arith_type(sym, l.ty, r.ty).map_err(|m| err(e, m))?;
            Ok(CExpr::new(ty, text, move |row| {
                arith(sym, fl(row)?, fr(row)?)
            }))
        }
        other => Err(err(e, format!("unsupported operator {other}"))),
    }
}

/// The result type of `a sym b`.
pub fn arith_type(sym: char, a: DataType, b: DataType) -> std::result::Result<DataType, String> {
    use DataType::*;
    Ok(match (a, b) {
        (Null, x) | (x, Null) => x,
        (Timestamp, Interval) if sym == '+' || sym == '-' => Timestamp,
        (Interval, Timestamp) if sym == '+' => Timestamp,
        (Interval, Interval) if sym == '+' || sym == '-' => Interval,
        (Int, Int) => Int,
        (Int | BigInt, Int | BigInt) => BigInt,
        (Double, x) | (x, Double) if x.is_numeric() => Double,
        (Decimal(p, s), Decimal(q, t)) => match sym {
            '*' => Decimal(38.min(p + q), 18.min(s + t)),
            '/' => Decimal(38, s.max(6)),
            _ => Decimal(38.min(p.max(q) + 1), s.max(t)),
        },
        (Decimal(p, s), Int | BigInt) | (Int | BigInt, Decimal(p, s)) => match sym {
            '/' => Decimal(38, s.max(6)),
            _ => Decimal(38.min(p + 19), s),
        },
        (x, y) => return Err(format!("cannot apply {sym} to {x} and {y}")),
    })
}

fn as_decimal(v: &Value) -> Option<(i128, u8)> {
    match v {
        Value::Int(i) => Some((i128::from(*i), 0)),
        Value::BigInt(i) => Some((i128::from(*i), 0)),
        Value::Decimal(d, s) => Some((d.get(), *s)),
        _ => None,
    }
}

/// `a sym b` on values.
pub fn arith(sym: char, a: Value, b: Value) -> EvalResult {
    use Value::*;
    let div0 = || EvalError("division by zero".into());
    Ok(match (a, b) {
        (Null, _) | (_, Null) => Null,
        (Timestamp(t), Interval(i)) => Timestamp(if sym == '+' { t + i } else { t - i }),
        (Interval(i), Timestamp(t)) => Timestamp(t + i),
        (Interval(x), Interval(y)) => Interval(if sym == '+' { x + y } else { x - y }),
        (Int(x), Int(y)) => Int(match sym {
            '+' => x.wrapping_add(y),
            '-' => x.wrapping_sub(y),
            '*' => x.wrapping_mul(y),
            '/' => x.checked_div(y).ok_or_else(div0)?,
            _ => x.checked_rem(y).ok_or_else(div0)?,
        }),
        (x @ (Int(_) | BigInt(_)), y @ (Int(_) | BigInt(_))) => {
            let (x, y) = (x.as_i64().unwrap_or(0), y.as_i64().unwrap_or(0));
            BigInt(match sym {
                '+' => x.wrapping_add(y),
                '-' => x.wrapping_sub(y),
                '*' => x.wrapping_mul(y),
                '/' => x.checked_div(y).ok_or_else(div0)?,
                _ => x.checked_rem(y).ok_or_else(div0)?,
            })
        }
        (x, y) if matches!(x, Double(_)) || matches!(y, Double(_)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            Double(match sym {
                '+' => x + y,
                '-' => x - y,
                '*' => x * y,
                '/' => x / y,
                _ => x % y,
            })
        }
        (x, y) => {
            let ((a, s), (b, t)) = (
                as_decimal(&x).ok_or_else(EvalError::overflow)?,
                as_decimal(&y).ok_or_else(EvalError::overflow)?,
            );
            match sym {
                '+' | '-' | '%' => {
                    let sc = s.max(t);
                    let (a, b) = (
                        rescale(a, s, sc).ok_or_else(EvalError::overflow)?,
                        rescale(b, t, sc).ok_or_else(EvalError::overflow)?,
                    );
                    Value::decimal(
                        match sym {
                            '+' => a.checked_add(b).ok_or_else(EvalError::overflow)?,
                            '-' => a.checked_sub(b).ok_or_else(EvalError::overflow)?,
                            _ => a.checked_rem(b).ok_or_else(div0)?,
                        },
                        sc,
                    )
                }
                '*' => {
                    let p = a.checked_mul(b).ok_or_else(EvalError::overflow)?;
                    let sc = s + t;
                    if sc > 18 {
                        Value::decimal(rescale(p, sc, 18).ok_or_else(EvalError::overflow)?, 18)
                    } else {
                        Value::decimal(p, sc)
                    }
                }
                _ => {
                    if b == 0 {
                        return Err(div0());
                    }
                    let sc = s.max(6);
                    // a/10^s / (b/10^t) at scale sc = a * 10^(sc - s + t) / b
                    let shift = u32::from(sc) + u32::from(t) - u32::from(s);
                    let n = a
                        .checked_mul(10i128.checked_pow(shift).ok_or_else(EvalError::overflow)?)
                        .ok_or_else(EvalError::overflow)?;
                    Value::decimal(n / b, sc)
                }
            }
        }
    })
}

fn cast_expr(e: &Expr, x: CExpr, to: DataType, lenient: bool, text: String) -> Result<CExpr> {
    use DataType::*;
    let from = x.ty;
    let ok = from == to
        || from == Null
        || to == String
        || from == String
        || (from.is_numeric() && to.is_numeric())
        || (from == Boolean && to.is_numeric())
        || (from.is_numeric() && to == Boolean)
        || (matches!(from, Int | BigInt) && to == Timestamp)
        || (from == Timestamp && to == BigInt)
        || (from == Bytes && to == String);
    if !ok {
        return Err(err(e, format!("cannot CAST {from} AS {to}")));
    }
    let f = x.eval;
    Ok(CExpr::new(to, text, move |r| match cast_value(f(r)?, to) {
        Ok(v) => Ok(v),
        Err(_) if lenient => Ok(Value::Null),
        Err(m) => Err(m),
    }))
}

/// Converts `v` to type `to` (as CAST does).
pub fn cast_value(v: Value, to: DataType) -> EvalResult {
    use DataType as T;
    let fail = |v: &Value| EvalError(format!("cannot cast {v} to {to}"));
    Ok(match (v, to) {
        (Value::Null, _) => Value::Null,
        (v, T::String) => Value::str(&v.to_text()),
        (Value::String(s), t) => {
            let s = s.trim();
            let bad = || EvalError(format!("cannot cast '{s}' to {t}"));
            match t {
                T::Int => Value::Int(s.parse().map_err(|_| bad())?),
                T::BigInt => Value::BigInt(s.parse().map_err(|_| bad())?),
                T::Double => Value::Double(s.parse().map_err(|_| bad())?),
                T::Decimal(_, sc) => Value::decimal(parse_decimal(s, sc).ok_or_else(bad)?, sc),
                T::Boolean => match s.to_ascii_lowercase().as_str() {
                    "true" | "t" | "1" | "yes" => Value::Bool(true),
                    "false" | "f" | "0" | "no" => Value::Bool(false),
                    _ => return Err(bad()),
                },
                T::Timestamp => Value::Timestamp(parse_timestamp(s).ok_or_else(bad)?),
                T::Bytes => Value::Bytes(Arc::from(s.as_bytes())),
                _ => return Err(bad()),
            }
        }
        (Value::Bool(b), t) if t.is_numeric() => cast_value(Value::Int(i32::from(b)), t)?,
        (v, T::Boolean) => Value::Bool(v.as_f64().ok_or_else(|| fail(&v))? != 0.0),
        (Value::Timestamp(ms), T::BigInt) => Value::BigInt(ms),
        (v @ (Value::Int(_) | Value::BigInt(_)), T::Timestamp) => {
            Value::Timestamp(v.as_i64().unwrap_or(0))
        }
        (v, T::Int) => match v {
            Value::Double(d) => Value::Int(d as i32),
            other => Value::Int(
                i32::try_from(other.as_i64().ok_or_else(|| fail(&other))?)
                    .map_err(|_| fail(&other))?,
            ),
        },
        (v, T::BigInt) => match v {
            Value::Double(d) => Value::BigInt(d as i64),
            other => Value::BigInt(other.as_i64().ok_or_else(|| fail(&other))?),
        },
        (v, T::Double) => Value::Double(v.as_f64().ok_or_else(|| fail(&v))?),
        (v, T::Decimal(_, sc)) => match v {
            Value::Double(d) => Value::decimal((d * 10f64.powi(i32::from(sc))).round() as i128, sc),
            Value::Decimal(d, s) => {
                Value::decimal(rescale(d.get(), s, sc).ok_or_else(|| fail(&v))?, sc)
            }
            other => Value::decimal(
                rescale(
                    i128::from(other.as_i64().ok_or_else(|| fail(&other))?),
                    0,
                    sc,
                )
                .ok_or_else(|| fail(&other))?,
                sc,
            ),
        },
        (v, _) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negating_the_lowest_decimal_is_an_overflow_error() {
        let e = negate(Value::decimal(i128::MIN, 2)).expect_err("overflows");
        assert_eq!(e.0, "numeric overflow");
        let back = negate(Value::decimal(i128::MIN + 1, 2)).expect("fits");
        assert_eq!(back, Value::decimal(i128::MAX, 2));
    }

    #[test]
    fn a_projection_moves_columns_after_computing_from_them() {
        let a = CExpr::column(0, DataType::String, "a".into());
        let b = CExpr::column(1, DataType::BigInt, "b".into());
        let twice_b = CExpr {
            eval: Arc::new(|row: &[Value]| match &row[1] {
                Value::BigInt(n) => Ok(Value::BigInt(2 * n)),
                other => Err(EvalError(format!("not a number: {other:?}"))),
            }),
            ty: DataType::BigInt,
            text: "2 * b".into(),
            column: None,
            constant: None,
            reads: Some(Arc::new([1])),
        };
        let p = Projection::new(&[b.clone(), a.clone(), twice_b, a, b]);
        let out = p
            .apply(vec![Value::str("x"), Value::BigInt(21)])
            .expect("projects");
        assert_eq!(
            out,
            vec![
                Value::BigInt(21),
                Value::str("x"),
                Value::BigInt(42),
                Value::str("x"),
                Value::BigInt(21)
            ]
        );
        assert!(p.apply(vec![Value::str("x"), Value::Null]).is_err());
        let short = Projection::new(&[CExpr::column(3, DataType::BigInt, "d".into())]);
        assert_eq!(short.apply(vec![]).expect("projects"), vec![Value::Null]);
    }
}
