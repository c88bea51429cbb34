//! Client configuration under the Java client's property names.
//!
//! [`ProducerConfig`] and [`ConsumerConfig`] are built from a map or a `.properties`
//! file with the keys a Java user already has (`bootstrap.servers`, `acks`,
//! `linger.ms`, `isolation.level`, ...), with the Java defaults. An invalid value is
//! an error naming the key. A key that no Kafka client knows (a typo) is an error
//! too; a key that belongs to the other role (a producer key given to a consumer,
//! as in a shared `kafka.properties`) or that only makes sense in Java
//! (`key.serializer`, `interceptor.classes`, ...) is ignored with a debug log.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::security;
use crate::error::{Error, Result};

/// How many acknowledgements the producer waits for (`acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: fire and forget; no response is awaited.
    None,
    /// `acks=1`: the leader has written the batch.
    Leader,
    /// `acks=all` (or `-1`): every in-sync replica has the batch.
    All,
}

impl Acks {
    /// The value of the produce request's `acks` field.
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Compression codec named by `compression.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy (xerial framing for Java peers).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// zstd.
    Zstd,
}

/// Which records a consumer sees (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions.
    ReadUncommitted,
    /// Only records of committed transactions, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The value of the fetch request's `isolation_level` field.
    pub fn wire_value(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Where a consumer starts when it has no valid position (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// Fail with an error instead of resetting.
    None,
}

/// The group protocol a consumer uses (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with client-side assignment.
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat with broker-side assignment.
    Consumer,
}

/// Settings every client shares.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` pairs to fetch metadata from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`: sent in every request header.
    pub client_id: String,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `retry.backoff.ms`: first delay before retrying a failed request.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: cap of the exponential retry delay.
    pub retry_backoff_max: Duration,
    /// `reconnect.backoff.ms`: first delay before reconnecting to a broker.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`: cap of the exponential reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// `socket.connection.setup.timeout.ms`.
    pub connection_setup_timeout: Duration,
    /// `metadata.max.age.ms`: metadata is refreshed at least this often.
    pub metadata_max_age: Duration,
    /// `strom.max.response.bytes`: responses larger than this fail the connection.
    pub max_response_size: usize,
    /// `strom.max.in.flight.requests`: pipelined requests per connection.
    pub max_in_flight_per_connection: usize,
    /// `security.protocol` with its `ssl.*` and `sasl.*` settings.
    pub security: super::security::SecurityConfig,
}

/// Producer settings (`acks`, `linger.ms`, `batch.size`, ...).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Shared client settings.
    pub client: ClientConfig,
    /// `acks`.
    pub acks: Acks,
    /// `linger.ms`: how long a batch may wait for more records.
    pub linger: Duration,
    /// `batch.size`: bytes at which a partition's batch is sent without lingering.
    pub batch_size: usize,
    /// `compression.type`.
    pub compression: CompressionType,
    /// `enable.idempotence`.
    pub enable_idempotence: bool,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// `retries`.
    pub retries: u32,
    /// `delivery.timeout.ms`: upper bound from `send` to success or failure.
    pub delivery_timeout: Duration,
    /// `buffer.memory`: bytes of records waiting to be sent before `send` waits.
    pub buffer_memory: usize,
    /// `max.request.size`: largest record (and request) accepted.
    pub max_request_size: usize,
    /// `max.block.ms`: how long `send` may wait for buffer space or metadata.
    pub max_block: Duration,
    /// `transactional.id`.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`.
    pub transaction_timeout: Duration,
    /// `partitioner.ignore.keys`: spread keyed records like unkeyed ones.
    pub partitioner_ignore_keys: bool,
}

