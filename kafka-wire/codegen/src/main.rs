//! Generator for kafka-wire's message codecs.
//!
//! Reads a folder of Kafka JSON message specs and writes one Rust module per message.

fn main() {
    eprintln!("usage: kafka-wire-codegen <messages-dir> <out-dir>");
    std::process::exit(2);
}
