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

use super::Admin;
use crate::error::Result;
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
                timeout_ms: self.timeout_ms(),
                ..Default::default()
            };
            let response = self.call_leader(leader, &request).await?;
            for t in response.topics {
                for p in t.partitions {
                    let at = (t.name.as_str(), p.partition_index);
                    self.check_leader_answer::<DeleteRecordsRequest>(
                        at,
                        leader,
                        p.error_code,
                        "delete",
                        || format!("delete records of {}-{}", t.name, p.partition_index),
                    )?;
                    out.insert((t.name.clone(), p.partition_index), p.low_watermark);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::client::Client;
    use crate::client::config::ProducerConfig;
    use crate::client::fake_broker::{
        Answer, Request, api_versions, bind, client_props, frame_of, one_broker_metadata, serve_all,
    };
    use crate::error_code::ErrorCode;
    use crate::protocol::messages::delete_records_response::{
        DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
    };
    use crate::protocol::messages::{ApiKey, DeleteRecordsResponse, MetadataRequest};
    use crate::protocol::{Message, Uuid};

    /// One broker leading `t` (2 partitions) that refuses the first DeleteRecords
    /// with NOT_LEADER_OR_FOLLOWER, then deletes as asked (-1: up to offset 50).
    struct Fake {
        port: u16,
        metadata: AtomicUsize,
        deletes: AtomicUsize,
    }

    impl Fake {
        async fn answer(self: Arc<Self>, request: Request) -> Answer {
            let (version, cid, mut body) = (request.version, request.cid, request.body);
            let out = match request.api {
                ApiKey::ApiVersions => api_versions(
                    &[
                        (ApiKey::ApiVersions, 3),
                        (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                        (
                            ApiKey::DeleteRecords,
                            DeleteRecordsRequest::VALID_VERSIONS.max,
                        ),
                    ],
                    version,
                    cid,
                ),
                ApiKey::Metadata => {
                    self.metadata.fetch_add(1, Ordering::SeqCst);
                    let metadata = one_broker_metadata(self.port, &[("t", Uuid::ZERO, 2)]);
                    frame_of(&metadata, version, cid)
                }
                ApiKey::DeleteRecords => {
                    let first = self.deletes.fetch_add(1, Ordering::SeqCst) == 0;
                    let request = DeleteRecordsRequest::decode(&mut body, version).unwrap();
                    let response = DeleteRecordsResponse {
                        topics: request
                            .topics
                            .iter()
                            .map(|t| DeleteRecordsTopicResult {
                                name: t.name.clone(),
                                partitions: t
                                    .partitions
                                    .iter()
                                    .map(|p| DeleteRecordsPartitionResult {
                                        partition_index: p.partition_index,
                                        low_watermark: if first {
                                            -1
                                        } else if p.offset == DELETE_ALL_RECORDS {
                                            50
                                        } else {
                                            p.offset
                                        },
                                        error_code: if first {
                                            ErrorCode::NotLeaderOrFollower.code()
                                        } else {
                                            0
                                        },
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    };
                    frame_of(&response, version, cid)
                }
                other => panic!("unexpected {other:?}"),
            };
            out.into()
        }
    }

    #[tokio::test]
    async fn a_stale_leader_refreshes_metadata_and_deletes_again() {
        let (listener, port) = bind().await;
        let fake = Arc::new(Fake {
            port,
            metadata: AtomicUsize::new(0),
            deletes: AtomicUsize::new(0),
        });
        serve_all(listener, &fake, Fake::answer);
        let config = ProducerConfig::from_properties(&client_props(port)).unwrap();
        let admin = Admin::new(Client::connect(config.client).await.unwrap());

        let before = BTreeMap::from([
            (("t".to_string(), 0), 7),
            (("t".to_string(), 1), DELETE_ALL_RECORDS),
        ]);
        let low = admin.delete_records(&before).await.unwrap();
        assert_eq!(
            low,
            BTreeMap::from([(("t".to_string(), 0), 7), (("t".to_string(), 1), 50)])
        );
        assert_eq!(fake.deletes.load(Ordering::SeqCst), 2);
        // The fake names t in every answer, so connecting cached it; the second
        // lookup is the one after NOT_LEADER_OR_FOLLOWER.
        assert_eq!(fake.metadata.load(Ordering::SeqCst), 2);
    }
}
