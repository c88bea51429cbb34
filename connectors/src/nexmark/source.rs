//! [`NexmarkSource`]: the generator as an engine source, cut into splits that take
//! turns over blocks of the event sequence.
//!
//! ```text
//! event numbers: | block 0 | block 1 | block 2 | block 3 | block 4 | ...   (B each)
//! 2 splits:        split 0   split 1   split 0   split 1   split 0
//! B = lcm(person + auction + bid, out_of_order_group_size)    (50 by default)
//!
//! poll_next(max): next event index n of this split
//!   -> skip n while its kind is not the one kept (only(kind))
//!   -> realtime: wait until start + (scheduled_time(n) - scheduled_time(first n))
//!   -> Record { value: generator.event(n), timestamp: event time, offset: n }
//!   -> n = the split's next index (the next block after a block's last event)
//! position() = n ; restore(n) ; bounded: End once n >= max_events
//! ```
//!
//! Why blocks of `B`: a block holds every kind in the configured proportions (its
//! ids are `B` consecutive numbers, `B` a multiple of their sum) and whole
//! out-of-order groups, so three sources that each keep one kind get work on every
//! split, and a split's event times only grow (within the bound of
//! [`NexmarkConfig::max_out_of_orderness`] when groups are permuted). Splits move
//! through event time together, a block apart, so the minimum watermark over them
//! trails by little. Dealing single events round-robin would put all persons
//! (ids that are multiples of 50) on split 0 of 2 or of 10 splits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use engine::{EngineError, ErrorClass, Position, Record, Source, SourceSplit, SplitEvent};
use tokio::time::{Instant, Sleep};

use super::NexmarkConfig;
use super::generator::Generator;
use super::model::{Event, EventKind};
use crate::error::ConnectorError;

/// Records a poll makes at most, whatever the task asks for.
const MAX_BATCH: usize = 4096;

/// A source of Nexmark events (see the [module documentation](super)).
///
/// ```no_run
/// use connectors::nexmark::{EventKind, NexmarkConfig, NexmarkSource};
/// let config = NexmarkConfig::new().events_per_second(100_000).max_events(10_000_000);
/// // Every event, 4 splits, as fast as the pipeline takes them.
/// let all = NexmarkSource::new(config.clone()).splits(4);
/// // Only the bids, paced in real time at 100,000 events per second of the stream.
/// let bids = NexmarkSource::new(config).only(EventKind::Bid).realtime(true);
/// # let _ = (all, bids);
/// ```
#[derive(Debug, Clone)]
pub struct NexmarkSource {
    config: NexmarkConfig,
    splits: usize,
    realtime: bool,
    only: Option<EventKind>,
    name: String,
}

impl NexmarkSource {
    /// A source generating `config`'s stream in one split, as fast as it is read.
    /// The config is validated when the job creates the splits.
    pub fn new(config: NexmarkConfig) -> NexmarkSource {
        NexmarkSource {
            config,
            splits: 1,
            realtime: false,
            only: None,
            name: "nexmark".to_string(),
        }
    }

    /// Cuts the stream into `n` splits (at least 1): split `i` produces the blocks
    /// `i, i + n, i + 2n, ...` of the event sequence. The splits and the config
    /// must stay the same for a checkpoint to be restored.
    pub fn splits(self, n: usize) -> Self {
        NexmarkSource {
            splits: n.max(1),
            ..self
        }
    }

    /// With `true`, an event is emitted no earlier than its place on the rate's
    /// timeline relative to the split's first event (Flink's
    /// `max-emit-speed = false`); with `false`, the default, events come as fast
    /// as they are read and only their event times follow the rate.
    pub fn realtime(self, on: bool) -> Self {
        NexmarkSource {
            realtime: on,
            ..self
        }
    }

