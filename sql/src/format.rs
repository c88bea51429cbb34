//! Row formats: how a table's rows are stored in a record's bytes (Kafka values
//! and keys, file lines). JSON objects by column name, CSV in column order, and
//! `raw` text (one STRING column).
//!
//! Decoding checks every value against its column type; a value that does not fit,
//! or a NULL in the event-time column, is a bad record (the table's bad-record
//! policy decides), never a silent NULL. Missing JSON fields read as NULL, extra
//! fields are ignored (Flink's defaults).

use std::sync::Arc;

use bytes::Bytes;
use connectors::format::{Format, FormatError};
use serde_json::Value as J;

mod json;

use crate::time::{format_timestamp, parse_timestamp};
use crate::types::{DataType, Row, Schema, Value, parse_decimal};

/// How rows are encoded.
#[derive(Clone, Debug)]
pub enum RowFormat {
    /// One JSON object per record.
    Json {
        /// The columns, by name.
        schema: Arc<Schema>,
        /// A column that must not be NULL (the event time).
        required: Option<usize>,
    },
    /// One CSV line per record.
    Csv {
        /// The columns, in order.
        schema: Arc<Schema>,
        /// A column that must not be NULL (the event time).
        required: Option<usize>,
        /// Field delimiter.
        delimiter: char,
        /// Quote character.
        quote: char,
    },
    /// The bytes as one STRING column.
    Raw,
}

fn bad(format: &'static str, message: String) -> FormatError {
    FormatError { format, message }
}

/// Converts CSV text to a column value (empty text is NULL).
pub fn from_text(s: &str, ty: DataType) -> Result<Value, String> {
    if s.is_empty() && ty != DataType::String {
        return Ok(Value::Null);
    }
    let mismatch = || format!("expected {ty}, got {s:?}");
    Ok(match ty {
        DataType::Boolean => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(mismatch()),
        },
        DataType::Int => Value::Int(s.trim().parse().map_err(|_| mismatch())?),
        DataType::BigInt => Value::BigInt(s.trim().parse().map_err(|_| mismatch())?),
        DataType::Double => Value::Double(s.trim().parse().map_err(|_| mismatch())?),
        DataType::Decimal(_, sc) => Value::decimal(parse_decimal(s, sc).ok_or_else(mismatch)?, sc),
        DataType::String => Value::str(s),
        DataType::Bytes => Value::Bytes(Arc::from(s.as_bytes())),
        DataType::Timestamp => Value::Timestamp(parse_timestamp(s).ok_or_else(mismatch)?),
        DataType::Interval | DataType::Null => return Err(mismatch()),
    })
}

