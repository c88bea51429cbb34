//! Per-partition queues of batches waiting to be sent.
//!
//! A partition's queue holds, front to back: batches waiting for a retry (in
//! sequence order), closed batches, and at most one open batch that still takes
//! records. A batch gets its sequence number the first time it is drained and keeps
//! it across retries; an epoch bump clears the sequences of batches not yet
//! acknowledged so they are renumbered from 0 under the new epoch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;

use super::delivery::{BatchCompletion, DeliveryFuture};
use super::{PartitionMap, ProducerIdentity, ProducerRecord};
use crate::client::config::{CompressionType, ProducerConfig};
use crate::client::partitioner::StickyPartitioner;
use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::records::builder::{BatchBuilder, BatchParams};

/// Bytes a record takes in a batch, roughly (used for `batch.size` and `buffer.memory`).
pub(crate) fn estimated_size(record: &ProducerRecord) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
        .sum();
    21 + record.key.as_ref().map_or(0, Bytes::len)
        + record.value.as_ref().map_or(0, Bytes::len)
        + headers
}

/// A record on its way into a batch.
pub(crate) struct PendingRecord {
    pub record: ProducerRecord,
    pub timestamp: i64,
    pub permit: OwnedSemaphorePermit,
}

/// One batch of one partition.
pub(crate) struct Batch {
    pub topic: Arc<str>,
    pub partition: i32,
    builder: Option<BatchBuilder>,
    encoded: Option<Bytes>,
    /// Shared by the delivery futures of the batch's records.
    completion: BatchCompletion,
    records: u32,
    permit: Option<OwnedSemaphorePermit>,
    pub created: Instant,
    pub closed: bool,
    /// Id of the first record appended (for `flush`).
    pub first_id: u64,
    /// -1 until the batch is first drained (idempotent producers only).
    pub base_sequence: i32,
    stamped: Option<(ProducerIdentity, i32)>,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    /// Whether the batch was ever written to a broker: its outcome may be "persisted".
    pub sent: bool,
}

impl Batch {
    /// Records in the batch.
    pub fn record_count(&self) -> usize {
        self.records as usize
    }

    /// Finishes (compresses) the batch if needed and writes the producer id, epoch
    /// and base sequence into its header, fixing the CRC.
    pub fn encoded(&mut self, identity: ProducerIdentity) -> Result<Bytes> {
        if let Some(builder) = self.builder.take() {
            self.encoded = Some(builder.finish()?);
        }
        let bytes = self.encoded.clone().ok_or_else(|| Error::Encode {
            context: "producer batch",
            message: "batch has no records".into(),
        })?;
        let want = (identity, self.base_sequence);
        if self.stamped == Some(want)
            || (identity == ProducerIdentity::NONE && self.stamped.is_none())
        {
            return Ok(bytes);
        }
        let stamped = restamp(bytes, identity, self.base_sequence);
        self.encoded = Some(stamped.clone());
        self.stamped = Some(want);
        Ok(stamped)
    }

    /// The finished batch bytes, once drained.
    pub fn peek_encoded(&self) -> Option<Bytes> {
        self.encoded.clone()
    }

    /// Completes every record of the batch with the broker's answer.
    pub fn complete(self, result: std::result::Result<(i64, i64), &Error>) {
        self.completion.complete(result.map_err(Error::clone_lossy));
    }
}

/// Batch header offsets (record batch v2 layout).
const CRC_OFFSET: usize = 17;
const CRC_START: usize = 21;
const PRODUCER_ID_OFFSET: usize = 43;

