//! What a job's Kafka sources, sinks and checkpoint store share.
//!
//! ```text
//!  KafkaScope (one per KafkaJob)
//!    ├─ specs: what each KafkaSource / KafkaSink asked for (read by the runner)
//!    └─ incarnation (replaced on every restart, rebalance or rollback)
//!         ├─ feeds: one chunk queue per assigned partition (taken by the splits)
//!         ├─ writer: the process's one producer (transactional or idempotent)
//!         ├─ positions: (topic, partition) -> next offset, per checkpoint
//!         └─ dead letters waiting for their checkpoint's transaction
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU16;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engine::CheckpointId;
use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::records::Header;
use tokio::sync::mpsc;

use super::config::KafkaConfig;
use super::repartition::{Marker, MarkerHold, SinkTime, process_time};
use super::sink::{KafkaSink, KeyBytes, SinkSpec};
use super::source::{Chunk, KafkaSource, SourceSpec};
use super::writer::Writer;
use crate::format::Format;
use crate::sync::lock;

/// Creates the Kafka sources and sinks of a job (handed to the closure of
/// [`super::KafkaJob::run`]); they share the job's consumer group membership,
/// producer and checkpoints.
#[derive(Clone)]
pub struct KafkaScope {
    inner: Arc<ScopeInner>,
}

struct ScopeInner {
    config: KafkaConfig,
    sources: Mutex<Vec<Arc<Mutex<SourceSpec>>>>,
    sinks: Mutex<Vec<Arc<Mutex<SinkSpec>>>>,
    incarnation: Mutex<Option<Arc<Incarnation>>>,
    /// The partition count of the repartition topics (the widest input topic),
    /// set by the job before the pipeline is defined for an incarnation.
    repartition_partitions: Arc<AtomicU16>,
}

impl KafkaScope {
    pub(crate) fn new(config: KafkaConfig) -> KafkaScope {
        KafkaScope {
            inner: Arc::new(ScopeInner {
                config,
                sources: Mutex::new(Vec::new()),
                sinks: Mutex::new(Vec::new()),
                incarnation: Mutex::new(None),
                repartition_partitions: Arc::new(AtomicU16::new(1)),
            }),
        }
    }

    /// The job's Kafka settings.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// A source of raw record values; pick topics and a format on it.
    pub fn source(&self) -> KafkaSource<Bytes> {
        let spec = Arc::new(Mutex::new(SourceSpec::default()));
        lock(&self.inner.sources).push(spec.clone());
        KafkaSource::new(self.clone(), spec)
    }

    /// A sink writing JSON values to `topic` (see [`KafkaSink`] for keys, formats
    /// and the delivery guarantee).
    pub fn sink<T>(&self, topic: &str) -> KafkaSink<T>
    where
        T: serde::Serialize + Send + 'static,
    {
        let spec = Arc::new(Mutex::new(SinkSpec::new(topic)));
        lock(&self.inner.sinks).push(spec.clone());
        KafkaSink::new(self.clone(), spec)
    }

