//! OffsetCommit and OffsetFetch against the group coordinator, shared by both
//! group protocols: the classic one commits under a generation (OffsetCommit v8,
//! OffsetFetch v7), the consumer protocol (KIP-848) under a member epoch
//! (OffsetCommit v9, OffsetFetch v9 with the member id and epoch).
//! The admin (`admin/groups.rs`) reads and sets a group's offsets through the
//! same calls, as no member (OffsetFetch v7 for all topics, OffsetCommit with
//! generation -1).
//!
//! Topics are named, not identified by id: OffsetCommit v10 and OffsetFetch v10
//! (topic ids only) stay unused, see `client_max_version`.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::client::TopicPartition;
use crate::client::transaction::coordinator::Coordinator;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use crate::protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use crate::protocol::messages::{OffsetCommitRequest, OffsetFetchRequest};

/// A group-level error code as an error naming the request and the group;
/// GROUP_AUTHORIZATION_FAILED as [`Error::Authorization`] (describe for
/// OffsetFetch, read for membership and commits).
pub(crate) fn group_error(code: ErrorCode, what: &str, group: &str) -> Error {
    let context = || format!("{what} (group {group})");
    if code != ErrorCode::GroupAuthorizationFailed {
        return Error::broker(code, context());
    }
    let operation = if what.starts_with("OffsetFetch") {
        "describe"
    } else {
        "read"
    };
    Error::from_refusal(code, group, operation, context)
}

/// A member's fatal error (a refused KIP-848 membership) as the error every poll
/// returns: GROUP_AUTHORIZATION_FAILED as [`Error::Authorization`] on the group.
pub(crate) fn member_fatal(code: ErrorCode, context: String, group: &str) -> Error {
    if code == ErrorCode::GroupAuthorizationFailed {
        Error::from_refusal(code, group, "read", || context)
    } else {
        Error::broker(code, context)
    }
}

/// Who commits: the member's identity as the coordinator checks it.
#[derive(Debug, Clone)]
pub(crate) struct Committer<'a> {
    pub group_id: &'a str,
    pub member_id: String,
    /// The generation (classic) or the member epoch (consumer protocol).
    pub generation_or_epoch: i32,
    pub instance_id: Option<String>,
}

/// Sends OffsetCommit (at most `max_version`) and returns the first partition
/// error code (NONE when every partition was committed). Retriable codes and
/// coordinator moves are retried by [`Coordinator::call`] until `deadline`.
pub(crate) async fn commit(
    coordinator: &mut Coordinator,
    who: Committer<'_>,
    offsets: &BTreeMap<TopicPartition, i64>,
    max_version: i16,
    deadline: Instant,
) -> Result<ErrorCode> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), offset) in offsets {
        topics
            .entry(t)
            .or_default()
            .push(OffsetCommitRequestPartition {
                partition_index: *p,
                committed_offset: *offset,
                ..Default::default()
            });
    }
    let request = OffsetCommitRequest {
        group_id: who.group_id.to_string(),
        generation_id_or_member_epoch: who.generation_or_epoch,
        member_id: who.member_id,
        group_instance_id: who.instance_id,
        topics: topics
            .into_iter()
            .map(|(name, partitions)| OffsetCommitRequestTopic {
                name: name.to_string(),
                partitions,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let response = coordinator
        .call(&request, Some(max_version), deadline, |r| {
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| ErrorCode::from_code(p.error_code))
                .find(|c| c.is_retriable())
                .unwrap_or(ErrorCode::NoError)
        })
        .await?;
    // A topic the principal may not read fails the commit naming that topic.
    for t in &response.topics {
        for p in &t.partitions {
            if ErrorCode::from_code(p.error_code) == ErrorCode::TopicAuthorizationFailed {
                return Err(Error::from_refusal(
                    ErrorCode::TopicAuthorizationFailed,
                    &t.name,
                    "read",
                    String::new,
                ));
            }
        }
    }
    Ok(ErrorCode::first_error(
        response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code),
    ))
}