/// Consumer settings (`group.id`, `isolation.level`, `fetch.*`, ...).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Shared client settings.
    pub client: ClientConfig,
    /// `group.id`.
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership (KIP-345).
    pub group_instance_id: Option<String>,
    /// `group.protocol`.
    pub group_protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker-side assignor (`uniform`, `range`) the
    /// consumer protocol asks for; `None` lets the broker use its default.
    pub group_remote_assignor: Option<String>,
    /// `isolation.level`.
    pub isolation_level: IsolationLevel,
    /// `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit` (default false here: strom commits with its checkpoints).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records`.
    pub max_poll_records: usize,
    /// `max.poll.interval.ms`.
    pub max_poll_interval: Duration,
    /// `session.timeout.ms` (classic protocol; with `group.protocol=consumer` the
    /// broker's `group.consumer.session.timeout.ms` applies).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (classic protocol; with `group.protocol=consumer`
    /// the broker sets the interval and this only delays the first heartbeat).
    pub heartbeat_interval: Duration,
    /// `partition.assignment.strategy`, as assignor names (`range`, `roundrobin`,
    /// `cooperative-sticky`, `cooperative-copartitioned`, `exclusive`); classic
    /// protocol only.
    pub partition_assignment_strategy: Vec<String>,
    /// `check.crcs`.
    pub check_crcs: bool,
    /// `client.rack`.
    pub client_rack: Option<String>,
}

/// Keys of the Java clients that have no meaning here (serializer classes, JMX,
/// socket buffer sizes the OS chooses, idle and setup limits this client does
/// not apply): accepted and ignored.
const JAVA_ONLY_KEYS: &[&str] = &[
    "socket.connection.setup.timeout.max.ms",
    "connections.max.idle.ms",
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "interceptor.classes",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "auto.include.jmx.reporter",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "partitioner.class",
    "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms",
    "client.dns.lookup",
    "enable.metrics.push",
    "allow.auto.create.topics",
    "exclude.internal.topics",
    "default.api.timeout.ms",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "metadata.max.idle.ms",
];

/// A property map being read, with typed getters that name the key in errors.
/// It records every key asked for: the readers' own reads are the table of known
/// keys (see [`keys_read_by`]), so the keys accepted and the keys parsed cannot
/// drift apart. A reader therefore asks for each of its keys whatever the other
/// values are (a key read only under some setting would be unknown otherwise).
struct Props<'a> {
    map: &'a BTreeMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

/// The keys `read` asks for, found by running it over a map holding only the
/// required `bootstrap.servers` (every other key at its default).
fn keys_read_by<T>(read: impl FnOnce(&Props<'_>) -> Result<T>) -> BTreeSet<String> {
    let map = bootstrap_only("localhost:9092");
    let p = Props::new(&map);
    // The defaults always parse (a unit test holds this); were one to fail, the
    // keys asked for up to it are still known.
    let _ = read(&p);
    p.asked.into_inner()
}

/// A property map holding only `bootstrap.servers`.
fn bootstrap_only(servers: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("bootstrap.servers".to_string(), servers.to_string())])
}

/// A client role read from properties: its parser, its rules, and the other
/// role, whose keys it accepts and ignores (as in a shared `kafka.properties`).
trait Role: Sized {
    /// The other role.
    type Other: Role;
    /// Parses every key of the role (and the client's), each at its default when
    /// absent.
    fn parse(p: &Props<'_>) -> Result<Self>;
    /// The rules that tie the role's settings together.
    fn rules(&self) -> Result<()>;
}

/// Reads a config of role `R` from `map`: refuses unknown keys, parses, then
/// checks the rules.
fn from_map<R: Role>(map: &BTreeMap<String, String>) -> Result<R> {
    let p = Props::new(map);
    p.check_keys(&keys_read_by(R::parse), &keys_read_by(R::Other::parse))?;
    let config = R::parse(&p)?;
    config.rules()?;
    Ok(config)
}

impl Role for ProducerConfig {
    type Other = ConsumerConfig;
    fn parse(p: &Props<'_>) -> Result<Self> {
        Self::read(p)
    }
    fn rules(&self) -> Result<()> {
        self.validate()
    }
}

impl Role for ConsumerConfig {
    type Other = ProducerConfig;
    fn parse(p: &Props<'_>) -> Result<Self> {
        Self::read(p)
    }
    fn rules(&self) -> Result<()> {
        self.validate()
    }
}

impl<'a> Props<'a> {
    fn new(map: &'a BTreeMap<String, String>) -> Self {
        Props {
            map,
            asked: RefCell::new(BTreeSet::new()),
        }
    }

