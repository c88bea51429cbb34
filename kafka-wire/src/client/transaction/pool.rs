//! A bounded, reused set of transactional ids for one job.
//!
//! A coordinator keeps the state of every transactional id it has seen until
//! `transactional.id.expiration.ms` (7 days by default) after its last use, so a
//! job that takes a new id per transaction (or per checkpoint) grows that state
//! without bound. A job instead draws ids from a pool per subtask,
//! `{prefix}-{subtask}-{slot}`, with as many slots as transactions it can have open
//! at once (one being written plus those awaiting their checkpoint's commit), and
//! on start-up fences every id of its prefix so nothing a previous incarnation left
//! open keeps blocking `read_committed` readers.

use std::collections::VecDeque;

use tracing::info;

use super::TransactionalProducer;
use super::admin::TransactionAdmin;
use crate::client::cluster::Client;
use crate::client::config::ProducerConfig;
use crate::error::{Error, Result};

/// Most slots a pool may have: a pool is meant to be small.
pub const MAX_POOL_SIZE: u32 = 1024;

/// Coordinator states of a transaction that is not finished.
const UNFINISHED: [&str; 4] = [
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "PrepareEpochFence",
];

/// The transactional ids of one subtask of a job: `{prefix}-{subtask}-{slot}` for
/// `slot` in `0..size`, handed out least recently released first.
#[derive(Debug, Clone)]
pub struct TransactionalIdPool {
    prefix: String,
    subtask: u32,
    size: u32,
    free: VecDeque<u32>,
}

impl TransactionalIdPool {
    /// A pool of `size` ids for `subtask` of the job named by `prefix`.
    pub fn new(prefix: impl Into<String>, subtask: u32, size: u32) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(Error::Config {
                key: "transactional.id prefix".into(),
                message: "must not be empty".into(),
            });
        }
        if size == 0 || size > MAX_POOL_SIZE {
            return Err(Error::Config {
                key: "transactional.id pool size".into(),
                message: format!("{size} is not in 1..={MAX_POOL_SIZE}"),
            });
        }
        Ok(TransactionalIdPool {
            prefix,
            subtask,
            size,
            free: (0..size).collect(),
        })
    }

    /// The id of `slot`.
    pub fn id(&self, slot: u32) -> String {
        format!("{}-{}-{slot}", self.prefix, self.subtask)
    }

    /// Every id of the pool, in slot order.
    pub fn ids(&self) -> Vec<String> {
        (0..self.size).map(|slot| self.id(slot)).collect()
    }

    /// Number of ids not handed out.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Takes the least recently released id; `None` when every id is in use (the
    /// caller has more transactions open than the pool was sized for).
    pub fn acquire(&mut self) -> Option<String> {
        self.free.pop_front().map(|slot| self.id(slot))
    }

    /// Returns `id` to the pool once its transaction is committed or aborted.
    pub fn release(&mut self, id: &str) -> Result<()> {
        let slot = match parse(&self.prefix, id) {
            Some((subtask, slot)) if subtask == self.subtask && slot < self.size => slot,
            _ => {
                return Err(Error::Config {
                    key: "transactional.id".into(),
                    message: format!("{id} is not an id of this pool"),
                });
            }
        };
        if self.free.contains(&slot) {
            return Err(Error::Config {
                key: "transactional.id".into(),
                message: format!("{id} was released twice"),
            });
        }
        self.free.push_back(slot);
        Ok(())
    }
}

/// The `(subtask, slot)` of `id` when it is `{prefix}-{subtask}-{slot}` exactly (so
/// prefix `job1` never matches the ids of `job10`).
pub fn parse(prefix: &str, id: &str) -> Option<(u32, u32)> {
    let rest = id.strip_prefix(prefix)?.strip_prefix('-')?;
    let (subtask, slot) = rest.split_once('-')?;
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    Some((number(subtask)?, number(slot)?))
}

/// Fences every transactional id of `prefix` (any subtask, any slot) that has an
/// unfinished transaction, as found by ListTransactions on every broker: an
/// InitProducerId per id bumps its epoch, so a zombie of an earlier incarnation
/// can no longer write, and makes the coordinator finish (abort) what it left open.
/// Returns the ids fenced. `config` supplies everything but `transactional.id`.
pub async fn abort_lingering(
    client: &Client,
    config: &ProducerConfig,
    prefix: &str,
) -> Result<Vec<String>> {
    let listed = TransactionAdmin::new(client.clone())
        .list_transactions(&UNFINISHED, None)
        .await?;
    let mut fenced = Vec::new();
    for t in listed {
        if parse(prefix, &t.transactional_id).is_none() {
            continue;
        }
        let mut config = config.clone();
        config.transactional_id = Some(t.transactional_id.clone());
        let producer = TransactionalProducer::with_client(client.clone(), config).await?;
        info!(
            transactional_id = t.transactional_id,
            state = t.state,
            "fenced a transaction left open by an earlier incarnation"
        );
        drop(producer);
        fenced.push(t.transactional_id);
    }
    Ok(fenced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reused_least_recently_released_first() {
        let mut pool = TransactionalIdPool::new("job", 3, 2).unwrap();
        assert_eq!(pool.ids(), ["job-3-0", "job-3-1"]);
        let a = pool.acquire().unwrap();
        let b = pool.acquire().unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("job-3-0", "job-3-1"));
        assert_eq!(pool.acquire(), None);
        pool.release(&b).unwrap();
        pool.release(&a).unwrap();
        assert_eq!(pool.acquire().as_deref(), Some("job-3-1"));
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn foreign_and_double_releases_are_refused() {
        let mut pool = TransactionalIdPool::new("job", 0, 2).unwrap();
        let id = pool.acquire().unwrap();
        assert!(pool.release("job-1-0").is_err());
        assert!(pool.release("job-0-7").is_err());
        assert!(pool.release("other-0-0").is_err());
        pool.release(&id).unwrap();
        assert!(pool.release(&id).is_err());
        assert!(TransactionalIdPool::new("", 0, 1).is_err());
        assert!(TransactionalIdPool::new("job", 0, 0).is_err());
        assert!(TransactionalIdPool::new("job", 0, MAX_POOL_SIZE + 1).is_err());
    }

    #[test]
    fn parse_matches_the_exact_prefix_only() {
        assert_eq!(parse("job1", "job1-2-3"), Some((2, 3)));
        assert_eq!(parse("job1", "job10-2-3"), None);
        assert_eq!(parse("job1", "job1-2"), None);
        assert_eq!(parse("job1", "job1-2-3-4"), None);
        assert_eq!(parse("job1", "job1--2-3"), None);
        assert_eq!(parse("job1", "job1-+2-3"), None);
        assert_eq!(parse("a-b", "a-b-0-0"), Some((0, 0)));
    }
}
