//! SQL data types, values and rows.
//!
//! A row is a `Vec<Value>` laid out by a [`Schema`]; expressions are compiled
//! against the schema into closures over rows (see [`crate::expr`]). An updating
//! result (a GROUP BY without window, and filters and projections over it) is a
//! stream of [`Change`]s: new versions of the row of a key, and deletes of it. Values have a
//! total order and hash (doubles by their bits, NaN equal to itself) so that any
//! column can be a grouping key or a `COUNT(DISTINCT ..)` element.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use engine::StateCodec;

use crate::time::format_timestamp;

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOLEAN`.
    Boolean,
    /// `INT` (32-bit).
    Int,
    /// `BIGINT` (64-bit).
    BigInt,
    /// `DOUBLE`.
    Double,
    /// `DECIMAL(p, s)`: precision and scale.
    Decimal(u8, u8),
    /// `STRING` (`VARCHAR`).
    String,
    /// `BYTES`.
    Bytes,
    /// `TIMESTAMP(3)`: milliseconds since the epoch, no time zone.
    Timestamp,
    /// An `INTERVAL` (milliseconds); only inside expressions.
    Interval,
    /// The type of a bare `NULL` literal.
    Null,
}

impl DataType {
    /// Whether the type is a number.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            DataType::Int | DataType::BigInt | DataType::Double | DataType::Decimal(..)
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::Int => f.write_str("INT"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            DataType::String => f.write_str("STRING"),
            DataType::Bytes => f.write_str("BYTES"),
            DataType::Timestamp => f.write_str("TIMESTAMP(3)"),
            DataType::Interval => f.write_str("INTERVAL"),
            DataType::Null => f.write_str("NULL"),
        }
    }
}

/// One value of a row.
#[derive(Debug, Clone)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An `INT`.
    Int(i32),
    /// A `BIGINT`.
    BigInt(i64),
    /// A `DOUBLE`.
    Double(f64),
    /// A `DECIMAL`: unscaled value and scale (see [`Value::decimal`]).
    Decimal(Unscaled, u8),
    /// A `STRING`.
    String(Arc<str>),
    /// `BYTES` (shared like strings; 16 bytes wide, as a string is).
    Bytes(Arc<[u8]>),
    /// A `TIMESTAMP(3)` in epoch milliseconds.
    Timestamp(i64),
    /// An interval in milliseconds.
    Interval(i64),
}

/// A `DECIMAL`'s unscaled value, as two 64-bit halves: aligned to 8 bytes
/// where an `i128` is aligned to 16, it keeps a [`Value`] at 24 bytes, not 32.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unscaled {
    high: i64,
    low: u64,
}

impl Unscaled {
    /// Holds `v`.
    pub const fn new(v: i128) -> Unscaled {
        Unscaled {
            high: (v >> 64) as i64,
            low: v as u64,
        }
    }

    /// The value held.
    pub const fn get(self) -> i128 {
        ((self.high as i128) << 64) | self.low as i128
    }
}

/// Shows the number, as an `i128` shows.
impl fmt::Debug for Unscaled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl From<i128> for Unscaled {
    fn from(v: i128) -> Unscaled {
        Unscaled::new(v)
    }
}

impl PartialOrd for Unscaled {
    fn partial_cmp(&self, other: &Unscaled) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Unscaled {
    fn cmp(&self, other: &Unscaled) -> Ordering {
        self.get().cmp(&other.get())
    }
}

impl Value {
    /// A `DECIMAL` of unscaled value `unscaled` and `scale` digits after the point.
    pub fn decimal(unscaled: i128, scale: u8) -> Value {
        Value::Decimal(Unscaled::new(unscaled), scale)
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    /// Whether this is `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as an i64 (integers, timestamps, intervals).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::BigInt(v) | Value::Timestamp(v) | Value::Interval(v) => Some(*v),
            Value::Decimal(v, s) => i64::try_from(v.get() / 10i128.pow(u32::from(*s))).ok(),
            Value::Double(v) => Some(*v as i64),
            _ => None,
        }
    }

    /// The value as an f64 (any number).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(f64::from(*v)),
            Value::BigInt(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal(v, s) => Some(v.get() as f64 / 10f64.powi(i32::from(*s))),
            _ => None,
        }
    }

    /// The string of a `STRING` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// `TRUE` is true; `FALSE` and `NULL` are not.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::BigInt(_) | Value::Double(_) | Value::Decimal(..) => 2,
            Value::String(_) => 3,
            Value::Bytes(_) => 4,
            Value::Timestamp(_) => 5,
            Value::Interval(_) => 6,
        }
    }

    /// SQL comparison: `None` when either side is `NULL` or the types differ.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        if self.is_null() || other.is_null() || self.rank() != other.rank() {
            return None;
        }
        Some(self.cmp(other))
    }

    /// The value as it prints in text formats and `print` output.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        }
    }

    /// The value as a JSON value (timestamps as `yyyy-MM-dd HH:mm:ss.SSS`, bytes as
    /// base64-free arrays of numbers are avoided: bytes become a UTF-8-lossy string).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(v) => J::from(*v),
            Value::BigInt(v) => J::from(*v),
            Value::Double(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Value::Decimal(..) => {
                let text = self.to_string();
                text.parse::<serde_json::Number>()
                    .map_or(J::String(text), J::Number)
            }
            Value::String(s) => J::String(s.to_string()),
            Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
            Value::Timestamp(ms) => J::String(format_timestamp(*ms)),
            Value::Interval(ms) => J::from(*ms),
        }
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Decimal text: unscaled `v` with `scale` digits after the point.
pub fn decimal_to_string(v: i128, scale: u8) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let s = usize::from(scale);
    let padded = if digits.len() <= s {
        format!("{}{digits}", "0".repeat(s + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - s);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// Rescales an unscaled decimal from scale `from` to `to` (truncating).
pub fn rescale(v: i128, from: u8, to: u8) -> Option<i128> {
    match from.cmp(&to) {
        Ordering::Equal => Some(v),
        Ordering::Less => v.checked_mul(10i128.checked_pow(u32::from(to - from))?),
        Ordering::Greater => Some(v / 10i128.checked_pow(u32::from(from - to))?),
    }
}

/// Parses decimal text into an unscaled value at `scale`.
pub fn parse_decimal(text: &str, scale: u8) -> Option<i128> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let s = usize::from(scale);
    let mut frac = frac.to_string();
    frac.truncate(s);
    while frac.len() < s {
        frac.push('0');
    }
    let joined = format!("{int}{frac}");
    let v: i128 = if joined.is_empty() {
        0
    } else {
        joined.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Double(v) => write!(f, "{v:?}"),
            Value::Decimal(v, s) => f.write_str(&decimal_to_string(v.get(), *s)),
            Value::String(s) => write!(f, "'{s}'"),
            Value::Bytes(b) => write!(
                f,
                "x'{}'",
                b.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            Value::Timestamp(ms) => f.write_str(&format_timestamp(*ms)),
            Value::Interval(ms) => write!(f, "INTERVAL {ms} ms"),
        }
    }
}

impl PartialEq for Value {
    #[inline]
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        // The common cases (join and group keys of one type) without the total
        // order's dispatch; the rest as the order says.
        match (self, other) {
            (BigInt(a), BigInt(b)) | (Timestamp(a), Timestamp(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (String(a), String(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}
impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// A total order: by type class, numbers by value (across integer, decimal and
    /// double), doubles with `total_cmp`.
    fn cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (BigInt(a), BigInt(b)) | (Timestamp(a), Timestamp(b)) | (Interval(a), Interval(b)) => {
                a.cmp(b)
            }
            (Int(a), BigInt(b)) => i64::from(*a).cmp(b),
            (BigInt(a), Int(b)) => a.cmp(&i64::from(*b)),
            (Decimal(a, sa), Decimal(b, sb)) if sa == sb => a.cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (a, b) if a.rank() == 2 && b.rank() == 2 => {
                let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                x.total_cmp(&y)
            }
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            // Equal numbers hash equally whatever their type: as the integer
            // they equal when they are whole and below 9e15, which every INT
            // and such a BIGINT is (exactly, as a double too).
            Value::Int(v) => i64::from(*v).hash(state),
            Value::BigInt(v) if v.unsigned_abs() < 9_000_000_000_000_000 => v.hash(state),
            Value::BigInt(_) | Value::Decimal(..) | Value::Double(_) => {
                let f = self.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    (f as i64).hash(state)
                } else {
                    f.to_bits().hash(state)
                }
            }
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Timestamp(v) | Value::Interval(v) => v.hash(state),
        }
    }
}

impl StateCodec for Value {
    fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Null => buf.push(0),
            Value::Bool(b) => {
                buf.push(1);
                b.encode(buf)
            }
            Value::Int(v) => {
                buf.push(2);
                v.encode(buf)
            }
            Value::BigInt(v) => {
                buf.push(3);
                v.encode(buf)
            }
            Value::Double(v) => {
                buf.push(4);
                v.encode(buf)
            }
            Value::Decimal(v, s) => {
                buf.push(5);
                v.get().encode(buf);
                s.encode(buf)
            }
            Value::String(s) => {
                buf.push(6);
                s.encode(buf)
            }
            Value::Bytes(b) => {
                buf.push(7);
                // A `Vec<u8>`'s layout: its length, then the bytes.
                (b.len() as u32).encode(buf);
                u8::encode_all(b, buf)
            }
            Value::Timestamp(v) => {
                buf.push(8);
                v.encode(buf)
            }
            Value::Interval(v) => {
                buf.push(9);
                v.encode(buf)
            }
        }
    }

    fn decode(buf: &mut &[u8]) -> engine::Result<Self> {
        Ok(match u8::decode(buf)? {
            0 => Value::Null,
            1 => Value::Bool(bool::decode(buf)?),
            2 => Value::Int(i32::decode(buf)?),
            3 => Value::BigInt(i64::decode(buf)?),
            4 => Value::Double(f64::decode(buf)?),
            5 => Value::decimal(i128::decode(buf)?, u8::decode(buf)?),
            6 => Value::String(Arc::<str>::decode(buf)?),
            7 => Value::Bytes(Arc::from(Vec::<u8>::decode(buf)?)),
            8 => Value::Timestamp(i64::decode(buf)?),
            9 => Value::Interval(i64::decode(buf)?),
            tag => {
                return Err(engine::EngineError::Codec(format!(
                    "unknown value tag {tag}"
                )));
            }
        })
    }
}

