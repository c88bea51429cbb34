//! State shared by the consumer's API side and its per-broker fetchers.
//!
//! ```text
//!  Consumer (assign / seek / poll)          fetcher (one per leader broker)
//!        │  writes positions,                     │ reads fetch offsets of its
//!        │  generations, leaders                  │ partitions, advances them,
//!        ▼                                        ▼ marks errors and resets
//!     Mutex<State> { (topic, partition) -> PartitionState }
//! ```
//!
//! Every partition carries a generation, bumped by a seek, a reset or a new
//! assignment. Fetched data is stamped with the generation it was fetched under and
//! dropped if it no longer matches. That is how a seek that races with a fetch in
//! flight (or with prefetched data waiting in the channel) is made safe: the fetch
//! was built under generation g, the seek moves the partition to g+1, the response
//! comes back stamped g and is discarded by the fetcher or by `poll`.
//!
//! The lock is a `std::sync::Mutex` held for short, synchronous sections only, never
//! across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::session::PartitionKey;
use crate::client::backoff::Backoff;
use crate::client::cluster::Client;
use crate::client::config::{ConsumerConfig, OffsetReset};
use crate::error::Error;
use crate::protocol::Uuid;
use crate::sync::lock;

/// Where a partition's consumption stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// The next offset to hand to the caller.
    Valid(i64),
    /// No valid position: waiting for a reset by this policy.
    Reset(OffsetReset),
    /// Out of range (or never set) with `auto.offset.reset=none`: the error was
    /// reported; nothing is fetched until the caller seeks.
    Failed,
}

/// The leader a partition is fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leader {
    /// Node id.
    pub node: i32,
    /// Leader epoch (sent as `current_leader_epoch`).
    pub epoch: i32,
}

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    /// Bumped on every seek, reset or re-assignment.
    pub generation: u64,
    /// The caller's position.
    pub position: Position,
    /// Where the fetcher fetches next; ahead of `position` while data is buffered.
    pub fetch_offset: i64,
    /// The leader to fetch from; `None` until (re)looked up in metadata.
    pub leader: Option<Leader>,
    /// Topic id from metadata (zero if unknown).
    pub topic_id: Uuid,
    /// No fetch, lookup or reset before this instant (after an error).
    pub retry_at: Option<Instant>,
    /// Backoff for repeated errors of this partition.
    pub backoff: Backoff,
    /// Last known high watermark (-1: unknown).
    pub high_watermark: i64,
    /// Last known last stable offset (-1: unknown).
    pub last_stable_offset: i64,
    /// Last known log start offset (-1: unknown).
    pub log_start_offset: i64,
    /// Paused by the caller: not fetched, nothing handed out.
    pub paused: bool,
}

impl PartitionState {
    /// Whether the partition may be fetched, looked up or reset now.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| t <= now)
    }

    /// Schedules the next attempt after the partition's backoff.
    pub(crate) fn back_off(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff.next_delay());
    }

    /// Clears the backoff after a success.
    pub(crate) fn succeeded(&mut self) {
        self.retry_at = None;
        self.backoff.reset();
    }
}

/// All assigned partitions.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Assigned partitions.
    pub partitions: HashMap<PartitionKey, PartitionState>,
    next_generation: u64,
}

impl State {
    /// A fresh generation number.
    pub(crate) fn bump(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

/// What the consumer and its fetchers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The cluster client.
    pub client: Client,
    /// Consumer settings.
    pub config: ConsumerConfig,
    /// Partition state.
    pub state: Mutex<State>,
    /// Set by `close`: fetchers close their sessions and stop.
    pub closing: AtomicBool,
    /// Counters behind [`super::FetchStats`].
    pub stats: Counters,
    /// The latest error retried out of the caller's sight (a failed fetch, leader
    /// lookup or offset reset); cleared when a fetch response arrives intact.
    pub last_error: Mutex<Option<Error>>,
}

/// Fetch counters, bumped by the fetchers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Full fetch requests (session epoch 0 or sessionless).
    pub full: AtomicU64,
    /// Incremental fetch requests.
    pub incremental: AtomicU64,
    /// Sessions the broker lost or refused.
    pub session_resets: AtomicU64,
    /// Partitions in responses that the request's session did not hold.
    pub unrequested: AtomicU64,
}

impl Shared {
    /// A new shared state.
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Arc<Shared> {
        Arc::new(Shared {
            client,
            config,
            state: Mutex::new(State::default()),
            closing: AtomicBool::new(false),
            stats: Counters::default(),
            last_error: Mutex::new(None),
        })
    }

    /// Locks the state (a poisoned lock is still usable: every section leaves it consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Records an error the consumer retries on its own.
    pub(crate) fn retried(&self, error: &Error) {
        *lock(&self.last_error) = Some(error.clone());
    }

    /// Forgets the last retried error: a fetch answer arrived intact.
    pub(crate) fn fetch_answered(&self) {
        *lock(&self.last_error) = None;
    }

    /// A backoff with the client's retry settings.
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            self.config.client.retry_backoff,
            self.config.client.retry_backoff_max,
        )
    }
}
