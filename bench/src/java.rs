//! The Java reference tools, run with `scripts/kafka run CLASS ...` (which `exec`s
//! the JVM, so the JVM is the child whose CPU time the parent reads), and their
//! printed summaries parsed.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::common::{Measured, Workload};

fn run(root: &Path, class: &str, args: &[String]) -> Result<String> {
    let out = Command::new(root.join("scripts/kafka"))
        .arg("run")
        .arg(class)
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("running {class}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{class} exited with {}:\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// `ProducerPerformance` with the same settings as the other producers.
pub fn produce(root: &Path, w: &Workload, topic: &str) -> Result<Measured> {
    let mut args: Vec<String> = [
        "--topic",
        topic,
        "--num-records",
        &w.records.to_string(),
        "--record-size",
        &w.record_size.to_string(),
        "--throughput",
        "-1",
        "--producer-props",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        format!("bootstrap.servers={}", w.bootstrap),
        "acks=all".into(),
        "enable.idempotence=true".into(),
        "compression.type=lz4".into(),
        format!("linger.ms={}", w.linger_ms),
        format!("batch.size={}", w.batch_size),
    ]);
    let out = run(root, "org.apache.kafka.tools.ProducerPerformance", &args)?;
    parse_producer(&out, w.record_size)
        .with_context(|| format!("no summary line in ProducerPerformance output:\n{out}"))
}

/// Parses the final summary line, e.g. `500000 records sent, 98502.8 records/sec
/// (9.39 MB/sec), 1583.69 ms avg latency, 2466.00 ms max latency, 1660 ms 50th,
/// 2317 ms 95th, 2420 ms 99th, 2455 ms 99.9th.`
fn parse_producer(out: &str, record_size: usize) -> Option<Measured> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("50th"))?;
    let tokens: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|t| !t.is_empty())
        .collect();
    let before = |word: &str, skip: usize| -> Option<f64> {
        let i = tokens
            .iter()
            .position(|t| *t == word || *t == format!("{word}."))?;
        tokens.get(i.checked_sub(1 + skip)?)?.parse().ok()
    };
    let records: u64 = tokens.first()?.parse().ok()?;
    let rate = before("records/sec", 0)?;
    Some(Measured {
        records,
        bytes: records * record_size as u64,
        secs: records as f64 / rate,
        p50_ms: before("50th", 1),
        p99_ms: before("99th", 1),
    })
}

/// `ConsumerPerformance` (it subscribes with a fresh group, from the earliest offset).
pub fn consume(root: &Path, w: &Workload, topic: &str, group: &str) -> Result<Measured> {
    let args: Vec<String> = [
        "--bootstrap-server",
        &w.bootstrap,
        "--topic",
        topic,
        "--messages",
        &w.records.to_string(),
        "--group",
        group,
        "--timeout",
        "60000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(root, "org.apache.kafka.tools.ConsumerPerformance", &args)?;
    parse_consumer(&out)
        .with_context(|| format!("no stats line in ConsumerPerformance output:\n{out}"))
}

/// Parses the line after the header `start.time, end.time, data.consumed.in.MB,
/// MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms,
/// fetch.MB.sec, fetch.nMsg.sec`. The time used is `fetch.time.ms`: the group join
/// (`rebalance.time.ms`) is left out, as the other consumers assign partitions
/// directly.
fn parse_consumer(out: &str) -> Option<Measured> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("start.time"));
    let header: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let values: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let get = |name: &str| -> Option<f64> {
        let i = header.iter().position(|h| *h == name)?;
        values.get(i)?.parse().ok()
    };
    Some(Measured {
        records: get("data.consumed.in.nMsg")? as u64,
        bytes: (get("data.consumed.in.MB")? * 1_048_576.0) as u64,
        secs: get("fetch.time.ms")? / 1000.0,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_producer_performance_summary() {
        let out = "1000 records sent, 500.0 records/sec (0.05 MB/sec), 3.1 ms avg latency, 9.00 ms max latency.\n\
                   500000 records sent, 98502.8 records/sec (9.39 MB/sec), 1583.69 ms avg latency, 2466.00 ms max latency, 1660 ms 50th, 2317 ms 95th, 2420 ms 99th, 2455 ms 99.9th.\n";
        let m = parse_producer(out, 100).expect("parsed");
        assert_eq!(m.records, 500_000);
        assert_eq!(m.p50_ms, Some(1660.0));
        assert_eq!(m.p99_ms, Some(2420.0));
        assert!((m.secs - 500_000.0 / 98502.8).abs() < 1e-9);
    }

    #[test]
    fn parses_consumer_performance_stats() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                   2026-11-27 00:00:00:000, 2026-11-27 00:00:05:000, 47.6837, 9.5367, 500000, 100000.0, 3000, 2000, 23.8419, 250000.0\n";
        let m = parse_consumer(out).expect("parsed");
        assert_eq!(m.records, 500_000);
        assert_eq!(m.secs, 2.0);
    }
}
