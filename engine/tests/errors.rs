//! Bad records: the pipeline's error policy decides between failing the job (with
//! the operator and the record's position in the error), dropping and counting, or
//! routing to the dead-letter stream. One bad record never stalls the pipeline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::*;

fn inputs() -> Vec<&'static str> {
    vec!["1", "2", "x", "4", "y"]
}

fn parse(s: &str) -> std::result::Result<u64, String> {
    s.parse::<u64>()
        .map_err(|e| format!("bad number {s:?}: {e}"))
}

#[tokio::test]
async fn fail_policy_names_the_operator_and_the_record_position() {
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source(VecSource::new(inputs()), WatermarkStrategy::no_watermarks())
        .try_map_named("parse", parse)
        .sink(sink.clone());
    let err = p.run().await.unwrap_err();
    match &err {
        EngineError::RecordFailed {
            operator, position, ..
        } => {
            assert_eq!(operator, "parse");
            assert_eq!(*position, Position::new(0, 2));
        }
        e => panic!("unexpected {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("operator 'parse'") && msg.contains("split 0 offset 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn drop_policy_skips_bad_records_and_keeps_going() {
    let p = Pipeline::with_config(PipelineConfig::default().error_policy(ErrorPolicy::Drop));
    let sink = CollectSink::new();
    p.source(VecSource::new(inputs()), WatermarkStrategy::no_watermarks())
        .try_map(parse)
        .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![1, 2, 4]);
}

#[tokio::test]
async fn dead_letter_policy_routes_failed_records_with_their_position() {
    let p = Pipeline::with_config(PipelineConfig::default().error_policy(ErrorPolicy::DeadLetter));
    let sink = CollectSink::new();
    let dead = CollectSink::new();
    p.source(VecSource::new(inputs()), WatermarkStrategy::no_watermarks())
        .try_map_named("parse", parse)
        .sink(sink.clone());
    p.dead_letters().sink(dead.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![1, 2, 4]);
    let dl = dead.values();
    assert_eq!(
        dl.iter().map(|d| d.position.offset()).collect::<Vec<_>>(),
        vec![Some(2), Some(4)]
    );
    assert!(
        dl.iter()
            .all(|d| d.operator == "parse" && d.error.starts_with("bad number"))
    );
}

#[derive(Clone)]
struct RejectOdd;

impl KeyedProcessFunction<u8, u64> for RejectOdd {
    type Out = u64;
    fn process_element(&mut self, v: u64, ctx: &mut ProcessContext<'_, '_, u8, u64>) -> Result<()> {
        if v % 2 == 1 {
            return Err(EngineError::Codec(format!("odd {v}")));
        }
        ctx.collect(v);
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_process_function_follows_the_policy() {
    let p = Pipeline::with_config(PipelineConfig::default().error_policy(ErrorPolicy::Drop));
    let sink = CollectSink::new();
    p.source(
        VecSource::new(vec![1u64, 2, 3, 4]),
        WatermarkStrategy::no_watermarks(),
    )
    .key_by(|_| 0u8)
    .process(RejectOdd)
    .sink(sink.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![2, 4]);
}

#[tokio::test]
async fn an_event_time_window_without_timestamps_fails_clearly() {
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source(
        VecSource::new(vec![1u64]),
        WatermarkStrategy::no_watermarks(),
    )
    .key_by(|_| 0u8)
    .window(Windows::tumbling(std::time::Duration::from_secs(1)))
    .aggregate(Count)
    .sink(sink.clone());
    let err = p.run().await.unwrap_err().to_string();
    assert!(err.contains("no event timestamp"), "{err}");
}

#[tokio::test]
async fn try_flat_map_failures_go_to_dead_letters_too() {
    let p = Pipeline::with_config(PipelineConfig::default().error_policy(ErrorPolicy::DeadLetter));
    let sink = CollectSink::new();
    let dead = CollectSink::new();
    p.source(
        VecSource::new(vec!["1,2", "x", "3"]),
        WatermarkStrategy::no_watermarks(),
    )
    .try_flat_map("split", |s: &str| {
        s.split(',')
            .map(parse)
            .collect::<std::result::Result<Vec<u64>, String>>()
    })
    .sink(sink.clone());
    p.dead_letters().sink(dead.clone());
    p.run().await.unwrap();
    assert_eq!(sink.values(), vec![1, 2, 3]);
    assert_eq!(dead.values().len(), 1);
    assert_eq!(dead.values()[0].position, Position::new(0, 1));
}

#[tokio::test]
async fn a_named_operator_appears_in_the_error() {
    let p = Pipeline::new();
    let sink = CollectSink::new();
    p.source(VecSource::new(inputs()), WatermarkStrategy::no_watermarks())
        .try_map(parse)
        .name("amounts")
        .sink(sink.clone());
    let err = p.run().await.unwrap_err().to_string();
    assert!(err.contains("operator 'amounts'"), "{err}");
}

#[derive(Clone)]
struct StuckSink;

impl Sink<u64> for StuckSink {
    fn name(&self) -> &str {
        "stuck"
    }
    async fn write(&mut self, _batch: Vec<Record<u64>>) -> Result<()> {
        Ok(())
    }
    async fn finish(&mut self) -> Result<()> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_cannot_finish_fails_the_job_after_the_close_timeout() {
    let p = Pipeline::with_config(
        PipelineConfig::default().close_timeout(std::time::Duration::from_secs(5)),
    );
    p.source(
        VecSource::new(vec![1u64]),
        WatermarkStrategy::no_watermarks(),
    )
    .sink(StuckSink);
    let err = p.run().await.unwrap_err().to_string();
    assert!(
        err.contains("sink 'stuck'") && err.contains("did not complete within 5s"),
        "{err}"
    );
}

fn many_with_a_bad_one() -> Vec<String> {
    (0..20_000u64)
        .map(|i| {
            if i == 15_000 {
                "x".into()
            } else {
                i.to_string()
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upstream_task_does_not_let_a_sink_finish() {
    for _ in 0..5 {
        let p = Pipeline::new();
        let sink = CollectSink::transactional();
        p.source(
            VecSource::new(many_with_a_bad_one()),
            WatermarkStrategy::no_watermarks(),
        )
        .try_map_named("parse", |s: String| parse(&s))
        .rebalance(2)
        .sink(sink.clone());
        let err = p.run().await.unwrap_err();
        assert!(
            matches!(err, EngineError::RecordFailed { .. }),
            "the cause, not the closed channel it left behind: {err}"
        );
        let committed = sink.values().len();
        assert_eq!(
            committed, 0,
            "no checkpoint completed: a sink must commit nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_operator_fails_the_job_with_its_message() {
    let p = Pipeline::new();
    let sink = CollectSink::transactional();
    p.source(
        VecSource::new((0..20_000u64).collect()),
        WatermarkStrategy::no_watermarks(),
    )
    .map(|v: u64| {
        assert!(v != 15_000, "operator bug at {v}");
        v
    })
    .rebalance(2)
    .sink(sink.clone());
    let err = p.run().await.unwrap_err();
    match &err {
        EngineError::Panicked { message, .. } => {
            assert!(message.contains("operator bug at 15000"), "{message}")
        }
        e => panic!("unexpected {e:?}"),
    }
    assert_eq!(sink.values().len(), 0);
}
