//! Admin operations: topics, partitions, offsets, cluster and configs; consumer
//! groups in `groups.rs`; deleting records in `records.rs`; ACLs in `acls.rs`.
//!
//! Topic and config changes go to the controller id that metadata reports (with
//! KRaft that is any broker, which forwards to the quorum), with retries on
//! NOT_CONTROLLER and other retriable errors. Offset lookups and record deletion go
//! to each partition's leader.

mod acls;
mod groups;

pub use acls::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType,
    PatternTypeFilter, ResourcePattern, ResourceType,
};
pub use groups::{GroupDescription, GroupLag, GroupListing, GroupMember, GroupType, PartitionLag};

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::cluster::{BrokerInfo, Client, Lane};
use super::config::IsolationLevel;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::create_partitions_request::CreatePartitionsTopic;
use crate::protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use crate::protocol::messages::delete_topics_request::DeleteTopicState;
use crate::protocol::messages::describe_configs_request::DescribeConfigsResource;
use crate::protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use crate::protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use crate::protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, ListOffsetsRequest,
};
use crate::protocol::{ApiKey, Request, Uuid};

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions (-1: the broker's `num.partitions`).
    pub partitions: i32,
    /// Replication factor (-1: the broker's `default.replication.factor`).
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's default replication.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = rf;
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// Which offset [`Admin::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark, or the last stable offset under read_committed).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// One partition's answer to [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset (-1 when no record has a timestamp at or after the one asked for).
    pub offset: i64,
    /// The timestamp of the record at that offset (-1 for earliest/latest).
    pub timestamp: i64,
    /// The leader epoch of that record, if known (-1 otherwise).
    pub leader_epoch: i32,
}

/// A config entry as DescribeConfigs returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Value (None for sensitive or unset values).
    pub value: Option<String>,
    /// Whether the value is the default.
    pub is_default: bool,
    /// Whether the config cannot be changed.
    pub read_only: bool,
    /// Whether the value is sensitive (hidden).
    pub is_sensitive: bool,
    /// Where the value comes from.
    pub source: ConfigSource,
}

/// Where a config's value comes from (DescribeConfigs' `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic itself (`DYNAMIC_TOPIC_CONFIG`): what `alter_topic_configs` changes.
    Topic,
    /// A dynamic config of one broker (`DYNAMIC_BROKER_CONFIG`).
    DynamicBroker,
    /// A dynamic default of all brokers (`DYNAMIC_DEFAULT_BROKER_CONFIG`).
    DynamicDefaultBroker,
    /// The broker's `server.properties` (`STATIC_BROKER_CONFIG`).
    StaticBroker,
    /// Kafka's default (`DEFAULT_CONFIG`).
    Default,
    /// Any other source, by its wire value (0 is `UNKNOWN`).
    Other(i8),
}

impl ConfigSource {
    fn from_wire(v: i8) -> Self {
        match v {
            1 => ConfigSource::Topic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

/// How [`Admin::alter_topic_configs`] changes one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Set the value.
    Set(String),
    /// Revert to the default.
    Delete,
}

/// The cluster as DescribeCluster reports it.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    /// Cluster id.
    pub cluster_id: String,
    /// Controller node id as reported to clients.
    pub controller_id: i32,
    /// Brokers.
    pub brokers: Vec<BrokerInfo>,
}

const TOPIC_RESOURCE: i8 = 2;

mod records;

pub use records::DELETE_ALL_RECORDS;

/// Admin operations over a [`Client`].
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
    timeout: Duration,
}

/// A broker's answer to `api` as a result: its error code, with the broker's
/// message (if any) after the context.
fn check(
    api: ApiKey,
    code: i16,
    message: Option<&str>,
    context: impl FnOnce() -> String,
) -> Result<()> {
    let code = ErrorCode::from_code(code);
    if code.is_ok() {
        return Ok(());
    }
    Err(Error::broker(code, with_message(context(), message)).with_api(api))
}

fn with_message(mut context: String, message: Option<&str>) -> String {
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        context.push_str(": ");
        context.push_str(m);
    }
    context
}

/// [`check`] for an operation on a named resource: an authorization code becomes
/// [`Error::Authorization`] naming `resource` and `operation`.
fn check_on(
    api: ApiKey,
    code: i16,
    message: Option<&str>,
    resource: &str,
    operation: &'static str,
    context: impl FnOnce() -> String,
) -> Result<()> {
    let code = ErrorCode::from_code(code);
    if code.is_ok() {
        return Ok(());
    }
    Err(Error::from_refusal(code, resource, operation, || {
        with_message(context(), message)
    })
    .with_api(api))
}

