//! Consumer-group administration: list, describe, committed offsets, lag,
//! deleting groups and offsets, and setting the offsets of an empty group.
//!
//! ```text
//!  list_groups ──► ListGroups to every broker (each lists the groups it coordinates), merged
//!  describe_group(g) ──► coordinator of g (FindCoordinator)
//!     ├─ ConsumerGroupDescribe ──► a KIP-848 consumer group
//!     └─ GROUP_ID_NOT_FOUND / unsupported ──► DescribeGroups ──► a classic group
//!                                             (assignments decoded from the consumer protocol)
//!  list_group_offsets, alter_group_offsets ──► OffsetFetch / OffsetCommit (group/offsets.rs)
//!  delete_groups, delete_group_offsets ──► DeleteGroups / OffsetDelete
//!  group_lag(g) ──► describe + committed offsets + ListOffsets(latest) per topic
//! ```
//!
//! Requests to a coordinator retry through [`Coordinator::call`] (coordinator moves,
//! loading coordinators, lost connections) for up to the admin timeout; the other
//! codes come back as [`Error::Broker`] naming the group.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use super::{Admin, OffsetSpec, check, check_on};
use crate::client::TopicPartition;
use crate::client::cluster::Lane;
use crate::client::config::IsolationLevel;
use crate::client::group::assignor::decode_assignment;
use crate::client::group::offsets::{self, Committer};
use crate::client::transaction::coordinator::{Coordinator, CoordinatorType};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::ApiKey;
use crate::protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use crate::protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest,
    OffsetDeleteRequest,
};

/// The protocol a group runs, as ListGroups (v5+) names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupType {
    /// JoinGroup/SyncGroup (`classic`).
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat (`consumer`).
    Consumer,
    /// Another type (`share`, `streams`, ...), by its name.
    Other(String),
}

impl GroupType {
    /// The type of a ListGroups `GroupType` name (case-insensitive).
    pub fn from_name(name: &str) -> GroupType {
        if name.eq_ignore_ascii_case("classic") {
            GroupType::Classic
        } else if name.eq_ignore_ascii_case("consumer") {
            GroupType::Consumer
        } else {
            GroupType::Other(name.to_string())
        }
    }

    /// The name Kafka uses (`classic`, `consumer`, ...).
    pub fn name(&self) -> &str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
            GroupType::Other(name) => name,
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// The protocol type (`consumer` for consumers, `connect`, `share`, ... or empty).
    pub protocol_type: String,
    /// The state (`Stable`, `Empty`, ...), when the broker reports it (ListGroups v4+).
    pub state: Option<String>,
    /// The group type, when the broker reports it (ListGroups v5+).
    pub group_type: Option<GroupType>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the broker saw it (e.g. `/127.0.0.1`).
    pub client_host: String,
    /// The partitions it owns, sorted (empty while a classic group rebalances, or
    /// when a classic group's protocol type is not `consumer`).
    pub assignment: Vec<TopicPartition>,
    /// The member epoch (consumer groups only).
    pub member_epoch: Option<i32>,
}

/// A group as DescribeGroups (classic) or ConsumerGroupDescribe (KIP-848) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Classic or consumer.
    pub group_type: GroupType,
    /// The state (`Stable`, `Empty`, `PreparingRebalance`, `Assigning`, ...).
    pub state: String,
    /// The protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// The assignor: the classic group's chosen protocol (`range`, ...), or the
    /// consumer group's server-side assignor (`uniform`, ...).
    pub assignor: String,
    /// The group epoch (consumer groups only).
    pub group_epoch: Option<i32>,
    /// The coordinator's `host:port`.
    pub coordinator: String,
    /// The members, sorted by member id.
    pub members: Vec<GroupMember>,
}

impl GroupDescription {
    /// The member that owns `partition`, if any.
    pub fn owner(&self, partition: &TopicPartition) -> Option<&GroupMember> {
        self.members
            .iter()
            .find(|m| m.assignment.contains(partition))
    }
}

/// One partition of [`GroupLag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// The log end offset (high watermark), unless the partition no longer exists.
    pub log_end_offset: Option<i64>,
    /// `log_end_offset - committed` when both are known.
    pub lag: Option<i64>,
    /// The member that owns the partition, if any.
    pub member_id: Option<String>,
}

/// A group's lag: its description and every partition it has a committed offset
/// for or a member owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group.
    pub description: GroupDescription,
    /// Partitions sorted by topic and partition.
    pub partitions: Vec<PartitionLag>,
}

/// The state DescribeGroups reports for a group that does not exist.
const DEAD: &str = "Dead";

