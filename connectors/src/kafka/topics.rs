//! Internal topics: created on first use with the settings they need, and checked
//! when they exist already.

use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{Admin, NewTopic, OffsetSpec};
use kafka_wire::client::config::IsolationLevel;

use super::config::KafkaConfig;
use crate::error::ConnectorError;

/// Whether `topic` exists.
pub(crate) async fn exists(admin: &Admin, topic: &str) -> Result<bool, ConnectorError> {
    match admin.client().topic(topic).await {
        Ok(info) => Ok(!info.partitions.is_empty()),
        Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => Ok(false),
        Err(e) => Err(ConnectorError::kafka(format!("looking up {topic}"), e)),
    }
}

/// The partition count of `topic`.
pub(crate) async fn partitions(admin: &Admin, topic: &str) -> Result<i32, ConnectorError> {
    let info = admin
        .client()
        .topic(topic)
        .await
        .map_err(|e| ConnectorError::kafka(format!("looking up {topic}"), e))?;
    Ok(info.partitions.len() as i32)
}

/// Creates `topic` compacted with `partitions` partitions, or checks that the
/// existing one is compacted and has that many.
pub(crate) async fn ensure_compacted(
    admin: &Admin,
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<(), ConnectorError> {
    let new = compacted(config, topic, partitions);
    if ensure(admin, new, "changelog", "delete it or fix the input").await? {
        return Ok(());
    }
    let configs = admin
        .describe_topic_configs(topic)
        .await
        .map_err(|e| ConnectorError::kafka(format!("configs of {topic}"), e))?;
    let policy = configs
        .get("cleanup.policy")
        .and_then(|c| c.value.clone())
        .unwrap_or_default();
    if !policy.contains("compact") {
        return Err(ConnectorError::Refused(format!(
            "changelog topic {topic} has cleanup.policy={policy:?}; it must be compact"
        )));
    }
    Ok(())
}

/// [`ensure_compacted`] for several topics: when none exists, they are created
/// in one request and their leaders awaited together (one after the other, three
/// took 190 ms of a job's first checkpoint); else each on its own.
pub(crate) async fn ensure_compacted_all(
    admin: &Admin,
    config: &KafkaConfig,
    topics: &[String],
    partitions: i32,
) -> Result<(), ConnectorError> {
    if topics.len() > 1 {
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| compacted(config, t, partitions))
            .collect();
        if admin.create_topics(&new).await.is_ok() {
            let led = topics.iter().map(|topic| async move {
                tracing::info!(topic, partitions, "changelog topic created");
                wait_until_known(admin, topic).await?;
                wait_until_led(admin, topic, partitions).await;
                Ok::<(), ConnectorError>(())
            });
            return futures::future::join_all(led).await.into_iter().collect();
        }
    }
    for topic in topics {
        ensure_compacted(admin, config, topic, partitions).await?;
    }
    Ok(())
}

/// A compacted changelog topic.
fn compacted(config: &KafkaConfig, topic: &str, partitions: i32) -> NewTopic {
    NewTopic::new(topic, partitions)
        .replication_factor(replication(config))
        .config("cleanup.policy", "compact")
        // Small segments and a low dirty ratio keep a restore close to the live
        // state: the cleaner only compacts closed segments.
        .config("segment.bytes", (64 << 20).to_string())
        .config("min.cleanable.dirty.ratio", "0.1")
}

/// Creates the repartition topic `topic` with `partitions` partitions, or checks
/// that the existing one has that many.
pub(crate) async fn ensure_repartition(
    admin: &Admin,
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<(), ConnectorError> {
    // Records carry their event time, which may lie far in the past or the
    // future: time-based retention and the broker's timestamp bounds must not
    // delete or refuse records still in flight between the stages.
    let new = NewTopic::new(topic, partitions)
        .replication_factor(replication(config))
        .config("retention.ms", "-1")
        .config("message.timestamp.after.max.ms", i64::MAX.to_string())
        .config("message.timestamp.before.max.ms", i64::MAX.to_string());
    let advice = "delete it (its records are in flight between stages) or fix the input";
    ensure(admin, new, "repartition", advice).await.map(|_| ())
}

/// The owner topic of a pipeline that reads no Kafka topic: `{application.id}-owner`.
pub(crate) fn owner_topic(application_id: &str) -> String {
    format!("{application_id}-owner")
}

/// Creates the owner topic `topic` (one partition, never written: the process
/// its group assigns that partition runs the pipeline), or checks the existing one.
pub(crate) async fn ensure_owner(
    admin: &Admin,
    config: &KafkaConfig,
    topic: &str,
) -> Result<(), ConnectorError> {
    let new = NewTopic::new(topic, 1).replication_factor(replication(config));
    let advice = "delete it: it holds no data";
    ensure(admin, new, "owner", advice).await.map(|_| ())
}

/// Creates the internal topic `new` describes (`true`), or checks that the
/// existing one has its partition count (`false`).
async fn ensure(
    admin: &Admin,
    new: NewTopic,
    kind: &str,
    advice: &str,
) -> Result<bool, ConnectorError> {
    let (topic, partitions) = (new.name.clone(), new.partitions);
    match admin.create_topics(&[new]).await {
        Ok(_) => {
            tracing::info!(topic, partitions, "{kind} topic created");
            wait_until_known(admin, &topic).await?;
            wait_until_led(admin, &topic, partitions).await;
            Ok(true)
        }
        Err(e) if e.code() == Some(ErrorCode::TopicAlreadyExists) => {
            let have = partitions_of(admin, &topic).await?;
            if have != partitions {
                return Err(ConnectorError::Refused(format!(
                    "{kind} topic {topic} has {have} partitions, the pipeline needs {partitions} (its widest input topic): {advice}"
                )));
            }
            Ok(false)
        }
        Err(e) => Err(ConnectorError::kafka(format!("creating {topic}"), e)),
    }
}

/// `strom.changelog.replication.factor`, or the broker's default.
fn replication(config: &KafkaConfig) -> i16 {
    config
        .get("strom.changelog.replication.factor")
        .and_then(|v| v.parse::<i16>().ok())
        .unwrap_or(-1)
}

async fn partitions_of(admin: &Admin, topic: &str) -> Result<i32, ConnectorError> {
    wait_until_known(admin, topic).await?;
    partitions(admin, topic).await
}

/// Waits (at most 1 s, then gives up quietly) until each partition of a topic
/// just created answers at its leader. The metadata names a leader before that
/// broker has taken the partition on, and a produce in between is refused
/// (`NOT_LEADER_OR_FOLLOWER`) and retried only after the producer's backoff:
/// the first checkpoint of a new job writes to its new changelog topics at once.
async fn wait_until_led(admin: &Admin, topic: &str, partitions: i32) {
    let all: Vec<i32> = (0..partitions).collect();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        let answer = admin
            .list_offsets_once(
                topic,
                &all,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await;
        match answer {
            Ok(_) => {
                tracing::debug!(
                    topic,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "topic led"
                );
                return;
            }
            Err(e) if started.elapsed() < std::time::Duration::from_secs(1) => {
                tracing::debug!(topic, error = %e, "topic not led yet");
                admin.client().invalidate_topic(topic);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(_) => return,
        }
    }
}

/// Waits (at most 30 s) until metadata knows a topic just created.
async fn wait_until_known(admin: &Admin, topic: &str) -> Result<(), ConnectorError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !exists(admin, topic).await? {
        if std::time::Instant::now() > deadline {
            return Err(ConnectorError::Refused(format!(
                "topic {topic} was created but is not in the metadata after 30 s"
            )));
        }
        admin.client().invalidate_topic(topic);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}
