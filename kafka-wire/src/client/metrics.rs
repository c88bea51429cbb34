//! Client metrics through the `metrics` facade: the binary (or any user) installs an
//! exporter such as Prometheus; without one, recording costs next to nothing.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `kafka_client_requests_total` | counter | `api` |
//! | `kafka_client_request_bytes_total` | counter | `api` |
//! | `kafka_client_response_bytes_total` | counter | `api` |
//! | `kafka_client_request_latency_seconds` | histogram | `api` |
//! | `kafka_client_retries_total` | counter | `api` |
//! | `kafka_producer_batches_total` | counter | |
//! | `kafka_producer_records_per_batch` | histogram | |
//! | `kafka_producer_batch_bytes` | histogram | |
//! | `kafka_producer_batch_splits_total` | counter | |
//! | `kafka_consumer_records_total` | counter | |
//! | `kafka_consumer_fetch_bytes_total` | counter | |
//! | `kafka_consumer_fetch_requests_total` | counter | `session` (`full`, `incremental`) |
//! | `kafka_consumer_fetch_session_resets_total` | counter | |
//! | `kafka_client_connection_attempts_total` | counter | `broker` |
//!
//! Connection attempts are also counted per client id and broker in the process,
//! readable with [`connection_attempts`] (tests use it to prove a failure is not
//! retried in a storm).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::protocol::ApiKey;

/// Counts a request written to a broker.
pub fn request_sent(api: ApiKey, bytes: usize) {
    metrics::counter!("kafka_client_requests_total", "api" => api.name()).increment(1);
    metrics::counter!("kafka_client_request_bytes_total", "api" => api.name())
        .increment(bytes as u64);
}

/// Counts a response and records the request's latency.
pub fn response_received(api: ApiKey, bytes: usize, latency: Duration) {
    metrics::counter!("kafka_client_response_bytes_total", "api" => api.name())
        .increment(bytes as u64);
    metrics::histogram!("kafka_client_request_latency_seconds", "api" => api.name())
        .record(latency.as_secs_f64());
}

/// Counts a retried request.
pub fn retry(api: ApiKey) {
    metrics::counter!("kafka_client_retries_total", "api" => api.name()).increment(1);
}

/// Records a produced batch.
pub fn batch_sent(records: usize, bytes: usize) {
    metrics::counter!("kafka_producer_batches_total").increment(1);
    metrics::histogram!("kafka_producer_records_per_batch").record(records as f64);
    metrics::histogram!("kafka_producer_batch_bytes").record(bytes as f64);
}

/// Counts a batch split after the broker refused it as too large.
pub fn batch_split() {
    metrics::counter!("kafka_producer_batch_splits_total").increment(1);
}

/// Records consumed records and fetched bytes.
pub fn fetched(records: usize, bytes: usize) {
    metrics::counter!("kafka_consumer_records_total").increment(records as u64);
    metrics::counter!("kafka_consumer_fetch_bytes_total").increment(bytes as u64);
}

/// Counts a fetch request of a fetch session (KIP-227): full, or only the changes.
pub fn fetch_request(full: bool) {
    metrics::counter!(
        "kafka_consumer_fetch_requests_total",
        "session" => if full { "full" } else { "incremental" }
    )
    .increment(1);
}

/// Counts a fetch session started over (an error, or the broker forgot it).
pub fn fetch_session_reset() {
    metrics::counter!("kafka_consumer_fetch_session_resets_total").increment(1);
}

type AttemptTable = Mutex<HashMap<(String, String), u64>>;

fn attempt_table() -> &'static AttemptTable {
    static TABLE: OnceLock<AttemptTable> = OnceLock::new();
    TABLE.get_or_init(AttemptTable::default)
}

/// Counts an attempt to open a connection to `broker` (`host:port`) by the
/// client with `client_id`.
pub fn connection_attempt(client_id: &str, broker: &str) {
    metrics::counter!("kafka_client_connection_attempts_total", "broker" => broker.to_string())
        .increment(1);
    let mut table = crate::sync::lock(attempt_table());
    *table
        .entry((client_id.to_string(), broker.to_string()))
        .or_default() += 1;
}

/// How many connections clients with `client_id` tried to open to `broker` in
/// this process so far (every lane and coordinator connection counts).
pub fn connection_attempts(client_id: &str, broker: &str) -> u64 {
    crate::sync::lock(attempt_table())
        .get(&(client_id.to_string(), broker.to_string()))
        .copied()
        .unwrap_or(0)
}