/// The first retriable code of `codes` (which [`Coordinator::call`] then retries),
/// else NONE: the other codes are the caller's to report.
fn retriable(codes: impl IntoIterator<Item = i16>) -> ErrorCode {
    codes
        .into_iter()
        .map(ErrorCode::from_code)
        .find(|c| c.is_retriable())
        .unwrap_or(ErrorCode::NoError)
}

fn not_found(group: &str, detail: &str) -> Error {
    Error::broker(
        ErrorCode::GroupIdNotFound,
        format!("describe group {group}: {detail}"),
    )
}

impl Admin {
    fn coordinator(&self, group: &str) -> Coordinator {
        Coordinator::new(self.client.clone(), CoordinatorType::Group, group)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Every group of the cluster: ListGroups to each broker (each answers for the
    /// groups it coordinates), merged and sorted by group id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.client.refresh_metadata(&[]).await?;
        let mut ids: Vec<i32> = self.client.metadata().brokers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = BTreeMap::new();
        for id in ids {
            let listed = self
                .client
                .retry("ListGroups", self.timeout, || async {
                    let conn = self.client.connection(id, Lane::Control).await?;
                    let version = conn.version_for::<ListGroupsRequest>()?;
                    let response = conn
                        .call_version(&ListGroupsRequest::default(), version)
                        .await?;
                    check(ApiKey::ListGroups, response.error_code, None, || {
                        format!("list groups on node {id}")
                    })?;
                    Ok((version, response.groups))
                })
                .await?;
            let (version, groups) = listed;
            for g in groups {
                out.insert(
                    g.group_id.clone(),
                    GroupListing {
                        group_id: g.group_id,
                        protocol_type: g.protocol_type,
                        state: (version >= 4).then_some(g.group_state),
                        group_type: (version >= 5).then(|| GroupType::from_name(&g.group_type)),
                    },
                );
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes `groups`, in the order given; fails on the first group that
    /// cannot be described (GROUP_ID_NOT_FOUND for one that does not exist).
    pub async fn describe_groups(&self, groups: &[String]) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            out.push(self.describe_group(g).await?);
        }
        Ok(out)
    }

    /// Describes one group: ConsumerGroupDescribe first, and DescribeGroups when
    /// that says the group is not a consumer group (or the broker lacks it). A group
    /// that does not exist fails with GROUP_ID_NOT_FOUND (DescribeGroups before v6
    /// reports it as state `Dead`, which is mapped to the same error).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let mut coordinator = self.coordinator(group);
        let deadline = self.deadline();
        match self
            .describe_consumer_group(&mut coordinator, group, deadline)
            .await
        {
            Ok(Some(description)) => return Ok(description),
            Ok(None) | Err(Error::NoCommonVersion { .. }) => {}
            Err(e) if e.code() == Some(ErrorCode::UnsupportedVersion) => {}
            Err(e) => return Err(e),
        }
        self.describe_classic_group(&mut coordinator, group, deadline)
            .await
    }

    /// ConsumerGroupDescribe; None when the broker says the group is no consumer
    /// group (GROUP_ID_NOT_FOUND: a classic group, or none at all).
    async fn describe_consumer_group(
        &self,
        coordinator: &mut Coordinator,
        group: &str,
        deadline: Instant,
    ) -> Result<Option<GroupDescription>> {
        let request = ConsumerGroupDescribeRequest {
            group_ids: vec![group.to_string()],
            ..Default::default()
        };
        let response = coordinator
            .call(&request, None, deadline, |r| {
                retriable(r.groups.iter().map(|g| g.error_code))
            })
            .await?;
        let address = coordinator.connection().await?.broker().to_string();
        let Some(g) = response.groups.into_iter().find(|g| g.group_id == group) else {
            return Err(not_found(
                group,
                "ConsumerGroupDescribe did not answer for it",
            ));
        };
        match ErrorCode::from_code(g.error_code) {
            ErrorCode::GroupIdNotFound | ErrorCode::UnsupportedVersion => return Ok(None),
            _ => check_on(
                ApiKey::ConsumerGroupDescribe,
                g.error_code,
                g.error_message.as_deref(),
                group,
                "describe",
                || format!("describe consumer group {group}"),
            )?,
        }
        let mut members: Vec<GroupMember> = g
            .members
            .into_iter()
            .map(|m| {
                let mut assignment: Vec<TopicPartition> = m
                    .assignment
                    .topic_partitions
                    .into_iter()
                    .flat_map(|t| {
                        let topic = t.topic_name;
                        t.partitions.into_iter().map(move |p| (topic.clone(), p))
                    })
                    .collect();
                assignment.sort();
                GroupMember {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    assignment,
                    member_epoch: Some(m.member_epoch),
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(Some(GroupDescription {
            group_id: g.group_id,
            group_type: GroupType::Consumer,
            state: g.group_state,
            protocol_type: "consumer".to_string(),
            assignor: g.assignor_name,
            group_epoch: Some(g.group_epoch),
            coordinator: address,
            members,
        }))
    }

    async fn describe_classic_group(
        &self,
        coordinator: &mut Coordinator,
        group: &str,
        deadline: Instant,
    ) -> Result<GroupDescription> {
        let request = DescribeGroupsRequest {
            groups: vec![group.to_string()],
            ..Default::default()
        };
        let response = coordinator
            .call(&request, None, deadline, |r| {
                retriable(r.groups.iter().map(|g| g.error_code))
            })
            .await?;
        let address = coordinator.connection().await?.broker().to_string();
        let Some(g) = response.groups.into_iter().find(|g| g.group_id == group) else {
            return Err(not_found(group, "DescribeGroups did not answer for it"));
        };
        check_on(
            ApiKey::DescribeGroups,
            g.error_code,
            g.error_message.as_deref(),
            group,
            "describe",
            || format!("describe group {group}"),
        )?;
        if g.group_state == DEAD {
            return Err(not_found(group, "no such group (state Dead)"));
        }
        let consumer = g.protocol_type == "consumer";
        let mut members = Vec::with_capacity(g.members.len());
        for m in g.members {
            let assignment = if consumer {
                decode_assignment(&m.member_assignment)?
            } else {
                Vec::new()
            };
            members.push(GroupMember {
                member_id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                assignment,
                member_epoch: None,
            });
        }
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: g.group_id,
            group_type: GroupType::Classic,
            state: g.group_state,
            protocol_type: g.protocol_type,
            assignor: g.protocol_data,
            group_epoch: None,
            coordinator: address,
            members,
        })
    }

    /// The committed offsets of `group` (OffsetFetch, all topics; the last stable
    /// offsets, not waiting for open transactions). A group without any, or one
    /// that does not exist, has none.
    pub async fn list_group_offsets(&self, group: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut coordinator = self.coordinator(group);
        offsets::fetch_all(&mut coordinator, group, false, self.deadline()).await
    }

    /// Deletes `groups` (DeleteGroups, each at its coordinator); fails on the first
    /// one refused (NON_EMPTY_GROUP while it has members, GROUP_ID_NOT_FOUND).
    pub async fn delete_groups(&self, groups: &[String]) -> Result<()> {
        for group in groups {
            let mut coordinator = self.coordinator(group);
            let request = DeleteGroupsRequest {
                groups_names: vec![group.clone()],
                ..Default::default()
            };
            let response = coordinator
                .call(&request, None, self.deadline(), |r| {
                    retriable(r.results.iter().map(|g| g.error_code))
                })
                .await?;
            for r in response.results {
                check_on(
                    ApiKey::DeleteGroups,
                    r.error_code,
                    None,
                    &r.group_id,
                    "delete",
                    || format!("delete group {}", r.group_id),
                )?;
            }
        }
        Ok(())
    }

    /// Deletes the committed offsets of `partitions` in `group` (OffsetDelete).
    /// The broker refuses partitions of topics the group's members are subscribed
    /// to (GROUP_SUBSCRIBED_TO_TOPIC).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for (t, p) in partitions {
            topics
                .entry(t)
                .or_default()
                .push(OffsetDeleteRequestPartition {
                    partition_index: *p,
                });
        }
        let request = OffsetDeleteRequest {
            group_id: group.to_string(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetDeleteRequestTopic {
                    name: name.to_string(),
                    partitions,
                })
                .collect(),
        };
        let mut coordinator = self.coordinator(group);
        let response = coordinator
            .call(&request, None, self.deadline(), |r| {
                retriable(
                    std::iter::once(r.error_code).chain(
                        r.topics
                            .iter()
                            .flat_map(|t| &t.partitions)
                            .map(|p| p.error_code),
                    ),
                )
            })
            .await?;
        check_on(
            ApiKey::OffsetDelete,
            response.error_code,
            None,
            group,
            "delete",
            || format!("delete offsets of group {group}"),
        )?;
        for t in response.topics {
            for p in t.partitions {
                check_on(
                    ApiKey::OffsetDelete,
                    p.error_code,
                    None,
                    &t.name,
                    "read",
                    || {
                        format!(
                            "delete offset of group {group} for {}-{}",
                            t.name, p.partition_index
                        )
                    },
                )
                .map_err(|e| e.with_partition(&t.name, p.partition_index))?;
            }
        }
        Ok(())
    }

