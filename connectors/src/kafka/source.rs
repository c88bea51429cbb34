//! [`KafkaSource`]: the partitions this process owns in the pipeline's consumer
//! group, one split per partition.
//!
//! ```text
//!  fetch task (fetch.rs): GroupConsumer::poll_batches ──chunks──► one bounded queue per partition
//!                                                                     │
//!  source task: KafkaSplit::poll_next ◄───────────────────────────────┘ decode (Format),
//!               bad records per BadRecordPolicy (fail / skip / dead-letter topic)
//!  barrier n:   KafkaSplit::checkpoint(n) records (topic, partition) -> next offset,
//!               committed in checkpoint n's transaction (store.rs)
//! ```
//!
//! A split's key group is its partition number, so `key_by_source_partition` keeps
//! state with the partition. Bounded sources stop each partition at the end
//! offset (last stable offset under read_committed) taken when the job started.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use engine::{
    CheckpointId, EngineError, ErrorClass, Position, Record, Source, SourceSplit, SplitEvent,
    SplitTime,
};
use kafka_wire::client::consumer::ConsumerRecord;
use kafka_wire::client::group::assignor::TopicPartition;
use tokio::sync::mpsc;

use super::message::KafkaMessage;
use super::repartition::{MARKER_HEADER, Marker, MarkerClock};
use super::scope::{DeadLetterRecord, Incarnation, KafkaScope, PartitionFeed};
use crate::format::{Format, FormatError, Raw};
use crate::sync::lock;

/// Decodes one consumed record into a stream value.
type Decoder<T> = Arc<dyn Fn(&ConsumerRecord) -> Result<T, FormatError> + Send + Sync>;

/// What happens to a record whose bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BadRecordPolicy {
    /// Fail the job (the default): the record is named in the error.
    #[default]
    Fail,
    /// Skip it and count it (`strom_kafka_bad_records_total{policy="skip"}`).
    Skip,
    /// Write it to this dead-letter topic with its original key, value and
    /// headers, plus headers naming the error and where it came from
    /// (`strom.error`, `strom.source.topic`, `.partition`, `.offset`); inside the
    /// checkpoint's transaction, so it appears exactly once.
    DeadLetter(String),
}

/// What a source asked for, read by the job runner when it plans an incarnation.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceSpec {
    pub topics: Vec<String>,
    pub bounded: bool,
    pub bad_records: BadRecordPolicy,
    /// A repartition topic: watermark markers set the splits' event time.
    pub repartition: bool,
}

/// A Kafka source: reads its topics through the pipeline's consumer group (or,
/// bounded, every partition up to the end offsets taken at start).
///
/// Build it from a [`KafkaScope`] inside [`super::KafkaJob::run`]; its values come
/// from the record value through a [`Format`] (raw bytes by default).
pub struct KafkaSource<T> {
    scope: KafkaScope,
    spec: Arc<Mutex<SourceSpec>>,
    decode: Decoder<T>,
    name: String,
}

impl KafkaSource<Bytes> {
    pub(crate) fn new(scope: KafkaScope, spec: Arc<Mutex<SourceSpec>>) -> KafkaSource<Bytes> {
        let decode: Decoder<Bytes> =
            Arc::new(|r: &ConsumerRecord| Raw.deserialize(r.value.as_deref()));
        KafkaSource {
            scope,
            spec,
            decode,
            name: "kafka".into(),
        }
    }
}

impl<T: Send + 'static> KafkaSource<T> {
    fn spec(&self) -> std::sync::MutexGuard<'_, SourceSpec> {
        lock(&self.spec)
    }

    /// The topics to read.
    pub fn topics<I, S>(self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        let name = format!("kafka:{}", topics.join(","));
        self.spec().topics = topics;
        KafkaSource { name, ..self }
    }

    /// Reads what the partitions hold when the job starts, then ends (windows
    /// flush, sinks commit, the job finishes).
    pub fn bounded(self) -> Self {
        self.spec().bounded = true;
        self
    }

    /// What to do with records that do not decode.
    pub fn on_bad_record(self, policy: BadRecordPolicy) -> Self {
        self.spec().bad_records = policy;
        self
    }

    /// Decodes values with `format`.
    pub fn format<U: Send + 'static>(self, format: impl Format<U>) -> KafkaSource<U> {
        self.decode_records(move |r: &ConsumerRecord| format.deserialize(r.value.as_deref()))
    }

    /// Decodes each record with `decode`, which sees its key as well as its
    /// value (key columns of a SQL table, for instance).
    pub fn decode_records<U: Send + 'static>(
        self,
        decode: impl Fn(&ConsumerRecord) -> Result<U, FormatError> + Send + Sync + 'static,
    ) -> KafkaSource<U> {
        KafkaSource {
            scope: self.scope,
            spec: self.spec,
            decode: Arc::new(decode),
            name: self.name,
        }
    }

    /// Wraps every value with its key, headers, timestamp and offset.
    pub fn with_metadata(self) -> KafkaSource<KafkaMessage<T>> {
        let inner = self.decode;
        let decode: Decoder<KafkaMessage<T>> = Arc::new(move |r: &ConsumerRecord| {
            Ok(KafkaMessage {
                value: inner(r)?,
                key: r.key.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            String::from_utf8_lossy(&h.key).into_owned(),
                            h.value.clone(),
                        )
                    })
                    .collect(),
                timestamp: r.timestamp,
                topic: r.topic.clone(),
                partition: r.partition,
                offset: r.offset,
            })
        });
        KafkaSource {
            scope: self.scope,
            spec: self.spec,
            decode,
            name: self.name,
        }
    }
}