    fn invalid(key: &str, value: &str, expected: &str) -> Error {
        Error::Config {
            key: key.to_string(),
            message: format!("invalid value {value:?}: expected {expected}"),
        }
    }

    fn str(&self, key: &str) -> Option<&'a str> {
        self.asked.borrow_mut().insert(key.to_string());
        self.map.get(key).map(|v| v.trim())
    }

    fn string(&self, key: &str) -> Option<String> {
        self.str(key).filter(|v| !v.is_empty()).map(str::to_string)
    }

    fn u64(&self, key: &str, default: u64) -> Result<u64> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| Self::invalid(key, v, "a non-negative integer")),
        }
    }

    fn ms(&self, key: &str, default_ms: u64) -> Result<Duration> {
        self.u64(key, default_ms).map(Duration::from_millis)
    }

    fn bounded(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64> {
        let v = self.u64(key, default)?;
        if v < min || v > max {
            return Err(Error::Config {
                key: key.to_string(),
                message: format!("{v} is out of range [{min}, {max}]"),
            });
        }
        Ok(v)
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.str(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(Self::invalid(key, v, "true or false")),
        }
    }

    /// Refuses a key that neither `own` (this role's reader) nor `other` (the
    /// other role's) asks for, unless it is Java-only or a TLS/SASL setting (read
    /// only under the `security.protocol` that needs it).
    fn check_keys(&self, own: &BTreeSet<String>, other: &BTreeSet<String>) -> Result<()> {
        for key in self.map.keys() {
            if own.contains(key) {
                continue;
            }
            let key = key.as_str();
            if other.contains(key)
                || JAVA_ONLY_KEYS.contains(&key)
                || security::SECURITY_KEYS.contains(&key)
            {
                tracing::debug!(key, "ignoring property that does not apply to this client");
                continue;
            }
            let message = match security::LIBRDKAFKA_SECURITY_KEYS
                .iter()
                .find(|(theirs, _)| *theirs == key)
            {
                Some((_, ours)) => {
                    format!("unknown property (librdkafka's name; this client reads {ours})")
                }
                None => "unknown property".to_string(),
            };
            return Err(Error::Config {
                key: key.to_string(),
                message,
            });
        }
        Ok(())
    }
}

fn read_properties_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        key: path.display().to_string(),
        message: format!("cannot read properties file: {e}"),
    })?;
    Ok(super::properties::parse(&text))
}

impl ClientConfig {
    /// A config for the given bootstrap servers with every other setting at its default.
    pub fn new(bootstrap_servers: &str) -> Result<Self> {
        Self::read(&Props::new(&bootstrap_only(bootstrap_servers)))
    }

    fn read(p: &Props<'_>) -> Result<Self> {
        let servers: Vec<String> = p
            .str("bootstrap.servers")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(Error::Config {
                key: "bootstrap.servers".into(),
                message: "required: a comma-separated list of host:port".into(),
            });
        }
        for s in &servers {
            let port = s.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(Props::invalid("bootstrap.servers", s, "host:port"));
            }
        }
        let security = super::security::SecurityConfig::from_properties(&|key| {
            p.str(key).map(str::to_string)
        })?;
        Ok(ClientConfig {
            bootstrap_servers: servers,
            client_id: p.string("client.id").unwrap_or_else(|| "strom".to_string()),
            request_timeout: p.ms("request.timeout.ms", 30_000)?,
            retry_backoff: p.ms("retry.backoff.ms", 100)?,
            retry_backoff_max: p.ms("retry.backoff.max.ms", 1_000)?,
            reconnect_backoff: p.ms("reconnect.backoff.ms", 50)?,
            reconnect_backoff_max: p.ms("reconnect.backoff.max.ms", 1_000)?,
            connection_setup_timeout: p.ms("socket.connection.setup.timeout.ms", 10_000)?,
            metadata_max_age: p.ms("metadata.max.age.ms", 300_000)?,
            max_response_size: p.bounded("strom.max.response.bytes", 256 << 20, 1 << 10, 1 << 31)?
                as usize,
            max_in_flight_per_connection: p.bounded("strom.max.in.flight.requests", 64, 1, 4096)?
                as usize,
            security,
        })
    }
}