    /// Produces only events of `kind`. Events keep their numbers and ids: three
    /// sources with the same config, one per kind, produce between them exactly
    /// the events of one unfiltered source, so their ids join.
    pub fn only(self, kind: EventKind) -> Self {
        let name = if self.name == "nexmark" || self.name.starts_with("nexmark:") {
            format!("nexmark:{kind}")
        } else {
            self.name
        };
        NexmarkSource {
            only: Some(kind),
            name,
            ..self
        }
    }

    /// Sets the name used in metrics and errors (`nexmark`, or `nexmark:<kind>`).
    pub fn named(self, name: impl Into<String>) -> Self {
        NexmarkSource {
            name: name.into(),
            ..self
        }
    }

    /// The config.
    pub fn config(&self) -> &NexmarkConfig {
        &self.config
    }

    /// The generator behind the source, to recompute any of its events.
    pub fn generator(&self) -> Result<Generator, ConnectorError> {
        Generator::new(self.config.clone())
    }

    /// The generator, refusing a kind that is never generated.
    fn checked_generator(&self) -> Result<Generator, ConnectorError> {
        let generator = self.generator()?;
        if let Some(kind) = self.only {
            let c = &self.config;
            let proportion = match kind {
                EventKind::Person => c.person_proportion,
                EventKind::Auction => c.auction_proportion,
                EventKind::Bid => c.bid_proportion,
            };
            if proportion == 0 {
                return Err(ConnectorError::Config {
                    key: format!("nexmark.{kind}_proportion"),
                    message: format!("is 0, so a source of only {kind} events would never produce"),
                });
            }
        }
        Ok(generator)
    }
}

impl Source<Event> for NexmarkSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_bounded(&self) -> bool {
        self.config.max_events.is_some()
    }

    fn create_splits(&mut self) -> engine::Result<Vec<Box<dyn SourceSplit<Event>>>> {
        let generator = self.checked_generator().map_err(|e| {
            EngineError::external(format!("source {}", self.name), e, ErrorClass::Fatal)
        })?;
        let layout = Layout::new(&generator, self.splits as u64);
        tracing::debug!(
            source = %self.name,
            splits = self.splits,
            block = layout.block,
            max_events = ?self.config.max_events,
            realtime = self.realtime,
            "nexmark source splits"
        );
        let generator = Arc::new(generator);
        let end = self.config.max_events.unwrap_or(u64::MAX);
        Ok((0..self.splits as u64)
            .map(|index| {
                Box::new(NexmarkSplit {
                    generator: generator.clone(),
                    layout,
                    index,
                    next: layout.first(index),
                    end,
                    only: self.only,
                    realtime: self.realtime,
                    anchor: None,
                    sleep: None,
                }) as Box<dyn SourceSplit<Event>>
            })
            .collect())
    }
}

/// How event indexes are dealt to the splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Event number of index 0.
    first_number: u64,
    /// Events per block.
    block: u64,
    splits: u64,
}

impl Layout {
    fn new(generator: &Generator, splits: u64) -> Layout {
        let config = generator.config();
        let total = config.total_proportion();
        let group = generator.timeline().group();
        Layout {
            first_number: config.first_event_number,
            block: lcm(total, group),
            splits: splits.max(1),
        }
    }

    /// The block the `n`-th event is in.
    fn block_of(&self, n: u64) -> u64 {
        self.first_number.saturating_add(n) / self.block
    }

    /// Whether split `index` produces the `n`-th event.
    fn owns(&self, index: u64, n: u64) -> bool {
        self.block_of(n) % self.splits == index
    }

    /// The first event index of split `index`.
    fn first(&self, index: u64) -> u64 {
        let b0 = self.block_of(0);
        let b = b0 + (index + self.splits - b0 % self.splits) % self.splits;
        if b == b0 {
            0
        } else {
            b.saturating_mul(self.block) - self.first_number
        }
    }

