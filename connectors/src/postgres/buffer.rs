//! Rows waiting to be sent. For an upsert, a later row or delete for a key
//! replaces the buffered one in place: `INSERT ... ON CONFLICT DO UPDATE` refuses
//! to touch the same row twice in one statement, and the last write must win. So
//! the upserts and the deletes taken together touch distinct keys, and may be sent
//! in either order.

use std::collections::HashMap;

use super::value::{PgValue, key_bytes};

/// What a buffered row does to the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pending {
    /// Insert the row (or update the row with its key).
    Write(Vec<PgValue>),
    /// Delete the row with this row's key (only its key columns are read).
    Delete(Vec<PgValue>),
}

impl Pending {
    fn row(&self) -> &[PgValue] {
        match self {
            Pending::Write(r) | Pending::Delete(r) => r,
        }
    }
}

/// Buffered rows, deduplicated by key in upsert mode.
#[derive(Debug, Default)]
pub(crate) struct RowBuffer {
    rows: Vec<Pending>,
    /// Positions of the key columns (upsert), empty for append.
    key: Vec<usize>,
    /// Upsert: key bytes -> index in `rows`.
    index: HashMap<Vec<u8>, usize>,
}

impl RowBuffer {
    /// A buffer deduplicating on the columns at `key` (none: keep every row).
    pub(crate) fn new(key: Vec<usize>) -> Self {
        RowBuffer {
            rows: Vec::new(),
            key,
            index: HashMap::new(),
        }
    }

    /// Adds a row (already fitted to the columns); replaces a buffered row with the
    /// same key.
    pub(crate) fn push(&mut self, row: Pending) {
        if self.key.is_empty() {
            self.rows.push(row);
            return;
        }
        let k = key_bytes(self.key.iter().filter_map(|&i| row.row().get(i)));
        match self.index.get(&k) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(k, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    /// Number of buffered rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Takes every buffered row, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> Vec<Pending> {
        self.index.clear();
        std::mem::take(&mut self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: i64, v: &str) -> Pending {
        Pending::Write(vec![PgValue::BigInt(k), PgValue::Text(v.into())])
    }

    fn delete(k: i64) -> Pending {
        Pending::Delete(vec![PgValue::BigInt(k), PgValue::Null])
    }

    #[test]
    fn upsert_keeps_the_last_row_per_key() {
        let mut b = RowBuffer::new(vec![0]);
        b.push(row(1, "a"));
        b.push(row(2, "b"));
        b.push(row(1, "c"));
        assert_eq!(b.len(), 2);
        assert_eq!(b.take(), vec![row(1, "c"), row(2, "b")]);
        assert!(b.is_empty());
        b.push(row(1, "d"));
        assert_eq!(b.take(), vec![row(1, "d")]);
    }

    #[test]
    fn a_delete_replaces_the_buffered_row_of_its_key_and_is_replaced_by_a_later_one() {
        let mut b = RowBuffer::new(vec![0]);
        b.push(row(1, "a"));
        b.push(row(2, "b"));
        b.push(delete(1));
        b.push(delete(3));
        assert_eq!(b.take(), vec![delete(1), row(2, "b"), delete(3)]);
        b.push(delete(1));
        b.push(row(1, "c"));
        assert_eq!(b.take(), vec![row(1, "c")]);
    }

    #[test]
    fn append_keeps_every_row() {
        let mut b = RowBuffer::new(vec![]);
        b.push(row(1, "a"));
        b.push(row(1, "a"));
        assert_eq!(b.len(), 2);
    }
}
