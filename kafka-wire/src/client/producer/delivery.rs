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
//!
//! A batch the broker refused as too large is split ([`BatchCompletion::split`]):
//! its slot then points to one new slot per part, each with the index its part
//! starts at. A future that finds its slot split moves to the part holding its
//! index, with the index made relative to that part, and waits there.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use super::RecordMetadata;
use crate::error::{Error, Result};
use crate::sync::lock;

/// The broker's answer for a whole batch: (base offset, log-append time), each -1
/// when unknown, or the error every record of the batch fails with.
type BatchOutcome = std::result::Result<(i64, i64), Error>;

/// What a slot holds once its batch is settled.
enum Outcome {
    Done(BatchOutcome),
    /// The batch was split: the slot of each part, after the index of its first record.
    Split(Vec<(u32, Arc<BatchSlot>)>),
}

struct BatchSlot {
    topic: Arc<str>,
    partition: i32,
    outcome: OnceLock<Outcome>,
    /// Wakers of futures polled before the outcome was set. Taken (emptied) when it is.
    wakers: Mutex<Vec<Waker>>,
}

/// The first failure among the batches it watches (a transaction's records):
/// what a transactional commit checks instead of awaiting every record's future.
#[derive(Debug, Default)]
pub(crate) struct FailureLatch {
    first: Mutex<Option<Error>>,
}

impl FailureLatch {
    fn record(&self, error: &Error) {
        let mut first = lock(&self.first);
        if first.is_none() {
            *first = Some(error.clone());
        }
    }

    /// The first failure recorded since the last reset.
    pub(crate) fn get(&self) -> Option<Error> {
        lock(&self.first).clone()
    }

    /// Forgets the recorded failure.
    pub(crate) fn reset(&self) {
        *lock(&self.first) = None;
    }
}

/// The batch's side of the slot: completes it once.
pub(crate) struct BatchCompletion {
    slot: Arc<BatchSlot>,
    /// Told of a failed outcome.
    latch: Option<Arc<FailureLatch>>,
}

impl BatchCompletion {
    /// The completion of a batch whose failures `latch` records.
    pub(crate) fn watched(
        topic: Arc<str>,
        partition: i32,
        latch: Option<Arc<FailureLatch>>,
    ) -> Self {
        let mut c = Self::new(topic, partition);
        c.latch = latch;
        c
    }

    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Self {
        BatchCompletion {
            slot: Arc::new(BatchSlot {
                topic,
                partition,
                outcome: OnceLock::new(),
                wakers: Mutex::new(Vec::new()),
            }),
            latch: None,
        }
    }

    /// Splits the batch into parts starting at the record indexes `starts` (0
    /// first, ascending) and returns a completion per part; each record's future
    /// follows its part.
    pub(crate) fn split(self, starts: &[u32]) -> Vec<BatchCompletion> {
        let parts: Vec<BatchCompletion> = starts
            .iter()
            .map(|_| {
                BatchCompletion::watched(
                    self.slot.topic.clone(),
                    self.slot.partition,
                    self.latch.clone(),
                )
            })
            .collect();
        let slots = starts
            .iter()
            .zip(&parts)
            .map(|(&start, part)| (start, part.slot.clone()))
            .collect();
        self.settle(Outcome::Split(slots));
        parts
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
        if let (Err(e), Some(latch)) = (&outcome, &self.latch) {
            latch.record(e);
        }
        self.settle(Outcome::Done(outcome));
    }

    fn settle(&self, outcome: Outcome) {
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
            self.complete(Err(Error::Closed {
                reason: "dropped before the batch was answered".into(),
            }));
        }
    }
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
            .field(
                "done",
                &matches!(self.slot.outcome.get(), Some(Outcome::Done(_))),
            )
            .finish()
    }
}

