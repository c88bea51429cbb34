//! The shared client: bootstrap, cluster metadata, and a pool of broker connections.
//!
//! ```text
//!  Producer ─┐                      ┌─► Connection (node 1, lane Control)
//!  Consumer ─┼─► Client ─► pool ────┼─► Connection (node 1, lane Produce)
//!  Admin ────┘     │                └─► Connection (node 2, lane Fetch) ...
//!                  └─► ClusterMetadata (brokers, topic -> partition leaders)
//! ```
//!
//! One connection per broker and lane, shared by every user of the client. Lanes
//! exist because a broker answers the requests of one connection strictly one after
//! another: a fetch that long-polls for `fetch.max.wait.ms` would otherwise hold up
//! produce and group requests queued behind it.
//!
//! Metadata is refreshed when it is older than `metadata.max.age.ms`, when a caller
//! reports a stale leader ([`Client::invalidate_topic`]), and updated in place from
//! the leader hints newer brokers put in produce and fetch errors (KIP-951,
//! [`Client::update_leader`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::config::ClientConfig;
use super::connection::{Connection, ConnectionOptions};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::MetadataRequest;
use crate::protocol::messages::metadata_request::MetadataRequestTopic;
use crate::protocol::{ApiKey, Uuid};
use crate::sync::{lock, read, write};

/// Which kind of traffic a connection carries; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Metadata, admin, coordinator and transaction requests.
    Control,
    /// Produce requests.
    Produce,
    /// Fetch requests.
    Fetch,
}

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition's leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, or -1 when there is none.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// The partition's error in the metadata response (e.g. LEADER_NOT_AVAILABLE).
    pub error: ErrorCode,
}

/// One topic's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Whether the topic is internal (`__consumer_offsets`, ...).
    pub is_internal: bool,
    /// Partitions, indexed by partition number.
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of what the client knows about the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    /// Cluster id.
    pub cluster_id: Option<String>,
    /// The controller's node id as the broker reports it (-1 if unknown).
    pub controller_id: i32,
    /// Brokers by node id.
    pub brokers: HashMap<i32, BrokerInfo>,
    /// Topics by name (only those asked for so far).
    pub topics: HashMap<String, TopicInfo>,
}

struct TopicEntry {
    info: Option<TopicInfo>,
    /// The topic-level code of the answer (NONE when `info` is set).
    error: ErrorCode,
    fetched: Instant,
}

struct Slot {
    connection: Option<Connection>,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

type SharedSlot = Arc<tokio::sync::Mutex<Slot>>;

struct Inner {
    config: ClientConfig,
    brokers: RwLock<HashMap<i32, BrokerInfo>>,
    cluster: RwLock<(Option<String>, i32)>,
    topics: RwLock<HashMap<String, TopicEntry>>,
    pool: Mutex<HashMap<(String, Lane), SharedSlot>>,
    refresh: tokio::sync::Mutex<()>,
}

/// A Kafka client shared by producers, consumers and admin: cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.config.bootstrap_servers)
            .finish()
    }
}

