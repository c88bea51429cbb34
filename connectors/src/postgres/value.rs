//! Row values and column types, and how a value travels to the server.
//!
//! A row is one [`PgValue`] per declared [`PgColumn`]. When a row is buffered, each
//! value is fitted to its column's [`PgType`] (an `Int` widens into a `BigInt`
//! column, a `BigInt` that fits goes into an `Integer` column, numbers become
//! decimal text for a `Numeric` column); a value that does not fit fails the job
//! with the column named, before anything is sent. The insert statement casts
//! every placeholder to the declared type, so the server converts on assignment
//! when an existing table's column type differs (e.g. `varchar` for `Text`).

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// One value of a row written to PostgreSQL.
#[derive(Clone, Debug, PartialEq)]
pub enum PgValue {
    /// SQL `NULL`, valid for any column.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `integer` (also goes into `bigint`, `double precision` and `numeric` columns).
    Int(i32),
    /// `bigint` (also into `integer` when it fits, and into `numeric`).
    BigInt(i64),
    /// `double precision` (also into `numeric`).
    Double(f64),
    /// `numeric`, as decimal text (`"-12.50"`, `"1e-3"`, `"NaN"`); the server parses it.
    Numeric(String),
    /// `text`.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// Milliseconds since the Unix epoch, stored as `timestamp(3) without time zone`
    /// holding the UTC time.
    Timestamp(i64),
}

impl PgValue {
    fn kind(&self) -> &'static str {
        match self {
            PgValue::Null => "null",
            PgValue::Bool(_) => "bool",
            PgValue::Int(_) => "int",
            PgValue::BigInt(_) => "bigint",
            PgValue::Double(_) => "double",
            PgValue::Numeric(_) => "numeric",
            PgValue::Text(_) => "text",
            PgValue::Bytes(_) => "bytes",
            PgValue::Timestamp(_) => "timestamp",
        }
    }
}

impl From<bool> for PgValue {
    fn from(v: bool) -> Self {
        PgValue::Bool(v)
    }
}

impl From<i32> for PgValue {
    fn from(v: i32) -> Self {
        PgValue::Int(v)
    }
}

impl From<i64> for PgValue {
    fn from(v: i64) -> Self {
        PgValue::BigInt(v)
    }
}

impl From<f64> for PgValue {
    fn from(v: f64) -> Self {
        PgValue::Double(v)
    }
}

impl From<String> for PgValue {
    fn from(v: String) -> Self {
        PgValue::Text(v)
    }
}

impl From<&str> for PgValue {
    fn from(v: &str) -> Self {
        PgValue::Text(v.to_string())
    }
}

impl From<Vec<u8>> for PgValue {
    fn from(v: Vec<u8>) -> Self {
        PgValue::Bytes(v)
    }
}

impl<V: Into<PgValue>> From<Option<V>> for PgValue {
    fn from(v: Option<V>) -> Self {
        v.map_or(PgValue::Null, Into::into)
    }
}

/// The SQL type of a column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PgType {
    /// `boolean`
    Boolean,
    /// `integer` (32 bits)
    Integer,
    /// `bigint` (64 bits)
    BigInt,
    /// `double precision`
    Double,
    /// `numeric` (arbitrary precision decimal)
    Numeric,
    /// `text`
    Text,
    /// `bytea`
    Bytea,
    /// `timestamp(3) without time zone`, holding UTC
    Timestamp,
}

