//! `strom consume`: records to stdout, from assigned partitions or as a member
//! of a consumer group that commits what it printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use kafka_wire::client::consumer::{Consumer, ConsumerRecord};
use kafka_wire::client::group::GroupConsumer;

use super::Cli;
use super::output::RecordOutput;

/// Where `strom consume` starts reading each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartAt {
    /// The log start offset.
    Beginning,
    /// The log end offset (only records written from now on).
    End,
    /// This offset in every partition.
    Offset(i64),
    /// This many records before the end of every partition.
    BeforeEnd(i64),
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    /// `beginning`|`earliest`, `end`|`latest`, an offset `N`, `-N` (N before the
    /// end), `@MS` (epoch milliseconds) or a UTC date-time `2026-12-03T10:00:00[.SSS][Z]`.
    fn from_str(s: &str) -> Result<StartAt, String> {
        let s = s.trim();
        match s {
            "beginning" | "earliest" => return Ok(StartAt::Beginning),
            "end" | "latest" => return Ok(StartAt::End),
            _ => {}
        }
        if let Some(ms) = s.strip_prefix('@') {
            return ms
                .parse()
                .map(StartAt::Time)
                .map_err(|_| format!("{s:?}: expected @ followed by epoch milliseconds"));
        }
        if let Some(n) = s.strip_prefix('-') {
            if let Ok(n) = n.parse::<i64>() {
                return Ok(StartAt::BeforeEnd(n));
            }
        }
        if let Ok(n) = s.parse::<i64>() {
            return Ok(StartAt::Offset(n));
        }
        sql::time::parse_timestamp(s).map(StartAt::Time).ok_or_else(|| {
            format!(
                "{s:?}: expected beginning, end, an offset, -N, @epoch-ms or a UTC time like 2026-12-03T10:00:00Z"
            )
        })
    }
}

/// `strom consume`'s own flags; `None` and `false` leave the properties in charge.
pub(super) struct ConsumeFlags {
    pub(super) from_beginning: bool,
    pub(super) from: Option<StartAt>,
    pub(super) partitions: Vec<i32>,
    pub(super) group: Option<String>,
    pub(super) max_messages: Option<usize>,
    pub(super) idle_timeout: Duration,
    pub(super) isolation: Option<IsolationLevel>,
    pub(super) output: RecordOutput,
}

pub(super) async fn consume(cli: &Cli, topic: &str, flags: ConsumeFlags) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::from_properties(&cli.properties()?)?;
    let from = match (flags.from_beginning, flags.from) {
        (true, Some(f)) if f != StartAt::Beginning => {
            bail!("--from-beginning and --from {f:?} contradict each other: give one")
        }
        (true, _) => Some(StartAt::Beginning),
        (false, f) => f,
    };
    match from {
        Some(StartAt::Beginning) => config.auto_offset_reset = OffsetReset::Earliest,
        Some(StartAt::End) => config.auto_offset_reset = OffsetReset::Latest,
        _ => {}
    }
    if let Some(level) = flags.isolation {
        config.isolation_level = level;
    }
    if let Some(group) = &flags.group {
        config.group_id = Some(group.clone());
    }
    // Exactly the printed records are committed, below.
    config.enable_auto_commit = false;
    match config.group_id.clone() {
        Some(group) => {
            if !flags.partitions.is_empty() {
                bail!(
                    "--partition cannot be combined with a group ({group}): the group assigns partitions"
                );
            }
            if let Some(f @ (StartAt::Offset(_) | StartAt::BeforeEnd(_) | StartAt::Time(_))) = from
            {
                bail!(
                    "--from {f:?} cannot be combined with a group ({group}): move its offsets with `strom groups reset-offsets`"
                );
            }
            consume_in_group(config, topic, &group, &flags).await
        }
        None => consume_assigned(config, topic, from, &flags).await,
    }
}

