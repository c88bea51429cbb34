//! Operators beyond windows: async enrichment, union, joins, keyed process
//! functions with timers and side outputs, rolling reduce.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ScriptedSource;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use engine::*;

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A fake external service: answers `x * 10` after `delay(x)` and tracks the
/// largest number of concurrent calls.
#[derive(Clone, Default)]
struct Service {
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
}

impl Service {
    async fn call(self, x: u64, delay_ms: u64) -> std::result::Result<u64, String> {
        let n = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        Ok(x * 10)
    }
}

#[tokio::test(start_paused = true)]
async fn ordered_async_map_keeps_input_order_and_respects_capacity() {
    let svc = Service::default();
    let p = Pipeline::new();
    let sink = CollectSink::new();
    let s = svc.clone();
    p.source(
        VecSource::new((0..50u64).collect()),
        WatermarkStrategy::no_watermarks(),
    )
    .async_map(
        AsyncOptions {
            capacity: 8,
            timeout: Duration::from_secs(1),
            ordered: true,
        },
        move |x| s.clone().call(x, 50 - x),
    )
    .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(
        sink.values(),
        (0..50u64).map(|x| x * 10).collect::<Vec<_>>()
    );
    assert_eq!(svc.max_active.load(Ordering::SeqCst), 8);
}

#[tokio::test(start_paused = true)]
async fn unordered_async_map_emits_in_completion_order() {
    let svc = Service::default();
    let p = Pipeline::new();
    let sink = CollectSink::new();
    let s = svc.clone();
    p.source(
        VecSource::new(vec![3u64, 1, 2]),
        WatermarkStrategy::no_watermarks(),
    )
    .async_map(
        AsyncOptions {
            capacity: 10,
            timeout: Duration::from_secs(1),
            ordered: false,
        },
        move |x| s.clone().call(x, x * 10),
    )
    .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![10, 20, 30]);
}

#[tokio::test(start_paused = true)]
async fn async_calls_that_time_out_follow_the_error_policy() {
    let svc = Service::default();
    let p = Pipeline::with_config(PipelineConfig::default().error_policy(ErrorPolicy::Drop));
    let sink = CollectSink::new();
    let s = svc.clone();
    p.source(
        VecSource::new(vec![1u64, 500, 2]),
        WatermarkStrategy::no_watermarks(),
    )
    .async_map(
        AsyncOptions {
            capacity: 4,
            timeout: Duration::from_millis(100),
            ordered: true,
        },
        move |x| s.clone().call(x, x),
    )
    .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![10, 20]);
}

#[tokio::test]
async fn union_merges_streams_and_holds_the_watermark_at_the_slower_input() {
    let p = Pipeline::new();
    let sink = CollectSink::new();
    let ts = || WatermarkStrategy::monotonous().with_timestamp(|e: &(u8, i64)| e.1);
    let a = p.source(VecSource::new(vec![(1u8, 1i64), (1, 15)]), ts());
    let b = p.source(VecSource::new(vec![(1u8, 5i64), (1, 8)]), ts());
    a.union(b)
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_millis(10)))
        .aggregate(Count)
        .map(|w| (w.window.start, w.value))
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sorted(sink.values()), vec![(0, 3), (10, 1)]);
}

#[tokio::test]
async fn window_join_pairs_records_of_the_same_key_and_window() {
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    let sink = CollectSink::new();
    let ts = || WatermarkStrategy::monotonous().with_timestamp(|e: &(u8, i64, String)| e.1);
    let left = p.source(
        VecSource::new(vec![
            (1u8, 1i64, "a".to_string()),
            (2, 2, "b".into()),
            (1, 12, "c".into()),
        ]),
        ts(),
    );
    let right = p.source(
        VecSource::new(vec![
            (1u8, 3i64, "x".to_string()),
            (1, 4, "y".into()),
            (2, 15, "z".into()),
        ]),
        ts(),
    );
    left.key_by(|e| e.0)
        .window_join(
            right.key_by(|e| e.0),
            Windows::tumbling(Duration::from_millis(10)),
            |l, r| format!("{}{}", l.2, r.2),
        )
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sorted(sink.values()), vec!["ax", "ay"]);
}

/// Counts per key; emits the count when a key has been quiet for 100 ms of
/// processing time; sends keys seen more than twice to a side output.
#[derive(Clone)]
struct QuietDetector {
    count: Option<ValueState<u64>>,
    timer: Option<ValueState<i64>>,
    hot: OutputTag<u8>,
}

