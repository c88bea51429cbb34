//! Keying by anything across processes: a repartition topic between two stages
//! ([`KafkaScope::key_by`]).
//!
//! ```text
//!  stage 1 (every process: its input partitions)           stage 2 (every process: the same partition numbers)
//!  source ─► operators ─► repartition sink ──► {app}-{name}-repartition ──► repartition source ─► keyed operators
//!                          key → partition       (partitions = the widest     records, and per partition the
//!                          + at each barrier      input topic; written in      minimum watermark over the
//!                          one watermark marker   the checkpoint's             processes that own input
//!                          per partition          transaction)                 partitions
//! ```
//!
//! Records go to `partition_for_key(key bytes)`, so the stage after the topic
//! keys by source partition again and its state moves with the partitions. The
//! sink's records, the markers and the reader's offsets belong to the
//! checkpoint's transaction like every other output, so the topic holds every
//! record once for read_committed.
//!
//! Event time crosses the topic as markers (a record with the header
//! [`MARKER_HEADER`] and a JSON [`Marker`] value). At every barrier each process
//! writes one marker per partition: its upstream watermark (the minimum over its
//! sink subtasks), whether that input is idle, and the input partition numbers
//! it owns. A reader gives each input partition number to the process that
//! claimed it last (a process's new claim releases what it no longer owns, and a
//! process that owns nothing any more is forgotten), and its watermark is the
//! minimum over the owners that are not idle, once every partition number has
//! an owner; idle when every owner is idle.
//!
//! A process that takes input partitions on while it runs reads them from
//! their last checkpoint, behind its own watermark. Until they catch up
//! ([`engine::Sink::caught_up`]) its markers say [`engine::NO_TIMESTAMP`], which holds
//! every reader's watermark where it is ([`MarkerHold`]): the partitions'
//! previous owner claimed them with a watermark no later than theirs at that
//! checkpoint, so none of their records is late behind the topic.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use bytes::Bytes;
use engine::{
    CheckpointId, DataStream, Key, KeyedStream, SplitTime, StateCodec, WatermarkStrategy,
};
use kafka_wire::client::partitioner::partition_for_key;
use serde::{Deserialize, Serialize};

use super::scope::KafkaScope;
use crate::format::{Format, FormatError};

/// The header that marks a record of a repartition topic as a watermark marker.
pub(crate) const MARKER_HEADER: &str = "strom.watermark";

/// The name of the repartition topic `name` of application `app`.
pub(crate) fn topic_name(app: &str, name: &str) -> String {
    format!("{app}-{name}-repartition")
}

/// One process's event time, written into every partition of a repartition
/// topic at each barrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marker {
    /// The writing process (`{application.id}-{instance}`).
    pub writer: String,
    /// Its upstream watermark (ms since the epoch; meaningless while idle).
    pub watermark: i64,
    /// Whether all its upstream input is idle.
    pub idle: bool,
    /// The input partition numbers it owns.
    pub owns: Vec<u16>,
    /// How many input partition numbers there are.
    pub of: u16,
}

impl Marker {
    pub(crate) fn encode(&self) -> Result<Bytes, FormatError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|e| marker_error(format!("encoding: {e}")))
    }

    pub(crate) fn decode(bytes: Option<&[u8]>) -> Result<Marker, FormatError> {
        let m: Marker = serde_json::from_slice(bytes.unwrap_or_default())
            .map_err(|e| marker_error(format!("does not decode: {e}")))?;
        if let Some(p) = m.owns.iter().find(|p| **p >= m.of) {
            return Err(marker_error(format!(
                "{} claims input partition {p} of {}",
                m.writer, m.of
            )));
        }
        Ok(m)
    }
}

fn marker_error(message: String) -> FormatError {
    FormatError {
        format: "watermark marker",
        message,
    }
}

/// What one sink subtask last learnt about event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SinkTime {
    /// Its input's watermark, once there is one.
    pub watermark: Option<i64>,
    /// Whether its input is idle.
    pub idle: bool,
}