    /// Sets committed offsets of `group` as an admin does: OffsetCommit with
    /// generation -1 and no member id, which the broker accepts only while the
    /// group has no members (else UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION, reported
    /// as "the group has active members"). A group that does not exist is created.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut coordinator = self.coordinator(group);
        let who = Committer {
            group_id: group,
            member_id: String::new(),
            generation_or_epoch: -1,
            instance_id: None,
        };
        let code = offsets::commit(&mut coordinator, who, offsets, 9, self.deadline()).await?;
        match code {
            ErrorCode::NoError => Ok(()),
            ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::StaleMemberEpoch
            | ErrorCode::FencedMemberEpoch => Err(Error::broker(
                code,
                format!(
                    "alter offsets of group {group}: the group has active members (only an empty group's offsets can be altered)"
                ),
            )
            .with_api(ApiKey::OffsetCommit)),
            code => Err(
                Error::broker(code, format!("alter offsets of group {group}"))
                    .with_api(ApiKey::OffsetCommit),
            ),
        }
    }

    /// The lag of `group`: its description, and per partition it has a committed
    /// offset for or a member owns, the committed offset against the log end offset
    /// (ListOffsets latest, read_uncommitted, as Kafka's tools compute it).
    /// Partitions of topics that no longer exist have no log end offset.
    pub async fn group_lag(&self, group: &str) -> Result<GroupLag> {
        let description = self.describe_group(group).await?;
        let committed = self.list_group_offsets(group).await?;
        let mut partitions: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        for m in &description.members {
            partitions.extend(m.assignment.iter().cloned());
        }
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        let mut ends: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for (topic, wanted) in by_topic {
            let existing: Vec<i32> = match self.client.topic(topic).await {
                Ok(info) => {
                    let known: BTreeSet<i32> =
                        info.partitions.iter().map(|p| p.partition).collect();
                    wanted.into_iter().filter(|p| known.contains(p)).collect()
                }
                Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => Vec::new(),
                Err(e) => return Err(e),
            };
            if existing.is_empty() {
                continue;
            }
            let listed = self
                .list_offsets(
                    topic,
                    &existing,
                    OffsetSpec::Latest,
                    IsolationLevel::ReadUncommitted,
                )
                .await?;
            for (p, o) in listed {
                ends.insert((topic.to_string(), p), o.offset);
            }
        }
        let partitions = partitions
            .into_iter()
            .map(|tp| {
                let committed = committed.get(&tp).copied();
                let log_end_offset = ends.get(&tp).copied();
                let lag = committed.zip(log_end_offset).map(|(c, e)| e - c);
                let member_id = description.owner(&tp).map(|m| m.member_id.clone());
                PartitionLag {
                    topic: tp.0,
                    partition: tp.1,
                    committed,
                    log_end_offset,
                    lag,
                    member_id,
                }
            })
            .collect();
        Ok(GroupLag {
            description,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_types_read_kafka_names() {
        assert_eq!(GroupType::from_name("classic"), GroupType::Classic);
        assert_eq!(GroupType::from_name("Consumer"), GroupType::Consumer);
        assert_eq!(
            GroupType::from_name("share"),
            GroupType::Other("share".into())
        );
        assert_eq!(GroupType::Consumer.to_string(), "consumer");
    }

    #[test]
    fn only_retriable_codes_are_left_to_the_coordinator_retry() {
        assert_eq!(
            retriable([0, ErrorCode::GroupIdNotFound.code()]),
            ErrorCode::NoError
        );
        assert_eq!(
            retriable([
                ErrorCode::GroupIdNotFound.code(),
                ErrorCode::CoordinatorLoadInProgress.code()
            ]),
            ErrorCode::CoordinatorLoadInProgress
        );
    }

    #[test]
    fn the_owner_of_a_partition_is_the_member_assigned_it() {
        let member = |id: &str, parts: &[i32]| GroupMember {
            member_id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            assignment: parts.iter().map(|&p| ("t".to_string(), p)).collect(),
            member_epoch: None,
        };
        let d = GroupDescription {
            group_id: "g".into(),
            group_type: GroupType::Classic,
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            assignor: "range".into(),
            group_epoch: None,
            coordinator: "127.0.0.1:9092".into(),
            members: vec![member("a", &[0, 1]), member("b", &[2])],
        };
        assert_eq!(d.owner(&("t".into(), 2)).map(|m| &*m.member_id), Some("b"));
        assert!(d.owner(&("t".into(), 3)).is_none());
    }
}
