//! How `strom consume` prints a record: the value alone, `key<TAB>value`, a
//! kcat-style format string (`-f`), or one JSON object per line (`--json`).

use std::io::Write;

use anyhow::bail;
use kafka_wire::client::consumer::ConsumerRecord;
use kafka_wire::records::TimestampType;
use serde_json::{Map, Value, json};

/// One piece of a parsed `-f` format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLength,
    Value,
    ValueLength,
    Timestamp,
    Headers,
}

/// The output of `strom consume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RecordOutput {
    /// The value, then a newline.
    Value,
    /// `key<TAB>value`, then a newline.
    KeyValue,
    /// A format string; no newline is added (write `\n`).
    Format(Vec<Piece>),
    /// One JSON object per line.
    Json,
}

impl RecordOutput {
    /// Parses a kcat-style format string: `%t` topic, `%p` partition, `%o` offset,
    /// `%k` key, `%K` key length, `%s` value, `%S` value length, `%T` timestamp (ms),
    /// `%h` headers (`k=v,k=v`), `%%`; escapes `\n`, `\t`, `\r`, `\\`.
    pub(super) fn format(spec: &str) -> anyhow::Result<RecordOutput> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = spec.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('K') => Piece::KeyLength,
                    Some('s') => Piece::Value,
                    Some('S') => Piece::ValueLength,
                    Some('T') => Piece::Timestamp,
                    Some('h') => Piece::Headers,
                    Some('%') => {
                        text.push(b'%');
                        continue;
                    }
                    Some(other) => bail!(
                        "unknown format token %{other} in {spec:?} (known: %t %p %o %k %K %s %S %T %h %%)"
                    ),
                    None => bail!("format {spec:?} ends with a lone %"),
                },
                '\\' => {
                    let escaped = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('\\') => '\\',
                        Some(other) => bail!("unknown escape \\{other} in {spec:?}"),
                        None => bail!("format {spec:?} ends with a lone \\"),
                    };
                    let mut buf = [0; 4];
                    text.extend_from_slice(escaped.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
                c => {
                    let mut buf = [0; 4];
                    text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(RecordOutput::Format(pieces))
    }

    /// Writes one record.
    pub(super) fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        let bytes = |b: &Option<bytes::Bytes>| b.as_deref().unwrap_or_default().to_vec();
        match self {
            RecordOutput::Value => {
                out.write_all(&bytes(&r.value))?;
                out.write_all(b"\n")
            }
            RecordOutput::KeyValue => {
                out.write_all(&bytes(&r.key))?;
                out.write_all(b"\t")?;
                out.write_all(&bytes(&r.value))?;
                out.write_all(b"\n")
            }
            RecordOutput::Format(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.write_all(t)?,
                        Piece::Topic => out.write_all(r.topic.as_bytes())?,
                        Piece::Partition => write!(out, "{}", r.partition)?,
                        Piece::Offset => write!(out, "{}", r.offset)?,
                        Piece::Key => out.write_all(&bytes(&r.key))?,
                        Piece::KeyLength => write!(out, "{}", length(&r.key))?,
                        Piece::Value => out.write_all(&bytes(&r.value))?,
                        Piece::ValueLength => write!(out, "{}", length(&r.value))?,
                        Piece::Timestamp => write!(out, "{}", r.timestamp)?,
                        Piece::Headers => {
                            for (i, h) in r.headers.iter().enumerate() {
                                if i > 0 {
                                    out.write_all(b",")?;
                                }
                                out.write_all(&h.key)?;
                                out.write_all(b"=")?;
                                out.write_all(h.value.as_deref().unwrap_or_default())?;
                            }
                        }
                    }
                }
                Ok(())
            }
            RecordOutput::Json => {
                serde_json::to_writer(&mut *out, &json_record(r))?;
                out.write_all(b"\n")
            }
        }
    }
}

/// kcat prints -1 for a null key or value.
fn length(b: &Option<bytes::Bytes>) -> i64 {
    b.as_ref().map_or(-1, |b| b.len() as i64)
}

