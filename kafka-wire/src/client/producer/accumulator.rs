//! Per-partition queues of batches waiting to be sent.
//!
//! ```text
//!  topics: Vec<TopicQueues>  ◄── index: name -> position (looked up only when the
//!     │                           topic differs from the previous record's)
//!     └─ queues: Vec<PartitionQueue>, by partition number
//!           └─ batches: VecDeque<Batch>
//! ```
//!
//! A partition's queue holds, front to back: batches waiting for a retry (in
//! sequence order), closed batches, and at most one open batch that still takes
//! records. A batch gets its sequence number the first time it is drained and keeps
//! it across retries; an epoch bump clears the sequences of batches not yet
//! acknowledged so they are renumbered from 0 under the new epoch.
//!
//! A batch the broker refuses as too large is split ([`Accumulator::split`]) into
//! parts that take its place at the front of the queue and share its sequence range.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::Semaphore;

use super::delivery::{BatchCompletion, DeliveryFuture};
use super::{ProducerIdentity, ProducerRecord};
use crate::client::config::{CompressionType, ProducerConfig};
use crate::client::partitioner::StickyPartitioner;
use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::records::builder::{BatchBuilder, BatchParams};
use crate::records::{Header, Record, RecordBatch};

/// Bytes a record takes in a batch, roughly (used for `batch.size` and `buffer.memory`).
pub(crate) fn estimated_size(record: &ProducerRecord) -> usize {
    record_size(record.key.as_ref(), record.value.as_ref(), &record.headers)
}

fn record_size(key: Option<&Bytes>, value: Option<&Bytes>, headers: &[Header]) -> usize {
    let headers: usize = headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 10)
        .sum();
    21 + key.map_or(0, Bytes::len) + value.map_or(0, Bytes::len) + headers
}

/// Most `buffer.memory` the accumulator takes from the semaphore ahead of need.
const MEMORY_CHUNK: usize = 16 * 1024;

/// One batch of one partition.
pub(crate) struct Batch {
    pub topic: Arc<str>,
    pub partition: i32,
    builder: Option<BatchBuilder>,
    encoded: Option<Bytes>,
    /// Shared by the delivery futures of the batch's records.
    completion: BatchCompletion,
    records: u32,
    /// `buffer.memory` held by the batch's records, given back when it is finished.
    reserved: usize,
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
    /// An attempt went unanswered (or timed out): the broker may hold the batch.
    pub unanswered: bool,
    /// Why the last attempt failed, for the error once `delivery.timeout.ms` ends
    /// the retries.
    pub last_error: Option<Error>,
}

impl Batch {
    /// Records in the batch.
    pub fn record_count(&self) -> usize {
        self.records as usize
    }

    /// Finishes (compresses) the batch if needed and writes the producer id, epoch
    /// and base sequence into its header, fixing the CRC. Returns the bytes and
    /// the records buffer a compressed batch no longer needs (for
    /// [`SpareBuffers`]); the sender calls it outside the accumulator's lock.
    pub fn seal(&mut self, identity: ProducerIdentity) -> Result<(Bytes, Option<Vec<u8>>)> {
        let mut spare = None;
        if let Some(builder) = self.builder.take() {
            let (bytes, buffer) = builder.finish_reusing()?;
            self.encoded = Some(bytes);
            spare = buffer;
        }
        // Taken, not cloned: the only reference lets `restamp` write in place.
        let bytes = self.encoded.take().ok_or_else(|| Error::Encode {
            context: "producer batch",
            message: "batch has no records".into(),
        })?;
        let want = (identity, self.base_sequence);
        if self.stamped == Some(want)
            || (identity == ProducerIdentity::NONE && self.stamped.is_none())
        {
            self.encoded = Some(bytes.clone());
            return Ok((bytes, spare));
        }
        let stamped = restamp(bytes, identity, self.base_sequence);
        self.encoded = Some(stamped.clone());
        self.stamped = Some(want);
        Ok((stamped, spare))
    }

