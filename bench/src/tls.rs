//! TLS against PLAINTEXT: strom and librdkafka produce and consume the same
//! workload over the broker's PLAINTEXT listener and over its SSL listener
//! (mutual TLS with the contract's `admin` certificate) or SASL_SSL listener
//! (`--tls-protocol SASL_SSL`: TLS plus SASL PLAIN as admin), each in its own
//! child process as in the main bench; appends a table to `bench/RESULTS-tls.md`.
//!
//! ```text
//!  for each client: produce over PLAINTEXT, produce over TLS    (a fresh topic each)
//!  for each client: consume one topic over PLAINTEXT, then over TLS
//!  ratios: TLS / PLAINTEXT per client and phase; strom / librdkafka over TLS
//! ```
//!
//! The broker addresses and certificates come from `scripts/kafka up --secure`:
//! the environment variables `KAFKA_BOOTSTRAP`, `KAFKA_SSL_BOOTSTRAP`,
//! `KAFKA_SASL_SSL_BOOTSTRAP` and `KAFKA_CERTS` first, then its env file
//! (`--env-file`, default `$STROM_KAFKA_DIR/env` or `target/kafka/env`). Without
//! `KAFKA_BOOTSTRAP` there, `--bootstrap` is the PLAINTEXT listener.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kafka_wire::client::admin::NewTopic;

use crate::common::{Measured, Security, Workload};
use crate::report::{self, Machine};
use crate::{ClientKind, Phase, Runner, broker_pid, clk_tck, repo_root};

/// `tls` subcommand options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workload; its security flags are set by this command.
    #[command(flatten)]
    workload: Workload,
    /// The secured listener to compare with PLAINTEXT: SSL or SASL_SSL.
    #[arg(long, default_value = "SSL")]
    tls_protocol: String,
    /// The env file of `scripts/kafka up --secure`.
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Clients (strom and rdkafka only), in this order.
    #[arg(long, value_delimiter = ',', default_values = ["strom", "rdkafka"])]
    clients: Vec<ClientKind>,
    /// Skip the consume phase.
    #[arg(long)]
    no_consume: bool,
    /// Keep the topics instead of deleting them at the end.
    #[arg(long)]
    keep_topics: bool,
    /// Where to append the results (Markdown).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS-tls.md"))]
    results: PathBuf,
}

/// PLAINTEXT or the secured listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plaintext,
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Plaintext => "plaintext",
            Transport::Tls => "tls",
        }
    }
}

/// One client phase over one transport: what it measured, its CPU seconds and
/// the broker's, or why it failed.
struct Cell {
    client: ClientKind,
    phase: Phase,
    transport: Transport,
    result: std::result::Result<(Measured, f64, Option<f64>), String>,
}

impl Cell {
    fn rate(&self) -> Option<f64> {
        let (m, _, _) = self.result.as_ref().ok()?;
        Some(m.records as f64 / m.secs)
    }

    fn cpu_per_m(&self) -> Option<f64> {
        let (m, cpu, _) = self.result.as_ref().ok()?;
        Some(cpu / (m.records as f64 / 1e6))
    }

    fn broker_per_m(&self) -> Option<f64> {
        let (m, _, broker) = self.result.as_ref().ok()?;
        broker.map(|b| b / (m.records as f64 / 1e6))
    }
}

/// `KEY=VALUE` lines of the env file, overridden by the same names in the
/// environment.
fn broker_env(args: &Args) -> BTreeMap<String, String> {
    let file = args.env_file.clone().unwrap_or_else(|| {
        std::env::var_os("STROM_KAFKA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/kafka"))
            .join("env")
    });
    let mut vars: BTreeMap<String, String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    for key in [
        "KAFKA_BOOTSTRAP",
        "KAFKA_SSL_BOOTSTRAP",
        "KAFKA_SASL_SSL_BOOTSTRAP",
        "KAFKA_CERTS",
    ] {
        if let Ok(v) = std::env::var(key) {
            vars.insert(key.into(), v);
        }
    }
    vars
}

