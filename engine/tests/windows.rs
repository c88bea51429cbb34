//! Deterministic window tests: out-of-order input, late data, allowed lateness,
//! idle splits, session merging, sliding and processing-time windows, batch mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ScriptedSource, sorted};
use engine::*;

type Ev = (u32, i64, u64); // key, event time (ms), value

fn strategy(bound_ms: u64) -> WatermarkStrategy<Ev> {
    WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(bound_ms))
        .with_timestamp(|e: &Ev| e.1)
}

/// One record per batch, so a watermark follows every record (late data is exact).
fn per_record() -> PipelineConfig {
    PipelineConfig::default().batch_size(1)
}

fn flat<V>(w: Windowed<u32, V>) -> (u32, i64, i64, V) {
    (w.key, w.window.start, w.window.end, w.value)
}

#[tokio::test]
async fn tumbling_counts_tolerate_out_of_order_input_within_the_bound() {
    let events: Vec<Ev> = vec![
        (1, 5, 1),
        (1, 2, 1),
        (2, 8, 1),
        (1, 12, 1),
        (1, 9, 1),
        (1, 11, 1),
        (2, 25, 1),
    ];
    let p = Pipeline::with_config(per_record());
    let sink = CollectSink::new();
    p.source(VecSource::new(events), strategy(5))
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(10)))
        .aggregate(Count)
        .map(flat)
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(
        sorted(sink.values()),
        vec![(1, 0, 10, 3), (1, 10, 20, 2), (2, 0, 10, 1), (2, 20, 30, 1)]
    );
}

/// A sink that records the watermarks and idleness it is told of.
#[derive(Clone, Default)]
struct TimeSink(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<T: Send + 'static> Sink<T> for TimeSink {
    async fn write(&mut self, _batch: Vec<Record<T>>) -> Result<()> {
        Ok(())
    }
    async fn watermark(&mut self, watermark: i64) -> Result<()> {
        self.0.lock().unwrap().push(format!("wm {watermark}"));
        Ok(())
    }
    async fn idle(&mut self, idle: bool) -> Result<()> {
        self.0.lock().unwrap().push(format!("idle {idle}"));
        Ok(())
    }
}

#[tokio::test]
async fn a_split_that_reads_event_time_from_its_data_drives_the_watermark_and_sinks_hear_it() {
    // The split says 1000 after its first batch: (1, 20) is then late, though
    // the records' own timestamps would have let it in.
    let source = ScriptedSource::new(
        vec![vec![vec![(1, 5, 1), (1, 8, 1)], vec![(1, 20, 1)]]],
        true,
    )
    .with_times(vec![vec![SplitTime::Watermark(1000), SplitTime::Idle]]);
    let p = Pipeline::with_config(per_record());
    let sink = CollectSink::new();
    let times = TimeSink::default();
    let events = p.source(source, strategy(0));
    let (a, b) = events.fork();
    b.sink(times.clone());
    a.key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(10)))
        .aggregate(Count)
        .map(flat)
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![(1, 0, 10, 2)]);
    let told = times.0.lock().unwrap().clone();
    assert_eq!(
        told,
        [
            "wm 1000",
            "idle true",
            "idle false",
            &format!("wm {}", i64::MAX)
        ],
        "{told:?}"
    );
}

#[tokio::test]
async fn records_behind_the_watermark_go_to_the_late_side_output() {
    // bound 0: after (1, 30) the watermark is 29, so (1, 3) is late for [0, 10).
    let events: Vec<Ev> = vec![(1, 1, 1), (1, 30, 1), (1, 3, 7), (1, 31, 1)];
    let p = Pipeline::with_config(per_record());
    let sink = CollectSink::new();
    let late_sink = CollectSink::new();
    let late = OutputTag::<Ev>::new("late");
    let counts = p
        .source(VecSource::new(events), strategy(0))
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(10)))
        .side_output_late_data(&late)
        .aggregate(Count);
    counts.side_output(&late).sink(late_sink.clone());
    counts.map(flat).sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sorted(sink.values()), vec![(1, 0, 10, 1), (1, 30, 40, 2)]);
    assert_eq!(late_sink.values(), vec![(1, 3, 7)]);
}

