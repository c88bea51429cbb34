//! Checkers for what a fault run wrote and what readers saw, each named after the
//! anomaly it catches:
//!
//! - **aborted read** (G1a): a record of an aborted transaction seen by a
//!   read_committed reader;
//! - **lost write**: a committed record missing from a reader that saw a later
//!   record of the same partition (a hole below what it read);
//! - **unseen**: a committed record that no reader saw by the end of the run;
//! - **duplicate**: one record (by id) at two offsets;
//! - **inconsistent offsets**: one offset of a partition holding two records in
//!   two reads;
//! - **non-monotonic offsets**: a reader that saw a partition's offsets go
//!   backwards or repeat.
//!
//! Records are identified by a `u64` id the writer puts in the value; the writer
//! reports each id's outcome and partition, readers report what they read in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// What the writer knows about one record when the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its transaction committed (or, without transactions, it was acknowledged).
    Committed,
    /// Its transaction was aborted.
    Aborted,
    /// Unknown: the writer died or timed out before it learned the outcome.
    Unknown,
}

/// One record written.
#[derive(Debug, Clone, Copy)]
pub struct Write {
    /// The record's id.
    pub id: u64,
    /// The partition it was written to.
    pub partition: i32,
    /// What became of it.
    pub outcome: Outcome,
}

/// One record read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The record's id.
    pub id: u64,
}

/// Everything one reader saw, in the order it saw it.
#[derive(Debug, Clone, Default)]
pub struct Reader {
    /// Whether it read with `isolation.level=read_committed`.
    pub read_committed: bool,
    /// Whether it read every partition to its end after the writers finished
    /// (the final drain); only such readers count for [`Report::unseen`].
    pub drained: bool,
    /// The records, in read order.
    pub reads: Vec<Read>,
}

/// The anomalies found, by kind; each list holds example ids or offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Ids of aborted records seen by a read_committed reader.
    pub aborted_reads: BTreeSet<u64>,
    /// Ids of committed records missing below a later record a reader saw.
    pub lost_writes: BTreeSet<u64>,
    /// Ids of committed records no draining reader saw.
    pub unseen: BTreeSet<u64>,
    /// Ids read at more than one offset.
    pub duplicates: BTreeSet<u64>,
    /// `(partition, offset)` read with two different ids.
    pub inconsistent_offsets: BTreeSet<(i32, i64)>,
    /// `(reader index, partition, offset)` where a reader's offsets went backwards.
    pub non_monotonic_offsets: BTreeSet<(usize, i32, i64)>,
}

impl Report {
    /// Whether no checker found anything.
    pub fn is_clean(&self) -> bool {
        *self == Report::default()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn line<T: fmt::Debug>(
            f: &mut fmt::Formatter<'_>,
            name: &str,
            set: &BTreeSet<T>,
        ) -> fmt::Result {
            let examples: Vec<&T> = set.iter().take(5).collect();
            writeln!(f, "{name}: {} {examples:?}", set.len())
        }
        line(f, "aborted reads (G1a)", &self.aborted_reads)?;
        line(f, "lost writes", &self.lost_writes)?;
        line(f, "unseen", &self.unseen)?;
        line(f, "duplicates", &self.duplicates)?;
        line(f, "inconsistent offsets", &self.inconsistent_offsets)?;
        line(f, "non-monotonic offsets", &self.non_monotonic_offsets)
    }
}

