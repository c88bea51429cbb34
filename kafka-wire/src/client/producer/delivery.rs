//! Delivery futures: one shared completion per batch, not a channel per record.
//!
//! ```text
//!  Batch ── owns ──► BatchCompletion ──┐
//!                                      ▼
//!                       Arc<BatchSlot { outcome: OnceLock, wakers }>
//!                          ▲              ▲              ▲
//!     DeliveryFuture { slot, index 0 }  { index 1 } ... { index n-1 }
//! ```
//!
//! A record's future holds the slot of its batch and its index in the batch; the
//! batch's answer (base offset, log-append time, or an error) is written once into
//! the slot and every future derives its own [`RecordMetadata`] from it. `send`
//! costs one reference count instead of a channel allocation per record.
//!
//! If the batch is dropped without an answer (the producer and its sender task are
//! gone), dropping its [`BatchCompletion`] completes the slot with an error, so no
//! future waits forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use super::RecordMetadata;
use crate::error::{Error, Result};

/// The broker's answer for a whole batch: (base offset, log-append time), each -1
/// when unknown, or the error every record of the batch fails with.
type BatchOutcome = std::result::Result<(i64, i64), Error>;

struct BatchSlot {
    topic: Arc<str>,
    partition: i32,
    outcome: OnceLock<BatchOutcome>,
    /// Wakers of futures polled before the outcome was set. Taken (emptied) when it is.
    wakers: Mutex<Vec<Waker>>,
}

/// The batch's side of the slot: completes it once.
pub(crate) struct BatchCompletion {
    slot: Arc<BatchSlot>,
}

impl BatchCompletion {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Self {
        BatchCompletion {
            slot: Arc::new(BatchSlot {
                topic,
                partition,
                outcome: OnceLock::new(),
                wakers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The future of the record at `index` in the batch, created at `timestamp`.
    pub(crate) fn future(&self, index: u32, timestamp: i64) -> DeliveryFuture {
        DeliveryFuture {
            slot: self.slot.clone(),
            index,
            timestamp,
            waker_at: None,
        }
    }

    /// Sets the batch's outcome (the first call wins) and wakes every waiting future.
    pub(crate) fn complete(&self, outcome: BatchOutcome) {
        if self.slot.outcome.set(outcome).is_err() {
            return;
        }
        // Set before the wakers are taken: a future that registers after this lock
        // sees the outcome when it re-checks under the lock (see `DeliveryFuture::poll`).
        let wakers = std::mem::take(&mut *lock(&self.slot.wakers));
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Drop for BatchCompletion {
    fn drop(&mut self) {
        if self.slot.outcome.get().is_none() {
            self.complete(Err(Error::Disconnected {
                broker: "producer".into(),
                reason: "producer dropped".into(),
            }));
        }
    }
}

fn lock(wakers: &Mutex<Vec<Waker>>) -> std::sync::MutexGuard<'_, Vec<Waker>> {
    wakers.lock().unwrap_or_else(|e| e.into_inner())
}

/// The outcome of one `send`, resolved when the broker acknowledges (or the
/// producer gives up on) the record's batch. Resolves with an error if the producer
/// is dropped first.
pub struct DeliveryFuture {
    slot: Arc<BatchSlot>,
    /// The record's offset delta in its batch.
    index: u32,
    timestamp: i64,
    /// Where this future's waker sits in the slot's list, once registered, and a
    /// copy of it: polling again with the same waker then needs no lock.
    waker_at: Option<(usize, Waker)>,
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.slot.topic)
            .field("partition", &self.slot.partition)
            .field("index", &self.index)
            .field("done", &self.slot.outcome.get().is_some())
            .finish()
    }
}

impl DeliveryFuture {
    fn resolve(&self, outcome: &BatchOutcome) -> Result<RecordMetadata> {
        match outcome {
            Ok((base_offset, log_append_time)) => Ok(RecordMetadata {
                topic: self.slot.topic.clone(),
                partition: self.slot.partition,
                offset: if *base_offset >= 0 {
                    base_offset + i64::from(self.index)
                } else {
                    -1
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    self.timestamp
                },
            }),
            Err(e) => Err(e.clone_lossy()),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(outcome) = this.slot.outcome.get() {
            return Poll::Ready(this.resolve(outcome));
        }
        if let Some((_, registered)) = &this.waker_at {
            if registered.will_wake(cx.waker()) {
                // Our entry in the list is this waker: `complete` will wake it.
                return Poll::Pending;
            }
        }
        let mut wakers = lock(&this.slot.wakers);
        // Re-checked under the lock: `complete` sets the outcome before it takes the
        // wakers, so either the outcome is visible here or our waker is taken later.
        if let Some(outcome) = this.slot.outcome.get() {
            drop(wakers);
            return Poll::Ready(this.resolve(outcome));
        }
        let waker = cx.waker().clone();
        match this.waker_at.as_mut() {
            Some((i, registered)) if *i < wakers.len() => {
                wakers[*i] = waker.clone();
                *registered = waker;
            }
            _ => {
                wakers.push(waker.clone());
                this.waker_at = Some((wakers.len() - 1, waker));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn every_record_gets_its_offset_from_the_batch_answer() {
        let c = BatchCompletion::new(Arc::from("t"), 3);
        let a = c.future(0, 10);
        let b = c.future(1, 11);
        c.complete(Ok((100, -1)));
        let a = a.await.unwrap();
        let b = b.await.unwrap();
        assert_eq!((a.partition, a.offset, a.timestamp), (3, 100, 10));
        assert_eq!((b.offset, b.timestamp), (101, 11));
    }

    #[tokio::test]
    async fn log_append_time_and_unknown_offsets_come_from_the_broker() {
        let c = BatchCompletion::new(Arc::from("t"), 0);
        let f = c.future(4, 10);
        c.complete(Ok((-1, 77)));
        let m = f.await.unwrap();
        assert_eq!((m.offset, m.timestamp), (-1, 77));
    }

    #[tokio::test]
    async fn a_waiting_future_is_woken_by_the_answer() {
        let c = BatchCompletion::new(Arc::from("t"), 0);
        let f = c.future(0, 1);
        let task = tokio::spawn(f);
        tokio::task::yield_now().await;
        c.complete(Err(Error::Timeout {
            context: "test".into(),
        }));
        assert!(matches!(task.await.unwrap(), Err(Error::Timeout { .. })));
    }

    struct Flag(Arc<std::sync::atomic::AtomicBool>);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn polling_again_with_the_same_waker_registers_it_once() {
        let c = BatchCompletion::new(Arc::from("t"), 0);
        let mut f = c.future(0, 1);
        for _ in 0..5 {
            assert!((&mut f).now_or_never().is_none());
        }
        assert_eq!(lock(&c.slot.wakers).len(), 1);
        // Another task polling it replaces the entry rather than adding one.
        let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(lock(&c.slot.wakers).len(), 1);
        c.complete(Ok((5, -1)));
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(f.now_or_never().unwrap().unwrap().offset, 5);
    }

    #[tokio::test]
    async fn dropping_the_batch_unanswered_fails_its_records() {
        let c = BatchCompletion::new(Arc::from("t"), 0);
        let f = c.future(0, 1);
        drop(c);
        assert!(matches!(f.await, Err(Error::Disconnected { .. })));
    }
}
