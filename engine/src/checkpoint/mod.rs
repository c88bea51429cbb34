//! Checkpoints: typed ids, the barrier, snapshots and the in-memory store.
//!
//! ```text
//!  coordinator --trigger(n)--> source tasks: record split positions, emit barrier n
//!  barrier n flows with the data; a task with several inputs aligns: it blocks each
//!  input that delivered barrier n until all have, then snapshots its operators
//!  every task --ack(n, snapshots)--> coordinator (sinks pre-commit before acking)
//!  all acks in --> durable write (CheckpointStore, if set) --> kept in memory
//!               --> notify-complete(n) --> sinks commit, sources told
//! ```
//! A checkpoint counts as complete only once its durable write succeeded; a failed
//! write fails the job with a rollback-class error (restart from the last one).
//! The decisions (when to trigger, when a checkpoint is complete, what to commit) are
//! pure functions in [`coordinator`]; the runtime only moves messages.

pub mod coordinator;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

pub use coordinator::{
    AckOutcome, CheckpointGaps, CheckpointTracker, PendingCheckpoint, TaskId, early_checkpoint_gap,
};
pub use store::{CheckpointStore, InMemoryCheckpointStore, StoreFuture};

use crate::error::{EngineError, Result};
use crate::state::codec::StateCodec;

/// Monotonically increasing id of a checkpoint within a job (across restores).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id after this one.
    pub fn next(self) -> CheckpointId {
        CheckpointId(self.0 + 1)
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Incarnation of a job: 0 on a fresh start, +1 on every restore. Transactional sinks
/// use it to fence writers of earlier incarnations.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Epoch(pub u32);

/// The marker that flows with the data and cuts the stream into "before checkpoint n"
/// and "after".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointBarrier {
    /// The checkpoint this barrier belongs to.
    pub id: CheckpointId,
    /// Processing time (ms) at which the coordinator triggered it.
    pub timestamp: i64,
    /// A stop barrier ([`crate::JobHandle::stop`]): sources read nothing after it,
    /// and the job shuts down once the checkpoint completed.
    pub stop: bool,
    /// Key groups the job gives up at this checkpoint
    /// ([`crate::JobController::release`]): every operator snapshots them as
    /// usual, then drops them, and source splits of them read no more.
    pub release: Option<Arc<BTreeSet<u16>>>,
    /// Key groups the job takes on at this checkpoint
    /// ([`crate::JobController::adopt`]): every operator snapshots as usual,
    /// then loads their state, and source tasks add splits of them.
    pub adopt: Option<Arc<Adoption>>,
}

/// Key groups a running job takes on, with their state (from another process's
/// checkpoint), carried by a [`CheckpointBarrier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adoption {
    /// The key groups.
    pub key_groups: BTreeSet<u16>,
    /// Their state, by the running job's operator ids (only these key groups).
    pub state: Checkpoint,
}

/// Stable identity of an operator in a pipeline, assigned in definition order, so the
/// same program gets the same ids and can restore its state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub u32);

/// State one operator subtask wrote at a barrier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorState {
    /// Keyed state: one byte string per key group.
    pub key_groups: BTreeMap<u16, Vec<u8>>,
    /// Non-keyed state entries (source split index -> position, sink subtask ->
    /// pending transaction, ...).
    pub entries: BTreeMap<u32, Vec<u8>>,
}

impl OperatorState {
    /// Whether the operator wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.key_groups.is_empty() && self.entries.is_empty()
    }

    /// Merges the state of another subtask of the same operator.
    pub fn merge(&mut self, other: OperatorState) {
        self.key_groups.extend(other.key_groups);
        self.entries.extend(other.entries);
    }
}

/// A completed checkpoint: the state of every operator, merged over its subtasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its id.
    pub id: CheckpointId,
    /// The epoch of the job incarnation that took it.
    pub epoch: Epoch,
    /// State per operator.
    pub operators: BTreeMap<OperatorId, OperatorState>,
    /// The stable uid of every operator of the pipeline that took it (set with
    /// [`crate::DataStream::uid`], else derived from the operator's kind and
    /// definition order). Restoring matches state to operators by uid, so a
    /// pipeline edited around uid-named operators keeps their state.
    pub uids: BTreeMap<OperatorId, String>,
    /// The key groups given up at this checkpoint (see
    /// [`CheckpointBarrier::release`]): its state still holds them, the job's
    /// operators no longer do. Not encoded.
    pub released: BTreeSet<u16>,
    /// The key groups taken on at this checkpoint (see
    /// [`CheckpointBarrier::adopt`]): its state does not hold them yet, the
    /// job's operators do from then on. Not encoded.
    pub adopted: BTreeSet<u16>,
}

/// Version of the byte format of [`Checkpoint::encode`] and [`OperatorState::encode_bytes`].
pub const FORMAT_VERSION: u8 = 1;

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    (bytes.len() as u32).encode(buf);
    buf.extend_from_slice(bytes);
}

fn get_bytes(buf: &mut &[u8]) -> Result<Vec<u8>> {
    let n = u32::decode(buf)? as usize;
    if buf.len() < n {
        return Err(EngineError::Codec(format!(
            "checkpoint bytes: need {n}, {} left",
            buf.len()
        )));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head.to_vec())
}