/// A process's upstream time from its sink subtasks' times: `None` until every
/// subtask knows a watermark or is idle; then the minimum over the active ones,
/// or idle when all are.
pub(crate) fn process_time(subtasks: &[SinkTime]) -> Option<(i64, bool)> {
    if subtasks.is_empty() {
        return None;
    }
    let mut min: Option<i64> = None;
    for s in subtasks {
        if s.idle {
            continue;
        }
        let w = s.watermark?;
        min = Some(min.map_or(w, |m| m.min(w)));
    }
    match min {
        Some(w) => Some((w, false)),
        None => {
            let last = subtasks.iter().filter_map(|s| s.watermark).max();
            Some((last.unwrap_or(engine::NO_TIMESTAMP), true))
        }
    }
}

/// Input partitions a process took on under event time that have not caught
/// up with its watermark yet. Their records may be older than that watermark,
/// so while there are any the process's markers hold the readers' watermark
/// where it is ([`engine::NO_TIMESTAMP`]: a reader's watermark never goes back).
///
/// Every sink subtask hears of every adoption; the first to hear of one adds
/// its partitions, so a subtask that hears late cannot add back a partition
/// another subtask already heard catch up.
#[derive(Debug, Default)]
pub(crate) struct MarkerHold {
    /// Adoptions heard of, by their checkpoint (the most recent ones).
    heard: BTreeSet<CheckpointId>,
    lagging: BTreeSet<u16>,
}

/// How many adoptions a [`MarkerHold`] remembers.
const HEARD_ADOPTIONS: usize = 64;

impl MarkerHold {
    /// The partitions of the adoption at `checkpoint` start lagging (once per
    /// adoption, whichever subtask tells first).
    pub(crate) fn adopted(&mut self, checkpoint: CheckpointId, partitions: &BTreeSet<u16>) {
        if self.heard.insert(checkpoint) {
            self.lagging.extend(partitions);
            while self.heard.len() > HEARD_ADOPTIONS {
                self.heard.pop_first();
            }
        }
    }

    /// `partition` caught up.
    pub(crate) fn caught_up(&mut self, partition: u16) {
        self.lagging.remove(&partition);
    }

    /// The process gave `partitions` up.
    pub(crate) fn released(&mut self, partitions: &BTreeSet<u16>) {
        self.lagging.retain(|p| !partitions.contains(p));
    }

    /// Whether the process's markers hold the readers' watermark.
    pub(crate) fn holds(&self) -> bool {
        !self.lagging.is_empty()
    }
}

/// A repartition partition's event time, learnt from the markers read so far.
#[derive(Debug, Default)]
pub(crate) struct MarkerClock {
    /// For each input partition number, the writer that claimed it last.
    owner: Vec<Option<Arc<str>>>,
    /// Each owning writer's last watermark and idleness.
    writers: HashMap<Arc<str>, (i64, bool)>,
    /// The largest watermark reported (reports never go back).
    emitted: Option<i64>,
    now: Option<SplitTime>,
}

impl MarkerClock {
    /// Takes in one marker.
    pub(crate) fn observe(&mut self, m: Marker) {
        let writer: Arc<str> = m.writer.as_str().into();
        let of = usize::from(m.of);
        if self.owner.len() != of {
            // The input partition count changed (or this is the first marker):
            // claims made over another count say nothing about this one.
            self.owner = vec![None; of];
            self.writers.clear();
        }
        let owns: BTreeSet<usize> = m.owns.iter().map(|p| usize::from(*p)).collect();
        for (p, o) in self.owner.iter_mut().enumerate() {
            if owns.contains(&p) {
                *o = Some(writer.clone());
            } else if o.as_ref() == Some(&writer) {
                *o = None;
            }
        }
        self.writers.insert(writer, (m.watermark, m.idle));
        let owners: BTreeSet<&Arc<str>> = self.owner.iter().flatten().collect();
        self.writers.retain(|w, _| owners.contains(w));
        self.now = Some(self.compute());
    }

    fn compute(&mut self) -> SplitTime {
        if self.owner.is_empty() || self.owner.iter().any(Option::is_none) {
            return SplitTime::Unknown;
        }
        let min = self
            .writers
            .values()
            .filter(|(_, idle)| !idle)
            .map(|(w, _)| *w)
            .min();
        match min {
            None => SplitTime::Idle,
            Some(w) => {
                let w = self.emitted.map_or(w, |e| e.max(w));
                self.emitted = Some(w);
                SplitTime::Watermark(w)
            }
        }
    }

    /// The partition's event time now.
    pub(crate) fn time(&self) -> SplitTime {
        self.now.unwrap_or(SplitTime::Unknown)
    }
}

