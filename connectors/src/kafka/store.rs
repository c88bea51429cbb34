//! The checkpoint store of a Kafka job: completing checkpoint n commits one
//! transaction (exactly-once) holding the sinks' records up to barrier n (already
//! sent by the sinks), the state changes since n-1 (changelog.rs), the dead
//! letters read before barrier n, and the input offsets at barrier n.

use std::sync::Arc;

use bytes::Bytes;
use engine::{Checkpoint, CheckpointStore, EngineError, ErrorClass, StoreFuture};
use kafka_wire::client::ProducerRecord;
use kafka_wire::client::admin::Admin;
use kafka_wire::records::Header;

use super::changelog::Changelog;
use super::scope::{DeadLetterRecord, Incarnation};

/// See the module doc.
pub(crate) struct KafkaCheckpointStore {
    pub incarnation: Arc<Incarnation>,
    pub changelog: Arc<Changelog>,
    pub admin: Admin,
}

/// A dead letter as the record written to its topic: the original key, value and
/// headers, plus headers naming the error and the record's origin.
pub(crate) fn dead_letter_record(d: DeadLetterRecord) -> ProducerRecord {
    let mut headers = d.headers;
    let text = |s: String| Some(Bytes::from(s));
    headers.push(Header::new("strom.error", text(d.error)));
    headers.push(Header::new("strom.source.topic", text(d.source.0.clone())));
    headers.push(Header::new(
        "strom.source.partition",
        text(d.source.1.to_string()),
    ));
    headers.push(Header::new(
        "strom.source.offset",
        text(d.offset.to_string()),
    ));
    ProducerRecord {
        topic: d.topic,
        key: d.key,
        value: d.value,
        headers,
        timestamp: (d.timestamp >= 0).then_some(d.timestamp),
        ..Default::default()
    }
}

impl CheckpointStore for KafkaCheckpointStore {
    fn write(&self, checkpoint: Arc<Checkpoint>) -> StoreFuture {
        let incarnation = self.incarnation.clone();
        let changelog = self.changelog.clone();
        let admin = self.admin.clone();
        Box::pin(async move {
            let id = checkpoint.id;
            let offsets = incarnation.take_positions(id);
            let (mut records, pending) = changelog.diff(&checkpoint);
            if !records.is_empty() {
                let topics: std::collections::BTreeSet<String> =
                    records.iter().map(|r| r.topic.clone()).collect();
                let uids = checkpoint
                    .operators
                    .keys()
                    .filter_map(|op| checkpoint.uids.get(op))
                    .filter(|uid| topics.contains(&changelog.topic(uid)));
                changelog.ensure_topics(&admin, uids).await.map_err(|e| {
                    EngineError::external(
                        format!("checkpoint {id}: changelog topics"),
                        e,
                        ErrorClass::Retriable,
                    )
                })?;
            }
            metrics::counter!("strom_changelog_bytes_total").increment(pending.bytes as u64);
            records.extend(
                incarnation
                    .take_dead_letters(Some(&offsets))
                    .into_iter()
                    .map(dead_letter_record),
            );
            tracing::debug!(
                checkpoint = id.0,
                ?offsets,
                state_records = records.len(),
                "committing checkpoint"
            );
            incarnation.writer.commit(id, records, &offsets).await?;
            changelog.committed(pending);
            tracing::debug!(
                checkpoint = id.0,
                partitions = offsets.len(),
                "checkpoint committed"
            );
            Ok(())
        })
    }
}