    /// A sink writing `topic` as a repartition topic: keyed by `key`, to the
    /// partition of that key, with watermark markers.
    pub(crate) fn repartition_sink<T: Send + 'static>(
        &self,
        topic: &str,
        format: impl Format<T>,
        key: KeyBytes<T>,
    ) -> KafkaSink<T> {
        let mut spec = SinkSpec::new(topic);
        spec.repartition = true;
        let spec = Arc::new(Mutex::new(spec));
        lock(&self.inner.sinks).push(spec.clone());
        KafkaSink::repartition(self.clone(), spec, format, key)
    }

    /// A source reading `topic` as a repartition topic (event time from its
    /// markers).
    pub(crate) fn repartition_source(&self, topic: &str) -> KafkaSource<Bytes> {
        let spec = SourceSpec {
            repartition: true,
            ..SourceSpec::default()
        };
        let spec = Arc::new(Mutex::new(spec));
        lock(&self.inner.sources).push(spec.clone());
        KafkaSource::new(self.clone(), spec).topics([topic.to_string()])
    }

    /// The partition count of the repartition topics, as the job set it.
    pub(crate) fn repartition_partitions(&self) -> Arc<AtomicU16> {
        self.inner.repartition_partitions.clone()
    }

    /// What the sources asked for so far.
    pub(crate) fn source_specs(&self) -> Vec<SourceSpec> {
        lock(&self.inner.sources)
            .iter()
            .map(|s| lock(s).clone())
            .collect()
    }

    /// What the sinks asked for so far.
    pub(crate) fn sink_specs(&self) -> Vec<SinkSpec> {
        lock(&self.inner.sinks)
            .iter()
            .map(|s| lock(s).clone())
            .collect()
    }

    /// Forgets the specs (before the pipeline is defined again).
    pub(crate) fn clear_specs(&self) {
        lock(&self.inner.sources).clear();
        lock(&self.inner.sinks).clear();
    }

    pub(crate) fn bind(&self, incarnation: Option<Arc<Incarnation>>) {
        *lock(&self.inner.incarnation) = incarnation;
    }

    pub(crate) fn incarnation(&self) -> Option<Arc<Incarnation>> {
        lock(&self.inner.incarnation).clone()
    }
}

/// The records of one partition as the fetch task hands them over.
pub(crate) struct PartitionFeed {
    pub rx: mpsc::Receiver<Chunk>,
    /// The first offset to hand out.
    pub start: i64,
    /// Bounded: where the partition ends.
    pub end: Option<i64>,
    /// Its live status (position, log end, watermark, idleness).
    pub status: Arc<engine::PartitionStatus>,
}

impl PartitionFeed {
    /// The feed of `tp` from `start` (to `end` when bounded), holding `capacity`
    /// fetches, with its status in `status`; and the sender the fetch task uses.
    pub(crate) fn new(
        status: &engine::JobStatus,
        tp: &TopicPartition,
        (start, end): (i64, Option<i64>),
        capacity: usize,
    ) -> (PartitionFeed, mpsc::Sender<Chunk>) {
        let (tx, rx) = mpsc::channel(capacity);
        let feed = PartitionFeed {
            rx,
            start,
            end,
            status: status.partition(&tp.0, tp.1),
        };
        (feed, tx)
    }
}

/// A record that did not decode, waiting for its checkpoint's transaction.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetterRecord {
    pub topic: String,
    pub source: TopicPartition,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp: i64,
    pub error: String,
}

/// One run of the pipeline between two restarts.
pub(crate) struct Incarnation {
    feeds: Mutex<HashMap<TopicPartition, PartitionFeed>>,
    pub writer: Arc<Writer>,
    positions: Mutex<BTreeMap<CheckpointId, BTreeMap<TopicPartition, i64>>>,
    finals: Mutex<BTreeMap<TopicPartition, i64>>,
    dead_letters: Mutex<Vec<DeadLetterRecord>>,
    status: engine::JobStatus,
    /// Who this process is to the readers of its repartition topics, and the
    /// input partition numbers it owns.
    claim: Mutex<Claim>,
    /// Per repartition topic, what each sink subtask knows of event time.
    sink_times: Mutex<HashMap<String, Vec<SinkTime>>>,
    /// Per repartition topic, the adopted input partitions its markers wait for.
    holds: Mutex<HashMap<String, MarkerHold>>,
    /// Offsets every checkpoint commits besides the splits' positions (the owner
    /// partition of a pipeline that reads no Kafka topic, which fences it).
    held: BTreeMap<TopicPartition, i64>,
    /// Partitions being adopted whose splits do not exist yet.
    adopting: Mutex<HashMap<TopicPartition, LiveFeed>>,
    /// Where their feeds go once their splits exist (the fetch task).
    live: Mutex<Option<mpsc::UnboundedSender<LiveFeed>>>,
}

/// A partition that joins the running job: once its split exists, the fetch
/// task seeks it to `start` and hands its records to `tx`.
#[derive(Debug)]
pub(crate) struct LiveFeed {
    pub tp: TopicPartition,
    pub start: i64,
    pub tx: mpsc::Sender<Chunk>,
    pub status: Arc<engine::PartitionStatus>,
}

