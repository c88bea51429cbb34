//! One partition's fetched `records` bytes turned into [`ConsumerRecord`]s, with the
//! `isolation.level` filter.
//!
//! ```text
//!  records bytes ──BatchReader──► batch ──┬─ below the fetch offset ─────► skipped
//!                                         ├─ control batch ──────────────► skipped (ABORT
//!                                         │                                 marker ends the
//!                                         │                                 aborted range)
//!                                         ├─ aborted (read_committed) ───► skipped
//!                                         └─ data ──records()──► ConsumerRecord (offset >=
//!                                                                  the fetch offset)
//! ```
//!
//! Under read_committed the broker returns everything below the last stable offset
//! plus the list of aborted transactions `(producer id, first offset)` that overlap
//! the returned range. Walking the batches in offset order, a transaction becomes
//! "aborted" for its producer id once a batch reaches its first offset, and stays so
//! until that producer's ABORT marker (a control batch): every transactional batch of
//! the producer in between is dropped. Under read_uncommitted the list is ignored
//! (some brokers send it anyway). Control records are never shown to the user.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::ConsumerRecord;
use crate::client::config::IsolationLevel;
use crate::error::{Error, Result};
use crate::records::{BatchReader, ControlRecordType, DecodeOptions, RecordBatch};

/// An entry of a fetch response's aborted-transactions list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The offset of the transaction's first batch.
    pub first_offset: i64,
}

/// What to decode: one partition of one fetch response.
#[derive(Debug)]
pub(crate) struct PartitionInput<'a> {
    /// Topic name (shared by every record).
    pub topic: &'a Arc<str>,
    /// Partition index.
    pub partition: i32,
    /// The offset the fetch asked for; earlier records are dropped.
    pub fetch_offset: i64,
    /// The consumer's isolation level.
    pub isolation: IsolationLevel,
    /// The response's aborted transactions (any order).
    pub aborted: &'a [AbortedTxn],
    /// Verify batch CRCs (`check.crcs`).
    pub check_crcs: bool,
    /// The batches' record counts as their headers claim ([`crate::records::peek`]),
    /// to size the records vector; `None` when unknown.
    pub claimed_records: Option<u64>,
}

/// The result of decoding one partition's records.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Records to hand to the user, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Where the next fetch of the partition starts: after the last complete batch
    /// that was read (the fetch offset when there was none).
    pub next_offset: i64,
    /// A malformed batch or record; the records before it are still in `records`
    /// and `next_offset` points at the bad batch.
    pub error: Option<Error>,
    /// Whether the data held bytes but not one complete batch.
    pub only_partial_batch: bool,
}

/// Decodes `data` (a fetch response partition's `records`) per the module doc.
pub(crate) fn decode_partition(input: &PartitionInput<'_>, data: Bytes) -> Decoded {
    let read_committed = input.isolation == IsolationLevel::ReadCommitted;
    // Sorted by first offset, descending, so the next one to apply is at the end.
    let mut pending: Vec<AbortedTxn> = if read_committed {
        input.aborted.to_vec()
    } else {
        Vec::new()
    };
    pending.sort_by_key(|a| std::cmp::Reverse(a.first_offset));
    let mut aborted_producers: HashSet<i64> = HashSet::new();

    let options = DecodeOptions {
        verify_crc: input.check_crcs,
        ..DecodeOptions::default()
    };
    let mut out = Decoded {
        next_offset: input.fetch_offset,
        ..Decoded::default()
    };
    // One allocation for the records, sized from the batch headers. The count is
    // the network's word, so it is capped at what the bytes could hold uncompressed
    // (a record takes at least 7 bytes); compressed data may need the vector to grow.
    if let Some(claimed) = input.claimed_records {
        let claimed = usize::try_from(claimed).unwrap_or(usize::MAX);
        out.records.reserve_exact(claimed.min(data.len() / 7));
    }
    let mut reader = BatchReader::with_options(data, options);
    let mut saw_batch = false;
    for batch in reader.by_ref() {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        };
        saw_batch = true;
        // Batches below the fetch offset still go through the aborted-transaction
        // bookkeeping: an abort marker there ends a range that later batches of the
        // same producer must not be counted in.
        if read_committed && batch.producer_id() >= 0 {
            while pending
                .last()
                .is_some_and(|a| a.first_offset <= batch.last_offset())
            {
                if let Some(a) = pending.pop() {
                    aborted_producers.insert(a.producer_id);
                }
            }
            match abort_marker(&batch) {
                Ok(true) => {
                    aborted_producers.remove(&batch.producer_id());
                }
                Ok(false) => {
                    if batch.is_transactional() && aborted_producers.contains(&batch.producer_id())
                    {
                        out.next_offset = out.next_offset.max(batch.next_offset());
                        continue;
                    }
                }
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            }
        }
        if batch.is_control() || batch.last_offset() < input.fetch_offset {
            out.next_offset = out.next_offset.max(batch.next_offset());
            continue;
        }
        let kept = out.records.len();
        match batch_records(input, &batch, &mut out.records) {
            Ok(()) => out.next_offset = out.next_offset.max(batch.next_offset()),
            Err(e) => {
                // None of a bad batch's records are handed out.
                out.records.truncate(kept);
                out.error = Some(e);
                break;
            }
        }
    }
    out.only_partial_batch = !saw_batch && out.error.is_none() && reader.remaining() > 0;
    out
}