impl Admin {
    /// Admin operations over `client`; operations retry for up to `request.timeout.ms`.
    pub fn new(client: Client) -> Self {
        let timeout = client.config().request_timeout;
        Admin { client, timeout }
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn controller(&self) -> Result<super::connection::Connection> {
        let id = self.client.metadata().controller_id;
        if id >= 0 {
            if let Ok(conn) = self.client.connection(id, Lane::Control).await {
                return Ok(conn);
            }
        }
        self.client.any_connection(Lane::Control).await
    }

    /// `request.timeout.ms` as the `timeout_ms` field of a request.
    fn timeout_ms(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }

    /// Sends `request` to the controller, retried on retriable errors (a moved
    /// controller included) until the admin timeout.
    async fn call_controller<R: Request>(&self, api: &str, request: &R) -> Result<R::Response> {
        self.client
            .retry(api, self.timeout, || async {
                self.controller().await?.call(request).await
            })
            .await
    }

    /// Sends `request` to any broker, retried like [`Admin::call_controller`].
    async fn call_any<R: Request>(&self, api: &str, request: &R) -> Result<R::Response> {
        self.client
            .retry(api, self.timeout, || async {
                self.client
                    .any_connection(Lane::Control)
                    .await?
                    .call(request)
                    .await
            })
            .await
    }

    /// Sends `request` once to broker `leader` (the leader of the partitions it
    /// names); the caller retries and checks each partition's answer with
    /// [`Admin::check_leader_answer`].
    async fn call_leader<R: Request>(&self, leader: i32, request: &R) -> Result<R::Response> {
        self.client
            .connection(leader, Lane::Control)
            .await?
            .call(request)
            .await
    }

    /// Checks one partition's answer from its leader `node`; a stale leader (a
    /// leader change, a restarted broker, a topic not yet known there) drops the
    /// topic's cached metadata first, so that the caller's retry asks the new leader.
    fn check_leader_answer<R: Request>(
        &self,
        (topic, partition): (&str, i32),
        node: i32,
        code: i16,
        operation: &'static str,
        context: impl FnOnce() -> String,
    ) -> Result<()> {
        if matches!(
            ErrorCode::from_code(code),
            ErrorCode::NotLeaderOrFollower
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::UnknownTopicOrPartition
        ) {
            self.client.invalidate_topic(topic);
        }
        check_on(R::API_KEY, code, None, topic, operation, context)
            .map_err(|e| e.with_partition(topic, partition).with_node(node))
    }

    /// Creates topics; fails if any could not be created (TOPIC_ALREADY_EXISTS included).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<HashMap<String, Uuid>> {
        let request = CreateTopicsRequest {
            topics: topics
                .iter()
                .map(|t| CreatableTopic {
                    name: t.name.clone(),
                    num_partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    configs: t
                        .configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig {
                            name: k.clone(),
                            value: Some(v.clone()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            timeout_ms: self.timeout_ms(),
            validate_only: false,
            ..Default::default()
        };
        let response = self
            .client
            .retry("CreateTopics", self.timeout, || async {
                let response = self.controller().await?.call(&request).await?;
                for t in &response.topics {
                    if ErrorCode::from_code(t.error_code) == ErrorCode::NotController {
                        self.client.refresh_metadata(&[]).await?;
                        return Err(Error::broker(ErrorCode::NotController, "CreateTopics")
                            .with_api(ApiKey::CreateTopics));
                    }
                }
                Ok(response)
            })
            .await?;
        let mut ids = HashMap::new();
        for t in response.topics {
            check_on(
                ApiKey::CreateTopics,
                t.error_code,
                t.error_message.as_deref(),
                &t.name,
                "create",
                || format!("create topic {}", t.name),
            )?;
            ids.insert(t.name, t.topic_id);
        }
        for t in topics {
            self.client.invalidate_topic(&t.name);
        }
        Ok(ids)
    }

    /// Deletes topics by name.
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        let request = DeleteTopicsRequest {
            topics: names
                .iter()
                .map(|n| DeleteTopicState {
                    name: Some(n.clone()),
                    ..Default::default()
                })
                .collect(),
            topic_names: names.to_vec(),
            timeout_ms: self.timeout_ms(),
            ..Default::default()
        };
        let response = self.call_controller("DeleteTopics", &request).await?;
        for r in response.responses {
            let name = r.name.clone().unwrap_or_default();
            check_on(
                ApiKey::DeleteTopics,
                r.error_code,
                r.error_message.as_deref(),
                &name,
                "delete",
                || format!("delete topic {name}"),
            )?;
            self.client.invalidate_topic(&name);
        }
        Ok(())
    }

    /// Raises the partition count of `topic` to `total`.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let request = CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: topic.to_string(),
                count: total,
                assignments: None,
                ..Default::default()
            }],
            timeout_ms: self.timeout_ms(),
            validate_only: false,
            ..Default::default()
        };
        let response = self.call_controller("CreatePartitions", &request).await?;
        for r in response.results {
            check_on(
                ApiKey::CreatePartitions,
                r.error_code,
                r.error_message.as_deref(),
                &r.name,
                "alter",
                || format!("create partitions of {}", r.name),
            )?;
        }
        self.client.invalidate_topic(topic);
        Ok(())
    }

    /// Looks up offsets for partitions of `topic`, asking each partition's leader.
    /// A stale leader (after a leader change or a broker restart) refreshes the
    /// metadata and asks again, until the admin timeout.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<BTreeMap<i32, ListedOffset>> {
        self.client
            .retry("ListOffsets", self.timeout, || {
                self.list_offsets_once(topic, partitions, spec, isolation)
            })
            .await
    }

    /// [`Admin::list_offsets`] in one attempt: a partition whose broker does not
    /// (yet) lead it is an error, with no metadata refresh and no retry.
    pub async fn list_offsets_once(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        isolation: IsolationLevel,
    ) -> Result<BTreeMap<i32, ListedOffset>> {
        let mut out = BTreeMap::new();
        let mut by_leader: BTreeMap<i32, Vec<(i32, i32)>> = BTreeMap::new();
        for &p in partitions {
            let (leader, epoch) = self.client.leader(topic, p).await?;
            by_leader.entry(leader).or_default().push((p, epoch));
        }
        for (leader, parts) in by_leader {
            let request = ListOffsetsRequest {
                replica_id: -1,
                isolation_level: isolation.wire_value(),
                topics: vec![ListOffsetsTopic {
                    name: topic.to_string(),
                    partitions: parts
                        .iter()
                        .map(|&(p, epoch)| ListOffsetsPartition {
                            partition_index: p,
                            current_leader_epoch: epoch,
                            timestamp: spec.wire(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                timeout_ms: self.timeout_ms(),
                ..Default::default()
            };
            let response = self.call_leader(leader, &request).await?;
            for t in response.topics {
                for p in t.partitions {
                    let at = (topic, p.partition_index);
                    self.check_leader_answer::<ListOffsetsRequest>(
                        at,
                        leader,
                        p.error_code,
                        "describe",
                        || format!("list offsets {topic}-{}", p.partition_index),
                    )?;
                    let offset = p.offset;
                    out.insert(
                        p.partition_index,
                        ListedOffset {
                            offset,
                            timestamp: p.timestamp,
                            leader_epoch: p.leader_epoch,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Describes the cluster: id, controller, brokers.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let request = DescribeClusterRequest::default();
        let r = self.call_any("DescribeCluster", &request).await?;
        check(
            ApiKey::DescribeCluster,
            r.error_code,
            r.error_message.as_deref(),
            || "describe cluster".to_string(),
        )?;
        Ok(ClusterDescription {
            cluster_id: r.cluster_id,
            controller_id: r.controller_id,
            brokers: r
                .brokers
                .into_iter()
                .filter_map(|b| {
                    Some(BrokerInfo {
                        node_id: b.broker_id,
                        host: b.host,
                        port: u16::try_from(b.port).ok()?,
                        rack: b.rack,
                    })
                })
                .collect(),
        })
    }

    /// The configs of `topic` (all of them, including defaults).
    pub async fn describe_topic_configs(
        &self,
        topic: &str,
    ) -> Result<BTreeMap<String, ConfigEntry>> {
        let request = DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: TOPIC_RESOURCE,
                resource_name: topic.to_string(),
                configuration_keys: None,
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = self.call_any("DescribeConfigs", &request).await?;
        let mut out = BTreeMap::new();
        for r in response.results {
            check_on(
                ApiKey::DescribeConfigs,
                r.error_code,
                r.error_message.as_deref(),
                topic,
                "describe configs",
                || format!("describe configs of {topic}"),
            )?;
            for c in r.configs {
                out.insert(
                    c.name,
                    ConfigEntry {
                        value: c.value,
                        // DescribeConfigs v1+: source 5 is DEFAULT_CONFIG.
                        is_default: c.config_source == 5,
                        read_only: c.read_only,
                        is_sensitive: c.is_sensitive,
                        source: ConfigSource::from_wire(c.config_source),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Changes configs of `topic` (IncrementalAlterConfigs: other configs stay as they are).
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        changes: &BTreeMap<String, AlterConfigOp>,
    ) -> Result<()> {
        let request = IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: TOPIC_RESOURCE,
                resource_name: topic.to_string(),
                configs: changes
                    .iter()
                    .map(|(k, op)| AlterableConfig {
                        name: k.clone(),
                        config_operation: match op {
                            AlterConfigOp::Set(_) => 0,
                            AlterConfigOp::Delete => 1,
                        },
                        value: match op {
                            AlterConfigOp::Set(v) => Some(v.clone()),
                            AlterConfigOp::Delete => None,
                        },
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            validate_only: false,
            ..Default::default()
        };
        let response = self
            .call_controller("IncrementalAlterConfigs", &request)
            .await?;
        for r in response.responses {
            check_on(
                ApiKey::IncrementalAlterConfigs,
                r.error_code,
                r.error_message.as_deref(),
                topic,
                "alter configs",
                || format!("alter configs of {topic}"),
            )?;
        }
        Ok(())
    }
}
