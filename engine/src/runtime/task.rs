//! Task loops: source tasks (splits -> chain), chain tasks (input gate -> chain) and
//! sink tasks (input gate -> sink). Every loop takes one input step, runs the
//! synchronous chain, then awaits the deferred sends (backpressure) before the next
//! step; when no input is ready it flushes partial batches and waits on input,
//! control messages and timers together.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::checkpoint::{
    CheckpointBarrier, CheckpointId, Epoch, OperatorId, OperatorState, TaskId,
};
use crate::error::{EngineError, Result};
use crate::io::sink::{Sink, SinkContext};
use crate::io::source::{Source, SourceSplit, SplitEvent, SplitTime};
use crate::record::{NO_TIMESTAMP, Record};
use crate::runtime::catch_up::SentWatermarks;
use crate::runtime::context::TaskCtx;
use crate::runtime::gate::{GateEvent, InputGate};
use crate::runtime::node::BoxNode;
use crate::runtime::status::{PartitionStatus, SinkStatus, SubtaskStats};
use crate::state::codec::{decode_exact, encode_to_vec};
use crate::time::watermark::{
    SplitWatermark, TimestampFn, ValveOutput, WatermarkStrategy, WatermarkValve,
};

/// Messages from the job coordinator to a task.
#[derive(Debug)]
pub(crate) enum Control {
    /// Sources only: inject a barrier now.
    Trigger(CheckpointBarrier),
    /// The checkpoint completed: commit.
    Complete(CheckpointId),
    /// The stop checkpoint completed: end now, without flushing open windows
    /// (their state is in that checkpoint).
    Shutdown,
}

/// What a control message asks of the task loop.
enum ControlAction {
    None,
    Trigger(CheckpointBarrier),
    Shutdown,
}

/// Messages from tasks to the job coordinator.
#[derive(Debug)]
pub(crate) enum JobEvent {
    Ack {
        task: TaskId,
        checkpoint: CheckpointId,
        state: Vec<(OperatorId, OperatorState)>,
    },
    /// The final state of a task about to finish (source end positions).
    FinalState {
        task: TaskId,
        state: Vec<(OperatorId, OperatorState)>,
    },
    /// A source task's splits all caught up (`caught_up`, with `read` telling
    /// whether it read records since it last did) or no longer are.
    CaughtUp {
        task: TaskId,
        caught_up: bool,
        read: bool,
    },
    Finished(TaskId),
    Failed(TaskId, EngineError),
}

/// What every task gets from the job.
pub(crate) struct TaskEnv {
    pub(crate) ctx: TaskCtx,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) events: mpsc::UnboundedSender<JobEvent>,
    pub(crate) checkpointed: bool,
    /// Control messages a source task took while waiting, handled next.
    pub(crate) pending_control: std::collections::VecDeque<Control>,
}

