//! The producer: `send` records, get their partition and offset back.
//!
//! ```text
//!  send(record) ──► partitioner ──► accumulator (per partition: queue of batches)
//!      │  waits for buffer.memory          │ full batch / linger.ms / flush
//!      ▼                                   ▼
//!  DeliveryFuture ◄── completion ◄── sender task ──► ProduceRequest per leader
//!                                      (sequences, retries, epoch bumps)
//! ```
//!
//! Idempotence is on by default, as in the Java client: the producer gets a producer
//! id and epoch with InitProducerId, every batch carries a per-partition sequence
//! number assigned when it is first sent and kept across retries, and the broker
//! drops duplicates. See `sender.rs` for how errors are handled.
//!
//! Memory is bounded by `buffer.memory`: `send` waits (up to `max.block.ms`) for
//! space instead of growing the queues, which is the producer's backpressure.

mod accumulator;
pub(crate) mod delivery;
mod sender;

#[cfg(test)]
mod authorization_tests;
#[cfg(test)]
mod fake_broker_tests;

pub use self::delivery::DeliveryFuture;

use std::sync::atomic::AtomicI16;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};

use self::accumulator::Accumulator;
use super::cluster::Client;
use super::config::ProducerConfig;
use super::partitioner::{StickyPartitioner, partition_for_key};
use crate::error::{Error, Result};
pub use crate::records::header::Header;
use crate::sync::lock;

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Key (`None` for a null key).
    pub key: Option<Bytes>,
    /// Value (`None` for a tombstone).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
    /// Create time in ms since the epoch; `None` for now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and no key.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic (shared by every record of the batch).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset; -1 when unknown (`acks=0`, or a duplicate the broker had already written).
    pub offset: i64,
    /// The record's timestamp (the broker's when the topic uses log-append time).
    pub timestamp: i64,
}

/// What `send` waits for with the accumulator unlocked.
enum Wait {
    Metadata,
    Memory,
}

/// The producer id and epoch a producer writes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// Producer id (-1 without idempotence).
    pub producer_id: i64,
    /// Producer epoch (-1 without idempotence).
    pub producer_epoch: i16,
}

impl ProducerIdentity {
    /// No producer id: a non-idempotent producer.
    pub const NONE: ProducerIdentity = ProducerIdentity {
        producer_id: -1,
        producer_epoch: -1,
    };
}

pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    pub(crate) acc: Mutex<Accumulator>,
    pub(crate) memory: Arc<Semaphore>,
    /// Wakes the sender: a batch is ready, a response arrived, a flush began.
    pub(crate) wake: Notify,
    /// Signalled when records complete, for `flush`.
    pub(crate) progress: Notify,
    /// Highest Produce version to send (a transactional producer caps it; see
    /// `client::transaction`).
    pub(crate) max_produce_version: AtomicI16,
}

/// An async Kafka producer. Cheap to clone; clones share batches and connections.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _sender: Arc<SenderGuard>,
}

struct SenderGuard(tokio::task::JoinHandle<()>);

