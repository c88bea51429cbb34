//! A topic's log as the broker stores it, with the outcome of every record's
//! transaction taken from the log's own markers: the writer-independent truth
//! the checkers (`crate::checkers`) judge readers against when the writer is a
//! pipeline that cannot report its own outcomes.
//!
//! ```text
//!  Fetch v12 read_uncommitted, offset 0 .. high watermark, every batch:
//!    data batch, transactional   → records wait on their producer id
//!    control batch COMMIT/ABORT  → the waiting records of that producer id
//!                                  become Committed / Aborted
//!    data batch, not transactional → Committed
//!  still waiting at the end      → Unknown (a transaction left open)
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_wire::client::Client;
use kafka_wire::client::cluster::Lane;
use kafka_wire::protocol::messages::FetchRequest;
use kafka_wire::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_wire::records::{ControlRecordType, DecodeOptions, decode_records};

use crate::checkers::Outcome;

/// One data record of the log.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value.
    pub value: Option<Bytes>,
    /// What became of its transaction, by the markers that follow it.
    pub outcome: Outcome,
}

/// The data records of a topic and the transactions its markers ended.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Every data record, partition by partition in offset order.
    pub records: Vec<LogRecord>,
    /// COMMIT markers (one per transaction and partition).
    pub commits: usize,
    /// ABORT markers (one per transaction and partition).
    pub aborts: usize,
}

impl Log {
    /// The records whose transaction has `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.records.iter().filter(|r| r.outcome == outcome).count()
    }
}

/// Reads partitions `0..partitions` of `topic` from offset 0 to their high
/// watermarks as of the call (read_uncommitted, raw batches, markers included).
/// Panics on a broker error or after 120 s.
pub async fn read_log(client: &Client, topic: &str, partitions: i32) -> Log {
    let mut log = Log::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    for partition in 0..partitions {
        let (leader, _) = client
            .leader(topic, partition)
            .await
            .unwrap_or_else(|e| panic!("leader of {topic}-{partition}: {e}"));
        let conn = client
            .connection(leader, Lane::Fetch)
            .await
            .unwrap_or_else(|e| panic!("connection to {leader}: {e}"));
        let mut end = None;
        let mut offset = 0;
        // Records of each producer id waiting for their transaction's marker.
        let mut waiting: HashMap<i64, Vec<usize>> = HashMap::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition}: not read to its end in 120 s"
            );
            let request = FetchRequest {
                replica_id: -1,
                max_wait_ms: 100,
                min_bytes: 1,
                max_bytes: 16 << 20,
                isolation_level: 0,
                session_id: 0,
                session_epoch: -1,
                topics: vec![FetchTopic {
                    topic: topic.to_string(),
                    partitions: vec![FetchPartition {
                        partition,
                        current_leader_epoch: -1,
                        fetch_offset: offset,
                        last_fetched_epoch: -1,
                        log_start_offset: -1,
                        partition_max_bytes: 16 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let response = conn
                .call_version(&request, 12)
                .await
                .unwrap_or_else(|e| panic!("fetching {topic}-{partition} at {offset}: {e}"));
            let data = &response.responses[0].partitions[0];
            assert_eq!(
                data.error_code, 0,
                "fetching {topic}-{partition} at {offset}"
            );
            let end = *end.get_or_insert(data.high_watermark);
            if offset >= end {
                break;
            }
            let batches = decode_records(
                data.records.clone().unwrap_or_default(),
                DecodeOptions::default(),
            )
            .unwrap_or_else(|e| panic!("decoding {topic}-{partition} at {offset}: {e}"))
            .batches;
            for batch in batches {
                if batch.next_offset() <= offset {
                    continue;
                }
                offset = batch.next_offset();
                let pid = batch.producer_id();
                if batch.is_control() {
                    let kind = batch.control_record().ok().flatten().map(|c| c.kind);
                    let outcome = match kind {
                        Some(ControlRecordType::Commit) => {
                            log.commits += 1;
                            Outcome::Committed
                        }
                        Some(ControlRecordType::Abort) => {
                            log.aborts += 1;
                            Outcome::Aborted
                        }
                        _ => continue,
                    };
                    for i in waiting.remove(&pid).unwrap_or_default() {
                        log.records[i].outcome = outcome;
                    }
                    continue;
                }
                for r in batch.records() {
                    let r = r.unwrap_or_else(|e| panic!("a record of {topic}-{partition}: {e}"));
                    if r.offset >= end {
                        break;
                    }
                    let outcome = if batch.is_transactional() {
                        waiting.entry(pid).or_default().push(log.records.len());
                        Outcome::Unknown
                    } else {
                        Outcome::Committed
                    };
                    log.records.push(LogRecord {
                        partition,
                        offset: r.offset,
                        key: r.key,
                        value: r.value,
                        outcome,
                    });
                }
            }
        }
    }
    log
}
