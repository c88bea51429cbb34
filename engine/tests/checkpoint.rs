//! Checkpoints: a snapshot taken at a barrier in the middle of a run, restored into
//! a new pipeline, continues to exactly the output of an uninterrupted run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use engine::*;

type Ev = (u32, i64, u64);

const EVENTS: u64 = 20_000;

/// source (2 splits, rate-limited) -> key_by -> 1 s tumbling sum -> sink
///                                 \-> key_by -> rolling max (process state) -> sink
/// Registers an event-time timer at the next full second per key and record;
/// emits `(key, timer)` when it fires (timers are deduplicated per key and time).
#[derive(Clone)]
struct SecondTicks;

impl KeyedProcessFunction<u32, Ev> for SecondTicks {
    type Out = (u32, i64);
    fn process_element(
        &mut self,
        v: Ev,
        ctx: &mut ProcessContext<'_, '_, u32, (u32, i64)>,
    ) -> Result<()> {
        ctx.register_event_timer((v.1 / 1000 + 1) * 1000);
        Ok(())
    }
    fn on_timer(
        &mut self,
        t: i64,
        _d: TimeDomain,
        ctx: &mut ProcessContext<'_, '_, u32, (u32, i64)>,
    ) -> Result<()> {
        let k = *ctx.key();
        ctx.collect((k, t));
        Ok(())
    }
}

fn define(
    p: &Pipeline,
    windows: &CollectSink<(u32, i64, u64)>,
    rolling: &CollectSink<(u32, u64)>,
    ticks: &CollectSink<(u32, i64)>,
) {
    let events = p.source(
        GeneratorSource::new(|i| ((i % 13) as u32, (i * 10) as i64, i))
            .splits(2)
            .rate_per_second(10_000.0)
            .limit(EVENTS),
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50))
            .with_timestamp(|e: &Ev| e.1),
    );
    events
        .key_by(|e| e.0)
        .window(Windows::tumbling(Duration::from_secs(1)))
        .aggregate(Sum::of(|e: &Ev| e.2))
        .map(|w| (w.key, w.window.start, w.value))
        .sink(windows.clone());
    let second = p.source(
        GeneratorSource::new(|i| ((i % 5) as u32, i as i64, i))
            .rate_per_second(5_000.0)
            .limit(EVENTS / 2),
        WatermarkStrategy::monotonous().with_timestamp(|e: &Ev| e.1),
    );
    let (second, for_timers) = second.fork();
    for_timers
        .key_by(|e| e.0)
        .process(SecondTicks)
        .sink(ticks.clone());
    second
        .key_by(|e| e.0)
        .reduce(|a, b| if a.2 >= b.2 { *a } else { *b })
        .map(|e| (e.0, e.2))
        .sink(rolling.clone());
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

type Outputs = (Vec<(u32, i64, u64)>, Vec<(u32, u64)>, Vec<(u32, i64)>);

async fn uninterrupted() -> Outputs {
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    let (w, r, t) = (
        CollectSink::transactional(),
        CollectSink::transactional(),
        CollectSink::transactional(),
    );
    define(&p, &w, &r, &t);
    p.run().await.unwrap();
    (sorted(w.values()), sorted(r.values()), sorted(t.values()))
}

async fn interrupted_then_restored(restore_parallelism: usize) -> (Outputs, CheckpointId) {
    let (w, r, t) = (
        CollectSink::transactional(),
        CollectSink::transactional(),
        CollectSink::transactional(),
    );
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    define(&p, &w, &r, &t);
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let id = match job.trigger_checkpoint().await {
        Ok(id) => id,
        Err(e) => panic!("{e}: job ended with {:?}", job.wait().await),
    };
    let checkpoint = job.checkpoints().get(id).unwrap();
    // Keep running past the checkpoint, then "crash".
    tokio::time::sleep(Duration::from_millis(300)).await;
    job.abort();
    assert!(matches!(job.wait().await, Err(EngineError::Cancelled)));
    assert!(!checkpoint.operators.is_empty());

    let p2 = Pipeline::with_config(PipelineConfig::default().parallelism(restore_parallelism));
    define(&p2, &w, &r, &t);
    p2.restore_from(checkpoint);
    let result = p2.run().await.unwrap();
    assert_eq!(result.epoch, Epoch(1));
    (
        (sorted(w.values()), sorted(r.values()), sorted(t.values())),
        id,
    )
}

