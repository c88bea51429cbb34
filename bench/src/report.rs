//! The Markdown report: machine facts, settings, the table with ratios to
//! librdkafka, and the targets strom is held to.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::common::{Measured, Workload};
use crate::{ClientKind, Phase};

const MIB: f64 = 1_048_576.0;

/// Facts about the machine and broker at the start of a run.
#[derive(Debug, Clone)]
pub struct Machine {
    date: String,
    nproc: usize,
    load_at_start: String,
    cpu: String,
    broker: String,
    source: String,
}

impl Machine {
    /// Reads them now.
    pub fn now(root: &Path) -> Machine {
        Machine {
            date: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_at_start: Self::load_average(),
            cpu: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split_once(':'))
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap_or_else(|| "unknown".into()),
            broker: broker_version(root),
            source: source_state(root),
        }
    }

    /// When the run started.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// The report's machine, broker and client lines (Markdown bullets).
    pub fn bullets(&self, load_at_end: &str, bootstrap: &str) -> String {
        format!(
            "- Machine: {} CPUs (`nproc`), {}; load average (1/5/15 min) at start {}, at end {}\n\
             - Broker: {} at {}\n\
             - strom client: {}\n",
            self.nproc,
            self.cpu,
            self.load_at_start,
            load_at_end,
            self.broker,
            bootstrap,
            self.source
        )
    }

    /// The 1, 5 and 15 minute load averages.
    pub fn load_average() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    }
}

/// The commit the repository is at and whether `kafka-wire/` has uncommitted
/// changes (the bench builds against the working tree).
fn source_state(root: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--", "kafka-wire"]).unwrap_or_default();
    if dirty.is_empty() {
        format!("kafka-wire at commit {head}")
    } else {
        format!("kafka-wire at commit {head} plus uncommitted working-tree changes in kafka-wire/")
    }
}

