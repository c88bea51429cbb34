//! The `strom` binary: runs pipelines and works as a Kafka command-line tool.
//!
//! `run FILE.sql` runs a pipeline written in Flink-dialect SQL (see the `sql`
//! crate) and `explain FILE.sql` prints its operator graph. The Kafka tool half:
//! `topics` (create, list, describe, delete), `produce` (lines from stdin) and
//! `consume` (to stdout), on strom's own client.
//! Every command takes `--bootstrap` (or `KAFKA_BOOTSTRAP`) and `--config FILE`, a
//! Java-style `.properties` file whose keys use the Java client's names.

mod cli;
mod http;
mod pipeline;

use clap::Parser;

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli::run(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
