//! [`NexmarkConfig`]: the generator's parameters with the published defaults, and
//! the event timeline they imply (event number -> event id, timestamp, watermark).
//!
//! ```text
//! n (0, 1, 2, ...: the n-th event of the stream)
//!   event number    = first_event_number + n                         (Beam: nextEventNumber)
//!   adjusted number = group base + (event number * 953) % group size  (outOfOrderGroupSize)
//!   event id        = first_event_id + adjusted number     -> kind, ids, the Random's seed
//!   event time      = timestamp(adjusted number)           -> the event's date_time
//!   scheduled time  = timestamp(event number)              -> monotone, paces realtime runs
//!   watermark       = timestamp(group base)                -> no later event is older
//! timestamp(e) = base_time + floor(e * inter_event_delay_us) / 1000     (one rate)
//!              = Beam's stepped square/sine curve                        (two rates)
//! ```

use std::time::Duration;

use crate::error::ConnectorError;

/// Epoch milliseconds of 2015-07-15T00:00:00Z, the fixed base time of Apache Beam's
/// Nexmark (`NexmarkUtils.BASE_TIME`): event 0 happens then unless
/// [`NexmarkConfig::base_time`] says otherwise, so every run sees the same stream.
pub const DEFAULT_BASE_TIME: i64 = 1_436_918_400_000;

/// The largest average event size accepted (16 MiB): the `extra` strings are built
/// in memory for every event.
pub const MAX_AVG_BYTE_SIZE: u32 = 16 * 1024 * 1024;

/// The highest rate, in events per second, a two-rate curve accepts: its steps use
/// whole microseconds between events (Beam's `rateToPeriodUs`), which reach zero
/// above this.
pub const MAX_SHAPED_RATE: u32 = 2_000_000;

/// How the event rate moves between [`NexmarkConfig::first_event_rate`] and
/// [`NexmarkConfig::next_event_rate`] when they differ (Beam's `RateShape`). With
/// equal rates (the default) the shape does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateShape {
    /// Half the period at the first rate, half at the next (the default).
    #[default]
    Square,
    /// Ten steps following a cosine from the first rate to the next and back.
    Sine,
}

impl RateShape {
    /// Number of steps in one period.
    fn steps(self) -> u32 {
        match self {
            RateShape::Square => 2,
            RateShape::Sine => 10,
        }
    }
}