impl<T: Send + 'static> Source<T> for KafkaSource<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_bounded(&self) -> bool {
        self.spec().bounded
    }

    fn checkpoints_positions(&self) -> bool {
        false
    }

    fn create_splits(&mut self) -> engine::Result<Vec<Box<dyn SourceSplit<T>>>> {
        let incarnation = self.running()?;
        let feeds = incarnation.take_feeds(&self.spec().topics);
        Ok(self.splits_of(incarnation, feeds))
    }

    fn adopt_splits(
        &mut self,
        key_groups: &BTreeSet<u16>,
    ) -> engine::Result<Vec<Box<dyn SourceSplit<T>>>> {
        let incarnation = self.running()?;
        let feeds = incarnation.take_adopted_feeds(&self.spec().topics, key_groups);
        Ok(self.splits_of(incarnation, feeds))
    }
}

impl<T: Send + 'static> KafkaSource<T> {
    /// The incarnation this source runs in.
    fn running(&self) -> engine::Result<Arc<Incarnation>> {
        self.scope.incarnation().ok_or_else(|| {
            EngineError::InvalidPipeline(
                "a KafkaSource runs inside KafkaJob::run (it needs the job's group membership)"
                    .into(),
            )
        })
    }

    fn splits_of(
        &self,
        incarnation: Arc<Incarnation>,
        feeds: Vec<(TopicPartition, PartitionFeed)>,
    ) -> Vec<Box<dyn SourceSplit<T>>> {
        let spec = self.spec().clone();
        let mut splits: Vec<Box<dyn SourceSplit<T>>> = Vec::with_capacity(feeds.len());
        for (tp, feed) in feeds {
            let mut split = KafkaSplit::new(
                tp,
                feed,
                self.decode.clone(),
                spec.bad_records.clone(),
                incarnation.clone(),
            );
            if spec.repartition {
                split.clock = Some(MarkerClock::default());
            }
            splits.push(Box::new(split));
        }
        splits
    }
}

/// One assigned partition.
struct KafkaSplit<T> {
    tp: TopicPartition,
    label: String,
    rx: Option<mpsc::Receiver<Chunk>>,
    buf: VecDeque<ConsumerRecord>,
    /// The next offset after the chunk being handed out.
    chunk_next: i64,
    /// The next offset to hand out.
    position: i64,
    /// Bounded: stop here.
    end: Option<i64>,
    decode: Decoder<T>,
    policy: BadRecordPolicy,
    incarnation: Arc<Incarnation>,
    bad: metrics::Counter,
    bytes: metrics::Counter,
    status: Arc<engine::PartitionStatus>,
    /// A repartition topic's partition: its event time, from the markers.
    clock: Option<MarkerClock>,
}

/// Records of one partition from one fetch.
pub(crate) struct Chunk {
    pub records: Vec<ConsumerRecord>,
    pub next_offset: i64,
}

