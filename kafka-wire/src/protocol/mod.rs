//! Kafka's request/response protocol: primitive types, headers, api keys, error codes
//! and the generated message codecs.

pub mod primitives;