#[tokio::test(start_paused = true)]
async fn restore_from_a_mid_run_checkpoint_reproduces_the_uninterrupted_output() {
    let reference = uninterrupted().await;
    assert!(!reference.0.is_empty() && !reference.1.is_empty() && !reference.2.is_empty());
    let (restored, id) = interrupted_then_restored(2).await;
    assert_eq!(id, CheckpointId(1));
    assert_eq!(restored.0, reference.0, "window sums");
    assert_eq!(restored.1, reference.1, "rolling reduce (value state)");
    assert_eq!(restored.2, reference.2, "event-time timers");
}

#[tokio::test(start_paused = true)]
async fn restore_into_a_different_parallelism_moves_key_groups() {
    let reference = uninterrupted().await;
    let (restored, _) = interrupted_then_restored(1).await;
    assert_eq!(restored, reference);
}

#[tokio::test(start_paused = true)]
async fn committing_an_empty_checkpoint_works() {
    // An unbounded source that produces nothing yet: the checkpoint has no data
    // to commit, and must still complete (FLINK-31363).
    let p = Pipeline::new();
    let sink = CollectSink::<u64>::transactional();
    p.source(
        GeneratorSource::new(|i| i).rate_per_second(0.5),
        WatermarkStrategy::no_watermarks(),
    )
    .sink(sink.clone());
    let job = p.start().unwrap();
    let first = job.trigger_checkpoint().await.unwrap();
    let second = job.trigger_checkpoint().await.unwrap();
    assert_eq!((first, second), (CheckpointId(1), CheckpointId(2)));
    assert_eq!(job.checkpoints().ids(), vec![first, second]);
    job.cancel();
    let _ = job.wait().await;
}