    /// The index after `n` in the same split.
    fn after(&self, n: u64) -> u64 {
        let next = n.saturating_add(1);
        if self.first_number.saturating_add(next) % self.block == 0 {
            // Past the block's end: skip the other splits' blocks.
            next.saturating_add((self.splits - 1).saturating_mul(self.block))
        } else {
            next
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    let (a, b) = (a.max(1), b.max(1));
    (a / gcd(a, b)).saturating_mul(b)
}

/// One split: every `splits`-th block of the sequence.
struct NexmarkSplit {
    generator: Arc<Generator>,
    layout: Layout,
    index: u64,
    /// The index of the next event to look at.
    next: u64,
    /// One past the last index (`max_events`), or `u64::MAX`.
    end: u64,
    only: Option<EventKind>,
    realtime: bool,
    /// Realtime: when the split's first event (since start or restore) was
    /// emitted, and its scheduled time.
    anchor: Option<(Instant, i64)>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl NexmarkSplit {
    /// Moves `next` past events of other kinds.
    fn skip_other_kinds(&mut self) {
        if let Some(kind) = self.only {
            // Every block holds each kind whose proportion is positive (checked at
            // creation), so this ends within a block.
            while self.next < self.end && self.generator.kind(self.next) != kind {
                self.next = self.layout.after(self.next);
            }
        }
    }

    /// When the next event is due in realtime mode.
    fn due(&mut self) -> Instant {
        let scheduled = self.generator.scheduled_time(self.next);
        let (start, first) = *self
            .anchor
            .get_or_insert_with(|| (Instant::now(), scheduled));
        let ahead = u64::try_from(scheduled.saturating_sub(first)).unwrap_or(0);
        start + Duration::from_millis(ahead)
    }
}

impl SourceSplit<Event> for NexmarkSplit {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<engine::Result<SplitEvent<Event>>> {
        let max = max.clamp(1, MAX_BATCH);
        let mut records = Vec::new();
        while records.len() < max {
            self.skip_other_kinds();
            if self.next >= self.end {
                break;
            }
            if self.realtime {
                let due = self.due();
                if due > Instant::now() {
                    if !records.is_empty() {
                        break;
                    }
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    if sleep.deadline() != due {
                        sleep.as_mut().reset(due);
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The timer fired: the event is due.
                }
                self.sleep = None;
            }
            let n = self.next;
            let (event, timestamp) = self.generator.event(n);
            records.push(Record {
                value: event,
                timestamp,
                position: Position::offset_only(n),
            });
            self.next = self.layout.after(n);
        }
        if records.is_empty() {
            return Poll::Ready(Ok(SplitEvent::End));
        }
        Poll::Ready(Ok(SplitEvent::Records(records)))
    }

    fn position(&self) -> u64 {
        self.next
    }

    fn restore(&mut self, position: u64) -> engine::Result<()> {
        if position < self.end && !self.layout.owns(self.index, position) {
            return Err(EngineError::external(
                format!("restoring nexmark split {}", self.index),
                ConnectorError::Config {
                    key: "nexmark.splits".to_string(),
                    message: format!(
                        "the checkpointed position {position} is not an event of split {} of {} (blocks of {} events): the source's splits or config changed since the checkpoint",
                        self.index, self.layout.splits, self.layout.block
                    ),
                },
                ErrorClass::Fatal,
            ));
        }
        self.next = position;
        self.anchor = None;
        self.sleep = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    /// Polls a split to its end, `max` records per poll.
    async fn drain(split: &mut Box<dyn SourceSplit<Event>>, max: usize) -> Vec<Record<Event>> {
        let mut out = Vec::new();
        while let SplitEvent::Records(r) = poll_fn(|cx| split.poll_next(cx, max)).await.unwrap() {
            assert!(!r.is_empty());
            out.extend(r);
        }
        out
    }

    fn offsets(records: &[Record<Event>]) -> Vec<u64> {
        records
            .iter()
            .map(|r| r.position.offset().unwrap())
            .collect()
    }

    #[test]
    fn blocks_are_dealt_in_turn_and_cover_every_index_once() {
        let g = Generator::new(NexmarkConfig::new()).unwrap();
        let layout = Layout::new(&g, 3);
        assert_eq!(layout.block, 50);
        let mut seen = vec![false; 1000];
        for i in 0..3 {
            let mut n = layout.first(i);
            while n < 1000 {
                assert!(layout.owns(i, n));
                assert!(!seen[n as usize], "{n} twice");
                seen[n as usize] = true;
                n = layout.after(n);
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(
            (layout.first(0), layout.first(1), layout.first(2)),
            (0, 50, 100)
        );
        assert_eq!(layout.after(49), 150);
    }

    #[test]
    fn blocks_align_to_event_numbers_when_the_first_number_is_not_zero() {
        // Flink's SQL connector numbers from 1: index 0 is event number 1, and the
        // first block ends at event number 49.
        let g =
            Generator::new(NexmarkConfig::new().first_event_number(1).first_event_id(1)).unwrap();
        let layout = Layout::new(&g, 2);
        assert_eq!((layout.first(0), layout.first(1)), (0, 49));
        assert_eq!(layout.after(48), 99);
        // A group size of 20 makes blocks of lcm(50, 20) = 100.
        let g = Generator::new(NexmarkConfig::new().out_of_order_group_size(20)).unwrap();
        assert_eq!(Layout::new(&g, 2).block, 100);
    }

    #[tokio::test]
    async fn a_bounded_source_ends_after_max_events_spread_over_its_splits() {
        let mut source = NexmarkSource::new(NexmarkConfig::new().max_events(1234)).splits(3);
        assert!(source.is_bounded());
        assert!(!NexmarkSource::new(NexmarkConfig::new()).is_bounded());
        let mut splits = source.create_splits().unwrap();
        assert_eq!(splits.len(), 3);
        let g = source.generator().unwrap();
        let mut all = Vec::new();
        for split in &mut splits {
            let records = drain(split, 100).await;
            // In order of index, hence of event time, within a split.
            let o = offsets(&records);
            assert!(o.windows(2).all(|w| w[0] < w[1]));
            assert!(records.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
            for r in &records {
                let (event, ts) = g.event(r.position.offset().unwrap());
                assert_eq!((&r.value, r.timestamp), (&event, ts));
            }
            all.extend(o);
            assert!(split.position() >= 1234);
        }
        all.sort_unstable();
        assert_eq!(all, (0..1234).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn three_single_kind_sources_make_the_unfiltered_stream_between_them() {
        let config = NexmarkConfig::new().max_events(5000);
        let mut whole = Vec::new();
        for split in &mut NexmarkSource::new(config.clone())
            .splits(2)
            .create_splits()
            .unwrap()
        {
            whole.extend(drain(split, 333).await);
        }
        let mut parts = Vec::new();
        for kind in [EventKind::Person, EventKind::Auction, EventKind::Bid] {
            let mut source = NexmarkSource::new(config.clone()).splits(2).only(kind);
            assert_eq!(source.name(), format!("nexmark:{kind}"));
            for split in &mut source.create_splits().unwrap() {
                let records = drain(split, 333).await;
                // Every split gets its share of every kind.
                assert!(!records.is_empty(), "{kind}");
                assert!(records.iter().all(|r| r.value.kind() == kind));
                parts.extend(records);
            }
        }
        let key = |r: &Record<Event>| r.position.offset();
        whole.sort_by_key(key);
        parts.sort_by_key(key);
        assert_eq!(whole, parts);
        let persons = whole.iter().filter(|r| r.value.kind() == EventKind::Person);
        assert_eq!(persons.count(), 100);
    }

    #[tokio::test]
    async fn a_restored_split_continues_exactly_where_its_position_was() {
        let config = NexmarkConfig::new().max_events(3000);
        let mut source = NexmarkSource::new(config)
            .splits(2)
            .only(EventKind::Auction);
        let mut splits = source.create_splits().unwrap();
        let expected = drain(&mut splits[1], 7).await;

        let mut splits = source.create_splits().unwrap();
        let first = match poll_fn(|cx| splits[1].poll_next(cx, 10)).await.unwrap() {
            SplitEvent::Records(r) => r,
            SplitEvent::End => panic!("unexpected end"),
        };
        assert_eq!(first.len(), 10);
        let position = splits[1].position();
        drop(splits);

        let mut splits = source.create_splits().unwrap();
        splits[1].restore(position).unwrap();
        let mut resumed = first;
        resumed.extend(drain(&mut splits[1], 7).await);
        assert_eq!(resumed, expected);

        // A position of another split (another split count) is refused.
        let e = splits[0].restore(50).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert!(e.to_string().contains("nexmark split 0"), "{e}");
        // Past the end is fine: the split has finished.
        splits[0].restore(3000).unwrap();
        assert!(drain(&mut splits[0], 10).await.is_empty());
    }

    #[tokio::test]
    async fn a_kind_that_is_never_generated_is_refused() {
        let mut source =
            NexmarkSource::new(NexmarkConfig::new().proportions(1, 0, 9)).only(EventKind::Auction);
        let e = source.create_splits().err().unwrap();
        assert!(e.to_string().contains("auction_proportion"), "{e}");
        let mut source = NexmarkSource::new(NexmarkConfig::new().events_per_second(0));
        assert!(source.create_splits().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn realtime_splits_wait_for_each_events_scheduled_time() {
        // 1,000 events/s: event n is due n ms after the first.
        let config = NexmarkConfig::new().events_per_second(1000).max_events(100);
        let mut source = NexmarkSource::new(config).realtime(true);
        let mut splits = source.create_splits().unwrap();
        let start = Instant::now();
        let mut emitted = Vec::new();
        while let SplitEvent::Records(r) =
            poll_fn(|cx| splits[0].poll_next(cx, 1000)).await.unwrap()
        {
            let at = (Instant::now() - start).as_millis() as u64;
            for record in r {
                let n = record.position.offset().unwrap();
                // Never early, and (with a paused clock) never late.
                assert_eq!(at, n, "event {n} emitted at {at} ms");
                emitted.push(n);
            }
        }
        assert_eq!(emitted, (0..100).collect::<Vec<_>>());
        assert_eq!((Instant::now() - start).as_millis(), 99);
    }

    #[tokio::test]
    async fn a_pipeline_counts_the_bids_of_each_second_of_event_time() {
        use engine::{CollectSink, Count, Pipeline, PipelineConfig, WatermarkStrategy, Windows};

        // 30,000 events at 10,000/s: three seconds of 9,200 bids each, read by 2
        // tasks from 4 splits with monotonous watermarks.
        let config = NexmarkConfig::new().max_events(30_000);
        let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
        let sink = CollectSink::new();
        p.source(
            NexmarkSource::new(config).splits(4).only(EventKind::Bid),
            WatermarkStrategy::monotonous(),
        )
        .key_by(|_| 0u8)
        .window(Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Count)
        .sink(sink.clone());
        p.run().await.unwrap();
        let mut counts: Vec<(i64, u64)> = sink
            .values()
            .iter()
            .map(|w| (w.window.start - crate::nexmark::DEFAULT_BASE_TIME, w.value))
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [(0, 9200), (1000, 9200), (2000, 9200)]);
    }

    #[tokio::test]
    async fn by_default_events_come_as_fast_as_they_are_read() {
        let config = NexmarkConfig::new().events_per_second(1).max_events(2000);
        let mut splits = NexmarkSource::new(config).create_splits().unwrap();
        let records = drain(&mut splits[0], 2000).await;
        assert_eq!(records.len(), 2000);
        // Event time still follows the rate: 1 event per second.
        assert_eq!(records[1999].timestamp - records[0].timestamp, 1_999_000);
    }
}
