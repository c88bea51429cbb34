//! JSON rows decoded straight from the bytes: each key is matched to its column
//! as it is read and each value converted to the column's type in place, so no
//! document is built; fields of no column are skipped (still checked as JSON).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::sync::Arc;

use crate::time::parse_timestamp;
use crate::types::{DataType, Row, Schema, Value, parse_decimal};

/// Decodes one JSON object into a row of `schema`'s columns; a missing field is
/// NULL, and so is a column `read` leaves out (its value skipped). The error is
/// the JSON syntax error, or `field NAME: expected TYPE, got VALUE` for a value
/// that does not fit its column.
pub(super) fn decode_row(
    bytes: &[u8],
    schema: &Schema,
    read: Option<&[bool]>,
) -> Result<Row, String> {
    let mut row = vec![Value::Null; schema.len()];
    let mut mismatch = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = de
        .deserialize_map(RowVisitor {
            schema,
            read,
            row: &mut row,
            mismatch: &mut mismatch,
        })
        .and_then(|()| de.end());
    match (read, mismatch) {
        (_, Some(m)) => Err(m),
        (Err(e), None) => Err(e.to_string()),
        (Ok(()), None) => Ok(row),
    }
}

struct RowVisitor<'a> {
    schema: &'a Schema,
    read: Option<&'a [bool]>,
    row: &'a mut Row,
    /// Set, with the field's name, when a value does not fit its column; the
    /// read is then stopped with an empty serde error.
    mismatch: &'a mut Option<String>,
}

impl<'de> Visitor<'de> for RowVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut next = 0;
        while let Some(column) = map.next_key_seed(ColumnOf(self.schema, next))? {
            next = column.map_or(0, |i| i + 1);
            let column = column.filter(|&i| self.read.is_none_or(|r| r.get(i) != Some(&false)));
            let Some(i) = column else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let ty = self.schema.fields[i].ty;
            match map.next_value_seed(ValueOf(ty))? {
                Ok(v) => self.row[i] = v,
                Err(got) => {
                    *self.mismatch = Some(format!(
                        "field {}: expected {ty}, got {got}",
                        self.schema.fields[i].name
                    ));
                    return Err(de::Error::custom(""));
                }
            }
        }
        Ok(())
    }
}

/// A key: the index of the column of that name, if any; the column at the
/// index given is tried first (objects usually list their fields in column order).
struct ColumnOf<'a>(&'a Schema, usize);

impl<'de> DeserializeSeed<'de> for ColumnOf<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ColumnOf<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        if self.0.fields.get(self.1).is_some_and(|f| f.name == key) {
            return Ok(Some(self.1));
        }
        Ok(self.0.fields.iter().position(|f| f.name == key))
    }
}

/// A value of a column of this type; `Err` holds the JSON text of a value that
/// does not fit.
struct ValueOf(DataType);