/// Whether `batch` is a control batch holding a transaction ABORT marker.
fn abort_marker(batch: &RecordBatch) -> Result<bool> {
    if !batch.is_control() {
        return Ok(false);
    }
    Ok(batch
        .control_record()?
        .is_some_and(|c| c.kind == ControlRecordType::Abort))
}

/// The records of a data batch at or after the fetch offset. All or nothing: a
/// malformed record fails the whole batch, so a retry never duplicates records.
fn batch_records(
    input: &PartitionInput<'_>,
    batch: &RecordBatch,
    records: &mut Vec<ConsumerRecord>,
) -> Result<()> {
    let leader_epoch = Some(batch.header.partition_leader_epoch).filter(|e| *e >= 0);
    let timestamp_type = batch.timestamp_type();
    for record in batch.records() {
        let record = record?;
        if record.offset < input.fetch_offset {
            continue;
        }
        records.push(ConsumerRecord {
            topic: input.topic.clone(),
            partition: input.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type,
            key: record.key,
            value: record.value,
            headers: record.headers,
            leader_epoch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchBuilder, BatchParams, ControlRecord, encode_control_batch};

    const TS: i64 = 1_700_000_000_000;

    /// Builds the bytes of a partition: batches appended in order, with offsets
    /// assigned like a broker does.
    #[derive(Default)]
    struct Log {
        bytes: Vec<u8>,
        next: i64,
    }

    impl Log {
        fn data(&mut self, producer: Option<i64>, transactional: bool, values: &[&str]) -> i64 {
            let base = self.next;
            let mut b = BatchBuilder::new(BatchParams {
                base_offset: base,
                transactional,
                producer_id: producer.unwrap_or(-1),
                producer_epoch: if producer.is_some() { 0 } else { -1 },
                base_sequence: if producer.is_some() { 0 } else { -1 },
                partition_leader_epoch: 3,
                ..BatchParams::default()
            });
            for v in values {
                b.append(TS, Some(b"k"), Some(v.as_bytes()), &[]).unwrap();
            }
            self.bytes.extend_from_slice(&b.finish().unwrap());
            self.next += values.len() as i64;
            base
        }

        fn marker(&mut self, producer: i64, commit: bool) -> i64 {
            let base = self.next;
            let control = if commit {
                ControlRecord::commit(0)
            } else {
                ControlRecord::abort(0)
            };
            let params = BatchParams {
                base_offset: base,
                transactional: true,
                producer_id: producer,
                producer_epoch: 0,
                ..BatchParams::default()
            };
            self.bytes
                .extend_from_slice(&encode_control_batch(params, TS, &control).unwrap());
            self.next += 1;
            base
        }

        fn bytes(&self) -> Bytes {
            Bytes::from(self.bytes.clone())
        }
    }

    fn decode(log: &Log, from: i64, isolation: IsolationLevel, aborted: &[AbortedTxn]) -> Decoded {
        let topic: Arc<str> = Arc::from("t");
        let input = PartitionInput {
            topic: &topic,
            partition: 0,
            fetch_offset: from,
            isolation,
            aborted,
            check_crcs: true,
            claimed_records: None,
        };
        decode_partition(&input, log.bytes())
    }

    fn values(d: &Decoded) -> Vec<String> {
        d.records
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect()
    }

    /// Two producers interleaved: 7 aborts, 8 commits, plain records around them.
    fn interleaved() -> (Log, Vec<AbortedTxn>) {
        let mut log = Log::default();
        log.data(None, false, &["plain0"]);
        let first_aborted = log.data(Some(7), true, &["a0", "a1"]);
        log.data(Some(8), true, &["c0"]);
        log.data(Some(7), true, &["a2"]);
        log.marker(7, false);
        log.data(Some(8), true, &["c1"]);
        log.marker(8, true);
        log.data(None, false, &["plain1"]);
        (
            log,
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: first_aborted,
            }],
        )
    }

    #[test]
    fn a_claimed_record_count_never_sizes_the_records_beyond_what_the_bytes_hold() {
        let mut log = Log::default();
        log.data(None, false, &["a", "b"]);
        // recordCount (byte 57 of the batch) says i32::MAX; the CRC is not checked here.
        log.bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let topic: Arc<str> = Arc::from("t");
        let input = PartitionInput {
            topic: &topic,
            partition: 0,
            fetch_offset: 0,
            isolation: IsolationLevel::ReadUncommitted,
            aborted: &[],
            check_crcs: false,
            claimed_records: crate::records::peek(&log.bytes).map(|p| p.records),
        };
        assert_eq!(input.claimed_records, Some(i32::MAX as u64));
        let decoded = decode_partition(&input, log.bytes());
        assert!(decoded.error.is_some(), "the count is refused");
        assert!(decoded.records.capacity() <= log.bytes.len() / 7);
    }

    #[test]
    fn aborted_records_are_invisible_to_read_committed() {
        let (log, aborted) = interleaved();
        let d = decode(&log, 0, IsolationLevel::ReadCommitted, &aborted);
        assert_eq!(values(&d), ["plain0", "c0", "c1", "plain1"]);
        assert_eq!(d.next_offset, log.next);
        assert!(d.error.is_none());
        let offsets: Vec<i64> = d.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [0, 3, 6, 8]);
        assert!(d.records.iter().all(|r| r.leader_epoch == Some(3)));
    }

    #[test]
    fn read_uncommitted_ignores_the_aborted_list_but_hides_control_records() {
        let (log, aborted) = interleaved();
        let d = decode(&log, 0, IsolationLevel::ReadUncommitted, &aborted);
        assert_eq!(
            values(&d),
            ["plain0", "a0", "a1", "c0", "a2", "c1", "plain1"]
        );
        assert_eq!(d.next_offset, log.next);
    }

    #[test]
    fn abort_marker_ends_the_aborted_range_so_the_next_transaction_is_visible() {
        let mut log = Log::default();
        let t1 = log.data(Some(5), true, &["x0"]);
        log.marker(5, false);
        log.data(Some(5), true, &["y0"]);
        log.marker(5, true);
        let t3 = log.data(Some(5), true, &["z0", "z1"]);
        log.marker(5, false);
        let aborted = [
            AbortedTxn {
                producer_id: 5,
                first_offset: t3,
            },
            AbortedTxn {
                producer_id: 5,
                first_offset: t1,
            },
        ];
        let d = decode(&log, 0, IsolationLevel::ReadCommitted, &aborted);
        assert_eq!(values(&d), ["y0"]);
        assert_eq!(d.next_offset, log.next);
    }

    #[test]
    fn a_fetch_of_only_aborted_and_control_batches_still_advances() {
        let mut log = Log::default();
        let first = log.data(Some(9), true, &["a", "b", "c"]);
        log.marker(9, false);
        let aborted = [AbortedTxn {
            producer_id: 9,
            first_offset: first,
        }];
        let d = decode(&log, 0, IsolationLevel::ReadCommitted, &aborted);
        assert!(d.records.is_empty());
        assert_eq!(d.next_offset, 4);
    }

    #[test]
    fn non_transactional_batches_of_an_aborted_producer_id_are_kept() {
        // Only transactional batches can be aborted; an idempotent (non-transactional)
        // batch that happens to share the producer id is data.
        let mut log = Log::default();
        let first = log.data(Some(4), true, &["gone"]);
        log.data(Some(4), false, &["kept"]);
        log.marker(4, false);
        let aborted = [AbortedTxn {
            producer_id: 4,
            first_offset: first,
        }];
        let d = decode(&log, 0, IsolationLevel::ReadCommitted, &aborted);
        assert_eq!(values(&d), ["kept"]);
    }

    #[test]
    fn an_abort_marker_below_the_fetch_offset_still_ends_the_aborted_range() {
        let mut log = Log::default();
        let aborted_first = log.data(Some(6), true, &["x0", "x1"]);
        log.marker(6, false);
        let next = log.data(Some(6), true, &["y0"]);
        log.marker(6, true);
        let aborted = [AbortedTxn {
            producer_id: 6,
            first_offset: aborted_first,
        }];
        let d = decode(&log, next, IsolationLevel::ReadCommitted, &aborted);
        assert_eq!(values(&d), ["y0"]);
        assert_eq!(d.next_offset, log.next);
    }

    #[test]
    fn records_below_the_fetch_offset_are_skipped() {
        let mut log = Log::default();
        log.data(None, false, &["r0", "r1", "r2", "r3"]);
        log.data(None, false, &["r4"]);
        let d = decode(&log, 2, IsolationLevel::ReadUncommitted, &[]);
        assert_eq!(values(&d), ["r2", "r3", "r4"]);
        let d = decode(&log, 4, IsolationLevel::ReadUncommitted, &[]);
        assert_eq!(values(&d), ["r4"]);
        assert_eq!(d.next_offset, 5);
    }

    #[test]
    fn a_truncated_final_batch_is_left_for_the_next_fetch() {
        let mut log = Log::default();
        log.data(None, false, &["r0"]);
        let second = log.data(None, false, &["r1", "r2"]);
        let mut bytes = log.bytes().to_vec();
        bytes.truncate(bytes.len() - 5);
        let topic: Arc<str> = Arc::from("t");
        let input = PartitionInput {
            topic: &topic,
            partition: 0,
            fetch_offset: 0,
            isolation: IsolationLevel::ReadUncommitted,
            aborted: &[],
            check_crcs: true,
            claimed_records: None,
        };
        let d = decode_partition(&input, Bytes::from(bytes));
        assert_eq!(values(&d), ["r0"]);
        assert_eq!(d.next_offset, second);
        assert!(d.error.is_none() && !d.only_partial_batch);
    }

    #[test]
    fn crc_errors_are_reported_after_the_good_batches_when_checked() {
        let mut log = Log::default();
        log.data(None, false, &["good"]);
        let bad = log.data(None, false, &["bad"]);
        let mut bytes = log.bytes().to_vec();
        // The last byte is the header count; the one before it is the value's last.
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        let topic: Arc<str> = Arc::from("t");
        let mut input = PartitionInput {
            topic: &topic,
            partition: 0,
            fetch_offset: 0,
            isolation: IsolationLevel::ReadUncommitted,
            aborted: &[],
            check_crcs: true,
            claimed_records: None,
        };
        let d = decode_partition(&input, Bytes::from(bytes.clone()));
        assert_eq!(values(&d), ["good"]);
        assert_eq!(d.next_offset, bad);
        assert!(
            matches!(d.error, Some(Error::CrcMismatch { .. })),
            "{:?}",
            d.error
        );
        input.check_crcs = false;
        let d = decode_partition(&input, Bytes::from(bytes));
        assert_eq!(d.records.len(), 2);
        assert!(d.error.is_none());
    }
}
