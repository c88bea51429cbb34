//! The pipelines on strom: one process of a `KafkaJob`, run until killed (the
//! driver's `strom-child` command).

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use connectors::kafka::{
    DeliveryGuarantee, Format, FormatError, KafkaConfig, KafkaJob, KafkaScope, Raw,
};
use engine::{
    Count, Pipeline, PipelineConfig, StateCodec, Sum, WatermarkStrategy, Windowed, Windows,
};

use crate::data::{
    KEEP_BELOW, OUT_OF_ORDER_MS, SLIDING_SIZE_MS, SLIDING_SLIDE_MS, WINDOW_MS, region,
};
use crate::join::{JOIN_LOWER_MS, JOIN_UPPER_MS, joined};

/// What the child runs (its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub bootstrap: String,
    #[arg(long)]
    pub input: String,
    #[arg(long)]
    pub output: String,
    #[arg(long)]
    pub app: String,
    /// passthrough | filtermap | count | sliding | join
    #[arg(long)]
    pub pipeline: String,
    /// The join's second input.
    #[arg(long, default_value = "")]
    pub payments: String,
    /// alo | eos
    #[arg(long)]
    pub guarantee: String,
    #[arg(long)]
    pub checkpoint_ms: u64,
    #[arg(long)]
    pub parallelism: usize,
    /// Extra Kafka properties, `key=value` (repeatable).
    #[arg(long = "property")]
    pub properties: Vec<String>,
}

/// An output record: key and value bytes.
#[derive(Debug, Clone, serde::Serialize)]
struct Out {
    key: Bytes,
    value: Bytes,
}

/// Writes an [`Out`]'s value as it is.
struct OutValue;

impl Format<Out> for OutValue {
    fn deserialize(&self, _: Option<&[u8]>) -> Result<Out, FormatError> {
        Err(FormatError {
            format: "out",
            message: "write only".into(),
        })
    }
    fn serialize(&self, value: &Out) -> Result<Option<Bytes>, FormatError> {
        Ok(Some(value.value.clone()))
    }
}

/// One parsed input value, `key,event_time_ms,amount`.
#[derive(Debug, Clone)]
struct Parsed {
    key: String,
    ts: i64,
    amount: u64,
}

/// Kept in the join's state.
impl StateCodec for Parsed {
    fn encode(&self, buf: &mut Vec<u8>) {
        self.key.encode(buf);
        self.ts.encode(buf);
        self.amount.encode(buf);
    }
    fn decode(buf: &mut &[u8]) -> engine::Result<Self> {
        let (key, ts, amount) = <(String, i64, u64)>::decode(buf)?;
        Ok(Parsed { key, ts, amount })
    }
}

/// Parses input values (a malformed one is a bad record).
struct Csv;

impl Format<Parsed> for Csv {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Parsed, FormatError> {
        let bad = |m: &str| FormatError {
            format: "csv",
            message: m.to_string(),
        };
        let s = std::str::from_utf8(bytes.unwrap_or_default()).map_err(|_| bad("not UTF-8"))?;
        let mut f = s.splitn(3, ',');
        let key = f.next().ok_or_else(|| bad("no key"))?;
        let ts = f
            .next()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("no time"))?;
        let amount = f
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad("no amount"))?;
        Ok(Parsed {
            key: key.to_string(),
            ts,
            amount,
        })
    }
    fn serialize(&self, p: &Parsed) -> Result<Option<Bytes>, FormatError> {
        Ok(Some(Bytes::from(format!(
            "{},{},{}",
            p.key, p.ts, p.amount
        ))))
    }
}

/// Writes a window count as `key,window_start,count`.
struct WindowCsv;

impl Format<Windowed<String, u64>> for WindowCsv {
    fn deserialize(&self, _: Option<&[u8]>) -> Result<Windowed<String, u64>, FormatError> {
        Err(FormatError {
            format: "window-csv",
            message: "write only".into(),
        })
    }
    fn serialize(&self, w: &Windowed<String, u64>) -> Result<Option<Bytes>, FormatError> {
        Ok(Some(Bytes::from(format!(
            "{},{},{}",
            w.key, w.window.start, w.value
        ))))
    }
}

