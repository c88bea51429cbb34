//! Record batches: the bytes inside Produce requests' and Fetch responses' `records`
//! fields.
//!
//! ```text
//!  producer:  Record / (ts, key, value, headers)
//!               -> BatchBuilder::append ... finish()  -> Bytes (one v2 batch, CRC32C)
//!               -> concatenate batches into a Produce `records` field
//!
//!  consumer:  Fetch `records` field (Bytes)
//!               -> BatchReader (v2 batches, legacy magic 0/1 messages; stops cleanly
//!                  at a truncated final batch and reports its size)
//!               -> RecordBatch (header: producer id, transactional, control, lastOffset)
//!               -> RecordBatch::records() -> Record { offset, timestamp, key, value, headers }
//! ```
//!
//! Decoding never copies keys, values or headers: they are [`bytes::Bytes`] slices of
//! the input (or of a batch's decompressed buffer).

use bytes::Bytes;

use crate::compression::DEFAULT_MAX_DECOMPRESSED_BYTES;
use crate::error::{Error, Result};

pub mod batch;
pub mod builder;
pub mod control;
pub mod header;
pub mod legacy;
pub mod record;

pub use batch::{BatchAttributes, BatchHeader, RecordBatch, Records, TimestampType};
pub use builder::{BatchBuilder, BatchParams, encode_control_batch};
pub use control::{ControlRecord, ControlRecordType};
pub use header::Header;
pub use record::Record;

use batch::{LOG_OVERHEAD, MAGIC_OFFSET, RECORD_BATCH_OVERHEAD};

/// Offset of `lastOffsetDelta` in a magic-2 batch.
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Offset of `recordCount` in a magic-2 batch.
const RECORD_COUNT_OFFSET: usize = 57;

/// What the batch headers of a `records` field say, read without checking CRCs or
/// decompressing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    /// The highest `lastOffset + 1` of the complete batches; `None` if none is complete.
    pub next_offset: Option<i64>,
    /// Bytes after the last complete batch (a batch the broker cut at the size limit).
    pub tail: usize,
    /// The sum of the complete batches' record counts, as their headers claim.
    pub records: u64,
}

/// Reads the offsets of the complete magic-2 batches in `data`. `None` when a batch
/// has another magic or an impossible length: only a full decode can say more.
/// The batches' contents are not checked: decoding them may still fail.
pub fn peek(data: &[u8]) -> Option<Peek> {
    let mut pos = 0;
    let mut next_offset = None;
    let mut records = 0u64;
    while let Some(b) = data.get(pos..).filter(|b| b.len() >= LOG_OVERHEAD) {
        let size = usize::try_from(i32::from_be_bytes([b[8], b[9], b[10], b[11]])).ok()?;
        if size + LOG_OVERHEAD < RECORD_BATCH_OVERHEAD {
            return None;
        }
        if size > b.len() - LOG_OVERHEAD {
            break;
        }
        if b[MAGIC_OFFSET] != 2 {
            return None;
        }
        let base = i64::from_be_bytes(b[..8].try_into().ok()?);
        let d = LAST_OFFSET_DELTA_OFFSET;
        let delta = i32::from_be_bytes(b[d..d + 4].try_into().ok()?);
        let next = base.wrapping_add(i64::from(delta)).wrapping_add(1);
        next_offset = Some(next_offset.map_or(next, |n: i64| n.max(next)));
        let c = RECORD_COUNT_OFFSET;
        let count = i32::from_be_bytes(b[c..c + 4].try_into().ok()?);
        records += u64::try_from(count).unwrap_or(0);
        pos += LOG_OVERHEAD + size;
    }
    Some(Peek {
        next_offset,
        tail: data.len() - pos,
        records,
    })
}

/// Limits and checks applied while decoding a `records` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest decompressed size of one batch (or legacy wrapper).
    pub max_decompressed_bytes: usize,
    /// Largest decompressed size of all batches read by one [`BatchReader`] together.
    pub max_total_decompressed_bytes: usize,
    /// Check each batch's CRC (CRC32C for magic 2, CRC32 for magic 0/1).
    pub verify_crc: bool,
}

impl Default for DecodeOptions {
    /// 64 MiB per batch, 1 GiB per reader, CRCs checked.
    fn default() -> Self {
        DecodeOptions {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_total_decompressed_bytes: 1024 * 1024 * 1024,
            verify_crc: true,
        }
    }
}

/// Iterates the batches of a `records` field (any mix of magic 0, 1 and 2).
///
/// A final batch whose bytes are not all there (brokers cut fetch responses at the
/// size limit) ends the iteration without an error; [`BatchReader::remaining`] then
/// says how many bytes were left. A malformed batch yields its error and ends the
/// iteration.
#[derive(Debug, Clone)]
pub struct BatchReader {
    data: Bytes,
    pos: usize,
    opts: DecodeOptions,
    decompressed: usize,
    done: bool,
}

impl BatchReader {
    /// A reader over `data` with default options.
    pub fn new(data: Bytes) -> Self {
        Self::with_options(data, DecodeOptions::default())
    }

