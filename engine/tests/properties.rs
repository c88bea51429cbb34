//! Property tests: for random out-of-order event streams (never later than the
//! watermark bound), windowed counts and sums per key equal a simple offline
//! reference computation, for any parallelism, batch size and split layout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use engine::*;
use proptest::prelude::*;

type Ev = (u8, i64, u64);
/// (count, sum, max) per (key, window start, window end). Max is not invertible, so
/// sliding windows exercise both the running-accumulator and the two-stack paths.
type Out = BTreeMap<(u8, i64, i64), (u64, u64, u64)>;

const BOUND: i64 = 25;

fn events() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((0u8..6, 0i64..20, 0i64..BOUND, 0u64..100), 0..300).prop_map(|raw| {
        let mut base = 0;
        raw.into_iter()
            .map(|(k, step, jitter, v)| {
                base += step;
                (k, base + jitter, v)
            })
            .collect()
    })
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

fn kinds() -> impl Strategy<Value = Kind> {
    prop_oneof![
        prop::sample::select(vec![7i64, 50, 100]).prop_map(Kind::Tumbling),
        prop::sample::select(vec![(50i64, 10i64), (30, 20), (100, 25), (10, 10)])
            .prop_map(|(s, l)| Kind::Sliding(s, l)),
        prop::sample::select(vec![5i64, 30]).prop_map(Kind::Session),
    ]
}

fn reference(evs: &[Ev], kind: Kind) -> Out {
    let mut out = Out::new();
    match kind {
        Kind::Tumbling(size) => {
            for &(k, ts, v) in evs {
                let start = ts - ts.rem_euclid(size);
                let e = out.entry((k, start, start + size)).or_default();
                e.0 += 1;
                e.1 += v;
                e.2 = e.2.max(v);
            }
        }
        Kind::Sliding(size, slide) => {
            for &(k, ts, v) in evs {
                // Every window [end - size, end) with end % slide == 0 containing ts.
                let mut end = ts - ts.rem_euclid(slide) + slide;
                while end - size <= ts {
                    let e = out.entry((k, end - size, end)).or_default();
                    e.0 += 1;
                    e.1 += v;
                    e.2 = e.2.max(v);
                    end += slide;
                }
            }
        }
        Kind::Session(gap) => {
            let mut per_key: BTreeMap<u8, Vec<(i64, u64)>> = BTreeMap::new();
            for &(k, ts, v) in evs {
                per_key.entry(k).or_default().push((ts, v));
            }
            for (k, mut list) in per_key {
                list.sort();
                let mut cur: Option<(i64, i64, u64, u64, u64)> = None;
                for (ts, v) in list {
                    cur = match cur {
                        // Windows that touch merge (Flink semantics).
                        Some((s, e, c, sum, m)) if ts <= e => {
                            Some((s, e.max(ts + gap), c + 1, sum + v, m.max(v)))
                        }
                        Some((s, e, c, sum, m)) => {
                            out.insert((k, s, e), (c, sum, m));
                            Some((ts, ts + gap, 1, v, v))
                        }
                        None => Some((ts, ts + gap, 1, v, v)),
                    };
                }
                if let Some((s, e, c, sum, m)) = cur {
                    out.insert((k, s, e), (c, sum, m));
                }
            }
        }
    }
    out
}

fn windows(kind: Kind) -> Windows {
    let ms = |x: i64| Duration::from_millis(x as u64);
    match kind {
        Kind::Tumbling(s) => Windows::tumbling(ms(s)),
        Kind::Sliding(s, l) => Windows::sliding(ms(s), ms(l)),
        Kind::Session(g) => Windows::session(ms(g)),
    }
}

fn run(
    evs: Vec<Ev>,
    kind: Kind,
    parallelism: usize,
    batch: usize,
    splits: usize,
    lateness: u64,
) -> Out {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut split_vecs: Vec<Vec<Ev>> = vec![Vec::new(); splits];
        for (i, e) in evs.into_iter().enumerate() {
            split_vecs[i % splits].push(e);
        }
        let p = Pipeline::with_config(
            PipelineConfig::default()
                .parallelism(parallelism)
                .batch_size(batch),
        );
        let counts = CollectSink::new();
        let sums = CollectSink::new();
        let maxes = CollectSink::new();
        let strategy = || {
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(BOUND as u64))
                .with_timestamp(|e: &Ev| e.1)
        };
        p.source(VecSource::with_splits(split_vecs.clone()), strategy())
            .key_by(|e| e.0)
            .window(windows(kind))
            .allowed_lateness(Duration::from_millis(lateness))
            .aggregate(Count)
            .map(|w| ((w.key, w.window.start, w.window.end), w.value))
            .sink(counts.clone());
        p.source(VecSource::with_splits(split_vecs.clone()), strategy())
            .key_by(|e| e.0)
            .window(windows(kind))
            .allowed_lateness(Duration::from_millis(lateness))
            .aggregate(Max::of(|e: &Ev| e.2))
            .map(|w| ((w.key, w.window.start, w.window.end), w.value))
            .sink(maxes.clone());
        p.source(VecSource::with_splits(split_vecs), strategy())
            .key_by(|e| e.0)
            .window(windows(kind))
            .allowed_lateness(Duration::from_millis(lateness))
            .aggregate(Sum::of(|e: &Ev| e.2))
            .map(|w| ((w.key, w.window.start, w.window.end), w.value))
            .sink(sums.clone());
        tokio::time::timeout(Duration::from_secs(30), p.run())
            .await
            .unwrap()
            .unwrap();
        let mut out = Out::new();
        for (k, c) in counts.values() {
            assert!(
                out.insert(k, (c, 0, 0)).is_none(),
                "window {k:?} fired twice"
            );
        }
        for (k, s) in sums.values() {
            out.entry(k).or_default().1 = s;
        }
        for (k, m) in maxes.values() {
            out.entry(k).or_default().2 = m;
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn windowed_counts_and_sums_match_an_offline_reference(
        evs in events(),
        kind in kinds(),
        parallelism in 1usize..=2,
        batch in prop::sample::select(vec![1usize, 3, 64]),
        splits in 1usize..=3,
        // With allowed lateness sliding windows take the pane-major operator.
        lateness in prop::sample::select(vec![0u64, 5]),
    ) {
        let expected = reference(&evs, kind);
        let actual = run(evs, kind, parallelism, batch, splits, lateness);
        prop_assert_eq!(actual, expected);
    }
}
