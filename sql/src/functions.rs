//! Scalar functions (string, numeric, date/time) and LIKE.
//!
//! Each function checks its argument types when the query is planned and returns
//! a closure; a regular expression given as a literal is compiled once.
//! Functions return NULL when an argument is NULL, except COALESCE, IF, NULLIF and
//! CONCAT_WS, which treat NULLs themselves.

use std::sync::Arc;

use regex::Regex;
use sqlparser::ast::{Expr, Spanned};

use crate::error::{Result, SqlError};
use crate::expr::{CExpr, EvalError, EvalFn, EvalResult, unify};
use crate::time::{format_pattern, parse_timestamp, to_civil};
use crate::types::{DataType, Value};

/// What `strom explain` and errors list as the supported scalar functions.
pub const SCALAR_FUNCTIONS: &str = "LOWER, UPPER, CHAR_LENGTH, CONCAT, CONCAT_WS, SUBSTRING, REPLACE, REGEXP, REGEXP_EXTRACT, REGEXP_REPLACE, SPLIT_INDEX, COALESCE, IF, NULLIF, ABS, MOD, ROUND, FLOOR, CEIL, POWER, SQRT, YEAR, MONTH, DAYOFMONTH, HOUR, MINUTE, SECOND, DATE_FORMAT, TO_TIMESTAMP, TO_TIMESTAMP_LTZ, FROM_UNIXTIME";

fn evals(args: &[CExpr]) -> Vec<EvalFn> {
    args.iter().map(|a| a.eval.clone()).collect()
}

/// A function of non-NULL arguments: NULL in gives NULL out.
fn strict(
    ty: DataType,
    text: String,
    args: &[CExpr],
    f: impl Fn(&[Value]) -> EvalResult + Send + Sync + 'static,
) -> CExpr {
    let fs = evals(args);
    CExpr {
        eval: Arc::new(move |row: &[Value]| {
            let mut vals = Vec::with_capacity(fs.len());
            for g in &fs {
                let v = g(row)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                vals.push(v);
            }
            f(&vals)
        }),
        ty,
        text,
        column: None,
        constant: None,
        reads: None,
    }
}

