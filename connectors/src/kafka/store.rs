//! The checkpoint store of a Kafka job: completing checkpoint n commits one
//! transaction (exactly-once) holding the sinks' records up to barrier n (already
//! sent by the sinks), the state changes since n-1 (changelog.rs), the dead
//! letters read before barrier n, and the input offsets at barrier n.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::{Checkpoint, CheckpointStore, EngineError, ErrorClass, StoreFuture};
use kafka_wire::client::ProducerRecord;
use kafka_wire::client::admin::Admin;
use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::records::Header;

use super::changelog::Changelog;
use super::scope::{DeadLetterRecord, Incarnation};
use crate::sync::lock;

/// See the module doc.
pub(crate) struct KafkaCheckpointStore {
    pub incarnation: Arc<Incarnation>,
    pub changelog: Arc<Changelog>,
    pub admin: Admin,
    pub purge: Arc<RepartitionPurge>,
}

/// Deletes from the job's repartition topics what its checkpoints consumed and
/// committed, at most once per interval (`strom.repartition.purge.interval.ms`,
/// as Kafka Streams' `repartition.purge.interval.ms`), so the topics, kept
/// without time-based retention, do not grow without bound.
pub(crate) struct RepartitionPurge {
    topics: Vec<String>,
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl RepartitionPurge {
    pub(crate) fn new(topics: Vec<String>, interval: Duration) -> RepartitionPurge {
        RepartitionPurge {
            topics,
            interval,
            last: Mutex::new(None),
        }
    }

    /// After a commit of `offsets`: deletes the repartition records before them
    /// in the background when a purge is due.
    fn committed(&self, admin: &Admin, offsets: &BTreeMap<TopicPartition, i64>) {
        let due: BTreeMap<TopicPartition, i64> = offsets
            .iter()
            .filter(|((t, _), o)| **o > 0 && self.topics.contains(t))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if due.is_empty() {
            return;
        }
        {
            let mut last = lock(&self.last);
            if last.is_some_and(|t| t.elapsed() < self.interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let admin = admin.clone();
        tokio::spawn(async move {
            match admin.delete_records(&due).await {
                Ok(_) => tracing::debug!(partitions = due.len(), "repartition topics purged"),
                Err(e) => tracing::warn!(error = %e, "purging the repartition topics failed"),
            }
        });
    }
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
        let purge = self.purge.clone();
        Box::pin(async move {
            let id = checkpoint.id;
            let offsets = incarnation.take_positions(id);
            let mut checkpoint = Arc::unwrap_or_clone(checkpoint);
            let (mut records, pending) = changelog.diff(&mut checkpoint);
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
            if !checkpoint.released.is_empty() {
                // Their state and offsets are in this checkpoint; from now on
                // they are another process's.
                changelog.release(&checkpoint.released);
            }
            if !checkpoint.adopted.is_empty() {
                // Their state is the operators' from this checkpoint on: the
                // next one writes their changes.
                changelog.adopted(&checkpoint.adopted);
            }
            purge.committed(&admin, &offsets);
            tracing::debug!(
                checkpoint = id.0,
                partitions = offsets.len(),
                "checkpoint committed"
            );
            Ok(())
        })
    }
}
