//! A consumer-group member in its own process, for the tests that kill a member:
//! joins `GROUP` on `TOPIC`, polls, commits after each poll that returned records,
//! and reports on stdout, one line per fact, flushed at once:
//!
//! ```text
//! consumed <value>                        one per record, before the commit
//! report <generation> <pending 0|1> <p,p,...|->   whenever one of these changed
//! ```
//!
//! It never sends LeaveGroup: the test kills it with SIGKILL, and after `RUN_MS`
//! it exits without closing, so either way the coordinator only learns of its
//! end when its session times out.
//!
//! With `HOLD_PREFIX` it stops committing for good once it has consumed a record
//! whose value starts with it, so a kill after that leaves those records
//! uncommitted, for the next owner to consume again.
//!
//! Usage: `group_member BOOTSTRAP GROUP TOPIC STRATEGY RUN_MS [HOLD_PREFIX]`

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka_wire::client::config::ConsumerConfig;
use kafka_wire::client::group::GroupConsumer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (bootstrap, group, topic, strategy, run_ms, hold_prefix) = match args.as_slice() {
        [_, b, g, t, s, r] => (b, g, t, s, r, None),
        [_, b, g, t, s, r, h] => (b, g, t, s, r, Some(h.as_str())),
        _ => bail!("usage: group_member BOOTSTRAP GROUP TOPIC STRATEGY RUN_MS [HOLD_PREFIX]"),
    };
    let run = Duration::from_millis(run_ms.parse().context("RUN_MS")?);
    // The same settings as the in-process members of tests/consumer_groups.rs.
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("group.id".to_string(), group.clone()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ("session.timeout.ms".to_string(), "6000".to_string()),
        ("heartbeat.interval.ms".to_string(), "100".to_string()),
        ("max.poll.interval.ms".to_string(), "10000".to_string()),
        (
            "partition.assignment.strategy".to_string(),
            strategy.clone(),
        ),
    ]);
    let mut consumer = GroupConsumer::new(ConsumerConfig::from_properties(&props)?).await?;
    consumer.subscribe([topic.clone()]);
    let stdout = std::io::stdout();
    let started = Instant::now();
    let mut last_report = String::new();
    let mut holding = false;
    while started.elapsed() < run {
        let records = consumer.poll_for(Duration::from_millis(100)).await?;
        consumer.take_events();
        if !records.is_empty() {
            let mut out = stdout.lock();
            for r in &records {
                let value = String::from_utf8_lossy(r.value.as_deref().context("null value")?);
                holding |= hold_prefix.is_some_and(|h| value.starts_with(h));
                writeln!(out, "consumed {value}")?;
            }
            out.flush()?;
            drop(out);
            // Printed before committed: a kill between the two only causes a
            // redelivery (at least once), never a record committed but unreported.
            // A commit racing a rebalance may be refused; the next owner then
            // consumes those records again.
            if holding {
                // Uncommitted on purpose; see the module doc.
            } else if let Err(e) = consumer.commit().await {
                eprintln!("group_member: commit refused: {e}");
            }
        }
        let partitions: Vec<String> = consumer
            .assignment()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| p.to_string())
            .collect();
        let report = format!(
            "report {} {} {}",
            consumer.generation(),
            u8::from(consumer.rebalance_pending()),
            if partitions.is_empty() {
                "-".to_string()
            } else {
                partitions.join(",")
            }
        );
        if report != last_report {
            let mut out = stdout.lock();
            writeln!(out, "{report}")?;
            out.flush()?;
            last_report = report;
        }
    }
    eprintln!("group_member: ran for {run:?}; exiting without LeaveGroup");
    Ok(())
}