impl Drop for SenderGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Connects a producer (and its own [`Client`]) with `config`.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let client = Client::connect(config.client.clone()).await?;
        Self::with_client(client, config).await
    }

    /// A producer over an existing client (sharing its connections and metadata).
    /// With idempotence, fetches a producer id before returning.
    pub async fn with_client(client: Client, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let memory = Arc::new(Semaphore::new(config.buffer_memory));
        let shared = Arc::new(Shared {
            acc: Mutex::new(Accumulator::new(
                &config,
                StickyPartitioner::new(),
                memory.clone(),
            )),
            client,
            memory,
            wake: Notify::new(),
            progress: Notify::new(),
            max_produce_version: AtomicI16::new(i16::MAX),
            config,
        });
        // A transactional producer gets its id from the transaction coordinator
        // (`client::transaction`), which sets it before the first record.
        if shared.config.enable_idempotence && shared.config.transactional_id.is_none() {
            let identity = sender::init_producer_id(&shared, ProducerIdentity::NONE).await?;
            shared.lock().identity = identity;
        }
        let task = tokio::spawn(sender::run(shared.clone()));
        Ok(Producer {
            shared,
            _sender: Arc::new(SenderGuard(task)),
        })
    }

    /// The producer id and epoch in use.
    pub fn identity(&self) -> ProducerIdentity {
        self.shared.lock().identity
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Sets the id and epoch the transaction coordinator assigned (or bumped), and
    /// restarts every partition's sequence at 0. Called with nothing in flight.
    pub(crate) fn set_transactional_identity(&self, identity: ProducerIdentity) {
        let mut acc = self.shared.lock();
        acc.identity = identity;
        acc.reset_sequences();
    }

    /// Never sends Produce above `version` (transaction version 1 forbids v12+).
    pub(crate) fn set_max_produce_version(&self, version: i16) {
        self.shared
            .max_produce_version
            .store(version, std::sync::atomic::Ordering::Relaxed);
    }

    /// Queues `record` and returns a future of its partition and offset.
    ///
    /// Waits (up to `max.block.ms`) for topic metadata and for room in
    /// `buffer.memory`. Errors here mean the record was not queued; errors of the
    /// returned future mean it was queued but not (or not provably) written.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let config = &self.shared.config;
        let size = accumulator::estimated_size(&record);
        if size > config.max_request_size || size > config.buffer_memory {
            return Err(Error::Encode {
                context: "producer record",
                message: format!(
                    "record of about {size} bytes exceeds max.request.size ({}) or buffer.memory ({})",
                    config.max_request_size, config.buffer_memory
                ),
            });
        }
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        // The fast path (topic known, memory free) takes the lock once and reads no
        // clock but the timestamp's; the max.block.ms deadline starts at the first wait.
        let mut deadline = None;
        let mut deadline = || *deadline.get_or_insert_with(|| Instant::now() + config.max_block);
        loop {
            let wait = 'locked: {
                let mut acc = self.shared.lock();
                if let Some(reason) = &acc.fatal {
                    return Err(Error::Closed {
                        reason: reason.clone(),
                    });
                }
                let topic = match acc.topic_index(&record.topic) {
                    Some(t) if !acc.topics[t].recheck => t,
                    _ => break 'locked Wait::Metadata,
                };
                let mut partitions = acc.topics[topic].partition_count;
                if let Some(p) = record.partition {
                    if p >= partitions {
                        // Partitions may have been added since the count was cached.
                        if let Some(n) = self.shared.client.cached_partition_count(&record.topic) {
                            acc.topics[topic].partition_count = n;
                            partitions = n;
                        }
                    }
                    if p < 0 || p >= partitions {
                        return Err(Error::broker(
                            crate::error_code::ErrorCode::UnknownTopicOrPartition,
                            format!(
                                "{}-{p}: the topic has {partitions} partitions",
                                record.topic
                            ),
                        )
                        .with_partition(record.topic.as_str(), p));
                    }
                }
                if !acc.try_reserve(size) {
                    acc.release_credit();
                    break 'locked Wait::Memory;
                }
                let keyed = record.key.is_some() && !config.partitioner_ignore_keys;
                let partition = match (record.partition, &record.key) {
                    (Some(p), _) => p,
                    (None, Some(key)) if keyed => partition_for_key(key, partitions),
                    _ => acc.sticky_partition(topic),
                };
                let (future, wake, opened) =
                    match acc.append(topic, partition, &record, timestamp, size, !keyed) {
                        Ok(appended) => appended,
                        Err(e) => {
                            acc.add_credit(size);
                            return Err(e);
                        }
                    };
                if opened {
                    // A batch per partition, not a record, re-reads the metadata cache:
                    // stale metadata makes the next send refresh it.
                    let t = &mut acc.topics[topic];
                    match self.shared.client.cached_partition_count(&t.name) {
                        Some(n) => t.partition_count = n,
                        None => t.recheck = true,
                    }
                }
                drop(acc);
                if wake {
                    self.shared.wake.notify_one();
                }
                return Ok(future);
            };
            // The waits are boxed: kept inline, their state would make every
            // call's future kilobytes large, copied on each send.
            match wait {
                Wait::Metadata => {
                    let n = Box::pin(self.wait_partition_count(&record.topic, deadline())).await?;
                    self.shared.lock().add_topic(&record.topic, n);
                }
                Wait::Memory => {
                    let permit = Box::pin(tokio::time::timeout_at(
                        deadline().into(),
                        self.shared.memory.acquire_many(size as u32),
                    ))
                    .await
                    .map_err(|_| Error::Timeout {
                        context: "waiting for buffer.memory (max.block.ms)".into(),
                    })?
                    .map_err(|_| Error::Closed {
                        reason: "its memory pool is gone".into(),
                    })?;
                    // Held as credit, where the next try takes it from.
                    permit.forget();
                    self.shared.lock().add_credit(size);
                }
            }
        }
    }

    /// The topic's partition count from the metadata cache, refreshing it if needed
    /// (up to `deadline`).
    async fn wait_partition_count(&self, topic: &str, deadline: Instant) -> Result<i32> {
        match self.shared.client.cached_partition_count(topic) {
            Some(n) => Ok(n),
            None => tokio::time::timeout_at(deadline.into(), self.partition_count(topic))
                .await
                .map_err(|_| Error::Timeout {
                    context: format!("metadata for {topic} (max.block.ms)"),
                })?,
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let mut backoff =
            super::backoff::Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
        loop {
            match self.shared.client.topic(topic).await {
                Ok(info) if !info.partitions.is_empty() => return Ok(info.partitions.len() as i32),
                Ok(_) => {}
                Err(e) if e.is_retriable() => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Sends everything queued now, and waits until every record sent before the
    /// call has completed (succeeded or failed).
    pub async fn flush(&self) -> Result<()> {
        let target = {
            let mut acc = self.shared.lock();
            acc.flush_up_to = acc.appended;
            acc.appended
        };
        self.shared.wake.notify_one();
        loop {
            let notified = self.shared.progress.notified();
            {
                let acc = self.shared.lock();
                if acc.completed_through(target) {
                    return Ok(());
                }
                if acc.fatal.is_some() && acc.is_empty() {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Flushes, waiting at most `timeout`; records still queued then fail.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let flushed = tokio::time::timeout(timeout, self.flush()).await;
        let mut acc = self.shared.lock();
        acc.fatal = Some("close() was called".into());
        acc.fail_queued(|| Error::Timeout {
            context: "producer closed before the record was sent".into(),
        });
        drop(acc);
        self.shared.progress.notify_waiters();
        flushed.map_err(|_| Error::Timeout {
            context: "producer close".into(),
        })?
    }
}

impl Producer {
    /// The latch that records the first failed batch (transactional producers).
    pub(crate) fn failures(&self) -> Option<Arc<delivery::FailureLatch>> {
        self.shared.lock().failures.clone()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        lock(&self.acc)
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
