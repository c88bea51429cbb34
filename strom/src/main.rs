//! The `strom` binary: runs pipelines and works as a Kafka command-line tool.
//!
//! Subcommands grow with the crates below it; today it reports its version
//! and the crates it was built from.

use clap::{Parser, Subcommand};

/// strom: Kafka stream processing in pure Rust.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of strom.
    Version,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("strom {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