/// What a process's watermark markers say about it besides the time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claim {
    /// `{application.id}-{instance}`.
    pub writer: String,
    /// The input partition numbers this incarnation owns.
    pub owns: Vec<u16>,
    /// How many there are (the widest input topic's partition count).
    pub of: u16,
}

impl Incarnation {
    pub(crate) fn new(
        feeds: HashMap<TopicPartition, PartitionFeed>,
        writer: Arc<Writer>,
        status: engine::JobStatus,
        claim: Claim,
        held: BTreeMap<TopicPartition, i64>,
    ) -> Self {
        Incarnation {
            feeds: Mutex::new(feeds),
            writer,
            positions: Mutex::new(BTreeMap::new()),
            finals: Mutex::new(BTreeMap::new()),
            dead_letters: Mutex::new(Vec::new()),
            status,
            claim: Mutex::new(claim),
            sink_times: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            held,
            adopting: Mutex::new(HashMap::new()),
            live: Mutex::new(None),
        }
    }

    /// Where the feeds of adopted partitions go once their splits exist.
    pub(crate) fn feed_adopted_to(&self, live: mpsc::UnboundedSender<LiveFeed>) {
        *lock(&self.live) = Some(live);
    }

    /// Feeds of partitions a running job is about to adopt: their splits take
    /// them with [`Incarnation::take_adopted_feeds`].
    pub(crate) fn add_feeds(&self, feeds: Vec<(PartitionFeed, LiveFeed)>) {
        let mut waiting = lock(&self.feeds);
        let mut adopting = lock(&self.adopting);
        for (feed, live) in feeds {
            waiting.insert(live.tp.clone(), feed);
            adopting.insert(live.tp.clone(), live);
        }
    }

    /// The feeds of `topics`' partitions in `groups` (partition numbers) added
    /// by [`Incarnation::add_feeds`]; the fetch task starts feeding them.
    pub(crate) fn take_adopted_feeds(
        &self,
        topics: &[String],
        groups: &BTreeSet<u16>,
    ) -> Vec<(TopicPartition, PartitionFeed)> {
        let feeds = self.take_feeds_where(|tp| {
            topics.contains(&tp.0) && u16::try_from(tp.1).is_ok_and(|p| groups.contains(&p))
        });
        let live = lock(&self.live).clone();
        let mut adopting = lock(&self.adopting);
        for (tp, _) in &feeds {
            if let (Some(l), Some(tx)) = (adopting.remove(tp), &live) {
                let _ = tx.send(l);
            }
        }
        feeds
    }

    /// The input partition numbers `released` left this incarnation: its next
    /// markers no longer claim them.
    pub(crate) fn unclaim(&self, released: &BTreeSet<u16>) {
        lock(&self.claim).owns.retain(|p| !released.contains(p));
    }

    /// The input partition numbers `adopted` joined this incarnation: its next
    /// markers claim them.
    pub(crate) fn claim(&self, adopted: &BTreeSet<u16>) {
        let mut claim = lock(&self.claim);
        claim.owns.extend(adopted);
        claim.owns.sort_unstable();
        claim.owns.dedup();
    }

    /// Sink subtask `subtask` of `parallelism` writing repartition topic `topic`
    /// learnt `time`.
    pub(crate) fn sink_time(
        &self,
        topic: &str,
        subtask: usize,
        parallelism: usize,
        time: SinkTime,
    ) {
        let mut all = lock(&self.sink_times);
        let times = all
            .entry(topic.to_string())
            .or_insert_with(|| vec![SinkTime::default(); parallelism.max(1)]);
        if let Some(t) = times.get_mut(subtask) {
            *t = time;
        }
    }

    /// What sink subtask `subtask` of `topic` reported last.
    pub(crate) fn sink_time_of(&self, topic: &str, subtask: usize) -> SinkTime {
        lock(&self.sink_times)
            .get(topic)
            .and_then(|t| t.get(subtask).copied())
            .unwrap_or_default()
    }