/// The PLAINTEXT and the secured workloads.
fn workloads(args: &Args) -> Result<(Workload, Workload)> {
    let env = broker_env(args);
    let protocol = args.tls_protocol.trim().to_ascii_uppercase();
    let (address_key, mutual) = match protocol.as_str() {
        "SSL" => ("KAFKA_SSL_BOOTSTRAP", true),
        "SASL_SSL" => ("KAFKA_SASL_SSL_BOOTSTRAP", false),
        other => bail!("--tls-protocol {other}: expected SSL or SASL_SSL"),
    };
    let tls_bootstrap = env.get(address_key).cloned().with_context(|| {
        format!("{address_key} is neither in the environment nor in the env file: start the broker with `scripts/kafka up --secure`")
    })?;
    let certs = PathBuf::from(env.get("KAFKA_CERTS").context("KAFKA_CERTS is not set")?);
    let file = |name: &str| -> Result<PathBuf> {
        let path = certs.join(name);
        anyhow::ensure!(path.is_file(), "{} is missing", path.display());
        Ok(path)
    };
    let mut plaintext = args.workload.clone();
    if let Some(b) = env.get("KAFKA_BOOTSTRAP") {
        plaintext.bootstrap = b.clone();
    }
    plaintext.security = Security {
        security_protocol: "PLAINTEXT".into(),
        ..args.workload.security.clone()
    };
    let mut tls = args.workload.clone();
    tls.bootstrap = tls_bootstrap;
    tls.security = Security {
        security_protocol: protocol,
        ssl_ca: Some(file("ca.pem")?),
        ssl_cert: mutual.then(|| file("admin.pem")).transpose()?,
        ssl_key: mutual.then(|| file("admin.key")).transpose()?,
        ..args.workload.security.clone()
    };
    Ok((plaintext, tls))
}

/// Runs the comparison and appends its report.
pub fn run(args: &Args) -> Result<()> {
    if let Some(c) = args
        .clients
        .iter()
        .find(|c| !matches!(c, ClientKind::Strom | ClientKind::Rdkafka))
    {
        bail!(
            "{}: the TLS comparison runs strom and rdkafka only",
            c.name()
        );
    }
    let (plaintext, tls) = workloads(args)?;
    let machine = Machine::now(&repo_root());
    let pid = broker_pid(&plaintext.bootstrap);
    let run_id = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
    );
    let runner = |w: &Workload| Runner {
        workload: w.clone(),
        broker_pid: pid,
        clk_tck: clk_tck(),
        root: repo_root(),
        run_id: run_id.clone(),
    };
    let runners = [
        (Transport::Plaintext, runner(&plaintext)),
        (Transport::Tls, runner(&tls)),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Topics are made and deleted over PLAINTEXT: only the measured clients use TLS.
    let admin = rt.block_on(crate::strom::admin(&plaintext))?;
    let topic_of =
        |c: ClientKind, t: Transport| format!("bench-tls-{}-{}-{run_id}", c.name(), t.name());

    let mut cells = Vec::new();
    let mut created = Vec::new();
    let mut produced = Vec::new();
    let mut run =
        |client: ClientKind, phase: Phase, transport: Transport, runner: &Runner, topic: &str| {
            let result = runner
                .run(client, phase, topic)
                .map_err(|e| format!("{e:#}"));
            if let Err(e) = &result {
                eprintln!(
                    "[bench] {} {phase:?} over {} failed: {e}",
                    client.name(),
                    transport.name()
                );
            }
            let ok = result.is_ok();
            cells.push(Cell {
                client,
                phase,
                transport,
                result,
            });
            ok
        };
    for &client in &args.clients {
        for (transport, runner) in &runners {
            let topic = topic_of(client, *transport);
            rt.block_on(admin.create_topics(&[NewTopic::new(&topic, plaintext.partitions)]))
                .with_context(|| format!("creating {topic}"))?;
            created.push(topic.clone());
            if run(client, Phase::Produce, *transport, runner, &topic) {
                produced.push((client, *transport));
            }
        }
    }
    let mut consume_topic = None;
    if !args.no_consume {
        let source = produced
            .iter()
            .find(|p| **p == (ClientKind::Rdkafka, Transport::Plaintext))
            .or(produced.first());
        if let Some(&(client, transport)) = source {
            let topic = topic_of(client, transport);
            consume_topic = Some(topic.clone());
            for &client in &args.clients {
                for (transport, runner) in &runners {
                    run(client, Phase::Consume, *transport, runner, &topic);
                }
            }
        }
    }
    if !args.keep_topics
        && let Err(e) = rt.block_on(admin.delete_topics(&created))
    {
        eprintln!("[bench] could not delete topics {created:?}: {e}");
    }

    let command: Vec<String> = std::env::args().skip(1).collect();
    let text = render(
        &machine,
        &command,
        &plaintext,
        &tls,
        consume_topic.as_deref(),
        &cells,
    );
    println!("{text}");
    append(&args.results, &text)?;
    eprintln!("[bench] appended to {}", args.results.display());
    Ok(())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.digits$}"))
}