impl KeyedProcessFunction<u8, u8> for QuietDetector {
    type Out = (u8, u64);
    fn open(&mut self, state: &mut StateRegistry<'_, u8>) -> Result<()> {
        self.count = Some(state.value());
        self.timer = Some(state.value());
        Ok(())
    }
    fn process_element(
        &mut self,
        v: u8,
        ctx: &mut ProcessContext<'_, '_, u8, (u8, u64)>,
    ) -> Result<()> {
        let (Some(count), Some(timer)) = (self.count, self.timer) else {
            return Ok(());
        };
        let n = ctx.state().get(count).copied().unwrap_or(0) + 1;
        ctx.state().set(count, n);
        if n == 3 {
            let tag = self.hot.clone();
            ctx.output(&tag, v)?;
        }
        if let Some(old) = ctx.state().get(timer).copied() {
            ctx.delete_processing_timer(old);
        }
        let at = ctx.processing_time() + 100;
        ctx.register_processing_timer(at);
        ctx.state().set(timer, at);
        Ok(())
    }
    fn on_timer(
        &mut self,
        _t: i64,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, '_, u8, (u8, u64)>,
    ) -> Result<()> {
        assert_eq!(domain, TimeDomain::ProcessingTime);
        let Some(count) = self.count else {
            return Ok(());
        };
        let n = ctx.state().get(count).copied().unwrap_or(0);
        let k = *ctx.key();
        ctx.collect((k, n));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn process_function_with_state_processing_timers_and_a_side_output() {
    let p = Pipeline::with_config(PipelineConfig::default().processing_time_start(0));
    let sink = CollectSink::new();
    let hot_sink = CollectSink::new();
    let hot = OutputTag::new("hot");
    // Keys 1,2,1,1 arrive, then the (unbounded) source goes quiet.
    let source = common::ScriptedSource::new(vec![vec![vec![1u8, 2], vec![1, 1]]], false);
    let out = p
        .source(source, WatermarkStrategy::no_watermarks())
        .key_by(|k| *k)
        .process(QuietDetector {
            count: None,
            timer: None,
            hot: hot.clone(),
        });
    out.side_output(&hot).sink(hot_sink.clone());
    out.sink(sink.clone());
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sink.values().is_empty(), "timers are due at 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sorted(sink.values()), vec![(1, 3), (2, 1)]);
    assert_eq!(hot_sink.values(), vec![1]);
    job.cancel();
    let _ = job.wait().await;
}

#[tokio::test]
async fn rolling_reduce_emits_the_running_value_per_key() {
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    let sink = CollectSink::new();
    p.source(
        VecSource::new(vec![(1u8, 5u64), (2, 1), (1, 3), (2, 4)]),
        WatermarkStrategy::no_watermarks(),
    )
    .key_by(|e| e.0)
    .reduce(|a, b| (a.0, a.1 + b.1))
    .sink(sink.clone());
    p.run().await.unwrap();
    let v = sink.values();
    let ones: Vec<u64> = v.iter().filter(|e| e.0 == 1).map(|e| e.1).collect();
    let twos: Vec<u64> = v.iter().filter(|e| e.0 == 2).map(|e| e.1).collect();
    assert_eq!((ones, twos), (vec![5, 8], vec![1, 5]));
}

#[test]
fn execute_runs_a_bounded_job_on_its_own_runtime() {
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    let sink = CollectSink::new();
    p.source(
        VecSource::with_splits(vec![(0..500u64).collect(), (500..1000).collect()]),
        WatermarkStrategy::no_watermarks(),
    )
    .rebalance(3)
    .key_by(|x| x % 10)
    .set_parallelism(4)
    .reduce(|a, b| a + b)
    .sink(sink.clone());
    let result = p.execute().unwrap();
    assert_eq!(result.epoch, Epoch(0));
    let out = sink.values();
    assert_eq!(out.len(), 1000, "one running value per input record");
    let key9: u64 = (0..1000u64).filter(|x| x % 10 == 9).sum();
    assert_eq!(
        out.into_iter().max(),
        Some(key9),
        "the largest final sum is key 9's"
    );
}

#[tokio::test]
async fn a_pipeline_without_sink_is_rejected() {
    let p = Pipeline::new();
    let _unused = p
        .source(
            VecSource::new(vec![1u8]),
            WatermarkStrategy::no_watermarks(),
        )
        .map(|x| x);
    assert!(matches!(p.start(), Err(EngineError::InvalidPipeline(_))));
}

/// Counts per key of two source partitions: partition 5 holds keys "a" and
/// "b", partition 9 holds "c" (as a topic keyed by them would, written with the
/// default partitioner); `end` says whether they end.
/// `(word, 1)` of two source splits, key groups 5 ("a", "b", "a") and 9 ("c", "c").
fn pairs_of_partitions_5_and_9(end: bool) -> (Pipeline, DataStream<(String, u64)>) {
    let source = ScriptedSource::new(vec![vec![vec!["a", "b", "a"]], vec![vec!["c", "c"]]], end)
        .with_key_groups(&[5, 9]);
    // How the source partitioned: "a" and "b" in 5, "c" in 9.
    let partitioner = |k: &[u8]| if k == b"c" { 9 } else { 5 };
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .parallelism(2)
            .source_partitioner(partitioner),
    );
    let pairs = p
        .source(source, WatermarkStrategy::no_watermarks())
        .map(|k: &str| (k.to_string(), 1u64));
    (p, pairs)
}

/// Waits (a bounded number of times) until `sink` holds `n` values.
async fn wait_for_values(sink: &CollectSink<(String, u64)>, n: usize) {
    for _ in 0..100 {
        if sink.values().len() == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.values().len(), n);
}

fn counts_of_partitions_5_and_9(end: bool, sink: CollectSink<(String, u64)>) -> Pipeline {
    let (p, pairs) = pairs_of_partitions_5_and_9(end);
    pairs
        .key_by_source_partition(|e: &(String, u64)| e.0.clone())
        .reduce(|a, b| (a.0.clone(), a.1 + b.1))
        .uid("counts")
        .sink(sink);
    p
}

/// The key groups operator `op`'s state holds in `cp`.
fn key_groups_of(cp: &Checkpoint, op: engine::OperatorId) -> Vec<u16> {
    cp.operators
        .get(&op)
        .map(|s| s.key_groups.keys().copied().collect())
        .unwrap_or_default()
}

/// Counts records per key group of the source split they came from, and cannot
/// release any (the default [`Operator::release`]).
struct KeepsItsState(std::collections::BTreeMap<u16, u64>);

impl Operator<(String, u64)> for KeepsItsState {
    type Out = (String, u64);
    fn process_batch(
        &mut self,
        batch: Vec<Record<(String, u64)>>,
        out: &mut Output<'_, (String, u64)>,
    ) -> engine::Result<()> {
        for r in batch {
            let group = if r.value.0 == "c" { 9 } else { 5 };
            *self.0.entry(group).or_default() += 1;
            out.emit(r);
        }
        Ok(())
    }
    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> engine::Result<OperatorState> {
        let mut state = OperatorState::default();
        for (g, n) in &self.0 {
            state.key_groups.insert(*g, n.to_le_bytes().to_vec());
        }
        Ok(state)
    }
}

/// A running job over partitions 5 and 9 through [`KeepsItsState`], once all
/// five records went through.
async fn running_with_an_operator_that_keeps_its_state() -> engine::JobHandle {
    let sink = CollectSink::<(String, u64)>::new();
    let (p, pairs) = pairs_of_partitions_5_and_9(false);
    pairs
        .transform("keeps-its-state", |_| KeepsItsState(Default::default()))
        .sink(sink.clone());
    let job = p.start().unwrap();
    wait_for_values(&sink, 5).await;
    job
}

#[tokio::test(start_paused = true)]
async fn an_operator_that_cannot_release_its_key_groups_rolls_the_checkpoint_back() {
    let job = running_with_an_operator_that_keeps_its_state().await;
    assert!(
        job.controller()
            .release(std::collections::BTreeSet::from([9]))
            .await
            .is_err()
    );
    let e = job.wait().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Rollback, "{e}");
    assert!(e.to_string().contains("'keeps-its-state'"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn keyed_state_of_a_source_partitioned_stream_stays_in_its_partitions_key_group() {
    let sink = CollectSink::<(String, u64)>::transactional();
    let p = counts_of_partitions_5_and_9(true, sink.clone());
    assert!(p.is_partition_aligned());
    let uids = p.uids().unwrap();
    let job = p.start().unwrap();
    let result = job.wait().await.unwrap();
    assert!(!result.stopped);
    let mut out = sink.values();
    out.sort();
    assert_eq!(
        out,
        vec![
            ("a".into(), 1),
            ("a".into(), 2),
            ("b".into(), 1),
            ("c".into(), 1),
            ("c".into(), 2)
        ]
    );
    assert!(uids.values().any(|u| u == "counts"));

    let hashed = Pipeline::new();
    hashed
        .source(
            VecSource::new(vec![1u32]),
            WatermarkStrategy::no_watermarks(),
        )
        .key_by(|x| *x)
        .reduce(|a, b| a + b)
        .sink(CollectSink::new());
    assert!(!hashed.is_partition_aligned());
}

#[tokio::test(start_paused = true)]
async fn key_by_source_partition_refuses_keys_of_another_partition_and_partitions_beyond_max_parallelism()
 {
    let run = |group: u16, split: u16| async move {
        let p = Pipeline::with_config(PipelineConfig::default().source_partitioner(move |_| group));
        let source =
            ScriptedSource::new(vec![vec![vec!["k".to_string()]]], true).with_key_groups(&[split]);
        p.source(source, WatermarkStrategy::no_watermarks())
            .key_by_source_partition(|x: &String| x.clone())
            .reduce(|a, _| a.clone())
            .sink(CollectSink::new());
        p.run().await.unwrap_err().to_string()
    };
    let e = run(200, 200).await;
    assert!(e.contains("not below max_parallelism"), "{e}");
    let e = run(3, 4).await;
    assert!(
        e.contains("belongs to partition 3 but the record came from partition 4"),
        "{e}"
    );
    let p = Pipeline::new();
    p.source(
        VecSource::new(vec!["k".to_string()]),
        WatermarkStrategy::no_watermarks(),
    )
    .key_by_source_partition(|x: &String| x.clone())
    .reduce(|a, _| a.clone())
    .sink(CollectSink::new());
    let e = p.run().await.unwrap_err().to_string();
    assert!(
        e.contains("needs PipelineConfig::source_partitioner"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_released_key_group_leaves_after_its_checkpoint_and_the_others_go_on() {
    let sink = CollectSink::<(String, u64)>::new();
    let p = counts_of_partitions_5_and_9(false, sink.clone());
    let uids = p.uids().unwrap();
    let counts = *uids.iter().find(|(_, u)| *u == "counts").unwrap().0;
    let job = p.start().unwrap();
    wait_for_values(&sink, 5).await;
    let groups = |cp: &Checkpoint| key_groups_of(cp, counts);

    let released = job
        .controller()
        .release(std::collections::BTreeSet::from([9]))
        .await
        .unwrap();
    let cp = job.checkpoints().get(released).unwrap();
    assert_eq!(
        groups(&cp),
        vec![5, 9],
        "the releasing checkpoint holds both"
    );
    assert_eq!(cp.released, std::collections::BTreeSet::from([9]));

    let next = job.trigger_checkpoint().await.unwrap();
    let cp = job.checkpoints().get(next).unwrap();
    assert_eq!(
        groups(&cp),
        vec![5],
        "key group 9 left after its checkpoint"
    );
    assert!(cp.released.is_empty());
    job.stop();
    assert!(job.wait().await.unwrap().stopped);
}

/// Releases key group 9 of `job` at a checkpoint, stops it and returns that
/// checkpoint (what another process adopts).
async fn give_up_9(job: JobHandle) -> Checkpoint {
    let released = job
        .controller()
        .release(std::collections::BTreeSet::from([9]))
        .await
        .unwrap();
    let given = job.checkpoints().get(released).unwrap();
    job.stop();
    job.wait().await.unwrap();
    given
}

/// Has the running `job` take on key group 9 from `given`; returns the
/// adopting checkpoint.
async fn take_9(job: &JobHandle, given: &Checkpoint) -> CheckpointId {
    job.controller()
        .adopt(
            std::collections::BTreeSet::from([9]),
            Checkpoint::clone(given),
        )
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_adopted_key_group_joins_a_running_job_with_its_state() {
    // Another process counted "c" twice in key group 9 and gave it up.
    let sink = CollectSink::<(String, u64)>::new();
    let first = counts_of_partitions_5_and_9(false, sink.clone())
        .start()
        .unwrap();
    wait_for_values(&sink, 5).await;
    let given = give_up_9(first).await;

    // This job reads only partition 5, then takes on 9 while it runs.
    let sink = CollectSink::<(String, u64)>::new();
    let source = ScriptedSource::new(vec![vec![vec!["a", "b", "a"]]], false)
        .with_key_groups(&[5])
        .with_later_split(9, vec!["c", "c"]);
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .parallelism(2)
            .source_partitioner(|k: &[u8]| if k == b"c" { 9 } else { 5 }),
    );
    p.source(source, WatermarkStrategy::no_watermarks())
        .map(|k: &str| (k.to_string(), 1u64))
        .key_by_source_partition(|e: &(String, u64)| e.0.clone())
        .reduce(|a, b| (a.0.clone(), a.1 + b.1))
        .uid("counts")
        .sink(sink.clone());
    let counts = *p
        .uids()
        .unwrap()
        .iter()
        .find(|(_, u)| *u == "counts")
        .unwrap()
        .0;
    let job = p.start().unwrap();
    wait_for_values(&sink, 3).await;
    let groups = |cp: &Checkpoint| key_groups_of(cp, counts);

    let adopted = take_9(&job, &given).await;
    let cp = job.checkpoints().get(adopted).unwrap();
    assert_eq!(
        groups(&cp),
        vec![5],
        "the adopting checkpoint holds only its own"
    );
    assert_eq!(cp.adopted, std::collections::BTreeSet::from([9]));
    wait_for_values(&sink, 5).await;
    let c: Vec<(String, u64)> = sink.values().into_iter().filter(|v| v.0 == "c").collect();
    assert_eq!(
        c,
        vec![("c".to_string(), 3), ("c".to_string(), 4)],
        "the counts of c go on from the adopted state"
    );
    let next = job.trigger_checkpoint().await.unwrap();
    let cp = job.checkpoints().get(next).unwrap();
    assert_eq!(
        groups(&cp),
        vec![5, 9],
        "key group 9 is this job's after its checkpoint"
    );
    assert!(cp.adopted.is_empty());
    job.stop();
    assert!(job.wait().await.unwrap().stopped);
}

/// Counts per key over processing-time tumbling windows of an hour, keyed by
/// source partition: "a" and "b" in key group 5, "c" in 9 (`later`: 9 comes
/// only as a later split).
fn windowed_counts(later: bool, sink: CollectSink<(String, u64)>) -> Pipeline {
    let source = if later {
        ScriptedSource::new(vec![vec![vec!["a", "b", "a"]]], false)
            .with_key_groups(&[5])
            .with_later_split(9, vec!["c", "c"])
    } else {
        ScriptedSource::new(vec![vec![vec!["a", "b", "a"]], vec![vec!["c", "c"]]], false)
            .with_key_groups(&[5, 9])
    };
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .parallelism(2)
            .processing_time_start(0)
            .source_partitioner(|k: &[u8]| if k == b"c" { 9 } else { 5 }),
    );
    p.source(source, WatermarkStrategy::no_watermarks())
        .map(|k: &str| k.to_string())
        .key_by_source_partition(|k: &String| k.clone())
        .window(Windows::tumbling(Duration::from_secs(3600)).processing_time())
        .aggregate(Count)
        .uid("window-counts")
        .map(|w| (w.key, w.value))
        .sink(sink);
    p
}

#[tokio::test(start_paused = true)]
async fn a_processing_time_window_adopts_a_key_group_and_counts_on_from_its_state() {
    // Another process counted "c" twice in the open window and gave key group 9 up.
    let first = windowed_counts(false, CollectSink::new()).start().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let given = give_up_9(first).await;

    // This job reads key group 5 ("a", "b", "a"), then takes on 9 and its
    // later split ("c", "c") while the window is open.
    let sink = CollectSink::<(String, u64)>::new();
    let job = windowed_counts(true, sink.clone()).start().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    take_9(&job, &given).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        sorted(sink.values()),
        vec![
            ("a".to_string(), 2),
            ("b".to_string(), 1),
            ("c".to_string(), 4)
        ],
        "the window fires once, with the adopted counts of c"
    );
    job.stop();
    assert!(job.wait().await.unwrap().stopped);
}

/// A batch of (key, event time) records.
type TimedBatch = Vec<(&'static str, i64)>;

/// Counts per key over event-time tumbling windows of 10 s, keyed by source
/// partition: "c" is key group 9, every other key 5. `splits`: per split, its
/// key group and its batches of (key, event time); `later`: key group 9's
/// split made when a running job adopts it.
fn event_time_counts(
    splits: Vec<(u16, Vec<TimedBatch>)>,
    later: Option<TimedBatch>,
    sink: CollectSink<(String, u64)>,
) -> Pipeline {
    let groups: Vec<u16> = splits.iter().map(|(g, _)| *g).collect();
    let mut source = ScriptedSource::new(splits.into_iter().map(|(_, b)| b).collect(), false)
        .with_key_groups(&groups);
    if let Some(batch) = later {
        source = source.with_later_split(9, batch);
    }
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .parallelism(2)
            .source_partitioner(|k: &[u8]| if k == b"c" { 9 } else { 5 }),
    );
    p.source(
        source,
        WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO)
            .with_timestamp(|e: &(&str, i64)| e.1),
    )
    .map(|e: (&str, i64)| e.0.to_string())
    .key_by_source_partition(|k: &String| k.clone())
    .window(Windows::tumbling(Duration::from_secs(10)))
    .aggregate(Count)
    .uid("event-window-counts")
    .map(|w| (w.key, w.value))
    .sink(sink);
    p
}

#[tokio::test(start_paused = true)]
async fn an_event_time_window_adopts_a_key_group_whose_partition_is_behind_the_watermark() {
    // Another process counted "c" twice in [10 s, 20 s) (its watermark, held
    // back by key group 5, never reached 20 s) and gave key group 9 up.
    let first = event_time_counts(
        vec![
            (5, vec![vec![("a", 1_000)]]),
            (9, vec![vec![("c", 12_000), ("c", 13_000)]]),
        ],
        None,
        CollectSink::new(),
    )
    .start()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let given = give_up_9(first).await;

    // This job's watermark is at 31 s when it takes key group 9 on, whose
    // partition is at 13 s: its record at 15 s is not late, and [10 s, 20 s)
    // fires once the partition catches up (its record at 35 s).
    let sink = CollectSink::<(String, u64)>::new();
    let job = event_time_counts(
        vec![(5, vec![vec![("a", 5_000)], vec![("b", 31_000)]])],
        Some(vec![("c", 15_000), ("c", 35_000)]),
        sink.clone(),
    )
    .start()
    .unwrap();
    wait_for_values(&sink, 1).await;
    take_9(&job, &given).await;
    wait_for_values(&sink, 2).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        sorted(sink.values()),
        vec![("a".to_string(), 1), ("c".to_string(), 3)],
        "c's window fires once, with the adopted count and the record older than the watermark"
    );
    job.stop();
    assert!(job.wait().await.unwrap().stopped);
}

#[tokio::test(start_paused = true)]
async fn an_operator_fed_by_two_event_time_sources_refuses_to_adopt_but_separate_stages_do_not() {
    let strategy = || WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1));
    let source =
        |k: &'static str| ScriptedSource::new(vec![vec![vec![k]]], false).with_key_groups(&[5]);
    let adopt_9 = |union: bool| async move {
        let p = Pipeline::with_config(PipelineConfig::default().source_partitioner(|_: &[u8]| 5));
        let one = p.source(source("a"), strategy());
        let two = p.source(source("b"), strategy());
        if union {
            one.union(two)
                .map(|k: &str| k.to_string())
                .sink(CollectSink::new());
        } else {
            // Two stages, as on both sides of a repartition topic.
            one.map(|k: &str| k.to_string()).sink(CollectSink::new());
            two.map(|k: &str| k.to_string()).sink(CollectSink::new());
        }
        let job = p.start().unwrap();
        let adopted = job
            .controller()
            .adopt(std::collections::BTreeSet::from([9]), Checkpoint::default())
            .await;
        job.stop();
        job.wait().await.unwrap();
        adopted
    };
    let e = adopt_9(true).await.unwrap_err();
    assert!(matches!(e, EngineError::Unsupported(_)), "{e}");
    assert!(
        e.to_string().contains("several sources with event time"),
        "{e}"
    );
    adopt_9(false).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_job_with_an_operator_that_cannot_adopt_refuses_before_any_checkpoint() {
    let job = running_with_an_operator_that_keeps_its_state().await;
    let e = job
        .controller()
        .adopt(std::collections::BTreeSet::from([7]), Checkpoint::default())
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("keeps-its-state"), "{e}");
    // Nothing was triggered: the job goes on and stops cleanly.
    job.stop();
    assert!(job.wait().await.unwrap().stopped);
}