impl ProducerConfig {
    /// Reads a producer config from Java-style properties.
    pub fn from_properties(map: &BTreeMap<String, String>) -> Result<Self> {
        from_map(map)
    }

    /// Parses every producer key (and the client's), each at its Java default
    /// when absent.
    fn read(p: &Props<'_>) -> Result<Self> {
        let client = ClientConfig::read(p)?;
        let acks = match p.str("acks").unwrap_or("all") {
            "0" => Acks::None,
            "1" => Acks::Leader,
            "all" | "-1" => Acks::All,
            v => return Err(Props::invalid("acks", v, "0, 1, all or -1")),
        };
        let compression = match p.str("compression.type").unwrap_or("none") {
            "none" => CompressionType::None,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            v => {
                return Err(Props::invalid(
                    "compression.type",
                    v,
                    "none, gzip, snappy, lz4 or zstd",
                ));
            }
        };
        let max_in_flight =
            p.bounded("max.in.flight.requests.per.connection", 5, 1, 1_000)? as usize;
        let retries = p.bounded("retries", i32::MAX as u64, 0, i32::MAX as u64)? as u32;
        let transactional_id = p.string("transactional.id");
        // As the Java client: idempotence is on by default, and switched off quietly
        // when it was not asked for explicitly and other settings rule it out.
        let enable_idempotence = match p.str("enable.idempotence") {
            Some(_) => p.bool("enable.idempotence", true)?,
            None => {
                !(acks != Acks::All || max_in_flight > 5 || retries == 0)
                    || transactional_id.is_some()
            }
        };
        let linger = p.ms("linger.ms", 5)?;
        let delivery_timeout = p.ms("delivery.timeout.ms", 120_000)?;
        Ok(ProducerConfig {
            acks,
            linger,
            batch_size: p.bounded("batch.size", 16_384, 0, 1 << 30)? as usize,
            compression,
            enable_idempotence,
            max_in_flight,
            retries,
            delivery_timeout,
            buffer_memory: p.bounded("buffer.memory", 32 << 20, 1 << 10, 1 << 40)? as usize,
            max_request_size: p.bounded("max.request.size", 1 << 20, 1 << 10, 1 << 30)? as usize,
            max_block: p.ms("max.block.ms", 60_000)?,
            transactional_id,
            transaction_timeout: p.ms("transaction.timeout.ms", 60_000)?,
            partitioner_ignore_keys: p.bool("partitioner.ignore.keys", false)?,
            client,
        })
    }

    /// Checks the rules that tie settings together, naming the key to change:
    /// idempotence needs `acks=all`, at most 5 requests in flight and retries; a
    /// `transactional.id` needs idempotence; `delivery.timeout.ms` covers
    /// `linger.ms` + `request.timeout.ms`. [`ProducerConfig::from_properties`]
    /// and the producers' constructors call it, so a config built in code is
    /// checked as one read from a file.
    pub fn validate(&self) -> Result<()> {
        let refuse = |key: &str, message: String| {
            Err(Error::Config {
                key: key.into(),
                message,
            })
        };
        if self.max_in_flight == 0 {
            return refuse(
                "max.in.flight.requests.per.connection",
                "must be at least 1".into(),
            );
        }
        if self.enable_idempotence {
            if self.acks != Acks::All {
                return refuse("acks", "idempotence requires acks=all".into());
            }
            if self.max_in_flight > 5 {
                return refuse(
                    "max.in.flight.requests.per.connection",
                    "idempotence allows at most 5 requests in flight".into(),
                );
            }
            if self.retries == 0 {
                return refuse("retries", "idempotence requires retries > 0".into());
            }
        } else if self.transactional_id.is_some() {
            return refuse(
                "enable.idempotence",
                "a transactional.id requires idempotence".into(),
            );
        }
        let floor = self.linger + self.client.request_timeout;
        if self.delivery_timeout < floor {
            return refuse(
                "delivery.timeout.ms",
                format!(
                    "must be at least linger.ms + request.timeout.ms ({} ms)",
                    floor.as_millis()
                ),
            );
        }
        Ok(())
    }