impl PgType {
    /// The type as written in `CREATE TABLE`.
    pub fn sql(self) -> &'static str {
        match self {
            PgType::Boolean => "boolean",
            PgType::Integer => "integer",
            PgType::BigInt => "bigint",
            PgType::Double => "double precision",
            PgType::Numeric => "numeric",
            PgType::Text => "text",
            PgType::Bytea => "bytea",
            PgType::Timestamp => "timestamp(3) without time zone",
        }
    }

    /// The cast after a placeholder (`$1::int8`): it fixes the parameter's type to
    /// the one [`PgValue`]'s encoding writes. Numeric goes as text (the client has
    /// no decimal type), converted by the server.
    pub(crate) fn placeholder_cast(self) -> &'static str {
        match self {
            PgType::Boolean => "::boolean",
            PgType::Integer => "::int4",
            PgType::BigInt => "::int8",
            PgType::Double => "::float8",
            PgType::Numeric => "::text::numeric",
            PgType::Text => "::text",
            PgType::Bytea => "::bytea",
            PgType::Timestamp => "::timestamp",
        }
    }

    /// `value` in the variant this column type sends, or why it does not fit.
    pub(crate) fn fit(self, value: PgValue) -> Result<PgValue, String> {
        use PgValue as V;
        let kind = value.kind();
        let fitted = match (self, value) {
            (_, V::Null) => Some(V::Null),
            (PgType::Boolean, v @ V::Bool(_)) => Some(v),
            (PgType::Integer, v @ V::Int(_)) => Some(v),
            (PgType::Integer, V::BigInt(i)) => match i32::try_from(i) {
                Ok(i) => Some(V::Int(i)),
                Err(_) => return Err(format!("{i} does not fit an integer column")),
            },
            (PgType::BigInt, V::Int(i)) => Some(V::BigInt(i64::from(i))),
            (PgType::BigInt, v @ V::BigInt(_)) => Some(v),
            (PgType::Double, V::Int(i)) => Some(V::Double(f64::from(i))),
            (PgType::Double, v @ V::Double(_)) => Some(v),
            (PgType::Numeric, v @ V::Numeric(_)) => Some(v),
            (PgType::Numeric, V::Int(i)) => Some(V::Numeric(i.to_string())),
            (PgType::Numeric, V::BigInt(i)) => Some(V::Numeric(i.to_string())),
            (PgType::Numeric, V::Double(d)) => Some(V::Numeric(decimal_text(d))),
            (PgType::Text, v @ V::Text(_)) => Some(v),
            (PgType::Bytea, v @ V::Bytes(_)) => Some(v),
            (PgType::Timestamp, v @ V::Timestamp(_)) => Some(v),
            _ => None,
        };
        fitted.ok_or_else(|| format!("a {kind} value does not go into a {} column", self.sql()))
    }
}

/// A double as numeric text (the server's spelling for the special values).
fn decimal_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        d.to_string()
    }
}

/// A column of the target table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgColumn {
    /// Column name, quoted in SQL (so case is kept).
    pub name: String,
    /// Its type.
    pub ty: PgType,
}

impl PgColumn {
    /// A column `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: PgType) -> Self {
        PgColumn {
            name: name.into(),
            ty,
        }
    }
}

/// Milliseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// Encodes `value` as `T` would, after checking that `T` fits the parameter type.
fn encode<T: ToSql>(
    value: T,
    what: &str,
    ty: &Type,
    out: &mut BytesMut,
) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
    if !T::accepts(ty) {
        return Err(format!("a {what} value cannot be sent as a {ty} parameter").into());
    }
    value.to_sql(ty, out)
}

