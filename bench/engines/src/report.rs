//! The Markdown section one run appends: a table per pipeline, then the ratios
//! the targets are stated in.

use crate::data::Digest;

/// What one system × pipeline × guarantee measured.
#[derive(Debug, Clone)]
pub struct Row {
    pub system: String,
    pub pipeline: String,
    /// `alo-1s`, `eos-1s`, ...
    pub guarantee: String,
    /// Input records.
    pub records: usize,
    /// Child start to the last expected output record visible (read_committed).
    pub secs: f64,
    /// Child start to the first output record visible.
    pub first_output: Option<f64>,
    /// The child's user + system CPU seconds.
    pub cpu: Option<f64>,
    /// The broker's CPU seconds over the same span.
    pub broker_cpu: Option<f64>,
    /// The child's peak RSS, bytes.
    pub rss: Option<u64>,
    /// What the output held.
    pub got: Digest,
    /// What it had to hold.
    pub expected: Digest,
    /// Why the run failed.
    pub error: Option<String>,
}

impl Row {
    fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Records per second, start-up included.
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.secs
    }

    /// Records per CPU second of the child: throughput per core.
    pub fn per_core(&self) -> Option<f64> {
        self.cpu.map(|c| self.records as f64 / c)
    }

    fn per_million(&self, secs: Option<f64>) -> Option<f64> {
        secs.map(|s| s / (self.records as f64 / 1e6))
    }

    fn check(&self) -> String {
        if let Some(e) = &self.error {
            return format!("FAILED: {e}");
        }
        if self.got == self.expected {
            format!(
                "{} records, checksum {:016x}: as expected",
                self.got.count, self.got.sum
            )
        } else {
            format!(
                "MISMATCH: {} records, checksum {:016x}; expected {}, {:016x}",
                self.got.count, self.got.sum, self.expected.count, self.expected.sum
            )
        }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "{} {} {}: {:.0} records/s, {} CPU s/M, broker {} CPU s/M, peak RSS {} MB, first output {} s; {}",
            self.system,
            self.pipeline,
            self.guarantee,
            self.rate(),
            f2(self.per_million(self.cpu)),
            f2(self.per_million(self.broker_cpu)),
            f0(self.rss.map(|b| b as f64 / 1e6)),
            f2(self.first_output),
            self.check()
        )
    }
}

/// Send-to-visible latency of one system and guarantee (pass-through).
#[derive(Debug, Clone)]
pub struct Latency {
    pub system: String,
    pub guarantee: String,
    /// Median, ms.
    pub p50: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// Records measured.
    pub records: usize,
    /// Why the run failed.
    pub error: Option<String>,
}

/// The run's settings and machine.
pub struct Header {
    pub command: String,
    pub machine: String,
    pub load_before: String,
    pub load_after: String,
    pub records: usize,
    pub keys: u64,
    pub span_secs: i64,
    pub partitions: i32,
    pub parallelism: usize,
    pub java_heap: String,
    pub flink_state_backend: String,
    pub broker_measured: bool,
    /// Records/s of the latency runs.
    pub latency_rate: usize,
    /// Runs of each system × pipeline × guarantee.
    pub repeat: usize,
}