    /// At least the batch's size once sealed: its encoded size, or before that its
    /// size uncompressed plus the most any codec can grow it (snappy: n/6 + 32).
    pub fn size_bound(&self) -> usize {
        match (&self.encoded, &self.builder) {
            (Some(bytes), _) => bytes.len(),
            (None, Some(builder)) => {
                let n = builder.uncompressed_size();
                n + n / 6 + 64
            }
            (None, None) => 0,
        }
    }

    /// The finished batch bytes, once drained.
    pub fn peek_encoded(&self) -> Option<Bytes> {
        self.encoded.clone()
    }

    /// Size of the finished batch in bytes (0 before it is drained).
    pub fn encoded_len(&self) -> usize {
        self.encoded.as_ref().map_or(0, Bytes::len)
    }

    /// Completes every record of the batch with the broker's answer.
    pub fn complete(self, result: std::result::Result<(i64, i64), &Error>) {
        self.completion.complete(result.map_err(Error::clone));
    }
}

/// Records buffers of finished (compressed) batches, for new batches to write into.
#[derive(Default)]
pub(crate) struct SpareBuffers {
    buffers: Vec<Vec<u8>>,
    /// Capacity a new batch asks for; larger buffers are not kept.
    capacity: usize,
}

impl SpareBuffers {
    /// At most this many are kept (a round of the sender finishes a few batches,
    /// and new ones take them back at about the same rate).
    const MAX: usize = 8;

    pub(crate) fn put(&mut self, buffer: Vec<u8>) {
        if self.buffers.len() < Self::MAX && buffer.capacity() <= 2 * self.capacity {
            self.buffers.push(buffer);
        }
    }

    fn builder(&mut self, params: BatchParams) -> BatchBuilder {
        match self.buffers.pop() {
            Some(buffer) => BatchBuilder::with_buffer(params, buffer),
            None => BatchBuilder::with_capacity(params, self.capacity),
        }
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
    /// A batch the broker did not write failed, leaving a gap in the sequences:
    /// once drained, the queued batches are renumbered ([`Self::renumber`]).
    pub renumber: bool,
}

impl PartitionQueue {
    /// Gives the queued batches that hold sequences consecutive ones from the next
    /// the broker expects, closing the gap of failed batches. Only with nothing in
    /// flight: every batch not yet acknowledged is then in the queue.
    pub fn renumber(&mut self) {
        let mut next = self.acked_next;
        for b in self.batches.iter_mut().filter(|b| b.base_sequence >= 0) {
            b.base_sequence = next;
            next = next.wrapping_add(b.records as i32) & i32::MAX;
        }
        self.next_sequence = next;
        self.renumber = false;
    }
}

/// One topic's partition queues, and what `send` needs to know of the topic.
pub(crate) struct TopicQueues {
    pub name: Arc<str>,
    /// Partition count `send` uses (from the client's metadata cache).
    pub partition_count: i32,
    /// The cached metadata was stale when last looked at: the next `send` to the
    /// topic reads the partition count again (refreshing metadata if needed).
    pub recheck: bool,
    /// Current sticky partition for unkeyed records; -1 before the first.
    sticky: i32,
    /// Indexed by partition number.
    pub queues: Vec<PartitionQueue>,
}

/// Every partition's queue plus producer-wide state; lives behind one mutex.
pub(crate) struct Accumulator {
    pub topics: Vec<TopicQueues>,
    index: HashMap<Arc<str>, usize>,
    /// Position of the topic of the previous record (most sends repeat it).
    last_topic: usize,
    pub sticky: StickyPartitioner,
    pub identity: ProducerIdentity,
    /// Set when the producer can no longer send (closed, fenced).
    pub fatal: Option<String>,
    /// The last failed metadata lookup for a topic with queued records (cleared
    /// by a successful one): why records of an unknown topic were never sent.
    pub metadata_error: Option<Error>,
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
    /// `buffer.memory`, one permit per byte.
    memory: Arc<Semaphore>,
    /// Permits taken from `memory` and not yet held by a batch (at most
    /// `memory_chunk`): most records reserve their bytes from here, without touching
    /// the semaphore. Counted against `buffer.memory` like the batches' bytes.
    credit: usize,
    memory_chunk: usize,
    pub spare: SpareBuffers,
    /// Records the first failed batch (transactional producers: what commit checks).
    pub failures: Option<Arc<super::delivery::FailureLatch>>,
}

impl Accumulator {
    pub fn new(config: &ProducerConfig, sticky: StickyPartitioner, memory: Arc<Semaphore>) -> Self {
        let compression = match config.compression {
            CompressionType::None => Compression::None,
            CompressionType::Gzip => Compression::Gzip,
            CompressionType::Snappy => Compression::Snappy,
            CompressionType::Lz4 => Compression::Lz4,
            CompressionType::Zstd => Compression::Zstd,
        };
        Accumulator {
            topics: Vec::new(),
            index: HashMap::new(),
            last_topic: 0,
            sticky,
            identity: ProducerIdentity::NONE,
            fatal: None,
            metadata_error: None,
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
            memory,
            credit: 0,
            memory_chunk: (config.buffer_memory / 16).clamp(1, MEMORY_CHUNK),
            spare: SpareBuffers {
                buffers: Vec::new(),
                capacity: config.batch_size.clamp(1, 1 << 20),
            },
            failures: config
                .transactional_id
                .is_some()
                .then(|| Arc::new(super::delivery::FailureLatch::default())),
        }
    }

