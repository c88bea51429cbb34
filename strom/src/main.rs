//! The `strom` binary: runs pipelines and works as a Kafka command-line tool.
//!
//! `run FILE.sql` runs a pipeline written in Flink-dialect SQL (see the `sql`
//! crate) and `explain FILE.sql` prints its operator graph. The Kafka tool half,
//! on strom's own client: `topics` (list, describe, create, delete, alter-config,
//! delete-records), `groups` (list, describe with lag, delete, reset and delete
//! offsets), `txns` (list, describe, find-hanging, abort), `cluster describe`,
//! `produce` (lines from stdin or a file, with keys, headers and a rate) and
//! `consume` (to stdout as values, a format string or JSON; from partitions or in
//! a consumer group).
//! Every command takes `--bootstrap` (or `KAFKA_BOOTSTRAP`) and `--config FILE`, a
//! Java-style `.properties` file whose keys use the Java client's names.

mod cli;
mod http;
mod pipeline;

use clap::Parser;

use std::process::ExitCode;

/// Records, rows and their values are small, short-lived allocations freed on
/// other threads than the ones that made them; jemalloc serves them with less
/// CPU than glibc's malloc (`bench/engines/RESULTS.md`, 2026-12-05).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr);
    match args.log_format() {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli::run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match cli::advice(&e) {
                Some(hint) => eprintln!("error: {} (hint: {hint})", cli::one_line(&e)),
                None => eprintln!("error: {}", cli::one_line(&e)),
            }
            ExitCode::FAILURE
        }
    }
}
