//! `strom topics`: list, describe, create, delete topics, change their configs,
//! and delete records.

use std::collections::BTreeMap;

use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{
    AlterConfigOp, ConfigEntry, ConfigSource, DELETE_ALL_RECORDS, NewTopic,
};
use kafka_wire::client::cluster::TopicInfo;
use kafka_wire::client::{Admin, Client};
use kafka_wire::protocol::Uuid;

use super::admin::{Explain, Subject, connect, no_such_partition};
use super::{Cli, TopicsAction, split_pair};

pub(super) async fn topics(cli: &Cli, action: &TopicsAction) -> anyhow::Result<()> {
    let client = connect(cli).await?;
    let admin = Admin::new(client.clone());
    match action {
        TopicsAction::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut new = NewTopic::new(topic, *partitions).replication_factor(*replication_factor);
            for c in configs {
                let (k, v) = split_pair(c)?;
                new = new.config(k, v);
            }
            admin
                .create_topics(&[new])
                .await
                .about(Subject::Topic(topic))?;
            println!("created topic {topic}");
        }
        TopicsAction::List { internal, counts } => {
            for t in all_topics(&client, *internal).await? {
                if *counts {
                    println!(
                        "{}\tPartitionCount: {}\tReplicationFactor: {}",
                        t.name,
                        t.partitions.len(),
                        replication_factor(&t)
                    );
                } else {
                    println!("{}", t.name);
                }
            }
        }
        TopicsAction::Describe { topics, internal } => {
            let every = topics.is_empty();
            let infos = if every {
                all_topics(&client, *internal).await?
            } else {
                let mut infos = Vec::new();
                for t in topics {
                    infos.push(client.topic(t).await.about(Subject::Topic(t))?);
                }
                infos
            };
            for info in infos {
                let configs = match admin.describe_topic_configs(&info.name).await {
                    // Deleted since it was listed.
                    Err(e) if every && e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
                        continue;
                    }
                    r => r.about(Subject::Topic(&info.name))?,
                };
                describe(&info, &configs);
            }
        }
        TopicsAction::Delete { topics } => {
            for t in topics {
                admin
                    .delete_topics(std::slice::from_ref(t))
                    .await
                    .about(Subject::Topic(t))?;
                println!("deleted topic {t}");
            }
        }
        TopicsAction::AlterConfig { topic, set, delete } => {
            let mut changes = BTreeMap::new();
            for s in set {
                let (k, v) = split_pair(s)?;
                changes.insert(k, AlterConfigOp::Set(v));
            }
            for k in delete {
                changes.insert(k.clone(), AlterConfigOp::Delete);
            }
            admin
                .alter_topic_configs(topic, &changes)
                .await
                .about(Subject::Topic(topic))?;
            for (k, op) in &changes {
                match op {
                    AlterConfigOp::Set(v) => println!("set {k}={v} on topic {topic}"),
                    AlterConfigOp::Delete => {
                        println!("reverted {k} to its default on topic {topic}")
                    }
                }
            }
        }
        TopicsAction::DeleteRecords {
            topic,
            partitions,
            before_offset,
            all,
        } => {
            let info = client.topic(topic).await.about(Subject::Topic(topic))?;
            let chosen: Vec<i32> = if partitions.is_empty() {
                info.partitions.iter().map(|p| p.partition).collect()
            } else {
                for &p in partitions {
                    if !info.partitions.iter().any(|i| i.partition == p) {
                        return Err(no_such_partition(topic, p));
                    }
                }
                partitions.clone()
            };
            let offset = match (before_offset, all) {
                (_, true) => DELETE_ALL_RECORDS,
                (Some(o), false) if *o >= 0 => *o,
                (Some(o), false) => anyhow::bail!("--before-offset {o}: must be 0 or more"),
                (None, false) => anyhow::bail!("give --before-offset N or --all"),
            };
            let before = chosen
                .iter()
                .map(|&p| ((topic.clone(), p), offset))
                .collect();
            let subject = match chosen.as_slice() {
                [p] => Subject::Partition(topic, *p),
                _ => Subject::Topic(topic),
            };
            let low = admin.delete_records(&before).await.about(subject)?;
            for ((t, p), start) in low {
                println!("Topic: {t}\tPartition: {p}\tLogStartOffset: {start}");
            }
        }
    }
    Ok(())
}

/// The cluster's topics, sorted, internal ones only when asked for.
async fn all_topics(client: &Client, internal: bool) -> anyhow::Result<Vec<TopicInfo>> {
    let mut topics = client.list_topics().await?;
    topics.retain(|t| internal || !t.is_internal);
    Ok(topics)
}

/// The replication factor: the replica count of the first partition.
fn replication_factor(t: &TopicInfo) -> usize {
    t.partitions.first().map_or(0, |p| p.replicas.len())
}

/// Prints one topic in the layout of kafka-topics.sh --describe (tab-separated):
/// the topic with the configs set on it, then its partitions.
fn describe(info: &TopicInfo, configs: &BTreeMap<String, ConfigEntry>) {
    let own: Vec<String> = configs
        .iter()
        .filter(|(_, c)| c.source == ConfigSource::Topic)
        .map(|(k, c)| match (&c.value, c.is_sensitive) {
            (_, true) => format!("{k}=(sensitive)"),
            (Some(v), false) => format!("{k}={v}"),
            (None, false) => format!("{k}="),
        })
        .collect();
    println!(
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        info.name,
        kafka_uuid(&info.id),
        info.partitions.len(),
        replication_factor(info),
        own.join(",")
    );
    for p in &info.partitions {
        let leader = if p.leader < 0 {
            "none".to_string()
        } else {
            p.leader.to_string()
        };
        println!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            info.name,
            p.partition,
            leader,
            ids(&p.replicas),
            ids(&p.isr)
        );
    }
}

fn ids(nodes: &[i32]) -> String {
    nodes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A UUID as Kafka's tools print it: URL-safe base64 of the 16 bytes, unpadded.
fn kafka_uuid(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.0.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_id_prints_as_kafka_prints_it() {
        assert_eq!(kafka_uuid(&Uuid::ZERO), "AAAAAAAAAAAAAAAAAAAAAA");
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8) * 17;
        }
        // base64url of 00 11 22 .. ff without padding.
        assert_eq!(kafka_uuid(&Uuid(bytes)), "ABEiM0RVZneImaq7zN3u_w");
    }
}
