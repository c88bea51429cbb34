//! [`KafkaConfig`]: the settings a pipeline uses for Kafka, under the Java
//! client's property names, plus the few of strom's own.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kafka_wire::client::config::{ConsumerConfig, ProducerConfig};
use kafka_wire::client::security::is_secret_property;

use crate::error::ConnectorError;

/// Kafka settings of a pipeline: one `.properties` file (or map) with the Java
/// client's keys, shared by its sources, sinks, state and offsets.
///
/// strom's own keys:
///
/// | key | meaning | default |
/// |---|---|---|
/// | `application.id` | the pipeline's name: its consumer group, the prefix of its transactional ids and internal topics (as in Kafka Streams) | required |
/// | `strom.instance` | this process's instance number: with `application.id` it names the transactional id and the static group member (`{application.id}-{instance}`), so a restarted process fences its previous incarnation (a pipeline that runs as one process, keyed by hash or without Kafka input, uses `{application.id}` as its processes' shared transactional id) | `0` |
/// | `strom.changelog.replication.factor` | replication of the internal topics | the broker's default |
/// | `strom.scale.out` | SQL pipelines key through repartition topics (`KafkaScope::key_by`), so several processes can share them; otherwise keyed exchanges stay in memory and the pipeline runs as one process (more processes stand by) | `false` |
/// | `strom.repartition.purge.interval.ms` | how often the records of repartition topics that committed checkpoints consumed are deleted (DeleteRecords) | `30000` |
/// | `strom.setup.timeout.ms` | how long starting the process or an incarnation keeps retrying retriable errors (a broker down, leaders moving) before the job fails, as Kafka Streams' `task.timeout.ms` | `300000` |
/// | `strom.state.local.recovery` | the process keeps a copy of the keyed state its last checkpoint committed, so a restart inside the process (a rollback, a rebalance that restarts the job) restores its own key groups from memory rather than from the changelog topics; it costs the memory of the encoded state (as Flink's `state.backend.local-recovery`) | `false` |
/// | `strom.leave.group.on.stop` | on a stop (SIGTERM), the static member leaves the group, so its partitions move to the other processes at once (scale-in); `false` keeps them for `session.timeout.ms`, for a process about to restart | `true` |
///
/// Every other key goes to the consumer and producer as the Java client reads it
/// (`group.id` defaults to `application.id`). A job's group consumer changes
/// some defaults: `isolation.level=read_committed`, `auto.offset.reset=earliest`,
/// `session.timeout.ms=10000`, `heartbeat.interval.ms=250`,
/// `max.partition.fetch.bytes=65536`, and `partition.assignment.strategy`
/// `cooperative-sticky` (`range` when keyed state spans several topics, `exclusive`
/// when the pipeline runs as one process: keyed by hash, or no Kafka input).
///
/// ```
/// use connectors::kafka::KafkaConfig;
/// let c = KafkaConfig::new("127.0.0.1:9092", "clicks-app")
///     .set("transaction.timeout.ms", "10000");
/// assert_eq!(c.application_id(), "clicks-app");
/// assert_eq!(c.instance(), 0);
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    props: BTreeMap<String, String>,
}

/// Shows every property, with secrets (passwords, keys, tokens, JAAS lines) redacted.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.props.iter().map(|(k, v)| {
            let v = if is_secret_property(k) {
                "<redacted>"
            } else {
                v.as_str()
            };
            (k, v)
        });
        f.debug_struct("KafkaConfig")
            .field("props", &shown.collect::<BTreeMap<_, _>>())
            .finish()
    }
}

/// Keys only strom reads; never handed to the Kafka client.
fn is_strom_key(key: &str) -> bool {
    key == "application.id" || key.starts_with("strom.")
}

impl KafkaConfig {
    /// Settings with `bootstrap.servers` and `application.id`.
    pub fn new(bootstrap_servers: &str, application_id: &str) -> KafkaConfig {
        KafkaConfig {
            props: BTreeMap::from([
                (
                    "bootstrap.servers".to_string(),
                    bootstrap_servers.to_string(),
                ),
                ("application.id".to_string(), application_id.to_string()),
            ]),
        }
    }

    /// Settings from a map of properties.
    pub fn from_properties(props: BTreeMap<String, String>) -> Result<KafkaConfig, ConnectorError> {
        let c = KafkaConfig { props };
        c.validate()?;
        Ok(c)
    }

