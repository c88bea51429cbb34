//! Record batch (magic 2) header, attributes and decoded batches.
//!
//! ```text
//!  0  baseOffset i64          27 baseTimestamp i64
//!  8  batchLength i32         35 maxTimestamp i64
//!  12 partitionLeaderEpoch    43 producerId i64
//!  16 magic i8 (= 2)          51 producerEpoch i16
//!  17 crc u32 (CRC32C of 21..end)  53 baseSequence i32
//!  21 attributes i16          57 recordCount i32
//!  23 lastOffsetDelta i32     61 records (compressed as a whole per attributes)
//! ```
//!
//! Old message sets (magic 0 and 1) decode into the same [`RecordBatch`], with the
//! producer fields set to -1 (see [`super::legacy`]).

use bytes::Bytes;

use super::control::ControlRecord;
use super::record::{Record, RecordBase, decode_record};
use crate::compression::Compression;
use crate::error::{Error, Result};

/// Bytes before `batchLength`'s count starts: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header, up to and including `recordCount`.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// Offset of the first CRC-covered byte (attributes) in a v2 batch.
pub const CRC_START: usize = 21;
/// Offset of the magic byte, the same in every message format.
pub const MAGIC_OFFSET: usize = 16;
/// A producer id meaning "no producer" (non-idempotent batches, legacy messages).
pub const NO_PRODUCER_ID: i64 = -1;
/// The sequence of a batch from a non-idempotent producer.
pub const NO_SEQUENCE: i32 = -1;
/// The timestamp of magic 0 messages, which have none.
pub const NO_TIMESTAMP: i64 = -1;

/// How a batch's timestamps were set (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer (bit 3 clear).
    #[default]
    CreateTime,
    /// Set by the broker when appending to the log (bit 3 set); every record's
    /// timestamp is then the batch's `maxTimestamp`.
    LogAppendTime,
}

/// The 16-bit attributes field of a v2 batch (magic 0/1 attributes are mapped onto it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BatchAttributes(pub u16);

impl BatchAttributes {
    /// Bits 0-2: compression codec.
    pub const COMPRESSION_MASK: u16 = 0x07;
    /// Bit 3: log-append-time timestamps.
    pub const TIMESTAMP_TYPE: u16 = 1 << 3;
    /// Bit 4: part of a transaction.
    pub const TRANSACTIONAL: u16 = 1 << 4;
    /// Bit 5: a control batch (transaction markers and the like).
    pub const CONTROL: u16 = 1 << 5;
    /// Bit 6: `baseTimestamp` holds the delete horizon (compaction of tombstones/markers).
    pub const DELETE_HORIZON: u16 = 1 << 6;

    /// Attributes from their parts (delete horizon clear).
    pub fn new(
        compression: Compression,
        timestamp_type: TimestampType,
        transactional: bool,
        control: bool,
    ) -> Self {
        let mut bits = u16::from(compression.code());
        if timestamp_type == TimestampType::LogAppendTime {
            bits |= Self::TIMESTAMP_TYPE;
        }
        if transactional {
            bits |= Self::TRANSACTIONAL;
        }
        if control {
            bits |= Self::CONTROL;
        }
        BatchAttributes(bits)
    }

    /// The compression codec; [`Error::UnknownCompression`] for codes 5-7.
    pub fn compression(self) -> Result<Compression> {
        Compression::from_code((self.0 & Self::COMPRESSION_MASK) as u8)
    }

    /// The timestamp type.
    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch.
    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL != 0
    }

    /// Whether `baseTimestamp` is the delete horizon.
    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON != 0
    }
}

/// Everything in a batch header; for magic 0/1 the fields v2 has and they lack are
/// filled as Java does (-1 producer id, epoch, sequence and leader epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchHeader {
    /// Offset of the first record (v2: as written; legacy: first record's offset).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field (legacy: the message size).
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended (-1 if unknown).
    pub partition_leader_epoch: i32,
    /// Message format: 2, or 0/1 for legacy message sets.
    pub magic: i8,
    /// Stored checksum: CRC32C for magic 2, CRC32 (IEEE) of the wrapper for 0/1.
    pub crc: u32,
    /// Attributes (compression, timestamp type, transactional, control, delete horizon).
    pub attributes: BatchAttributes,
    /// `lastOffset - baseOffset`.
    pub last_offset_delta: i32,
    /// Timestamp the record deltas are relative to (the delete horizon if that bit is set).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for log-append-time batches).
    pub max_timestamp: i64,
    /// Producer id (-1 when not idempotent).
    pub producer_id: i64,
    /// Producer epoch (-1 when not idempotent).
    pub producer_epoch: i16,
    /// Sequence number of the first record (-1 when not idempotent).
    pub base_sequence: i32,
    /// Number of records the header declares.
    pub record_count: i32,
}

