//! The `strom` binary: runs pipelines and works as a Kafka command-line tool.
//!
//! Today it offers the Kafka tool half: `topics` (create, list, describe, delete),
//! `produce` (lines from stdin) and `consume` (to stdout), on strom's own client.
//! Every command takes `--bootstrap` (or `KAFKA_BOOTSTRAP`) and `--config FILE`, a
//! Java-style `.properties` file whose keys use the Java client's names.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args))
}
