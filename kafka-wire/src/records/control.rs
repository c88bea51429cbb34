//! Control records: the transaction markers (commit / abort) the transaction
//! coordinator writes into control batches, and other control types Kafka defines.
//!
//! ```text
//!  key:   version i16 | type i16            (0 = ABORT, 1 = COMMIT, others: KRaft metadata)
//!  value: version i16 | coordinatorEpoch i32 (for ABORT and COMMIT: EndTransactionMarker)
//! ```

use crate::error::{Error, Result};

/// The type of a control record, from bytes 2..4 of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Transaction abort marker (type 0).
    Abort,
    /// Transaction commit marker (type 1).
    Commit,
    /// Any other control type (leader change, snapshot header/footer, KRaft voters, ...).
    Other(i16),
}

impl ControlRecordType {
    /// The type code on the wire.
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Other(code) => code,
        }
    }

    /// The type for a wire code.
    pub fn from_code(code: i16) -> Self {
        match code {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        }
    }
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// Key version (0 today; later versions are read as 0 is).
    pub version: i16,
    /// Control type.
    pub kind: ControlRecordType,
    /// For commit and abort markers: the coordinator epoch from the value.
    pub coordinator_epoch: Option<i32>,
}

/// Size of a control record key (version + type).
pub const CONTROL_KEY_LEN: usize = 4;
/// Size of an end-transaction marker value (version + coordinator epoch).
pub const END_TXN_MARKER_VALUE_LEN: usize = 6;

impl ControlRecord {
    /// A commit marker written by a coordinator at `coordinator_epoch`.
    pub fn commit(coordinator_epoch: i32) -> Self {
        ControlRecord {
            version: 0,
            kind: ControlRecordType::Commit,
            coordinator_epoch: Some(coordinator_epoch),
        }
    }

    /// An abort marker written by a coordinator at `coordinator_epoch`.
    pub fn abort(coordinator_epoch: i32) -> Self {
        ControlRecord {
            version: 0,
            kind: ControlRecordType::Abort,
            coordinator_epoch: Some(coordinator_epoch),
        }
    }

    /// True for a commit or abort marker.
    pub fn is_transaction_marker(&self) -> bool {
        matches!(
            self.kind,
            ControlRecordType::Abort | ControlRecordType::Commit
        )
    }

    /// Parses a control record from its key and value. A negative version, a short
    /// key, or a marker without a 6-byte value is [`Error::CorruptRecords`].
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self> {
        let key =
            key.ok_or_else(|| Error::CorruptRecords("control record has a null key".into()))?;
        if key.len() < CONTROL_KEY_LEN {
            return Err(Error::CorruptRecords(format!(
                "control record key of {} bytes, expected {CONTROL_KEY_LEN}",
                key.len()
            )));
        }
        let version = i16::from_be_bytes([key[0], key[1]]);
        if version < 0 {
            return Err(Error::CorruptRecords(format!(
                "control record key version {version}"
            )));
        }
        let kind = ControlRecordType::from_code(i16::from_be_bytes([key[2], key[3]]));
        let coordinator_epoch = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let value = value
                    .filter(|v| v.len() >= END_TXN_MARKER_VALUE_LEN)
                    .ok_or_else(|| {
                        Error::CorruptRecords(
                            "transaction marker value shorter than 6 bytes".into(),
                        )
                    })?;
                let value_version = i16::from_be_bytes([value[0], value[1]]);
                if value_version < 0 {
                    return Err(Error::CorruptRecords(format!(
                        "transaction marker value version {value_version}"
                    )));
                }
                Some(i32::from_be_bytes([value[2], value[3], value[4], value[5]]))
            }
            ControlRecordType::Other(_) => None,
        };
        Ok(ControlRecord {
            version,
            kind,
            coordinator_epoch,
        })
    }

    /// The record key: version and type.
    pub fn key_bytes(&self) -> [u8; CONTROL_KEY_LEN] {
        let v = self.version.to_be_bytes();
        let t = self.kind.code().to_be_bytes();
        [v[0], v[1], t[0], t[1]]
    }

    /// The record value: for markers, version 0 and the coordinator epoch; else `None`.
    pub fn value_bytes(&self) -> Option<[u8; END_TXN_MARKER_VALUE_LEN]> {
        let epoch = self.coordinator_epoch?.to_be_bytes();
        Some([0, 0, epoch[0], epoch[1], epoch[2], epoch[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_through_key_and_value() {
        for m in [ControlRecord::commit(7), ControlRecord::abort(-3)] {
            let key = m.key_bytes();
            let value = m.value_bytes().unwrap();
            assert_eq!(ControlRecord::parse(Some(&key), Some(&value)).unwrap(), m);
        }
    }

    #[test]
    fn short_or_null_keys_and_values_are_errors() {
        assert!(ControlRecord::parse(None, None).is_err());
        assert!(ControlRecord::parse(Some(&[0, 0, 0]), None).is_err());
        assert!(ControlRecord::parse(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0])).is_err());
        assert!(ControlRecord::parse(Some(&[0xff, 0, 0, 1]), Some(&[0; 6])).is_err());
        let other = ControlRecord::parse(Some(&[0, 0, 0, 2]), None).unwrap();
        assert_eq!(other.kind, ControlRecordType::Other(2));
    }
}
