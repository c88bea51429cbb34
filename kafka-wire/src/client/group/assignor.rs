//! Partition assignors run by the group leader: `range` and `roundrobin`, as the
//! Java client's RangeAssignor and RoundRobinAssignor define them,
//! `cooperative-sticky` (balanced and sticky, moving partitions in two rounds,
//! KIP-429), `exclusive` (every partition to one member, the others stand by),
//! and the embedded consumer protocol (subscription and assignment bytes).
//!
//! ```text
//!  JoinGroup members (subscriptions) ──► assign(members, partition counts)
//!                                          ──► member id -> [(topic, partition)]
//!                                          ──► SyncGroup assignments (bytes)
//! ```
//!
//! Members are ordered by `group.instance.id` when they have one, else by member
//! id, so every leader computes the same plan from the same input.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::protocol::Message;
use crate::protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, consumer_protocol_assignment,
    consumer_protocol_subscription,
};

pub use crate::client::TopicPartition;

/// One member's subscription, as the leader sees it in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions the member owns now (cooperative protocol; empty otherwise).
    pub owned: Vec<TopicPartition>,
    /// The generation in which it owned them (-1 when unknown).
    pub generation: i32,
}

impl MemberSubscription {
    fn sort_key(&self) -> (&str, &str) {
        (
            self.group_instance_id.as_deref().unwrap_or(""),
            &self.member_id,
        )
    }
}

/// The assignors this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions (`range`).
    Range,
    /// All partitions dealt out one by one (`roundrobin`).
    RoundRobin,
    /// Balanced, keeping owned partitions where it can, and giving a partition to
    /// a new owner only after its old owner has revoked it (`cooperative-sticky`,
    /// KIP-429).
    CooperativeSticky,
    /// Every partition to one member, the others none (`exclusive`): the member
    /// that owns partitions now keeps them all, else the first member takes
    /// them; the others stand by until it leaves. Cooperative: a partition owned
    /// by another member moves only after that member revoked it.
    Exclusive,
}

impl Assignor {
    /// The protocol name sent in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
            Assignor::Exclusive => "exclusive",
        }
    }

    /// Whether the assignor uses the cooperative (incremental) rebalance protocol.
    pub fn is_cooperative(self) -> bool {
        matches!(self, Assignor::CooperativeSticky | Assignor::Exclusive)
    }

    /// The assignor with this protocol name, if implemented.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            "exclusive" => Some(Assignor::Exclusive),
            _ => None,
        }
    }

    /// Assigns the partitions of every subscribed topic (`partitions`: topic ->
    /// partition count; unknown topics are skipped). Every member gets an entry.
    pub fn assign(
        self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let mut out: BTreeMap<String, Vec<TopicPartition>> = members
            .iter()
            .map(|m| (m.member_id.clone(), Vec::new()))
            .collect();
        match self {
            Assignor::Range => {
                let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
                for topic in topics {
                    let Some(&count) = partitions.get(topic) else {
                        continue;
                    };
                    let consumers: Vec<&&MemberSubscription> =
                        sorted.iter().filter(|m| m.topics.contains(topic)).collect();
                    let n = consumers.len() as i32;
                    if n == 0 || count <= 0 {
                        continue;
                    }
                    let (per, extra) = (count / n, count % n);
                    let mut next = 0;
                    for (i, m) in consumers.iter().enumerate() {
                        let take = per + i32::from((i as i32) < extra);
                        let entry = out.entry(m.member_id.clone()).or_default();
                        entry.extend((next..next + take).map(|p| (topic.clone(), p)));
                        next += take;
                    }
                }
            }
            Assignor::RoundRobin => {
                let all: Vec<TopicPartition> = members
                    .iter()
                    .flat_map(|m| &m.topics)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter_map(|t| partitions.get(t).map(|&c| (t, c)))
                    .flat_map(|(t, c)| (0..c).map(move |p| (t.clone(), p)))
                    .collect();
                let mut cursor = 0;
                for (topic, p) in all {
                    // The next member (circularly) subscribed to the topic.
                    for _ in 0..sorted.len() {
                        let m = sorted[cursor % sorted.len()];
                        cursor += 1;
                        if m.topics.contains(&topic) {
                            out.entry(m.member_id.clone())
                                .or_default()
                                .push((topic.clone(), p));
                            break;
                        }
                    }
                }
            }
            Assignor::CooperativeSticky => {
                return cooperative_sticky(&sorted, partitions);
            }
            Assignor::Exclusive => {
                let owner = valid_owners(&sorted, partitions);
                // The member with the most valid claims (the first in order
                // among equals, and when nobody claims anything).
                let chosen = sorted.iter().copied().max_by_key(|m| {
                    let claims = owner.values().filter(|o| **o == m.member_id).count();
                    (claims, std::cmp::Reverse(m.sort_key()))
                });
                if let Some(m) = chosen {
                    let entry = out.entry(m.member_id.clone()).or_default();
                    for topic in &m.topics {
                        let Some(&count) = partitions.get(topic) else {
                            continue;
                        };
                        for p in 0..count {
                            let tp = (topic.clone(), p);
                            if owner.get(&tp).is_none_or(|o| *o == m.member_id) {
                                entry.push(tp);
                            }
                        }
                    }
                    entry.sort();
                }
            }
        }
        out
    }
}