/// The parameters of the Nexmark generator. Defaults are those of the published
/// generator's `NexmarkConfiguration` (nexmark/nexmark, which Flink, Arroyo and
/// RisingWave run): 10,000 events per second, persons, auctions and bids in the
/// proportions 1:3:46, hot auction ratio 2, hot sellers and bidders ratios 4, 100
/// auctions in flight, 1,000 active people, average sizes 200/500/100 bytes, no
/// out-of-order groups, unbounded. The base time and first ids follow Apache
/// Beam's deterministic standalone generator (2015-07-15, ids from 0).
///
/// ```
/// use connectors::nexmark::NexmarkConfig;
/// let config = NexmarkConfig::new().events_per_second(50_000).max_events(1_000_000);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.max_events, Some(1_000_000));
/// assert_eq!(config.bid_proportion, 46);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NexmarkConfig {
    /// Events per second at the start of each period of the rate curve
    /// (`firstEventRate`, default 10,000).
    pub first_event_rate: u32,
    /// Events per second at the other end of the rate curve (`nextEventRate`,
    /// default 10,000). Equal to `first_event_rate`, the rate is constant.
    pub next_event_rate: u32,
    /// How the rate moves between the two rates (`rateShape`, default square).
    pub rate_shape: RateShape,
    /// The period of the rate curve in seconds (`ratePeriodSec`, default 600).
    pub rate_period_secs: u32,
    /// Total number of events (`numEvents`), after which the source ends; `None`
    /// (the default) for an unbounded stream.
    pub max_events: Option<u64>,
    /// Added to every event id (`firstEventId`; Beam 0, the default; Flink's SQL
    /// connector 1). Ids decide each event's kind and seed its random draws.
    pub first_event_id: u64,
    /// The event number of event 0 (`firstEventNumber`; Beam 0, the default;
    /// Flink's SQL connector 1). Event numbers place events on the timeline and
    /// also enter their ids.
    pub first_event_number: u64,
    /// Epoch milliseconds of event number 0 ([`DEFAULT_BASE_TIME`] by default).
    pub base_time: i64,
    /// Persons per `person + auction + bid` events (`personProportion`, default 1).
    /// Events take their kind from their id modulo that total: the first `person`
    /// ids of each run are persons, the next `auction` ones auctions, the rest bids.
    pub person_proportion: u32,
    /// Auctions per total (`auctionProportion`, default 3).
    pub auction_proportion: u32,
    /// Bids per total (`bidProportion`, default 46).
    pub bid_proportion: u32,
    /// A bid goes to a hot auction with probability `1 - 1/ratio`
    /// (`hotAuctionRatio`, default 2).
    pub hot_auction_ratio: u32,
    /// An auction is by a hot seller with probability `1 - 1/ratio`
    /// (`hotSellersRatio`, default 4).
    pub hot_sellers_ratio: u32,
    /// A bid is by a hot bidder with probability `1 - 1/ratio`
    /// (`hotBiddersRatio`, default 4).
    pub hot_bidders_ratio: u32,
    /// How many recent auctions a cold bid picks from, and the average number of
    /// auctions open at once (`numInFlightAuctions`, default 100).
    pub num_in_flight_auctions: u32,
    /// How many recent persons cold sellers and bidders are picked from
    /// (`numActivePeople`, default 1,000).
    pub num_active_people: u32,
    /// Average size in bytes a person is padded to with its `extra` string
    /// (`avgPersonByteSize`, default 200).
    pub avg_person_byte_size: u32,
    /// Average size in bytes an auction is padded to (`avgAuctionByteSize`,
    /// default 500).
    pub avg_auction_byte_size: u32,
    /// Average size in bytes a bid is padded to (`avgBidByteSize`, default 100).
    pub avg_bid_byte_size: u32,
    /// Events come in groups of this many consecutive event numbers whose ids and
    /// timestamps are permuted within the group (`outOfOrderGroupSize`; 1, the
    /// default, keeps them in order). See [`NexmarkConfig::max_out_of_orderness`].
    pub out_of_order_group_size: u64,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            first_event_rate: 10_000,
            next_event_rate: 10_000,
            rate_shape: RateShape::Square,
            rate_period_secs: 600,
            max_events: None,
            first_event_id: 0,
            first_event_number: 0,
            base_time: DEFAULT_BASE_TIME,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            num_in_flight_auctions: 100,
            num_active_people: 1000,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
            out_of_order_group_size: 1,
        }
    }
}

impl NexmarkConfig {
    /// The published defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// One constant rate in events per second (default 10,000, Flink's TPS):
    /// sets both [`first_event_rate`](Self::first_event_rate) and
    /// [`next_event_rate`](Self::next_event_rate). Event number `e` is then at
    /// `base_time + floor(e * 1e6 / rate) / 1000` ms.
    pub fn events_per_second(self, rate: u32) -> Self {
        NexmarkConfig {
            first_event_rate: rate,
            next_event_rate: rate,
            ..self
        }
    }

    /// Sets [`first_event_rate`](Self::first_event_rate).
    pub fn first_event_rate(self, rate: u32) -> Self {
        NexmarkConfig {
            first_event_rate: rate,
            ..self
        }
    }

    /// Sets [`next_event_rate`](Self::next_event_rate).
    pub fn next_event_rate(self, rate: u32) -> Self {
        NexmarkConfig {
            next_event_rate: rate,
            ..self
        }
    }

    /// Sets [`rate_shape`](Self::rate_shape).
    pub fn rate_shape(self, shape: RateShape) -> Self {
        NexmarkConfig {
            rate_shape: shape,
            ..self
        }
    }