/// The binary encoding of each variant. The placeholder casts make the parameter
/// types exactly the declared column types, and `PgType::fit` has already turned
/// each value into its column's variant; the checks here only guard against a bug.
impl ToSql for PgValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            PgValue::Null => Ok(IsNull::Yes),
            PgValue::Bool(v) => encode(*v, "bool", ty, out),
            PgValue::Int(v) => encode(*v, "int", ty, out),
            PgValue::BigInt(v) => encode(*v, "bigint", ty, out),
            PgValue::Double(v) => encode(*v, "double", ty, out),
            PgValue::Numeric(v) => encode(v.as_str(), "numeric", ty, out),
            PgValue::Text(v) => encode(v.as_str(), "text", ty, out),
            PgValue::Bytes(v) => encode(v.as_slice(), "bytes", ty, out),
            PgValue::Timestamp(ms) => {
                if *ty != Type::TIMESTAMP && *ty != Type::TIMESTAMPTZ {
                    return Err(
                        format!("a timestamp value cannot be sent as a {ty} parameter").into(),
                    );
                }
                // The binary form: microseconds since 2000-01-01 (the server checks the range).
                let micros = ms
                    .checked_sub(PG_EPOCH_MS)
                    .and_then(|m| m.checked_mul(1000))
                    .ok_or_else(|| format!("timestamp {ms} ms is out of range"))?;
                out.put_i64(micros);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql` (one Rust type covers every column type).
        true
    }

    to_sql_checked!();
}

/// A canonical byte string of `values`: equal keys (as the server compares the
/// fitted values) give equal bytes, and the length prefixes keep
/// `("ab", "c")` apart from `("a", "bc")`.
pub(crate) fn key_bytes<'a>(values: impl IntoIterator<Item = &'a PgValue>) -> Vec<u8> {
    let mut out = Vec::new();
    let var = |tag: u8, bytes: &[u8], out: &mut Vec<u8>| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    for v in values {
        match v {
            PgValue::Null => out.push(0),
            PgValue::Bool(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            PgValue::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i64::from(*i).to_be_bytes());
            }
            PgValue::BigInt(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_be_bytes());
            }
            PgValue::Double(d) => {
                out.push(3);
                // -0.0 = 0.0 for the server too.
                let d = if *d == 0.0 { 0.0 } else { *d };
                out.extend_from_slice(&d.to_bits().to_be_bytes());
            }
            PgValue::Numeric(s) => var(4, s.as_bytes(), &mut out),
            PgValue::Text(s) => var(5, s.as_bytes(), &mut out),
            PgValue::Bytes(b) => var(6, b, &mut out),
            PgValue::Timestamp(t) => {
                out.push(7);
                out.extend_from_slice(&t.to_be_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fit_wider_columns_and_fail_with_the_column_type_named() {
        assert_eq!(PgType::BigInt.fit(PgValue::Int(7)), Ok(PgValue::BigInt(7)));
        assert_eq!(PgType::Integer.fit(PgValue::BigInt(7)), Ok(PgValue::Int(7)));
        assert!(PgType::Integer.fit(PgValue::BigInt(1 << 40)).is_err());
        assert_eq!(
            PgType::Numeric.fit(PgValue::Double(0.5)),
            Ok(PgValue::Numeric("0.5".into()))
        );
        assert_eq!(
            PgType::Numeric.fit(PgValue::Double(f64::NEG_INFINITY)),
            Ok(PgValue::Numeric("-Infinity".into()))
        );
        assert_eq!(PgType::Text.fit(PgValue::Null), Ok(PgValue::Null));
        let err = PgType::Text.fit(PgValue::Int(1)).unwrap_err();
        assert!(
            err.contains("int value") && err.contains("text column"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_are_sent_as_microseconds_since_2000() {
        let mut out = BytesMut::new();
        let r = PgValue::Timestamp(PG_EPOCH_MS + 1).to_sql(&Type::TIMESTAMP, &mut out);
        assert!(matches!(r, Ok(IsNull::No)));
        assert_eq!(&out[..], &1000i64.to_be_bytes());
        assert!(
            PgValue::Timestamp(i64::MAX)
                .to_sql(&Type::TIMESTAMP, &mut out)
                .is_err()
        );
        assert!(PgValue::Timestamp(0).to_sql(&Type::INT8, &mut out).is_err());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_not_miswritten() {
        let mut out = BytesMut::new();
        assert!(PgValue::Int(1).to_sql(&Type::INT8, &mut out).is_err());
        assert!(
            PgValue::Text("x".into())
                .to_sql(&Type::BYTEA, &mut out)
                .is_err()
        );
        assert!(matches!(
            PgValue::Null.to_sql(&Type::INT8, &mut out),
            Ok(IsNull::Yes)
        ));
    }

    #[test]
    fn key_bytes_separate_fields_and_unify_integer_widths() {
        let a = [PgValue::Text("ab".into()), PgValue::Text("c".into())];
        let b = [PgValue::Text("a".into()), PgValue::Text("bc".into())];
        assert_ne!(key_bytes(&a), key_bytes(&b));
        assert_eq!(
            key_bytes(&[PgValue::Int(3)]),
            key_bytes(&[PgValue::BigInt(3)])
        );
        assert_eq!(
            key_bytes(&[PgValue::Double(-0.0)]),
            key_bytes(&[PgValue::Double(0.0)])
        );
    }
}
