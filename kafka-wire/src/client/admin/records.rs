//! Deleting records: moving partitions' log start offsets forward (DeleteRecords).
//!
//! ```text
//!  delete_records({(topic, p) -> offset}) ─► group by leader ─► DeleteRecords to each
//!                                              ▲                     │
//!                                              └── NOT_LEADER: refresh metadata, again
//! ```
//!
//! The request is idempotent (deleting before an offset the log already starts
//! at changes nothing), so a retry sends every partition again.

use std::collections::BTreeMap;

use super::{Admin, check};
use crate::client::cluster::Lane;
use crate::error::Result;
use crate::error_code::ErrorCode;
use crate::protocol::messages::DeleteRecordsRequest;
use crate::protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};

/// The offset for [`Admin::delete_records`] that deletes everything up to the
/// partition's high watermark.
pub const DELETE_ALL_RECORDS: i64 = -1;

/// Per topic, the `(partition, offset)` pairs of one leader's request.
type OffsetsByTopic<'a> = BTreeMap<&'a str, Vec<(i32, i64)>>;

impl Admin {
    /// Deletes the records before the given offset of each partition (or, with
    /// [`DELETE_ALL_RECORDS`], every record up to the high watermark), asking each
    /// partition's leader. Returns each partition's new low watermark (its log start
    /// offset). A stale leader refreshes the metadata and asks again, until the
    /// admin timeout; an offset past the high watermark fails with OFFSET_OUT_OF_RANGE.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<(String, i32), i64>,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        self.client
            .retry("DeleteRecords", self.timeout, || {
                self.delete_records_once(before)
            })
            .await
    }

    async fn delete_records_once(
        &self,
        before: &BTreeMap<(String, i32), i64>,
    ) -> Result<BTreeMap<(String, i32), i64>> {
        let mut by_leader: BTreeMap<i32, OffsetsByTopic<'_>> = BTreeMap::new();
        for ((topic, p), &offset) in before {
            let (leader, _) = self.client.leader(topic, *p).await?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(topic)
                .or_default()
                .push((*p, offset));
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = DeleteRecordsRequest {
                topics: topics
                    .iter()
                    .map(|(topic, parts)| DeleteRecordsTopic {
                        name: topic.to_string(),
                        partitions: parts
                            .iter()
                            .map(|&(p, offset)| DeleteRecordsPartition {
                                partition_index: p,
                                offset,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                timeout_ms: self.timeout.as_millis().min(i32::MAX as u128) as i32,
                ..Default::default()
            };
            let response = self
                .client
                .connection(leader, Lane::Control)
                .await?
                .call(&request)
                .await?;
            for t in response.topics {
                for p in t.partitions {
                    let code = ErrorCode::from_code(p.error_code);
                    if matches!(
                        code,
                        ErrorCode::NotLeaderOrFollower
                            | ErrorCode::FencedLeaderEpoch
                            | ErrorCode::UnknownLeaderEpoch
                            | ErrorCode::UnknownTopicOrPartition
                    ) {
                        self.client.invalidate_topic(&t.name);
                    }
                    check(p.error_code, None, || {
                        format!("delete records of {}-{}", t.name, p.partition_index)
                    })?;
                    out.insert((t.name.clone(), p.partition_index), p.low_watermark);
                }
            }
        }
        Ok(out)
    }
}