    /// Sets [`rate_period_secs`](Self::rate_period_secs).
    pub fn rate_period_secs(self, secs: u32) -> Self {
        NexmarkConfig {
            rate_period_secs: secs,
            ..self
        }
    }

    /// Generates `n` events in all, then the source ends
    /// ([`max_events`](Self::max_events)).
    pub fn max_events(self, n: u64) -> Self {
        NexmarkConfig {
            max_events: Some(n),
            ..self
        }
    }

    /// Generates events without end (the default).
    pub fn unbounded(self) -> Self {
        NexmarkConfig {
            max_events: None,
            ..self
        }
    }

    /// Sets [`first_event_id`](Self::first_event_id).
    pub fn first_event_id(self, id: u64) -> Self {
        NexmarkConfig {
            first_event_id: id,
            ..self
        }
    }

    /// Sets [`first_event_number`](Self::first_event_number).
    pub fn first_event_number(self, number: u64) -> Self {
        NexmarkConfig {
            first_event_number: number,
            ..self
        }
    }

    /// Sets [`base_time`](Self::base_time), in epoch milliseconds.
    pub fn base_time(self, epoch_ms: i64) -> Self {
        NexmarkConfig {
            base_time: epoch_ms,
            ..self
        }
    }

    /// Sets the proportions of persons, auctions and bids (default 1:3:46).
    pub fn proportions(self, person: u32, auction: u32, bid: u32) -> Self {
        NexmarkConfig {
            person_proportion: person,
            auction_proportion: auction,
            bid_proportion: bid,
            ..self
        }
    }

    /// Sets [`hot_auction_ratio`](Self::hot_auction_ratio).
    pub fn hot_auction_ratio(self, ratio: u32) -> Self {
        NexmarkConfig {
            hot_auction_ratio: ratio,
            ..self
        }
    }

    /// Sets [`hot_sellers_ratio`](Self::hot_sellers_ratio).
    pub fn hot_sellers_ratio(self, ratio: u32) -> Self {
        NexmarkConfig {
            hot_sellers_ratio: ratio,
            ..self
        }
    }

    /// Sets [`hot_bidders_ratio`](Self::hot_bidders_ratio).
    pub fn hot_bidders_ratio(self, ratio: u32) -> Self {
        NexmarkConfig {
            hot_bidders_ratio: ratio,
            ..self
        }
    }

    /// Sets [`num_in_flight_auctions`](Self::num_in_flight_auctions).
    pub fn num_in_flight_auctions(self, n: u32) -> Self {
        NexmarkConfig {
            num_in_flight_auctions: n,
            ..self
        }
    }

    /// Sets [`num_active_people`](Self::num_active_people).
    pub fn num_active_people(self, n: u32) -> Self {
        NexmarkConfig {
            num_active_people: n,
            ..self
        }
    }

    /// Sets [`avg_person_byte_size`](Self::avg_person_byte_size).
    pub fn avg_person_byte_size(self, bytes: u32) -> Self {
        NexmarkConfig {
            avg_person_byte_size: bytes,
            ..self
        }
    }

    /// Sets [`avg_auction_byte_size`](Self::avg_auction_byte_size).
    pub fn avg_auction_byte_size(self, bytes: u32) -> Self {
        NexmarkConfig {
            avg_auction_byte_size: bytes,
            ..self
        }
    }

    /// Sets [`avg_bid_byte_size`](Self::avg_bid_byte_size).
    pub fn avg_bid_byte_size(self, bytes: u32) -> Self {
        NexmarkConfig {
            avg_bid_byte_size: bytes,
            ..self
        }
    }

    /// Sets [`out_of_order_group_size`](Self::out_of_order_group_size).
    pub fn out_of_order_group_size(self, n: u64) -> Self {
        NexmarkConfig {
            out_of_order_group_size: n,
            ..self
        }
    }

