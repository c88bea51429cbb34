//! `strom run` and `strom explain`: pipelines from SQL files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sql::{RunOptions, SqlJob};

/// Flags of `strom run`.
pub struct RunFlags {
    /// Read what is there and end.
    pub bounded: bool,
    /// Checkpoint interval.
    pub checkpoint_interval: Duration,
    /// Whether to checkpoint early once the sources caught up (`None`: when a
    /// sink is exactly-once).
    pub checkpoint_when_caught_up: Option<bool>,
    /// Operator parallelism.
    pub parallelism: usize,
    /// `application.id` when the Kafka properties do not set one.
    pub application_id: Option<String>,
    /// `strom.instance`.
    pub instance: Option<u32>,
    /// Where the status server listens (`None`: no server).
    pub http_addr: Option<String>,
}

fn compile(file: &Path) -> anyhow::Result<SqlJob> {
    SqlJob::from_file(file).with_context(|| file.display().to_string())
}

/// Prints the operator graph of a SQL file.
pub fn explain(file: &Path) -> anyhow::Result<()> {
    println!("{}", compile(file)?.explain().trim_end());
    Ok(())
}

/// Runs a SQL file until its bounded input ends or SIGTERM/SIGINT (final
/// checkpoint, then exit 0).
pub async fn run(
    file: &Path,
    flags: RunFlags,
    kafka_defaults: BTreeMap<String, String>,
    kafka_overrides: BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let job = compile(file)?;
    let stem = file
        .file_stem()
        .map_or_else(|| "sql".into(), |s| s.to_string_lossy().into_owned());
    let application_id = flags
        .application_id
        .unwrap_or_else(|| format!("strom-{stem}"));
    let status = engine::JobStatus::new(&application_id);
    if let Some(addr) = &flags.http_addr {
        crate::http::serve(addr, vec![status.clone()]).await?;
    }
    let options = RunOptions {
        bounded: flags.bounded,
        checkpoint_interval: flags.checkpoint_interval,
        checkpoint_when_caught_up: flags.checkpoint_when_caught_up,
        parallelism: flags.parallelism,
        application_id,
        instance: flags.instance,
        kafka_defaults,
        kafka_overrides,
        status: Some(status),
    };
    let (stop, watch) = SqlJob::stop_signal();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("strom: stopping (final checkpoint; a second signal exits at once)");
        stop.stop();
        // Ending without the final checkpoint is a crash as far as the output
        // is concerned: the next start resumes from the last one.
        let code = tokio::select! {
            _ = term.recv() => 128 + 15,
            _ = int.recv() => 128 + 2,
        };
        eprintln!("strom: second signal: exiting without a final checkpoint");
        std::process::exit(code);
    });
    let summary = job
        .run(options, watch)
        .await
        .with_context(|| format!("running {}", file.display()))?;
    eprintln!(
        "strom: {} after {} incarnation(s){}",
        if summary.stopped {
            "stopped"
        } else {
            "finished"
        },
        summary.incarnations,
        if summary.last_checkpoint > 0 {
            format!(", last checkpoint #{}", summary.last_checkpoint)
        } else {
            String::new()
        }
    );
    Ok(())
}
