//! Throughput benchmark of the engine on synthetic in-process data.
//!
//! ```text
//! cargo bench -p engine --bench throughput            # all scenarios, parallelism 1 and 2
//! cargo bench -p engine --bench throughput -- tumbling 2   # one scenario in this process
//! ```
//! Each scenario runs in a child process so that its peak RSS (VmHWM) is its own.
//! "per core" is events per CPU-second of the whole process (user + system time of
//! every thread: sources, operators, sinks, the runtime).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::*;

#[derive(Clone)]
struct CountSink(Arc<AtomicU64>);

impl<T: Send + 'static> Sink<T> for CountSink {
    async fn write(&mut self, batch: Vec<Record<T>>) -> Result<()> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// 100,000 keys, 10 events per ms of event time, 5% up to 3 s out of order.
fn event(i: u64) -> (u64, i64) {
    let h = mix(i);
    let key = h % 100_000;
    let mut ts = (i / 10) as i64;
    if (h >> 20) % 20 == 0 {
        ts -= ((h >> 32) % 3_000) as i64;
    }
    (key, ts)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the ')' field.
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn run_scenario(name: &str, parallelism: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let sink = CountSink(count.clone());
    let (events, outputs_note) = rt.block_on(async {
        let p = Pipeline::with_config(PipelineConfig::default().parallelism(parallelism));
        let n: u64 = match name {
            "map_filter" => 100_000_000,
            _ => 20_000_000,
        };
        match name {
            "map_filter" => {
                p.source(GeneratorSource::new(|i| i).splits(parallelism).limit(n), WatermarkStrategy::no_watermarks())
                    .map(|x| x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .filter(|x| x & 3 != 0)
                    .sink(sink.clone());
            }
            "tumbling" | "sliding" => {
                let windows = if name == "tumbling" {
                    Windows::tumbling(Duration::from_secs(60))
                } else {
                    Windows::sliding(Duration::from_secs(600), Duration::from_secs(10))
                };
                p.source(
                    GeneratorSource::new(event).splits(parallelism).limit(n),
                    WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                        .with_timestamp(|e: &(u64, i64)| e.1),
                )
                .key_by(|e| e.0)
                .window(windows)
                .aggregate(Count)
                .sink(sink.clone());
            }
            "channel_tokio" | "channel_std" => return (n, String::new()),
            other => panic!("unknown scenario {other}"),
        }
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        p.run().await.unwrap();
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let out = count.load(Ordering::Relaxed);
        println!(
            "{name:<11} p={parallelism}  {:>7.2} M events/s wall  {:>7.2} M events/s per core  (cpu {cpu:.2}s, wall {wall:.2}s, {:.2} cores busy)  peak RSS {:.0} MB  outputs {out}",
            n as f64 / wall / 1e6,
            n as f64 / cpu.max(1e-9) / 1e6,
            cpu / wall,
            peak_rss_mb(),
        );
        (n, String::new())
    });
    let _ = (events, outputs_note);
    if name == "channel_tokio" {
        channel_tokio();
    }
    if name == "channel_std" {
        channel_std();
    }
}

const HANDOFF_RECORDS: u64 = 100_000_000;

/// Batch hand-off cost between two tokio tasks over a bounded tokio channel.
fn channel_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u64>>(4);
        let prod = tokio::spawn(async move {
            let mut i = 0;
            while i < HANDOFF_RECORDS {
                let b: Vec<u64> = (i..i + 1024).collect();
                i += 1024;
                tx.send(b).await.unwrap();
            }
        });
        let mut n = 0u64;
        while let Some(b) = rx.recv().await {
            n += b.len() as u64;
        }
        prod.await.unwrap();
        assert!(n >= HANDOFF_RECORDS);
    });
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "channel     tokio mpsc, tasks:       {:>7.1} M records/s (batches of 1024)",
        HANDOFF_RECORDS as f64 / wall / 1e6
    );
}

/// The same hand-off between two dedicated threads over `std::sync::mpsc::sync_channel`.
fn channel_std() {
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(4);
    let prod = std::thread::spawn(move || {
        let mut i = 0;
        while i < HANDOFF_RECORDS {
            let b: Vec<u64> = (i..i + 1024).collect();
            i += 1024;
            tx.send(b).unwrap();
        }
    });
    let mut n = 0u64;
    while let Ok(b) = rx.recv() {
        n += b.len() as u64;
    }
    prod.join().unwrap();
    assert!(n >= HANDOFF_RECORDS);
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "channel     std sync_channel, threads: {:>7.1} M records/s (batches of 1024)",
        HANDOFF_RECORDS as f64 / wall / 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let [name, p] = args.as_slice() {
        run_scenario(name, p.parse().unwrap_or(1));
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for (name, pars) in [
        ("channel_tokio", &[1usize][..]),
        ("channel_std", &[1][..]),
        ("map_filter", &[1, 2][..]),
        ("tumbling", &[1, 2][..]),
        ("sliding", &[1, 2][..]),
    ] {
        for p in pars {
            let status = std::process::Command::new(&exe)
                .arg(name)
                .arg(p.to_string())
                .status()
                .unwrap();
            assert!(status.success(), "{name} p={p} failed");
        }
    }
}