/// Runs every checker over what the writers wrote and the readers read.
pub fn check(writes: &[Write], readers: &[Reader]) -> Report {
    let mut report = Report::default();
    let outcome: HashMap<u64, &Write> = writes.iter().map(|w| (w.id, w)).collect();

    // One record per offset, one offset per record, across all reads.
    let mut at_offset: HashMap<(i32, i64), u64> = HashMap::new();
    let mut offsets_of: HashMap<u64, BTreeSet<(i32, i64)>> = HashMap::new();
    for reader in readers {
        for r in &reader.reads {
            match at_offset.insert((r.partition, r.offset), r.id) {
                Some(other) if other != r.id => {
                    report.inconsistent_offsets.insert((r.partition, r.offset));
                }
                _ => {}
            }
            offsets_of
                .entry(r.id)
                .or_default()
                .insert((r.partition, r.offset));
        }
    }
    report.duplicates = offsets_of
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(id, _)| *id)
        .collect();

    // The committed ids of each partition, in offset order where they were read.
    let mut committed_by_partition: BTreeMap<i32, BTreeSet<u64>> = BTreeMap::new();
    for w in writes.iter().filter(|w| w.outcome == Outcome::Committed) {
        committed_by_partition
            .entry(w.partition)
            .or_default()
            .insert(w.id);
    }

    for (index, reader) in readers.iter().enumerate() {
        let mut last: HashMap<i32, i64> = HashMap::new();
        let mut highest: HashMap<i32, i64> = HashMap::new();
        let mut seen: BTreeSet<u64> = BTreeSet::new();
        for r in &reader.reads {
            if let Some(prev) = last.insert(r.partition, r.offset) {
                if r.offset <= prev {
                    report
                        .non_monotonic_offsets
                        .insert((index, r.partition, r.offset));
                }
            }
            let high = highest.entry(r.partition).or_insert(r.offset);
            *high = (*high).max(r.offset);
            seen.insert(r.id);
            if reader.read_committed
                && outcome
                    .get(&r.id)
                    .is_some_and(|w| w.outcome == Outcome::Aborted)
            {
                report.aborted_reads.insert(r.id);
            }
        }
        // A committed record whose offset (as any reader saw it) lies below this
        // reader's highest offset in the partition should have been read by it.
        for (partition, ids) in &committed_by_partition {
            let Some(high) = highest.get(partition) else {
                continue;
            };
            let first = reader
                .reads
                .iter()
                .filter(|r| r.partition == *partition)
                .map(|r| r.offset)
                .min()
                .unwrap_or(*high);
            for id in ids.iter().filter(|id| !seen.contains(id)) {
                let below = offsets_of.get(id).is_some_and(|at| {
                    at.iter()
                        .any(|(p, o)| p == partition && *o > first && *o < *high)
                });
                if below {
                    report.lost_writes.insert(*id);
                }
            }
        }
    }

    let drained: BTreeSet<u64> = readers
        .iter()
        .filter(|r| r.drained)
        .flat_map(|r| r.reads.iter().map(|read| read.id))
        .collect();
    if readers.iter().any(|r| r.drained) {
        report.unseen = writes
            .iter()
            .filter(|w| w.outcome == Outcome::Committed && !drained.contains(&w.id))
            .map(|w| w.id)
            .collect();
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: u64, outcome: Outcome) -> Write {
        Write {
            id,
            partition: 0,
            outcome,
        }
    }

    fn reader(read_committed: bool, drained: bool, reads: &[(i64, u64)]) -> Reader {
        Reader {
            read_committed,
            drained,
            reads: reads
                .iter()
                .map(|&(offset, id)| Read {
                    partition: 0,
                    offset,
                    id,
                })
                .collect(),
        }
    }

    #[test]
    fn a_clean_run_reports_nothing() {
        let writes = [
            write(1, Outcome::Committed),
            write(2, Outcome::Aborted),
            write(3, Outcome::Committed),
            write(4, Outcome::Unknown),
        ];
        let readers = [
            reader(true, true, &[(0, 1), (5, 3)]),
            reader(false, false, &[(0, 1), (2, 2), (5, 3)]),
        ];
        let report = check(&writes, &readers);
        assert!(report.is_clean(), "{report}");
    }

    #[test]
    fn each_checker_names_its_anomaly() {
        let writes = [
            write(1, Outcome::Committed),
            write(2, Outcome::Aborted),
            write(3, Outcome::Committed),
            write(4, Outcome::Committed),
            write(5, Outcome::Committed),
            write(6, Outcome::Committed),
        ];
        let readers = [
            // Sees the aborted 2, skips 3 (read by the other reader at offset 3),
            // misses 6 (at offset 4 for the other reader), and reads 5 twice: at 4
            // and again at 6, then goes back to 5.
            reader(true, true, &[(0, 1), (2, 2), (4, 5), (6, 5), (5, 4)]),
            // Offset 4 holds 6 here but 5 above.
            reader(false, false, &[(3, 3), (4, 6)]),
        ];
        let report = check(&writes, &readers);
        assert_eq!(report.aborted_reads, BTreeSet::from([2]));
        assert_eq!(report.lost_writes, BTreeSet::from([3, 6]));
        assert_eq!(report.unseen, BTreeSet::from([3, 6]));
        assert_eq!(report.duplicates, BTreeSet::from([5]));
        assert_eq!(report.inconsistent_offsets, BTreeSet::from([(0, 4)]));
        assert_eq!(report.non_monotonic_offsets, BTreeSet::from([(0, 0, 5)]));
        let text = report.to_string();
        assert!(text.contains("aborted reads (G1a): 1 [2]"), "{text}");
    }

    #[test]
    fn without_a_draining_reader_nothing_counts_as_unseen() {
        let writes = [write(1, Outcome::Committed)];
        let report = check(&writes, &[reader(true, false, &[])]);
        assert!(report.unseen.is_empty());
    }
}
