//! `strom consume`: records to stdout.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use kafka_wire::client::consumer::Consumer;

use super::Cli;

/// `strom consume`'s own flags; `None` and `false` leave the properties in charge.
pub(super) struct ConsumeFlags {
    pub(super) from_beginning: bool,
    pub(super) max_messages: Option<usize>,
    pub(super) idle_timeout: Duration,
    pub(super) isolation: Option<IsolationLevel>,
    pub(super) print_key: bool,
}

pub(super) async fn consume(cli: &Cli, topic: &str, flags: ConsumeFlags) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::from_properties(&cli.properties()?)?;
    if flags.from_beginning {
        config.auto_offset_reset = OffsetReset::Earliest;
    }
    if let Some(level) = flags.isolation {
        config.isolation_level = level;
    }
    let isolation = config.isolation_level;
    let mut consumer = Consumer::new(config).await?;
    let partitions = consumer.client().topic(topic).await?.partitions.len() as i32;
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0usize;
    let limit = flags.max_messages.unwrap_or(usize::MAX);
    while count < limit {
        let records = consumer.poll_for(flags.idle_timeout).await?;
        if records.is_empty() {
            out.flush()?;
            if let Err(e) = caught_up(&consumer, topic, partitions, isolation, flags.idle_timeout) {
                eprintln!("consumed {count} records from {topic}");
                return Err(e);
            }
            break;
        }
        for r in records {
            if count >= limit {
                break;
            }
            let value = r
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            if flags.print_key {
                let key = r
                    .key
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                writeln!(out, "{key}\t{value}")?;
            } else {
                writeln!(out, "{value}")?;
            }
            count += 1;
        }
        out.flush()?;
    }
    eprintln!("consumed {count} records from {topic}");
    consumer.close().await;
    Ok(())
}

/// After `idle` without a record: Ok when every partition was fetched and its
/// position reached the end (the high watermark, or the last stable offset under
/// read_committed), so the topic simply had nothing new; otherwise the error that
/// kept the consumer from reading.
fn caught_up(
    consumer: &Consumer,
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
    idle: Duration,
) -> anyhow::Result<()> {
    if let Some(e) = consumer.last_error() {
        bail!("reading {topic} failed for {} ms: {e}", idle.as_millis());
    }
    for p in 0..partitions {
        let Some(o) = consumer.partition_offsets(topic, p) else {
            continue;
        };
        let end = match isolation {
            IsolationLevel::ReadCommitted if o.last_stable_offset >= 0 => o.last_stable_offset,
            _ => o.high_watermark,
        };
        match o.position {
            _ if o.high_watermark < 0 => bail!(
                "no fetch of {topic}-{p} was answered within {} ms",
                idle.as_millis()
            ),
            Some(position) if position < end => bail!(
                "{topic}-{p} stayed at offset {position} below its end offset {end} for {} ms",
                idle.as_millis()
            ),
            None => bail!(
                "{topic}-{p} has no position after {} ms (offset reset not answered)",
                idle.as_millis()
            ),
            Some(_) => {}
        }
    }
    Ok(())
}
