//! `strom topics`: create, describe and delete topics.

use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::{Admin, Client};

use super::{Cli, TopicsAction, split_pair};

pub(super) async fn topics(cli: &Cli, action: &TopicsAction) -> anyhow::Result<()> {
    let props = cli.properties()?;
    let config = ProducerConfig::from_properties(&props)?;
    let client = Client::connect(config.client).await?;
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
            admin.create_topics(&[new]).await?;
            println!("created topic {topic}");
        }
        TopicsAction::Describe { topics } => {
            for t in topics {
                let info = client.topic(t).await?;
                println!(
                    "{} id={} partitions={}",
                    info.name,
                    info.id,
                    info.partitions.len()
                );
                for p in &info.partitions {
                    println!(
                        "  partition {} leader {} epoch {} replicas {:?} isr {:?}",
                        p.partition, p.leader, p.leader_epoch, p.replicas, p.isr
                    );
                }
            }
        }
        TopicsAction::Delete { topics } => {
            admin.delete_topics(topics).await?;
            println!("deleted {}", topics.join(", "));
        }
    }
    Ok(())
}