/// The Apache Kafka version of the running broker, read from the JVM's classpath
/// (`.../kafka-X.Y.Z/libs/*`, as `scripts/kafka` lays it out), else the version
/// `scripts/kafka` pins.
fn broker_version(root: &Path) -> String {
    let from_proc = std::fs::read_dir("/proc").ok().and_then(|dir| {
        dir.filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("kafka.Kafka"))
            .find_map(|c| {
                let i = c.find("/kafka-")?;
                let rest = &c[i + "/kafka-".len()..];
                let end = rest.find('/')?;
                Some(rest[..end].to_string())
            })
    });
    if let Some(v) = from_proc {
        return format!("Apache Kafka {v} (KRaft, 1 node; from the broker's classpath)");
    }
    let pinned = std::fs::read_to_string(root.join("scripts/kafka"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("KAFKA_VERSION="))
                .and_then(|l| l.rsplit_once(":-"))
                .map(|(_, v)| v.trim_end_matches(['}', '"']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("Apache Kafka {pinned} (as pinned by scripts/kafka; not read from the broker)")
}

/// One client phase.
#[derive(Debug, Clone)]
pub struct Row {
    client: ClientKind,
    phase: Phase,
    result: std::result::Result<(Measured, f64), String>,
    /// The broker's CPU seconds over the client's run, when it could be read.
    broker_cpu: Option<f64>,
}

impl Row {
    /// A completed run and its CPU seconds.
    pub fn ok(
        client: ClientKind,
        phase: Phase,
        m: Measured,
        cpu: f64,
        broker_cpu: Option<f64>,
    ) -> Row {
        Row {
            client,
            phase,
            result: Ok((m, cpu)),
            broker_cpu,
        }
    }

    /// A failed run.
    pub fn failed(client: ClientKind, phase: Phase, why: String) -> Row {
        Row {
            client,
            phase,
            result: Err(why),
            broker_cpu: None,
        }
    }

    fn rate(&self) -> Option<f64> {
        self.result
            .as_ref()
            .ok()
            .map(|(m, _)| m.records as f64 / m.secs)
    }

    fn cpu_per_m(&self) -> Option<f64> {
        self.result
            .as_ref()
            .ok()
            .map(|(m, cpu)| cpu / (m.records as f64 / 1e6))
    }
}

fn note(client: ClientKind, phase: Phase, w: &Workload) -> &'static str {
    match (client, phase) {
        (ClientKind::Strom, Phase::Produce) if w.strom_collector => {
            "idempotent; `Producer::send` per record, every `DeliveryFuture` awaited by a collector task (`FuturesUnordered`)"
        }
        (ClientKind::Strom, Phase::Produce) => {
            "idempotent; `Producer::send` per record, every `DeliveryFuture` checked on the sending task (oldest first, then awaited in order after `flush`)"
        }
        (ClientKind::Rdkafka, Phase::Produce) => {
            "idempotent; `BaseProducer` + delivery callback, `poll` on QUEUE_FULL and every 1,000 sends (latency includes the wait for `poll`)"
        }
        (ClientKind::Rskafka, Phase::Produce) => {
            "**not idempotent** (rskafka has none); no linger: the bench hands `PartitionClient::produce` batch.size of values per request, 1 in flight per partition; latency per request"
        }
        (ClientKind::RskafkaBatching, Phase::Produce) => {
            "**not idempotent**; `BatchProducer` per partition (linger.ms, batch.size), `produce` per record from one task, round robin, futures awaited through `FuturesUnordered`"
        }
        (ClientKind::RskafkaBatching, Phase::Consume) => {
            "`StreamConsumer` per partition (1 MiB per fetch), records polled one by one from the merged streams"
        }
        (ClientKind::Java, Phase::Produce) => {
            "idempotent; the tool's own figures; CPU includes JVM start-up and JIT"
        }
        (ClientKind::Strom, Phase::Consume) => "`assign` + `poll_batches`",
        (ClientKind::Rdkafka, Phase::Consume) => "`BaseConsumer` `assign` + `poll` per message",
        (ClientKind::Rskafka, Phase::Consume) => {
            "`fetch_records` 1 MiB per partition, 1 request in flight per partition"
        }
        (ClientKind::Java, Phase::Consume) => {
            "subscribe (group); time = `fetch.time.ms` (group join left out); CPU includes JVM start-up, JIT and the join"
        }
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

/// The report section for one run.
pub fn render(
    machine: &Machine,
    load_at_end: &str,
    w: &Workload,
    command: &[String],
    consume_topic: Option<&str>,
    rows: &[Row],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Run of {}\n", machine.date);
    let _ = writeln!(
        s,
        "- Command: `cargo run --release --manifest-path bench/Cargo.toml -- {}`",
        command.join(" ")
    );
    s.push_str(&machine.bullets(load_at_end, &w.bootstrap));
    if w.security.is_secured() {
        let _ = writeln!(s, "- Transport: {}", w.security.label());
    }
    let _ = writeln!(
        s,
        "- Workload: {} records of {} bytes (random A-Z, no key), acks=all, lz4, linger.ms={}, batch.size={}, fresh topic of {} partitions per producer (broker default replication); every consumer reads back {}",
        w.records,
        w.record_size,
        w.linger_ms,
        w.batch_size,
        w.partitions,
        consume_topic.map_or("(no consume phase)".to_string(), |t| format!(
            "the same topic `{t}` from the beginning until {} records",
            w.records
        ))
    );
    let _ = writeln!(
        s,
        "- CPU = the client process's user+system seconds over its whole life (start-up included), from the parent's children counters; broker CPU = the broker process's user+system seconds over the same span (`/proc/<pid>/stat` of the process listening on the bootstrap port; includes anything else the broker did meanwhile); MB = 2^20 bytes of values\n"
    );

    let _ = writeln!(
        s,
        "| client | phase | records | time s | records/s | MB/s | CPU s / M records | broker CPU s / M | client+broker CPU s / M | p50 ms | p99 ms | records/s vs librdkafka | CPU/record vs librdkafka | notes |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let reference = |phase: Phase| {
        rows.iter()
            .find(|r| r.client == ClientKind::Rdkafka && r.phase == phase && r.result.is_ok())
    };
    for phase in [Phase::Produce, Phase::Consume] {
        let rf = reference(phase);
        for r in rows.iter().filter(|r| r.phase == phase) {
            let phase_name = match phase {
                Phase::Produce => "produce",
                Phase::Consume => "consume",
            };
            match &r.result {
                Ok((m, cpu)) => {
                    let rate = m.records as f64 / m.secs;
                    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                        _ => "n/a".into(),
                    };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.3} | {} | {} | {} | {} | {} | {} | {} |",
                        r.client.name(),
                        phase_name,
                        m.records,
                        m.secs,
                        rate,
                        m.bytes as f64 / MIB / m.secs,
                        cpu / (m.records as f64 / 1e6),
                        fmt_opt(r.broker_cpu.map(|b| b / (m.records as f64 / 1e6)), 3),
                        fmt_opt(
                            r.broker_cpu.map(|b| (cpu + b) / (m.records as f64 / 1e6)),
                            3
                        ),
                        fmt_opt(m.p50_ms, 1),
                        fmt_opt(m.p99_ms, 1),
                        ratio(r.rate(), rf.and_then(Row::rate)),
                        ratio(r.cpu_per_m(), rf.and_then(Row::cpu_per_m)),
                        note(r.client, phase, w)
                    );
                }
                Err(why) => {
                    let first = why.lines().next().unwrap_or("").replace('|', "/");
                    let _ = writeln!(
                        s,
                        "| {} | {} | FAILED | | | | | | | | | | | {} |",
                        r.client.name(),
                        phase_name,
                        first
                    );
                }
            }
        }
    }

    let _ = writeln!(s, "\nTargets (measured, not asserted):\n");
    let get = |c: ClientKind, p: Phase| rows.iter().find(|r| r.client == c && r.phase == p);
    for phase in [Phase::Produce, Phase::Consume] {
        let name = match phase {
            Phase::Produce => "producer",
            Phase::Consume => "consumer",
        };
        let st = get(ClientKind::Strom, phase);
        let rd = get(ClientKind::Rdkafka, phase);
        let rs = get(ClientKind::Rskafka, phase);
        let rb = get(ClientKind::RskafkaBatching, phase);
        let check =
            |label: String, a: Option<f64>, b: Option<f64>, want: f64, ge: bool| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => {
                    let x = a / b;
                    let met = if ge { x >= want } else { x <= want };
                    format!(
                        "- {label}: {x:.2}x ({})\n",
                        if met { "met" } else { "NOT met" }
                    )
                }
                _ => format!("- {label}: not measured\n"),
            };
        s.push_str(&check(
            format!("strom {name} throughput >= librdkafka"),
            st.and_then(Row::rate),
            rd.and_then(Row::rate),
            1.0,
            true,
        ));
        s.push_str(&check(
            format!("strom {name} CPU per record <= 0.7x librdkafka"),
            st.and_then(Row::cpu_per_m),
            rd.and_then(Row::cpu_per_m),
            0.7,
            false,
        ));
        s.push_str(&check(
            format!("strom {name} throughput >= 3x rskafka (PartitionClient, bench-built batches)"),
            st.and_then(Row::rate),
            rs.and_then(Row::rate),
            3.0,
            true,
        ));
        s.push_str(&check(
            format!("strom {name} throughput >= 3x rskafka-batching (record-level API)"),
            st.and_then(Row::rate),
            rb.and_then(Row::rate),
            3.0,
            true,
        ));
    }
    s
}

/// Appends `section` to the results file, creating it with a title if needed.
pub fn append(path: &Path, section: &str) -> Result<()> {
    let mut text = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Client benchmark results\n\nProduced by `bench/` (see bench/README.md). Newest run last.\n\n".to_string()
    });
    if !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(section);
    std::fs::write(path, text)?;
    Ok(())
}