/// Prints records until `--max-messages`, or until the idle timeout passes with
/// every partition at its end.
async fn consume_assigned(
    config: ConsumerConfig,
    topic: &str,
    from: Option<StartAt>,
    flags: &ConsumeFlags,
) -> anyhow::Result<()> {
    let isolation = config.isolation_level;
    let mut consumer = Consumer::new(config).await?;
    let count = consumer.client().topic(topic).await?.partitions.len() as i32;
    let partitions: Vec<i32> = if flags.partitions.is_empty() {
        (0..count).collect()
    } else {
        if let Some(p) = flags.partitions.iter().find(|p| !(0..count).contains(*p)) {
            bail!("{topic} has no partition {p} (it has {count})");
        }
        flags.partitions.clone()
    };
    consumer.assign(partitions.iter().map(|&p| (topic.to_string(), p)));
    let all = || partitions.iter().map(|&p| (topic.to_string(), p));
    match from {
        Some(StartAt::Offset(offset)) => {
            for p in &partitions {
                consumer.seek(topic, *p, offset);
            }
        }
        Some(StartAt::BeforeEnd(n)) => {
            consumer.seek_to_end(all()).await?;
            for p in &partitions {
                if let Some(end) = consumer.position(topic, *p).await? {
                    consumer.seek(topic, *p, (end - n).max(0));
                }
            }
        }
        Some(StartAt::Time(ms)) => consumer.seek_to_timestamp(all(), ms).await?,
        Some(StartAt::Beginning | StartAt::End) | None => {}
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0usize;
    let limit = flags.max_messages.unwrap_or(usize::MAX);
    while count < limit {
        let records = consumer.poll_for(flags.idle_timeout).await?;
        if records.is_empty() {
            out.flush()?;
            if let Err(e) = caught_up(&consumer, topic, &partitions, isolation, flags.idle_timeout)
            {
                eprintln!("consumed {count} records from {topic}");
                return Err(e);
            }
            break;
        }
        count += print(&mut out, &flags.output, &records, limit - count)?.len();
    }
    eprintln!("consumed {count} records from {topic}");
    consumer.close().await;
    Ok(())
}

/// As a member of `group`: prints what the group assigns and commits the offset
/// after the last printed record of each partition (after every poll and at the
/// end), then leaves the group.
async fn consume_in_group(
    config: ConsumerConfig,
    topic: &str,
    group: &str,
    flags: &ConsumeFlags,
) -> anyhow::Result<()> {
    let mut consumer = GroupConsumer::new(config).await?;
    consumer.subscribe([topic]);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0usize;
    let limit = flags.max_messages.unwrap_or(usize::MAX);
    let mut idle_since = std::time::Instant::now();
    let result: anyhow::Result<()> = async {
        while count < limit {
            let records = consumer.poll_for(Duration::from_millis(500)).await?;
            if records.is_empty() {
                if idle_since.elapsed() >= flags.idle_timeout {
                    if let Some(e) = consumer.consumer().last_error() {
                        bail!(
                            "reading {topic} in group {group} failed for {} ms: {e}",
                            flags.idle_timeout.as_millis()
                        );
                    }
                    break;
                }
                continue;
            }
            idle_since = std::time::Instant::now();
            let printed = print(&mut out, &flags.output, &records, limit - count)?;
            count += printed.len();
            let mut next: BTreeMap<(String, i32), i64> = BTreeMap::new();
            for r in printed {
                next.insert((r.topic.to_string(), r.partition), r.offset + 1);
            }
            consumer
                .commit_offsets(&next)
                .await
                .with_context(|| format!("committing offsets of group {group}"))?;
        }
        Ok(())
    }
    .await;
    eprintln!("consumed {count} records from {topic} in group {group}");
    consumer
        .close()
        .await
        .with_context(|| format!("leaving group {group}"))?;
    result
}

/// Writes up to `room` records and returns those written.
fn print<'a>(
    out: &mut impl Write,
    output: &RecordOutput,
    records: &'a [ConsumerRecord],
    room: usize,
) -> std::io::Result<&'a [ConsumerRecord]> {
    let printed = &records[..records.len().min(room)];
    for r in printed {
        output.write(out, r)?;
    }
    out.flush()?;
    Ok(printed)
}

/// After `idle` without a record: Ok when every partition was fetched and its
/// position reached the end (the high watermark, or the last stable offset under
/// read_committed), so the topic simply had nothing new; otherwise the error that
/// kept the consumer from reading.
fn caught_up(
    consumer: &Consumer,
    topic: &str,
    partitions: &[i32],
    isolation: IsolationLevel,
    idle: Duration,
) -> anyhow::Result<()> {
    if let Some(e) = consumer.last_error() {
        bail!("reading {topic} failed for {} ms: {e}", idle.as_millis());
    }
    for &p in partitions {
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
