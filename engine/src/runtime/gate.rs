//! The input side of a task: several channels, watermark combination, idleness and
//! checkpoint barrier alignment.
//!
//! Alignment walk-through with inputs A and B: barrier n arrives on A; A is blocked
//! (not polled) so records A sent after the barrier stay in A's channel; B keeps
//! delivering records that belong before the barrier; when barrier n arrives on B
//! the gate emits one `Barrier(n)`, unblocks both, and the task snapshots. Because
//! every (producer, consumer) pair has its own channel, blocking A never blocks B.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use crate::checkpoint::CheckpointBarrier;
use crate::record::Record;
use crate::runtime::channel::{Message, Receiver};
use crate::time::watermark::{ValveOutput, WatermarkValve};

/// What the gate hands to the task.
#[derive(Debug)]
pub(crate) enum GateEvent<T> {
    Data(Vec<Record<T>>),
    Watermark(i64),
    Idle(bool),
    CaughtUp(u16),
    Barrier(CheckpointBarrier),
    End,
    /// An input's channel closed without its end of input: the upstream task
    /// failed or was aborted, so this task must not finish (a sink would commit
    /// output of no checkpoint).
    Broken,
}

/// The error of a task whose gate reported [`GateEvent::Broken`].
pub(crate) fn broken_input() -> crate::EngineError {
    crate::EngineError::ChannelClosed(
        "an input closed without its end of input (an upstream task failed or was aborted)".into(),
    )
}

struct Input<T> {
    rx: Receiver<T>,
    ended: bool,
    blocked: bool,
}

pub(crate) struct InputGate<T> {
    inputs: Vec<Input<T>>,
    valve: WatermarkValve,
    aligning: Option<CheckpointBarrier>,
    queued: VecDeque<GateEvent<T>>,
    next: usize,
    open: usize,
    end_sent: bool,
    /// A closed channel ends its input (a stream whose senders never send an
    /// end, such as the dead letters); otherwise it is [`GateEvent::Broken`].
    close_ends: bool,
}

impl<T> InputGate<T> {
    pub(crate) fn new(receivers: Vec<Receiver<T>>) -> Self {
        let n = receivers.len();
        InputGate {
            inputs: receivers
                .into_iter()
                .map(|rx| Input {
                    rx,
                    ended: false,
                    blocked: false,
                })
                .collect(),
            valve: WatermarkValve::new(n),
            aligning: None,
            queued: VecDeque::new(),
            next: 0,
            open: n,
            end_sent: false,
            close_ends: false,
        }
    }

    /// A gate whose inputs end when their senders are dropped: for streams
    /// outside checkpoints, whose senders never send an end of input.
    pub(crate) fn ended_by_close(receivers: Vec<Receiver<T>>) -> Self {
        InputGate {
            close_ends: true,
            ..InputGate::new(receivers)
        }
    }

    fn push_valve(&mut self, o: ValveOutput) {
        if o.idle == Some(false) {
            self.queued.push_back(GateEvent::Idle(false));
        }
        if let Some(w) = o.watermark {
            self.queued.push_back(GateEvent::Watermark(w));
        }
        if o.idle == Some(true) {
            self.queued.push_back(GateEvent::Idle(true));
        }
    }

    fn check_alignment(&mut self) {
        if let Some(b) = self.aligning.clone() {
            if self.inputs.iter().all(|i| i.ended || i.blocked) {
                for i in &mut self.inputs {
                    i.blocked = false;
                }
                self.aligning = None;
                self.queued.push_back(GateEvent::Barrier(b));
            }
        }
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<GateEvent<T>> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Poll::Ready(e);
            }
            if self.open == 0 {
                if self.end_sent {
                    return Poll::Pending;
                }
                self.end_sent = true;
                return Poll::Ready(GateEvent::End);
            }
            let n = self.inputs.len();
            let close_ends = self.close_ends;
            let mut got = None;
            for k in 0..n {
                let i = (self.next + k) % n;
                let inp = &mut self.inputs[i];
                if inp.ended || inp.blocked {
                    continue;
                }
                match inp.rx.poll_recv(cx) {
                    Poll::Ready(Some(m)) => {
                        got = Some((i, m));
                        break;
                    }
                    Poll::Ready(None) if close_ends => {
                        got = Some((i, Message::End));
                        break;
                    }
                    Poll::Ready(None) => return Poll::Ready(GateEvent::Broken),
                    Poll::Pending => {}
                }
            }
            let Some((i, msg)) = got else {
                return Poll::Pending;
            };
            self.next = (i + 1) % n;
            match msg {
                Message::Data(b) => return Poll::Ready(GateEvent::Data(b)),
                Message::CaughtUp(g) => return Poll::Ready(GateEvent::CaughtUp(g)),
                Message::Watermark(w) => {
                    let o = self.valve.watermark(i, w);
                    self.push_valve(o);
                }
                Message::Idle(idle) => {
                    let o = self.valve.idle(i, idle);
                    self.push_valve(o);
                }
                Message::Barrier(b) => {
                    self.inputs[i].blocked = true;
                    match &self.aligning {
                        Some(cur) if cur.id >= b.id => {}
                        _ => self.aligning = Some(b),
                    }
                    self.check_alignment();
                }
                Message::End => {
                    if !self.inputs[i].ended {
                        self.inputs[i].ended = true;
                        self.open -= 1;
                        let o = self.valve.end(i);
                        self.push_valve(o);
                        self.check_alignment();
                    }
                }
            }
        }
    }

    /// The next event if one is ready now, without waiting.
    pub(crate) fn try_next(&mut self) -> Option<GateEvent<T>> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_next(&mut cx) {
            Poll::Ready(e) => Some(e),
            Poll::Pending => None,
        }
    }

    /// Waits for the next event (cancellation safe: nothing is lost if dropped).
    pub(crate) async fn next(&mut self) -> GateEvent<T> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}
