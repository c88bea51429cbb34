//! One record of a v2 batch: its wire layout, encoder and zero-copy decoder.
//!
//! ```text
//!  length varint | attributes i8 | timestampDelta VARLONG | offsetDelta varint
//!  | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//!  | headerCount varint | { keyLength varint | key | valueLength varint (-1 = null) | value }*
//! ```
//!
//! `timestampDelta` is a varlong: as a varint it would corrupt records more than
//! ~24.8 days apart from the batch's base timestamp.

use bytes::{BufMut, Bytes};

use super::header::Header;
use crate::error::{Error, Result};
use crate::protocol::primitives::{
    put_varint, put_varlong, read_i8, read_varint, read_varlong, varint_len, varlong_len,
};

/// A record with its absolute offset and timestamp, as a consumer sees it.
///
/// Decoded keys, values and headers are slices of the fetched (or decompressed)
/// buffer; nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Absolute offset in the partition (`baseOffset + offsetDelta`).
    pub offset: i64,
    /// Timestamp in ms since the epoch (`baseTimestamp + timestampDelta`, or the batch's
    /// `maxTimestamp` for log-append-time batches; -1 for magic 0 messages).
    pub timestamp: i64,
    /// Key; `None` is null.
    pub key: Option<Bytes>,
    /// Value; `None` is null (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Headers in wire order (always empty for magic 0 and 1).
    pub headers: Vec<Header>,
}

/// Length of a nullable byte field's varint prefix plus its bytes.
#[inline]
fn nullable_len(field: Option<&[u8]>) -> Result<usize> {
    Ok(match field {
        None => 1,
        Some(b) => varint_len(len_i32(b.len(), "record field")?) + b.len(),
    })
}

#[inline]
fn len_i32(len: usize, context: &'static str) -> Result<i32> {
    i32::try_from(len).map_err(|_| Error::Encode {
        context,
        message: format!("length {len} exceeds i32::MAX"),
    })
}

#[inline]
fn put_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(b) => {
            // Lengths were checked against i32 by `nullable_len` before writing.
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Appends one v2 record to `out`; returns the bytes written.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<usize> {
    let mut body = 1
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta)
        + nullable_len(key)?
        + nullable_len(value)?
        + varint_len(len_i32(headers.len(), "record header count")?);
    for h in headers {
        body += nullable_len(Some(&h.key))? + nullable_len(h.value.as_deref())?;
    }
    let body_i32 = len_i32(body, "record")?;
    let total = varint_len(body_i32) + body;
    out.reserve(total);
    put_varint(out, body_i32);
    out.put_u8(0);
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_nullable(out, key);
    put_nullable(out, value);
    put_varint(out, headers.len() as i32);
    for h in headers {
        put_nullable(out, Some(&h.key));
        put_nullable(out, h.value.as_deref());
    }
    Ok(total)
}

/// Where absolute offsets and timestamps come from while decoding one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordBase {
    pub base_offset: i64,
    pub base_timestamp: i64,
    /// `Some(maxTimestamp)` for log-append-time batches: every record carries it.
    pub log_append_time: Option<i64>,
}

/// Reads a nullable byte field from `cur`, a view of `data` that ends at index `end`,
/// returning a slice of `data`.
#[inline]
fn read_nullable(
    data: &Bytes,
    cur: &mut &[u8],
    end: usize,
    context: &'static str,
) -> Result<Option<Bytes>> {
    let len = read_varint(cur, context)?;
    if len < 0 {
        if len == -1 {
            return Ok(None);
        }
        return Err(Error::InvalidLength {
            context,
            length: i64::from(len),
        });
    }
    let len = len as usize;
    if len > cur.len() {
        return Err(Error::Truncated {
            context,
            needed: len,
            remaining: cur.len(),
        });
    }
    let start = end - cur.len();
    *cur = &cur[len..];
    Ok(Some(data.slice(start..start + len)))
}

/// Decodes the record at `*pos` of `data` (an uncompressed records region) and
/// advances `*pos` past it. Keys, values and headers are slices of `data`.
pub(crate) fn decode_record(data: &Bytes, pos: &mut usize, base: RecordBase) -> Result<Record> {
    let mut cur: &[u8] = data.get(*pos..).unwrap_or_default();
    let len = read_varint(&mut cur, "record length")?;
    let len = usize::try_from(len).map_err(|_| Error::InvalidLength {
        context: "record length",
        length: i64::from(len),
    })?;
    if len > cur.len() {
        return Err(Error::Truncated {
            context: "record",
            needed: len,
            remaining: cur.len(),
        });
    }
    let body_start = data.len() - cur.len();
    let end = body_start + len;
    let mut cur: &[u8] = &cur[..len];
    let _attributes = read_i8(&mut cur, "record attributes")?;
    let timestamp_delta = read_varlong(&mut cur, "record timestampDelta")?;
    let offset_delta = read_varint(&mut cur, "record offsetDelta")?;
    let key = read_nullable(data, &mut cur, end, "record key")?;
    let value = read_nullable(data, &mut cur, end, "record value")?;
    let header_count = read_varint(&mut cur, "record header count")?;
    let header_count = usize::try_from(header_count).map_err(|_| Error::InvalidLength {
        context: "record header count",
        length: i64::from(header_count),
    })?;
    let mut headers = Vec::new();
    if header_count > 0 {
        // Each header takes at least 2 bytes: never reserve more than the bytes allow.
        if header_count > cur.len() / 2 {
            return Err(Error::InvalidLength {
                context: "record header count",
                length: header_count as i64,
            });
        }
        headers.reserve_exact(header_count);
        for _ in 0..header_count {
            let key = read_nullable(data, &mut cur, end, "record header key")?.ok_or(
                Error::InvalidLength {
                    context: "record header key",
                    length: -1,
                },
            )?;
            let value = read_nullable(data, &mut cur, end, "record header value")?;
            headers.push(Header { key, value });
        }
    }
    if !cur.is_empty() {
        return Err(Error::CorruptRecords(format!(
            "record declares {len} bytes but its fields end {} bytes early",
            cur.len()
        )));
    }
    *pos = end;
    Ok(Record {
        offset: base.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp: base
            .log_append_time
            .unwrap_or_else(|| base.base_timestamp.wrapping_add(timestamp_delta)),
        key,
        value,
        headers,
    })
}