/// Partitions with one valid owner: claimed in the highest generation claimed
/// (older claims are stale) by exactly one member, and existing.
fn valid_owners<'a>(
    members: &[&'a MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<TopicPartition, &'a str> {
    let exists = |tp: &TopicPartition| {
        partitions
            .get(&tp.0)
            .is_some_and(|&c| tp.1 >= 0 && tp.1 < c)
    };
    let newest = members.iter().map(|m| m.generation).max().unwrap_or(-1);
    let mut claims: BTreeMap<TopicPartition, Vec<&str>> = BTreeMap::new();
    for m in members.iter().filter(|m| m.generation == newest) {
        for tp in &m.owned {
            claims.entry(tp.clone()).or_default().push(&m.member_id);
        }
    }
    claims
        .into_iter()
        .filter(|(tp, who)| who.len() == 1 && exists(tp))
        .map(|(tp, who)| (tp, who[0]))
        .collect()
}

/// The cooperative-sticky plan: see [`Assignor::CooperativeSticky`].
///
/// 1. Valid ownership claims: those of the highest generation claimed (older
///    claims are stale); a partition claimed twice in it belongs to no one.
/// 2. Each member keeps its claimed partitions that still exist and are
///    subscribed, up to its quota (total / members, the first `total % members`
///    members with the most claims may keep one more).
/// 3. Every other partition goes to the subscribed member with the fewest.
/// 4. A partition that moves away from a valid owner is left out of the new
///    owner's assignment this round: the old owner revokes it and rejoins, and
///    the next round assigns it (KIP-429).
fn cooperative_sticky(
    members: &[&MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let all: BTreeSet<TopicPartition> = members
        .iter()
        .flat_map(|m| &m.topics)
        .filter_map(|t| partitions.get(t).map(|&c| (t, c)))
        .flat_map(|(t, c)| (0..c).map(move |p| (t.clone(), p)))
        .collect();
    // 1. Valid claims.
    let owner = valid_owners(members, partitions);
    // 2. Keep owned partitions up to the quota.
    let n = members.len();
    let (base, mut extra) = (all.len() / n, all.len() % n);
    let mut by_claims: Vec<&&MemberSubscription> = members.iter().collect();
    by_claims
        .sort_by_key(|m| std::cmp::Reverse(owner.values().filter(|o| **o == m.member_id).count()));
    let mut quota: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &by_claims {
        let q = if extra > 0 {
            extra -= 1;
            base + 1
        } else {
            base
        };
        quota.insert(&m.member_id, q);
    }
    let mut assigned: BTreeMap<&str, Vec<TopicPartition>> = BTreeMap::new();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for m in members {
        let keep = owner
            .iter()
            .filter(|(tp, o)| **o == m.member_id && m.topics.contains(&tp.0))
            .map(|(tp, _)| tp.clone())
            .take(quota.get(m.member_id.as_str()).copied().unwrap_or(0));
        for tp in keep {
            taken.insert(tp.clone());
            assigned.entry(&m.member_id).or_default().push(tp);
        }
    }
    // 3. The rest to the least loaded subscriber.
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let Some(m) = members
            .iter()
            .filter(|m| m.topics.contains(&tp.0))
            .min_by_key(|m| assigned.get(m.member_id.as_str()).map_or(0, Vec::len))
        else {
            continue;
        };
        assigned.entry(&m.member_id).or_default().push(tp.clone());
    }
    // 4. Nothing changes hands in one round.
    for (member, tps) in assigned {
        let entry = out.entry(member.to_string()).or_default();
        for tp in tps {
            match owner.get(&tp) {
                Some(o) if *o != member => {}
                _ => entry.push(tp),
            }
        }
        entry.sort();
    }
    out
}

/// The consumer protocol version this crate writes (v3: owned partitions,
/// generation, rack).
const PROTOCOL_VERSION: i16 = 3;

/// Encodes a subscription as JoinGroup protocol metadata (version prefix, then the struct).
pub fn encode_subscription(
    topics: &[String],
    owned: &[TopicPartition],
    generation_id: i32,
    rack: Option<&str>,
) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in owned {
        by_topic.entry(t).or_default().push(*p);
    }
    let sub = ConsumerProtocolSubscription {
        topics: topics.to_vec(),
        user_data: None,
        owned_partitions: by_topic
            .into_iter()
            .map(
                |(topic, partitions)| consumer_protocol_subscription::TopicPartition {
                    topic: topic.to_string(),
                    partitions,
                },
            )
            .collect(),
        generation_id,
        rack_id: rack.map(str::to_string),
    };
    let mut buf = BytesMut::new();
    buf.put_i16(PROTOCOL_VERSION);
    sub.encode(&mut buf, PROTOCOL_VERSION)?;
    Ok(buf.freeze())
}