    /// An upper bound of how far an event's timestamp can fall behind the highest
    /// timestamp generated before it (per split too): zero with the default group
    /// size of 1, else the time the longest step of the rate curve takes for
    /// `group size - 1` events, plus a millisecond for rounding. Suits
    /// `WatermarkStrategy::bounded_out_of_orderness`.
    pub fn max_out_of_orderness(&self) -> Duration {
        let g = self.out_of_order_group_size.max(1);
        if g == 1 {
            return Duration::ZERO;
        }
        let slowest = self.first_event_rate.min(self.next_event_rate).max(1);
        let delay_us = 1_000_000.0 / f64::from(slowest);
        let ms = ((g - 1) as f64 * delay_us / 1000.0).ceil() as u64 + 1;
        Duration::from_millis(ms)
    }

    /// Checks every setting; the source and [`Generator::new`](super::Generator::new)
    /// call it.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |key: &str, message: String| {
            Err(ConnectorError::Config {
                key: format!("nexmark.{key}"),
                message,
            })
        };
        if self.first_event_rate == 0 {
            return bad(
                "first_event_rate",
                "must be at least 1 event per second".into(),
            );
        }
        if self.next_event_rate == 0 {
            return bad(
                "next_event_rate",
                "must be at least 1 event per second".into(),
            );
        }
        if self.first_event_rate != self.next_event_rate {
            for (key, rate) in [
                ("first_event_rate", self.first_event_rate),
                ("next_event_rate", self.next_event_rate),
            ] {
                if rate > MAX_SHAPED_RATE {
                    return bad(
                        key,
                        format!(
                            "{rate} events/s: a two-rate curve steps in whole microseconds, so at most {MAX_SHAPED_RATE}"
                        ),
                    );
                }
            }
            if self.rate_period_secs == 0 {
                return bad("rate_period_secs", "must be at least 1 second".into());
            }
        }
        let total = u64::from(self.person_proportion)
            + u64::from(self.auction_proportion)
            + u64::from(self.bid_proportion);
        if total == 0 {
            return bad(
                "proportions",
                "at least one proportion must be positive".into(),
            );
        }
        for (key, ratio) in [
            ("hot_auction_ratio", self.hot_auction_ratio),
            ("hot_sellers_ratio", self.hot_sellers_ratio),
            ("hot_bidders_ratio", self.hot_bidders_ratio),
        ] {
            if ratio == 0 || ratio > i32::MAX as u32 {
                return bad(key, format!("{ratio}: must be in 1..=2^31-1"));
            }
        }
        for (key, n) in [
            ("num_in_flight_auctions", self.num_in_flight_auctions),
            ("num_active_people", self.num_active_people),
        ] {
            if n > i32::MAX as u32 {
                return bad(key, format!("{n}: must be at most 2^31-1"));
            }
        }
        for (key, size) in [
            ("avg_person_byte_size", self.avg_person_byte_size),
            ("avg_auction_byte_size", self.avg_auction_byte_size),
            ("avg_bid_byte_size", self.avg_bid_byte_size),
        ] {
            if size > MAX_AVG_BYTE_SIZE {
                return bad(key, format!("{size}: must be at most {MAX_AVG_BYTE_SIZE}"));
            }
        }
        if self.out_of_order_group_size == 0 {
            return bad("out_of_order_group_size", "must be at least 1".into());
        }
        Ok(())
    }

    pub(crate) fn total_proportion(&self) -> u64 {
        u64::from(self.person_proportion)
            + u64::from(self.auction_proportion)
            + u64::from(self.bid_proportion)
    }

    pub(crate) fn person_proportion(&self) -> u64 {
        u64::from(self.person_proportion)
    }

    pub(crate) fn auction_proportion(&self) -> u64 {
        u64::from(self.auction_proportion)
    }

    pub(crate) fn hot_auction(&self) -> i32 {
        self.hot_auction_ratio as i32
    }

    pub(crate) fn hot_sellers(&self) -> i32 {
        self.hot_sellers_ratio as i32
    }

    pub(crate) fn hot_bidders(&self) -> i32 {
        self.hot_bidders_ratio as i32
    }

    pub(crate) fn in_flight_auctions(&self) -> i64 {
        i64::from(self.num_in_flight_auctions)
    }

    pub(crate) fn active_people(&self) -> i64 {
        i64::from(self.num_active_people)
    }

    pub(crate) fn avg_sizes(&self) -> (i32, i32, i32) {
        (
            self.avg_person_byte_size as i32,
            self.avg_auction_byte_size as i32,
            self.avg_bid_byte_size as i32,
        )
    }
}