    /// A reader over `data` with the given options.
    pub fn with_options(data: Bytes, opts: DecodeOptions) -> Self {
        BatchReader {
            data,
            pos: 0,
            opts,
            decompressed: 0,
            done: false,
        }
    }

    /// Bytes not consumed by the batches read so far; after the iteration ends
    /// without an error, the size of the truncated tail (0 if there is none).
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Index in the input of the next batch.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn read_next(&mut self) -> Result<Option<RecordBatch>> {
        let rest = self.data.len() - self.pos;
        if rest < LOG_OVERHEAD {
            return Ok(None);
        }
        let b = &self.data[self.pos..];
        let size = i32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s >= legacy::MIN_MESSAGE_SIZE_V0)
            .ok_or(Error::InvalidLength {
                context: "record batch length",
                length: i64::from(size),
            })?;
        if size > rest - LOG_OVERHEAD {
            // A partial batch at the end of a fetch: a normal outcome.
            return Ok(None);
        }
        let entry = self.data.slice(self.pos..self.pos + LOG_OVERHEAD + size);
        let limit = self.opts.max_decompressed_bytes.min(
            self.opts
                .max_total_decompressed_bytes
                .saturating_sub(self.decompressed),
        );
        let batch = match b[MAGIC_OFFSET] as i8 {
            2 => RecordBatch::decode_v2(entry, self.opts.verify_crc, limit)?,
            0 | 1 => legacy::decode_message(entry, self.opts.verify_crc, limit)?,
            m => return Err(Error::UnsupportedMagic(m)),
        };
        self.decompressed = self.decompressed.saturating_add(batch.decompressed_len());
        self.pos += LOG_OVERHEAD + size;
        Ok(Some(batch))
    }
}

impl Iterator for BatchReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_next() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for BatchReader {}

/// All complete batches of a `records` field, and the size of a truncated tail.
#[derive(Debug, Clone, Default)]
pub struct RecordSet {
    /// The complete batches, in order.
    pub batches: Vec<RecordBatch>,
    /// Bytes of a final partial batch that were not decoded (0 if none).
    pub truncated_bytes: usize,
}

impl RecordSet {
    /// Offset after the last complete batch, if any.
    pub fn next_offset(&self) -> Option<i64> {
        self.batches.last().map(RecordBatch::next_offset)
    }
}

/// Decodes every complete batch of `data`; a truncated final batch is reported in
/// [`RecordSet::truncated_bytes`], not as an error.
pub fn decode_records(data: Bytes, opts: DecodeOptions) -> Result<RecordSet> {
    let mut reader = BatchReader::with_options(data, opts);
    let mut batches = Vec::new();
    for batch in reader.by_ref() {
        batches.push(batch?);
    }
    Ok(RecordSet {
        batches,
        truncated_bytes: reader.remaining(),
    })
}

/// Encodes `records` as one batch with `params` (offsets follow slice order).
pub fn encode_batch(params: BatchParams, records: &[Record]) -> Result<Bytes> {
    let mut b = BatchBuilder::new(params);
    for r in records {
        b.append_record(r)?;
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, count: i64) -> Bytes {
        let mut b = BatchBuilder::new(BatchParams {
            base_offset: base,
            ..BatchParams::default()
        });
        for _ in 0..count {
            b.append(0, None, Some(b"v"), &[]).unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn peek_agrees_with_a_full_decode_and_reports_the_cut_tail() {
        let mut data = batch(10, 3).to_vec();
        data.extend_from_slice(&batch(13, 4));
        let third = batch(17, 2);
        data.extend_from_slice(&third[..third.len() - 5]);
        let peeked = peek(&data).unwrap();
        let mut reader = BatchReader::new(Bytes::from(data.clone()));
        let decoded: Vec<RecordBatch> = reader.by_ref().map(|b| b.unwrap()).collect();
        assert_eq!(
            peeked.next_offset,
            decoded.last().map(RecordBatch::next_offset)
        );
        assert_eq!(peeked.next_offset, Some(17));
        assert_eq!(peeked.records, 7);
        assert_eq!(peeked.tail, reader.remaining());
        assert_eq!(peeked.tail, third.len() - 5);
    }

    #[test]
    fn peek_gives_up_on_odd_data_and_sees_nothing_in_a_short_tail() {
        assert_eq!(
            peek(&[]),
            Some(Peek {
                next_offset: None,
                tail: 0,
                records: 0
            })
        );
        assert_eq!(
            peek(&[0; 11]),
            Some(Peek {
                next_offset: None,
                tail: 11,
                records: 0
            })
        );
        let mut legacy = batch(0, 1).to_vec();
        legacy[MAGIC_OFFSET] = 1;
        assert_eq!(peek(&legacy), None, "another magic");
        let mut short = batch(0, 1).to_vec();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(peek(&short), None, "a length below a batch header");
        let mut negative = batch(0, 1).to_vec();
        negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(peek(&negative), None, "a negative length");
    }
}