impl TaskEnv {
    fn ack(&mut self, id: CheckpointId) {
        let state = std::mem::take(&mut self.ctx.snapshot);
        if self.checkpointed {
            let _ = self.events.send(JobEvent::Ack {
                task: self.ctx.task,
                checkpoint: id,
                state,
            });
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Fires due processing-time timers; returns whether any fired.
fn fire_timers<T>(chain: &mut BoxNode<T>, ctx: &mut TaskCtx) -> Result<bool> {
    if let Some(t) = ctx.processing_timer {
        let now = ctx.clock.now_ms();
        if now >= t {
            ctx.processing_timer = None;
            chain.on_processing_time(now, ctx)?;
            return Ok(true);
        }
    }
    Ok(false)
}

fn on_control<T>(c: Control, chain: &mut BoxNode<T>, env: &mut TaskEnv) -> Result<ControlAction> {
    match c {
        Control::Trigger(b) => Ok(ControlAction::Trigger(b)),
        Control::Complete(id) => {
            chain.on_checkpoint_complete(id, &mut env.ctx)?;
            Ok(ControlAction::None)
        }
        Control::Shutdown => Ok(ControlAction::Shutdown),
    }
}

/// Input gate -> chain.
pub(crate) async fn run_chain_task<T: Send + 'static>(
    mut gate: InputGate<T>,
    mut chain: BoxNode<T>,
    mut env: TaskEnv,
) -> Result<()> {
    chain.open(&mut env.ctx)?;
    let mut control_open = true;
    loop {
        while control_open {
            match env.control.try_recv() {
                Ok(c) => {
                    if let ControlAction::Shutdown = on_control(c, &mut chain, &mut env)? {
                        return chain.close();
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => control_open = false,
            }
        }
        if fire_timers(&mut chain, &mut env.ctx)? {
            env.ctx.flush_deferred().await?;
            continue;
        }
        let ev = match gate.try_next() {
            Some(ev) => ev,
            None => {
                chain.flush(&mut env.ctx)?;
                env.ctx.flush_deferred().await?;
                let timer = env
                    .ctx
                    .processing_timer
                    .map(|t| env.ctx.clock.instant_at(t));
                env.ctx.timer.wait_start();
                tokio::select! {
                    ev = gate.next() => {
                        env.ctx.timer.wait_end();
                        ev
                    }
                    c = env.control.recv(), if control_open => {
                        env.ctx.timer.wait_end();
                        match c {
                            Some(c) => {
                                if let ControlAction::Shutdown = on_control(c, &mut chain, &mut env)? {
                                    return chain.close();
                                }
                            }
                            None => control_open = false,
                        }
                        env.ctx.flush_deferred().await?;
                        continue;
                    }
                    _ = sleep_until_opt(timer) => {
                        env.ctx.timer.wait_end();
                        continue;
                    }
                }
            }
        };
        match ev {
            GateEvent::Data(b) => chain.process_batch(b, &mut env.ctx)?,
            GateEvent::Watermark(w) => drive_watermark(&mut chain, &mut env.ctx, w).await?,
            GateEvent::Idle(i) => chain.on_idle(i, &mut env.ctx)?,
            GateEvent::CaughtUp(g) => chain.on_caught_up(g, &mut env.ctx)?,
            GateEvent::Barrier(b) => {
                chain.on_barrier(b.clone(), &mut env.ctx)?;
                env.ctx.flush_deferred().await?;
                env.ack(b.id);
            }
            GateEvent::End => {
                chain.end_of_input(&mut env.ctx)?;
                env.ctx.flush_deferred().await?;
                break;
            }
            GateEvent::Broken => return Err(crate::runtime::gate::broken_input()),
        }
        env.ctx.flush_deferred().await?;
    }
    chain.close()
}

/// A split with its watermark and idleness bookkeeping.
struct SplitSlot<T> {
    index: u16,
    /// What records of this split carry as their split number: its key group if it
    /// has one, else its index.
    stamp: u16,
    split: Box<dyn SourceSplit<T>>,
    status: Option<Arc<PartitionStatus>>,
    wm: SplitWatermark,
    last_active: Instant,
    idle: bool,
    ended: bool,
    /// Given up at a checkpoint: no longer read, and no longer in checkpoints.
    released: bool,
    /// Adopted in a job with event time and not caught up yet (see
    /// [`SplitSlot::catches_up`]): in the valve at minus infinity, holding
    /// the task's watermark, while operators take its key group's records
    /// without judging them by the watermark.
    lagging: bool,
}

impl<T> SplitSlot<T> {
    /// A split at its restored position, with its partition's restored watermark
    /// (so a partition with nothing new does not hold every window back).
    fn restore(
        source: &str,
        index: u16,
        mut split: Box<dyn SourceSplit<T>>,
        restored: Option<&OperatorState>,
        out_of_orderness_ms: i64,
        now: Instant,
    ) -> Result<SplitSlot<T>> {
        if let Some(bytes) = restored.and_then(|s| s.entries.get(&u32::from(index))) {
            let pos = decode_exact::<u64>(bytes)?;
            split
                .restore(pos)
                .map_err(|e| source_error(source, index, e))?;
        }
        let stamp = split.key_group().unwrap_or(index);
        let mut wm = SplitWatermark::new(out_of_orderness_ms);
        // A split that reads event time from its data learns it again there.
        if split.key_group().is_some() && split.event_time().is_none() {
            if let Some(bytes) = restored.and_then(|s| s.key_groups.get(&stamp)) {
                wm.observe(decode_exact::<i64>(bytes)?);
            }
        }
        Ok(SplitSlot {
            index,
            stamp,
            status: split.status(),
            split,
            wm,
            last_active: now,
            idle: false,
            ended: false,
            released: false,
            lagging: false,
        })
    }

    /// Whether this lagging split's watermark `wm` reached `sent.bound()`: no
    /// operator that can see its records has a watermark past it (see
    /// [`SentWatermarks`]). The split then stops lagging. (While it lags it
    /// holds its task's watermark where it was, so every operator's stays at
    /// most there until the split joins at `wm`.)
    fn catches_up(&mut self, wm: i64, sent: Sent<'_>) -> bool {
        if self.lagging && wm >= sent.bound() {
            self.lagging = false;
            tracing::debug!(
                key_group = self.stamp,
                watermark = wm,
                "an adopted partition caught up"
            );
            return true;
        }
        false
    }

    /// Adds this split's part of a checkpoint to `state` (its partition's
    /// watermark; its position when positions are kept) and tells the split.
    fn checkpoint(
        &mut self,
        source: &str,
        id: CheckpointId,
        keep_positions: bool,
        state: &mut OperatorState,
    ) -> Result<()> {
        if self.split.key_group().is_some() && self.wm.max_timestamp() != NO_TIMESTAMP {
            state
                .key_groups
                .insert(self.stamp, encode_to_vec(&self.wm.max_timestamp()));
        }
        if keep_positions {
            state
                .entries
                .insert(u32::from(self.index), encode_to_vec(&self.split.position()));
        }
        self.split
            .checkpoint(id)
            .map_err(|e| source_error(source, self.index, e))
    }

    /// Applies the event time a split read from its data to the valve (input
    /// `i`) and the partition's status; says whether a lagging split caught up
    /// (a watermark at its bound, or idle).
    fn event_time(
        &mut self,
        i: usize,
        time: SplitTime,
        valve: &mut WatermarkValve,
        sent: Sent<'_>,
    ) -> (ValveOutput, bool) {
        let caught_up = match time {
            SplitTime::Unknown => false,
            SplitTime::Idle => std::mem::take(&mut self.lagging),
            SplitTime::Watermark(w) if self.lagging => {
                if !self.catches_up(w, sent) {
                    return (ValveOutput::default(), false);
                }
                true
            }
            SplitTime::Watermark(_) => false,
        };
        (self.apply_time(i, time, valve), caught_up)
    }

    fn apply_time(&mut self, i: usize, time: SplitTime, valve: &mut WatermarkValve) -> ValveOutput {
        match time {
            SplitTime::Unknown => ValveOutput::default(),
            SplitTime::Idle => {
                if self.idle {
                    return ValveOutput::default();
                }
                self.idle = true;
                if let Some(st) = &self.status {
                    st.set_idle(true);
                }
                valve.idle(i, true)
            }
            SplitTime::Watermark(w) => {
                if let Some(st) = &self.status {
                    if self.idle {
                        st.set_idle(false);
                    }
                    st.set_watermark(w);
                }
                self.idle = false;
                valve.watermark(i, w)
            }
        }
    }

    /// Marks records read from this split: its number in their positions, their
    /// event time (from `ts_fn` when the strategy has one), which the split's
    /// watermark observes.
    fn stamp_records(&mut self, records: &mut [Record<T>], ts_fn: Option<&TimestampFn<T>>) {
        self.last_active = Instant::now();
        for r in records {
            r.position = r.position.with_split(self.stamp);
            if let Some(f) = ts_fn {
                r.timestamp = f(&r.value, r.timestamp);
            }
            if r.timestamp != NO_TIMESTAMP {
                self.wm.observe(r.timestamp);
            }
        }
    }
}

/// The splits a source task adds at an adoption's barrier.
struct Adopting<'a, T> {
    source: &'a AdoptSplits<T>,
    name: &'a str,
    key_groups: &'a BTreeSet<u16>,
    parallelism: usize,
    /// The source operator's adopted state (its partitions' watermarks).
    restored: Option<&'a OperatorState>,
    out_of_orderness_ms: i64,
    /// The job has event time: adopted splits lag until they catch up.
    event_time: bool,
    /// What the source's tasks sent down.
    sent: Sent<'a>,
}

impl<T: Send + 'static> Adopting<'_, T> {
    /// Adds the splits of the adopted key groups this task reads (`group %
    /// parallelism == subtask`) to `slots`, with their partitions' watermarks;
    /// returns how many, and whether the valve turned active (it told the
    /// chain so), and the watermark the valve moved to, if it did. Under event
    /// time each starts lagging (see [`SplitSlot::catches_up`]), and one whose
    /// restored watermark is already there catches up at once.
    fn add_splits(
        &self,
        slots: &mut Vec<SplitSlot<T>>,
        valve: &mut WatermarkValve,
        chain: &mut BoxNode<T>,
        ctx: &mut TaskCtx,
    ) -> Result<(usize, bool, Option<i64>)> {
        let name = self.name;
        let mine: BTreeSet<u16> = self
            .key_groups
            .iter()
            .copied()
            .filter(|g| usize::from(*g) % self.parallelism.max(1) == ctx.subtask)
            .collect();
        if mine.is_empty() {
            return Ok((0, false, None));
        }
        let splits = self
            .source
            .lock()
            .map_err(|_| EngineError::Unsupported(format!("source '{name}' poisoned")))?
            .adopt_splits(&mine)?;
        let now = Instant::now();
        let mut added = 0;
        let mut active = false;
        let mut watermark = None;
        for split in splits {
            let Some(group) = split.key_group().filter(|g| mine.contains(g)) else {
                return Err(EngineError::Unsupported(format!(
                    "source '{name}' made a split of no adopted key group"
                )));
            };
            // Positions of adopted splits are their own (the source's), not the
            // checkpoint's: only the partition's watermark comes from `restored`.
            let mut slot =
                SplitSlot::restore(name, group, split, None, self.out_of_orderness_ms, now)?;
            // A split that reads event time from its data (markers) is behind
            // until they say otherwise; the largest timestamp it read says
            // nothing of them.
            let own_time = slot.split.event_time();
            if own_time.is_none() {
                if let Some(bytes) = self.restored.and_then(|s| s.key_groups.get(&group)) {
                    slot.wm.observe(decode_exact::<i64>(bytes)?);
                }
            }
            // Active at -infinity: the task's watermark stays where it is
            // until the split reports one.
            let i = slots.len();
            let o = valve.add_input();
            if o.idle == Some(false) {
                active = true;
                self.sent.idle(false);
                chain.on_idle(false, ctx)?;
            }
            if self.event_time {
                slot.lagging = true;
                let wm = match own_time {
                    None => slot.wm.current(),
                    Some(SplitTime::Watermark(w)) => w,
                    Some(SplitTime::Unknown | SplitTime::Idle) => NO_TIMESTAMP,
                };
                if slot.catches_up(wm, self.sent) {
                    chain.on_caught_up(slot.stamp, ctx)?;
                    watermark = valve.watermark(i, wm).watermark.or(watermark);
                } else {
                    tracing::info!(
                        source = name,
                        key_group = group,
                        watermark = wm,
                        catch_up_at = self.sent.bound(),
                        "an adopted partition is behind the watermark: its key group waits until it catches up"
                    );
                }
            }
            slots.push(slot);
            added += 1;
        }
        Ok((added, active, watermark))
    }
}

fn source_error(source: &str, index: u16, cause: EngineError) -> EngineError {
    EngineError::Source {
        source_name: source.to_string(),
        split: usize::from(index),
        cause: Box::new(cause),
    }
}

fn poll_splits<T>(
    slots: &mut [SplitSlot<T>],
    rr: &mut usize,
    cx: &mut Context<'_>,
    max: usize,
) -> Poll<(usize, Result<SplitEvent<T>>)> {
    let n = slots.len();
    for k in 0..n {
        let i = (*rr + k) % n;
        if slots[i].ended {
            continue;
        }
        if let Poll::Ready(r) = slots[i].split.poll_next(cx, max) {
            *rr = (i + 1) % n;
            return Poll::Ready((i, r));
        }
    }
    Poll::Pending
}

/// Delivers a watermark through the chain, sending results in between when an
/// operator fires in bounded steps.
pub(crate) async fn drive_watermark<T>(
    chain: &mut BoxNode<T>,
    ctx: &mut TaskCtx,
    w: i64,
) -> Result<()> {
    ctx.watermark = w;
    while !chain.on_watermark(w, ctx)? {
        ctx.flush_deferred().await?;
    }
    Ok(())
}

/// Applies a source task's valve output to its chain; a watermark or an
/// idleness change goes into `sent` (see [`SplitSlot::catches_up`]) before it
/// goes down.
async fn apply_valve<T>(
    o: ValveOutput,
    chain: &mut BoxNode<T>,
    ctx: &mut TaskCtx,
    sent: Sent<'_>,
) -> Result<()> {
    if o.idle == Some(false) {
        sent.idle(false);
        chain.on_idle(false, ctx)?;
    }
    if let Some(w) = o.watermark {
        sent.watermark(w);
        drive_watermark(chain, ctx, w).await?;
    }
    if o.idle == Some(true) {
        sent.idle(true);
        chain.on_idle(true, ctx)?;
    }
    Ok(())
}

/// A source task's place in its source's [`SentWatermarks`].
#[derive(Clone, Copy)]
struct Sent<'a> {
    all: &'a SentWatermarks,
    task: usize,
}

impl Sent<'_> {
    fn watermark(self, w: i64) {
        self.all.sent(self.task, w);
    }

    fn idle(self, idle: bool) {
        self.all.idle(self.task, idle);
    }

    fn bound(self) -> i64 {
        self.all.bound(self.task)
    }
}

/// Configuration of one source subtask.
pub(crate) struct SourceTask<T> {
    pub(crate) name: Arc<str>,
    pub(crate) operator: OperatorId,
    pub(crate) splits: Vec<(u16, Box<dyn SourceSplit<T>>)>,
    pub(crate) strategy: WatermarkStrategy<T>,
    pub(crate) restored: Option<OperatorState>,
    pub(crate) bounded: bool,
    /// Whether positions go into checkpoints.
    pub(crate) keep_positions: bool,
    /// Records read, for the status.
    pub(crate) stats: Arc<SubtaskStats>,
    /// The source, shared by its tasks, for the splits of adopted key groups.
    pub(crate) source: AdoptSplits<T>,
    /// How many tasks read the source.
    pub(crate) parallelism: usize,
    /// What the source's tasks sent down, shared by them.
    pub(crate) sent: Arc<SentWatermarks>,
}

/// A source shared by its tasks once its splits are made: each asks it for the
/// splits of the key groups it adopts.
pub(crate) type AdoptSplits<T> = Arc<std::sync::Mutex<dyn Source<T>>>;

/// Splits -> timestamps and watermarks -> chain.
pub(crate) async fn run_source_task<T: Send + 'static>(
    spec: SourceTask<T>,
    mut chain: BoxNode<T>,
    mut env: TaskEnv,
) -> Result<()> {
    let SourceTask {
        name,
        operator,
        splits,
        strategy,
        restored,
        bounded,
        keep_positions,
        stats,
        source,
        parallelism,
        sent: all_sent,
    } = spec;
    let sent = Sent {
        all: &all_sent,
        task: env.ctx.subtask,
    };
    let now = Instant::now();
    let mut slots: Vec<SplitSlot<T>> = Vec::with_capacity(splits.len());
    for (index, split) in splits {
        slots.push(SplitSlot::restore(
            &name,
            index,
            split,
            restored.as_ref(),
            strategy.out_of_orderness_ms,
            now,
        )?);
    }
    let mut valve = WatermarkValve::new(slots.len());
    let batch = env.ctx.batch_size;
    let ts_fn = strategy.timestamp.clone();
    chain.open(&mut env.ctx)?;
    if strategy.watermarks {
        let restored: Vec<(usize, i64)> = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.wm.max_timestamp() != NO_TIMESTAMP)
            .map(|(i, s)| (i, s.wm.current()))
            .collect();
        for (i, wm) in restored {
            let o = valve.watermark(i, wm);
            apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
        }
    }
    if slots.is_empty() {
        // A task without splits must not hold back the watermark downstream; a
        // bounded source will never get splits, so its task simply ends.
        sent.idle(true);
        chain.on_idle(true, &mut env.ctx)?;
        if bounded {
            chain.end_of_input(&mut env.ctx)?;
            env.ctx.flush_deferred().await?;
            return chain.close();
        }
    }
    let mut rr = 0usize;
    let mut control_open = true;
    let mut remaining = slots.len();
    let records_read = metrics::counter!(
        "strom_source_records_total",
        "source" => name.to_string(),
        "subtask" => env.ctx.subtask.to_string()
    );
    // Set by a stop barrier: nothing more is read; the task waits for Shutdown.
    let mut stopped = false;
    // What the coordinator was last told about this task having caught up, and
    // whether records came since it was told so.
    let mut caught_up = false;
    let mut read = false;
    // An unbounded source task whose splits were all given up at a checkpoint
    // (`CheckpointBarrier::release`) keeps running (idle), as one that never had
    // any does.
    while remaining > 0 || slots.is_empty() || (!bounded && slots.iter().any(|s| s.released)) {
        let mut trigger = None;
        loop {
            let next = match env.pending_control.pop_front() {
                Some(c) => Ok(c),
                None if control_open => env.control.try_recv(),
                None => break,
            };
            match next {
                Ok(Control::Complete(id)) => {
                    for s in &mut slots {
                        s.split.checkpoint_complete(id);
                    }
                    chain.on_checkpoint_complete(id, &mut env.ctx)?;
                }
                Ok(c) => match on_control(c, &mut chain, &mut env)? {
                    ControlAction::Trigger(b) => trigger = Some(b),
                    ControlAction::Shutdown => return chain.close(),
                    ControlAction::None => {}
                },
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => control_open = false,
            }
        }
        if let Some(b) = trigger {
            let mut state = OperatorState::default();
            for s in slots.iter_mut().filter(|s| !s.released) {
                s.checkpoint(&name, b.id, keep_positions, &mut state)?;
            }
            if !state.is_empty() {
                env.ctx.snapshot.push((operator, state));
            }
            chain.on_barrier(b.clone(), &mut env.ctx)?;
            if let Some(groups) = &b.release {
                for (i, s) in slots.iter_mut().enumerate() {
                    let gone = s.split.key_group().is_some_and(|g| groups.contains(&g));
                    if gone && !s.ended {
                        s.ended = true;
                        s.released = true;
                        s.idle = true;
                        remaining -= 1;
                        if let Some(st) = &s.status {
                            st.set_idle(true);
                        }
                        let o = valve.idle(i, true);
                        apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                    }
                }
            }
            if let Some(adoption) = &b.adopt {
                let adopting = Adopting {
                    source: &source,
                    name: &name,
                    key_groups: &adoption.key_groups,
                    parallelism,
                    restored: adoption.state.operators.get(&operator),
                    out_of_orderness_ms: strategy.out_of_orderness_ms,
                    event_time: strategy.watermarks,
                    sent,
                };
                let (added, active, watermark) =
                    adopting.add_splits(&mut slots, &mut valve, &mut chain, &mut env.ctx)?;
                if let Some(w) = watermark {
                    sent.watermark(w);
                    drive_watermark(&mut chain, &mut env.ctx, w).await?;
                }
                if added > 0 {
                    // A task that had no split to read was idle.
                    if remaining == 0 && !active {
                        sent.idle(false);
                        chain.on_idle(false, &mut env.ctx)?;
                    }
                    remaining += added;
                }
            }
            env.ctx.flush_deferred().await?;
            env.ack(b.id);
            stopped |= b.stop;
            continue;
        }
        if stopped {
            chain.flush(&mut env.ctx)?;
            env.ctx.flush_deferred().await?;
            env.ctx.timer.wait_start();
            let c = env.control.recv().await;
            env.ctx.timer.wait_end();
            match c {
                Some(c) => env.control_push_front(c),
                None => return chain.close(),
            }
            continue;
        }
        if fire_timers(&mut chain, &mut env.ctx)? {
            env.ctx.flush_deferred().await?;
            continue;
        }
        let polled = {
            let mut cx = Context::from_waker(Waker::noop());
            match poll_splits(&mut slots, &mut rr, &mut cx, batch) {
                Poll::Ready(x) => Some(x),
                Poll::Pending => None,
            }
        };
        let (i, ev) = match polled {
            Some(x) => x,
            None => {
                chain.flush(&mut env.ctx)?;
                env.ctx.flush_deferred().await?;
                if !caught_up && slots.iter().all(|s| s.ended || s.split.caught_up()) {
                    caught_up = true;
                    env.caught_up(true, std::mem::take(&mut read));
                }
                let timer = env
                    .ctx
                    .processing_timer
                    .map(|t| env.ctx.clock.instant_at(t));
                let idle_deadline = strategy.idleness.and_then(|d| {
                    slots
                        .iter()
                        .filter(|s| !s.idle && !s.ended)
                        .map(|s| s.last_active + d)
                        .min()
                });
                let wake = match (timer, idle_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                env.ctx.timer.wait_start();
                tokio::select! {
                    x = std::future::poll_fn(|cx| poll_splits(&mut slots, &mut rr, cx, batch)) => {
                        env.ctx.timer.wait_end();
                        x
                    }
                    c = env.control.recv(), if control_open => {
                        env.ctx.timer.wait_end();
                        match c {
                            Some(c) => env.control_push_front(c),
                            None => control_open = false,
                        }
                        continue;
                    }
                    _ = sleep_until_opt(wake) => {
                        env.ctx.timer.wait_end();
                        if let Some(d) = strategy.idleness {
                            let now = Instant::now();
                            for (i, s) in slots.iter_mut().enumerate() {
                                if !s.idle && !s.ended && s.last_active + d <= now {
                                    if std::mem::take(&mut s.lagging) {
                                        chain.on_caught_up(s.stamp, &mut env.ctx)?;
                                    }
                                    s.idle = true;
                                    if let Some(st) = &s.status {
                                        st.set_idle(true);
                                    }
                                    let o = valve.idle(i, true);
                                    apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                                }
                            }
                        }
                        env.ctx.flush_deferred().await?;
                        continue;
                    }
                }
            }
        };
        match ev {
            Ok(SplitEvent::Records(mut records)) => {
                read = true;
                if std::mem::take(&mut caught_up) {
                    env.caught_up(false, false);
                }
                let slot = &mut slots[i];
                slot.stamp_records(&mut records, ts_fn.as_ref());
                records_read.increment(records.len() as u64);
                stats.add_in(records.len() as u64);
                stats.add_out(records.len() as u64);
                if let Some(time) = slot.split.event_time() {
                    if !records.is_empty() {
                        chain.process_batch(records, &mut env.ctx)?;
                    }
                    let (o, caught_up) = slot.event_time(i, time, &mut valve, sent);
                    if caught_up {
                        chain.on_caught_up(slot.stamp, &mut env.ctx)?;
                    }
                    apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                    env.ctx.flush_deferred().await?;
                    continue;
                }
                let was_idle = std::mem::replace(&mut slot.idle, false);
                let wm = slot.wm.current();
                if let Some(st) = &slot.status {
                    if was_idle {
                        st.set_idle(false);
                    }
                    if strategy.watermarks && slot.wm.max_timestamp() != NO_TIMESTAMP {
                        st.set_watermark(wm);
                    }
                }
                chain.process_batch(records, &mut env.ctx)?;
                if slot.lagging {
                    if slot.catches_up(wm, sent) {
                        chain.on_caught_up(slot.stamp, &mut env.ctx)?;
                        let o = valve.watermark(i, wm);
                        apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                    }
                } else if strategy.watermarks {
                    let o = valve.watermark(i, wm);
                    apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                } else if was_idle {
                    let o = valve.idle(i, false);
                    apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                }
            }
            Ok(SplitEvent::End) => {
                if std::mem::take(&mut slots[i].lagging) {
                    chain.on_caught_up(slots[i].stamp, &mut env.ctx)?;
                }
                slots[i].ended = true;
                remaining -= 1;
                if remaining > 0 {
                    let o = valve.end(i);
                    apply_valve(o, &mut chain, &mut env.ctx, sent).await?;
                }
            }
            Err(e) => return Err(source_error(&name, slots[i].index, e)),
        }
        env.ctx.flush_deferred().await?;
    }
    let mut end_state = OperatorState::default();
    for s in slots.iter().filter(|s| keep_positions && !s.released) {
        end_state
            .entries
            .insert(u32::from(s.index), encode_to_vec(&s.split.position()));
    }
    let _ = env.events.send(JobEvent::FinalState {
        task: env.ctx.task,
        state: vec![(operator, end_state)],
    });
    // Bounded input exhausted: a final watermark fires every remaining window.
    drive_watermark(&mut chain, &mut env.ctx, i64::MAX).await?;
    chain.end_of_input(&mut env.ctx)?;
    env.ctx.flush_deferred().await?;
    chain.close()
}

