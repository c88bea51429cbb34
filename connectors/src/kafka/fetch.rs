//! The fetch task of one incarnation: polls the group consumer and hands each
//! partition's records to its split's bounded queue.
//!
//! A rebalance, eager (or of a job that cannot move partitions in place): the
//! task stops polling and tells the runner as soon as one is pending, so the
//! open checkpoint can commit under the current generation before the
//! partitions move.
//!
//! A rebalance, incremental (classic cooperative, or the consumer protocol): the
//! task keeps polling, so the member joins while the job goes on with what it
//! holds. Partitions the new generation (or target assignment) revokes go to
//! the runner, which releases them at a checkpoint; the task polls (and so
//! joins again or acknowledges the revocation, handing them on) only once that
//! checkpoint committed their offsets. Partitions it adds stay paused and go to
//! the runner, which adopts them into the running job; the task seeks each to
//! its committed offset and feeds it once its split exists.

use std::collections::HashMap;
use std::sync::Arc;

use engine::PartitionStatus;
use std::time::Duration;

use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::client::group::{GroupConsumer, RebalanceEvent};
use tokio::sync::{mpsc, watch};

use super::scope::LiveFeed;
use super::source::Chunk;

/// What the fetch task tells the runner.
#[derive(Debug)]
pub(crate) enum FetchEvent {
    /// A rebalance is pending (or, incremental, brought partitions): stop the job
    /// (final checkpoint), then rejoin.
    RebalancePending,
    /// Incremental: the new generation revoked these partitions; the task polls
    /// again once the runner resumes it (their offsets committed).
    Revoked(Vec<TopicPartition>),
    /// Incremental: the new generation assigned these partitions; they stay
    /// paused until their splits exist (a [`LiveFeed`] each).
    Assigned(Vec<TopicPartition>),
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
    mut status: HashMap<TopicPartition, Arc<PartitionStatus>>,
    mut stop: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<FetchEvent>,
    mut resume: Option<mpsc::UnboundedReceiver<()>>,
    mut live: Option<mpsc::UnboundedReceiver<LiveFeed>>,
) -> GroupConsumer {
    let cooperative = resume.is_some();
    let mut halted = false;
    loop {
        if *stop.borrow() {
            return group;
        }
        while let Some(l) = live.as_mut().and_then(|l| l.try_recv().ok()) {
            tracing::debug!(partition = ?l.tp, start = l.start, "feeding an adopted partition");
            let (t, p) = (l.tp.0.as_str(), l.tp.1);
            group.consumer().seek(t, p, l.start);
            group.consumer().resume([(t, p)]);
            feeds.insert(l.tp.clone(), l.tx);
            status.insert(l.tp, l.status);
        }
        if halted {
            if stop.changed().await.is_err() {
                return group;
            }
            continue;
        }
        if !cooperative && group.rebalance_pending() {
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
        let lost = changes.iter().any(|c| matches!(c, RebalanceEvent::Lost(_)));
        if !changes.is_empty() && (!cooperative || lost) {
            tracing::info!(?changes, "assignment changed during a poll");
            let _ = events.send(FetchEvent::AssignmentChanged(changes));
            halted = true;
            continue;
        }
        let mut revoked = Vec::new();
        let mut added = Vec::new();
        for c in changes {
            match c {
                RebalanceEvent::Revoked(tps) => revoked.extend(tps),
                RebalanceEvent::Assigned(tps) => added.extend(tps),
                RebalanceEvent::Lost(_) => {}
            }
        }
        if !added.is_empty() {
            if live.is_none() {
                tracing::info!("partitions added: stopping the job to start it with them");
                let _ = events.send(FetchEvent::RebalancePending);
                halted = true;
                continue;
            }
            tracing::info!(
                ?added,
                "partitions added: adopting them into the running job"
            );
            group
                .consumer()
                .pause(added.iter().map(|(t, p)| (t.as_str(), *p)));
            let _ = events.send(FetchEvent::Assigned(added));
        }
        for tp in &revoked {
            feeds.remove(tp);
            status.remove(tp);
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
        if !revoked.is_empty() {
            tracing::info!(
                ?revoked,
                "partitions revoked: releasing them at a checkpoint"
            );
            let _ = events.send(FetchEvent::Revoked(revoked));
            tokio::select! {
                r = recv_resume(&mut resume) => {
                    if r.is_none() {
                        halted = true;
                    }
                }
                _ = stop.changed() => return group,
            }
        }
    }
}

/// The runner's go-ahead after a release; `None` when the runner is gone. Only
/// a cooperative fetch (one with a `resume` channel) learns of revocations.
async fn recv_resume(resume: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match resume {
        Some(resume) => resume.recv().await,
        None => None,
    }
}