/// Splits one CSV line (RFC 4180 quoting with doubled quotes).
pub fn split_csv(line: &str, delimiter: char, quote: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == quote {
                if chars.peek() == Some(&quote) {
                    cur.push(quote);
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == quote && cur.is_empty() && !was_quoted {
            quoted = true;
            was_quoted = true;
        } else if c == delimiter {
            out.push(std::mem::take(&mut cur));
            was_quoted = false;
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

fn csv_field(v: &Value, delimiter: char, quote: char) -> String {
    let text = match v {
        Value::Null => return String::new(),
        Value::Timestamp(ms) => format_timestamp(*ms),
        other => other.to_text(),
    };
    if text.contains([delimiter, quote, '\n', '\r']) {
        let q = quote.to_string();
        format!("{quote}{}{quote}", text.replace(quote, &format!("{q}{q}")))
    } else {
        text
    }
}

fn check_required(
    row: &Row,
    required: Option<usize>,
    schema: &Schema,
    format: &'static str,
) -> Result<(), FormatError> {
    if let Some(i) = required {
        if row.get(i).is_none_or(Value::is_null) {
            return Err(bad(
                format,
                format!(
                    "the event-time column {} is NULL or missing",
                    schema.fields[i].name
                ),
            ));
        }
    }
    Ok(())
}

/// The JSON object of `row` under `schema`'s column names.
pub fn row_to_json(schema: &Schema, row: &[Value]) -> J {
    let mut m = serde_json::Map::new();
    for (f, v) in schema.fields.iter().zip(row) {
        m.insert(f.name.clone(), v.to_json());
    }
    J::Object(m)
}

/// The JSON object of `row` as text, columns in schema order, decimals exact.
pub fn row_to_json_text(schema: &Schema, row: &[Value]) -> String {
    let mut out = String::from("{");
    for (i, (f, v)) in schema.fields.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&J::String(f.name.clone()).to_string());
        out.push(':');
        match v {
            Value::Decimal(..) => out.push_str(&v.to_string()),
            other => out.push_str(&other.to_json().to_string()),
        }
    }
    out.push('}');
    out
}

/// A source table's rows: the physical columns decoded by a [`RowFormat`], then
/// the computed columns evaluated in place; a NULL event time or a failing
/// computed column makes the record bad.
#[derive(Clone)]
pub struct TableRows {
    /// Decodes the physical columns.
    pub physical: RowFormat,
    /// Computed columns: position in the row, and expression over the physical row.
    pub computed: Arc<Vec<(usize, crate::expr::EvalFn)>>,
    /// The event-time column, which must not be NULL.
    pub required: Option<(usize, String)>,
    /// The physical columns the queries read (`None`: all); the others are
    /// skipped and read as NULL (values not checked against their type; JSON
    /// syntax still is).
    pub read: Option<Arc<[bool]>>,
    /// With `'value.fields-include' = 'EXCEPT_KEY'`: the key columns come from
    /// the record key and `physical` decodes only the other columns.
    pub key: Option<Arc<KeyValueSplit>>,
}

/// Which physical columns a Kafka record's key holds and which its value holds
/// (`'value.fields-include' = 'EXCEPT_KEY'`).
#[derive(Clone, Debug)]
pub struct KeyValueSplit {
    /// The key columns, in `key.fields` order.
    pub key_columns: Vec<usize>,
    /// Decodes (and encodes) the key columns.
    pub key_format: RowFormat,
    /// The other physical columns, in table order.
    pub value_columns: Vec<usize>,
}

impl KeyValueSplit {
    /// The physical row of a record: key columns from `key`, the others from
    /// `value` (already decoded).
    fn merge(&self, key: Option<&[u8]>, value: Row) -> Result<Row, FormatError> {
        let key = self.key_format.deserialize(key)?;
        let mut row = vec![Value::Null; self.key_columns.len() + self.value_columns.len()];
        for (&at, v) in self.key_columns.iter().zip(key) {
            if let Some(slot) = row.get_mut(at) {
                *slot = v;
            }
        }
        for (&at, v) in self.value_columns.iter().zip(value) {
            if let Some(slot) = row.get_mut(at) {
                *slot = v;
            }
        }
        Ok(row)
    }
}

impl std::fmt::Debug for TableRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} with {} computed column(s)",
            self.physical,
            self.computed.len()
        )
    }
}

impl TableRows {
    /// Decodes a Kafka record: its value, and its key when the table reads key
    /// columns from it (`EXCEPT_KEY`).
    pub fn decode_record(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Row, FormatError> {
        let physical = match &self.key {
            Some(split) => split.merge(key, self.physical.deserialize(value)?)?,
            None => self.physical.decode(value, self.read.as_deref())?,
        };
        self.complete(physical)
    }

    /// Adds the computed columns to a physical row and checks the event time.
    fn complete(&self, mut row: Row) -> Result<Row, FormatError> {
        if !self.computed.is_empty() {
            let physical = row.clone();
            for (at, eval) in self.computed.iter() {
                let v = eval(&physical).map_err(|e| bad("computed column", e.0))?;
                row.insert((*at).min(row.len()), v);
            }
        }
        if let Some((i, name)) = &self.required {
            if row.get(*i).is_none_or(Value::is_null) {
                return Err(bad(
                    "row",
                    format!("the event-time column {name} is NULL or missing"),
                ));
            }
        }
        Ok(row)
    }
}

impl Format<Row> for TableRows {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, FormatError> {
        self.decode_record(None, bytes)
    }

