//! The partition-level consumer: assign partitions, seek, and poll records, with one
//! prefetching fetch loop per leader broker.
//!
//! ```text
//!  assign / seek / seek_to_*          poll() / poll_batches()
//!        │                                  ▲
//!        ▼                                  │ pending chunks (≤ max.poll.records per poll)
//!   State (positions, generations,          │
//!   leaders)  ◄── prepare(): leader lookups, resets (ListOffsets), spawn fetchers
//!        │                                  │
//!        ├──► fetcher node 1 ── Fetch (session) ──► broker 1 ──┐
//!        └──► fetcher node 2 ── Fetch (session) ──► broker 2 ──┤
//!                                                              ▼
//!                     Event::Data { chunks, permit } ──► mpsc ──► poll()
//! ```
//!
//! Fetchers (fetcher.rs) run as tasks and fetch ahead of the caller, bounded by
//! two responses per broker (one being consumed, one in flight); each
//! keeps an incremental fetch session (session.rs) and applies the `isolation.level`
//! filter (isolation.rs). The caller's position moves when `poll` hands records over;
//! a seek bumps the partition's generation so data fetched before it is dropped
//! (state.rs).
//!
//! Positions without a value start per `auto.offset.reset` when `poll` or
//! [`Consumer::position`] next runs. A consumer group layer drives the same API:
//! [`Consumer::assign`], [`Consumer::seek`] to committed offsets, and
//! [`Consumer::positions`] to commit.
//!
//! `poll` is cancel-safe: wrapping it in `tokio::time::timeout` loses no records. A
//! `futures::Stream` is one `futures::stream::unfold` away:
//! `unfold(consumer, |mut c| async { Some((c.poll_batches().await, c)) })`.

mod fetcher;
mod isolation;
mod session;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::{debug, info};

use crate::client::TopicPartition;

use self::fetcher::{Chunk, Event, FetcherHandle};
use self::session::PartitionKey;
use self::state::{Leader, PartitionState, Position, Shared};
use super::admin::{Admin, OffsetSpec};
use super::cluster::Client;
use super::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::Uuid;
use crate::records::{Header, TimestampType};
use crate::sync::lock;

/// A partition and the generation an operation started under.
type Stamped = (PartitionKey, u64);

/// Capacity of the channel from fetchers to `poll` (data is bounded by permits).
const EVENT_CHANNEL: usize = 64;

/// A record as the consumer hands it out. Key, value and headers are slices of the
/// fetched buffer (or of a batch's decompressed buffer): nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms since the epoch (-1 for magic 0 records).
    pub timestamp: i64,
    /// Whether the timestamp was set by the producer or the broker.
    pub timestamp_type: TimestampType,
    /// Key; `None` is null.
    pub key: Option<Bytes>,
    /// Value; `None` is null (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in wire order.
    pub headers: Vec<Header>,
    /// The partition leader epoch the record was written under, if known.
    pub leader_epoch: Option<i32>,
}

/// Records of one partition from one fetch response.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Records in offset order (never control records; under read_committed never
    /// aborted ones). Offsets may have gaps (markers, aborted data, compaction).
    pub records: Vec<ConsumerRecord>,
    /// The partition's position after these records.
    pub next_offset: i64,
    /// The high watermark at the time of the fetch.
    pub high_watermark: i64,
    /// The last stable offset at the time of the fetch (-1 if the broker did not say).
    pub last_stable_offset: i64,
    /// The log start offset at the time of the fetch (-1 if the broker did not say).
    pub log_start_offset: i64,
}

/// What the consumer knows about one assigned partition's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The next offset `poll` hands out, if the position is known.
    pub position: Option<i64>,
    /// The last high watermark a fetch reported (-1: none yet).
    pub high_watermark: i64,
    /// The last last-stable-offset a fetch reported (-1: none yet).
    pub last_stable_offset: i64,
    /// The last log start offset a fetch reported (-1: none yet).
    pub log_start_offset: i64,
}

