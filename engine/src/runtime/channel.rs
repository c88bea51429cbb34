//! Messages between tasks and the non-blocking sending half ([`Outlet`]).

use tokio::sync::mpsc;

use crate::checkpoint::CheckpointBarrier;
use crate::error::{EngineError, Result};
use crate::record::Record;
use crate::runtime::context::TaskCtx;

/// What travels on a channel between two tasks.
#[derive(Debug)]
pub(crate) enum Message<T> {
    Data(Vec<Record<T>>),
    Watermark(i64),
    Idle(bool),
    /// An adopted key group's partition caught up with the watermark (see
    /// [`crate::Operator::on_key_group_caught_up`]).
    CaughtUp(u16),
    Barrier(CheckpointBarrier),
    End,
}

pub(crate) type Sender<T> = mpsc::Sender<Message<T>>;
pub(crate) type Receiver<T> = mpsc::Receiver<Message<T>>;

pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    mpsc::channel(capacity.max(1))
}

/// Sending half that never blocks the synchronous operator chain: when the channel is
/// full, the message becomes a future the task awaits before its next step. Once an
/// outlet had to defer a message in a step, every later message of that step is
/// deferred too, which keeps the channel FIFO.
pub(crate) struct Outlet<T> {
    tx: Sender<T>,
    deferred_step: Option<u64>,
    /// Side outputs nobody consumes: a closed channel drops records instead of failing.
    pub(crate) lenient: bool,
}

impl<T: Send + 'static> Outlet<T> {
    pub(crate) fn new(tx: Sender<T>) -> Self {
        Outlet {
            tx,
            deferred_step: None,
            lenient: false,
        }
    }

    pub(crate) fn send(&mut self, msg: Message<T>, ctx: &mut TaskCtx) -> Result<()> {
        let msg = if self.deferred_step == Some(ctx.step) {
            msg
        } else {
            match self.tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(m)) => m,
                Err(mpsc::error::TrySendError::Closed(_)) if self.lenient => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(EngineError::ChannelClosed(format!(
                        "downstream of {}",
                        ctx.name
                    )));
                }
            }
        };
        self.deferred_step = Some(ctx.step);
        let tx = self.tx.clone();
        let name = ctx.name.clone();
        let lenient = self.lenient;
        ctx.defer(Box::pin(async move {
            match tx.send(msg).await {
                Ok(()) => Ok(()),
                Err(_) if lenient => Ok(()),
                Err(_) => Err(EngineError::ChannelClosed(format!("downstream of {name}"))),
            }
        }));
        Ok(())
    }
}