/// A row of values.
pub type Row = Vec<Value>;

/// The values a GROUP BY or a join keys its state by. A key of one value (the
/// common case) is held inline, so a state entry's key costs no allocation of
/// its own and comparing keys reads no other memory.
///
/// It hashes, compares and encodes as the [`Row`] of its values does, so key
/// groups, repartition topics and state written with row keys stay valid.
///
/// ```
/// use sql::types::{Key, Row, Value};
/// let key = Key::from(vec![Value::BigInt(7)]);
/// assert_eq!(&*key, &[Value::BigInt(7)][..]);
/// assert_eq!(key.into_row(), vec![Value::BigInt(7)]);
/// ```
#[derive(Clone)]
pub struct Key(KeyValues);

#[derive(Clone)]
enum KeyValues {
    One(Value),
    Many(Box<[Value]>),
}

impl Key {
    /// The key of `values`.
    pub fn of(values: &[Value]) -> Key {
        match values {
            [one] => Key(KeyValues::One(one.clone())),
            many => Key(KeyValues::Many(many.into())),
        }
    }

    /// The key's values as a row.
    pub fn into_row(self) -> Row {
        match self.0 {
            KeyValues::One(v) => vec![v],
            KeyValues::Many(vs) => vs.into_vec(),
        }
    }