/// A record as one JSON object. Keys, values and header values are strings when
/// they are UTF-8 and null when null; other bytes are base64 with a
/// `*_encoding: "base64"` field beside them, so nothing is dropped or mangled.
fn json_record(r: &ConsumerRecord) -> Value {
    let mut o = Map::new();
    o.insert("topic".into(), json!(&*r.topic));
    o.insert("partition".into(), json!(r.partition));
    o.insert("offset".into(), json!(r.offset));
    o.insert("timestamp".into(), json!(r.timestamp));
    let timestamp_type = match r.timestamp_type {
        TimestampType::CreateTime => "create_time",
        TimestampType::LogAppendTime => "log_append_time",
    };
    o.insert("timestamp_type".into(), json!(timestamp_type));
    put_bytes(&mut o, "key", r.key.as_deref());
    put_bytes(&mut o, "value", r.value.as_deref());
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|h| {
            let mut ho = Map::new();
            ho.insert("key".into(), json!(String::from_utf8_lossy(&h.key)));
            put_bytes(&mut ho, "value", h.value.as_deref());
            Value::Object(ho)
        })
        .collect();
    o.insert("headers".into(), Value::Array(headers));
    Value::Object(o)
}

fn put_bytes(o: &mut Map<String, Value>, field: &str, bytes: Option<&[u8]>) {
    let value = match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => {
                o.insert(format!("{field}_encoding"), json!("base64"));
                json!(base64(b))
            }
        },
    };
    o.insert(field.into(), value);
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use kafka_wire::records::Header;

    use super::*;

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("clicks"),
            partition: 2,
            offset: 41,
            timestamp: 1_764_770_000_000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"user-7")),
            value: Some(Bytes::from_static(b"{\"url\":\"/a\"}")),
            headers: vec![
                Header {
                    key: "trace".into(),
                    value: Some(Bytes::from_static(b"abc")),
                },
                Header {
                    key: "bin".into(),
                    value: Some(Bytes::from_static(&[0xff, 0x00])),
                },
            ],
            leader_epoch: None,
        }
    }

    fn render(output: &RecordOutput, r: &ConsumerRecord) -> String {
        let mut buf = Vec::new();
        output.write(&mut buf, r).unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[test]
    fn a_format_string_fills_every_token_and_escape() {
        let f = RecordOutput::format("%t/%p@%o %k(%K)=%s(%S) %T [%h] 100%%\\n").unwrap();
        assert_eq!(
            render(&f, &record()),
            "clicks/2@41 user-7(6)={\"url\":\"/a\"}(12) 1764770000000 [trace=abc,bin=\u{fffd}\0] 100%\n"
                .replace('\u{fffd}', &String::from_utf8_lossy(&[0xff]))
        );
    }

    #[test]
    fn null_key_and_value_print_empty_with_length_minus_one() {
        let mut r = record();
        r.key = None;
        r.value = None;
        let f = RecordOutput::format("[%k|%K|%s|%S]").unwrap();
        assert_eq!(render(&f, &r), "[|-1||-1]");
    }

    #[test]
    fn unknown_tokens_and_dangling_escapes_are_refused() {
        assert!(
            RecordOutput::format("%x")
                .unwrap_err()
                .to_string()
                .contains("%x")
        );
        assert!(RecordOutput::format("abc%").is_err());
        assert!(RecordOutput::format("abc\\").is_err());
        assert!(RecordOutput::format("\\q").is_err());
    }

    #[test]
    fn json_keeps_every_field_and_marks_binary_as_base64() {
        let line = render(&RecordOutput::Json, &record());
        assert!(line.ends_with('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["topic"], "clicks");
        assert_eq!(v["partition"], 2);
        assert_eq!(v["offset"], 41);
        assert_eq!(v["timestamp"], 1_764_770_000_000_i64);
        assert_eq!(v["timestamp_type"], "create_time");
        assert_eq!(v["key"], "user-7");
        assert_eq!(v["value"], "{\"url\":\"/a\"}");
        assert_eq!(v["headers"][0]["key"], "trace");
        assert_eq!(v["headers"][0]["value"], "abc");
        assert_eq!(v["headers"][1]["value"], "/wA=");
        assert_eq!(v["headers"][1]["value_encoding"], "base64");
        assert!(v.get("value_encoding").is_none());
    }

    #[test]
    fn json_nulls_stay_null() {
        let mut r = record();
        r.key = None;
        r.value = None;
        let v: Value = serde_json::from_str(&render(&RecordOutput::Json, &r)).unwrap();
        assert!(v["key"].is_null());
        assert!(v["value"].is_null());
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