impl Client {
    /// Connects to the first reachable bootstrap server and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let client = Client {
            inner: Arc::new(Inner {
                config,
                brokers: RwLock::new(HashMap::new()),
                cluster: RwLock::new((None, -1)),
                topics: RwLock::new(HashMap::new()),
                pool: Mutex::new(HashMap::new()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        };
        client.refresh_metadata(&[]).await?;
        Ok(client)
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn connection_options(&self) -> ConnectionOptions {
        let c = &self.inner.config;
        ConnectionOptions {
            client_id: c.client_id.clone(),
            request_timeout: c.request_timeout,
            connect_timeout: c.connection_setup_timeout,
            max_in_flight: c.max_in_flight_per_connection,
            max_response_size: c.max_response_size,
            security: c.security.clone(),
        }
    }

    /// The connection to `address` on `lane`, opening it (after the reconnect
    /// backoff, if the last attempt failed) when there is none or it has failed.
    pub async fn connection_to(&self, address: &str, lane: Lane) -> Result<Connection> {
        let slot = {
            let mut pool = lock(&self.inner.pool);
            pool.entry((address.to_string(), lane))
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(Slot {
                        connection: None,
                        backoff: Backoff::new(
                            self.inner.config.reconnect_backoff,
                            self.inner.config.reconnect_backoff_max,
                        ),
                        retry_at: None,
                    }))
                })
                .clone()
        };
        let mut slot = slot.lock().await;
        if let Some(conn) = &slot.connection {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
            debug!(address, ?lane, "reconnecting after a failed connection");
            slot.connection = None;
        }
        if let Some(at) = slot.retry_at {
            tokio::time::sleep_until(at.into()).await;
        }
        match Connection::connect(address, self.connection_options()).await {
            Ok(conn) => {
                slot.backoff.reset();
                slot.retry_at = None;
                slot.connection = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let delay = slot.backoff.next_delay();
                slot.retry_at = Some(Instant::now() + delay);
                Err(e)
            }
        }
    }

    /// The connection to broker `node_id` on `lane`.
    pub async fn connection(&self, node_id: i32, lane: Lane) -> Result<Connection> {
        let address = self.broker_address(node_id).await?;
        self.connection_to(&address, lane).await
    }

    async fn broker_address(&self, node_id: i32) -> Result<String> {
        if let Some(b) = read(&self.inner.brokers).get(&node_id) {
            return Ok(b.address());
        }
        self.refresh_metadata(&[]).await?;
        read(&self.inner.brokers)
            .get(&node_id)
            .map(BrokerInfo::address)
            // Retriable: the broker left the cluster (killed, fenced) and its
            // partitions get new leaders, which a later metadata refresh names.
            .ok_or_else(|| Error::Disconnected {
                broker: format!("node {node_id}"),
                reason: "not in the cluster metadata (the broker left the cluster)".into(),
            })
    }

    /// A connection to any live broker (known brokers first, then the bootstrap list).
    pub async fn any_connection(&self, lane: Lane) -> Result<Connection> {
        let mut candidates: Vec<String> = {
            let brokers = read(&self.inner.brokers);
            let mut ids: Vec<_> = brokers.keys().copied().collect();
            ids.sort_unstable();
            ids.iter()
                .filter_map(|id| brokers.get(id).map(BrokerInfo::address))
                .collect()
        };
        for b in &self.inner.config.bootstrap_servers {
            if !candidates.contains(b) {
                candidates.push(b.clone());
            }
        }
        let mut last = None;
        for address in candidates {
            match self.connection_to(&address, lane).await {
                Ok(conn) => return Ok(conn),
                // The same TLS and SASL settings fail the same way on every broker.
                Err(e) if e.is_security_failure() => return Err(e),
                Err(e) => {
                    debug!(address, error = %e, "broker unreachable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config {
            key: "bootstrap.servers".into(),
            message: "no broker to connect to".into(),
        }))
    }

    /// Fetches metadata for `topics` (only brokers when empty) and updates the cache.
    /// Concurrent refreshes are coalesced.
    pub async fn refresh_metadata(&self, topics: &[String]) -> Result<()> {
        let topics = topics
            .iter()
            .map(|t| MetadataRequestTopic {
                name: Some(t.clone()),
                ..Default::default()
            })
            .collect();
        self.fetch_metadata(Some(topics)).await.map(drop)
    }

    /// Every topic of the cluster (a Metadata request with no topic list), internal
    /// ones included, sorted by name; the cache is updated with them.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let mut topics = self.fetch_metadata(None).await?;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One Metadata request (`None`: every topic), retried until the request
    /// timeout (a TLS or authentication failure is not retried); updates brokers, cluster and topic caches and returns the topics
    /// the broker answered without error.
    async fn fetch_metadata(
        &self,
        topics: Option<Vec<MetadataRequestTopic>>,
    ) -> Result<Vec<TopicInfo>> {
        let _guard = self.inner.refresh.lock().await;
        let request = MetadataRequest {
            topics,
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let mut backoff = Backoff::new(
            self.inner.config.retry_backoff,
            self.inner.config.retry_backoff_max,
        );
        let deadline = Instant::now() + self.inner.config.request_timeout;
        let response = loop {
            let attempt = async {
                let conn = self.any_connection(Lane::Control).await?;
                conn.call(&request).await
            };
            match attempt.await {
                Ok(r) => break r,
                Err(e) if Instant::now() < deadline && !e.is_security_failure() => {
                    warn!(error = %e, "metadata request failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        };
        let brokers: HashMap<i32, BrokerInfo> = response
            .brokers
            .iter()
            .filter_map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id,
                    host: b.host.clone(),
                    port: u16::try_from(b.port).ok()?,
                    rack: b.rack.clone(),
                };
                Some((b.node_id, info))
            })
            .collect();
        if !brokers.is_empty() {
            *write(&self.inner.brokers) = brokers;
        }
        *write(&self.inner.cluster) = (response.cluster_id.clone(), response.controller_id);
        let now = Instant::now();
        let mut cache = write(&self.inner.topics);
        let mut answered = Vec::new();
        for t in response.topics {
            let Some(name) = t.name.clone() else { continue };
            let code = ErrorCode::from_code(t.error_code);
            let info = if code.is_ok() {
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.clone(),
                        isr: p.isr_nodes.clone(),
                        error: ErrorCode::from_code(p.error_code),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                Some(TopicInfo {
                    name: name.clone(),
                    id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                })
            } else {
                debug!(topic = name, %code, "topic metadata error");
                None
            };
            answered.extend(info.clone());
            cache.insert(
                name,
                TopicEntry {
                    info,
                    error: code,
                    fetched: now,
                },
            );
        }
        Ok(answered)
    }

    /// The metadata of `topic`, from the cache when fresh, else from a broker.
    ///
    /// Fails with UNKNOWN_TOPIC_OR_PARTITION when the topic does not exist, and
    /// at once with [`Error::Authorization`] when the broker refused to describe it
    /// (TOPIC_AUTHORIZATION_FAILED: the principal has no right on the topic).
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        if let Some(info) = self.cached_topic(topic) {
            return Ok(info);
        }
        self.refresh_metadata(&[topic.to_string()]).await?;
        if let Some(info) = self.cached_topic(topic) {
            return Ok(info);
        }
        let refused = read(&self.inner.topics)
            .get(topic)
            .map(|e| e.error)
            .filter(|c| *c == ErrorCode::TopicAuthorizationFailed);
        Err(match refused {
            Some(code) => Error::from_refusal(code, topic, "describe", String::new),
            None => Error::broker(
                ErrorCode::UnknownTopicOrPartition,
                format!("metadata for topic {topic}"),
            )
            .with_api(ApiKey::Metadata),
        })
    }

    fn cached_topic(&self, topic: &str) -> Option<TopicInfo> {
        let cache = read(&self.inner.topics);
        let entry = cache.get(topic)?;
        if entry.fetched.elapsed() > self.inner.config.metadata_max_age {
            return None;
        }
        entry.info.clone()
    }

    /// Forgets the cached metadata of `topic`, so the next lookup asks a broker
    /// (after NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, a fenced leader epoch).
    pub fn invalidate_topic(&self, topic: &str) {
        write(&self.inner.topics).remove(topic);
    }

    /// Applies a leader hint (KIP-951): the new leader and epoch of one partition, and
    /// the broker's address when the response carried it. Hints older than what the
    /// cache holds are ignored.
    pub fn update_leader(
        &self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        endpoint: Option<BrokerInfo>,
    ) {
        if leader < 0 {
            return;
        }
        if let Some(b) = endpoint {
            write(&self.inner.brokers).insert(b.node_id, b);
        }
        let mut cache = write(&self.inner.topics);
        if let Some(p) = cache
            .get_mut(topic)
            .and_then(|e| e.info.as_mut())
            .and_then(|i| i.partitions.iter_mut().find(|p| p.partition == partition))
        {
            if leader_epoch >= p.leader_epoch {
                info!(
                    topic,
                    partition, leader, leader_epoch, "leader moved (broker hint)"
                );
                p.leader = leader;
                p.leader_epoch = leader_epoch;
            }
        }
    }

    /// The cached leader of a partition, without asking a broker (None when unknown,
    /// stale, or leaderless).
    pub fn cached_leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let cache = read(&self.inner.topics);
        let entry = cache.get(topic)?;
        if entry.fetched.elapsed() > self.inner.config.metadata_max_age {
            return None;
        }
        let p = entry
            .info
            .as_ref()?
            .partitions
            .iter()
            .find(|p| p.partition == partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// The cached partition count of a topic, without cloning its metadata or
    /// asking a broker (None when unknown or stale). The producer's per-record path.
    pub fn cached_partition_count(&self, topic: &str) -> Option<i32> {
        let cache = read(&self.inner.topics);
        let entry = cache.get(topic)?;
        if entry.fetched.elapsed() > self.inner.config.metadata_max_age {
            return None;
        }
        let n = entry.info.as_ref()?.partitions.len();
        (n > 0).then_some(n as i32)
    }

    /// Records a broker's address (from a KIP-951 `node_endpoints` hint).
    pub fn add_broker(&self, broker: BrokerInfo) {
        write(&self.inner.brokers).insert(broker.node_id, broker);
    }

    /// The leader node and epoch of a partition.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, i32)> {
        let info = self.topic(topic).await?;
        let p = info
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| {
                Error::broker(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("{topic}-{partition}"),
                )
                .with_partition(topic, partition)
            })?;
        if p.leader < 0 {
            self.invalidate_topic(topic);
            return Err(Error::broker(
                ErrorCode::LeaderNotAvailable,
                format!("{topic}-{partition}"),
            )
            .with_partition(topic, partition));
        }
        Ok((p.leader, p.leader_epoch))
    }

    /// What the client knows about the cluster now.
    pub fn metadata(&self) -> ClusterMetadata {
        let (cluster_id, controller_id) = read(&self.inner.cluster).clone();
        ClusterMetadata {
            cluster_id,
            controller_id,
            brokers: read(&self.inner.brokers).clone(),
            topics: read(&self.inner.topics)
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.info.clone()?)))
                .collect(),
        }
    }

    /// Retries `op` on retriable errors with the configured backoff until `timeout`.
    pub async fn retry<T, F, Fut>(&self, what: &str, timeout: Duration, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(
            self.inner.config.retry_backoff,
            self.inner.config.retry_backoff_max,
        );
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    debug!(what, error = %e, "retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