    /// Moves the key's values to the end of `row`.
    pub fn append_to(self, row: &mut Row) {
        match self.0 {
            KeyValues::One(v) => row.push(v),
            KeyValues::Many(vs) => row.extend(vs.into_vec()),
        }
    }
}

impl From<Row> for Key {
    fn from(mut row: Row) -> Key {
        if row.len() == 1 {
            if let Some(v) = row.pop() {
                return Key(KeyValues::One(v));
            }
        }
        Key(KeyValues::Many(row.into_boxed_slice()))
    }
}

impl std::ops::Deref for Key {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        match &self.0 {
            KeyValues::One(v) => std::slice::from_ref(v),
            KeyValues::Many(vs) => vs,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl StateCodec for Key {
    fn encode(&self, buf: &mut Vec<u8>) {
        // A `Row`'s layout: its length, then the values.
        (self.len() as u32).encode(buf);
        Value::encode_all(self, buf)
    }

    fn decode(buf: &mut &[u8]) -> engine::Result<Self> {
        Ok(match u32::decode(buf)? {
            1 => Key(KeyValues::One(Value::decode(buf)?)),
            n => Key(KeyValues::Many(
                Value::decode_n(n as usize, buf)?.into_boxed_slice(),
            )),
        })
    }
}

/// One element of an updating result, whose rows are identified by its upsert
/// key columns (see [`crate::plan::Plan::upsert_key`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The row of its key is now `row` (Flink's `+I`/`+U`).
    Upsert {
        /// The row it replaces, if the key had one in the result; `None` also
        /// where nothing above reads it (no filter), which then skips computing it.
        before: Option<Row>,
        /// The new row.
        row: Row,
    },
    /// The key has no row any more (Flink's `-D`): the row it had. Sinks read
    /// only its key.
    Delete(Row),
}

impl Change {
    /// The row upserted or deleted.
    pub fn row(&self) -> &Row {
        match self {
            Change::Upsert { row, .. } | Change::Delete(row) => row,
        }
    }