impl<'de> DeserializeSeed<'de> for ValueOf {
    type Value = Result<Value, String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// An integer (its digits and nearest double) in a column that is not an
/// integer column.
fn integer(ty: DataType, digits: String, x: f64) -> Result<Value, String> {
    match ty {
        DataType::Double => Ok(Value::Double(x)),
        DataType::Decimal(_, sc) => parse_decimal(&digits, sc)
            .map(|d| Value::decimal(d, sc))
            .ok_or(digits),
        DataType::String => Ok(Value::str(&digits)),
        _ => Err(digits),
    }
}

fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl<'de> Visitor<'de> for ValueOf {
    type Value = Result<Value, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON value for a {} column", self.0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(match self.0 {
            DataType::Boolean => Ok(Value::Bool(b)),
            DataType::String => Ok(Value::str(if b { "true" } else { "false" })),
            _ => Err(b.to_string()),
        })
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            DataType::Int => i32::try_from(n).map(Value::Int).map_err(|_| n.to_string()),
            DataType::BigInt => Ok(Value::BigInt(n)),
            DataType::Timestamp => Ok(Value::Timestamp(n)),
            _ => integer(self.0, n.to_string(), n as f64),
        })
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        match i64::try_from(n) {
            Ok(n) => self.visit_i64(n),
            Err(_) => Ok(integer(self.0, n.to_string(), n as f64)),
        }
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Self::Value, E> {
        // As serde_json writes it (`1e+20`) for text; positional digits for a DECIMAL.
        let json =
            || serde_json::Number::from_f64(x).map_or_else(|| x.to_string(), |n| n.to_string());
        Ok(match self.0 {
            DataType::Double => Ok(Value::Double(x)),
            DataType::Decimal(_, sc) => parse_decimal(&format!("{x}"), sc)
                .map(|d| Value::decimal(d, sc))
                .ok_or_else(json),
            DataType::String => Ok(Value::str(&json())),
            _ => Err(json()),
        })
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        let parsed = match self.0 {
            DataType::String => Some(Value::str(s)),
            DataType::Boolean => match s {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            DataType::Int => s.trim().parse().ok().map(Value::Int),
            DataType::BigInt => s.trim().parse().ok().map(Value::BigInt),
            DataType::Double => s.trim().parse().ok().map(Value::Double),
            DataType::Decimal(_, sc) => parse_decimal(s, sc).map(|d| Value::decimal(d, sc)),
            DataType::Bytes => Some(Value::Bytes(Arc::from(s.as_bytes()))),
            DataType::Timestamp => parse_timestamp(s).map(Value::Timestamp),
            DataType::Interval | DataType::Null => None,
        };
        Ok(parsed.ok_or_else(|| quoted(s)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err("an object".into()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("an array".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Field;
    use proptest::prelude::*;
    use serde_json::Value as J;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("b", DataType::Boolean),
            Field::new("i", DataType::Int),
            Field::new("l", DataType::BigInt),
            Field::new("d", DataType::Double),
            Field::new("m", DataType::Decimal(10, 2)),
            Field::new("s", DataType::String),
            Field::new("y", DataType::Bytes),
            Field::new("t", DataType::Timestamp),
        ])
    }

    /// The conversions, written over a parsed document: the oracle.
    fn reference(bytes: &[u8], schema: &Schema) -> Option<Row> {
        let J::Object(obj) = serde_json::from_slice::<J>(bytes).ok()? else {
            return None;
        };
        let mut row = Vec::new();
        for f in &schema.fields {
            let v = obj.get(&f.name).unwrap_or(&J::Null);
            row.push(match (v, f.ty) {
                (J::Null, _) => Value::Null,
                (J::Bool(b), DataType::Boolean) => Value::Bool(*b),
                (J::Bool(b), DataType::String) => Value::str(&b.to_string()),
                (J::Number(n), DataType::Int) => Value::Int(i32::try_from(n.as_i64()?).ok()?),
                (J::Number(n), DataType::BigInt) => Value::BigInt(n.as_i64()?),
                (J::Number(n), DataType::Timestamp) => Value::Timestamp(n.as_i64()?),
                (J::Number(n), DataType::Double) => Value::Double(n.as_f64()?),
                (J::Number(n), DataType::Decimal(_, sc)) => {
                    let text = match n.as_f64() {
                        Some(x) if !n.is_i64() && !n.is_u64() => format!("{x}"),
                        _ => n.to_string(),
                    };
                    Value::decimal(parse_decimal(&text, sc)?, sc)
                }
                (J::Number(n), DataType::String) => Value::str(&n.to_string()),
                (J::String(s), ty) => {
                    let one = format!("{{\"v\":{}}}", J::String(s.clone()));
                    decode_row(
                        one.as_bytes(),
                        &Schema::new(vec![Field::new("v", ty)]),
                        None,
                    )
                    .ok()?
                    .pop()?
                }
                _ => return None,
            });
        }
        Some(row)
    }

    #[test]
    fn values_convert_to_their_columns() {
        let s = schema();
        let row = decode_row(
            br#"{"b":"true","i":"7","l":-9007199254740993,"d":2,"m":1.5,"s":12,"y":"ab","t":"2023-11-14 22:13:20.123","x":{"b":[1,{"i":2}]}}"#,
            &s,
            None,
        )
        .expect("decodes");
        assert_eq!(
            row,
            vec![
                Value::Bool(true),
                Value::Int(7),
                Value::BigInt(-9_007_199_254_740_993),
                Value::Double(2.0),
                Value::decimal(150, 2),
                Value::str("12"),
                Value::Bytes(Arc::from(&b"ab"[..])),
                Value::Timestamp(1_700_000_000_123),
            ]
        );
        let row = decode_row(
            br#"{"m":1e3,"s":1e20,"l":null,"t":5,"\u0069":3,"i":4}"#,
            &s,
            None,
        )
        .expect("decodes");
        assert_eq!(row[4], Value::decimal(100_000, 2));
        assert_eq!(row[5], Value::str("1e+20"));
        assert_eq!(row[2], Value::Null);
        assert_eq!(row[7], Value::Timestamp(5));
        assert_eq!(
            row[1],
            Value::Int(4),
            "an escaped key names its column; the last one wins"
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_field() {
        let s = schema();
        let err = |json: &str| decode_row(json.as_bytes(), &s, None).expect_err(json);
        assert_eq!(err(r#"{"i":"x"}"#), "field i: expected INT, got \"x\"");
        assert_eq!(
            err(r#"{"i":3000000000}"#),
            "field i: expected INT, got 3000000000"
        );
        assert_eq!(err(r#"{"l":1.5}"#), "field l: expected BIGINT, got 1.5");
        assert_eq!(
            err(r#"{"l":18446744073709551615}"#),
            "field l: expected BIGINT, got 18446744073709551615"
        );
        assert_eq!(
            err(r#"{"b":{"x":1}}"#),
            "field b: expected BOOLEAN, got an object"
        );
        assert_eq!(
            err(r#"{"s":[1]}"#),
            "field s: expected STRING, got an array"
        );
        assert!(err("[1]").contains("expected a JSON object"));
        assert!(err(r#"{"i":1} x"#).contains("trailing characters"));
        assert!(err(r#"{"i":1"#).contains("EOF"));
        assert!(
            err(r#"{"x":[1,}"#).contains("expected value"),
            "skipped fields are still checked"
        );
    }

    #[test]
    fn columns_left_out_read_as_null_and_are_not_checked() {
        let s = schema();
        let read = [false, true, false, false, false, true, false, false];
        let row = decode_row(
            br#"{"b":"nope","i":7,"s":"x","t":{"a":[1]}}"#,
            &s,
            Some(&read),
        )
        .expect("decodes");
        assert_eq!(row[1], Value::Int(7));
        assert_eq!(row[5], Value::str("x"));
        assert!(row[0].is_null() && row[7].is_null());
        assert!(
            decode_row(br#"{"b":[1,}"#, &s, Some(&read)).is_err(),
            "syntax still checked"
        );
    }

    fn json_value() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            any::<i64>().prop_map(J::from),
            any::<u64>().prop_map(J::from),
            (-1e12f64..1e12).prop_map(J::from),
            "[0-9 .tfrue-]{0,12}".prop_map(J::String),
            Just(J::String("2023-11-14 22:13:20.5".into())),
            ".{0,8}".prop_map(J::String),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(J::Array),
                prop::collection::vec(("[a-z]{1,2}", inner), 0..3)
                    .prop_map(|kv| J::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn decoding_agrees_with_the_document_oracle(
            // Unique keys: which of two equal keys counts is not JSON's to say.
            fields in prop::collection::btree_map("[bildmsytx]", json_value(), 0..10)
        ) {
            let mut text = String::from("{");
            for (n, (k, v)) in fields.iter().enumerate() {
                if n > 0 {
                    text.push(',');
                }
                text.push_str(&format!("{}:{v}", J::String(k.clone())));
            }
            text.push('}');
            let s = schema();
            prop_assert_eq!(decode_row(text.as_bytes(), &s, None).ok(), reference(text.as_bytes(), &s));
        }

        #[test]
        fn any_bytes_give_a_row_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes, &schema(), None);
        }
    }
}