    fn serialize(&self, row: &Row) -> Result<Option<Bytes>, FormatError> {
        self.physical.serialize(row)
    }
}

impl RowFormat {
    /// Decodes a row; with `read`, only the columns marked in it (the others
    /// are NULL).
    fn decode(&self, bytes: Option<&[u8]>, read: Option<&[bool]>) -> Result<Row, FormatError> {
        match self {
            RowFormat::Raw => {
                let b = bytes.unwrap_or_default();
                let s = std::str::from_utf8(b).map_err(|e| bad("raw", e.to_string()))?;
                Ok(vec![Value::str(s)])
            }
            RowFormat::Json { schema, required } => {
                let b = bytes.ok_or_else(|| bad("json", "null value".into()))?;
                let row = json::decode_row(b, schema, read).map_err(|m| bad("json", m))?;
                check_required(&row, *required, schema, "json")?;
                Ok(row)
            }
            RowFormat::Csv {
                schema,
                required,
                delimiter,
                quote,
            } => {
                let b = bytes.unwrap_or_default();
                let line = std::str::from_utf8(b).map_err(|e| bad("csv", e.to_string()))?;
                let line = line.trim_end_matches(['\r', '\n']);
                let parts = split_csv(line, *delimiter, *quote).map_err(|m| bad("csv", m))?;
                if parts.len() != schema.len() {
                    return Err(bad(
                        "csv",
                        format!(
                            "{} fields, the table has {} columns",
                            parts.len(),
                            schema.len()
                        ),
                    ));
                }
                let row = parts
                    .iter()
                    .zip(&schema.fields)
                    .enumerate()
                    .map(|(i, (p, f))| match read.and_then(|r| r.get(i)) {
                        Some(false) => Ok(Value::Null),
                        _ => from_text(p, f.ty)
                            .map_err(|m| bad("csv", format!("column {}: {m}", f.name))),
                    })
                    .collect::<Result<Row, _>>()?;
                check_required(&row, *required, schema, "csv")?;
                Ok(row)
            }
        }
    }
}

impl Format<Row> for RowFormat {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, FormatError> {
        self.decode(bytes, None)
    }

    fn serialize(&self, row: &Row) -> Result<Option<Bytes>, FormatError> {
        Ok(Some(match self {
            RowFormat::Raw => Bytes::from(row.first().map_or_else(String::new, |v| match v {
                Value::Null => String::new(),
                other => other.to_text(),
            })),
            RowFormat::Json { schema, .. } => Bytes::from(row_to_json_text(schema, row)),
            RowFormat::Csv {
                delimiter, quote, ..
            } => Bytes::from(
                row.iter()
                    .map(|v| csv_field(v, *delimiter, *quote))
                    .collect::<Vec<_>>()
                    .join(&delimiter.to_string()),
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Field;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp),
            Field::new("url", DataType::String),
            Field::new("status", DataType::Int),
            Field::new("price", DataType::Decimal(10, 2)),
        ]))
    }

    #[test]
    fn json_rows_decode_by_name_and_encode_back() {
        let f = RowFormat::Json {
            schema: schema(),
            required: Some(0),
        };
        let row = f
            .deserialize(Some(br#"{"ts":"2023-11-14 22:13:20.123","url":"/a","status":503,"price":"1.5","extra":1}"#))
            .expect("decodes");
        assert_eq!(
            row,
            vec![
                Value::Timestamp(1_700_000_000_123),
                Value::str("/a"),
                Value::Int(503),
                Value::decimal(150, 2)
            ]
        );
        let out = f.serialize(&row).expect("encodes").expect("some");
        assert_eq!(
            &out[..],
            br#"{"ts":"2023-11-14 22:13:20.123","url":"/a","status":503,"price":1.50}"#
        );
        let e = f
            .deserialize(Some(br#"{"ts":1,"status":"x"}"#))
            .expect_err("bad");
        assert_eq!(e.to_string(), "json: field status: expected INT, got \"x\"");
        let e = f
            .deserialize(Some(br#"{"url":"/a"}"#))
            .expect_err("no time");
        assert!(
            e.to_string().contains("event-time column ts is NULL"),
            "{e}"
        );
        assert!(f.deserialize(Some(b"[1]")).is_err());
    }

    #[test]
    fn csv_rows_split_quotes_and_round_trip() {
        let f = RowFormat::Csv {
            schema: schema(),
            required: None,
            delimiter: ',',
            quote: '"',
        };
        let row = f
            .deserialize(Some(b"2023-11-14 22:13:20.123,\"/a,\"\"b\"\"\",200,"))
            .expect("decodes");
        assert_eq!(row[1], Value::str("/a,\"b\""));
        assert!(row[3].is_null());
        let out = f.serialize(&row).expect("encodes").expect("some");
        assert_eq!(f.deserialize(Some(&out)).expect("again"), row);
        assert!(f.deserialize(Some(b"1,2")).is_err());
    }
}
