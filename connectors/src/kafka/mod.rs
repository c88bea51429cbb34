//! Kafka sources and sinks, and the job runner that makes every checkpoint one
//! Kafka transaction.
//!
//! ```text
//!  KafkaJob::run(define)                                   one process of the pipeline
//!    group consumer ──fetch task──► KafkaSource splits ──► operators ──► KafkaSink ─┐
//!         ▲                          (one per partition)     (state)                 │
//!         │ committed offsets                                                        ▼
//!    checkpoint n = one transaction: sink records up to barrier n + changelog of the
//!                   state changed since n-1 + dead letters + offsets at barrier n
//! ```
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | [`KafkaConfig`]: Java property names plus `application.id`, `strom.instance` |
//! | `message.rs` | [`KafkaMessage`]; the value formats ([`Format`]: raw, UTF-8, JSON) are [`crate::format`], re-exported here |
//! | `scope.rs` | [`KafkaScope`]: what the sources, sinks and store of a job share |
//! | `source.rs`, `fetch.rs` | [`KafkaSource`] and its splits; the fetch task |
//! | `sink.rs` | [`KafkaSink`] |
//! | `repartition.rs` | [`KafkaScope::key_by`]: a repartition topic between two stages, with watermark markers |
//! | `writer.rs` | the process's one producer and the commit of a checkpoint |
//! | `changelog.rs`, `topics.rs` | state in compacted changelog topics; internal topics |
//! | `store.rs` | the checkpoint store: the transaction of a checkpoint |
//! | `job.rs` | [`KafkaJob`]: incarnations, rebalances, rollbacks, stop |

mod changelog;
mod config;
mod fetch;
mod job;
mod message;
mod repartition;
mod scope;
mod sink;
mod source;
mod store;
mod topics;
mod writer;

pub use crate::format::{Codec, Format, FormatError, Json, Raw, Utf8};
pub use config::KafkaConfig;
pub use job::{JobEnd, JobReport, KafkaJob, Restore, StopHandle};
pub use message::KafkaMessage;
pub use scope::KafkaScope;
pub use sink::{DeliveryGuarantee, KafkaSink};
pub use source::{BadRecordPolicy, KafkaSource};