/// Reads the version prefix of embedded consumer-protocol bytes. Later versions
/// only add fields at the end, so they are read as the highest version known.
fn version_prefix(buf: &mut Bytes, what: &'static str, max: i16) -> Result<i16> {
    if buf.remaining() < 2 {
        return Err(Error::Truncated {
            context: what,
            needed: 2,
            remaining: buf.remaining(),
        });
    }
    let version = buf.get_i16();
    if version < 0 {
        return Err(Error::UnsupportedVersion {
            message: what,
            version,
        });
    }
    Ok(version.min(max))
}

/// Decodes JoinGroup protocol metadata into the subscribed topics.
pub fn decode_subscription(bytes: &Bytes) -> Result<ConsumerProtocolSubscription> {
    let mut buf = bytes.clone();
    let version = version_prefix(
        &mut buf,
        "ConsumerProtocolSubscription",
        ConsumerProtocolSubscription::VALID_VERSIONS.max,
    )?;
    ConsumerProtocolSubscription::decode(&mut buf, version)
}

/// Encodes one member's assignment for SyncGroup.
pub fn encode_assignment(partitions: &[TopicPartition]) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment {
        assigned_partitions: by_topic
            .into_iter()
            .map(
                |(topic, partitions)| consumer_protocol_assignment::TopicPartition {
                    topic: topic.to_string(),
                    partitions,
                },
            )
            .collect(),
        user_data: None,
    };
    let mut buf = BytesMut::new();
    buf.put_i16(PROTOCOL_VERSION);
    a.encode(&mut buf, PROTOCOL_VERSION)?;
    Ok(buf.freeze())
}