#[tokio::test(start_paused = true)]
async fn periodic_checkpoints_commit_output_while_the_job_runs() {
    let p = Pipeline::with_config(
        PipelineConfig::default().checkpoint_interval(Duration::from_millis(100)),
    );
    let sink = CollectSink::<u64>::transactional();
    p.source(
        GeneratorSource::new(|i| i).rate_per_second(1000.0),
        WatermarkStrategy::no_watermarks(),
    )
    .sink(sink.clone());
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let committed = sink.values().len();
    // Everything up to the last completed checkpoint (~1 s of 1000/s) is visible,
    // nothing beyond it.
    assert!((800..=1000).contains(&committed), "{committed}");
    assert!(job.checkpoints().latest().is_some());
    job.cancel();
    let _ = job.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_stopped_job_checkpoints_without_flushing_windows_and_resumes_exactly() {
    let reference = uninterrupted().await;
    let (w, r, t) = (
        CollectSink::transactional(),
        CollectSink::transactional(),
        CollectSink::transactional(),
    );
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    define(&p, &w, &r, &t);
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let checkpoints = job.checkpoints();
    job.stop();
    let result = job.wait().await.unwrap();
    assert!(result.stopped);
    let last = result
        .last_checkpoint
        .expect("the stop took a final checkpoint");
    let checkpoint = checkpoints.get(last).unwrap();
    // Windows still open at the stop were not fired: their state is in the checkpoint.
    assert!(w.values().len() < reference.0.len(), "{:?}", w.values());

    let p2 = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    define(&p2, &w, &r, &t);
    p2.restore_from(checkpoint);
    p2.run().await.unwrap();
    assert_eq!(sorted(w.values()), reference.0, "window sums");
    assert_eq!(sorted(r.values()), reference.1, "rolling reduce");
    assert_eq!(sorted(t.values()), reference.2, "timers");
}

/// A durable store that fails its `n`th write, and records what it was given.
#[derive(Default)]
struct FlakyStore {
    fail_at: u64,
    written: std::sync::Mutex<Vec<CheckpointId>>,
}

impl CheckpointStore for FlakyStore {
    fn write(&self, checkpoint: std::sync::Arc<Checkpoint>) -> StoreFuture {
        let fail = checkpoint.id.0 == self.fail_at;
        if !fail {
            self.written.lock().unwrap().push(checkpoint.id);
        }
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if fail {
                Err(EngineError::external(
                    "writing the checkpoint",
                    std::io::Error::other("disk full"),
                    ErrorClass::Rollback,
                ))
            } else {
                Ok(())
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_completes_only_after_its_durable_write_and_a_failed_write_rolls_back() {
    let store = std::sync::Arc::new(FlakyStore {
        fail_at: 3,
        ..Default::default()
    });
    let p = Pipeline::with_config(
        PipelineConfig::default().checkpoint_interval(Duration::from_millis(100)),
    );
    let sink = CollectSink::<u64>::transactional();
    p.source(
        GeneratorSource::new(|i| i).rate_per_second(1_000.0),
        WatermarkStrategy::no_watermarks(),
    )
    .sink(sink.clone());
    p.checkpoint_store(store.clone());
    let job = p.start().unwrap();
    // The durable store holds the completed checkpoints; memory keeps no copy.
    let in_memory = job.checkpoints();
    let err = job.wait().await.unwrap_err();
    assert!(in_memory.ids().is_empty(), "{:?}", in_memory.ids());
    assert_eq!(err.class(), ErrorClass::Rollback, "{err}");
    assert_eq!(
        err.to_string(),
        "checkpoint #3: durable write failed: writing the checkpoint: disk full"
    );
    assert_eq!(
        *store.written.lock().unwrap(),
        vec![CheckpointId(1), CheckpointId(2)]
    );
    // Records of checkpoint 3 were never committed.
    let committed = sink.values().len() as u64;
    assert!(committed > 0 && committed <= 210, "{committed}");
}

#[tokio::test(start_paused = true)]
async fn state_follows_its_uid_into_an_edited_pipeline() {
    let run = |extra_map: bool, restore: Option<Checkpoint>| async move {
        let p = Pipeline::new();
        let sink = CollectSink::<(u32, u64)>::transactional();
        let mut s = p.source(
            GeneratorSource::new(|i| ((i % 3) as u32, i))
                .rate_per_second(1_000.0)
                .limit(1_000),
            WatermarkStrategy::no_watermarks(),
        );
        if extra_map {
            s = s.map(|e| e).name("added later");
        }
        s.key_by(|e| e.0)
            .reduce(|a, b| (a.0, a.1 + b.1))
            .uid("running-sum")
            .sink(sink.clone());
        if let Some(cp) = restore {
            p.restore_from(cp);
        }
        (p, sink)
    };
    let (p, _) = run(false, None).await;
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = job.trigger_checkpoint().await.unwrap();
    let checkpoint = job.checkpoints().get(id).unwrap();
    job.abort();
    let _ = job.wait().await;
    assert!(checkpoint.uids.values().any(|u| u == "running-sum"));

    let (p2, sink2) = run(true, Some(checkpoint)).await;
    p2.run().await.unwrap();
    // Restored sums continue: the last sum per key covers all 1000 events.
    let mut last: std::collections::BTreeMap<u32, u64> = Default::default();
    for (k, v) in sink2.values() {
        last.insert(k, v);
    }
    let expected: std::collections::BTreeMap<u32, u64> = (0..3u32)
        .map(|k| (k, (0..1000u64).filter(|i| (i % 3) as u32 == k).sum()))
        .collect();
    assert_eq!(last, expected);
}

#[test]
fn a_checkpoint_survives_its_byte_format_and_refuses_another_version() {
    let mut state = OperatorState::default();
    state.key_groups.insert(3, vec![1, 2, 3]);
    state.entries.insert(0, vec![9; 5]);
    let cp = Checkpoint {
        id: CheckpointId(42),
        epoch: Epoch(2),
        operators: [(OperatorId(1), state.clone())].into(),
        uids: [(OperatorId(1), "window".to_string())].into(),
        released: Default::default(),
        adopted: Default::default(),
    };
    let bytes = cp.encode();
    assert_eq!(Checkpoint::decode(&bytes).unwrap(), cp);
    assert_eq!(
        OperatorState::decode_bytes(&state.encode_bytes()).unwrap(),
        state
    );
    let mut other = bytes.clone();
    other[0] = 9;
    assert!(
        Checkpoint::decode(&other)
            .unwrap_err()
            .to_string()
            .contains("format version 9")
    );
    assert!(Checkpoint::decode(&bytes[..bytes.len() - 1]).is_err());
}

const JOINED: u64 = 6_000;

/// Two sources without watermarks: left emits keys 0, 1, 2, .., right the same
/// keys backwards, so early pairs meet right-first and late ones left-first;
/// each key joins exactly once.
fn define_join(p: &Pipeline, sink: &CollectSink<(u64, u64)>) {
    let left = p.source(
        GeneratorSource::new(|i| (i, i * 2))
            .rate_per_second(6_000.0)
            .limit(JOINED),
        WatermarkStrategy::no_watermarks(),
    );
    let right = p.source(
        GeneratorSource::new(|i| (JOINED - 1 - i, i * 3))
            .rate_per_second(6_000.0)
            .limit(JOINED),
        WatermarkStrategy::no_watermarks(),
    );
    left.key_by(|e: &(u64, u64)| e.0)
        .regular_join(right.key_by(|e: &(u64, u64)| e.0), None, |a, b| {
            (a.0, a.1 + b.1)
        })
        .sink(sink.clone());
}

#[tokio::test(start_paused = true)]
async fn a_regular_join_restored_into_another_parallelism_emits_every_pair_once() {
    let want: Vec<(u64, u64)> = (0..JOINED)
        .map(|k| (k, k * 2 + (JOINED - 1 - k) * 3))
        .collect();
    let sink = CollectSink::transactional();
    let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
    define_join(&p, &sink);
    let job = p.start().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let id = match job.trigger_checkpoint().await {
        Ok(id) => id,
        Err(e) => panic!("{e}: job ended with {:?}", job.wait().await),
    };
    let checkpoint = job.checkpoints().get(id).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    job.abort();
    assert!(matches!(job.wait().await, Err(EngineError::Cancelled)));
    let before = sink.values().len();
    assert!(
        before > 0 && (before as u64) < JOINED,
        "{before} pairs by the checkpoint"
    );

    let p2 = Pipeline::with_config(PipelineConfig::default().parallelism(1));
    define_join(&p2, &sink);
    p2.restore_from(checkpoint);
    p2.run().await.unwrap();
    assert_eq!(sorted(sink.values()), want);
}

/// A split that releases each batch at its time after the job starts, and then
/// stays pending (an unbounded input that pauses) or ends at `end_at`.
struct TimedSplit {
    batches: std::collections::VecDeque<(Duration, Vec<u64>)>,
    /// When the split ends (after its batches); `None`: it stays pending.
    end_at: Option<Duration>,
    start: tokio::time::Instant,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    offset: u64,
}

impl SourceSplit<u64> for TimedSplit {
    fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _max: usize,
    ) -> std::task::Poll<Result<SplitEvent<u64>>> {
        use std::task::Poll;
        let (due, batch) = match (self.batches.front(), self.end_at) {
            (Some((at, _)), _) => (self.start + *at, true),
            (None, Some(end)) => (self.start + end, false),
            (None, None) => return Poll::Pending,
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        let Some((_, values)) = self.batches.pop_front().filter(|_| batch) else {
            return Poll::Ready(Ok(SplitEvent::End));
        };
        let records = values
            .into_iter()
            .map(|v| {
                self.offset += 1;
                Record {
                    value: v,
                    timestamp: NO_TIMESTAMP,
                    position: Position::offset_only(self.offset - 1),
                }
            })
            .collect();
        Poll::Ready(Ok(SplitEvent::Records(records)))
    }
    fn position(&self) -> u64 {
        self.offset
    }
    fn restore(&mut self, position: u64) -> Result<()> {
        self.offset = position;
        Ok(())
    }
}

/// Timed splits; bounded when the flag says every split ends.
struct TimedSource(Vec<TimedSplit>, bool);

impl Source<u64> for TimedSource {
    fn is_bounded(&self) -> bool {
        self.1
    }
    fn create_splits(&mut self) -> Result<Vec<Box<dyn SourceSplit<u64>>>> {
        Ok(std::mem::take(&mut self.0)
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn SourceSplit<u64>>)
            .collect())
    }
}

/// Runs two splits with batches at 0 s and 4 s under a 10 s interval (periodic
/// checkpoints at 1.25, 3.75, 8.75 s): the committed output at 6 s and the
/// checkpoints completed by 9.5 s.
async fn paused_input(when_caught_up: bool) -> (Vec<u64>, Vec<CheckpointId>) {
    let start = tokio::time::Instant::now();
    let split = |base: u64| TimedSplit {
        batches: [
            (Duration::ZERO, vec![base, base + 1]),
            (Duration::from_secs(4), vec![base + 2]),
        ]
        .into(),
        end_at: None,
        start,
        sleep: None,
        offset: 0,
    };
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .parallelism(2)
            .checkpoint_interval(Duration::from_secs(10))
            .checkpoint_when_caught_up(when_caught_up),
    );
    let sink = CollectSink::<u64>::transactional();
    p.source(
        TimedSource(vec![split(0), split(10)], false),
        WatermarkStrategy::no_watermarks(),
    )
    .sink(sink.clone());
    let job = p.start().unwrap();
    tokio::time::sleep_until(start + Duration::from_secs(6)).await;
    let mut at_6s = sink.values();
    at_6s.sort();
    tokio::time::sleep_until(start + Duration::from_millis(9500)).await;
    let checkpoints = job.checkpoints().ids();
    job.abort();
    let _ = job.wait().await;
    (at_6s, checkpoints)
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_comes_early_when_the_input_pauses() {
    // Off: the records of 4 s wait for the periodic checkpoint of 8.75 s.
    let (output, checkpoints) = paused_input(false).await;
    assert_eq!(output, [0, 1, 10, 11]);
    assert_eq!(
        checkpoints,
        [CheckpointId(1), CheckpointId(2), CheckpointId(3)]
    );
    // On: they are committed 1.25 s after the last checkpoint (3.75 s), and the
    // next periodic one counts from there (10 s). Nothing was read after the
    // checkpoints of 1.25 s and 3.75 s, so neither was followed by an early one.
    let (output, checkpoints) = paused_input(true).await;
    assert_eq!(output, [0, 1, 2, 10, 11, 12]);
    assert_eq!(
        checkpoints,
        [CheckpointId(1), CheckpointId(2), CheckpointId(3)]
    );
}

#[test]
fn a_job_whose_sources_ended_does_not_retry_an_early_checkpoint_it_cannot_take() {
    // The source reads a batch, catches up, and ends 100 ms later, while a slow
    // asynchronous step still works on the batch: from then on no checkpoint
    // can be taken. A coordinator that kept asking for the early one would keep
    // the paused clock from reaching the step's sleep, and the job would never
    // end; the job runs on its own thread so that the test can give up.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let out = rt.block_on(async {
            let split = TimedSplit {
                batches: [(Duration::ZERO, vec![1, 2, 3])].into(),
                end_at: Some(Duration::from_millis(100)),
                start: tokio::time::Instant::now(),
                sleep: None,
                offset: 0,
            };
            let p = Pipeline::with_config(
                PipelineConfig::default()
                    .checkpoint_interval(Duration::from_secs(1))
                    .checkpoint_when_caught_up(true),
            );
            let sink = CollectSink::<u64>::transactional();
            p.source(
                TimedSource(vec![split], true),
                WatermarkStrategy::no_watermarks(),
            )
            .async_map(AsyncOptions::default(), |v: u64| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<u64, String>(v * 10)
            })
            .sink(sink.clone());
            p.run().await.unwrap();
            let mut out = sink.values();
            out.sort();
            out
        });
        let _ = done_tx.send(out);
    });
    let out = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the job ended");
    assert_eq!(out, [10, 20, 30]);
}
