//! Partition assignors run by the group leader: `range` and `roundrobin`, as the
//! Java client's RangeAssignor and RoundRobinAssignor define them,
//! `cooperative-sticky` (balanced and sticky, moving partitions in two rounds,
//! KIP-429), `cooperative-copartitioned` (the same over partition numbers: one
//! member gets partition p of every topic), `exclusive` (every partition to one
//! member, the others stand by), and the embedded consumer protocol
//! (subscription and assignment bytes).
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
    /// [`Assignor::CooperativeSticky`] over partition numbers: partition p of
    /// every subscribed topic goes to one member (co-partitioned, as `range`
    /// gives topics of equal partition counts to members subscribed to the
    /// same topics), balanced by partition numbers, sticky, and moving a number
    /// in two rounds (`cooperative-copartitioned`). For state keyed by
    /// partition number over several topics (a join of co-partitioned topics,
    /// or an input and its repartition topic).
    CooperativeCopartitioned,
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
            Assignor::CooperativeCopartitioned => "cooperative-copartitioned",
            Assignor::Exclusive => "exclusive",
        }
    }

    /// Whether the assignor uses the cooperative (incremental) rebalance protocol.
    pub fn is_cooperative(self) -> bool {
        matches!(
            self,
            Assignor::CooperativeSticky | Assignor::CooperativeCopartitioned | Assignor::Exclusive
        )
    }

    /// The assignor with this protocol name, if implemented.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            "cooperative-copartitioned" => Some(Assignor::CooperativeCopartitioned),
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
        let mut out = empty_plan(&sorted);
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
            Assignor::CooperativeCopartitioned => {
                return cooperative_copartitioned(&sorted, partitions);
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

/// The topics some member subscribes to that exist, with their partition counts.
fn subscribed<'a>(
    members: &[&'a MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<&'a String, i32> {
    members
        .iter()
        .flat_map(|m| &m.topics)
        .filter_map(|t| partitions.get(t).map(|&c| (t, c)))
        .collect()
}

/// Every member with nothing assigned yet.
fn empty_plan(members: &[&MemberSubscription]) -> BTreeMap<String, Vec<TopicPartition>> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// How many of `total` each member may hold: `total / members`, and one more
/// for the first `total % members` members by most `claims` (ties in order).
fn quotas<'a>(
    members: &[&'a MemberSubscription],
    total: usize,
    claims: impl Fn(&MemberSubscription) -> usize,
) -> BTreeMap<&'a str, usize> {
    let n = members.len().max(1);
    let (base, extra) = (total / n, total % n);
    let mut by_claims: Vec<&&MemberSubscription> = members.iter().collect();
    by_claims.sort_by_key(|m| std::cmp::Reverse(claims(m)));
    by_claims
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.as_str(), base + usize::from(i < extra)))
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
    let mut out = empty_plan(members);
    if members.is_empty() {
        return out;
    }
    let all: BTreeSet<TopicPartition> = subscribed(members, partitions)
        .into_iter()
        .flat_map(|(t, c)| (0..c).map(move |p| (t.clone(), p)))
        .collect();
    // 1. Valid claims.
    let owner = valid_owners(members, partitions);
    // 2. Keep owned partitions up to the quota.
    let quota = quotas(members, all.len(), |m| {
        owner.values().filter(|o| **o == m.member_id).count()
    });
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

