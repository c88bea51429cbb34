//! One process of a strom pipeline over Kafka, for the tests and the soak that
//! kill it: a [`connectors::kafka::KafkaJob`] running one of the pipelines below
//! until SIGTERM (final checkpoint, exit 0) or the end of bounded input.
//!
//! | PIPELINE | input | output |
//! |---|---|---|
//! | `window-count` | JSON clicks `{"url","status","ts"}` keyed by url | per url and 1-minute event-time window, the number of clicks with status >= 500 (`key_by`: one process) |
//! | `window-count-aligned` | the same | the same with `key_by_source_partition` (several processes) |
//! | `window-count-repartition` | the same | the same keyed through the repartition topic `{APP}-by-url-repartition` (`KafkaScope::key_by`: several processes) |
//! | `running-stats` | key `k<n>`, value a decimal integer | per input record, the running `[key, count, min, max, sum]` of its key |
//! | `running-stats-repartition` | the same | the same keyed through the repartition topic `{APP}-by-key-repartition` (processing time) |
//! | `sequence` | none: a generator of `COUNT` numbers at `RATE` per second (no Kafka input: one process runs it, the others stand by) | each number, as JSON, keyed by itself (spread over the partitions) |
//!
//! Settings come from the environment: `KAFKA_BOOTSTRAP`, `APP`, `INSTANCE`
//! (default 0), `INPUT`, `OUTPUT`, `GUARANTEE` (`eos` | `alo`), `CHECKPOINT_MS`
//! (default 1000), `BOUNDED` (`1`: read what is there and end), `DLQ` (a
//! dead-letter topic for records that do not decode; else they fail the job),
//! `PARALLELISM` (default 1), `EARLY_CHECKPOINTS` (`1` | `0`: checkpoint as
//! soon as the input pauses or not; default: the job decides), `KAFKA_PROPS` (more Kafka properties,
//! `key=value` separated by commas), `STROM_ABORT_FRACTION` (default 0: the
//! fraction of checkpoints whose transaction is aborted on purpose: the sink's
//! pre-commit flushes its records into the transaction, then fails with a
//! rollback error, so the job aborts the transaction and rolls back),
//! `STROM_ABORT_SEED` (default 1, mixed with the process id) and
//! `STROM_ABORT_MAX` (default 8: aborts one process injects at most, under the
//! job's limit of 10 rollbacks, which only a rebalance or a stop resets). It
//! prints one stderr line per restore and per injected abort, and a summary at
//! the end, which it also writes to the file `REPORT` when set
//! (`incarnations=N rollbacks=N released=N adopted=N`).
//!
//! Usage: `strom_pipeline PIPELINE`

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use connectors::kafka::{
    BadRecordPolicy, DeliveryGuarantee, Json, KafkaConfig, KafkaJob, KafkaScope, Utf8,
};
use engine::{
    CheckpointId, Count, EngineError, ErrorClass, GeneratorSource, Pipeline, PipelineConfig,
    Record, Sink, SinkContext, WatermarkStrategy, Windows,
};

/// The aborts a process injects (`STROM_ABORT_*`): one random sequence and one
/// budget shared by every sink subtask of every incarnation.
#[derive(Clone)]
struct Aborts {
    fraction: f64,
    rng: Arc<Mutex<u64>>,
    left: Arc<AtomicU32>,
}

impl Aborts {
    fn from_env() -> anyhow::Result<Aborts> {
        let seed: u64 = env_or("STROM_ABORT_SEED", "1").parse()?;
        Ok(Aborts {
            fraction: env_or("STROM_ABORT_FRACTION", "0").parse()?,
            rng: Arc::new(Mutex::new(
                (seed ^ u64::from(std::process::id()).rotate_left(32)) | 1,
            )),
            left: Arc::new(AtomicU32::new(env_or("STROM_ABORT_MAX", "8").parse()?)),
        })
    }

    /// Whether this pre-commit fails: a draw under the fraction while the budget lasts.
    fn strike(&self) -> bool {
        if self.fraction <= 0.0 {
            return false;
        }
        let draw = {
            let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            (*x >> 11) as f64 / (1u64 << 53) as f64
        };
        draw < self.fraction
            && self
                .left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
    }