/// The member a KIP-848 OffsetFetch (v9) is checked against: its id and epoch.
#[derive(Debug, Clone)]
pub(crate) struct FetchingMember {
    pub member_id: String,
    pub member_epoch: i32,
}

/// Sends OffsetFetch with `require_stable` (offsets of open transactions are
/// waited for): v7 without a member, v9 (the `groups` layout, with the member id
/// and epoch) with one. Partitions without a committed offset are left out.
pub(crate) async fn fetch(
    coordinator: &mut Coordinator,
    group_id: &str,
    member: Option<FetchingMember>,
    partitions: &[TopicPartition],
    deadline: Instant,
) -> Result<BTreeMap<TopicPartition, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t).or_default().push(*p);
    }
    let Some(member) = member else {
        let topics = topics
            .into_iter()
            .map(|(name, partition_indexes)| OffsetFetchRequestTopic {
                name: name.to_string(),
                partition_indexes,
                ..Default::default()
            })
            .collect();
        return fetch_v7(coordinator, group_id, Some(topics), true, deadline).await;
    };
    // The `groups` layout exists from v8 on; the member fields from v9 on.
    let version = coordinator
        .connection()
        .await?
        .version_at_most::<OffsetFetchRequest>(9)?;
    if version < 9 {
        return Err(Error::NoCommonVersion {
            api: "OffsetFetch v9 (consumer group protocol)",
            broker: format!("group coordinator of {group_id}"),
        });
    }
    let request = OffsetFetchRequest {
        groups: vec![OffsetFetchRequestGroup {
            group_id: group_id.to_string(),
            member_id: Some(member.member_id),
            member_epoch: member.member_epoch,
            topics: Some(
                topics
                    .into_iter()
                    .map(|(name, partition_indexes)| OffsetFetchRequestTopics {
                        name: name.to_string(),
                        partition_indexes,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }],
        topics: Some(Vec::new()),
        require_stable: true,
        ..Default::default()
    };
    let response = coordinator
        .call(&request, Some(9), deadline, |r| {
            ErrorCode::first_error(r.groups.iter().flat_map(|g| {
                std::iter::once(g.error_code).chain(
                    g.topics
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .map(|p| p.error_code),
                )
            }))
        })
        .await?;
    let mut out = BTreeMap::new();
    for g in response.groups {
        for t in g.topics {
            for p in t.partitions {
                if p.committed_offset >= 0 {
                    out.insert((t.name.clone(), p.partition_index), p.committed_offset);
                }
            }
        }
    }
    Ok(out)
}

/// Every committed offset of `group_id` (OffsetFetch v7 without a member, all
/// topics), as an admin reads them. With `require_stable`, offsets of open
/// transactions are waited for; without, the last stable ones are returned.
pub(crate) async fn fetch_all(
    coordinator: &mut Coordinator,
    group_id: &str,
    require_stable: bool,
    deadline: Instant,
) -> Result<BTreeMap<TopicPartition, i64>> {
    fetch_v7(coordinator, group_id, None, require_stable, deadline).await
}

/// OffsetFetch (at most v7, one group, no member): `topics` None asks for all.
async fn fetch_v7(
    coordinator: &mut Coordinator,
    group_id: &str,
    topics: Option<Vec<OffsetFetchRequestTopic>>,
    require_stable: bool,
    deadline: Instant,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let request = OffsetFetchRequest {
        group_id: group_id.to_string(),
        topics,
        require_stable,
        ..Default::default()
    };
    let response = coordinator
        .call(&request, Some(7), deadline, |r| {
            ErrorCode::first_error(
                std::iter::once(r.error_code).chain(
                    r.topics
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .map(|p| p.error_code),
                ),
            )
        })
        .await?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.committed_offset >= 0 {
                out.insert((t.name.clone(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}