/// The cooperative co-partitioned plan: see [`Assignor::CooperativeCopartitioned`].
///
/// A *unit* is a partition number with the partitions of that number of every
/// subscribed topic. Only members subscribed to every topic of a unit can take
/// it (a unit no member can take stays unassigned).
/// 1. Valid ownership claims per partition, as in `cooperative-sticky`; a
///    member owns a unit when it holds a valid claim on one of its partitions
///    and nobody else does.
/// 2. Each member keeps its owned units up to its quota (units / members, the
///    first `units % members` members with the most units may keep one more).
/// 3. Every other unit goes to the eligible member with the fewest.
/// 4. A unit any of whose partitions another member validly owns is left out
///    of the new owner's assignment this round, whole: its old owners revoke
///    and rejoin, and the next round assigns it, so no member ever holds part
///    of a unit because of this assignor.
fn cooperative_copartitioned(
    members: &[&MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out = empty_plan(members);
    if members.is_empty() {
        return out;
    }
    let topics = subscribed(members, partitions);
    let widest = topics.values().copied().max().unwrap_or(0).max(0);
    let unit = |p: i32| -> Vec<TopicPartition> {
        topics
            .iter()
            .filter(|(_, c)| p < **c)
            .map(|(t, _)| ((*t).clone(), p))
            .collect()
    };
    let eligible = |m: &MemberSubscription, p: i32| {
        topics
            .iter()
            .filter(|(_, c)| p < **c)
            .all(|(t, _)| m.topics.contains(t))
    };
    // 1. Valid claims, and the units they make.
    let owner = valid_owners(members, partitions);
    let claimants = |p: i32| -> BTreeSet<&str> {
        unit(p)
            .iter()
            .filter_map(|tp| owner.get(tp).copied())
            .collect()
    };
    let unit_owner: BTreeMap<i32, &str> = (0..widest)
        .filter_map(|p| {
            let who = claimants(p);
            let only = who.iter().next().copied()?;
            (who.len() == 1).then_some((p, only))
        })
        .collect();
    // 2. Keep owned units up to the quota.
    let quota = quotas(members, widest as usize, |m| {
        unit_owner.values().filter(|o| **o == m.member_id).count()
    });
    let mut assigned: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    let mut taken: BTreeSet<i32> = BTreeSet::new();
    for m in members {
        let keep = unit_owner
            .iter()
            .filter(|(p, o)| **o == m.member_id && eligible(m, **p))
            .map(|(p, _)| *p)
            .take(quota.get(m.member_id.as_str()).copied().unwrap_or(0));
        for p in keep {
            taken.insert(p);
            assigned.entry(&m.member_id).or_default().push(p);
        }
    }
    // 3. The rest to the least loaded eligible member.
    for p in (0..widest).filter(|p| !taken.contains(p)) {
        let Some(m) = members
            .iter()
            .filter(|m| eligible(m, p))
            .min_by_key(|m| assigned.get(m.member_id.as_str()).map_or(0, Vec::len))
        else {
            continue;
        };
        assigned.entry(&m.member_id).or_default().push(p);
    }
    // 4. No partition of a unit changes hands in one round.
    for (member, units) in assigned {
        let entry = out.entry(member.to_string()).or_default();
        for p in units {
            if claimants(p).iter().all(|o| *o == member) {
                entry.extend(unit(p));
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
            Assignor::CooperativeCopartitioned,
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

    fn numbers(plan: &BTreeMap<String, Vec<TopicPartition>>, id: &str, topic: &str) -> Vec<i32> {
        plan[id]
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| *p)
            .collect()
    }

    #[test]
    fn cooperative_copartitioned_gives_one_member_each_number_of_every_topic() {
        let counts = BTreeMap::from([("t".into(), 6), ("u".into(), 6)]);
        let members: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| member(id, &["t", "u"]))
            .collect();
        let plan = Assignor::CooperativeCopartitioned.assign(&members, &counts);
        for id in ["a", "b", "c"] {
            assert_eq!(numbers(&plan, id, "t").len(), 2, "{id}");
            assert_eq!(numbers(&plan, id, "t"), numbers(&plan, id, "u"), "{id}");
        }
        assert!(owners(&plan).values().all(|&c| c == 1));
        assert_eq!(owners(&plan).len(), 12);
        // A topic with fewer partitions: the higher numbers hold only the wider topic.
        let counts = BTreeMap::from([("t".into(), 4), ("u".into(), 2)]);
        let plan = Assignor::CooperativeCopartitioned.assign(&members[..2], &counts);
        assert_eq!(owners(&plan).len(), 6);
        for id in ["a", "b"] {
            let u = numbers(&plan, id, "u");
            assert!(
                u.iter().all(|p| numbers(&plan, id, "t").contains(p)),
                "{id}"
            );
        }
        assert!(Assignor::CooperativeCopartitioned.is_cooperative());
        assert_eq!(
            Assignor::from_name("cooperative-copartitioned"),
            Some(Assignor::CooperativeCopartitioned)
        );
    }

    fn owning_both(id: &str, owned: &[i32], generation: i32) -> MemberSubscription {
        MemberSubscription {
            owned: owned
                .iter()
                .flat_map(|&p| [("t".to_string(), p), ("u".to_string(), p)])
                .collect(),
            generation,
            ..member(id, &["t", "u"])
        }
    }

    #[test]
    fn cooperative_copartitioned_moves_whole_numbers_in_two_rounds() {
        let counts = BTreeMap::from([("t".to_string(), 4), ("u".to_string(), 4)]);
        let plan = Assignor::CooperativeCopartitioned.assign(
            &[owning_both("a", &[0, 1, 2, 3], 3), owning_both("b", &[], 3)],
            &counts,
        );
        // a keeps two numbers of both topics; the others are revoked, not yet given.
        assert_eq!(numbers(&plan, "a", "t"), vec![0, 1]);
        assert_eq!(numbers(&plan, "a", "u"), vec![0, 1]);
        assert!(plan["b"].is_empty());
        let plan = Assignor::CooperativeCopartitioned.assign(
            &[owning_both("a", &[0, 1], 4), owning_both("b", &[], 4)],
            &counts,
        );
        assert_eq!(numbers(&plan, "a", "t"), vec![0, 1]);
        assert_eq!(numbers(&plan, "b", "t"), vec![2, 3]);
        assert_eq!(numbers(&plan, "b", "u"), vec![2, 3]);
        // Ownership split by another assignor before: number 0 (t-0 a's, u-0
        // b's) goes to nobody until both revoked their part.
        let mut a = owning("a", &[0], 5);
        a.topics.push("u".into());
        let mut b = owning("b", &[], 5);
        b.topics.push("u".into());
        b.owned = vec![("u".to_string(), 0)];
        let plan = Assignor::CooperativeCopartitioned.assign(&[a, b], &counts);
        assert!(owners(&plan).keys().all(|(_, p)| *p != 0), "{plan:?}");
    }

    /// Members join and leave at random; each round the members own what the
    /// round before gave them. Every round: no partition held twice or given
    /// to a member while another held it, every member co-partitioned; two
    /// rounds after a change, every partition assigned and the numbers
    /// balanced.
    #[test]
    fn cooperative_copartitioned_stays_co_partitioned_and_settles_through_joins_and_leaves() {
        let counts = BTreeMap::from([("t".to_string(), 8), ("u".to_string(), 8)]);
        let mut seed: u64 = 0x5eed;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut held: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        let mut generation = 0;
        let mut serial = 0;
        for change in 0..60 {
            // Join (up to 5 members), or leave (at least 1 stays).
            if held.len() < 2 || (held.len() < 5 && next(2) == 0) {
                serial += 1;
                held.insert(format!("m{serial}"), Vec::new());
            } else {
                let gone = held.keys().nth(next(held.len() as u64) as usize).cloned();
                held.remove(&gone.unwrap());
            }
            for round in 0..2 {
                let members: Vec<MemberSubscription> = held
                    .iter()
                    .map(|(id, owned)| MemberSubscription {
                        owned: owned.clone(),
                        generation,
                        ..member(id, &["t", "u"])
                    })
                    .collect();
                generation += 1;
                let plan = Assignor::CooperativeCopartitioned.assign(&members, &counts);
                assert!(
                    owners(&plan).values().all(|&c| c == 1),
                    "{change}: {plan:?}"
                );
                for (id, tps) in &plan {
                    for tp in tps {
                        let other = held.iter().any(|(o, owned)| o != id && owned.contains(tp));
                        assert!(
                            !other,
                            "{change}/{round}: {tp:?} to {id} while another holds it"
                        );
                    }
                    assert_eq!(numbers(&plan, id, "t"), numbers(&plan, id, "u"), "{change}");
                }
                held = plan;
            }
            let all = owners(&held);
            assert_eq!(all.len(), 16, "{change}: settled with everything assigned");
            let sizes: Vec<usize> = held.values().map(Vec::len).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 2, "{change}: balanced by numbers: {sizes:?}");
        }
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