fn lazy(
    ty: DataType,
    text: String,
    f: impl Fn(&[Value]) -> EvalResult + Send + Sync + 'static,
) -> CExpr {
    CExpr {
        eval: Arc::new(f),
        ty,
        text,
        column: None,
        constant: None,
        reads: None,
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A regex from a literal (compiled now) or per row.
enum Pattern {
    Fixed(Regex),
    PerRow,
}

impl Pattern {
    fn of(e: &Expr, arg: &CExpr) -> Result<Pattern> {
        match &arg.constant {
            Some(Value::String(p)) => Regex::new(p)
                .map(Pattern::Fixed)
                .map_err(|x| SqlError::at(e.span(), format!("bad regular expression '{p}': {x}"))),
            _ => Ok(Pattern::PerRow),
        }
    }

    fn get(&self, text: &str) -> Result<std::borrow::Cow<'_, Regex>, EvalError> {
        match self {
            Pattern::Fixed(r) => Ok(std::borrow::Cow::Borrowed(r)),
            Pattern::PerRow => Regex::new(text)
                .map(std::borrow::Cow::Owned)
                .map_err(|x| EvalError(format!("bad regular expression '{text}': {x}"))),
        }
    }
}

/// Compiles a call of scalar function `name`.
pub fn call(e: &Expr, name: &str, args: Vec<CExpr>, text: String) -> Result<CExpr> {
    use DataType as T;
    let fail = |m: String| SqlError::at(e.span(), m);
    let arity = |lo: usize, hi: usize| -> Result<()> {
        if (lo..=hi).contains(&args.len()) {
            Ok(())
        } else if lo == hi {
            Err(fail(format!(
                "{name} takes {lo} argument(s), got {}",
                args.len()
            )))
        } else {
            Err(fail(format!(
                "{name} takes {lo} to {hi} arguments, got {}",
                args.len()
            )))
        }
    };
    let want = |i: usize, ok: &dyn Fn(DataType) -> bool, what: &str| -> Result<()> {
        let t = args[i].ty;
        if t == T::Null || ok(t) {
            Ok(())
        } else {
            Err(fail(format!(
                "{name}: argument {} (`{}`) is {t}, expected {what}",
                i + 1,
                args[i].text
            )))
        }
    };
    let is_str = |t: DataType| t == T::String;
    let is_int = |t: DataType| matches!(t, T::Int | T::BigInt);
    let is_num = |t: DataType| t.is_numeric();
    let is_ts = |t: DataType| t == T::Timestamp;
    Ok(match name {
        "LOWER" | "UPPER" => {
            arity(1, 1)?;
            want(0, &is_str, "STRING")?;
            let upper = name == "UPPER";
            strict(T::String, text, &args, move |v| {
                Ok(Value::str(&if upper {
                    s(&v[0]).to_uppercase()
                } else {
                    s(&v[0]).to_lowercase()
                }))
            })
        }
        "CHAR_LENGTH" | "CHARACTER_LENGTH" | "LENGTH" => {
            arity(1, 1)?;
            want(0, &is_str, "STRING")?;
            strict(T::Int, text, &args, |v| {
                Ok(Value::Int(s(&v[0]).chars().count() as i32))
            })
        }
        "CONCAT" => {
            arity(1, 64)?;
            strict(T::String, text, &args, |v| {
                Ok(Value::str(
                    &v.iter().map(Value::to_text).collect::<String>(),
                ))
            })
        }
        "CONCAT_WS" => {
            arity(2, 64)?;
            let fs = evals(&args);
            lazy(T::String, text, move |row| {
                let sep = fs[0](row)?;
                if sep.is_null() {
                    return Ok(Value::Null);
                }
                let mut parts = Vec::new();
                for f in &fs[1..] {
                    let v = f(row)?;
                    if !v.is_null() {
                        parts.push(v.to_text());
                    }
                }
                Ok(Value::str(&parts.join(s(&sep))))
            })
        }
        "SUBSTRING" | "SUBSTR" => {
            arity(2, 3)?;
            want(0, &is_str, "STRING")?;
            want(1, &is_int, "an integer")?;
            if args.len() == 3 {
                want(2, &is_int, "an integer")?;
            }
            strict(T::String, text, &args, |v| {
                let chars: Vec<char> = s(&v[0]).chars().collect();
                let n = chars.len() as i64;
                // 1-based; a start <= 0 counts from the end like Flink (0 is 1).
                let start = match int(&v[1]) {
                    0 => 1,
                    x if x < 0 => (n + x + 1).max(1),
                    x => x,
                };
                let len = v.get(2).map_or(n, int);
                if len < 0 {
                    return Err(EvalError(format!("SUBSTRING length {len} is negative")));
                }
                let from = (start - 1).clamp(0, n) as usize;
                let to = (start - 1).saturating_add(len).clamp(0, n) as usize;
                Ok(Value::str(
                    &chars[from..to.max(from)].iter().collect::<String>(),
                ))
            })
        }
        "REPLACE" => {
            arity(3, 3)?;
            (0..3).try_for_each(|i| want(i, &is_str, "STRING"))?;
            strict(T::String, text, &args, |v| {
                Ok(Value::str(&s(&v[0]).replace(s(&v[1]), s(&v[2]))))
            })
        }
        "REGEXP" => {
            arity(2, 2)?;
            (0..2).try_for_each(|i| want(i, &is_str, "STRING"))?;
            let p = Pattern::of(e, &args[1])?;
            strict(T::Boolean, text, &args, move |v| {
                Ok(Value::Bool(p.get(s(&v[1]))?.is_match(s(&v[0]))))
            })
        }
        "REGEXP_EXTRACT" => {
            arity(2, 3)?;
            (0..2).try_for_each(|i| want(i, &is_str, "STRING"))?;
            if args.len() == 3 {
                want(2, &is_int, "an integer")?;
            }
            let p = Pattern::of(e, &args[1])?;
            strict(T::String, text, &args, move |v| {
                let re = p.get(s(&v[1]))?;
                let group = v.get(2).map_or(0, int);
                let group = usize::try_from(group)
                    .map_err(|_| EvalError(format!("REGEXP_EXTRACT group {group} is negative")))?;
                Ok(re
                    .captures(s(&v[0]))
                    .and_then(|c| c.get(group))
                    .map_or(Value::Null, |m| Value::str(m.as_str())))
            })
        }
        "REGEXP_REPLACE" => {
            arity(3, 3)?;
            (0..3).try_for_each(|i| want(i, &is_str, "STRING"))?;
            let p = Pattern::of(e, &args[1])?;
            strict(T::String, text, &args, move |v| {
                Ok(Value::str(
                    &p.get(s(&v[1]))?.replace_all(s(&v[0]), s(&v[2])),
                ))
            })
        }
        "SPLIT_INDEX" => {
            arity(3, 3)?;
            want(0, &is_str, "STRING")?;
            want(1, &is_str, "STRING")?;
            want(2, &is_int, "an integer")?;
            strict(T::String, text, &args, |v| {
                let sep = s(&v[1]);
                let idx = int(&v[2]);
                if sep.is_empty() || idx < 0 {
                    return Ok(Value::Null);
                }
                Ok(s(&v[0])
                    .split(sep)
                    .nth(idx as usize)
                    .map_or(Value::Null, Value::str))
            })
        }
        "COALESCE" => {
            arity(1, 64)?;
            let mut ty = T::Null;
            for a in &args {
                ty = unify(e, ty, a.ty)?;
            }
            let fs = evals(&args);
            lazy(ty, text, move |row| {
                for f in &fs {
                    let v = f(row)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Ok(Value::Null)
            })
        }
        "IF" => {
            arity(3, 3)?;
            want(0, &|t| t == T::Boolean, "BOOLEAN")?;
            let ty = unify(e, args[1].ty, args[2].ty)?;
            let fs = evals(&args);
            lazy(ty, text, move |row| {
                if fs[0](row)?.is_true() {
                    fs[1](row)
                } else {
                    fs[2](row)
                }
            })
        }
        "NULLIF" => {
            arity(2, 2)?;
            let ty = args[0].ty;
            let fs = evals(&args);
            lazy(ty, text, move |row| {
                let a = fs[0](row)?;
                Ok(
                    if a.sql_cmp(&fs[1](row)?) == Some(std::cmp::Ordering::Equal) {
                        Value::Null
                    } else {
                        a
                    },
                )
            })
        }
        "ABS" => {
            arity(1, 1)?;
            want(0, &is_num, "a number")?;
            strict(args[0].ty, text, &args, |v| {
                Ok(match &v[0] {
                    Value::Int(i) => Value::Int(i.wrapping_abs()),
                    Value::BigInt(i) => Value::BigInt(i.wrapping_abs()),
                    Value::Double(d) => Value::Double(d.abs()),
                    Value::Decimal(d, s) => {
                        Value::decimal(d.get().checked_abs().ok_or_else(EvalError::overflow)?, *s)
                    }
                    other => other.clone(),
                })
            })
        }
        "MOD" => {
            arity(2, 2)?;
            want(0, &is_num, "a number")?;
            want(1, &is_num, "a number")?;
            let ty = crate::expr::arith_type('%', args[0].ty, args[1].ty).map_err(fail)?;
            strict(ty, text, &args, |v| {
                crate::expr::arith('%', v[0].clone(), v[1].clone())
            })
        }
        "ROUND" => {
            arity(1, 2)?;
            want(0, &is_num, "a number")?;
            let ty = args[0].ty;
            strict(ty, text, &args, |v| {
                let digits = v.get(1).map_or(0, int).clamp(-18, 18) as i32;
                Ok(match &v[0] {
                    Value::Double(d) => {
                        let m = 10f64.powi(digits);
                        Value::Double((d * m).round() / m)
                    }
                    Value::Decimal(d, sc) => {
                        let drop = i32::from(*sc) - digits;
                        if drop <= 0 {
                            Value::Decimal(*d, *sc)
                        } else {
                            let d = d.get();
                            let p = 10i128.pow(drop as u32);
                            let q = (d.abs() + p / 2) / p * p * d.signum();
                            Value::decimal(q, *sc)
                        }
                    }
                    other => other.clone(),
                })
            })
        }
        "FLOOR" | "CEIL" | "CEILING" => {
            arity(1, 1)?;
            want(0, &is_num, "a number")?;
            let up = name != "FLOOR";
            strict(args[0].ty, text, &args, move |v| {
                Ok(match &v[0] {
                    Value::Double(d) => Value::Double(if up { d.ceil() } else { d.floor() }),
                    Value::Decimal(d, sc) => {
                        let d = d.get();
                        let p = 10i128.pow(u32::from(*sc));
                        let f = d.div_euclid(p);
                        let f = if up && d.rem_euclid(p) != 0 { f + 1 } else { f };
                        Value::decimal(f * p, *sc)
                    }
                    other => other.clone(),
                })
            })
        }
        "POWER" | "POW" | "SQRT" => {
            arity(
                if name == "SQRT" { 1 } else { 2 },
                if name == "SQRT" { 1 } else { 2 },
            )?;
            (0..args.len()).try_for_each(|i| want(i, &is_num, "a number"))?;
            let sqrt = name == "SQRT";
            strict(T::Double, text, &args, move |v| {
                let x = v[0].as_f64().unwrap_or(f64::NAN);
                Ok(Value::Double(if sqrt {
                    x.sqrt()
                } else {
                    x.powf(v[1].as_f64().unwrap_or(f64::NAN))
                }))
            })
        }
        "YEAR" | "MONTH" | "DAYOFMONTH" | "DAY" | "HOUR" | "MINUTE" | "SECOND" => {
            arity(1, 1)?;
            want(0, &is_ts, "TIMESTAMP")?;
            let part = name.to_string();
            strict(T::BigInt, text, &args, move |v| {
                let c = to_civil(int(&v[0]));
                Ok(Value::BigInt(match part.as_str() {
                    "YEAR" => c.year,
                    "MONTH" => i64::from(c.month),
                    "DAYOFMONTH" | "DAY" => i64::from(c.day),
                    "HOUR" => i64::from(c.hour),
                    "MINUTE" => i64::from(c.minute),
                    _ => i64::from(c.second),
                }))
            })
        }
        "DATE_FORMAT" => {
            arity(2, 2)?;
            want(0, &|t| t == T::Timestamp || t == T::String, "TIMESTAMP")?;
            want(1, &is_str, "a STRING pattern")?;
            strict(T::String, text, &args, |v| {
                let ms = match &v[0] {
                    Value::String(x) => parse_timestamp(x)
                        .ok_or_else(|| EvalError(format!("'{x}' is not a timestamp")))?,
                    other => int(other),
                };
                Ok(Value::str(&format_pattern(ms, s(&v[1]))))
            })
        }
        "TO_TIMESTAMP" => {
            arity(1, 2)?;
            want(0, &is_str, "STRING")?;
            // Only the default layouts are read; a pattern must not be ignored silently.
            if let Some(p) = args.get(1) {
                let default = matches!(&p.constant, Some(Value::String(x))
                    if ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm:ss.SSS", "yyyy-MM-dd'T'HH:mm:ss"].contains(&x.as_ref()));
                if !default {
                    return Err(fail(format!(
                        "TO_TIMESTAMP(s, {}): strom reads yyyy-MM-dd HH:mm:ss[.SSS] and ISO-8601 only; other patterns are not supported yet",
                        p.text
                    )));
                }
            }
            strict(T::Timestamp, text, &args, |v| {
                parse_timestamp(s(&v[0]))
                    .map(Value::Timestamp)
                    .ok_or_else(|| {
                        EvalError(format!(
                            "'{}' is not a timestamp (yyyy-MM-dd HH:mm:ss[.SSS])",
                            s(&v[0])
                        ))
                    })
            })
        }
        "TO_TIMESTAMP_LTZ" => {
            arity(1, 2)?;
            want(0, &is_int, "an integer")?;
            let precision = match args.get(1).and_then(|a| a.constant.clone()) {
                None if args.len() == 1 => 3,
                Some(Value::Int(p)) if p == 0 || p == 3 => p,
                _ => return Err(fail(
                    "TO_TIMESTAMP_LTZ(n, precision): precision is 0 (seconds) or 3 (milliseconds)"
                        .into(),
                )),
            };
            let first = args[..1].to_vec();
            strict(T::Timestamp, text, &first, move |v| {
                Ok(Value::Timestamp(if precision == 0 {
                    int(&v[0]).saturating_mul(1000)
                } else {
                    int(&v[0])
                }))
            })
        }
        "FROM_UNIXTIME" => {
            arity(1, 2)?;
            want(0, &is_int, "an integer")?;
            strict(T::String, text, &args, |v| {
                let pattern = v.get(1).map_or("yyyy-MM-dd HH:mm:ss", s);
                Ok(Value::str(&format_pattern(
                    int(&v[0]).saturating_mul(1000),
                    pattern,
                )))
            })
        }
        _ => {
            return Err(fail(format!(
                "unknown function {name}; strom supports {SCALAR_FUNCTIONS}"
            )));
        }
    })
}

/// `x [NOT] LIKE pattern` (`%` any run, `_` one character).
pub fn like(
    x: CExpr,
    p: CExpr,
    negated: bool,
    insensitive: bool,
    text: String,
) -> std::result::Result<CExpr, String> {
    fn to_regex(p: &str, insensitive: bool) -> std::result::Result<Regex, String> {
        let mut out = String::from(if insensitive { "(?is)^" } else { "(?s)^" });
        for c in p.chars() {
            match c {
                '%' => out.push_str(".*"),
                '_' => out.push('.'),
                c => out.push_str(&regex::escape(&c.to_string())),
            }
        }
        out.push('$');
        Regex::new(&out).map_err(|e| e.to_string())
    }
    let fixed = match &p.constant {
        Some(Value::String(s)) => Some(to_regex(s, insensitive)?),
        _ => None,
    };
    let args = [x, p];
    Ok(strict(DataType::Boolean, text, &args, move |v| {
        let hit = match &fixed {
            Some(re) => re.is_match(s(&v[0])),
            None => to_regex(s(&v[1]), insensitive)
                .map_err(EvalError)?
                .is_match(s(&v[0])),
        };
        Ok(Value::Bool(hit != negated))
    }))
}
