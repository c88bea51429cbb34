//! `strom txns`: list and describe transactions, find the ones hanging on a
//! topic's partitions, and abort one (what kafka-transactions.sh does).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use clap::Subcommand;
use kafka_wire::client::Client;
use kafka_wire::client::transaction::admin::{
    AbortTransactionSpec, ProducerState, TransactionAdmin, TransactionListing,
};

use super::Cli;
use super::admin::{Explain, Subject, connect, no_such_partition};

/// The broker's default `transaction.max.timeout.ms`: no coordinator lets a
/// transaction stay open longer.
const MAX_TRANSACTION_TIMEOUT_MS: u64 = 900_000;

/// Coordinator states in which a transaction is still open.
const OPEN_STATES: &[&str] = &[
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "PrepareEpochFence",
];

/// `strom txns` subcommands.
#[derive(Subcommand)]
pub(super) enum TxnsAction {
    /// List the transactions every coordinator knows: id, coordinator, producer id, state.
    List {
        /// Only transactions in this coordinator state (repeatable): Empty, Ongoing,
        /// PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, ...
        #[arg(long = "state")]
        states: Vec<String>,
    },
    /// Describe transactional ids as their coordinators see them.
    Describe {
        /// Transactional ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Transactions open on a topic's partitions that hang: no coordinator holds
    /// them open, or they have been open longer than --max-age-ms.
    FindHanging {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long)]
        partition: Option<i32>,
        /// Open longer than this counts as hanging (default: the broker's default
        /// `transaction.max.timeout.ms`, which no live transaction outlasts).
        #[arg(long, default_value_t = MAX_TRANSACTION_TIMEOUT_MS)]
        max_age_ms: u64,
    },
    /// Abort the transaction open on a partition since an offset (the producer,
    /// its epoch and coordinator epoch come from DescribeProducers).
    Abort {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// The offset the transaction's first record has (see `find-hanging`).
        #[arg(long)]
        start_offset: i64,
    },
}

