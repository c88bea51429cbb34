//! [`KafkaSink`]: writes a stream to a topic through the process's producer.
//!
//! Exactly-once: records go into the open transaction; at barrier n the sink
//! waits for its records' acknowledgements, and the records that reach it after
//! barrier n wait (the sink stops reading its input: backpressure) until
//! checkpoint n's transaction committed. At-least-once: records go out with the
//! idempotent producer and the barrier waits for their acknowledgements.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engine::{CheckpointId, EngineError, ErrorClass, NO_TIMESTAMP, Record, Sink, SinkContext};
use kafka_wire::client::ProducerRecord;
use serde::Serialize;

use super::repartition::{MARKER_HEADER, MarkerHold, SinkTime, partition_of};
use super::scope::KafkaScope;
use super::writer::{Delivery, Writer};
use crate::error::engine_error;
use crate::format::{Format, FormatError, to_json};
use crate::sync::lock;
use kafka_wire::records::Header;

/// Encodes a value into its record's value bytes.
type ValueEncoder<T> = Arc<dyn Fn(&T) -> Result<Option<Bytes>, FormatError> + Send + Sync>;
/// A record's key from its value.
type KeyFn<T> = Arc<dyn Fn(&T) -> Option<Bytes> + Send + Sync>;
/// The bytes of a value's key on a repartition topic.
pub(crate) type KeyBytes<T> = Arc<dyn Fn(&T) -> Vec<u8> + Send + Sync>;

/// Deliveries a sink keeps in flight before it waits for the oldest.
const MAX_IN_FLIGHT: usize = 20_000;
/// Records of a batch encoded and sent at a time.
const SEND_CHUNK: usize = 1024;
/// Records an exactly-once sink holds while the previous checkpoint commits
/// before it waits for the commit.
const MAX_HELD: usize = 16 * SEND_CHUNK;

/// What a sink asked for, read by the job runner.
#[derive(Debug, Clone)]
pub(crate) struct SinkSpec {
    pub topic: String,
    pub exactly_once: bool,
    /// A repartition topic (created by the job, its partition count set).
    pub repartition: bool,
}

impl SinkSpec {
    pub(crate) fn new(topic: &str) -> SinkSpec {
        SinkSpec {
            topic: topic.to_string(),
            exactly_once: false,
            repartition: false,
        }
    }
}

/// A Kafka sink (one instance per sink subtask). At-least-once unless
/// [`KafkaSink::exactly_once`]: then every checkpoint commits the process's one
/// transaction, holding this sink's records, the pipeline's state changes and its
/// input offsets.
pub struct KafkaSink<T> {
    scope: KafkaScope,
    spec: Arc<Mutex<SinkSpec>>,
    topic: String,
    value: ValueEncoder<T>,
    key: Option<KeyFn<T>>,
    /// A repartition topic's key: it also picks the partition.
    repartition: Option<KeyBytes<T>>,
    /// This instance's subtask and the sink's parallelism (from `open`).
    subtask: usize,
    parallelism: usize,
    writer: Option<Arc<Writer>>,
    in_flight: VecDeque<Delivery>,
    /// Exactly-once: the checkpoint whose commit the next record waits for.
    gate: Option<CheckpointId>,
    /// Exactly-once: records that came after the gate's barrier, held (at most
    /// [`MAX_HELD`]) while its checkpoint commits, so the pipeline runs on
    /// meanwhile; sent, into the next transaction, once it committed.
    held: Vec<ProducerRecord>,
    records: metrics::Counter,
}

impl<T> Clone for KafkaSink<T> {
    fn clone(&self) -> Self {
        KafkaSink {
            scope: self.scope.clone(),
            spec: self.spec.clone(),
            topic: self.topic.clone(),
            value: self.value.clone(),
            key: self.key.clone(),
            repartition: self.repartition.clone(),
            subtask: 0,
            parallelism: 1,
            writer: None,
            in_flight: VecDeque::new(),
            gate: None,
            held: Vec::new(),
            records: self.records.clone(),
        }
    }
}

impl<T: Serialize + Send + 'static> KafkaSink<T> {
    pub(crate) fn new(scope: KafkaScope, spec: Arc<Mutex<SinkSpec>>) -> KafkaSink<T> {
        KafkaSink::with_value(scope, spec, Arc::new(|v: &T| to_json(v)))
    }
}