/// Fetch request counters of a consumer, over its lifetime and every broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchStats {
    /// Full fetch requests (each opens a fetch session, or is sessionless).
    pub full_fetches: u64,
    /// Incremental fetch requests (KIP-227) within a session.
    pub incremental_fetches: u64,
    /// Times a broker lost or refused a session, forcing a full fetch.
    pub session_resets: u64,
    /// Partitions a broker returned that the session no longer held (forgotten
    /// partitions still being served); expected to stay 0.
    pub unrequested_partitions: u64,
}

/// A chunk waiting to be handed out by `poll`.
struct Pending {
    key: PartitionKey,
    generation: u64,
    records: VecDeque<ConsumerRecord>,
    fetched: Fetched,
    /// Shared by the chunks of one response; the fetcher may fetch again once all
    /// of them are handed out.
    _permit: Arc<OwnedSemaphorePermit>,
}

/// A consumer of explicitly assigned partitions. See the module doc.
pub struct Consumer {
    shared: Arc<Shared>,
    admin: Admin,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    fetchers: HashMap<i32, FetcherHandle>,
    pending: VecDeque<Pending>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("assigned", &self.shared.lock().partitions.len())
            .field("fetchers", &self.fetchers.len())
            .finish()
    }
}

fn key(topic: &str, partition: i32) -> PartitionKey {
    (Arc::from(topic), partition)
}

fn no_position(key: &PartitionKey) -> Error {
    Error::broker(
        ErrorCode::OffsetOutOfRange,
        format!(
            "{}-{} has no valid position and auto.offset.reset is none: seek first",
            key.0, key.1
        ),
    )
    .with_partition(&*key.0, key.1)
}