    fn wrap<S>(&self, inner: S) -> AbortingSink<S> {
        AbortingSink {
            inner,
            aborts: self.clone(),
        }
    }
}

/// A sink whose pre-commit, after the inner sink's (its records are then in the
/// transaction), fails with a rollback error when [`Aborts::strike`] says so.
#[derive(Clone)]
struct AbortingSink<S> {
    inner: S,
    aborts: Aborts,
}

impl<T: Send + 'static, S: Sink<T>> Sink<T> for AbortingSink<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &str {
        self.inner.kind()
    }

    async fn open(&mut self, ctx: &SinkContext) -> engine::Result<()> {
        self.inner.open(ctx).await
    }

    async fn write(&mut self, batch: Vec<Record<T>>) -> engine::Result<()> {
        self.inner.write(batch).await
    }

    async fn pre_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<Vec<u8>> {
        let state = self.inner.pre_commit(checkpoint).await?;
        if self.aborts.strike() {
            eprintln!(
                "strom_pipeline: injected abort of checkpoint {}",
                checkpoint.0
            );
            return Err(EngineError::external(
                format!("checkpoint {} aborted on purpose", checkpoint.0),
                std::io::Error::other("STROM_ABORT_FRACTION"),
                ErrorClass::Rollback,
            ));
        }
        Ok(state)
    }

    async fn commit(&mut self, checkpoint: CheckpointId) -> engine::Result<()> {
        self.inner.commit(checkpoint).await
    }

    async fn finish(&mut self) -> engine::Result<()> {
        self.inner.finish().await
    }
}