/// Runs the pipeline until the process is killed. Logs at `STROM_CHILD_LOG`
/// (a tracing filter; default `warn`) to the child's log file.
pub fn run(args: &ChildArgs) -> Result<()> {
    let filter = std::env::var("STROM_CHILD_LOG").unwrap_or_else(|_| "warn".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut kafka = KafkaConfig::new(&args.bootstrap, &args.app)
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        for p in &args.properties {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--property {p}: expected key=value"))?;
            kafka = kafka.set(k, v);
        }
        let config = PipelineConfig::default()
            .checkpoint_interval(Duration::from_millis(args.checkpoint_ms))
            .parallelism(args.parallelism);
        let guarantee = if args.guarantee == "eos" {
            DeliveryGuarantee::ExactlyOnce
        } else {
            DeliveryGuarantee::AtLeastOnce
        };
        let a = args.clone();
        KafkaJob::new(kafka, config)
            .run(move |p: &Pipeline, k: &KafkaScope| {
                let source = k.source().topics([a.input.clone()]);
                let sink = || {
                    k.sink::<Out>(&a.output)
                        .format(OutValue)
                        .key(|o: &Out| Some(o.key.clone()))
                        .delivery(guarantee)
                };
                match a.pipeline.as_str() {
                    "passthrough" => p
                        .source(
                            source.format(Raw).with_metadata(),
                            WatermarkStrategy::no_watermarks(),
                        )
                        .map(|m| Out {
                            key: m.key.unwrap_or_default(),
                            value: m.value,
                        })
                        .sink(sink()),
                    "filtermap" => p
                        .source(source.format(Csv), WatermarkStrategy::no_watermarks())
                        .filter(|r| r.amount < KEEP_BELOW)
                        .map(|r| Out {
                            value: Bytes::from(format!("{},{},{}", r.key, r.ts, r.amount * 2)),
                            key: Bytes::from(r.key),
                        })
                        .sink(sink()),
                    "count" => p
                        .source(
                            source.format(Csv),
                            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
                                OUT_OF_ORDER_MS as u64,
                            ))
                            .with_timestamp(|r: &Parsed| r.ts),
                        )
                        .key_by_source_partition(|r| r.key.clone())
                        .window(Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)))
                        .aggregate(Count)
                        .sink(
                            k.sink(&a.output)
                                .format(WindowCsv)
                                .key(|w: &Windowed<String, u64>| Some(Bytes::from(w.key.clone())))
                                .delivery(guarantee),
                        ),
                    "sliding" => p
                        .source(
                            source.format(Csv),
                            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
                                OUT_OF_ORDER_MS as u64,
                            ))
                            .with_timestamp(|r: &Parsed| r.ts),
                        )
                        .map(|r| (region(&r.key), r.amount))
                        .key_by(|t: &(String, u64)| t.0.clone())
                        .window(Windows::sliding(
                            Duration::from_millis(SLIDING_SIZE_MS as u64),
                            Duration::from_millis(SLIDING_SLIDE_MS as u64),
                        ))
                        .aggregate(Sum::of(|t: &(String, u64)| t.1))
                        .sink(
                            k.sink(&a.output)
                                .format(WindowCsv)
                                .key(|w: &Windowed<String, u64>| Some(Bytes::from(w.key.clone())))
                                .delivery(guarantee),
                        ),
                    "join" => {
                        let bounded = || {
                            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
                                OUT_OF_ORDER_MS as u64,
                            ))
                            .with_timestamp(|r: &Parsed| r.ts)
                        };
                        let orders = p
                            .source(source.format(Csv), bounded())
                            .key_by_source_partition(|r| r.key.clone());
                        let payments = p
                            .source(
                                k.source().topics([a.payments.clone()]).format(Csv),
                                bounded(),
                            )
                            .key_by_source_partition(|r| r.key.clone());
                        orders
                            .interval_join(payments, JOIN_LOWER_MS, JOIN_UPPER_MS, |o, pay| Out {
                                key: Bytes::from(o.key.clone()),
                                value: Bytes::from(joined(
                                    &o.key,
                                    (o.ts, o.amount),
                                    (pay.ts, pay.amount),
                                )),
                            })
                            .sink(sink())
                    }
                    other => {
                        return Err(engine::EngineError::InvalidPipeline(format!(
                            "unknown pipeline {other}"
                        )));
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })
}