    /// The position of `topic` in `topics`, if it has one.
    pub fn topic_index(&mut self, topic: &str) -> Option<usize> {
        if let Some(t) = self.topics.get(self.last_topic) {
            if *t.name == *topic {
                return Some(self.last_topic);
            }
        }
        let i = *self.index.get(topic)?;
        self.last_topic = i;
        Some(i)
    }

    /// Adds `topic` with `partition_count` partitions (or updates its count).
    pub fn add_topic(&mut self, topic: &str, partition_count: i32) -> usize {
        if let Some(i) = self.topic_index(topic) {
            self.topics[i].partition_count = partition_count;
            self.topics[i].recheck = false;
            return i;
        }
        let name: Arc<str> = Arc::from(topic);
        let i = self.topics.len();
        self.topics.push(TopicQueues {
            name: name.clone(),
            partition_count,
            recheck: false,
            sticky: -1,
            queues: Vec::new(),
        });
        self.index.insert(name, i);
        self.last_topic = i;
        i
    }

    /// The queue of `topic`-`partition`, if it has one.
    pub fn queue(&self, topic: &str, partition: i32) -> Option<&PartitionQueue> {
        let i = *self.index.get(topic)?;
        self.topics[i].queues.get(usize::try_from(partition).ok()?)
    }

    /// The queue of `topic`-`partition`, if it has one.
    pub fn queue_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionQueue> {
        let i = *self.index.get(topic)?;
        self.topics[i]
            .queues
            .get_mut(usize::try_from(partition).ok()?)
    }

    /// Every partition queue.
    pub fn queues_mut(&mut self) -> impl Iterator<Item = &mut PartitionQueue> {
        self.topics.iter_mut().flat_map(|t| t.queues.iter_mut())
    }

    /// The partition for an unkeyed record of topic `topic` (sticky, KIP-480).
    pub fn sticky_partition(&mut self, topic: usize) -> i32 {
        let t = &mut self.topics[topic];
        if t.sticky < 0 || t.sticky >= t.partition_count {
            t.sticky = self.sticky.partition(&t.name, t.partition_count);
        }
        t.sticky
    }