    /// Reads a producer config from a Java `.properties` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        from_map(&read_properties_file(path.as_ref())?)
    }

    /// A producer config for the given bootstrap servers with Java defaults.
    pub fn new(bootstrap_servers: &str) -> Result<Self> {
        from_map(&bootstrap_only(bootstrap_servers))
    }
}

impl ConsumerConfig {
    /// Reads a consumer config from Java-style properties.
    pub fn from_properties(map: &BTreeMap<String, String>) -> Result<Self> {
        from_map(map)
    }

    /// Parses every consumer key (and the client's), each at its default when
    /// absent.
    fn read(p: &Props<'_>) -> Result<Self> {
        let client = ClientConfig::read(p)?;
        let isolation_level = match p.str("isolation.level").unwrap_or("read_uncommitted") {
            "read_uncommitted" => IsolationLevel::ReadUncommitted,
            "read_committed" => IsolationLevel::ReadCommitted,
            v => {
                return Err(Props::invalid(
                    "isolation.level",
                    v,
                    "read_uncommitted or read_committed",
                ));
            }
        };
        let auto_offset_reset = match p.str("auto.offset.reset").unwrap_or("latest") {
            "earliest" => OffsetReset::Earliest,
            "latest" => OffsetReset::Latest,
            "none" => OffsetReset::None,
            v => {
                return Err(Props::invalid(
                    "auto.offset.reset",
                    v,
                    "earliest, latest or none",
                ));
            }
        };
        let group_protocol = match p
            .str("group.protocol")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("classic") => GroupProtocol::Classic,
            Some("consumer") => GroupProtocol::Consumer,
            Some(v) => return Err(Props::invalid("group.protocol", v, "classic or consumer")),
        };
        if group_protocol == GroupProtocol::Consumer {
            // KIP-848: the broker assigns partitions and owns the session and heartbeat
            // timing; a setting that would be silently ignored is refused (as in Java).
            for key in [
                "partition.assignment.strategy",
                "session.timeout.ms",
                "heartbeat.interval.ms",
            ] {
                if p.str(key).is_some() {
                    return Err(Error::Config {
                        key: key.into(),
                        message: "not used with group.protocol=consumer (the broker decides it; see group.remote.assignor and the broker's group.consumer.* settings)".into(),
                    });
                }
            }
        }
        let strategies: Vec<String> = p
            .str("partition.assignment.strategy")
            .unwrap_or("range,cooperative-sticky")
            .split(',')
            .map(|s| assignor_name(s.trim()))
            .collect::<Result<_>>()?;
        let session_timeout = p.ms("session.timeout.ms", 45_000)?;
        let heartbeat_interval = p.ms("heartbeat.interval.ms", 3_000)?;
        let i32_max = i32::MAX as u64;
        Ok(ConsumerConfig {
            group_id: p.string("group.id"),
            group_instance_id: p.string("group.instance.id"),
            group_protocol,
            group_remote_assignor: p.string("group.remote.assignor"),
            isolation_level,
            auto_offset_reset,
            enable_auto_commit: p.bool("enable.auto.commit", false)?,
            auto_commit_interval: p.ms("auto.commit.interval.ms", 5_000)?,
            fetch_min_bytes: p.bounded("fetch.min.bytes", 1, 0, i32_max)? as i32,
            fetch_max_bytes: p.bounded("fetch.max.bytes", 52_428_800, 0, i32_max)? as i32,
            fetch_max_wait: p.ms("fetch.max.wait.ms", 500)?,
            max_partition_fetch_bytes: p.bounded(
                "max.partition.fetch.bytes",
                1 << 20,
                0,
                i32_max,
            )? as i32,
            max_poll_records: p.bounded("max.poll.records", 500, 1, i32_max)? as usize,
            max_poll_interval: p.ms("max.poll.interval.ms", 300_000)?,
            session_timeout,
            heartbeat_interval,
            partition_assignment_strategy: strategies,
            check_crcs: p.bool("check.crcs", true)?,
            client_rack: p.string("client.rack"),
            client,
        })
    }

    /// Checks the rules that tie settings together, naming the key to change:
    /// heartbeats more often than the session timeout, at least one record per
    /// poll, known assignors. [`ConsumerConfig::from_properties`] and the group
    /// consumer's constructors call it, so a config built in code is checked as
    /// one read from a file.
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_interval >= self.session_timeout {
            return Err(Error::Config {
                key: "heartbeat.interval.ms".into(),
                message: "must be lower than session.timeout.ms".into(),
            });
        }
        if self.max_poll_records == 0 {
            return Err(Error::Config {
                key: "max.poll.records".into(),
                message: "must be at least 1".into(),
            });
        }
        if self.partition_assignment_strategy.is_empty() {
            return Err(Error::Config {
                key: "partition.assignment.strategy".into(),
                message: "names no assignor".into(),
            });
        }
        for name in &self.partition_assignment_strategy {
            if assignor_name(name)? != *name {
                return Err(Error::Config {
                    key: "partition.assignment.strategy".into(),
                    message: format!("{name:?}: use the short name {:?}", assignor_name(name)?),
                });
            }
        }
        Ok(())
    }

    /// Reads a consumer config from a Java `.properties` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        from_map(&read_properties_file(path.as_ref())?)
    }

    /// A consumer config for the given bootstrap servers with defaults.
    pub fn new(bootstrap_servers: &str) -> Result<Self> {
        from_map(&bootstrap_only(bootstrap_servers))
    }
}