/// Writes producer id, epoch and base sequence into a finished batch and recomputes its CRC.
pub(crate) fn restamp(bytes: Bytes, identity: ProducerIdentity, base_sequence: i32) -> Bytes {
    let mut buf = bytes
        .try_into_mut()
        .unwrap_or_else(|b| BytesMut::from(&b[..]));
    if buf.len() < 61 {
        return buf.freeze();
    }
    buf[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8]
        .copy_from_slice(&identity.producer_id.to_be_bytes());
    buf[PRODUCER_ID_OFFSET + 8..PRODUCER_ID_OFFSET + 10]
        .copy_from_slice(&identity.producer_epoch.to_be_bytes());
    buf[PRODUCER_ID_OFFSET + 10..PRODUCER_ID_OFFSET + 14]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

/// One partition's queue.
#[derive(Default)]
pub(crate) struct PartitionQueue {
    pub batches: VecDeque<Batch>,
    pub in_flight: usize,
    pub next_sequence: i32,
    /// The sequence the broker expects next: every earlier one was acknowledged.
    pub acked_next: i32,
    /// Whether the broker acknowledged a batch of this partition under the current
    /// epoch. Until it has, the broker holds no sequence state for us and would accept
    /// a later batch ahead of an earlier one that failed, so one batch goes at a time.
    pub confirmed: bool,
    /// A batch failed: nothing more is sent until the in-flight ones come back, so
    /// retries go out in sequence order.
    pub draining: bool,
}

/// Every partition's queue plus producer-wide state; lives behind one mutex.
pub(crate) struct Accumulator {
    pub partitions: PartitionMap<PartitionQueue>,
    pub sticky: StickyPartitioner,
    pub identity: ProducerIdentity,
    /// Set when the producer can no longer send (closed, fenced).
    pub fatal: Option<String>,
    /// Records appended so far; the id of the next record.
    pub appended: u64,
    /// Batches holding records up to this id are sent without lingering.
    pub flush_up_to: u64,
    /// The epoch must be bumped once nothing is in flight.
    pub bump_epoch: bool,
    pub in_flight_requests: usize,
    /// First record ids of batches not yet completed (for `flush`).
    outstanding: BTreeMap<u64, usize>,
    batch_size: usize,
    pub linger: Duration,
    params: BatchParams,
}

impl Accumulator {
    pub fn new(config: &ProducerConfig, sticky: StickyPartitioner) -> Self {
        let compression = match config.compression {
            CompressionType::None => Compression::None,
            CompressionType::Gzip => Compression::Gzip,
            CompressionType::Snappy => Compression::Snappy,
            CompressionType::Lz4 => Compression::Lz4,
            CompressionType::Zstd => Compression::Zstd,
        };
        Accumulator {
            partitions: PartitionMap::new(),
            sticky,
            identity: ProducerIdentity::NONE,
            fatal: None,
            appended: 0,
            flush_up_to: 0,
            bump_epoch: false,
            in_flight_requests: 0,
            outstanding: BTreeMap::new(),
            batch_size: config.batch_size.max(1),
            linger: config.linger,
            params: BatchParams {
                compression,
                transactional: config.transactional_id.is_some(),
                ..Default::default()
            },
        }
    }

    /// Appends a record to its partition's open batch (opening one when needed).
    /// Returns the record's delivery future and whether the sender should wake (a
    /// batch opened or filled up, or no linger).
    pub fn append(
        &mut self,
        topic: String,
        partition: i32,
        pending: PendingRecord,
        partitions: i32,
        sticky: bool,
    ) -> Result<(DeliveryFuture, bool)> {
        let size = estimated_size(&pending.record);
        let id = self.appended;
        // The topic string is cloned once per partition, not once per record.
        let key = (topic, partition);
        if !self.partitions.contains_key(&key) {
            self.partitions
                .insert(key.clone(), PartitionQueue::default());
        }
        let Some(queue) = self.partitions.get_mut(&key) else {
            return Err(Error::Encode {
                context: "producer",
                message: "no partition queue".into(),
            });
        };
        let fits = match queue.batches.back() {
            Some(b) if !b.closed => match &b.builder {
                Some(builder) => {
                    builder.is_empty() || builder.uncompressed_size() + size <= self.batch_size
                }
                None => false,
            },
            _ => false,
        };
        let mut filled = false;
        // A new batch changes the sender's next deadline (its linger), so it wakes too.
        let opened = !fits;
        if !fits {
            if let Some(b) = queue.batches.back_mut() {
                if !b.closed {
                    b.closed = true;
                    filled = true;
                }
            }
            let topic: Arc<str> = Arc::from(key.0.as_str());
            queue.batches.push_back(Batch {
                completion: BatchCompletion::new(topic.clone(), partition),
                topic,
                partition,
                builder: Some(BatchBuilder::with_capacity(
                    self.params,
                    self.batch_size.min(1 << 20),
                )),
                encoded: None,
                records: 0,
                permit: None,
                created: Instant::now(),
                closed: false,
                first_id: id,
                base_sequence: -1,
                stamped: None,
                attempts: 0,
                retry_at: None,
                sent: false,
            });
            *self.outstanding.entry(id).or_default() += 1;
        }
        let Some(batch) = queue.batches.back_mut() else {
            return Err(Error::Encode {
                context: "producer",
                message: "no open batch".into(),
            });
        };
        let PendingRecord {
            record,
            timestamp,
            permit,
        } = pending;
        let Some(builder) = batch.builder.as_mut() else {
            return Err(Error::Encode {
                context: "producer",
                message: "batch already finished".into(),
            });
        };
        builder.append(
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        )?;
        let future = batch.completion.future(batch.records, timestamp);
        batch.records += 1;
        match &mut batch.permit {
            Some(p) => p.merge(permit),
            None => batch.permit = Some(permit),
        }
        if builder.uncompressed_size() >= self.batch_size {
            batch.closed = true;
            filled = true;
        }
        self.appended += 1;
        if filled && sticky {
            self.sticky.batch_complete(&key.0, partition, partitions);
        }
        Ok((future, filled || opened || self.linger.is_zero()))
    }

    /// Whether a batch (the front of a queue) may go out now.
    pub fn is_ready(&self, batch: &Batch, now: Instant) -> bool {
        if let Some(at) = batch.retry_at {
            return now >= at;
        }
        batch.closed
            || now.duration_since(batch.created) >= self.linger
            || batch.first_id < self.flush_up_to
            || self.fatal.is_some()
    }

    /// When the earliest front batch that is not ready yet becomes ready (a
    /// draining partition's front included). Fronts that are ready but held back by
    /// in-flight limits are not deadlines: the answer that frees them wakes the sender.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|q| q.batches.front())
            .map(|b| b.retry_at.unwrap_or(b.created + self.linger))
            .filter(|&at| at > now)
            .min()
    }

    /// Marks a batch's records as done for `flush` and releases its memory.
    pub fn finished(&mut self, batch: &mut Batch) {
        if let Some(n) = self.outstanding.get_mut(&batch.first_id) {
            *n -= 1;
            if *n == 0 {
                self.outstanding.remove(&batch.first_id);
            }
        }
        batch.permit = None;
    }

    /// Whether every record with an id below `target` has completed.
    pub fn completed_through(&self, target: u64) -> bool {
        self.outstanding
            .keys()
            .next()
            .is_none_or(|&first| first >= target)
    }

    /// Whether nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// Fails every batch still queued (not in flight).
    pub fn fail_queued(&mut self, error: impl Fn() -> Error) {
        let mut all: Vec<Batch> = Vec::new();
        for q in self.partitions.values_mut() {
            all.extend(q.batches.drain(..));
        }
        for mut b in all {
            self.finished(&mut b);
            b.complete(Err(&error()));
        }
    }

    /// Clears the sequence numbers of every queued batch and restarts each
    /// partition's sequence at 0 (after an epoch bump).
    pub fn reset_sequences(&mut self) {
        for q in self.partitions.values_mut() {
            q.next_sequence = 0;
            q.acked_next = 0;
            q.confirmed = false;
            q.draining = false;
            for b in &mut q.batches {
                b.base_sequence = -1;
            }
        }
    }
}