impl<T: Send + 'static> KafkaSink<T> {
    fn with_value(
        scope: KafkaScope,
        spec: Arc<Mutex<SinkSpec>>,
        value: ValueEncoder<T>,
    ) -> KafkaSink<T> {
        let topic = lock(&spec).topic.clone();
        KafkaSink {
            scope,
            spec,
            records: metrics::counter!("strom_kafka_sink_records_total", "topic" => topic.clone()),
            topic,
            value,
            key: None,
            repartition: None,
            subtask: 0,
            parallelism: 1,
            writer: None,
            in_flight: VecDeque::new(),
            gate: None,
            held: Vec::new(),
        }
    }

    /// The writing end of a repartition topic (see `repartition.rs`).
    pub(crate) fn repartition(
        scope: KafkaScope,
        spec: Arc<Mutex<SinkSpec>>,
        format: impl Format<T>,
        key: KeyBytes<T>,
    ) -> KafkaSink<T> {
        let value: ValueEncoder<T> = Arc::new(move |v: &T| format.serialize(v));
        KafkaSink {
            repartition: Some(key),
            ..KafkaSink::with_value(scope, spec, value)
        }
    }

    /// Writes this process's watermark marker into every partition of the
    /// repartition topic (once per process: subtask 0 writes it).
    async fn write_markers(&mut self) -> engine::Result<()> {
        if self.repartition.is_none() || self.subtask != 0 {
            return Ok(());
        }
        let (Some(writer), Some(incarnation)) = (self.writer.clone(), self.scope.incarnation())
        else {
            return Ok(());
        };
        let Some(marker) = incarnation.marker(&self.topic) else {
            return Ok(());
        };
        let value = marker.encode().map_err(|e| {
            EngineError::external(
                format!("encoding a marker for {}", self.topic),
                e,
                ErrorClass::Fatal,
            )
        })?;
        let partitions = self
            .scope
            .repartition_partitions()
            .load(std::sync::atomic::Ordering::Relaxed);
        let records = (0..i32::from(partitions))
            .map(|p| ProducerRecord {
                topic: self.topic.clone(),
                partition: Some(p),
                value: Some(value.clone()),
                headers: vec![Header::new(MARKER_HEADER, Some(Bytes::from_static(b"1")))],
                ..Default::default()
            })
            .collect();
        let sent = writer
            .send_all(records)
            .await
            .map_err(|e| self.fail("sending watermark markers", e))?;
        self.in_flight.extend(sent);
        Ok(())
    }

    /// A repartition topic's markers must not run ahead of adopted partitions
    /// ([`MarkerHold`]).
    fn hold_markers(&self, change: impl FnOnce(&mut MarkerHold)) {
        if self.repartition.is_none() {
            return;
        }
        if let Some(incarnation) = self.scope.incarnation() {
            incarnation.hold_markers(&self.topic, change);
        }
    }

    fn report_time(&self, time: SinkTime) {
        if self.repartition.is_none() {
            return;
        }
        if let Some(incarnation) = self.scope.incarnation() {
            incarnation.sink_time(&self.topic, self.subtask, self.parallelism, time);
        }
    }
}

/// What a sink promises about its records when the job fails and restarts
/// (Flink's `sink.delivery-guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryGuarantee {
    /// Every record arrives; some may arrive twice after a failure.
    #[default]
    AtLeastOnce,
    /// Every record arrives once for read_committed readers.
    ExactlyOnce,
}

impl<T: Send + 'static> KafkaSink<T> {
    /// Every checkpoint is one Kafka transaction (records, state, offsets).
    pub fn exactly_once(self) -> Self {
        self.delivery(DeliveryGuarantee::ExactlyOnce)
    }

    /// Sets the delivery guarantee (at-least-once by default). One exactly-once
    /// sink makes the whole process transactional: its other Kafka sinks then
    /// write inside the same transactions.
    pub fn delivery(self, guarantee: DeliveryGuarantee) -> Self {
        lock(&self.spec).exactly_once = guarantee == DeliveryGuarantee::ExactlyOnce;
        self
    }

    /// Values are encoded with `format` (JSON by default).
    pub fn format(self, format: impl Format<T>) -> Self {
        let value: ValueEncoder<T> = Arc::new(move |v: &T| format.serialize(v));
        KafkaSink { value, ..self }
    }

    /// The record key of each value (the default partitioner then sends equal
    /// keys to one partition); no key by default.
    pub fn key(self, key: impl Fn(&T) -> Option<Bytes> + Send + Sync + 'static) -> Self {
        KafkaSink {
            key: Some(Arc::new(key)),
            ..self
        }
    }

    fn fail(&self, context: &str, e: kafka_wire::Error) -> EngineError {
        engine_error(format!("writing to {}: {context}", self.topic), e)
    }

    /// Encodes `chunk` as producer records.
    fn encode(&self, chunk: Vec<Record<T>>) -> engine::Result<Vec<ProducerRecord>> {
        let mut records = Vec::with_capacity(chunk.len());
        for r in &chunk {
            let value = (self.value)(&r.value).map_err(|e| {
                EngineError::external(
                    format!("encoding a record for {}", self.topic),
                    e,
                    ErrorClass::Fatal,
                )
            })?;
            let (key, partition) = match &self.repartition {
                Some(key_bytes) => {
                    let key = key_bytes(&r.value);
                    let partition = partition_of(&key, &self.scope.repartition_partitions());
                    (Some(Bytes::from(key)), Some(i32::from(partition)))
                }
                None => (self.key.as_ref().and_then(|k| k(&r.value)), None),
            };
            records.push(ProducerRecord {
                topic: self.topic.clone(),
                partition,
                key,
                value,
                timestamp: (r.timestamp != NO_TIMESTAMP && r.timestamp >= 0).then_some(r.timestamp),
                ..Default::default()
            });
        }
        Ok(records)
    }

    /// Hands `records` to the producer, keeping their deliveries.
    async fn send(&mut self, writer: &Writer, records: Vec<ProducerRecord>) -> engine::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.records.increment(records.len() as u64);
        let sent = writer
            .send_all(records)
            .await
            .map_err(|e| self.fail("sending", e))?;
        self.in_flight.extend(sent);
        Ok(())
    }

    /// Exactly-once: once the gate's checkpoint committed (waiting for it with
    /// `wait`), opens the gate and sends the held records.
    async fn open_gate(&mut self, writer: &Writer, wait: bool) -> engine::Result<bool> {
        let Some(n) = self.gate else {
            return Ok(true);
        };
        if wait {
            writer.wait_committed(n).await;
        } else if !writer.is_committed(n) {
            return Ok(false);
        }
        self.gate = None;
        let held = std::mem::take(&mut self.held);
        self.send(writer, held).await?;
        Ok(true)
    }

    async fn await_oldest(&mut self, keep: usize) -> engine::Result<()> {
        while self.in_flight.len() > keep {
            if let Some(d) = self.in_flight.pop_front() {
                d.await.map_err(|e| self.fail("a record failed", e))?;
            }
        }
        Ok(())
    }
}

