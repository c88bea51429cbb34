//! Finding a coordinator (FindCoordinator) and talking to it with retries.
//!
//! ```text
//!  call(request) ──► coordinator connection ──► response ──► code_of(response)
//!       ▲                  │ lost / timed out                  │ NOT_COORDINATOR,
//!       │                  ▼                                   │ COORDINATOR_NOT_AVAILABLE
//!       └──── backoff ◄── forget the coordinator ◄─────────────┘
//!                         (next attempt finds it again)
//! ```
//!
//! A group's coordinator (key type 0) and a transactional id's coordinator (key
//! type 1) are both the leader of one partition of an internal topic; either can
//! move, which the broker reports as NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE.
//! Every other retriable code (COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS,
//! ...) and every lost connection is retried on the same coordinator after a
//! backoff, until the caller's deadline. The request is resent unchanged, so a
//! retried EndTxn carries the same decision as the first attempt.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::client::backoff::Backoff;
use crate::client::cluster::{Client, Lane};
use crate::client::connection::{Connection, ConnectionOptions};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::FindCoordinatorRequest;
use crate::protocol::{ApiKey, Request};

/// What a coordinator coordinates (FindCoordinator `key_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorType {
    /// A consumer group (key type 0).
    Group,
    /// A transactional id (key type 1).
    Transaction,
}

impl CoordinatorType {
    /// The FindCoordinator `key_type` value.
    pub fn key_type(self) -> i8 {
        match self {
            CoordinatorType::Group => 0,
            CoordinatorType::Transaction => 1,
        }
    }
}

/// The coordinator of one key, found on first use and found again when it moves.
#[derive(Debug)]
pub struct Coordinator {
    client: Client,
    kind: CoordinatorType,
    key: String,
    connection: Option<Connection>,
    /// Options of a connection of its own (not the client's shared pool), for
    /// requests that block longer than the client's request timeout (JoinGroup).
    dedicated: Option<ConnectionOptions>,
}

/// Whether a code means "ask FindCoordinator again".
fn is_coordinator_moved(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable
    )
}

impl Coordinator {
    /// A coordinator handle for `key`; nothing is looked up until the first call.
    pub fn new(client: Client, kind: CoordinatorType, key: impl Into<String>) -> Self {
        Coordinator {
            client,
            kind,
            key: key.into(),
            connection: None,
            dedicated: None,
        }
    }

    /// As [`Coordinator::new`], but talking over a connection of its own opened with
    /// `options` (so a JoinGroup may wait for the rebalance longer than the client's
    /// request timeout, without holding up the client's other control requests).
    pub fn dedicated(
        client: Client,
        kind: CoordinatorType,
        key: impl Into<String>,
        options: ConnectionOptions,
    ) -> Self {
        Coordinator {
            dedicated: Some(options),
            ..Coordinator::new(client, kind, key)
        }
    }

    /// The key (group id or transactional id).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Forgets the coordinator, so the next call asks FindCoordinator again.
    pub fn invalidate(&mut self) {
        self.connection = None;
    }

