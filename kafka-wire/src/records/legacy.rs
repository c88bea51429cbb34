//! Old message sets (magic 0 and 1), decoded into the same [`RecordBatch`] and
//! [`Record`] as v2 so that any topic can be read.
//!
//! ```text
//!  offset i64 | messageSize i32 | crc u32 (CRC32 IEEE of magic..end) | magic i8
//!  | attributes i8 (bits 0-2 codec, bit 3 log-append-time in v1)
//!  | timestamp i64 (magic 1 only) | key bytes (i32 length, -1 = null) | value bytes
//! ```
//!
//! A compressed message is a wrapper whose value is a compressed message set of
//! uncompressed inner messages. In magic 1 wrappers the inner offsets are relative
//! (0..n-1) and the wrapper carries the absolute offset of the last one; in magic 0
//! they are absolute. As in Java, each top-level message (plain or wrapper) becomes
//! one batch.

use bytes::Bytes;

use super::batch::{
    BatchAttributes, BatchHeader, LOG_OVERHEAD, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP,
    RecordBatch, TimestampType,
};
use super::record::Record;
use crate::compression::{Compression, lz4};
use crate::error::{Error, Result};

/// Smallest magic 0 message after `messageSize`: crc, magic, attributes, two lengths.
pub const MIN_MESSAGE_SIZE_V0: usize = 14;
/// Smallest magic 1 message after `messageSize` (adds the timestamp).
pub const MIN_MESSAGE_SIZE_V1: usize = 22;

/// One parsed legacy message.
struct Message {
    offset: i64,
    size: i32,
    crc: u32,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

/// Parses the complete message in `entry` (offset through value), checking its CRC32.
fn parse_message(entry: &Bytes, verify_crc: bool) -> Result<Message> {
    if entry.len() < LOG_OVERHEAD + MIN_MESSAGE_SIZE_V0 {
        return Err(Error::Truncated {
            context: "legacy message",
            needed: LOG_OVERHEAD + MIN_MESSAGE_SIZE_V0,
            remaining: entry.len(),
        });
    }
    let b = &entry[..];
    let mut o = [0u8; 8];
    o.copy_from_slice(&b[0..8]);
    let offset = i64::from_be_bytes(o);
    let size = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    let crc = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    let magic = b[16] as i8;
    let attributes = b[17] as i8;
    let min = match magic {
        0 => MIN_MESSAGE_SIZE_V0,
        1 => MIN_MESSAGE_SIZE_V1,
        m => return Err(Error::UnsupportedMagic(m)),
    };
    if usize::try_from(size).ok() != Some(entry.len() - LOG_OVERHEAD) || (size as usize) < min {
        return Err(Error::InvalidLength {
            context: "legacy message size",
            length: i64::from(size),
        });
    }
    if verify_crc {
        let computed = crc32fast::hash(&b[16..]);
        if computed != crc {
            return Err(Error::CrcMismatch {
                base_offset: offset,
                stored: crc,
                computed,
            });
        }
    }
    let mut pos = 18;
    let timestamp = if magic == 1 {
        o.copy_from_slice(&b[18..26]);
        pos = 26;
        i64::from_be_bytes(o)
    } else {
        NO_TIMESTAMP
    };
    let key = bytes_field(entry, &mut pos, "legacy message key")?;
    let value = bytes_field(entry, &mut pos, "legacy message value")?;
    if pos != entry.len() {
        return Err(Error::CorruptRecords(format!(
            "legacy message at offset {offset} has {} trailing bytes",
            entry.len() - pos
        )));
    }
    Ok(Message {
        offset,
        size,
        crc,
        magic,
        attributes,
        timestamp,
        key,
        value,
    })
}

/// Reads an i32-length-prefixed nullable byte field at `*pos`, as a slice of `entry`.
fn bytes_field(entry: &Bytes, pos: &mut usize, context: &'static str) -> Result<Option<Bytes>> {
    let b = entry.get(*pos..*pos + 4).ok_or(Error::Truncated {
        context,
        needed: 4,
        remaining: entry.len().saturating_sub(*pos),
    })?;
    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    *pos += 4;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| Error::InvalidLength {
        context,
        length: i64::from(len),
    })?;
    let remaining = entry.len() - *pos;
    if len > remaining {
        return Err(Error::Truncated {
            context,
            needed: len,
            remaining,
        });
    }
    let field = entry.slice(*pos..*pos + len);
    *pos += len;
    Ok(Some(field))
}

fn timestamp_type(magic: i8, attributes: i8) -> TimestampType {
    if magic >= 1 && attributes & 0x08 != 0 {
        TimestampType::LogAppendTime
    } else {
        TimestampType::CreateTime
    }
}

