//! `async_map`: enrichment against an external service without blocking the stream.
//!
//! Up to `capacity` calls run concurrently in the task (as futures, no thread per
//! call); each is bounded by `timeout`. Ordered mode emits results in input order;
//! unordered mode emits them as they complete. Watermarks, barriers and the end of
//! input are never overtaken: the task first waits for every call in flight, so a
//! checkpoint never has to store in-flight requests.
//!
//! ```text
//! gate -> [call 1][call 2]...[call capacity] -> results (ordered | as completed) -> chain
//!           ^ input is not polled while capacity calls are in flight (backpressure)
//! ```

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};

use crate::error::Result;
use crate::graph::AsyncOptions;
use crate::record::{Position, Record};
use crate::runtime::gate::{GateEvent, InputGate};
use crate::runtime::node::BoxNode;
use crate::runtime::task::{Control, TaskEnv};

type CallResult<U> = (i64, Position, std::result::Result<U, String>);
type CallFuture<U> = Pin<Box<dyn Future<Output = CallResult<U>> + Send>>;

/// What an async-map task runs.
pub(crate) struct AsyncMapSpec<F> {
    pub(crate) name: Arc<str>,
    pub(crate) f: Arc<F>,
    pub(crate) opts: AsyncOptions,
    /// Records in and out, for the job's status.
    pub(crate) stats: Arc<crate::runtime::status::SubtaskStats>,
}

enum InFlight<U> {
    Ordered(FuturesOrdered<CallFuture<U>>),
    Unordered(FuturesUnordered<CallFuture<U>>),
}

impl<U> InFlight<U> {
    fn len(&self) -> usize {
        match self {
            InFlight::Ordered(f) => f.len(),
            InFlight::Unordered(f) => f.len(),
        }
    }
    fn push(&mut self, f: CallFuture<U>) {
        match self {
            InFlight::Ordered(q) => q.push_back(f),
            InFlight::Unordered(q) => q.push(f),
        }
    }
    async fn next(&mut self) -> Option<CallResult<U>> {
        match self {
            InFlight::Ordered(q) => q.next().await,
            InFlight::Unordered(q) => q.next().await,
        }
    }
}

fn handle_result<U>(
    r: CallResult<U>,
    out: &mut Vec<Record<U>>,
    env: &mut TaskEnv,
    name: &str,
) -> Result<()> {
    let (ts, pos, res) = r;
    match res {
        Ok(v) => out.push(Record {
            value: v,
            timestamp: ts,
            position: pos,
        }),
        Err(e) => env.ctx.record_failed(name, pos, ts, e)?,
    }
    Ok(())
}

/// Input gate -> concurrent async calls -> chain.
pub(crate) async fn run_async_task<T, U, E, Fut, F>(
    mut gate: InputGate<T>,
    spec: AsyncMapSpec<F>,
    mut chain: BoxNode<U>,
    mut env: TaskEnv,
) -> Result<()>
where
    T: Send + 'static,
    U: Send + 'static,
    E: Display + Send + 'static,
    Fut: Future<Output = std::result::Result<U, E>> + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
{
    let AsyncMapSpec {
        name,
        f,
        opts,
        stats,
    } = spec;
    let capacity = opts.capacity.max(1);
    let mut inflight: InFlight<U> = if opts.ordered {
        InFlight::Ordered(FuturesOrdered::new())
    } else {
        InFlight::Unordered(FuturesUnordered::new())
    };
    let mut pending_input: std::collections::VecDeque<Record<T>> = Default::default();
    chain.open(&mut env.ctx)?;
    let mut control_open = true;
    let mut results: Vec<Record<U>> = Vec::new();
    loop {
        // Start calls for buffered input while capacity allows.
        while inflight.len() < capacity {
            let Some(r) = pending_input.pop_front() else {
                break;
            };
            let (ts, pos) = (r.timestamp, r.position);
            let call = f(r.value);
            let timeout = opts.timeout;
            inflight.push(Box::pin(async move {
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(v)) => (ts, pos, Ok(v)),
                    Ok(Err(e)) => (ts, pos, Err(e.to_string())),
                    Err(_) => (
                        ts,
                        pos,
                        Err(format!("async call timed out after {timeout:?}")),
                    ),
                }
            }));
        }
        let accept_input = pending_input.is_empty();
        tokio::select! {
            biased;
            c = env.control.recv(), if control_open => match c {
                Some(Control::Complete(id)) => chain.on_checkpoint_complete(id, &mut env.ctx)?,
                Some(Control::Trigger(_)) => {}
                // The stop checkpoint completed: results still in flight belong
                // after it and are dropped with the task.
                Some(Control::Shutdown) => return chain.close(),
                None => control_open = false,
            },
            Some(r) = inflight.next(), if inflight.len() > 0 => {
                handle_result(r, &mut results, &mut env, &name)?;
            }
            ev = gate.next(), if accept_input => {
                match ev {
                    GateEvent::Data(b) => {
                        stats.add_in(b.len() as u64);
                        pending_input.extend(b)
                    }
                    other => {
                        // Control events wait for every call in flight (and buffered input).
                        while !pending_input.is_empty() || inflight.len() > 0 {
                            while inflight.len() < capacity {
                                let Some(r) = pending_input.pop_front() else { break };
                                let (ts, pos) = (r.timestamp, r.position);
                                let call = f(r.value);
                                let timeout = opts.timeout;
                                inflight.push(Box::pin(async move {
                                    match tokio::time::timeout(timeout, call).await {
                                        Ok(Ok(v)) => (ts, pos, Ok(v)),
                                        Ok(Err(e)) => (ts, pos, Err(e.to_string())),
                                        Err(_) => (ts, pos, Err(format!("async call timed out after {timeout:?}"))),
                                    }
                                }));
                            }
                            if let Some(r) = inflight.next().await {
                                handle_result(r, &mut results, &mut env, &name)?;
                            }
                        }
                        if !results.is_empty() {
                            stats.add_out(results.len() as u64);
                            chain.process_batch(std::mem::take(&mut results), &mut env.ctx)?;
                        }
                        match other {
                            GateEvent::Watermark(w) => {
                                crate::runtime::task::drive_watermark(&mut chain, &mut env.ctx, w).await?;
                            }
                            GateEvent::Idle(i) => chain.on_idle(i, &mut env.ctx)?,
                            GateEvent::CaughtUp(g) => chain.on_caught_up(g, &mut env.ctx)?,
                            GateEvent::Barrier(b) => {
                                chain.on_barrier(b.clone(), &mut env.ctx)?;
                                env.ctx.flush_deferred().await?;
                                let state = std::mem::take(&mut env.ctx.snapshot);
                                if env.checkpointed {
                                    let _ = env.events.send(crate::runtime::task::JobEvent::Ack {
                                        task: env.ctx.task,
                                        checkpoint: b.id,
                                        state,
                                    });
                                }
                            }
                            GateEvent::End => {
                                chain.end_of_input(&mut env.ctx)?;
                                env.ctx.flush_deferred().await?;
                                return chain.close();
                            }
                            GateEvent::Broken => {
                                return Err(crate::runtime::gate::broken_input());
                            }
                            GateEvent::Data(_) => {}
                        }
                    }
                }
            }
        }
        if !results.is_empty() && (results.len() >= env.ctx.batch_size || inflight.len() == 0) {
            stats.add_out(results.len() as u64);
            chain.process_batch(std::mem::take(&mut results), &mut env.ctx)?;
            chain.flush(&mut env.ctx)?;
        }
        env.ctx.flush_deferred().await?;
    }
}
