//! strom's streaming runtime.
//!
//! A typed dataflow API (sources, operators, sinks), event time with watermarks,
//! windows, keyed state and the checkpoint barrier flow. Sources and sinks are
//! traits: this crate never talks to Kafka itself.
#![deny(missing_docs)]