/// Decodes one complete top-level legacy message (`entry`: offset through value)
/// into a batch; a compressed wrapper's inner messages are decompressed with at most
/// `limit` output bytes.
pub(crate) fn decode_message(entry: Bytes, verify_crc: bool, limit: usize) -> Result<RecordBatch> {
    let msg = parse_message(&entry, verify_crc)?;
    let compression = Compression::from_code((msg.attributes & 0x07) as u8)?;
    let ts_type = timestamp_type(msg.magic, msg.attributes);
    let (records, decompressed) = match compression {
        Compression::None => (
            vec![Record {
                offset: msg.offset,
                timestamp: msg.timestamp,
                key: msg.key,
                value: msg.value,
                headers: Vec::new(),
            }],
            0,
        ),
        codec => decode_wrapper(&msg, codec, ts_type, verify_crc, limit)?,
    };
    let (first, last) = match (records.first(), records.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => {
            return Err(Error::CorruptRecords(format!(
                "compressed legacy message at offset {} holds no messages",
                msg.offset
            )));
        }
    };
    let last_offset_delta =
        i32::try_from(last.offset.wrapping_sub(first.offset)).map_err(|_| {
            Error::CorruptRecords(format!(
                "legacy message set offsets {}..{} are not ascending within i32",
                first.offset, last.offset
            ))
        })?;
    let max_timestamp = if msg.magic == 0 {
        NO_TIMESTAMP
    } else {
        records
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(msg.timestamp)
    };
    let mut attributes = u16::from(compression.code());
    if ts_type == TimestampType::LogAppendTime {
        attributes |= BatchAttributes::TIMESTAMP_TYPE;
    }
    let header = BatchHeader {
        base_offset: first.offset,
        batch_length: msg.size,
        partition_leader_epoch: -1,
        magic: msg.magic,
        crc: msg.crc,
        attributes: BatchAttributes(attributes),
        last_offset_delta,
        base_timestamp: first.timestamp,
        max_timestamp,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: -1,
        base_sequence: NO_SEQUENCE,
        record_count: i32::try_from(records.len()).unwrap_or(i32::MAX),
    };
    Ok(RecordBatch::from_legacy(header, records, decompressed))
}

/// Decompresses a wrapper's value and decodes its inner messages with absolute
/// offsets and timestamps; also returns the decompressed size.
fn decode_wrapper(
    wrapper: &Message,
    codec: Compression,
    ts_type: TimestampType,
    verify_crc: bool,
    limit: usize,
) -> Result<(Vec<Record>, usize)> {
    let value = wrapper.value.as_ref().ok_or_else(|| {
        Error::CorruptRecords(format!(
            "compressed legacy message at offset {} has a null value",
            wrapper.offset
        ))
    })?;
    let inner = if codec == Compression::Lz4 && wrapper.magic == 0 {
        lz4::decompress_legacy(value, limit)?
    } else {
        codec.decompress(value, limit)?
    };
    let inner = Bytes::from(inner);
    let decompressed = inner.len();
    let mut messages = Vec::new();
    let mut pos = 0;
    while pos < inner.len() {
        let rest = inner.len() - pos;
        if rest < LOG_OVERHEAD {
            return Err(Error::Truncated {
                context: "compressed legacy message set",
                needed: LOG_OVERHEAD,
                remaining: rest,
            });
        }
        let size = i32::from_be_bytes([
            inner[pos + 8],
            inner[pos + 9],
            inner[pos + 10],
            inner[pos + 11],
        ]);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= rest - LOG_OVERHEAD)
            .ok_or(Error::InvalidLength {
                context: "inner legacy message size",
                length: i64::from(size),
            })?;
        let msg = parse_message(&inner.slice(pos..pos + LOG_OVERHEAD + size), verify_crc)?;
        if msg.attributes & 0x07 != 0 {
            return Err(Error::CorruptRecords(format!(
                "legacy message at offset {} nests compression",
                wrapper.offset
            )));
        }
        messages.push(msg);
        pos += LOG_OVERHEAD + size;
    }
    // Magic 1 wrappers: inner offsets are relative; the wrapper holds the last absolute.
    let shift = match messages.last() {
        Some(last) if wrapper.magic >= 1 => wrapper.offset.wrapping_sub(last.offset),
        _ => 0,
    };
    let records = messages
        .into_iter()
        .map(|m| Record {
            offset: m.offset.wrapping_add(shift),
            timestamp: if m.magic == 0 {
                NO_TIMESTAMP
            } else if ts_type == TimestampType::LogAppendTime {
                wrapper.timestamp
            } else {
                m.timestamp
            },
            key: m.key,
            value: m.value,
            headers: Vec::new(),
        })
        .collect();
    Ok((records, decompressed))
}