pub(super) async fn txns(cli: &Cli, action: &TxnsAction) -> anyhow::Result<()> {
    let client = connect(cli).await?;
    let admin = TransactionAdmin::new(client.clone());
    match action {
        TxnsAction::List { states } => {
            let states: Vec<&str> = states.iter().map(String::as_str).collect();
            println!("TransactionalId\tCoordinator\tProducerId\tTransactionState");
            for t in admin.list_transactions(&states, None).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    t.transactional_id, t.coordinator_id, t.producer_id, t.state
                );
            }
        }
        TxnsAction::Describe { ids } => {
            let mut all = Vec::new();
            for id in ids {
                let described = admin
                    .describe_transactions(&[id])
                    .await
                    .about(Subject::TransactionalId(id))?;
                all.extend(described.into_values());
            }
            println!(
                "CoordinatorId\tTransactionalId\tProducerId\tProducerEpoch\tTransactionState\tTransactionTimeoutMs\tCurrentTransactionStartTimeMs\tTransactionDurationMs\tTopicPartitions"
            );
            for d in &all {
                let (start, duration) = if d.start_time_ms >= 0 {
                    (
                        d.start_time_ms.to_string(),
                        (now_ms() - d.start_time_ms).max(0).to_string(),
                    )
                } else {
                    ("none".to_string(), "none".to_string())
                };
                let partitions: Vec<String> = d
                    .partitions
                    .iter()
                    .map(|(t, p)| format!("{t}-{p}"))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.coordinator_id,
                    d.transactional_id,
                    d.producer_id,
                    d.producer_epoch,
                    d.state,
                    d.timeout_ms,
                    start,
                    duration,
                    partitions.join(",")
                );
            }
        }
        TxnsAction::FindHanging {
            topic,
            partition,
            max_age_ms,
        } => {
            let partitions = partitions_of(&client, topic, *partition).await?;
            let listed = admin.list_transactions(&[], None).await?;
            println!(
                "Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\tLastTimestamp\tDurationMs\tTransactionalId\tCoordinatorState"
            );
            for p in partitions {
                let open = admin
                    .open_transactions(topic, p)
                    .await
                    .about(Subject::Partition(topic, p))?;
                for s in open {
                    let view = coordinator_view(&admin, &listed, topic, p, &s).await;
                    let started = view.start_time_ms.unwrap_or(s.last_timestamp);
                    let age = (now_ms() - started).max(0);
                    if view.holds_open && u64::try_from(age).unwrap_or(0) < *max_age_ms {
                        continue;
                    }
                    println!(
                        "{topic}\t{p}\t{}\t{}\t{}\t{}\t{}\t{age}\t{}\t{}",
                        s.producer_id,
                        s.producer_epoch,
                        s.coordinator_epoch,
                        s.current_txn_start_offset,
                        s.last_timestamp,
                        view.transactional_id.as_deref().unwrap_or("-"),
                        view.state.as_deref().unwrap_or("-"),
                    );
                }
            }
        }
        TxnsAction::Abort {
            topic,
            partition,
            start_offset,
        } => {
            partitions_of(&client, topic, Some(*partition)).await?;
            let subject = Subject::Partition(topic, *partition);
            let open = admin
                .open_transactions(topic, *partition)
                .await
                .about(subject)?;
            let s = open
                .iter()
                .find(|s| s.current_txn_start_offset == *start_offset)
                .ok_or_else(|| {
                    anyhow!(
                        "no open transaction starts at offset {start_offset} of partition {partition} of topic {topic}: see the open ones with `strom txns find-hanging --topic {topic} --partition {partition} --max-age-ms 0`"
                    )
                })?;
            let producer_epoch = i16::try_from(s.producer_epoch).map_err(|_| {
                anyhow!(
                    "producer {} has epoch {}, which does not fit a marker",
                    s.producer_id,
                    s.producer_epoch
                )
            })?;
            admin
                .abort_transaction(&AbortTransactionSpec {
                    topic: topic.clone(),
                    partition: *partition,
                    producer_id: s.producer_id,
                    producer_epoch,
                    coordinator_epoch: s.coordinator_epoch,
                })
                .await
                .about(subject)?;
            println!(
                "aborted the transaction of producer {} (epoch {producer_epoch}) that started at offset {start_offset} of partition {partition} of topic {topic}",
                s.producer_id
            );
        }
    }
    Ok(())
}

/// `partition` (checked to exist), or every partition of `topic`.
async fn partitions_of(
    client: &Client,
    topic: &str,
    partition: Option<i32>,
) -> anyhow::Result<Vec<i32>> {
    let info = client.topic(topic).await.about(Subject::Topic(topic))?;
    match partition {
        Some(p) if info.partitions.iter().any(|i| i.partition == p) => Ok(vec![p]),
        Some(p) => Err(no_such_partition(topic, p)),
        None => Ok(info.partitions.iter().map(|p| p.partition).collect()),
    }
}

/// What the coordinators say about a transaction open on a partition.
struct CoordinatorView {
    transactional_id: Option<String>,
    state: Option<String>,
    /// Whether its coordinator holds it open on this partition.
    holds_open: bool,
    /// When the coordinator says it started.
    start_time_ms: Option<i64>,
}

async fn coordinator_view(
    admin: &TransactionAdmin,
    listed: &[TransactionListing],
    topic: &str,
    partition: i32,
    s: &ProducerState,
) -> CoordinatorView {
    let mut view = CoordinatorView {
        transactional_id: None,
        state: None,
        holds_open: false,
        start_time_ms: None,
    };
    let Some(l) = listed.iter().find(|l| l.producer_id == s.producer_id) else {
        return view;
    };
    view.transactional_id = Some(l.transactional_id.clone());
    view.state = Some(l.state.clone());
    // A failed describe (the id expired meanwhile) leaves it counted as not held open.
    if let Ok(described) = admin.describe_transactions(&[&l.transactional_id]).await {
        if let Some(d) = described.get(&l.transactional_id) {
            view.state = Some(d.state.clone());
            view.holds_open = OPEN_STATES.contains(&d.state.as_str())
                && d.partitions
                    .iter()
                    .any(|(t, p)| t == topic && *p == partition);
            view.start_time_ms = (d.start_time_ms >= 0).then_some(d.start_time_ms);
        }
    }
    view
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
