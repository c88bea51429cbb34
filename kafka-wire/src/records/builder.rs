//! Encoding v2 record batches: what a producer (or a transaction coordinator test)
//! uses to turn records into the bytes of a Produce request's `records` field.
//!
//! ```text
//!  BatchBuilder::new(params)            61 header bytes reserved
//!     .append(ts, key, value, headers)  records written in place, deltas from the first
//!     .finish()                         compress records region, fill header, CRC32C
//!        -> Bytes (one batch)
//! ```

use bytes::Bytes;

use super::batch::{
    BatchAttributes, BatchHeader, CRC_START, LOG_OVERHEAD, NO_PRODUCER_ID, NO_SEQUENCE,
    RECORD_BATCH_OVERHEAD, TimestampType,
};
use super::control::ControlRecord;
use super::header::Header;
use super::record::{Record, encode_record};
use crate::compression::Compression;
use crate::error::{Error, Result};

/// Batch-level settings for [`BatchBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchParams {
    /// Base offset (0 from producers; the broker assigns offsets).
    pub base_offset: i64,
    /// Partition leader epoch (-1 from producers).
    pub partition_leader_epoch: i32,
    /// Codec for the records region.
    pub compression: Compression,
    /// Codec level (`None`: the codec's default); see [`Compression::compress_with_level`].
    pub compression_level: Option<i32>,
    /// Timestamp type (producers write create time).
    pub timestamp_type: TimestampType,
    /// Set the transactional bit.
    pub transactional: bool,
    /// Set the control bit (use [`BatchBuilder::append_control`] for the record).
    pub control: bool,
    /// Producer id (-1 for a non-idempotent producer).
    pub producer_id: i64,
    /// Producer epoch (-1 for a non-idempotent producer).
    pub producer_epoch: i16,
    /// Sequence of the first record (-1 for a non-idempotent producer).
    pub base_sequence: i32,
}

impl Default for BatchParams {
    /// A non-idempotent, non-transactional, uncompressed create-time batch at offset 0.
    fn default() -> Self {
        BatchParams {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: Compression::None,
            compression_level: None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
        }
    }
}