/// Event numbers to timestamps: [`NexmarkConfig`] after validation.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    base_time: i64,
    rate: Rate,
    first_event_id: u64,
    first_event_number: u64,
    group: u64,
}

#[derive(Debug, Clone)]
enum Rate {
    /// One rate: microseconds between events, fractional (nexmark/nexmark's
    /// `GeneratorConfig.interEventDelayUs`, a `double`).
    Constant { delay_us: f64 },
    /// Beam's stepped curve: whole microseconds between events for each step, every
    /// step lasting `step_secs`; one epoch runs through all steps.
    Stepped {
        delays_us: Vec<u64>,
        step_secs: u64,
        events_per_epoch: u64,
        epoch_ms: u64,
    },
}

/// Beam's `RateUnit.PER_SECOND.rateToPeriodUs`: microseconds between events, rounded.
fn rate_to_period_us(rate: u64) -> u64 {
    (1_000_000 + rate / 2) / rate.max(1)
}

impl Timeline {
    /// The timeline of a valid config.
    pub(crate) fn new(config: &NexmarkConfig) -> Timeline {
        let first = config.first_event_rate.max(1);
        let next = config.next_event_rate.max(1);
        let rate = if first == next {
            Rate::Constant {
                delay_us: 1_000_000.0 / f64::from(first),
            }
        } else {
            let delays_us: Vec<u64> = match config.rate_shape {
                RateShape::Square => vec![
                    rate_to_period_us(u64::from(first)),
                    rate_to_period_us(u64::from(next)),
                ],
                RateShape::Sine => {
                    let mid = (f64::from(first) + f64::from(next)) / 2.0;
                    let amp = (f64::from(first) - f64::from(next)) / 2.0;
                    let n = config.rate_shape.steps();
                    (0..n)
                        .map(|i| {
                            let r = 2.0 * std::f64::consts::PI * f64::from(i) / f64::from(n);
                            let rate = (mid + amp * r.cos()).round().max(1.0) as u64;
                            rate_to_period_us(rate)
                        })
                        .collect()
                }
            };
            let delays_us: Vec<u64> = delays_us.into_iter().map(|d| d.max(1)).collect();
            let steps = config.rate_shape.steps();
            let step_secs = u64::from(config.rate_period_secs.div_ceil(steps).max(1));
            let mut events_per_epoch = 0;
            let mut epoch_ms = 0;
            for &d in &delays_us {
                let events = step_secs * 1_000_000 / d;
                events_per_epoch += events;
                epoch_ms += events * d / 1000;
            }
            Rate::Stepped {
                delays_us,
                step_secs,
                events_per_epoch: events_per_epoch.max(1),
                epoch_ms,
            }
        };
        Timeline {
            base_time: config.base_time,
            rate,
            first_event_id: config.first_event_id,
            first_event_number: config.first_event_number,
            group: config.out_of_order_group_size.max(1),
        }
    }

    /// The event number of the `n`-th event (`nextEventNumber`).
    pub(crate) fn event_number(&self, n: u64) -> u64 {
        self.first_event_number.wrapping_add(n)
    }

    /// The event number after the out-of-order permutation (`nextAdjustedEventNumber`).
    pub(crate) fn adjusted_event_number(&self, n: u64) -> u64 {
        let number = self.event_number(n);
        let g = self.group;
        if g == 1 {
            return number;
        }
        let base = number / g * g;
        let offset = (u128::from(number) * 953 % u128::from(g)) as u64;
        base + offset
    }