/// Maps Java assignor class names and short names to the short names.
fn assignor_name(s: &str) -> Result<String> {
    let short = s.rsplit('.').next().unwrap_or(s);
    let name = match short {
        "range" | "RangeAssignor" => "range",
        "roundrobin" | "RoundRobinAssignor" => "roundrobin",
        "cooperative-sticky" | "CooperativeStickyAssignor" => "cooperative-sticky",
        "cooperative-copartitioned" => "cooperative-copartitioned",
        "sticky" | "StickyAssignor" => "sticky",
        "exclusive" => "exclusive",
        _ => {
            return Err(Props::invalid(
                "partition.assignment.strategy",
                s,
                "range, roundrobin, sticky, cooperative-sticky, cooperative-copartitioned or exclusive",
            ));
        }
    };
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_known_keys_are_the_keys_each_reader_asks_for() {
        let map = props(&[("bootstrap.servers", "localhost:9092")]);
        // keys_read_by relies on the defaults parsing all the way through.
        ProducerConfig::read(&Props::new(&map)).unwrap();
        ConsumerConfig::read(&Props::new(&map)).unwrap();
        let producer = keys_read_by(ProducerConfig::read);
        let consumer = keys_read_by(ConsumerConfig::read);
        for key in [
            "bootstrap.servers",
            "security.protocol",
            "strom.max.response.bytes",
        ] {
            assert!(producer.contains(key) && consumer.contains(key), "{key}");
        }
        assert!(producer.contains("transactional.id") && !consumer.contains("transactional.id"));
        assert!(consumer.contains("isolation.level") && !producer.contains("isolation.level"));
        for key in JAVA_ONLY_KEYS {
            assert!(
                !producer.contains(*key) && !consumer.contains(*key),
                "{key}"
            );
        }
    }

    #[test]
    fn classic_only_settings_are_refused_with_the_consumer_protocol() {
        let base = [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("group.protocol", "consumer"),
        ];
        assert!(ConsumerConfig::from_properties(&props(&base)).is_ok());
        for key in [
            "partition.assignment.strategy",
            "session.timeout.ms",
            "heartbeat.interval.ms",
        ] {
            let value = if key.ends_with("strategy") {
                "range"
            } else {
                "1000"
            };
            let mut with = props(&base);
            with.insert(key.to_string(), value.to_string());
            match ConsumerConfig::from_properties(&with) {
                Err(Error::Config { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn producer_defaults_match_java() {
        let c = ProducerConfig::new("127.0.0.1:9092").unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.enable_idempotence);
        assert_eq!(c.max_in_flight, 5);
        assert_eq!(c.batch_size, 16_384);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.delivery_timeout, Duration::from_secs(120));
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = ProducerConfig::from_properties(&props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("compression.type", "brotli"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("compression.type"), "{err}");
        let err = ConsumerConfig::from_properties(&props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("fetch.max.wait.ms", "soon"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("fetch.max.wait.ms"), "{err}");
    }

    #[test]
    fn typos_are_errors_but_other_roles_keys_are_ignored() {
        let err = ProducerConfig::from_properties(&props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("linger.msec", "5"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("linger.msec"), "{err}");
        let shared = props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("acks", "all"),
            ("group.id", "g"),
            (
                "key.serializer",
                "org.apache.kafka.common.serialization.StringSerializer",
            ),
        ]);
        assert!(ProducerConfig::from_properties(&shared).is_ok());
        assert_eq!(
            ConsumerConfig::from_properties(&shared)
                .unwrap()
                .group_id
                .as_deref(),
            Some("g")
        );
    }

    #[test]
    fn misspelled_and_librdkafka_security_keys_are_refused() {
        let base = [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.enabled.protocols", "TLSv1.3"),
            ("sasl.kerberos.service.name", "kafka"),
        ];
        assert!(ProducerConfig::from_properties(&props(&base)).is_ok());
        assert!(ConsumerConfig::from_properties(&props(&base)).is_ok());
        for (key, hint) in [
            ("ssl.truststore.locaton", None),
            ("sasl.mechansim", None),
            ("sasl.username", Some("sasl.jaas.config")),
            ("ssl.ca.location", Some("ssl.truststore.location")),
        ] {
            let mut with = props(&base);
            with.insert(key.to_string(), "x".to_string());
            match ConsumerConfig::from_properties(&with) {
                Err(Error::Config { key: k, message }) => {
                    assert_eq!(k, key);
                    if let Some(hint) = hint {
                        assert!(message.contains(hint), "{message}");
                    }
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn idempotence_follows_the_java_rules() {
        let quiet = ProducerConfig::from_properties(&props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("acks", "1"),
        ]))
        .unwrap();
        assert!(!quiet.enable_idempotence, "switched off when not asked for");
        let err = ProducerConfig::from_properties(&props(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("acks", "1"),
            ("enable.idempotence", "true"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("acks"), "{err}");
    }

    #[test]
    fn a_config_built_in_code_is_checked_like_one_read_from_properties() {
        let mut p = ProducerConfig::new("127.0.0.1:9092").unwrap();
        assert!(p.validate().is_ok());
        p.acks = Acks::Leader;
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("acks") && err.contains("idempotence"), "{err}");
        p.enable_idempotence = false;
        p.transactional_id = Some("t".into());
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("enable.idempotence")
        );
        let mut c = ConsumerConfig::new("127.0.0.1:9092").unwrap();
        assert!(c.validate().is_ok());
        c.heartbeat_interval = c.session_timeout;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("heartbeat.interval.ms")
        );
        c.heartbeat_interval = Duration::from_secs(1);
        c.partition_assignment_strategy = vec!["magic".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("partition.assignment.strategy")
        );
    }

    #[test]
    fn reads_a_properties_file() {
        let dir = std::env::temp_dir().join(format!("strom-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kafka.properties");
        std::fs::write(
            &path,
            "bootstrap.servers=127.0.0.1:9092\nisolation.level=read_committed\nauto.offset.reset=earliest\n",
        )
        .unwrap();
        let c = ConsumerConfig::from_file(&path).unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert!(!c.enable_auto_commit);
    }

    #[test]
    fn bootstrap_servers_are_required_and_checked() {
        assert!(ConsumerConfig::from_properties(&props(&[])).is_err());
        let err = ConsumerConfig::new("localhost").unwrap_err();
        assert!(err.to_string().contains("bootstrap.servers"), "{err}");
    }
}