/// Builds one v2 record batch. Records get consecutive offset deltas from 0; the
/// first record's timestamp becomes `baseTimestamp`.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    params: BatchParams,
    /// `RECORD_BATCH_OVERHEAD` reserved bytes, then the uncompressed records.
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// An empty batch with the given settings.
    pub fn new(params: BatchParams) -> Self {
        Self::with_capacity(params, 0)
    }

    /// An empty batch whose buffer holds `records_bytes` of records before growing.
    pub fn with_capacity(params: BatchParams, records_bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(RECORD_BATCH_OVERHEAD + records_bytes);
        buf.resize(RECORD_BATCH_OVERHEAD, 0);
        BatchBuilder {
            params,
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// An empty batch that writes into `buf` (cleared first): a producer hands back
    /// the buffers of finished batches ([`Self::finish_reusing`]) to save allocating
    /// and faulting in a fresh one per batch.
    pub fn with_buffer(params: BatchParams, mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.resize(RECORD_BATCH_OVERHEAD, 0);
        BatchBuilder {
            params,
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// The settings this batch was created with.
    pub fn params(&self) -> &BatchParams {
        &self.params
    }

    /// Number of records appended.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record has been appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if it were finished uncompressed: header plus records.
    /// Producers compare this with `batch.size`.
    pub fn uncompressed_size(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record; returns its offset delta.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> Result<i32> {
        let delta = self.count;
        if delta == i32::MAX {
            return Err(Error::Encode {
                context: "record batch",
                message: "more than i32::MAX records".into(),
            });
        }
        if delta == 0 {
            self.base_timestamp = timestamp;
        }
        encode_record(
            &mut self.buf,
            delta,
            timestamp.wrapping_sub(self.base_timestamp),
            key,
            value,
            headers,
        )?;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count += 1;
        Ok(delta)
    }

    /// Appends `record`'s timestamp, key, value and headers (its offset is ignored:
    /// offsets follow append order).
    pub fn append_record(&mut self, record: &Record) -> Result<i32> {
        self.append(
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        )
    }

    /// Appends a control record (the batch must have been created with `control`).
    pub fn append_control(&mut self, timestamp: i64, control: &ControlRecord) -> Result<i32> {
        if !self.params.control {
            return Err(Error::Encode {
                context: "control record",
                message: "batch was not created as a control batch".into(),
            });
        }
        let value = control.value_bytes();
        self.append(
            timestamp,
            Some(&control.key_bytes()),
            value.as_ref().map(|v| &v[..]),
            &[],
        )
    }

    /// Finishes the batch: compresses the records, writes the header and CRC32C.
    /// An empty batch is an [`Error::Encode`].
    pub fn finish(self) -> Result<Bytes> {
        self.finish_reusing().map(|(bytes, _)| bytes)
    }

    /// As [`Self::finish`], also returning the records buffer when compression left
    /// it unused (for [`Self::with_buffer`]).
    pub fn finish_reusing(self) -> Result<(Bytes, Option<Vec<u8>>)> {
        if self.count == 0 {
            return Err(Error::Encode {
                context: "record batch",
                message: "a batch needs at least one record".into(),
            });
        }
        let (mut buf, spare) = match self.params.compression {
            Compression::None => (self.buf, None),
            codec => {
                let records = &self.buf[RECORD_BATCH_OVERHEAD..];
                let mut out = Vec::with_capacity(RECORD_BATCH_OVERHEAD + records.len() / 2 + 64);
                out.resize(RECORD_BATCH_OVERHEAD, 0);
                codec.compress_with_level(records, self.params.compression_level, &mut out)?;
                (out, Some(self.buf))
            }
        };
        let batch_length = i32::try_from(buf.len() - LOG_OVERHEAD).map_err(|_| Error::Encode {
            context: "record batch",
            message: format!("batch of {} bytes exceeds i32::MAX", buf.len()),
        })?;
        let p = &self.params;
        let header = BatchHeader {
            base_offset: p.base_offset,
            batch_length,
            partition_leader_epoch: p.partition_leader_epoch,
            magic: 2,
            crc: 0,
            attributes: BatchAttributes::new(
                p.compression,
                p.timestamp_type,
                p.transactional,
                p.control,
            ),
            last_offset_delta: self.count - 1,
            base_timestamp: self.base_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id: p.producer_id,
            producer_epoch: p.producer_epoch,
            base_sequence: p.base_sequence,
            record_count: self.count,
        };
        header.write_v2(&mut buf[..RECORD_BATCH_OVERHEAD]);
        let crc = crc32c::crc32c(&buf[CRC_START..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok((Bytes::from(buf), spare))
    }
}

/// Encodes a control batch holding one control record (e.g. a transaction marker),
/// with the control bit set and the other settings from `params` (coordinators write
/// markers transactional and uncompressed).
pub fn encode_control_batch(
    params: BatchParams,
    timestamp: i64,
    control: &ControlRecord,
) -> Result<Bytes> {
    let mut b = BatchBuilder::new(BatchParams {
        control: true,
        ..params
    });
    b.append_control(timestamp, control)?;
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_buffer_builds_the_same_batch_as_a_fresh_one() {
        let params = BatchParams {
            compression: Compression::Lz4,
            ..Default::default()
        };
        let build = |mut b: BatchBuilder| {
            b.append(7, Some(b"k"), Some(b"value one"), &[]).unwrap();
            b.append(9, None, Some(b"value two"), &[]).unwrap();
            b.finish_reusing().unwrap()
        };
        let (fresh, spare) = build(BatchBuilder::new(params));
        let mut dirty = spare.expect("a compressed batch hands its records buffer back");
        dirty.extend_from_slice(b"left over from the last batch");
        let (reused, _) = build(BatchBuilder::with_buffer(params, dirty));
        assert_eq!(fresh, reused);
        let plain = BatchBuilder::new(BatchParams::default());
        let mut plain2 = plain.clone();
        plain2.append(1, None, Some(b"v"), &[]).unwrap();
        assert!(plain2.finish_reusing().unwrap().1.is_none());
    }
}