    /// Takes `size` bytes of `buffer.memory` for a record without waiting: from the
    /// credit, else from the semaphore (a chunk ahead when it has one). False when
    /// the memory is not there; the caller then waits with [`Self::release_credit`]
    /// and [`Self::add_credit`].
    pub fn try_reserve(&mut self, size: usize) -> bool {
        if self.credit >= size {
            self.credit -= size;
            return true;
        }
        let need = size - self.credit;
        for take in [need.max(self.memory_chunk), need] {
            let Ok(n) = u32::try_from(take) else {
                continue;
            };
            if let Ok(permit) = self.memory.try_acquire_many(n) {
                permit.forget();
                self.credit = self.credit + take - size;
                return true;
            }
        }
        false
    }

    /// Gives the credit back to the semaphore, so that a sender about to wait for
    /// memory does not hold some of it back (with a record as large as
    /// `buffer.memory`, that would wait forever).
    pub fn release_credit(&mut self) {
        self.memory.add_permits(std::mem::take(&mut self.credit));
    }

    /// Adds permits a waiting sender got from the semaphore (and `forget`).
    pub fn add_credit(&mut self, permits: usize) {
        self.credit += permits;
    }

    /// Appends a record to the open batch of partition `partition` of topic
    /// `topic` (opening one when needed). The record's `size` bytes of
    /// `buffer.memory` must be reserved already ([`Self::try_reserve`]). Returns the
    /// record's delivery future, whether the sender should wake (a batch opened or
    /// filled up, or no linger) and whether a batch was opened.
    pub fn append(
        &mut self,
        topic: usize,
        partition: i32,
        record: &ProducerRecord,
        timestamp: i64,
        size: usize,
        sticky: bool,
    ) -> Result<(DeliveryFuture, bool, bool)> {
        let id = self.appended;
        let no_queue = || Error::Encode {
            context: "producer",
            message: format!("no queue for partition {partition}"),
        };
        let slot = usize::try_from(partition).map_err(|_| no_queue())?;
        let t = self.topics.get_mut(topic).ok_or_else(no_queue)?;
        if t.queues.len() <= slot {
            t.queues.resize_with(slot + 1, PartitionQueue::default);
        }
        let queue = &mut t.queues[slot];
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
            queue.batches.push_back(Batch {
                completion: BatchCompletion::watched(
                    t.name.clone(),
                    partition,
                    self.failures.clone(),
                ),
                topic: t.name.clone(),
                partition,
                builder: Some(self.spare.builder(self.params)),
                encoded: None,
                records: 0,
                reserved: 0,
                created: Instant::now(),
                closed: false,
                first_id: id,
                base_sequence: -1,
                stamped: None,
                attempts: 0,
                retry_at: None,
                sent: false,
                unanswered: false,
                last_error: None,
            });
            *self.outstanding.entry(id).or_default() += 1;
        }
        let Some(batch) = queue.batches.back_mut() else {
            return Err(no_queue());
        };
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
        batch.reserved += size;
        if builder.uncompressed_size() >= self.batch_size {
            batch.closed = true;
            filled = true;
        }
        self.appended += 1;
        if filled && sticky {
            t.sticky = self
                .sticky
                .batch_complete(&t.name, partition, t.partition_count);
        }
        Ok((future, filled || opened || self.linger.is_zero(), opened))
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
        self.topics
            .iter()
            .flat_map(|t| t.queues.iter())
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
        self.memory.add_permits(std::mem::take(&mut batch.reserved));
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
        for q in self.queues_mut() {
            all.extend(q.batches.drain(..));
        }
        for mut b in all {
            self.finished(&mut b);
            b.complete(Err(&error()));
        }
    }

    /// Packs the records of a drained batch of more than one record into parts of
    /// about half its records' bytes each, in record order, compressed with the
    /// batch's codec (see [`Self::split`]).
    pub fn split_parts(&self, batch: &Batch) -> Result<Vec<SplitPart>> {
        split_records(batch, self.params)
    }