fn check_version(buf: &mut &[u8], what: &str) -> Result<()> {
    let v = u8::decode(buf)?;
    if v != FORMAT_VERSION {
        return Err(EngineError::Codec(format!(
            "{what}: format version {v}, this build reads {FORMAT_VERSION}"
        )));
    }
    Ok(())
}

impl OperatorState {
    /// The state as versioned bytes (what a durable store keeps).
    pub fn encode_bytes(&self) -> Vec<u8> {
        let mut buf = vec![FORMAT_VERSION];
        self.encode_into(&mut buf);
        buf
    }

    /// Reads state written by [`OperatorState::encode_bytes`].
    pub fn decode_bytes(mut buf: &[u8]) -> Result<OperatorState> {
        check_version(&mut buf, "operator state")?;
        let s = Self::decode_from(&mut buf)?;
        if !buf.is_empty() {
            return Err(EngineError::Codec(format!(
                "operator state: {} trailing bytes",
                buf.len()
            )));
        }
        Ok(s)
    }

    fn encode_into(&self, buf: &mut Vec<u8>) {
        (self.key_groups.len() as u32).encode(buf);
        for (kg, bytes) in &self.key_groups {
            kg.encode(buf);
            put_bytes(buf, bytes);
        }
        (self.entries.len() as u32).encode(buf);
        for (e, bytes) in &self.entries {
            e.encode(buf);
            put_bytes(buf, bytes);
        }
    }

    fn decode_from(buf: &mut &[u8]) -> Result<OperatorState> {
        let mut s = OperatorState::default();
        for _ in 0..u32::decode(buf)? {
            let kg = u16::decode(buf)?;
            s.key_groups.insert(kg, get_bytes(buf)?);
        }
        for _ in 0..u32::decode(buf)? {
            let e = u32::decode(buf)?;
            s.entries.insert(e, get_bytes(buf)?);
        }
        Ok(s)
    }
}

impl Checkpoint {
    /// Bytes of operator state it holds (keyed and non-keyed).
    pub fn state_bytes(&self) -> usize {
        self.operators
            .values()
            .map(|s| {
                s.key_groups.values().map(Vec::len).sum::<usize>()
                    + s.entries.values().map(Vec::len).sum::<usize>()
            })
            .sum()
    }

    /// The checkpoint as versioned bytes, operators named by uid.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![FORMAT_VERSION];
        self.id.0.encode(&mut buf);
        self.epoch.0.encode(&mut buf);
        (self.operators.len() as u32).encode(&mut buf);
        for (op, state) in &self.operators {
            op.0.encode(&mut buf);
            self.uids
                .get(op)
                .cloned()
                .unwrap_or_default()
                .encode(&mut buf);
            state.encode_into(&mut buf);
        }
        buf
    }

    /// Reads a checkpoint written by [`Checkpoint::encode`].
    pub fn decode(mut buf: &[u8]) -> Result<Checkpoint> {
        check_version(&mut buf, "checkpoint")?;
        let mut c = Checkpoint {
            id: CheckpointId(u64::decode(&mut buf)?),
            epoch: Epoch(u32::decode(&mut buf)?),
            ..Default::default()
        };
        for _ in 0..u32::decode(&mut buf)? {
            let op = OperatorId(u32::decode(&mut buf)?);
            let uid = String::decode(&mut buf)?;
            let state = OperatorState::decode_from(&mut buf)?;
            if !uid.is_empty() {
                c.uids.insert(op, uid);
            }
            c.operators.insert(op, state);
        }
        if !buf.is_empty() {
            return Err(EngineError::Codec(format!(
                "checkpoint: {} trailing bytes",
                buf.len()
            )));
        }
        Ok(c)
    }

    /// The same checkpoint with its operators renumbered for a pipeline whose
    /// operators have the uids `current` (uid -> id): state whose uid the pipeline
    /// no longer has is returned apart, by uid. A checkpoint without uids is
    /// returned unchanged (ids are matched as they are).
    pub fn remap(mut self, current: &BTreeMap<String, OperatorId>) -> (Checkpoint, Vec<String>) {
        if self.uids.is_empty() {
            return (self, Vec::new());
        }
        let mut orphaned = Vec::new();
        let mut operators = BTreeMap::new();
        let mut uids = BTreeMap::new();
        for (op, state) in std::mem::take(&mut self.operators) {
            let Some(uid) = self.uids.get(&op).cloned() else {
                continue;
            };
            match current.get(&uid) {
                Some(id) => {
                    operators.insert(*id, state);
                    uids.insert(*id, uid);
                }
                None => orphaned.push(uid),
            }
        }
        self.operators = operators;
        self.uids = uids;
        (self, orphaned)
    }
    /// The state of `op` restricted to what one subtask needs: the key groups in
    /// `range` and the entries `e` with `e % parallelism == subtask`.
    pub fn state_for(
        &self,
        op: OperatorId,
        range: crate::KeyGroupRange,
        subtask: usize,
        parallelism: usize,
    ) -> Option<OperatorState> {
        let s = self.operators.get(&op)?;
        let key_groups = s
            .key_groups
            .iter()
            .filter(|(kg, _)| range.contains(crate::KeyGroup(**kg)))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let entries = s
            .entries
            .iter()
            .filter(|(e, _)| (**e as usize) % parallelism.max(1) == subtask)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Some(OperatorState {
            key_groups,
            entries,
        })
    }
}