/// Decodes a SyncGroup assignment (empty bytes: nothing assigned).
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes.clone();
    let version = version_prefix(
        &mut buf,
        "ConsumerProtocolAssignment",
        ConsumerProtocolAssignment::VALID_VERSIONS.max,
    )?;
    let a = ConsumerProtocolAssignment::decode(&mut buf, version)?;
    let mut out: Vec<TopicPartition> = a
        .assigned_partitions
        .into_iter()
        .flat_map(|t| {
            let topic = t.topic;
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            group_instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: Vec::new(),
            generation: -1,
        }
    }

    fn owners(plan: &BTreeMap<String, Vec<TopicPartition>>) -> BTreeMap<TopicPartition, usize> {
        let mut out = BTreeMap::new();
        for ps in plan.values() {
            for tp in ps {
                *out.entry(tp.clone()).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn range_gives_contiguous_ranges_and_the_first_members_the_extra() {
        let members = [
            member("b", &["t"]),
            member("a", &["t"]),
            member("c", &["t"]),
        ];
        let plan = Assignor::Range.assign(&members, &BTreeMap::from([("t".into(), 7)]));
        let ps = |id: &str| plan[id].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!(ps("a"), vec![0, 1, 2]);
        assert_eq!(ps("b"), vec![3, 4]);
        assert_eq!(ps("c"), vec![5, 6]);
    }

    #[test]
    fn round_robin_deals_partitions_across_topics() {
        let members = [member("a", &["t", "u"]), member("b", &["t", "u"])];
        let counts = BTreeMap::from([("t".into(), 3), ("u".into(), 2)]);
        let plan = Assignor::RoundRobin.assign(&members, &counts);
        assert_eq!(
            plan["a"],
            vec![("t".into(), 0), ("t".into(), 2), ("u".into(), 1)]
        );
        assert_eq!(plan["b"], vec![("t".into(), 1), ("u".into(), 0)]);
    }

    #[test]
    fn every_partition_has_exactly_one_owner_for_any_group_size() {
        let counts = BTreeMap::from([("t".into(), 6), ("u".into(), 5)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
            Assignor::Exclusive,
        ] {
            for n in 1..=8 {
                let members: Vec<_> = (0..n)
                    .map(|i| member(&format!("m{i}"), &["t", "u"]))
                    .collect();
                let plan = assignor.assign(&members, &counts);
                assert_eq!(plan.len(), n);
                let owners = owners(&plan);
                assert_eq!(owners.len(), 11, "{assignor:?} {n}");
                assert!(owners.values().all(|&c| c == 1), "{assignor:?} {n}");
            }
        }
    }

    #[test]
    fn only_subscribers_get_a_topic() {
        let members = [member("a", &["t"]), member("b", &["u"])];
        let counts = BTreeMap::from([("t".into(), 2), ("u".into(), 2)]);
        for assignor in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let plan = assignor.assign(&members, &counts);
            assert!(plan["a"].iter().all(|(t, _)| t == "t"), "{assignor:?}");
            assert!(plan["b"].iter().all(|(t, _)| t == "u"), "{assignor:?}");
            assert_eq!(plan["a"].len() + plan["b"].len(), 4);
        }
    }

    #[test]
    fn static_members_are_ordered_by_instance_id() {
        let mut a = member("zzz", &["t"]);
        a.group_instance_id = Some("i-1".into());
        let mut b = member("aaa", &["t"]);
        b.group_instance_id = Some("i-2".into());
        let plan = Assignor::Range.assign(&[b, a], &BTreeMap::from([("t".into(), 2)]));
        assert_eq!(plan["zzz"], vec![("t".into(), 0)]);
        assert_eq!(plan["aaa"], vec![("t".into(), 1)]);
    }

    fn owning(id: &str, owned: &[i32], generation: i32) -> MemberSubscription {
        MemberSubscription {
            owned: owned.iter().map(|&p| ("t".to_string(), p)).collect(),
            generation,
            ..member(id, &["t"])
        }
    }

    #[test]
    fn cooperative_sticky_keeps_owned_partitions_and_moves_none_in_one_round() {
        let counts = BTreeMap::from([("t".to_string(), 6)]);
        // a and b own everything; c joins.
        let members = [
            owning("a", &[0, 1, 2], 3),
            owning("b", &[3, 4, 5], 3),
            owning("c", &[], 3),
        ];
        let plan = Assignor::CooperativeSticky.assign(&members, &counts);
        let ps = |id: &str| plan[id].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        // Each keeps two; the third of each is revoked, and not yet given to c.
        assert_eq!(ps("a"), vec![0, 1]);
        assert_eq!(ps("b"), vec![3, 4]);
        assert!(ps("c").is_empty());
        // Next round (a and b revoked 2 and 5): c gets them.
        let members = [
            owning("a", &[0, 1], 4),
            owning("b", &[3, 4], 4),
            owning("c", &[], 4),
        ];
        let plan = Assignor::CooperativeSticky.assign(&members, &counts);
        let ps = |id: &str| plan[id].iter().map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!(ps("a"), vec![0, 1]);
        assert_eq!(ps("b"), vec![3, 4]);
        assert_eq!(ps("c"), vec![2, 5]);
    }

    #[test]
    fn cooperative_sticky_ignores_stale_and_conflicting_claims() {
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let members = [
            owning("a", &[0, 1], 5),
            // A stale claim on 1 (older generation) and a conflicting one on 0.
            owning("b", &[1, 2], 4),
            owning("c", &[0, 3], 5),
        ];
        let plan = Assignor::CooperativeSticky.assign(&members, &counts);
        let owners = owners(&plan);
        assert!(owners.values().all(|&c| c == 1));
        // 0 was claimed twice: nobody owns it validly, so it can be assigned now.
        assert!(owners.contains_key(&("t".to_string(), 0)));
        assert!(plan["a"].contains(&("t".to_string(), 1)));
        assert!(plan["c"].contains(&("t".to_string(), 3)));
    }

    #[test]
    fn exclusive_gives_everything_to_the_owner_and_hands_over_only_what_was_revoked() {
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let ps = |plan: &BTreeMap<String, Vec<TopicPartition>>, id: &str| {
            plan[id].iter().map(|(_, p)| *p).collect::<Vec<_>>()
        };
        // Nobody owns anything: the first member takes all.
        let plan =
            Assignor::Exclusive.assign(&[owning("b", &[], -1), owning("a", &[], -1)], &counts);
        assert_eq!(ps(&plan, "a"), vec![0, 1, 2, 3]);
        assert!(ps(&plan, "b").is_empty());
        // The owner keeps everything when members come before it in order.
        let members = [owning("c", &[0, 1, 2, 3], 2), owning("a", &[], 2)];
        let plan = Assignor::Exclusive.assign(&members, &counts);
        assert_eq!(ps(&plan, "c"), vec![0, 1, 2, 3]);
        assert!(ps(&plan, "a").is_empty());
        // Split ownership (another assignor before): the larger owner gets the
        // rest, and the other's partitions only once it revoked them.
        let members = [owning("a", &[0], 3), owning("b", &[1, 2], 3)];
        let plan = Assignor::Exclusive.assign(&members, &counts);
        assert_eq!(ps(&plan, "b"), vec![1, 2, 3]);
        assert!(ps(&plan, "a").is_empty());
        let members = [owning("a", &[], 4), owning("b", &[1, 2, 3], 4)];
        let plan = Assignor::Exclusive.assign(&members, &counts);
        assert_eq!(ps(&plan, "b"), vec![0, 1, 2, 3]);
        assert!(Assignor::Exclusive.is_cooperative());
        assert_eq!(Assignor::from_name("exclusive"), Some(Assignor::Exclusive));
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let topics = vec!["t".to_string(), "u".to_string()];
        let bytes = encode_subscription(&topics, &[("t".into(), 1)], 4, None).unwrap();
        let sub = decode_subscription(&bytes).unwrap();
        assert_eq!(sub.topics, topics);
        assert_eq!(sub.generation_id, 4);
        let parts = vec![
            ("t".to_string(), 0),
            ("t".to_string(), 3),
            ("u".to_string(), 1),
        ];
        let bytes = encode_assignment(&parts).unwrap();
        assert_eq!(decode_assignment(&bytes).unwrap(), parts);
        assert_eq!(decode_assignment(&Bytes::new()).unwrap(), Vec::new());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
    }
}