impl<T: Send + 'static> KafkaSplit<T> {
    fn new(
        tp: TopicPartition,
        feed: PartitionFeed,
        decode: Decoder<T>,
        policy: BadRecordPolicy,
        incarnation: Arc<Incarnation>,
    ) -> Self {
        let label = format!("{}-{}", tp.0, tp.1);
        let policy_label = match &policy {
            BadRecordPolicy::Fail => "fail",
            BadRecordPolicy::Skip => "skip",
            BadRecordPolicy::DeadLetter(_) => "dead-letter",
        };
        KafkaSplit {
            bad: metrics::counter!("strom_kafka_bad_records_total", "topic" => tp.0.clone(), "policy" => policy_label),
            bytes: metrics::counter!("strom_source_bytes_total", "topic" => tp.0.clone(), "partition" => tp.1.to_string()),
            status: {
                feed.status.set_position(feed.start);
                feed.status.clone()
            },
            label,
            tp,
            rx: Some(feed.rx),
            buf: VecDeque::new(),
            chunk_next: feed.start,
            position: feed.start,
            end: feed.end,
            decode,
            policy,
            incarnation,
            clock: None,
        }
    }

    /// Takes in a repartition topic's watermark marker; `false` when `r` is
    /// not one.
    fn marker(&mut self, r: &ConsumerRecord) -> engine::Result<bool> {
        let Some(clock) = self.clock.as_mut() else {
            return Ok(false);
        };
        if !r
            .headers
            .iter()
            .any(|h| h.key.as_ref() == MARKER_HEADER.as_bytes())
        {
            return Ok(false);
        }
        let marker = Marker::decode(r.value.as_deref()).map_err(|e| {
            EngineError::external(
                format!("record {} at offset {}", self.label, r.offset),
                e,
                ErrorClass::Fatal,
            )
        })?;
        clock.observe(marker);
        Ok(true)
    }

    fn ended(&self) -> bool {
        self.end.is_some_and(|end| self.position >= end)
    }

    fn bad_record(&mut self, r: &ConsumerRecord, e: FormatError) -> engine::Result<()> {
        self.bad.increment(1);
        match &self.policy {
            BadRecordPolicy::Fail => Err(EngineError::external(
                format!(
                    "record {} at offset {} does not decode",
                    self.label, r.offset
                ),
                e,
                ErrorClass::Fatal,
            )),
            BadRecordPolicy::Skip => {
                tracing::debug!(partition = %self.label, offset = r.offset, error = %e, "bad record skipped");
                Ok(())
            }
            BadRecordPolicy::DeadLetter(topic) => {
                tracing::debug!(partition = %self.label, offset = r.offset, error = %e, "bad record to the dead-letter topic");
                self.incarnation.dead_letter(DeadLetterRecord {
                    topic: topic.clone(),
                    source: self.tp.clone(),
                    offset: r.offset,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r.headers.clone(),
                    timestamp: r.timestamp,
                    error: e.to_string(),
                });
                Ok(())
            }
        }
    }
}

impl<T: Send + 'static> SourceSplit<T> for KafkaSplit<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<engine::Result<SplitEvent<T>>> {
        loop {
            if self.ended() {
                // Stop the fetch task feeding an ended partition.
                self.rx = None;
                return Poll::Ready(Ok(SplitEvent::End));
            }
            if self.buf.is_empty() {
                let Some(rx) = self.rx.as_mut() else {
                    return Poll::Pending;
                };
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(chunk)) => {
                        self.buf = chunk.records.into();
                        self.chunk_next = chunk.next_offset;
                        if self.buf.is_empty() {
                            self.position = self.position.max(self.chunk_next);
                            self.status.set_position(self.position);
                        }
                        continue;
                    }
                    // The fetch task ended: the incarnation is being torn down.
                    Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                }
            }
            let mut out = Vec::with_capacity(max.min(self.buf.len()));
            // Whether a marker moved the split's event time.
            let mut moved = false;
            while out.len() < max {
                let Some(r) = self.buf.pop_front() else { break };
                if r.offset < self.position {
                    continue;
                }
                if self.end.is_some_and(|end| r.offset >= end) {
                    self.buf.clear();
                    self.position = self.end.unwrap_or(self.position);
                    break;
                }
                self.position = r.offset + 1;
                match self.marker(&r) {
                    Ok(true) => {
                        moved = true;
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                self.bytes.increment(
                    (r.key.as_ref().map_or(0, |k| k.len())
                        + r.value.as_ref().map_or(0, |v| v.len())) as u64,
                );
                match (self.decode)(&r) {
                    Ok(value) => out.push(Record {
                        value,
                        timestamp: r.timestamp,
                        position: Position::offset_only(r.offset.max(0) as u64),
                    }),
                    Err(e) => {
                        if let Err(e) = self.bad_record(&r, e) {
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
            if self.buf.is_empty() {
                self.position = self.position.max(self.chunk_next);
            }
            self.status.set_position(self.position);
            if !out.is_empty() || moved {
                return Poll::Ready(Ok(SplitEvent::Records(out)));
            }
        }
    }

    fn position(&self) -> u64 {
        self.position.max(0) as u64
    }

    fn caught_up(&self) -> bool {
        self.buf.is_empty() && self.status.lag() == Some(0)
    }

    fn restore(&mut self, _position: u64) -> engine::Result<()> {
        // Positions come from the group's committed offsets, not the checkpoint.
        Ok(())
    }

    fn checkpoint(&mut self, checkpoint: CheckpointId) -> engine::Result<()> {
        self.incarnation
            .record_position(checkpoint, self.tp.clone(), self.position);
        Ok(())
    }

    fn key_group(&self) -> Option<u16> {
        u16::try_from(self.tp.1).ok()
    }

    fn status(&self) -> Option<Arc<engine::PartitionStatus>> {
        Some(self.status.clone())
    }

    fn event_time(&self) -> Option<SplitTime> {
        self.clock.as_ref().map(MarkerClock::time)
    }
}

impl<T> Drop for KafkaSplit<T> {
    fn drop(&mut self) {
        self.incarnation
            .record_final(self.tp.clone(), self.position);
    }
}