impl BatchHeader {
    /// Offset of the last record: `baseOffset + lastOffsetDelta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Offset after the batch: where the next fetch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Sequence number of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }

    /// Parses the 61-byte v2 header at the start of `b` (no CRC or magic check).
    pub(crate) fn parse_v2(b: &[u8]) -> Result<Self> {
        if b.len() < RECORD_BATCH_OVERHEAD {
            return Err(Error::Truncated {
                context: "record batch header",
                needed: RECORD_BATCH_OVERHEAD,
                remaining: b.len(),
            });
        }
        let i64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        let i32_at = |i: usize| i32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(BatchHeader {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: b[16] as i8,
            crc: i32_at(17) as u32,
            attributes: BatchAttributes(u16::from_be_bytes([b[21], b[22]])),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16::from_be_bytes([b[51], b[52]]),
            base_sequence: i32_at(53),
            record_count: i32_at(57),
        })
    }

    /// Writes the 61-byte v2 header (with the given CRC) into `b[..61]`.
    pub(crate) fn write_v2(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.base_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        b[12..16].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        b[16] = 2;
        b[17..21].copy_from_slice(&self.crc.to_be_bytes());
        b[21..23].copy_from_slice(&self.attributes.0.to_be_bytes());
        b[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        b[27..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        b[57..61].copy_from_slice(&self.record_count.to_be_bytes());
    }
}

/// The records of a decoded batch.
#[derive(Debug, Clone)]
enum Body {
    /// Uncompressed v2 records region, decoded lazily.
    V2(Bytes),
    /// Magic 0/1 messages, decoded eagerly.
    Legacy(Vec<Record>),
}

/// A decoded batch: its header and its (decompressed) records.
///
/// For magic 2 the records are parsed lazily by [`RecordBatch::records`]; keys and
/// values are slices of the input (uncompressed) or of the decompressed buffer.
#[derive(Debug, Clone)]
pub struct RecordBatch {
    /// The batch header.
    pub header: BatchHeader,
    body: Body,
    /// Bytes produced by decompression (0 for uncompressed batches).
    decompressed: usize,
}

impl RecordBatch {
    pub(crate) fn from_legacy(
        header: BatchHeader,
        records: Vec<Record>,
        decompressed: usize,
    ) -> Self {
        RecordBatch {
            header,
            body: Body::Legacy(records),
            decompressed,
        }
    }

    /// Decodes one complete v2 batch (`batch` holds exactly its bytes), checking the
    /// CRC32C if `verify_crc` and decompressing with at most `limit` output bytes.
    pub(crate) fn decode_v2(batch: Bytes, verify_crc: bool, limit: usize) -> Result<Self> {
        if batch.len() < RECORD_BATCH_OVERHEAD {
            // The bytes are all there: the declared length is too small for a v2 header.
            return Err(Error::InvalidLength {
                context: "record batch length",
                length: batch.len().saturating_sub(LOG_OVERHEAD) as i64,
            });
        }
        let header = BatchHeader::parse_v2(&batch)?;
        if header.magic != 2 {
            return Err(Error::UnsupportedMagic(header.magic));
        }
        if usize::try_from(header.batch_length).ok() != Some(batch.len() - LOG_OVERHEAD) {
            return Err(Error::InvalidLength {
                context: "record batch length",
                length: i64::from(header.batch_length),
            });
        }
        if verify_crc {
            let computed = crc32c::crc32c(&batch[CRC_START..]);
            if computed != header.crc {
                return Err(Error::CrcMismatch {
                    base_offset: header.base_offset,
                    stored: header.crc,
                    computed,
                });
            }
        }
        if header.record_count < 0 {
            return Err(Error::InvalidLength {
                context: "record batch record count",
                length: i64::from(header.record_count),
            });
        }
        let compression = header.attributes.compression()?;
        let (records, decompressed) = match compression {
            Compression::None => (batch.slice(RECORD_BATCH_OVERHEAD..), 0),
            codec => {
                let out = codec.decompress_bytes(&batch[RECORD_BATCH_OVERHEAD..], limit)?;
                let len = out.len();
                (out, len)
            }
        };
        // Every record takes at least 7 bytes; refuse counts the bytes cannot hold.
        if header.record_count as usize > records.len() / 7 {
            return Err(Error::CorruptRecords(format!(
                "batch at offset {} declares {} records in {} bytes",
                header.base_offset,
                header.record_count,
                records.len()
            )));
        }
        Ok(RecordBatch {
            header,
            body: Body::V2(records),
            decompressed,
        })
    }

    /// Bytes decompression produced for this batch (0 if it was not compressed).
    pub fn decompressed_len(&self) -> usize {
        self.decompressed
    }

    /// Message format (2, or 0/1 for legacy message sets).
    pub fn magic(&self) -> i8 {
        self.header.magic
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// Offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.header.next_offset()
    }

    /// Compression codec of the batch as written.
    pub fn compression(&self) -> Compression {
        // Checked when the batch was decoded.
        self.header.attributes.compression().unwrap_or_default()
    }

    /// Timestamp type.
    pub fn timestamp_type(&self) -> TimestampType {
        self.header.attributes.timestamp_type()
    }

    /// Producer id (-1 if none).
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id
    }

    /// Producer epoch (-1 if none).
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.header.attributes.is_transactional()
    }