    /// The id of the `n`-th event: decides its kind and seeds its random draws.
    pub(crate) fn event_id(&self, n: u64) -> u64 {
        self.first_event_id
            .wrapping_add(self.adjusted_event_number(n))
    }

    /// The event time of the `n`-th event (its `date_time`).
    pub(crate) fn event_time(&self, n: u64) -> i64 {
        self.timestamp(self.adjusted_event_number(n))
    }

    /// When the `n`-th event is due on the unpermuted, monotone timeline.
    pub(crate) fn scheduled_time(&self, n: u64) -> i64 {
        self.timestamp(self.event_number(n))
    }

    /// No event from the `n`-th on has an event time below this.
    pub(crate) fn watermark(&self, n: u64) -> i64 {
        let number = self.event_number(n);
        self.timestamp(number / self.group * self.group)
    }

    /// The out-of-order group size.
    pub(crate) fn group(&self) -> u64 {
        self.group
    }

    /// `timestampForEvent(eventNumber)`.
    pub(crate) fn timestamp(&self, event_number: u64) -> i64 {
        match &self.rate {
            Rate::Constant { delay_us } => {
                // Java: baseTime + (long)(eventNumber * interEventDelayUs) / 1000L.
                let us = (event_number as f64 * delay_us) as i64;
                self.base_time.wrapping_add(us / 1000)
            }
            Rate::Stepped {
                delays_us,
                step_secs,
                events_per_epoch,
                epoch_ms,
            } => {
                let epoch = event_number / events_per_epoch;
                let mut left = event_number % events_per_epoch;
                let mut offset_ms = 0u64;
                for &d in delays_us {
                    let events = step_secs * 1_000_000 / d;
                    if left < events {
                        let ms = epoch
                            .wrapping_mul(*epoch_ms)
                            .wrapping_add(offset_ms)
                            .wrapping_add(left * d / 1000);
                        return self.base_time.wrapping_add(ms as i64);
                    }
                    left -= events;
                    offset_ms += events * d / 1000;
                }
                // Unreachable: `left` is below the sum of the steps' events.
                self.base_time
                    .wrapping_add(epoch.wrapping_add(1).wrapping_mul(*epoch_ms) as i64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_published_ones() {
        let c = NexmarkConfig::new();
        assert_eq!((c.first_event_rate, c.next_event_rate), (10_000, 10_000));
        assert_eq!(c.rate_shape, RateShape::Square);
        assert_eq!(c.rate_period_secs, 600);
        assert_eq!(
            (c.person_proportion, c.auction_proportion, c.bid_proportion),
            (1, 3, 46)
        );
        assert_eq!(c.max_events, None);
        assert_eq!((c.first_event_id, c.first_event_number), (0, 0));
        assert_eq!(c.base_time, DEFAULT_BASE_TIME);
        assert_eq!(c.avg_sizes(), (200, 500, 100));
        assert_eq!(
            (c.hot_auction(), c.hot_sellers(), c.hot_bidders()),
            (2, 4, 4)
        );
        assert_eq!((c.in_flight_auctions(), c.active_people()), (100, 1000));
        assert_eq!(c.out_of_order_group_size, 1);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn the_default_base_time_is_beams_2015_07_15() {
        // 16,631 days from 1970-01-01 to 2015-07-15.
        assert_eq!(DEFAULT_BASE_TIME, 16_631 * 86_400 * 1000);
    }

    #[test]
    fn invalid_settings_are_refused_with_their_name() {
        let cases = [
            (
                NexmarkConfig::new().events_per_second(0),
                "first_event_rate",
            ),
            (NexmarkConfig::new().proportions(0, 0, 0), "proportions"),
            (
                NexmarkConfig::new().hot_bidders_ratio(0),
                "hot_bidders_ratio",
            ),
            (
                NexmarkConfig::new().out_of_order_group_size(0),
                "out_of_order_group_size",
            ),
            (
                NexmarkConfig::new().avg_bid_byte_size(MAX_AVG_BYTE_SIZE + 1),
                "avg_bid_byte_size",
            ),
            (
                NexmarkConfig::new()
                    .first_event_rate(3_000_000)
                    .next_event_rate(1000),
                "first_event_rate",
            ),
        ];
        for (config, key) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
        // One rate may be as high as wanted: its delay is fractional.
        assert!(
            NexmarkConfig::new()
                .events_per_second(50_000_000)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn one_rate_spaces_events_by_a_fractional_delay() {
        let t = Timeline::new(&NexmarkConfig::new().base_time(0));
        assert_eq!(t.timestamp(0), 0);
        assert_eq!(t.timestamp(9), 0);
        assert_eq!(t.timestamp(10), 1);
        assert_eq!(t.timestamp(10_000), 1000);
        // 3 events/s: 333,333.33 us apart; event 2 at floor(666,666.67 us) = 666 ms.
        let t = Timeline::new(&NexmarkConfig::new().base_time(0).events_per_second(3));
        assert_eq!(t.timestamp(1), 333);
        assert_eq!(t.timestamp(2), 666);
        assert_eq!(t.timestamp(3), 1000);
        // Above a million events/s the delay is below a microsecond and time still moves.
        let t = Timeline::new(
            &NexmarkConfig::new()
                .base_time(0)
                .events_per_second(10_000_000),
        );
        assert_eq!(t.timestamp(10_000_000), 1000);
    }

    #[test]
    fn a_square_curve_alternates_the_two_rates_every_half_period() {
        // 1,000/s then 100/s, 10 s each (period 20 s): Beam's epochs of
        // 10,000 + 1,000 events lasting 20 s.
        let t = Timeline::new(
            &NexmarkConfig::new()
                .base_time(0)
                .first_event_rate(1000)
                .next_event_rate(100)
                .rate_period_secs(20),
        );
        assert_eq!(t.timestamp(1), 1);
        assert_eq!(t.timestamp(9_999), 9_999);
        assert_eq!(t.timestamp(10_000), 10_000);
        assert_eq!(t.timestamp(10_001), 10_010);
        assert_eq!(t.timestamp(10_999), 19_990);
        assert_eq!(t.timestamp(11_000), 20_000);
        assert_eq!(t.timestamp(11_001), 20_001);
    }

    #[test]
    fn a_sine_curve_has_ten_steps_between_the_rates() {
        let t = Timeline::new(
            &NexmarkConfig::new()
                .base_time(0)
                .first_event_rate(2000)
                .next_event_rate(1000)
                .rate_shape(RateShape::Sine)
                .rate_period_secs(100),
        );
        // Step 0 runs at 2,000/s (500 us) for 10 s, step 5 at 1,000/s.
        assert_eq!(t.timestamp(19_999), 9_999);
        assert_eq!(t.timestamp(20_000), 10_000);
        match &t.rate {
            Rate::Stepped { delays_us, .. } => {
                assert_eq!(delays_us.len(), 10);
                assert_eq!(delays_us[0], 500);
                assert_eq!(delays_us[5], 1000);
            }
            Rate::Constant { .. } => panic!("expected steps"),
        }
    }

    #[test]
    fn out_of_order_groups_permute_numbers_within_the_group() {
        let c = NexmarkConfig::new()
            .base_time(0)
            .out_of_order_group_size(10);
        let t = Timeline::new(&c);
        let group: Vec<u64> = (10..20).map(|n| t.adjusted_event_number(n)).collect();
        // base 10 + (n * 953) % 10 = base + 3n % 10.
        assert_eq!(group, [10, 13, 16, 19, 12, 15, 18, 11, 14, 17]);
        assert_eq!(t.watermark(17), t.timestamp(10));
        assert_eq!(c.max_out_of_orderness(), Duration::from_millis(2));
        assert_eq!(NexmarkConfig::new().max_out_of_orderness(), Duration::ZERO);
    }
}
