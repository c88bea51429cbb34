//! Records as they travel between operators: a value, its event timestamp and where
//! it came from.

use std::fmt;

/// Timestamp value meaning "this record has no event timestamp".
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// A value in flight with its event timestamp (milliseconds) and source position.
#[derive(Clone, Debug, PartialEq)]
pub struct Record<T> {
    /// The user's value.
    pub value: T,
    /// Event time in milliseconds since the epoch, or [`NO_TIMESTAMP`].
    pub timestamp: i64,
    /// Source split and offset the record was read from (or [`Position::NONE`]).
    pub position: Position,
}

impl<T> Record<T> {
    /// A record with a timestamp and no known position.
    pub fn new(value: T, timestamp: i64) -> Self {
        Record {
            value,
            timestamp,
            position: Position::NONE,
        }
    }

    /// Replaces the value, keeping timestamp and position.
    #[inline]
    pub fn with_value<U>(self, value: U) -> Record<U> {
        Record {
            value,
            timestamp: self.timestamp,
            position: self.position,
        }
    }
}

/// Where a record was read: a source split index (16 bits) and an offset within the
/// split (48 bits), packed into one word so every record can carry it cheaply.
///
/// ```
/// use engine::Position;
/// let p = Position::new(3, 1042);
/// assert_eq!((p.split(), p.offset()), (Some(3), Some(1042)));
/// assert_eq!(p.to_string(), "split 3 offset 1042");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position(u64);

const OFFSET_BITS: u32 = 48;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;

impl Position {
    /// No known position (records produced by windows, generators without offsets, ...).
    pub const NONE: Position = Position(u64::MAX);

    /// Position `offset` in split `split`. Offsets are truncated to 48 bits.
    pub fn new(split: u16, offset: u64) -> Self {
        Position((u64::from(split) << OFFSET_BITS) | (offset & OFFSET_MASK))
    }

    /// An offset whose split the source task fills in.
    pub fn offset_only(offset: u64) -> Self {
        Position::new(0, offset)
    }

    /// The split index, if known.
    pub fn split(self) -> Option<u16> {
        (self != Self::NONE).then_some((self.0 >> OFFSET_BITS) as u16)
    }

    /// The offset within the split, if known.
    pub fn offset(self) -> Option<u64> {
        (self != Self::NONE).then_some(self.0 & OFFSET_MASK)
    }

    pub(crate) fn with_split(self, split: u16) -> Self {
        match self.offset() {
            Some(o) => Position::new(split, o),
            None => self,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.split(), self.offset()) {
            (Some(s), Some(o)) => write!(f, "split {s} offset {o}"),
            _ => f.write_str("unknown position"),
        }
    }
}