/// A format used by both ends of a repartition topic.
struct Shared<F>(Arc<F>);

impl<T, F: Format<T>> Format<T> for Shared<F> {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, FormatError> {
        self.0.deserialize(bytes)
    }
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, FormatError> {
        self.0.serialize(value)
    }
}

/// A key's bytes on a repartition topic: its [`StateCodec`] encoding.
pub(crate) fn key_bytes<K: StateCodec>(key: &K) -> Vec<u8> {
    let mut b = Vec::new();
    key.encode(&mut b);
    b
}

/// The partition a key's bytes go to among `partitions`.
pub(crate) fn partition_of(key: &[u8], partitions: &AtomicU16) -> u16 {
    let n = i32::from(partitions.load(Ordering::Relaxed).max(1));
    u16::try_from(partition_for_key(key, n)).unwrap_or(0)
}

impl KafkaScope {
    /// Keys `stream` by `key` across every process of the job: records go
    /// through the repartition topic `{application.id}-{name}-repartition`
    /// (created with as many partitions as the widest input topic), encoded with
    /// `format`, and the stage after it is partition-aligned again, so its keyed
    /// state moves with the partitions when processes come and go. Event time
    /// crosses the topic (see the module doc); writes and reads belong to the
    /// checkpoint's transaction. Use it where [`DataStream::key_by`] would key by
    /// something other than the Kafka record key of a pipeline that runs as
    /// several processes; inside one process `key_by` shuffles in memory.
    ///
    /// ```no_run
    /// # fn demo(p: &engine::Pipeline, k: &connectors::kafka::KafkaScope) {
    /// use std::time::Duration;
    /// use connectors::kafka::Json;
    /// use engine::{Count, WatermarkStrategy, Windows};
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct View { user: String, page: String, ts: i64 }
    ///
    /// let views = p.source(
    ///     k.source().topics(["views"]).format(Json::<View>::new()), // keyed by page
    ///     WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
    ///         .with_timestamp(|v: &View| v.ts),
    /// );
    /// k.key_by(views, "by-user", |v: &View| v.user.clone(), Json::new())
    ///     .window(Windows::tumbling(Duration::from_secs(60)))
    ///     .aggregate(Count)
    ///     .sink(k.sink("views-per-user").exactly_once());
    /// # }
    /// ```
    pub fn key_by<T, K, F>(
        &self,
        stream: DataStream<T>,
        name: &str,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
        format: F,
    ) -> KeyedStream<K, T>
    where
        T: Send + 'static,
        K: Key,
        F: Format<T>,
    {
        let topic = topic_name(self.config().application_id(), name);
        let format = Arc::new(format);
        let key = Arc::new(key);
        let partitions = self.repartition_partitions();
        let sink_key = key.clone();
        let pipeline = stream.pipeline();
        stream.sink(self.repartition_sink(
            &topic,
            Shared(format.clone()),
            Arc::new(move |v: &T| key_bytes(&sink_key(v))),
        ));
        let source = self.repartition_source(&topic).format(Shared(format));
        // Event time crosses the topic only when there is some upstream: a
        // processing-time pipeline stays one, and can move partitions in place.
        let strategy = if pipeline.has_event_time() {
            WatermarkStrategy::monotonous()
        } else {
            WatermarkStrategy::no_watermarks()
        };
        pipeline.source(source, strategy).key_by_partitioned(
            move |v: &T| key(v),
            move |k: &K| partition_of(&key_bytes(k), &partitions),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::NO_TIMESTAMP;

    fn marker(writer: &str, watermark: i64, idle: bool, owns: &[u16], of: u16) -> Marker {
        Marker {
            writer: writer.into(),
            watermark,
            idle,
            owns: owns.to_vec(),
            of,
        }
    }

    #[test]
    fn the_watermark_waits_until_every_input_partition_has_an_owner() {
        let mut c = MarkerClock::default();
        assert_eq!(c.time(), SplitTime::Unknown);
        c.observe(marker("a", 100, false, &[0, 1], 4));
        assert_eq!(c.time(), SplitTime::Unknown);
        c.observe(marker("b", 50, false, &[2, 3], 4));
        assert_eq!(c.time(), SplitTime::Watermark(50));
        c.observe(marker("b", 200, false, &[2, 3], 4));
        assert_eq!(c.time(), SplitTime::Watermark(100));
    }

    #[test]
    fn a_process_that_gave_up_partitions_no_longer_speaks_for_them() {
        let mut c = MarkerClock::default();
        c.observe(marker("a", 100, false, &[0, 1, 2, 3], 4));
        assert_eq!(c.time(), SplitTime::Watermark(100));
        // After a rebalance a claims less: 2 and 3 wait for their new owner.
        c.observe(marker("a", 300, false, &[0, 1], 4));
        assert_eq!(c.time(), SplitTime::Unknown);
        c.observe(marker("b", 120, false, &[2, 3], 4));
        assert_eq!(c.time(), SplitTime::Watermark(120));
        // b is killed; a takes everything back: b is forgotten at once.
        c.observe(marker("a", 310, false, &[0, 1, 2, 3], 4));
        assert_eq!(c.time(), SplitTime::Watermark(310));
        assert_eq!(c.writers.len(), 1);
    }

    #[test]
    fn reports_never_go_back_and_idle_owners_do_not_hold_the_watermark() {
        let mut c = MarkerClock::default();
        c.observe(marker("a", 100, false, &[0], 2));
        c.observe(marker("b", 500, false, &[1], 2));
        assert_eq!(c.time(), SplitTime::Watermark(100));
        c.observe(marker("a", 0, true, &[0], 2));
        assert_eq!(c.time(), SplitTime::Watermark(500));
        c.observe(marker("b", 0, true, &[1], 2));
        assert_eq!(c.time(), SplitTime::Idle);
        // A new process claiming with an older watermark does not move it back.
        c.observe(marker("c", 400, false, &[0, 1], 2));
        assert_eq!(c.time(), SplitTime::Watermark(500));
    }

    #[test]
    fn a_held_marker_keeps_the_readers_watermark_where_it_is() {
        let mut c = MarkerClock::default();
        c.observe(marker("a", 100, false, &[0], 2));
        c.observe(marker("b", 500, false, &[1], 2));
        assert_eq!(c.time(), SplitTime::Watermark(100));
        // a takes 1 on from b: its markers hold until 1 catches up.
        c.observe(marker("a", NO_TIMESTAMP, false, &[0, 1], 2));
        assert_eq!(c.time(), SplitTime::Watermark(100));
        c.observe(marker("a", 600, false, &[0, 1], 2));
        assert_eq!(c.time(), SplitTime::Watermark(600));
    }

    #[test]
    fn a_hold_lasts_until_every_adopted_partition_caught_up_or_left() {
        let mut h = MarkerHold::default();
        assert!(!h.holds());
        h.adopted(CheckpointId(4), &BTreeSet::from([1, 3]));
        h.caught_up(1);
        assert!(h.holds());
        // Another subtask hears of the same adoption after 1 caught up.
        h.adopted(CheckpointId(4), &BTreeSet::from([1, 3]));
        h.released(&BTreeSet::from([3]));
        assert!(!h.holds(), "1 caught up and 3 left");
        h.adopted(CheckpointId(6), &BTreeSet::from([2]));
        assert!(h.holds());
        h.caught_up(2);
        assert!(!h.holds());
    }

    #[test]
    fn a_process_time_needs_every_subtask_and_skips_idle_ones() {
        let known = |w| SinkTime {
            watermark: Some(w),
            idle: false,
        };
        let idle = SinkTime {
            watermark: None,
            idle: true,
        };
        assert_eq!(process_time(&[]), None);
        assert_eq!(process_time(&[known(5), SinkTime::default()]), None);
        assert_eq!(process_time(&[known(5), known(3)]), Some((3, false)));
        assert_eq!(process_time(&[known(5), idle]), Some((5, false)));
        assert_eq!(
            process_time(&[idle, idle]),
            Some((engine::NO_TIMESTAMP, true))
        );
    }

    #[test]
    fn markers_round_trip_and_bad_ones_are_refused() {
        let m = marker("app-1", 42, false, &[0, 3], 4);
        let bytes = m.encode().unwrap();
        assert_eq!(Marker::decode(Some(&bytes)).unwrap(), m);
        assert!(Marker::decode(Some(b"{")).is_err());
        assert!(Marker::decode(None).is_err());
        let bad = marker("x", 1, false, &[4], 4).encode().unwrap();
        assert!(Marker::decode(Some(&bad)).is_err());
    }
}