impl Consumer {
    /// Connects a new client and creates a consumer with nothing assigned.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let client = Client::connect(config.client.clone()).await?;
        Ok(Consumer::with_client(client, config))
    }

    /// A consumer over an existing client (its `client` settings are not used again).
    pub fn with_client(client: Client, config: ConsumerConfig) -> Consumer {
        if config.fetch_max_wait >= client.config().request_timeout {
            tracing::warn!(
                fetch_max_wait = ?config.fetch_max_wait,
                request_timeout = ?client.config().request_timeout,
                "fetch.max.wait.ms is not below request.timeout.ms: idle fetches will time out"
            );
        }
        let (events_tx, events) = mpsc::channel(EVENT_CHANNEL);
        Consumer {
            admin: Admin::new(client.clone()),
            shared: Shared::new(client, config),
            events_tx,
            events,
            fetchers: HashMap::new(),
            pending: VecDeque::new(),
        }
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The consumer's settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.shared.config
    }

    /// Replaces the assignment. Partitions that stay keep their positions; new ones
    /// start per `auto.offset.reset` unless sought first; removed ones stop being
    /// fetched (and are forgotten in the broker's fetch session).
    pub fn assign<I, T>(&mut self, partitions: I)
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        let wanted: HashSet<PartitionKey> = partitions
            .into_iter()
            .map(|(t, p)| key(t.as_ref(), p))
            .collect();
        let policy = self.shared.config.auto_offset_reset;
        {
            let mut state = self.shared.lock();
            state.partitions.retain(|k, _| wanted.contains(k));
            for k in wanted.iter() {
                if state.partitions.contains_key(k) {
                    continue;
                }
                let generation = state.bump();
                let partition = PartitionState {
                    generation,
                    position: Position::Reset(policy),
                    fetch_offset: -1,
                    leader: None,
                    topic_id: Uuid::ZERO,
                    retry_at: None,
                    backoff: self.shared.backoff(),
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    paused: false,
                };
                state.partitions.insert(k.clone(), partition);
            }
        }
        info!(partitions = wanted.len(), "assigned");
        self.pending.retain(|p| wanted.contains(&p.key));
        self.wake_fetchers();
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut out: Vec<(String, i32)> = self
            .shared
            .lock()
            .partitions
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        out.sort();
        out
    }

    /// Stops fetching and handing out records of `partitions` until
    /// [`Consumer::resume`]; their positions stay. Records already fetched for them
    /// are dropped (and fetched again after the resume), so a paused partition never
    /// holds prefetch space that the broker's other partitions need.
    pub fn pause<I, T>(&mut self, partitions: I)
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        let keys: Vec<PartitionKey> = partitions
            .into_iter()
            .map(|(t, p)| key(t.as_ref(), p))
            .collect();
        {
            let mut state = self.shared.lock();
            for k in &keys {
                let generation = state.bump();
                let Some(ps) = state.partitions.get_mut(k) else {
                    continue;
                };
                ps.paused = true;
                ps.generation = generation;
                if let Position::Valid(position) = ps.position {
                    ps.fetch_offset = position;
                }
            }
        }
        self.pending.retain(|p| !keys.contains(&p.key));
        self.wake_fetchers();
    }

    /// Fetches and hands out records of paused `partitions` again.
    pub fn resume<I, T>(&mut self, partitions: I)
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        {
            let mut state = self.shared.lock();
            for (t, p) in partitions {
                if let Some(ps) = state.partitions.get_mut(&key(t.as_ref(), p)) {
                    ps.paused = false;
                }
            }
        }
        self.wake_fetchers();
    }

    /// Whether no partition would be fetched: none assigned, or all paused.
    pub fn nothing_to_fetch(&self) -> bool {
        self.shared.lock().partitions.values().all(|p| p.paused)
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<TopicPartition> {
        let state = self.shared.lock();
        let mut out: Vec<(String, i32)> = state
            .partitions
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(k, _)| (k.0.to_string(), k.1))
            .collect();
        out.sort();
        out
    }

    /// Sets the next offset to consume from an assigned partition. Records fetched
    /// before are dropped. Returns false (and does nothing) when the partition is not
    /// assigned or the offset is negative.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        let k = key(topic, partition);
        if offset < 0 {
            return false;
        }
        {
            let mut state = self.shared.lock();
            let generation = state.bump();
            let Some(ps) = state.partitions.get_mut(&k) else {
                return false;
            };
            ps.generation = generation;
            ps.position = Position::Valid(offset);
            ps.fetch_offset = offset;
            ps.succeeded();
        }
        debug!(topic, partition, offset, "seek");
        self.pending.retain(|p| p.key != k);
        self.wake_fetchers();
        true
    }

    /// Seeks to the log start offset of `partitions` (all assigned when empty).
    pub async fn seek_to_beginning<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        self.seek_to_spec(partitions, OffsetSpec::Earliest).await
    }

    /// Seeks to the end of `partitions` (all assigned when empty): the high watermark,
    /// or the last stable offset under read_committed.
    pub async fn seek_to_end<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        self.seek_to_spec(partitions, OffsetSpec::Latest).await
    }

    /// Seeks `partitions` (all assigned when empty) to the first offset whose
    /// timestamp is at or after `timestamp_ms`; to the end where no record is that late.
    pub async fn seek_to_timestamp<I, T>(&mut self, partitions: I, timestamp_ms: i64) -> Result<()>
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        self.seek_to_spec(partitions, OffsetSpec::Timestamp(timestamp_ms))
            .await
    }

    async fn seek_to_spec<I, T>(&mut self, partitions: I, spec: OffsetSpec) -> Result<()>
    where
        I: IntoIterator<Item = (T, i32)>,
        T: AsRef<str>,
    {
        let mut keys: Vec<PartitionKey> = partitions
            .into_iter()
            .map(|(t, p)| key(t.as_ref(), p))
            .collect();
        {
            let state = self.shared.lock();
            if keys.is_empty() {
                keys = state.partitions.keys().cloned().collect();
            }
            keys.retain(|k| state.partitions.contains_key(k));
        }
        let mut offsets = self.list_offsets(&keys, spec).await?;
        let past_the_end: Vec<PartitionKey> = offsets
            .iter()
            .filter(|(_, o)| **o < 0)
            .map(|(k, _)| k.clone())
            .collect();
        if !past_the_end.is_empty() {
            offsets.extend(self.list_offsets(&past_the_end, OffsetSpec::Latest).await?);
        }
        for (k, offset) in offsets {
            self.seek(&k.0, k.1, offset);
        }
        Ok(())
    }

    /// ListOffsets for `keys`, grouped by topic, retried on retriable errors.
    async fn list_offsets(
        &self,
        keys: &[PartitionKey],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<PartitionKey, i64>> {
        let mut by_topic: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
        for (t, p) in keys {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        let isolation = self.shared.config.isolation_level;
        let timeout = self.shared.config.client.request_timeout;
        let mut out = BTreeMap::new();
        for (topic, parts) in by_topic {
            let listed = self
                .shared
                .client
                .retry("ListOffsets", timeout, || {
                    self.admin.list_offsets(&topic, &parts, spec, isolation)
                })
                .await?;
            for (p, o) in listed {
                out.insert((topic.clone(), p), o.offset);
            }
        }
        Ok(out)
    }

    /// The next offset `poll` will hand out for a partition, resetting it per
    /// `auto.offset.reset` first if it has none. `Ok(None)` when not assigned.
    pub async fn position(&mut self, topic: &str, partition: i32) -> Result<Option<i64>> {
        let k = key(topic, partition);
        let deadline = Instant::now() + self.shared.config.client.request_timeout;
        loop {
            let position = self.shared.lock().partitions.get(&k).map(|p| p.position);
            match position {
                None => return Ok(None),
                Some(Position::Valid(o)) => return Ok(Some(o)),
                Some(Position::Failed) => return Err(no_position(&k)),
                Some(Position::Reset(_)) if Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        context: format!("resetting the position of {topic}-{partition}"),
                    });
                }
                Some(Position::Reset(_)) => {
                    self.prepare().await?;
                    if let Some(delay) = self.attention_delay() {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }

    /// The valid positions of all assigned partitions (what a group would commit).
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.shared
            .lock()
            .partitions
            .iter()
            .filter_map(|(k, p)| match p.position {
                Position::Valid(o) => Some(((k.0.to_string(), k.1), o)),
                _ => None,
            })
            .collect()
    }

    /// Fetch request counters (sessions full vs incremental, resets).
    pub fn fetch_stats(&self) -> FetchStats {
        let c = &self.shared.stats;
        FetchStats {
            full_fetches: c.full.load(Ordering::Relaxed),
            incremental_fetches: c.incremental.load(Ordering::Relaxed),
            session_resets: c.session_resets.load(Ordering::Relaxed),
            unrequested_partitions: c.unrequested.load(Ordering::Relaxed),
        }
    }

    /// The latest error the consumer retried on its own (a failed fetch, leader
    /// lookup or offset reset) if no fetch answer has arrived intact since: what
    /// tells a caller that got no records from a quiet topic apart from one it
    /// cannot read. Errors `poll` returns are not kept here.
    pub fn last_error(&self) -> Option<Error> {
        lock(&self.shared.last_error).clone()
    }

    /// Position and the last watermarks fetched for an assigned partition.
    pub fn partition_offsets(&self, topic: &str, partition: i32) -> Option<PartitionOffsets> {
        let state = self.shared.lock();
        let p = state.partitions.get(&key(topic, partition))?;
        Some(PartitionOffsets {
            position: match p.position {
                Position::Valid(o) => Some(o),
                _ => None,
            },
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            log_start_offset: p.log_start_offset,
        })
    }

    /// The end offset of each of `partitions` as the consumer's isolation level
    /// sees it, asked of the leaders now (Java's `endOffsets`): the high
    /// watermark, or the last stable offset under read_committed. A consumer whose
    /// [`Consumer::positions`] reached these has read everything written so far.
    pub async fn end_offsets(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let keys: Vec<PartitionKey> = partitions.iter().map(|(t, p)| key(t, *p)).collect();
        Ok(self
            .list_offsets(&keys, OffsetSpec::Latest)
            .await?
            .into_iter()
            .map(|((t, p), o)| ((t.to_string(), p), o))
            .collect())
    }

    /// Whether an assigned partition's position reached its end offset as the
    /// last fetch reported it (kcat's end-of-partition, without a request);
    /// `None` before the partition was fetched once or while its position is
    /// unknown.
    pub fn at_end(&self, topic: &str, partition: i32) -> Option<bool> {
        let o = self.partition_offsets(topic, partition)?;
        let end = match self.shared.config.isolation_level {
            IsolationLevel::ReadCommitted if o.last_stable_offset >= 0 => o.last_stable_offset,
            _ => o.high_watermark,
        };
        if end < 0 {
            return None;
        }
        Some(o.position? >= end)
    }

    /// Waits for records and returns at most `max.poll.records` of them, in offset
    /// order per partition. Returns an empty `Vec` at once when nothing is assigned
    /// or every assigned partition is paused.
    ///
    /// Errors: OFFSET_OUT_OF_RANGE when a partition has no valid position and
    /// `auto.offset.reset=none` (reported once; the partition then waits for a
    /// [`Consumer::seek`] while the others go on), bad record data (CRC; the fetch is
    /// retried after a backoff), non-retriable broker errors. Retriable errors (leader
    /// moves, lost sessions, lost connections) are handled inside. Cancel-safe.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let max = self.shared.config.max_poll_records.max(1);
        loop {
            let records = self.take_records(max);
            if !records.is_empty() {
                return Ok(records);
            }
            if !self.wait_for_data().await? {
                return Ok(Vec::new());
            }
        }
    }

    /// Like [`Consumer::poll`] with a time limit: an empty `Vec` when no record
    /// arrived within `timeout`.
    pub async fn poll_for(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        tokio::time::timeout(timeout, self.poll())
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))
    }

    /// Waits for records and returns everything fetched so far, one [`Fetched`] per
    /// partition and response (ignores `max.poll.records`). Cancel-safe.
    ///
    /// A [`Fetched`] may hold no records: its batches were aborted transactions
    /// or control records (read_committed), and its `next_offset` still moves
    /// the position past them, so a reader waiting for an end offset sees it.
    pub async fn poll_batches(&mut self) -> Result<Vec<Fetched>> {
        loop {
            let out = self.take_batches();
            if !out.is_empty() {
                return Ok(out);
            }
            if !self.wait_for_data().await? {
                return Ok(Vec::new());
            }
        }
    }

    /// Stops the fetchers, closing their fetch sessions (at most a few seconds).
    pub async fn close(mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.wake_fetchers();
        // Take no more data, so fetchers blocked on a full channel see it closed.
        self.events.close();
        self.pending.clear();
        for (node, handle) in self.fetchers.drain() {
            let abort = handle.task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), handle.task)
                .await
                .is_err()
            {
                debug!(node, "fetcher did not stop in time; aborting");
                abort.abort();
            }
        }
    }

    fn wake_fetchers(&self) {
        for f in self.fetchers.values() {
            f.notify.notify_one();
        }
    }

    /// Hands out up to `max` records from the pending chunks and moves positions.
    fn take_records(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let mut state = self.shared.lock();
        while out.len() < max {
            let Some(front) = self.pending.front_mut() else {
                break;
            };
            let Some(ps) = state
                .partitions
                .get_mut(&front.key)
                .filter(|p| p.generation == front.generation)
            else {
                self.pending.pop_front();
                continue;
            };
            let n = (max - out.len()).min(front.records.len());
            out.extend(front.records.drain(..n));
            if front.records.is_empty() {
                ps.position = Position::Valid(front.fetched.next_offset);
                self.pending.pop_front();
            } else if let Some(last) = out.last() {
                ps.position = Position::Valid(last.offset + 1);
            }
        }
        out
    }

    /// Hands out every pending chunk and moves positions.
    fn take_batches(&mut self) -> Vec<Fetched> {
        let mut out = Vec::new();
        let mut state = self.shared.lock();
        for mut chunk in self.pending.drain(..) {
            let Some(ps) = state
                .partitions
                .get_mut(&chunk.key)
                .filter(|p| p.generation == chunk.generation)
            else {
                continue;
            };
            ps.position = Position::Valid(chunk.fetched.next_offset);
            chunk.fetched.records = chunk.records.into();
            out.push(chunk.fetched);
        }
        out
    }

    /// Takes fetcher events until data arrived; false when nothing is assigned or
    /// everything assigned is paused.
    async fn wait_for_data(&mut self) -> Result<bool> {
        loop {
            if self.shared.lock().partitions.values().all(|p| p.paused) {
                return Ok(false);
            }
            self.prepare().await?;
            let event = match self.attention_delay() {
                Some(delay) => tokio::select! {
                    event = self.events.recv() => event,
                    _ = tokio::time::sleep(delay) => continue,
                },
                None => self.events.recv().await,
            };
            match event {
                Some(Event::Data { chunks, permit }) => {
                    self.accept(chunks, permit);
                    return Ok(true);
                }
                Some(Event::Error(e)) => return Err(e),
                Some(Event::Reroute) => {
                    // A leader hint may have moved a partition to a running fetcher
                    // that is idle: wake them all after `prepare` ran again.
                    self.prepare().await?;
                    self.wake_fetchers();
                }
                // Unreachable while `self` holds a sender; treat as "nothing to wait for".
                None => return Ok(false),
            }
        }
    }

    /// Queues chunks whose generation is still current.
    fn accept(&mut self, chunks: Vec<Chunk>, permit: OwnedSemaphorePermit) {
        let permit = Arc::new(permit);
        let state = self.shared.lock();
        for chunk in chunks {
            if state
                .partitions
                .get(&chunk.key)
                .is_none_or(|p| p.generation != chunk.generation)
            {
                continue;
            }
            let mut fetched = chunk.fetched;
            let records = VecDeque::from(std::mem::take(&mut fetched.records));
            self.pending.push_back(Pending {
                key: chunk.key,
                generation: chunk.generation,
                records,
                fetched,
                _permit: permit.clone(),
            });
        }
    }

    /// How long to wait before `prepare` has work again (a partition backing off
    /// before a leader lookup or reset); `None` when nothing waits for `prepare`.
    fn attention_delay(&self) -> Option<Duration> {
        let now = Instant::now();
        let state = self.shared.lock();
        state
            .partitions
            .values()
            .filter(|p| p.leader.is_none() || matches!(p.position, Position::Reset(_)))
            .filter(|p| p.position != Position::Failed)
            .map(|p| {
                p.retry_at
                    .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
            })
            .min()
            .map(|d| d.clamp(Duration::from_millis(10), Duration::from_secs(1)))
    }

    /// Looks up missing leaders, resets positions per `auto.offset.reset`, and starts
    /// a fetcher for every leader that has none.
    async fn prepare(&mut self) -> Result<()> {
        let changed_leaders = self.lookup_leaders().await?;
        let changed_positions = self.reset_positions().await?;
        let nodes: HashSet<i32> = self
            .shared
            .lock()
            .partitions
            .values()
            .filter_map(|p| p.leader.map(|l| l.node))
            .collect();
        let mut started = false;
        for node in nodes {
            let running = self
                .fetchers
                .get(&node)
                .is_some_and(|f| !f.task.is_finished());
            if !running {
                debug!(node, "starting fetcher");
                self.fetchers.insert(
                    node,
                    fetcher::spawn(self.shared.clone(), node, self.events_tx.clone()),
                );
                started = true;
            }
        }
        if changed_leaders || changed_positions || started {
            self.wake_fetchers();
        }
        Ok(())
    }

    async fn lookup_leaders(&mut self) -> Result<bool> {
        let now = Instant::now();
        let mut topics: BTreeMap<Arc<str>, Vec<PartitionKey>> = BTreeMap::new();
        for (k, p) in self.shared.lock().partitions.iter() {
            if p.leader.is_none() && p.ready(now) && p.position != Position::Failed {
                topics.entry(k.0.clone()).or_default().push(k.clone());
            }
        }
        let mut changed = false;
        for (topic, keys) in topics {
            let info = match self.shared.client.topic(&topic).await {
                Ok(info) => Ok(info),
                Err(e) if e.is_retriable() => Err(e),
                Err(e) => return Err(e),
            };
            let mut state = self.shared.lock();
            for k in keys {
                let Some(ps) = state.partitions.get_mut(&k) else {
                    continue;
                };
                let leader = info.as_ref().ok().and_then(|i| {
                    let p = i.partitions.iter().find(|p| p.partition == k.1)?;
                    (p.leader >= 0).then_some((
                        i.id,
                        Leader {
                            node: p.leader,
                            epoch: p.leader_epoch,
                        },
                    ))
                });
                match leader {
                    Some((topic_id, leader)) => {
                        debug!(
                            topic = &*k.0,
                            partition = k.1,
                            leader = leader.node,
                            leader_epoch = leader.epoch,
                            "leader found"
                        );
                        ps.topic_id = topic_id;
                        ps.leader = Some(leader);
                        changed = true;
                    }
                    None => {
                        match &info {
                            Err(e) => {
                                debug!(topic = &*k.0, partition = k.1, error = %e, "leader lookup failed; backing off");
                                self.shared.retried(e);
                            }
                            Ok(_) => self.shared.retried(
                                &Error::broker(
                                    ErrorCode::LeaderNotAvailable,
                                    format!("no leader for {}-{} in metadata", k.0, k.1),
                                )
                                .with_partition(&*k.0, k.1),
                            ),
                        }
                        self.shared.client.invalidate_topic(&k.0);
                        ps.back_off();
                    }
                }
            }
        }
        Ok(changed)
    }

    async fn reset_positions(&mut self) -> Result<bool> {
        let now = Instant::now();
        let mut resets: BTreeMap<(bool, Arc<str>), Vec<Stamped>> = BTreeMap::new();
        {
            let mut state = self.shared.lock();
            for (k, p) in state.partitions.iter_mut() {
                match p.position {
                    Position::Reset(OffsetReset::None) => {
                        p.position = Position::Failed;
                        return Err(no_position(k));
                    }
                    Position::Reset(policy) if p.ready(now) && p.leader.is_some() => {
                        resets
                            .entry((policy == OffsetReset::Earliest, k.0.clone()))
                            .or_default()
                            .push((k.clone(), p.generation));
                    }
                    _ => {}
                }
            }
        }
        let mut changed = false;
        for ((earliest, topic), keys) in resets {
            let spec = if earliest {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            let parts: Vec<i32> = keys.iter().map(|(k, _)| k.1).collect();
            let listed = self
                .admin
                .list_offsets(&topic, &parts, spec, self.shared.config.isolation_level)
                .await;
            let mut state = self.shared.lock();
            let listed = match listed {
                Ok(listed) => listed,
                Err(e) if e.is_retriable() => {
                    debug!(topic = &*topic, error = %e, "offset reset failed; backing off");
                    self.shared.retried(&e);
                    for (k, _) in &keys {
                        if let Some(ps) = state.partitions.get_mut(k) {
                            ps.back_off();
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (k, generation) in keys {
                let offset = listed.get(&k.1).map(|o| o.offset).filter(|o| *o >= 0);
                let fresh = state.bump();
                let Some(ps) = state.partitions.get_mut(&k) else {
                    continue;
                };
                if ps.generation != generation || !matches!(ps.position, Position::Reset(_)) {
                    continue;
                }
                let Some(offset) = offset else {
                    ps.back_off();
                    continue;
                };
                info!(
                    topic = &*k.0,
                    partition = k.1,
                    offset,
                    ?spec,
                    "position reset"
                );
                ps.generation = fresh;
                ps.position = Position::Valid(offset);
                ps.fetch_offset = offset;
                ps.succeeded();
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// Dropping a consumer without [`Consumer::close`] stops its fetchers at once; their
/// broker-side fetch sessions then expire on their own.
impl Drop for Consumer {
    fn drop(&mut self) {
        for f in self.fetchers.values() {
            f.task.abort();
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod send_tests {
    use super::*;

    fn is_send<T: Send>(_: T) {}

    /// Compile-time check: the consumer and its futures can move between threads
    /// (no lock guard is held across an `.await`).
    #[allow(dead_code)]
    fn futures_are_send(mut c: Consumer) {
        is_send(c.poll());
        is_send(c.poll_batches());
        is_send(c.position("t", 0));
        is_send(c.seek_to_end([("t", 0)]));
        is_send(c.close());
    }
}