    /// Changes what `topic`'s markers wait for ([`MarkerHold`]).
    pub(crate) fn hold_markers(&self, topic: &str, change: impl FnOnce(&mut MarkerHold)) {
        let mut holds = lock(&self.holds);
        let hold = holds.entry(topic.to_string()).or_default();
        let held = hold.holds();
        change(hold);
        match (held, hold.holds()) {
            (false, true) => tracing::info!(
                topic,
                "adopted partitions are behind the watermark: markers hold the readers' watermark until they catch up"
            ),
            (true, false) => tracing::info!(topic, "markers carry the watermark again"),
            _ => {}
        }
    }

    /// The marker this process writes into `topic` now: `None` while a sink
    /// subtask knows no time yet, or when the process owns no input partition.
    /// Its watermark is [`engine::NO_TIMESTAMP`] while adopted input partitions
    /// catch up.
    pub(crate) fn marker(&self, topic: &str) -> Option<Marker> {
        let claim = lock(&self.claim).clone();
        if claim.owns.is_empty() {
            return None;
        }
        let (mut watermark, mut idle) = process_time(lock(&self.sink_times).get(topic)?)?;
        if lock(&self.holds).get(topic).is_some_and(MarkerHold::holds) {
            (watermark, idle) = (engine::NO_TIMESTAMP, false);
        }
        Some(Marker {
            writer: claim.writer,
            watermark,
            idle,
            owns: claim.owns,
            of: claim.of,
        })
    }

    /// The feeds of `topics`' partitions (each can be taken once).
    pub(crate) fn take_feeds(&self, topics: &[String]) -> Vec<(TopicPartition, PartitionFeed)> {
        self.take_feeds_where(|tp| topics.contains(&tp.0) && !lock(&self.adopting).contains_key(tp))
    }

    fn take_feeds_where(
        &self,
        wanted: impl Fn(&TopicPartition) -> bool,
    ) -> Vec<(TopicPartition, PartitionFeed)> {
        let mut feeds = lock(&self.feeds);
        let keys: Vec<TopicPartition> = feeds.keys().filter(|tp| wanted(tp)).cloned().collect();
        let mut out: Vec<(TopicPartition, PartitionFeed)> = keys
            .into_iter()
            .filter_map(|tp| feeds.remove(&tp).map(|f| (tp, f)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(crate) fn record_position(&self, checkpoint: CheckpointId, tp: TopicPartition, next: i64) {
        lock(&self.positions)
            .entry(checkpoint)
            .or_default()
            .insert(tp, next);
    }

    /// The positions the splits recorded at barrier `checkpoint` (older ones are
    /// dropped: a checkpoint that completes covers them).
    pub(crate) fn take_positions(&self, checkpoint: CheckpointId) -> BTreeMap<TopicPartition, i64> {
        let mut all = lock(&self.positions);
        let mut mine = all.remove(&checkpoint).unwrap_or_default();
        all.retain(|id, _| *id > checkpoint);
        mine.extend(self.held.iter().map(|(tp, o)| (tp.clone(), *o)));
        mine
    }

    pub(crate) fn record_final(&self, tp: TopicPartition, next: i64) {
        lock(&self.finals).insert(tp, next);
    }

    /// Where each split stood when it ended (bounded input) or was dropped.
    pub(crate) fn final_positions(&self) -> BTreeMap<TopicPartition, i64> {
        let mut finals = lock(&self.finals).clone();
        finals.extend(self.held.iter().map(|(tp, o)| (tp.clone(), *o)));
        finals
    }

    pub(crate) fn dead_letter(&self, record: DeadLetterRecord) {
        self.status.dead_letter();
        lock(&self.dead_letters).push(record);
    }

    /// The dead letters read before `positions` (every one, without positions).
    pub(crate) fn take_dead_letters(
        &self,
        positions: Option<&BTreeMap<TopicPartition, i64>>,
    ) -> Vec<DeadLetterRecord> {
        let mut all = lock(&self.dead_letters);
        let Some(positions) = positions else {
            return std::mem::take(&mut *all);
        };
        let (due, later): (Vec<_>, Vec<_>) = all
            .drain(..)
            .partition(|d| positions.get(&d.source).is_some_and(|p| d.offset < *p));
        *all = later;
        due
    }
}