    /// The row upserted or deleted, to change in place.
    pub fn row_mut(&mut self) -> &mut Row {
        match self {
            Change::Upsert { row, .. } | Change::Delete(row) => row,
        }
    }

    /// Whether this deletes its key's row.
    pub fn is_delete(&self) -> bool {
        matches!(self, Change::Delete(_))
    }
}

/// An upsert as its row, a delete as a null.
impl serde::Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Change::Upsert { row, .. } => row.serialize(s),
            Change::Delete(_) => s.serialize_none(),
        }
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The table (or alias) the column belongs to, for `t.col` references.
    pub qualifier: Option<String>,
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: DataType,
}

impl Field {
    /// A field without qualifier.
    pub fn new(name: &str, ty: DataType) -> Field {
        Field {
            qualifier: None,
            name: name.to_string(),
            ty,
        }
    }
}

/// The columns of a row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// The columns in row order.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of these fields.
    pub fn new(fields: Vec<Field>) -> Schema {
        Schema { fields }
    }

    /// Column count.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The index of column `name` (case-insensitive), optionally of `qualifier`.
    /// `Err(true)` when ambiguous, `Err(false)` when absent.
    pub fn find(&self, qualifier: Option<&str>, name: &str) -> Result<usize, bool> {
        let matches: Vec<usize> = self
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.name.eq_ignore_ascii_case(name)
                    && qualifier.is_none_or(|q| {
                        f.qualifier
                            .as_deref()
                            .is_some_and(|fq| fq.eq_ignore_ascii_case(q))
                    })
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => Err(false),
            _ => Err(true),
        }
    }

    /// The same columns with every qualifier set to `q`.
    pub fn qualified(&self, q: &str) -> Schema {
        Schema::new(
            self.fields
                .iter()
                .map(|f| Field {
                    qualifier: Some(q.to_string()),
                    ..f.clone()
                })
                .collect(),
        )
    }

    /// `name TYPE, ...` for explain output.
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|f| format!("{} {}", f.name, f.ty))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_hashes_encodes_and_decodes_as_the_row_of_its_values() {
        use engine::state::key_group::stable_hash;
        let rows: [Row; 4] = [
            vec![],
            vec![Value::str("k00042")],
            vec![Value::BigInt(7), Value::Null],
            vec![Value::Int(1), Value::str("a"), Value::Timestamp(3)],
        ];
        for row in rows {
            let key = Key::from(row.clone());
            assert_eq!(key, Key::of(&row));
            assert_eq!(&*key, &row[..]);
            assert_eq!(stable_hash(&key), stable_hash(&row), "{row:?}");
            let (mut a, mut b) = (Vec::new(), Vec::new());
            key.encode(&mut a);
            row.encode(&mut b);
            assert_eq!(a, b, "{row:?}");
            assert_eq!(engine::state::codec::decode_exact::<Key>(&b).unwrap(), key);
            let mut appended = vec![Value::Null];
            key.clone().append_to(&mut appended);
            assert_eq!(appended[1..], row[..]);
            assert_eq!(key.into_row(), row);
        }
        assert!(std::mem::size_of::<Key>() <= std::mem::size_of::<Value>());
    }

    #[test]
    fn numbers_compare_and_hash_across_types() {
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Value| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        assert_eq!(Value::Int(3), Value::BigInt(3));
        assert_eq!(h(&Value::Int(3)), h(&Value::BigInt(3)));
        assert_eq!(h(&Value::Double(3.0)), h(&Value::decimal(300, 2)));
        assert!(Value::Double(2.5) < Value::Int(3));
        // Around the bound of the integer fast path, and past it.
        for v in [
            -8_999_999_999_999_999i64,
            8_999_999_999_999_999,
            9_000_000_000_000_000,
            -(1 << 60),
        ] {
            let d = Value::Double(v as f64);
            assert_eq!(Value::BigInt(v) == d, v as f64 as i64 == v, "{v}");
            if Value::BigInt(v) == d {
                assert_eq!(h(&Value::BigInt(v)), h(&d), "{v}");
            }
        }
        assert_eq!(h(&Value::Int(-7)), h(&Value::decimal(-700, 2)));
        assert_ne!(Value::Timestamp(5), Value::BigInt(5));
        assert_ne!(Value::str("a"), Value::str("ab"));
        assert_eq!(Value::Int(1).sql_cmp(&Value::Null), None);
        assert_eq!(Value::str("a").sql_cmp(&Value::Int(1)), None);
    }

    /// A row is a vector of values: their width is most of a row's memory.
    /// The widest payloads (strings, bytes, decimals) are 16 bytes.
    #[test]
    fn a_value_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn an_unscaled_decimal_holds_every_i128_and_orders_as_one() {
        let vs = [
            i128::MIN,
            i128::MIN + 1,
            -(1 << 64),
            -1,
            0,
            1,
            u64::MAX as i128,
            i128::MAX,
        ];
        for v in vs {
            assert_eq!(Unscaled::new(v).get(), v);
        }
        for w in vs.windows(2) {
            assert!(Unscaled::new(w[0]) < Unscaled::new(w[1]), "{w:?}");
        }
    }

    #[test]
    fn values_survive_the_state_codec() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-4),
            Value::BigInt(1 << 40),
            Value::Double(1.5),
            Value::decimal(-12345, 2),
            Value::decimal(i128::MIN, 38),
            Value::str("héllo"),
            Value::Bytes(Arc::from(&b"\0\x01"[..])),
            Value::Timestamp(1_700_000_000_000),
        ];
        let mut buf = Vec::new();
        row.encode(&mut buf);
        let back = Vec::<Value>::decode(&mut buf.as_slice()).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{row:?}"));
        // Strings and bytes keep the layout snapshots were written with: a tag,
        // then a String's or a Vec<u8>'s encoding.
        let mut text = vec![6];
        String::from("héllo").encode(&mut text);
        assert_eq!(
            engine::state::codec::encode_to_vec(&Value::str("héllo")),
            text
        );
        let mut raw = vec![7];
        vec![0u8, 1].encode(&mut raw);
        assert_eq!(
            engine::state::codec::encode_to_vec(&Value::Bytes(Arc::from(&b"\0\x01"[..]))),
            raw
        );
    }

    #[test]
    fn decimals_print_and_parse() {
        assert_eq!(decimal_to_string(-12345, 2), "-123.45");
        assert_eq!(decimal_to_string(5, 3), "0.005");
        assert_eq!(parse_decimal("-123.456", 2), Some(-12345));
        assert_eq!(parse_decimal("7", 2), Some(700));
        assert_eq!(parse_decimal("x", 2), None);
    }
}
