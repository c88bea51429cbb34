//! Sources and sinks that connect the strom engine to the outside world:
//! Kafka (through `kafka-wire`), files and stdout. One module per external system.
#![deny(missing_docs)]
