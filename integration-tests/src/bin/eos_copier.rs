//! A consume-transform-produce copier for the exactly-once tests: reads `input` in a
//! consumer group, upper-cases nothing but appends `!` to each value, writes to the
//! same partition of `output`, and commits the input offsets in the same
//! transaction, through a `TransactSession` (`EndPolicy::AbortOnRebalance`: a
//! transaction is aborted when the partitions move). About one transaction in three
//! is aborted on purpose (and the consumer rewound to the committed offsets). The
//! test kills it with SIGKILL and starts it again; it exits on its own after
//! `idle_ms` without input.
//!
//! Usage: `eos_copier BOOTSTRAP GROUP INPUT OUTPUT TRANSACTIONAL_ID IDLE_MS PACE_MS SEED`
//! (`PACE_MS`: a pause inside each transaction, so a test's kills and stalls land
//! while one is open).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka_wire::client::ProducerRecord;
use kafka_wire::client::config::{ConsumerConfig, ProducerConfig};
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::transaction::{
    AbortReason, EndOutcome, EndPolicy, TransactSession, TransactionalProducer,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [
        _,
        bootstrap,
        group,
        input,
        output,
        txn_id,
        idle_ms,
        pace_ms,
        seed,
    ] = args.as_slice()
    else {
        bail!(
            "usage: eos_copier BOOTSTRAP GROUP INPUT OUTPUT TRANSACTIONAL_ID IDLE_MS PACE_MS SEED"
        );
    };
    let idle = Duration::from_millis(idle_ms.parse().context("IDLE_MS")?);
    let pace = Duration::from_millis(pace_ms.parse().context("PACE_MS")?);
    let seed: u64 = seed.parse().context("SEED")?;
    // Seed 0: no deliberate aborts (the stalled-zombie test wants every abort explained).
    let deliberate_aborts = seed != 0;
    let mut rng: u64 = seed | 1;
    let consumer_props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("group.id".to_string(), group.clone()),
        // Static membership: a restarted copier takes its partitions back at once.
        ("group.instance.id".to_string(), format!("{txn_id}-member")),
        ("isolation.level".to_string(), "read_committed".to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ("heartbeat.interval.ms".to_string(), "200".to_string()),
        ("session.timeout.ms".to_string(), "6000".to_string()),
        ("max.poll.records".to_string(), "500".to_string()),
    ]);
    let mut consumer =
        GroupConsumer::new(ConsumerConfig::from_properties(&consumer_props)?).await?;
    consumer.subscribe([input.clone()]);
    let producer_props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("transactional.id".to_string(), txn_id.clone()),
        ("transaction.timeout.ms".to_string(), "10000".to_string()),
        ("linger.ms".to_string(), "1".to_string()),
    ]);
    let producer = TransactionalProducer::new(ProducerConfig::from_properties(&producer_props)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut session = TransactSession::new(producer, Some(consumer.handle()));
    let mut last_input = Instant::now();
    let (mut committed, mut aborted) = (0u64, 0u64);
    while last_input.elapsed() < idle {
        let records = consumer.poll_for(Duration::from_millis(200)).await?;
        consumer.take_events();
        if records.is_empty() {
            continue;
        }
        last_input = Instant::now();
        session.begin().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        for r in &records {
            let value = r.value.as_deref().context("null value in input")?;
            let mut out = value.to_vec();
            out.push(b'!');
            let record = ProducerRecord::new(output.as_str(), out).partition(r.partition);
            session
                .send(record)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        // The pause sits inside the transaction, so a kill or a stall from the test
        // usually lands while one is open.
        tokio::time::sleep(pace).await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let policy = if deliberate_aborts && rng % 3 == 0 {
            EndPolicy::Abort
        } else {
            // A successful heartbeat just before EndTxn: abort if the partitions move.
            EndPolicy::AbortOnRebalance
        };
        let reason = match session.end(&consumer.positions(), policy).await {
            Ok(EndOutcome::Committed) => {
                committed += 1;
                continue;
            }
            Ok(EndOutcome::Aborted { reason }) => reason,
            Err(e) => {
                // Fenced, or a commit whose outcome stayed unknown: a supervisor
                // starts the copier again.
                eprintln!("eos_copier {txn_id}: commit failed: {e}");
                bail!("commit failed: {e}");
            }
        };
        match &reason {
            AbortReason::Offsets(e) => {
                eprintln!("eos_copier {txn_id}: offsets refused, aborting: {e}")
            }
            AbortReason::Membership(e) => {
                eprintln!("eos_copier {txn_id}: partitions are moving, aborting: {e}")
            }
            AbortReason::Commit(e) => eprintln!("eos_copier {txn_id}: commit failed: {e}"),
            // AbortReason::Requested: the deliberate abort.
            _ => {}
        }
        consumer.seek_to_committed().await?;
        aborted += 1;
    }
    eprintln!(
        "eos_copier {txn_id}: {committed} transactions committed, {aborted} aborted; idle, exiting"
    );
    session
        .close(Duration::from_secs(5))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    consumer.close().await?;
    Ok(())
}
