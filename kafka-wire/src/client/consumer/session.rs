//! The client side of a fetch session (KIP-227) with one broker.
//!
//! ```text
//!  plan(wanted) ──► full (epoch 0): every wanted partition; the broker answers with
//!       │           a session id (0: no session was created, stay full)
//!       └────────► incremental (epoch 1, 2, ...): only partitions that are new or whose
//!                  fetch offset / leader epoch / max bytes changed since last sent,
//!                  plus `forgotten` for partitions no longer wanted
//!  on_response ──► epoch + 1 (wrapping to 1)
//!  on_error ─────► next request is full, closing the old session (same id, epoch 0)
//!  session not found ─► next request is full with no session id
//! ```
//!
//! The broker remembers each session partition's fetch offset only as last sent: the
//! client must resend a partition whenever its offset moved, or the broker serves the
//! same records again. An incremental response lists only partitions with news (records,
//! a moved high watermark, an error), so a missing partition means "nothing new", not
//! end-of-partition. A partition left out of the wanted set must be sent as forgotten,
//! or the broker keeps serving it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::protocol::Uuid;

/// A partition as the session knows it: `(topic name, partition)`.
pub(crate) type PartitionKey = (Arc<str>, i32);

/// The fetch parameters of one partition, as sent to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionPartition {
    /// Topic id (zero when unknown; then topic names are used).
    pub topic_id: Uuid,
    /// Offset to fetch from.
    pub fetch_offset: i64,
    /// The leader epoch the client knows (-1: unknown).
    pub leader_epoch: i32,
    /// `max.partition.fetch.bytes`.
    pub max_bytes: i32,
}

/// What one fetch request carries for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// `session_id` field.
    pub session_id: i32,
    /// `session_epoch` field.
    pub epoch: i32,
    /// Whether this is a full request (the response lists every partition).
    pub full: bool,
    /// Partitions to put in `topics`.
    pub send: Vec<(PartitionKey, SessionPartition)>,
    /// Partitions to put in `forgotten_topics_data`, with the topic id they were sent with.
    pub forget: Vec<(PartitionKey, Uuid)>,
}

/// One broker's fetch session, as this client last told it.
#[derive(Debug, Default)]
pub(crate) struct FetchSession {
    id: i32,
    /// Epoch of the next request; 0 means the next request is full.
    next_epoch: i32,
    /// Whether the partitions were sent by topic id (Fetch v13+).
    uses_topic_ids: Option<bool>,
    partitions: HashMap<PartitionKey, SessionPartition>,
}

impl FetchSession {
    /// The session id the broker gave (0: none).
    pub(crate) fn id(&self) -> i32 {
        self.id
    }

    /// Plans the next request for `wanted` and records it as sent. `uses_topic_ids`
    /// says whether the request version identifies topics by id; a change forces a
    /// full request.
    pub(crate) fn plan(
        &mut self,
        wanted: &BTreeMap<PartitionKey, SessionPartition>,
        uses_topic_ids: bool,
    ) -> Plan {
        if self.uses_topic_ids != Some(uses_topic_ids) {
            self.next_epoch = 0;
            self.uses_topic_ids = Some(uses_topic_ids);
        }
        crate::client::metrics::fetch_request(self.next_epoch == 0);
        if self.next_epoch == 0 {
            self.partitions = wanted.iter().map(|(k, v)| (k.clone(), *v)).collect();
            return Plan {
                session_id: self.id,
                epoch: 0,
                full: true,
                send: wanted.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                forget: Vec::new(),
            };
        }
        let mut send = Vec::new();
        let mut forget = Vec::new();
        for (key, old) in &self.partitions {
            match wanted.get(key) {
                None => forget.push((key.clone(), old.topic_id)),
                // A recreated topic: the old id's partition must be forgotten.
                Some(new) if new.topic_id != old.topic_id => {
                    forget.push((key.clone(), old.topic_id))
                }
                Some(_) => {}
            }
        }
        for (key, new) in wanted {
            if self.partitions.get(key) != Some(new) {
                send.push((key.clone(), *new));
            }
        }
        forget.sort();
        self.partitions = wanted.iter().map(|(k, v)| (k.clone(), *v)).collect();
        Plan {
            session_id: self.id,
            epoch: self.next_epoch,
            full: false,
            send,
            forget,
        }
    }

    /// Records a successful response to `plan`, which carried `session_id`.
    pub(crate) fn on_response(&mut self, plan: &Plan, session_id: i32) {
        if plan.full {
            self.id = session_id;
            self.next_epoch = if session_id == 0 { 0 } else { 1 };
        } else {
            self.next_epoch = if self.next_epoch == i32::MAX {
                1
            } else {
                self.next_epoch + 1
            };
        }
    }

    /// The request failed or the broker refused the epoch: the broker's view is
    /// unknown, so the next request is full and closes the old session.
    pub(crate) fn on_error(&mut self) {
        crate::client::metrics::fetch_session_reset();
        self.next_epoch = 0;
    }

    /// Whether the session holds `key` as `part` (an incremental request would
    /// not send it).
    pub(crate) fn holds(&self, key: &PartitionKey, part: &SessionPartition) -> bool {
        self.next_epoch != 0 && self.partitions.get(key) == Some(part)
    }

    /// Makes the next request full (in the same session), so that its response
    /// lists every partition.
    pub(crate) fn restart(&mut self) {
        self.next_epoch = 0;
    }

    /// The broker no longer knows the session (FETCH_SESSION_ID_NOT_FOUND).
    pub(crate) fn on_session_not_found(&mut self) {
        crate::client::metrics::fetch_session_reset();
        self.id = 0;
        self.next_epoch = 0;
    }

