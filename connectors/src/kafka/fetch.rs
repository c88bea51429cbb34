//! The fetch task of one incarnation: polls the group consumer and hands each
//! partition's records to its split's bounded queue; stops polling (and tells the
//! runner) as soon as a rebalance is pending, so the open checkpoint can commit
//! under the current generation before the partitions move.

use std::collections::HashMap;
use std::sync::Arc;

use engine::PartitionStatus;
use std::time::Duration;

use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::client::group::{GroupConsumer, RebalanceEvent};
use tokio::sync::{mpsc, watch};

use super::source::Chunk;

/// What the fetch task tells the runner.
#[derive(Debug)]
pub(crate) enum FetchEvent {
    /// A rebalance is pending: stop the job (final checkpoint), then rejoin.
    RebalancePending,
    /// The assignment changed inside a poll (partitions revoked or lost before the
    /// job could checkpoint).
    AssignmentChanged(Vec<RebalanceEvent>),
    /// Fetching failed for good.
    Failed(kafka_wire::Error),
}

/// How long one poll waits for records.
const POLL: Duration = Duration::from_millis(100);

/// Runs until `stop` turns true (or its sender is dropped); returns the consumer.
pub(crate) async fn run(
    mut group: GroupConsumer,
    mut feeds: HashMap<TopicPartition, mpsc::Sender<Chunk>>,
    status: HashMap<TopicPartition, Arc<PartitionStatus>>,
    mut stop: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<FetchEvent>,
) -> GroupConsumer {
    let mut halted = false;
    loop {
        if *stop.borrow() {
            return group;
        }
        if halted {
            if stop.changed().await.is_err() {
                return group;
            }
            continue;
        }
        if group.rebalance_pending() {
            tracing::info!("rebalance pending: pausing the fetch until the job checkpoints");
            let _ = events.send(FetchEvent::RebalancePending);
            halted = true;
            continue;
        }
        let batches = match group.poll_batches_for(POLL).await {
            Ok(b) => b,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "fetch failed; retrying");
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetch failed");
                let _ = events.send(FetchEvent::Failed(e));
                halted = true;
                continue;
            }
        };
        // Where each partition ends now, for its lag: the last stable offset
        // (the job reads with read_committed), else the high watermark.
        for (tp, s) in &status {
            if let Some(o) = group.consumer().partition_offsets(&tp.0, tp.1) {
                s.set_log_end(if o.last_stable_offset >= 0 {
                    o.last_stable_offset
                } else {
                    o.high_watermark
                });
            }
        }
        let changes = group.take_events();
        if !changes.is_empty() {
            tracing::info!(?changes, "assignment changed during a poll");
            let _ = events.send(FetchEvent::AssignmentChanged(changes));
            halted = true;
            continue;
        }
        for fetched in batches {
            let tp: TopicPartition = (fetched.topic.to_string(), fetched.partition);
            let Some(tx) = feeds.get(&tp) else { continue };
            let chunk = Chunk {
                records: fetched.records,
                next_offset: fetched.next_offset,
            };
            tokio::select! {
                sent = tx.send(chunk) => {
                    if sent.is_err() {
                        // The split ended (bounded input): fetch it no more.
                        feeds.remove(&tp);
                        group.consumer().pause([(tp.0.as_str(), tp.1)]);
                    }
                }
                _ = stop.changed() => return group,
            }
        }
    }
}