    /// Whether this is a control batch (e.g. a commit or abort marker).
    pub fn is_control(&self) -> bool {
        self.header.attributes.is_control()
    }

    /// Number of records the header declares.
    pub fn record_count(&self) -> usize {
        self.header.record_count.max(0) as usize
    }

    /// The uncompressed v2 records region (`None` for legacy batches).
    pub fn records_bytes(&self) -> Option<&Bytes> {
        match &self.body {
            Body::V2(b) => Some(b),
            Body::Legacy(_) => None,
        }
    }

    /// Iterates the records with absolute offsets and timestamps. Each item is a
    /// `Result`: a malformed record ends the iteration with its error.
    pub fn records(&self) -> Records<'_> {
        let base = RecordBase {
            base_offset: self.header.base_offset,
            base_timestamp: self.header.base_timestamp,
            log_append_time: (self.timestamp_type() == TimestampType::LogAppendTime)
                .then_some(self.header.max_timestamp),
        };
        Records {
            inner: match &self.body {
                Body::V2(data) => RecordsInner::V2 {
                    data,
                    pos: 0,
                    left: self.record_count(),
                    base,
                    done: false,
                },
                Body::Legacy(records) => RecordsInner::Legacy(records.iter()),
            },
        }
    }

    /// For a control batch, its control record (Kafka writes exactly one); `None` for
    /// data batches.
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.is_control() {
            return Ok(None);
        }
        let record = self.records().next().ok_or_else(|| {
            Error::CorruptRecords(format!(
                "control batch at offset {} has no records",
                self.header.base_offset
            ))
        })??;
        ControlRecord::parse(record.key.as_deref(), record.value.as_deref()).map(Some)
    }
}

/// Iterator over a batch's records, from [`RecordBatch::records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    inner: RecordsInner<'a>,
}

#[derive(Debug, Clone)]
enum RecordsInner<'a> {
    V2 {
        data: &'a Bytes,
        pos: usize,
        left: usize,
        base: RecordBase,
        done: bool,
    },
    Legacy(std::slice::Iter<'a, Record>),
}

impl Iterator for Records<'_> {
    type Item = Result<Record>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            RecordsInner::V2 {
                data,
                pos,
                left,
                base,
                done,
            } => {
                if *done {
                    return None;
                }
                if *left == 0 {
                    *done = true;
                    if *pos != data.len() {
                        return Some(Err(Error::CorruptRecords(format!(
                            "{} bytes left after the declared records of the batch at offset {}",
                            data.len() - *pos,
                            base.base_offset
                        ))));
                    }
                    return None;
                }
                *left -= 1;
                let res = decode_record(data, pos, *base);
                if res.is_err() {
                    *done = true;
                }
                Some(res)
            }
            RecordsInner::Legacy(it) => it.next().cloned().map(Ok),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            RecordsInner::V2 { left, done, .. } => {
                if *done {
                    (0, Some(0))
                } else {
                    (0, Some(left + 1))
                }
            }
            RecordsInner::Legacy(it) => it.size_hint(),
        }
    }
}