/// One click of the log-processing input.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Click {
    url: String,
    status: u16,
    ts: i64,
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let pipeline = std::env::args()
        .nth(1)
        .context("usage: strom_pipeline PIPELINE")?;
    let input = env("INPUT")?;
    let output = env("OUTPUT")?;
    let guarantee = match env_or("GUARANTEE", "eos").as_str() {
        "eos" => DeliveryGuarantee::ExactlyOnce,
        "alo" => DeliveryGuarantee::AtLeastOnce,
        other => bail!("GUARANTEE={other}: eos or alo"),
    };
    let bounded = env_or("BOUNDED", "0") == "1";
    let bad = match std::env::var("DLQ") {
        Ok(topic) => BadRecordPolicy::DeadLetter(topic),
        Err(_) => BadRecordPolicy::Fail,
    };
    let mut kafka = KafkaConfig::new(&env("KAFKA_BOOTSTRAP")?, &env("APP")?)
        .set("strom.instance", env_or("INSTANCE", "0"))
        .set("fetch.max.wait.ms", "100");
    for pair in env_or("KAFKA_PROPS", "")
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("KAFKA_PROPS: {pair:?} is not key=value"))?;
        kafka = kafka.set(k.trim(), v.trim());
    }
    let checkpoint = Duration::from_millis(env_or("CHECKPOINT_MS", "1000").parse()?);
    let parallelism: usize = env_or("PARALLELISM", "1").parse()?;
    let mut config = PipelineConfig::default()
        .checkpoint_interval(checkpoint)
        .parallelism(parallelism);
    if let Ok(v) = std::env::var("EARLY_CHECKPOINTS") {
        config = config.checkpoint_when_caught_up(v == "1");
    }
    let aborts = Aborts::from_env()?;
    let job = KafkaJob::new(kafka, config);
    let stop = job.stop_handle();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        term.recv().await;
        eprintln!("strom_pipeline: SIGTERM, stopping");
        stop.stop();
    });
    let define = move |p: &Pipeline, k: &KafkaScope| -> engine::Result<()> {
        // A Kafka source counts as input once made: only the pipelines that
        // read INPUT make one.
        let kafka_source = || {
            let source = k
                .source()
                .topics([input.clone()])
                .on_bad_record(bad.clone());
            if bounded { source.bounded() } else { source }
        };
        match pipeline.as_str() {
            "window-count" | "window-count-aligned" | "window-count-repartition" => {
                let clicks = p
                    .source(
                        kafka_source().format(Json::<Click>::new()),
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                            .with_timestamp(|c: &Click| c.ts),
                    )
                    .filter(|c| c.status >= 500);
                let keyed = match pipeline.as_str() {
                    "window-count" => clicks.key_by(|c| c.url.clone()),
                    "window-count-aligned" => clicks.key_by_source_partition(|c| c.url.clone()),
                    _ => k.key_by(clicks, "by-url", |c: &Click| c.url.clone(), Json::new()),
                };
                let counts = keyed
                    .window(Windows::tumbling(Duration::from_secs(60)))
                    .aggregate(Count)
                    .uid("error-counts");
                counts.sink(
                    aborts.wrap(
                        k.sink(&output)
                            .key(|w: &engine::Windowed<String, u64>| {
                                Some(Bytes::from(w.key.clone()))
                            })
                            .delivery(guarantee),
                    ),
                );
            }
            "running-stats" | "running-stats-repartition" => {
                let parsed = p
                    .source(
                        kafka_source().format(Utf8).with_metadata(),
                        WatermarkStrategy::no_watermarks(),
                    )
                    .try_map_named("parse", |m| {
                        let key = String::from_utf8_lossy(m.key.as_deref().unwrap_or_default())
                            .into_owned();
                        m.value.trim().parse::<i64>().map(|v| (key, 1u64, v, v, v))
                    });
                let key = |s: &(String, u64, i64, i64, i64)| s.0.clone();
                let keyed = if pipeline == "running-stats" {
                    parsed.key_by_source_partition(key)
                } else {
                    k.key_by(parsed, "by-key", key, Json::new())
                };
                keyed
                    .reduce(|a, b| {
                        (
                            a.0.clone(),
                            a.1 + b.1,
                            a.2.min(b.2),
                            a.3.max(b.3),
                            a.4 + b.4,
                        )
                    })
                    .uid("running-stats")
                    .sink(
                        aborts.wrap(
                            k.sink(&output)
                                .key(|s: &(String, u64, i64, i64, i64)| {
                                    Some(Bytes::from(s.0.clone()))
                                })
                                .delivery(guarantee),
                        ),
                    );
            }
            "sequence" => {
                let count: u64 = env_or("COUNT", "1000")
                    .parse()
                    .map_err(|e| engine::EngineError::InvalidPipeline(format!("COUNT: {e}")))?;
                let rate: f64 = env_or("RATE", "100")
                    .parse()
                    .map_err(|e| engine::EngineError::InvalidPipeline(format!("RATE: {e}")))?;
                p.source(
                    GeneratorSource::new(|i| i)
                        .rate_per_second(rate)
                        .limit(count),
                    WatermarkStrategy::no_watermarks(),
                )
                .uid("sequence")
                .sink(
                    aborts.wrap(
                        k.sink(&output)
                            .key(|n: &u64| Some(Bytes::from(n.to_string())))
                            .delivery(guarantee),
                    ),
                );
            }
            other => {
                return Err(engine::EngineError::InvalidPipeline(format!(
                    "unknown pipeline {other}"
                )));
            }
        }
        Ok(())
    };
    let report = job.run(define).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, r) in report.restores.iter().enumerate() {
        eprintln!(
            "strom_pipeline: restore {i}: {} ms, {} bytes, {} key groups",
            r.duration.as_millis(),
            r.bytes_read,
            r.key_groups
        );
    }
    eprintln!(
        "strom_pipeline: ended {:?} after {} incarnations, {} rollbacks, {} partitions released and {} adopted in place, last checkpoint {}",
        report.end,
        report.incarnations,
        report.rollbacks,
        report.released,
        report.adopted,
        report.last_checkpoint
    );
    if let Ok(path) = std::env::var("REPORT") {
        std::fs::write(
            path,
            format!(
                "incarnations={} rollbacks={} released={} adopted={}\n",
                report.incarnations, report.rollbacks, report.released, report.adopted
            ),
        )?;
    }
    Ok(())
}