#[tokio::test]
async fn allowed_lateness_refires_the_window_with_the_updated_result() {
    // Window [0,10) fires at watermark 9 (after ts 10); (1, 4) arrives with watermark
    // 14: late but within 10 ms lateness, so [0,10) fires again with count 2. After
    // ts 40 (watermark 39 >= 9 + 10), (1, 5) is dropped.
    let events: Vec<Ev> = vec![
        (1, 1, 1),
        (1, 10, 1),
        (1, 15, 1),
        (1, 4, 1),
        (1, 40, 1),
        (1, 5, 1),
    ];
    let p = Pipeline::with_config(per_record());
    let sink = CollectSink::new();
    p.source(VecSource::new(events), strategy(0))
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(10)))
        .allowed_lateness(Duration::from_millis(10))
        .aggregate(Count)
        .map(flat)
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(
        sink.values(),
        vec![(1, 0, 10, 1), (1, 0, 10, 2), (1, 10, 20, 2), (1, 40, 50, 1)]
    );
}

#[tokio::test]
async fn sliding_windows_count_every_window_a_record_belongs_to() {
    // size 30, slide 10: ts 5 is in windows ending 10, 20, 30.
    let events: Vec<Ev> = vec![(1, 5, 1), (1, 15, 1), (1, 27, 1)];
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source(VecSource::new(events), strategy(0))
        .key_by(|e| e.0)
        .window(Windows::sliding(
            Duration::from_millis(30),
            Duration::from_millis(10),
        ))
        .aggregate(Sum::of(|e: &Ev| e.2))
        .map(flat)
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(
        sorted(sink.values()),
        vec![
            (1, -20, 10, 1),
            (1, -10, 20, 2),
            (1, 0, 30, 3),
            (1, 10, 40, 2),
            (1, 20, 50, 1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_split_does_not_freeze_windows() {
    // Split 0 has data up to ts 25 and then goes quiet; split 1 never has data.
    // Neither ends. Without idleness split 1 would hold the watermark at -inf.
    let split0 = vec![vec![(1u32, 1i64, 1u64), (1, 5, 1), (1, 12, 1), (1, 25, 1)]];
    let source = ScriptedSource::new(vec![split0, vec![]], false);
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source(
        source,
        strategy(0).with_idleness(Duration::from_millis(100)),
    )
    .key_by(|e| e.0)
    .window(Windows::tumbling(Duration::from_millis(10)))
    .aggregate(Count)
    .map(flat)
    .sink(sink.clone());
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.values(), vec![(1, 0, 10, 2), (1, 10, 20, 1)]);
    job.abort();
    assert!(matches!(job.wait().await, Err(EngineError::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn a_source_task_without_splits_reports_idle() {
    // One split, two source tasks: task 1 has no split and must not hold back the
    // window operator that reads from both.
    let split0 = vec![vec![(1u32, 1i64, 1u64), (1, 12, 1)]];
    let source = ScriptedSource::new(vec![split0], false);
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source_with_parallelism(source, strategy(0), 2)
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(10)))
        .aggregate(Count)
        .map(flat)
        .sink(sink.clone());
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.values(), vec![(1, 0, 10, 1)]);
    job.cancel();
    let _ = job.wait().await;
}

#[tokio::test]
async fn session_windows_merge_per_key_and_fire_after_the_gap() {
    let events: Vec<Ev> = vec![
        (1, 0, 1),
        (2, 1, 1),
        (1, 4, 1),
        (1, 30, 1), // new session for key 1
        (2, 8, 1),
        (1, 17, 1), // [17,27) touches neither [0,14) nor [30,40)
        (1, 24, 1), // [24,34) overlaps [17,27) and [30,40): merges them
    ];
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source(VecSource::new(events), strategy(100))
        .key_by(|e| e.0)
        .window(Windows::session(Duration::from_millis(10)))
        .aggregate(Count)
        .map(flat)
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(
        sorted(sink.values()),
        vec![(1, 0, 14, 2), (1, 17, 40, 3), (2, 1, 18, 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn processing_time_windows_fire_on_the_clock() {
    // 10 records per second for 3 seconds, 1-second processing-time windows.
    let p = Pipeline::with_config(PipelineConfig::default().processing_time_start(0));
    let sink = CollectSink::new();
    p.source(
        GeneratorSource::new(|i| (i % 2) as u32)
            .rate_per_second(10.0)
            .limit(30),
        WatermarkStrategy::no_watermarks(),
    )
    .key_by(|k| *k)
    .window(Windows::tumbling(Duration::from_secs(1)).processing_time())
    .aggregate(Count)
    .map(|w| w.value)
    .sink(sink.clone());
    p.run().await.unwrap();
    let total: u64 = sink.values().iter().sum();
    assert_eq!(total, 30);
    assert!(sink.values().iter().all(|c| *c <= 6), "{:?}", sink.values());
}

#[tokio::test]
async fn bounded_input_flushes_every_window_and_the_job_ends() {
    let events: Vec<Ev> = (0..10_000).map(|i| ((i % 7) as u32, i as i64, 1)).collect();
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    let sink = CollectSink::new();
    p.source(
        VecSource::with_splits(vec![events[..5000].to_vec(), events[5000..].to_vec()]),
        strategy(10),
    )
    .key_by(|e| e.0)
    .window(Windows::tumbling(Duration::from_millis(1000)))
    .aggregate(Count)
    .sink(sink.clone());
    let result = tokio::time::timeout(Duration::from_secs(20), p.run())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.last_checkpoint, None);
    let out = sink.values();
    assert_eq!(
        out.len(),
        7 * 10,
        "one result per key and window, including the last window"
    );
    assert_eq!(out.iter().map(|w| w.value).sum::<u64>(), 10_000);
}

#[tokio::test]
async fn count_windows_reduce_and_apply() {
    let events: Vec<Ev> = (0..6).map(|i| (1, i, i as u64)).collect();
    let p = Pipeline::new();
    let reduced = CollectSink::new();
    let applied = CollectSink::new();
    let s = p.source(VecSource::new(events.clone()), strategy(0));
    s.key_by(|e| e.0)
        .window(Windows::count(3))
        .reduce(|a, b| (a.0, a.1.max(b.1), a.2 + b.2))
        .map(|w| w.value.2)
        .sink(reduced.clone());
    p.source(VecSource::new(events), strategy(0))
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(4)))
        .apply(|k, w, items| (*k, w.start, items.len()))
        .sink(applied.clone());
    p.run().await.unwrap();
    assert_eq!(reduced.values(), vec![3, 12]);
    assert_eq!(sorted(applied.values()), vec![(1, 0, 4), (1, 4, 2)]);
}

#[tokio::test]
async fn a_watermark_jump_over_many_windows_fires_them_all_in_bounded_steps() {
    // 3 windows x 40,000 keys fire at the final watermark: more results than one
    // operator call emits (64 Ki), so the window hands them over in several steps.
    let events: Vec<Ev> = (0..120_000u64)
        .map(|i| ((i % 40_000) as u32, (i / 40_000) as i64 * 10, 1))
        .collect();
    for windows in [
        Windows::tumbling(Duration::from_millis(10)),
        Windows::sliding(Duration::from_millis(20), Duration::from_millis(10)),
    ] {
        let p = Pipeline::new();
        let sink = CollectSink::new();
        p.source(
            VecSource::new(events.clone()),
            WatermarkStrategy::no_watermarks().with_timestamp(|e: &Ev| e.1),
        )
        .key_by(|e| e.0)
        .window(windows)
        .aggregate(Count)
        .sink(sink.clone());
        p.run().await.unwrap();
        let out = sink.values();
        let per_key_windows = if windows.pane_size() == Some(10)
            && matches!(windows.kind, WindowKind::Tumbling { .. })
        {
            3
        } else {
            4
        };
        assert_eq!(out.len(), 40_000 * per_key_windows);
        let total: u64 = out.iter().map(|w| w.value).sum();
        assert_eq!(
            total,
            if per_key_windows == 3 {
                120_000
            } else {
                240_000
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn early_firing_emits_partial_results_before_the_window_closes() {
    // The window [0, 60 s) never closes (the source stays open without passing it);
    // early firing every 100 ms still reports its running count.
    let split0 = vec![
        vec![(1u32, 1_000i64, 1u64), (1, 2_000, 1)],
        vec![(1, 3_000, 1)],
    ];
    let source = ScriptedSource::new(vec![split0], false);
    let p = Pipeline::with_config(PipelineConfig::default().processing_time_start(0));
    let sink = CollectSink::new();
    p.source(source, strategy(0))
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_secs(60)))
        .trigger_every(Duration::from_millis(100))
        .aggregate(Count)
        .map(flat)
        .sink(sink.clone());
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let out = sink.values();
    assert!(out.len() >= 2, "{out:?}");
    assert!(out.iter().all(|r| *r == (1, 0, 60_000, 3)), "{out:?}");
    job.cancel();
    let _ = job.wait().await;
}

/// Keys by a string made of the event's key, for `key_by_source_partition`.
type Keyed = (String, i64);

async fn partitioned_run(
    windows: Windows,
    splits: Vec<Vec<Vec<Keyed>>>,
    groups: &[u16],
    restore: Option<Checkpoint>,
) -> (Vec<(String, i64, u64)>, Option<Checkpoint>) {
    // Keys "a*" live in partition 0, the others in partition 1.
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .batch_size(1)
            .source_partitioner(|k: &[u8]| if k.starts_with(b"a") { 0 } else { 1 }),
    );
    let sink = CollectSink::new();
    p.source(
        ScriptedSource::new(splits, false).with_key_groups(groups),
        WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO).with_timestamp(|e: &Keyed| e.1),
    )
    .key_by_source_partition(|e: &Keyed| e.0.clone())
    .window(windows)
    .aggregate(Count)
    .uid("counts")
    .map(|w| (w.key, w.window.start, w.value))
    .sink(sink.clone());
    if let Some(cp) = restore {
        p.restore_from(cp);
    }
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = match job.trigger_checkpoint().await {
        Ok(id) => id,
        Err(e) => panic!("{e}: {:?}", job.wait().await),
    };
    let cp = job.checkpoints().get(id);
    job.abort();
    let _ = job.wait().await;
    (sorted(sink.values()), cp)
}

#[tokio::test(start_paused = true)]
async fn partition_state_from_two_processes_fires_each_window_once() {
    let ev = |k: &str, t: i64| (k.to_string(), t);
    let tumbling = || Windows::tumbling(Duration::from_millis(10));
    // Process X owns partition 0 and has fired [0,10) and [10,20) for "a".
    let (x_out, x_cp) = partitioned_run(
        tumbling(),
        vec![vec![vec![ev("a", 1), ev("a", 12), ev("a", 25)]]],
        &[0],
        None,
    )
    .await;
    assert_eq!(x_out, vec![("a".into(), 0, 1), ("a".into(), 10, 1)]);
    // Process Y owns partition 1 and has fired nothing of "b" yet (its watermark
    // stayed low).
    let (y_out, y_cp) = partitioned_run(
        tumbling(),
        vec![vec![vec![ev("b", 2), ev("b", 3)]]],
        &[1],
        None,
    )
    .await;
    assert!(y_out.is_empty());
    // Both partitions move to one process: the merged state must fire "b" [0,10)
    // but not "a"'s windows again.
    let (x_cp, y_cp) = (x_cp.unwrap(), y_cp.unwrap());
    let mut merged = x_cp.clone();
    for (op, state) in y_cp.operators {
        merged.operators.entry(op).or_default().merge(state);
    }
    let (out, _) = partitioned_run(
        tumbling(),
        vec![vec![vec![ev("a", 31)]], vec![vec![ev("b", 32)]]],
        &[0, 1],
        Some(merged),
    )
    .await;
    assert_eq!(
        out,
        vec![("a".into(), 20, 1), ("b".into(), 0, 2)],
        "each window exactly once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_sliding_window_that_fired_in_one_process_does_not_fire_again_after_a_merge() {
    let ev = |k: &str, t: i64| (k.to_string(), t);
    let sliding = || Windows::sliding(Duration::from_millis(20), Duration::from_millis(10));
    // X fired the windows ending 10 and 20 of "a"; its pane [10,20) is still
    // needed by the window ending 30.
    let (x_out, x_cp) = partitioned_run(
        sliding(),
        vec![vec![vec![ev("a", 1), ev("a", 15), ev("a", 25)]]],
        &[0],
        None,
    )
    .await;
    assert_eq!(x_out, vec![("a".into(), -10, 1), ("a".into(), 0, 2)]);
    let (_, y_cp) = partitioned_run(sliding(), vec![vec![vec![ev("b", 2)]]], &[1], None).await;
    let mut merged = x_cp.unwrap();
    for (op, state) in y_cp.unwrap().operators {
        merged.operators.entry(op).or_default().merge(state);
    }
    let (out, _) = partitioned_run(
        sliding(),
        vec![vec![vec![ev("a", 40)]], vec![vec![ev("b", 41)]]],
        &[0, 1],
        Some(merged),
    )
    .await;
    assert_eq!(
        out,
        vec![
            ("a".into(), 10, 2),
            ("a".into(), 20, 1),
            ("b".into(), -10, 1),
            ("b".into(), 0, 1)
        ],
        "a's windows ending 10 and 20 fired in X already"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restored_partition_without_new_records_keeps_its_watermark() {
    let ev = |k: &str, t: i64| (k.to_string(), t);
    let tumbling = || Windows::tumbling(Duration::from_millis(10));
    let (_, cp) = partitioned_run(
        tumbling(),
        vec![
            vec![vec![ev("a", 1), ev("a", 12)]],
            vec![vec![ev("b", 3), ev("b", 22)]],
        ],
        &[0, 1],
        None,
    )
    .await;
    // After the restart partition 1 has nothing new; its watermark (21) still
    // counts, so "a"'s window [10,20) fires once partition 0 moves past it.
    let (out, _) = partitioned_run(
        tumbling(),
        vec![vec![vec![ev("a", 25)]], vec![]],
        &[0, 1],
        cp,
    )
    .await;
    assert_eq!(out, vec![("a".into(), 10, 1)]);
}