    /// Takes the id of an open session to close (a request with epoch -1), leaving
    /// the session empty; `None` when there is none.
    pub(crate) fn take_for_close(&mut self) -> Option<i32> {
        let id = std::mem::take(&mut self.id);
        self.next_epoch = 0;
        self.partitions.clear();
        (id != 0).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, p: i32) -> PartitionKey {
        (Arc::from(topic), p)
    }

    fn part(offset: i64) -> SessionPartition {
        SessionPartition {
            topic_id: Uuid([1; 16]),
            fetch_offset: offset,
            leader_epoch: 0,
            max_bytes: 1024,
        }
    }

    #[test]
    fn a_restart_sends_every_partition_in_a_full_request_of_the_same_session() {
        let mut s = FetchSession::default();
        let wanted = BTreeMap::from([(key("t", 0), part(0)), (key("t", 1), part(5))]);
        assert!(!s.holds(&key("t", 1), &part(5)), "nothing was sent yet");
        let plan = s.plan(&wanted, true);
        s.on_response(&plan, 42);
        assert!(s.holds(&key("t", 1), &part(5)));
        assert!(
            !s.holds(&key("t", 1), &part(6)),
            "a moved offset is sent again"
        );
        s.restart();
        assert!(!s.holds(&key("t", 1), &part(5)));
        let plan = s.plan(&wanted, true);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.epoch, plan.send.len()), (42, 0, 2));
    }

    #[test]
    fn first_request_is_full_then_only_changes_are_sent() {
        let mut s = FetchSession::default();
        let mut wanted = BTreeMap::from([(key("t", 0), part(0)), (key("t", 1), part(0))]);
        let plan = s.plan(&wanted, true);
        assert!(plan.full);
        assert_eq!((plan.session_id, plan.epoch, plan.send.len()), (0, 0, 2));
        s.on_response(&plan, 42);

        wanted.insert(key("t", 0), part(10));
        let plan = s.plan(&wanted, true);
        assert!(!plan.full);
        assert_eq!((plan.session_id, plan.epoch), (42, 1));
        assert_eq!(plan.send, vec![(key("t", 0), part(10))]);
        assert!(plan.forget.is_empty());
        s.on_response(&plan, 42);

        let plan = s.plan(&wanted, true);
        assert_eq!(plan.epoch, 2);
        assert!(plan.send.is_empty() && plan.forget.is_empty());
        s.on_response(&plan, 42);
    }

    #[test]
    fn removed_partitions_are_forgotten() {
        let mut s = FetchSession::default();
        let mut wanted = BTreeMap::from([(key("t", 0), part(0)), (key("u", 3), part(5))]);
        let plan = s.plan(&wanted, false);
        s.on_response(&plan, 7);
        wanted.remove(&key("u", 3));
        let plan = s.plan(&wanted, false);
        assert_eq!(plan.forget, vec![(key("u", 3), Uuid([1; 16]))]);
        assert!(plan.send.is_empty());
        s.on_response(&plan, 7);
        // Added back: sent again.
        wanted.insert(key("u", 3), part(5));
        let plan = s.plan(&wanted, false);
        assert_eq!(plan.send, vec![(key("u", 3), part(5))]);
    }

    #[test]
    fn errors_make_the_next_request_full() {
        let mut s = FetchSession::default();
        let wanted = BTreeMap::from([(key("t", 0), part(0))]);
        let plan = s.plan(&wanted, true);
        s.on_response(&plan, 9);
        s.on_error();
        let plan = s.plan(&wanted, true);
        assert!(plan.full);
        assert_eq!(
            (plan.session_id, plan.epoch),
            (9, 0),
            "closes the old session"
        );
        s.on_response(&plan, 10);
        s.on_session_not_found();
        let plan = s.plan(&wanted, true);
        assert_eq!((plan.session_id, plan.epoch, plan.full), (0, 0, true));
        // A broker that creates no session keeps every request full.
        s.on_response(&plan, 0);
        assert!(s.plan(&wanted, true).full);
    }

    #[test]
    fn switching_between_names_and_ids_restarts_the_session() {
        let mut s = FetchSession::default();
        let wanted = BTreeMap::from([(key("t", 0), part(0))]);
        let plan = s.plan(&wanted, true);
        s.on_response(&plan, 3);
        assert!(s.plan(&wanted, false).full);
    }

    #[test]
    fn a_recreated_topic_forgets_the_old_id() {
        let mut s = FetchSession::default();
        let mut wanted = BTreeMap::from([(key("t", 0), part(0))]);
        let plan = s.plan(&wanted, true);
        s.on_response(&plan, 3);
        let new = SessionPartition {
            topic_id: Uuid([2; 16]),
            ..part(0)
        };
        wanted.insert(key("t", 0), new);
        let plan = s.plan(&wanted, true);
        assert_eq!(plan.forget, vec![(key("t", 0), Uuid([1; 16]))]);
        assert_eq!(plan.send, vec![(key("t", 0), new)]);
    }

    #[test]
    fn epochs_wrap_to_one() {
        let mut s = FetchSession {
            id: 5,
            next_epoch: i32::MAX,
            uses_topic_ids: Some(true),
            ..Default::default()
        };
        let plan = s.plan(&BTreeMap::new(), true);
        assert_eq!(plan.epoch, i32::MAX);
        s.on_response(&plan, 5);
        assert_eq!(s.plan(&BTreeMap::new(), true).epoch, 1);
    }
}