    /// The connection to the coordinator, looking it up when needed (one attempt).
    pub async fn connection(&mut self) -> Result<Connection> {
        if let Some(conn) = &self.connection {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let conn = self.find().await?;
        self.connection = Some(conn.clone());
        Ok(conn)
    }

    async fn find(&self) -> Result<Connection> {
        let any = self.client.any_connection(Lane::Control).await?;
        let version = any.version_for::<FindCoordinatorRequest>()?;
        let mut request = FindCoordinatorRequest {
            key_type: self.kind.key_type(),
            ..Default::default()
        };
        if version >= 4 {
            request.coordinator_keys = vec![self.key.clone()];
        } else {
            request.key = self.key.clone();
        }
        let response = any.call_version(&request, version).await?;
        let (code, message, host, port, node) = if version >= 4 {
            let c = response
                .coordinators
                .into_iter()
                .find(|c| c.key == self.key)
                .ok_or_else(|| {
                    Error::broker(
                        ErrorCode::CoordinatorNotAvailable,
                        format!("FindCoordinator({}): no answer for the key", self.key),
                    )
                    .with_api(ApiKey::FindCoordinator)
                })?;
            (c.error_code, c.error_message, c.host, c.port, c.node_id)
        } else {
            (
                response.error_code,
                response.error_message,
                response.host,
                response.port,
                response.node_id,
            )
        };
        ErrorCode::from_code(code).into_result().map_err(|code| {
            // Finding the coordinator needs Describe on the group or transactional id.
            self.refusal(code, "describe", || {
                format!(
                    "FindCoordinator({:?} {}){}",
                    self.kind,
                    self.key,
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                )
            })
            .with_api(ApiKey::FindCoordinator)
        })?;
        debug!(kind = ?self.kind, key = self.key, node, host, port, "coordinator found");
        let address = format!("{host}:{port}");
        match &self.dedicated {
            Some(options) => Connection::connect(&address, options.clone()).await,
            None => self.client.connection_to(&address, Lane::Control).await,
        }
    }

    /// Sends `request` to the coordinator until it succeeds, fails for good, or
    /// `deadline` passes; see the module doc for what is retried.
    ///
    /// `max_version` caps the version (e.g. AddPartitionsToTxn v3, the last client
    /// version); `code_of` extracts the error code that decides the outcome (the
    /// top-level code, or the first non-zero per-partition one).
    pub async fn call<R, F>(
        &mut self,
        request: &R,
        max_version: Option<i16>,
        deadline: Instant,
        code_of: F,
    ) -> Result<R::Response>
    where
        R: Request,
        F: Fn(&R::Response) -> ErrorCode,
    {
        let config = self.client.config();
        let mut backoff = Backoff::new(config.retry_backoff, config.retry_backoff_max);
        loop {
            let attempt = async {
                let conn = self.connection().await?;
                let version = conn.version_at_most::<R>(max_version.unwrap_or(i16::MAX))?;
                let response = conn.call_version(request, version).await?;
                Ok::<_, Error>(response)
            }
            .await;
            let error = match attempt {
                Ok(response) => {
                    let code = code_of(&response);
                    if code.is_ok() {
                        return Ok(response);
                    }
                    self.refusal(code, refused_operation(R::NAME, code), || {
                        format!("{} ({} {})", R::NAME, kind_word(self.kind), self.key)
                    })
                    .with_api(R::API_KEY)
                }
                Err(e) => e,
            };
            let moved = error.code().is_some_and(is_coordinator_moved);
            let lost = matches!(
                error,
                Error::Disconnected { .. } | Error::Io { .. } | Error::Timeout { .. }
            );
            if moved || lost {
                self.invalidate();
            }
            if !error.is_retriable() || Instant::now() >= deadline {
                return Err(error);
            }
            let delay = if error.code() == Some(ErrorCode::ConcurrentTransactions) {
                // The coordinator is finishing the previous transaction (writing
                // markers): that takes milliseconds, not the usual backoff.
                Duration::from_millis(20)
            } else {
                backoff.next_delay()
            };
            debug!(api = R::NAME, error = %error, ?delay, "coordinator request failed; retrying");
            let remaining = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(delay.min(remaining)).await;
        }
    }
}

impl Coordinator {
    /// The error for `code` from this coordinator: [`Error::Authorization`] when
    /// the code refuses this coordinator's own resource (GROUP_ for a group,
    /// TRANSACTIONAL_ID_ or CLUSTER_ for a transactional id), else
    /// [`Error::Broker`] (a topic's refusal names no topic here).
    fn refusal(
        &self,
        code: ErrorCode,
        operation: &'static str,
        context: impl FnOnce() -> String,
    ) -> Error {
        let own = match self.kind {
            CoordinatorType::Group => code == ErrorCode::GroupAuthorizationFailed,
            CoordinatorType::Transaction => matches!(
                code,
                ErrorCode::TransactionalIdAuthorizationFailed
                    | ErrorCode::ClusterAuthorizationFailed
            ),
        };
        if own {
            Error::from_refusal(code, &self.key, operation, context)
        } else {
            Error::broker(code, context())
        }
    }
}

/// The operation the broker refused when `api` failed with an authorization code.
///
/// | api | refused |
/// |---|---|
/// | OffsetFetch, DescribeGroups | describe (group) |
/// | other group requests (join, sync, heartbeat, commit) | read (group) |
/// | InitProducerId with CLUSTER_AUTHORIZATION_FAILED | idempotent write (cluster) |
/// | transaction requests | write (transactional id) |
fn refused_operation(api: &str, code: ErrorCode) -> &'static str {
    let api = api.strip_suffix("Request").unwrap_or(api);
    match code {
        ErrorCode::GroupAuthorizationFailed
            if matches!(
                api,
                "OffsetFetch" | "DescribeGroups" | "ConsumerGroupDescribe"
            ) =>
        {
            "describe"
        }
        ErrorCode::GroupAuthorizationFailed => "read",
        ErrorCode::ClusterAuthorizationFailed => "idempotent write",
        _ => "write",
    }
}

fn kind_word(kind: CoordinatorType) -> &'static str {
    match kind {
        CoordinatorType::Group => "group",
        CoordinatorType::Transaction => "transactional id",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_match_the_protocol() {
        assert_eq!(CoordinatorType::Group.key_type(), 0);
        assert_eq!(CoordinatorType::Transaction.key_type(), 1);
    }

    #[test]
    fn a_refusal_names_the_operation_the_request_needed() {
        let group = ErrorCode::GroupAuthorizationFailed;
        assert_eq!(refused_operation("OffsetFetchRequest", group), "describe");
        assert_eq!(refused_operation("JoinGroupRequest", group), "read");
        assert_eq!(refused_operation("OffsetCommit", group), "read");
        let txn = ErrorCode::TransactionalIdAuthorizationFailed;
        assert_eq!(refused_operation("InitProducerId", txn), "write");
        assert_eq!(refused_operation("EndTxn", txn), "write");
        assert_eq!(
            refused_operation("InitProducerId", ErrorCode::ClusterAuthorizationFailed),
            "idempotent write"
        );
    }

    #[test]
    fn only_not_coordinator_and_not_available_mean_the_coordinator_moved() {
        assert!(is_coordinator_moved(ErrorCode::NotCoordinator));
        assert!(is_coordinator_moved(ErrorCode::CoordinatorNotAvailable));
        assert!(!is_coordinator_moved(ErrorCode::CoordinatorLoadInProgress));
        assert!(!is_coordinator_moved(ErrorCode::ConcurrentTransactions));
    }
}