impl TaskEnv {
    /// Tells the coordinator whether this source task caught up.
    fn caught_up(&self, caught_up: bool, read: bool) {
        let _ = self.events.send(JobEvent::CaughtUp {
            task: self.ctx.task,
            caught_up,
            read,
        });
    }

    /// Keeps a control message received while waiting for the main loop, which
    /// handles it before anything else.
    fn control_push_front(&mut self, c: Control) {
        self.pending_control.push_back(c);
    }
}

/// What a sink task is given besides its sink.
pub(crate) struct SinkTaskSpec {
    pub(crate) operator: OperatorId,
    pub(crate) parallelism: usize,
    pub(crate) epoch: Epoch,
    pub(crate) restored: Option<OperatorState>,
    pub(crate) close_timeout: std::time::Duration,
    /// Whether a source with event time feeds the sink (adopted key groups
    /// then lag until they catch up).
    pub(crate) event_time: bool,
    pub(crate) stats: Arc<SubtaskStats>,
    pub(crate) status: Arc<SinkStatus>,
}

/// Input gate -> sink.
pub(crate) async fn run_sink_task<T: Send + 'static, S: Sink<T>>(
    mut gate: InputGate<T>,
    mut sink: S,
    mut env: TaskEnv,
    spec: SinkTaskSpec,
) -> Result<()> {
    let SinkTaskSpec {
        operator,
        parallelism,
        epoch,
        restored,
        close_timeout,
        event_time,
        stats,
        status,
    } = spec;
    let subtask = env.ctx.subtask;
    let name = sink.name().to_string();
    let err = |e: EngineError| match e {
        e @ EngineError::Sink { .. } => e,
        other => EngineError::Sink {
            sink: name.clone(),
            subtask,
            cause: Box::new(other),
        },
    };
    let restored_bytes: Vec<Vec<u8>> = restored
        .map(|s| s.entries.into_values().collect())
        .unwrap_or_default();
    let ctx = SinkContext {
        subtask,
        parallelism,
        epoch,
        restored: restored_bytes,
    };
    sink.open(&ctx).await.map_err(err)?;
    let records_in = metrics::counter!("strom_records_in_total", "operator" => name.clone(), "subtask" => subtask.to_string());
    let mut control_open = true;
    loop {
        env.ctx.timer.wait_start();
        tokio::select! {
            biased;
            c = env.control.recv(), if control_open => {
                env.ctx.timer.wait_end();
                match c {
                    Some(Control::Complete(id)) => {
                        sink.commit(id).await.map_err(err)?;
                        status.committed();
                    }
                    Some(Control::Trigger(_)) => {}
                    // The stop checkpoint completed (and was committed above).
                    Some(Control::Shutdown) => return Ok(()),
                    None => control_open = false,
                }
            }
            ev = gate.next() => {
                env.ctx.timer.wait_end();
                match ev {
                    GateEvent::Data(b) => {
                        let n = b.len() as u64;
                        records_in.increment(n);
                        stats.add_in(n);
                        sink.write(b).await.map_err(err)?;
                        stats.add_out(n);
                        status.add_records(n);
                    }
                    GateEvent::Watermark(w) => sink.watermark(w).await.map_err(err)?,
                    GateEvent::Idle(i) => sink.idle(i).await.map_err(err)?,
                    GateEvent::CaughtUp(g) => sink.caught_up(g).map_err(err)?,
                    GateEvent::Barrier(b) => {
                        // The adopted splits' records come after the barrier;
                        // what the sink writes at it already waits for them.
                        if let Some(a) = b.adopt.as_ref().filter(|_| event_time) {
                            sink.adopted(b.id, &a.key_groups).map_err(err)?;
                        }
                        let started = std::time::Instant::now();
                        let state = sink.pre_commit(b.id).await.map_err(err)?;
                        if let Some(released) = &b.release {
                            sink.released(released).map_err(err)?;
                        }
                        status.flushed(started.elapsed());
                        // A sink with nothing to finish on restore stores nothing.
                        if !state.is_empty() {
                            let mut s = OperatorState::default();
                            s.entries.insert(subtask as u32, state);
                            env.ctx.snapshot.push((operator, s));
                        }
                        env.ack(b.id);
                    }
                    GateEvent::End => {
                        // A sink that cannot finish (e.g. a stuck transaction) must not hang
                        // the job forever.
                        match tokio::time::timeout(close_timeout, sink.finish()).await {
                            Ok(r) => r.map_err(err)?,
                            Err(_) => {
                                return Err(EngineError::Sink {
                                    sink: name.clone(),
                                    subtask,
                                    cause: Box::new(EngineError::Unsupported(format!(
                                        "finish did not complete within {close_timeout:?}"
                                    ))),
                                });
                            }
                        }
                        return Ok(());
                    }
                    GateEvent::Broken => return Err(crate::runtime::gate::broken_input()),
                }
            }
        }
    }
}