impl DeliveryFuture {
    /// Moves from a split batch's slot to the part holding this record; false if
    /// no part does.
    fn follow(&mut self) -> bool {
        let slot = self.slot.clone();
        let Some(Outcome::Split(parts)) = slot.outcome.get() else {
            return false;
        };
        let Some((start, part)) = parts.iter().rev().find(|(s, _)| *s <= self.index) else {
            return false;
        };
        self.index -= start;
        self.slot = part.clone();
        self.waker_at = None;
        true
    }

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
            Err(e) => Err(e.clone()),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this.slot.outcome.get() {
                Some(Outcome::Done(outcome)) => return Poll::Ready(this.resolve(outcome)),
                Some(Outcome::Split(_)) => {
                    if !this.follow() {
                        return Poll::Ready(Err(lost_in_split()));
                    }
                    continue;
                }
                None => {}
            }
            if let Some((_, registered)) = &this.waker_at {
                if registered.will_wake(cx.waker()) {
                    // Our entry in the list is this waker: `complete` will wake it.
                    return Poll::Pending;
                }
            }
            let mut wakers = lock(&this.slot.wakers);
            // Re-checked under the lock: `settle` sets the outcome before it takes the
            // wakers, so either the outcome is visible here or our waker is taken later.
            match this.slot.outcome.get() {
                Some(Outcome::Done(outcome)) => {
                    drop(wakers);
                    return Poll::Ready(this.resolve(outcome));
                }
                Some(Outcome::Split(_)) => {
                    drop(wakers);
                    if !this.follow() {
                        return Poll::Ready(Err(lost_in_split()));
                    }
                    continue;
                }
                None => {}
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
            return Poll::Pending;
        }
    }
}

fn lost_in_split() -> Error {
    Error::Encode {
        context: "producer",
        message: "record missing from the parts of its split batch".into(),
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

    #[tokio::test]
    async fn every_waiter_of_a_failed_batch_gets_the_error_with_its_class() {
        let cases = [
            Error::Fenced {
                transactional_id: "tx".into(),
                code: crate::ErrorCode::ProducerFenced,
                reason: "another producer took over".into(),
            },
            Error::TransactionAbortable {
                code: None,
                reason: "a record failed".into(),
            },
            Error::Truncated {
                context: "ProduceResponse.Responses",
                needed: 4,
                remaining: 1,
            },
        ];
        for error in cases {
            let c = BatchCompletion::new(Arc::from("t"), 0);
            let waiters: Vec<DeliveryFuture> = (0..3).map(|i| c.future(i, 1)).collect();
            c.complete(Err(error.clone()));
            for f in waiters {
                let e = f.await.unwrap_err();
                assert_eq!(e.to_string(), error.to_string());
                assert_eq!(
                    (e.is_fatal(), e.is_abortable(), e.is_retriable()),
                    (error.is_fatal(), error.is_abortable(), error.is_retriable())
                );
            }
        }
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
    async fn records_of_a_split_batch_get_their_offsets_from_their_part() {
        let c = BatchCompletion::new(Arc::from("t"), 2);
        let futures: Vec<DeliveryFuture> = (0..5).map(|i| c.future(i, 10 + i64::from(i))).collect();
        // One future waits on the batch before the split.
        let mut futures = futures.into_iter();
        let waiting = tokio::spawn(futures.next().unwrap());
        tokio::task::yield_now().await;
        let mut parts = c.split(&[0, 3]).into_iter();
        let (first, second) = (parts.next().unwrap(), parts.next().unwrap());
        // The first part is split again: records 0 and 1..3.
        let mut halves = first.split(&[0, 1]).into_iter();
        let (a, b) = (halves.next().unwrap(), halves.next().unwrap());
        second.complete(Ok((500, -1)));
        b.complete(Ok((201, -1)));
        a.complete(Ok((200, -1)));
        let m = waiting.await.unwrap().unwrap();
        assert_eq!((m.partition, m.offset, m.timestamp), (2, 200, 10));
        let rest: Vec<(i64, i64)> = futures::future::join_all(futures)
            .await
            .into_iter()
            .map(|m| m.map(|m| (m.offset, m.timestamp)).unwrap())
            .collect();
        assert_eq!(rest, vec![(201, 11), (202, 12), (500, 13), (501, 14)]);
    }

    #[tokio::test]
    async fn a_failed_part_fails_only_its_records() {
        let c = BatchCompletion::new(Arc::from("t"), 0);
        let (f0, f1) = (c.future(0, 1), c.future(1, 1));
        let mut parts = c.split(&[0, 1]).into_iter();
        let (a, b) = (parts.next().unwrap(), parts.next().unwrap());
        a.complete(Ok((7, -1)));
        drop(b);
        assert_eq!(f0.await.unwrap().offset, 7);
        assert!(matches!(f1.await, Err(Error::Closed { .. })));
    }

    #[tokio::test]
    async fn dropping_the_batch_unanswered_fails_its_records() {
        let c = BatchCompletion::new(Arc::from("t"), 0);
        let f = c.future(0, 1);
        drop(c);
        let e = f.await.expect_err("dropped");
        assert_eq!(
            e.to_string(),
            "producer closed: dropped before the batch was answered"
        );
        assert!(!e.is_retriable());
    }
}