fn render(
    machine: &Machine,
    command: &[String],
    plaintext: &Workload,
    tls: &Workload,
    consume_topic: Option<&str>,
    cells: &[Cell],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## TLS run of {}\n", machine.date());
    let _ = writeln!(
        s,
        "- Command: `cargo run --release --manifest-path bench/Cargo.toml -- {}`",
        command.join(" ")
    );
    s.push_str(&machine.bullets(&Machine::load_average(), &plaintext.bootstrap));
    let _ = writeln!(
        s,
        "- Transports: PLAINTEXT at {}; {} at {} (CA {})",
        plaintext.bootstrap,
        tls.security.label(),
        tls.bootstrap,
        tls.security
            .ssl_ca
            .as_deref()
            .map_or("system roots".into(), |p| p.display().to_string())
    );
    let _ = writeln!(
        s,
        "- Workload: {} records of {} bytes, acks=all, idempotent, lz4, linger.ms={}, batch.size={}, a fresh topic of {} partitions per client and transport; consumers read {}",
        plaintext.records,
        plaintext.record_size,
        plaintext.linger_ms,
        plaintext.batch_size,
        plaintext.partitions,
        consume_topic.map_or("nothing (no consume phase)".to_string(), |t| format!(
            "`{t}` from the beginning"
        ))
    );
    let _ = writeln!(
        s,
        "- CPU as in the main bench: the client process's user+system seconds (start-up and TLS handshakes included); broker CPU over the same span\n"
    );
    let _ = writeln!(
        s,
        "| client | phase | transport | records/s | MB/s | CPU s / M records | broker CPU s / M | p50 ms | p99 ms |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|");
    let phase_name = |p: Phase| match p {
        Phase::Produce => "produce",
        Phase::Consume => "consume",
    };
    for c in cells {
        let transport = match c.transport {
            Transport::Plaintext => "PLAINTEXT".to_string(),
            Transport::Tls => tls.security.label(),
        };
        match &c.result {
            Ok((m, _, _)) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} |",
                    c.client.name(),
                    phase_name(c.phase),
                    transport,
                    m.records as f64 / m.secs,
                    m.bytes as f64 / 1_048_576.0 / m.secs,
                    opt(c.cpu_per_m(), 3),
                    opt(c.broker_per_m(), 3),
                    opt(m.p50_ms, 1),
                    opt(m.p99_ms, 1)
                );
            }
            Err(why) => {
                // The child's own error line, else the first line (not a backtrace).
                let first = why
                    .lines()
                    .find(|l| l.starts_with("Error: "))
                    .or_else(|| why.lines().next())
                    .unwrap_or("")
                    .replace('|', "/");
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | FAILED: {first} | | | | | |",
                    c.client.name(),
                    phase_name(c.phase),
                    transport
                );
            }
        }
    }
    let get = |client, phase, transport| {
        cells
            .iter()
            .find(|c| c.client == client && c.phase == phase && c.transport == transport)
    };
    let _ = writeln!(
        s,
        "\n| ratio | phase | records/s | client CPU per record | broker CPU per record |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for phase in [Phase::Produce, Phase::Consume] {
        let mut line = |label: String, a: Option<&Cell>, b: Option<&Cell>| {
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {} | {} |",
                phase_name(phase),
                ratio(a.and_then(Cell::rate), b.and_then(Cell::rate)),
                ratio(a.and_then(Cell::cpu_per_m), b.and_then(Cell::cpu_per_m)),
                ratio(
                    a.and_then(Cell::broker_per_m),
                    b.and_then(Cell::broker_per_m)
                ),
            );
        };
        for client in [ClientKind::Strom, ClientKind::Rdkafka] {
            line(
                format!("{} TLS / PLAINTEXT", client.name()),
                get(client, phase, Transport::Tls),
                get(client, phase, Transport::Plaintext),
            );
        }
        line(
            "strom / librdkafka over TLS".into(),
            get(ClientKind::Strom, phase, Transport::Tls),
            get(ClientKind::Rdkafka, phase, Transport::Tls),
        );
        line(
            "strom / librdkafka over PLAINTEXT".into(),
            get(ClientKind::Strom, phase, Transport::Plaintext),
            get(ClientKind::Rdkafka, phase, Transport::Plaintext),
        );
    }
    s
}

fn append(path: &Path, section: &str) -> Result<()> {
    if !path.exists() {
        std::fs::write(
            path,
            "# TLS benchmark results\n\nProduced by `bench/ tls` (see bench/README.md). Newest run last.\n\n",
        )?;
    }
    report::append(path, section)
}