impl<T: Send + 'static> Sink<T> for KafkaSink<T> {
    fn name(&self) -> &str {
        "kafka-sink"
    }

    fn kind(&self) -> &str {
        "kafka"
    }

    async fn open(&mut self, ctx: &SinkContext) -> engine::Result<()> {
        self.subtask = ctx.subtask;
        self.parallelism = ctx.parallelism;
        let incarnation = self.scope.incarnation().ok_or_else(|| {
            EngineError::InvalidPipeline("a KafkaSink runs inside KafkaJob::run".into())
        })?;
        self.writer = Some(incarnation.writer.clone());
        Ok(())
    }

    async fn write(&mut self, batch: Vec<Record<T>>) -> engine::Result<()> {
        let Some(writer) = self.writer.clone() else {
            return Err(EngineError::InvalidPipeline(
                "KafkaSink written before open".into(),
            ));
        };
        // Encoded and sent a chunk at a time: a window firing hands over every
        // key's result in one batch, and its producer records need not all exist
        // at once.
        let mut rest = batch.into_iter();
        loop {
            let chunk: Vec<Record<T>> = rest.by_ref().take(SEND_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            let records = self.encode(chunk)?;
            let full = self.held.len() + records.len() > MAX_HELD;
            if !self.open_gate(&writer, full).await? {
                self.held.extend(records);
                continue;
            }
            self.send(&writer, records).await?;
        }
        if self.in_flight.len() > MAX_IN_FLIGHT {
            self.await_oldest(MAX_IN_FLIGHT / 2).await?;
        }
        Ok(())
    }

    fn adopted(
        &mut self,
        checkpoint: CheckpointId,
        key_groups: &BTreeSet<u16>,
    ) -> engine::Result<()> {
        self.hold_markers(|h| h.adopted(checkpoint, key_groups));
        Ok(())
    }

    fn caught_up(&mut self, key_group: u16) -> engine::Result<()> {
        self.hold_markers(|h| h.caught_up(key_group));
        Ok(())
    }

    fn released(&mut self, key_groups: &BTreeSet<u16>) -> engine::Result<()> {
        self.hold_markers(|h| h.released(key_groups));
        Ok(())
    }

    async fn watermark(&mut self, watermark: i64) -> engine::Result<()> {
        self.report_time(SinkTime {
            watermark: Some(watermark),
            idle: false,
        });
        Ok(())
    }

    async fn idle(&mut self, idle: bool) -> engine::Result<()> {
        if let Some(incarnation) = self.scope.incarnation() {
            let mut time = incarnation.sink_time_of(&self.topic, self.subtask);
            time.idle = idle;
            self.report_time(time);
        }
        Ok(())
    }

    async fn pre_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<Vec<u8>> {
        if let Some(writer) = self.writer.clone() {
            self.open_gate(&writer, true).await?;
        }
        self.write_markers().await?;
        self.await_oldest(0).await?;
        if self.writer.as_ref().is_some_and(|w| w.exactly_once()) {
            self.gate = Some(checkpoint);
        }
        Ok(Vec::new())
    }

    async fn finish(&mut self) -> engine::Result<()> {
        if let Some(writer) = self.writer.clone() {
            self.open_gate(&writer, true).await?;
        }
        self.await_oldest(0).await
    }
}