/// Per system and guarantee (in the order they first appear): the run of
/// median records/s, or a failed run if one failed, and every run's records/s.
fn medians<'r>(rows: &[&'r Row]) -> Vec<(&'r Row, Vec<f64>)> {
    let mut groups: Vec<Vec<&Row>> = Vec::new();
    for r in rows {
        match groups
            .iter_mut()
            .find(|g| g[0].system == r.system && g[0].guarantee == r.guarantee)
        {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
        .into_iter()
        .map(|mut g| {
            let rates = g.iter().filter(|r| r.ok()).map(|r| r.rate()).collect();
            let shown = match g.iter().find(|r| !r.ok()) {
                Some(failed) => failed,
                None => {
                    g.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
                    g[(g.len() - 1) / 2]
                }
            };
            (shown, rates)
        })
        .collect()
}

fn f0(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}

fn f2(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// The section appended to RESULTS.md.
pub fn render(h: &Header, rows: &[Row], latencies: &[Latency]) -> String {
    let mut md = format!(
        "\n## {} — {} records, {} keys, {} partitions, parallelism {}\n\n\
         Command: `{}`  \nMachine: {}; load average {} before, {} after.  \n\
         Input: `key,event_time_ms,amount` text values over {} s of event time, 5% out of order by up to 20 s; \
         JVMs with -Xmx{}, Flink state backend {}.{}{}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        h.records,
        h.keys,
        h.partitions,
        h.parallelism,
        h.command,
        h.machine,
        h.load_before,
        h.load_after,
        h.span_secs,
        h.java_heap,
        h.flink_state_backend,
        if h.broker_measured {
            ""
        } else {
            " Broker CPU not measured (no local broker process found)."
        },
        if h.repeat > 1 {
            format!(
                "  \nEach system × pipeline × guarantee ran {} times, in rounds that alternate the guarantees; \
                 each row is the run of median records/s (the lower middle of an even count), and the ratios are of those rows.",
                h.repeat
            )
        } else {
            String::new()
        }
    );
    let mut pipelines: Vec<&str> = Vec::new();
    for r in rows {
        if !pipelines.contains(&r.pipeline.as_str()) {
            pipelines.push(&r.pipeline);
        }
    }
    for pipeline in pipelines {
        let all: Vec<&Row> = rows.iter().filter(|r| r.pipeline == pipeline).collect();
        let shown = medians(&all);
        let runs_column = h.repeat > 1;
        md.push_str(&format!(
            "\n### {pipeline}\n\n| system | guarantee | records/s | CPU s / M records | records / CPU s | broker CPU s / M | peak RSS MB | first output s | output |{}\n|---|---|---|---|---|---|---|---|---|{}\n",
            if runs_column { " records/s of every run |" } else { "" },
            if runs_column { "---|" } else { "" },
        ));
        let of: Vec<&Row> = shown.iter().map(|(r, _)| *r).collect();
        for (r, rates) in &shown {
            let ok = r.ok();
            let runs = if runs_column {
                let listed: Vec<String> = rates.iter().map(|v| format!("{v:.0}")).collect();
                format!(" {} |", listed.join(", "))
            } else {
                String::new()
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |{runs}\n",
                r.system,
                r.guarantee,
                if ok {
                    format!("{:.0}", r.rate())
                } else {
                    "—".into()
                },
                if ok {
                    f2(r.per_million(r.cpu))
                } else {
                    "—".into()
                },
                if ok { f0(r.per_core()) } else { "—".into() },
                if ok {
                    f2(r.per_million(r.broker_cpu))
                } else {
                    "—".into()
                },
                f0(r.rss.map(|b| b as f64 / 1e6)),
                f2(r.first_output),
                r.check()
            ));
        }
        let find = |system: &str, guarantee: &str| {
            of.iter()
                .find(|r| r.system == system && r.guarantee == guarantee && r.ok())
                .copied()
        };
        let mut guarantees: Vec<&str> = Vec::new();
        for r in &of {
            if !guarantees.contains(&r.guarantee.as_str()) {
                guarantees.push(&r.guarantee);
            }
        }
        md.push_str(
            "\n| guarantee | vs | records/s ratio | per-core ratio (target ≥ 5 Flink, ≥ 3 KStreams) | peak RSS ratio (target ≤ 0.10 Flink) |\n|---|---|---|---|---|\n",
        );
        let pairs = [
            ("strom", "flink"),
            ("strom", "kstreams"),
            ("strom-sql", "strom"),
            ("strom-sql", "flink"),
            ("strom-sql", "kstreams"),
        ];
        for g in &guarantees {
            for (system, other) in pairs {
                let (Some(s), Some(o)) = (find(system, g), find(other, g)) else {
                    continue;
                };
                md.push_str(&format!(
                    "| {g} | {system} / {other} | {} | {} | {} |\n",
                    ratio(Some(s.rate()), Some(o.rate())),
                    ratio(s.per_core(), o.per_core()),
                    ratio(s.rss.map(|b| b as f64), o.rss.map(|b| b as f64)),
                ));
            }
        }
        md.push_str("\n| system | exactly-once 1 s / at-least-once 1 s, records/s (target ≥ 0.85) | same, records / CPU s |\n|---|---|---|\n");
        let mut systems: Vec<&str> = Vec::new();
        for r in &of {
            if !systems.contains(&r.system.as_str()) {
                systems.push(&r.system);
            }
        }
        for system in systems {
            if let (Some(e), Some(a)) = (find(system, "eos-1s"), find(system, "alo-1s")) {
                md.push_str(&format!(
                    "| {system} | {} | {} |\n",
                    ratio(Some(e.rate()), Some(a.rate())),
                    ratio(e.per_core(), a.per_core())
                ));
            }
        }
    }
    if !latencies.is_empty() {
        md.push_str(&format!(
            "\n### latency (passthrough, {} records/s, send to visible with read_committed)\n\n| system | guarantee | p50 ms | p99 ms | records |\n|---|---|---|---|---|\n",
            h.latency_rate
        ));
        for l in latencies {
            match &l.error {
                Some(e) => md.push_str(&format!(
                    "| {} | {} | — | — | FAILED: {e} |\n",
                    l.system, l.guarantee
                )),
                None => md.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    l.system,
                    l.guarantee,
                    f0(l.p50),
                    f0(l.p99),
                    l.records
                )),
            }
        }
    }
    md
}