    /// Settings from a Java-style `.properties` file.
    pub fn from_properties_file(path: impl AsRef<Path>) -> Result<KafkaConfig, ConnectorError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConnectorError::Config {
            key: path.display().to_string(),
            message: format!("cannot read the properties file: {e}"),
        })?;
        Self::from_properties(kafka_wire::client::properties::parse(&text))
    }

    /// Sets one property.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> KafkaConfig {
        self.props.insert(key.to_string(), value.into());
        self
    }

    /// A property's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// Checks strom's keys and that the client accepts the rest.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.application_id().is_empty() {
            return Err(ConnectorError::Config {
                key: "application.id".into(),
                message:
                    "required: it names the pipeline's group, transactional ids and internal topics"
                        .into(),
            });
        }
        if let Some(v) = self.get("strom.instance") {
            v.parse::<u32>().map_err(|_| ConnectorError::Config {
                key: "strom.instance".into(),
                message: format!("{v:?} is not a number"),
            })?;
        }
        for key in [
            "strom.leave.group.on.stop",
            "strom.scale.out",
            "strom.state.local.recovery",
        ] {
            if let Some(v) = self.get(key) {
                v.parse::<bool>().map_err(|_| ConnectorError::Config {
                    key: key.into(),
                    message: format!("{v:?}: true or false"),
                })?;
            }
        }
        for key in [
            "strom.repartition.purge.interval.ms",
            "strom.setup.timeout.ms",
        ] {
            if let Some(v) = self.get(key) {
                v.parse::<u64>().map_err(|_| ConnectorError::Config {
                    key: key.into(),
                    message: format!("{v:?} is not a number of milliseconds"),
                })?;
            }
        }
        self.consumer_config(&[])?;
        self.producer_config(&[])?;
        Ok(())
    }

    /// `strom.repartition.purge.interval.ms` (30 s when unset; validated).
    pub fn repartition_purge_interval(&self) -> Duration {
        self.millis("strom.repartition.purge.interval.ms", 30_000)
    }

    /// `strom.setup.timeout.ms` (5 min when unset; validated).
    pub fn setup_timeout(&self) -> Duration {
        self.millis("strom.setup.timeout.ms", 300_000)
    }

    /// A duration key in milliseconds, `default_ms` when unset or invalid
    /// ([`KafkaConfig::validate`] rejects invalid).
    fn millis(&self, key: &str, default_ms: u64) -> Duration {
        let ms = self.get(key).and_then(|v| v.parse::<u64>().ok());
        Duration::from_millis(ms.unwrap_or(default_ms))
    }

    /// `strom.leave.group.on.stop` (true when unset).
    pub fn leave_group_on_stop(&self) -> bool {
        self.get("strom.leave.group.on.stop") != Some("false")
    }

    /// `strom.state.local.recovery` (false when unset).
    pub fn local_recovery(&self) -> bool {
        self.get("strom.state.local.recovery") == Some("true")
    }

    /// `application.id`.
    pub fn application_id(&self) -> &str {
        self.get("application.id").unwrap_or("")
    }

    /// `strom.instance` (0 when unset or invalid; [`KafkaConfig::validate`] rejects invalid).
    pub fn instance(&self) -> u32 {
        self.get("strom.instance")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        self.get("bootstrap.servers").unwrap_or("")
    }

    /// The consumer group: `group.id`, else `application.id`.
    pub fn group_id(&self) -> &str {
        self.get("group.id").unwrap_or(self.application_id())
    }

    /// `{application.id}-{instance}`: the transactional id and static member id.
    pub fn instance_name(&self) -> String {
        format!("{}-{}", self.application_id(), self.instance())
    }

    /// `transaction.timeout.ms` as set (the producer's default otherwise).
    pub fn transaction_timeout(&self) -> Option<Duration> {
        self.get("transaction.timeout.ms")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    }

    fn client_props(&self, overrides: &[(&str, String)]) -> BTreeMap<String, String> {
        let mut props: BTreeMap<String, String> = self
            .props
            .iter()
            .filter(|(k, _)| !is_strom_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in overrides {
            props.insert(k.to_string(), v.clone());
        }
        props
    }

    /// A consumer config: these settings, then `overrides`.
    pub fn consumer_config(
        &self,
        overrides: &[(&str, String)],
    ) -> Result<ConsumerConfig, ConnectorError> {
        ConsumerConfig::from_properties(&self.client_props(overrides))
            .map_err(|e| ConnectorError::kafka("consumer settings", e))
    }

    /// A producer config: these settings, then `overrides`.
    pub fn producer_config(
        &self,
        overrides: &[(&str, String)],
    ) -> Result<ProducerConfig, ConnectorError> {
        ProducerConfig::from_properties(&self.client_props(overrides))
            .map_err(|e| ConnectorError::kafka("producer settings", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_settings_reach_the_clients_and_stay_out_of_debug() {
        use kafka_wire::client::security::SecurityProtocol;
        let c = KafkaConfig::new("127.0.0.1:9092", "app")
            .set("security.protocol", "SASL_SSL")
            .set("ssl.endpoint.identification.algorithm", "")
            .set("sasl.mechanism", "PLAIN")
            .set(
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"pw-9f3k\";",
            );
        c.validate().unwrap();
        for client in [
            c.consumer_config(&[]).unwrap().client,
            c.producer_config(&[]).unwrap().client,
        ] {
            assert_eq!(client.security.protocol(), SecurityProtocol::SaslSsl);
            assert!(!client.security.tls().unwrap().verifies_hostname());
            assert_eq!(client.security.sasl().unwrap().mechanism().name(), "PLAIN");
        }
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("pw-9f3k") && shown.contains("SASL_SSL"),
            "{shown}"
        );
    }

    #[test]
    fn strom_keys_stay_out_of_the_client_configs() {
        let c = KafkaConfig::new("127.0.0.1:9092", "app")
            .set("strom.instance", "3")
            .set("isolation.level", "read_committed");
        c.validate().unwrap();
        assert_eq!(c.instance_name(), "app-3");
        assert_eq!(c.group_id(), "app");
        let consumer = c.consumer_config(&[]).unwrap();
        assert_eq!(
            consumer.isolation_level,
            kafka_wire::client::config::IsolationLevel::ReadCommitted
        );
    }

    #[test]
    fn a_missing_application_id_and_a_typo_are_named() {
        let e = KafkaConfig::from_properties(BTreeMap::from([(
            "bootstrap.servers".into(),
            "127.0.0.1:9092".into(),
        )]))
        .unwrap_err();
        assert!(
            e.to_string().starts_with("config application.id: required"),
            "{e}"
        );
        let e = KafkaConfig::new("127.0.0.1:9092", "app")
            .set("isolation.levle", "read_committed")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("isolation.levle"), "{e}");
    }
}
