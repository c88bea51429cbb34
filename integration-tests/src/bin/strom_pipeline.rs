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
//!
//! Settings come from the environment: `KAFKA_BOOTSTRAP`, `APP`, `INSTANCE`
//! (default 0), `INPUT`, `OUTPUT`, `GUARANTEE` (`eos` | `alo`), `CHECKPOINT_MS`
//! (default 1000), `BOUNDED` (`1`: read what is there and end), `DLQ` (a
//! dead-letter topic for records that do not decode; else they fail the job),
//! `PARALLELISM` (default 1), `KAFKA_PROPS` (more Kafka properties,
//! `key=value` separated by commas). It prints one stderr line per restore and a
//! summary at the end.
//!
//! Usage: `strom_pipeline PIPELINE`

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use connectors::kafka::{
    BadRecordPolicy, DeliveryGuarantee, Json, KafkaConfig, KafkaJob, KafkaScope, Utf8,
};
use engine::{Count, Pipeline, PipelineConfig, WatermarkStrategy, Windows};

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
    let config = PipelineConfig::default()
        .checkpoint_interval(checkpoint)
        .parallelism(parallelism);
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
        let mut source = k
            .source()
            .topics([input.clone()])
            .on_bad_record(bad.clone());
        if bounded {
            source = source.bounded();
        }
        match pipeline.as_str() {
            "window-count" | "window-count-aligned" | "window-count-repartition" => {
                let clicks = p
                    .source(
                        source.format(Json::<Click>::new()),
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
                    k.sink(&output)
                        .key(|w: &engine::Windowed<String, u64>| Some(Bytes::from(w.key.clone())))
                        .delivery(guarantee),
                );
            }
            "running-stats" => {
                p.source(
                    source.format(Utf8).with_metadata(),
                    WatermarkStrategy::no_watermarks(),
                )
                .try_map_named("parse", |m| {
                    let key =
                        String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).into_owned();
                    m.value.trim().parse::<i64>().map(|v| (key, 1u64, v, v, v))
                })
                .key_by_source_partition(|s: &(String, u64, i64, i64, i64)| s.0.clone())
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
                    k.sink(&output)
                        .key(|s: &(String, u64, i64, i64, i64)| Some(Bytes::from(s.0.clone())))
                        .delivery(guarantee),
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
        "strom_pipeline: ended {:?} after {} incarnations, {} rollbacks, last checkpoint {}",
        report.end, report.incarnations, report.rollbacks, report.last_checkpoint
    );
    Ok(())
}