    /// Replaces `batch` by `parts` (from [`Self::split_parts`]). The parts share the
    /// batch's sequence range (a part starts at the batch's base sequence plus the
    /// records before it), its delivery futures, memory and age.
    pub fn split(&mut self, batch: Batch, parts: Vec<SplitPart>) -> Vec<Batch> {
        if parts.is_empty() {
            return vec![batch];
        }
        let starts: Vec<u32> = parts.iter().map(|p| p.start).collect();
        let total: usize = parts.iter().map(|p| p.bytes).sum::<usize>().max(1);
        let mut reserved_left = batch.reserved;
        let last = parts.len() - 1;
        let completions = batch.completion.split(&starts);
        let out: Vec<Batch> = parts
            .into_iter()
            .zip(completions)
            .enumerate()
            .map(|(i, (part, completion))| {
                let reserved = if i == last {
                    reserved_left
                } else {
                    (batch.reserved as u128 * part.bytes as u128 / total as u128) as usize
                };
                reserved_left -= reserved;
                Batch {
                    topic: batch.topic.clone(),
                    partition: batch.partition,
                    records: part.builder.len() as u32,
                    builder: Some(part.builder),
                    encoded: None,
                    completion,
                    reserved,
                    created: batch.created,
                    closed: true,
                    first_id: batch.first_id,
                    base_sequence: if batch.base_sequence >= 0 {
                        batch.base_sequence.wrapping_add(part.start as i32) & i32::MAX
                    } else {
                        -1
                    },
                    stamped: None,
                    attempts: batch.attempts,
                    retry_at: None,
                    sent: batch.sent,
                    unanswered: batch.unanswered,
                    last_error: batch.last_error.clone(),
                }
            })
            .collect();
        *self.outstanding.entry(batch.first_id).or_default() += out.len() - 1;
        out
    }

    /// Clears the sequence numbers of every queued batch and restarts each
    /// partition's sequence at 0 (after an epoch bump).
    pub fn reset_sequences(&mut self) {
        for q in self.queues_mut() {
            q.next_sequence = 0;
            q.acked_next = 0;
            q.confirmed = false;
            q.draining = false;
            q.renumber = false;
            for b in &mut q.batches {
                b.base_sequence = -1;
            }
        }
    }
}

/// One part of a split batch.
pub(crate) struct SplitPart {
    /// Index in the split batch of the part's first record.
    start: u32,
    /// Estimated bytes of the part's records.
    bytes: usize,
    builder: BatchBuilder,
}

/// Decodes a drained batch and packs its records into parts of about half their
/// bytes; at least two parts, none empty.
fn split_records(batch: &Batch, params: BatchParams) -> Result<Vec<SplitPart>> {
    let bytes = batch.encoded.clone().ok_or_else(|| Error::Encode {
        context: "producer batch split",
        message: "batch was never encoded".into(),
    })?;
    // Our own bytes: no CRC check, no decompression limit.
    let decoded = RecordBatch::decode_v2(bytes, false, usize::MAX)?;
    let records: Vec<Record> = decoded.records().collect::<Result<_>>()?;
    if records.len() < 2 {
        return Err(Error::Encode {
            context: "producer batch split",
            message: format!("a batch of {} record cannot be split", records.len()),
        });
    }
    let params = BatchParams {
        compression: decoded.compression(),
        transactional: decoded.is_transactional(),
        ..params
    };
    let sizes: Vec<usize> = records
        .iter()
        .map(|r| record_size(r.key.as_ref(), r.value.as_ref(), &r.headers))
        .collect();
    let target = sizes.iter().sum::<usize>() / 2;
    let mut parts: Vec<SplitPart> = Vec::new();
    for (i, (record, size)) in records.iter().zip(sizes).enumerate() {
        if parts.last().is_none_or(|p| p.bytes + size > target) {
            parts.push(SplitPart {
                start: i as u32,
                bytes: 0,
                builder: BatchBuilder::with_capacity(params, target + size),
            });
        }
        if let Some(part) = parts.last_mut() {
            part.builder.append_record(record)?;
            part.bytes += size;
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accumulator(buffer_memory: usize) -> (Accumulator, Arc<Semaphore>) {
        let props = [
            ("bootstrap.servers", "127.0.0.1:1"),
            ("buffer.memory", &buffer_memory.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = ProducerConfig::from_properties(&props).unwrap();
        let memory = Arc::new(Semaphore::new(buffer_memory));
        let acc = Accumulator::new(&config, StickyPartitioner::new(), memory.clone());
        (acc, memory)
    }

    #[test]
    fn reservations_and_credit_stay_within_buffer_memory() {
        let (mut acc, memory) = accumulator(65536);
        let mut reserved = 0;
        while acc.try_reserve(1000) {
            reserved += 1000;
            assert_eq!(reserved + acc.credit + memory.available_permits(), 65536);
        }
        // Fails only when less than a record is left, credit included.
        assert!(acc.credit + memory.available_permits() < 1000);
        acc.release_credit();
        assert_eq!(acc.credit, 0);
        assert_eq!(reserved + memory.available_permits(), 65536);
    }

    #[test]
    fn a_sender_waiting_for_memory_can_get_all_of_buffer_memory() {
        let (mut acc, memory) = accumulator(65536);
        assert!(acc.try_reserve(100));
        assert!(acc.credit > 0);
        assert!(!acc.try_reserve(65536));
        // What `send` does before it waits on the semaphore for the whole record.
        acc.release_credit();
        assert_eq!(acc.credit, 0);
        memory.add_permits(100); // the small record's batch is finished
        assert_eq!(memory.available_permits(), 65536);
    }

    #[test]
    fn appended_records_count_against_their_batch_until_it_is_finished() {
        let (mut acc, memory) = accumulator(65536);
        let t = acc.add_topic("t", 2);
        let record = ProducerRecord::new("t", vec![0u8; 100]);
        let size = estimated_size(&record);
        assert!(acc.try_reserve(size));
        let (_future, _, opened) = acc.append(t, 1, &record, 0, size, true).unwrap();
        assert!(opened);
        acc.release_credit();
        assert_eq!(memory.available_permits(), 65536 - size);
        let mut batch = acc.topics[t].queues[1].batches.pop_front().unwrap();
        acc.finished(&mut batch);
        assert_eq!(memory.available_permits(), 65536);
        assert!(acc.is_empty());
    }

    #[test]
    fn split_parts_share_the_batch_sequences_memory_and_flush_entry() {
        let (mut acc, memory) = accumulator(1 << 20);
        let t = acc.add_topic("t", 1);
        let mut futures = Vec::new();
        for i in 0..10 {
            let record = ProducerRecord::new("t", vec![i as u8; 100 + 10 * i]);
            let size = estimated_size(&record);
            assert!(acc.try_reserve(size));
            futures.push(acc.append(t, 0, &record, i as i64, size, true).unwrap().0);
        }
        acc.release_credit();
        let mut batch = acc.topics[t].queues[0].batches.pop_front().unwrap();
        batch.base_sequence = i32::MAX - 3;
        let identity = ProducerIdentity {
            producer_id: 7,
            producer_epoch: 1,
        };
        batch.seal(identity).unwrap();
        let reserved = batch.reserved;
        let parts = acc.split_parts(&batch).unwrap();
        let parts = acc.split(batch, parts);
        assert!(parts.len() >= 2);
        let mut next = i32::MAX - 3;
        for p in &parts {
            assert!(p.record_count() < 10 && p.record_count() > 0);
            assert_eq!(p.base_sequence, next);
            next = next.wrapping_add(p.record_count() as i32) & i32::MAX;
        }
        assert_eq!(next, 6);
        assert_eq!(parts.iter().map(|p| p.reserved).sum::<usize>(), reserved);
        let target = acc.appended;
        for mut p in parts {
            assert!(!acc.completed_through(target));
            acc.finished(&mut p);
        }
        assert!(acc.completed_through(target));
        assert_eq!(memory.available_permits(), 1 << 20);
    }
}
