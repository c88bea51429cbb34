//! [`KafkaJob`]: runs a pipeline whose sources and sinks are Kafka topics as one
//! process of a consumer group, with every checkpoint a Kafka transaction.
//!
//! ```text
//!  start: producer (transactional.id {app}-{instance}: fences the previous
//!           process of this instance and aborts what it left open, before
//!           its pending offsets can hold up the committed offsets read below;
//!           a one-process pipeline's is {app}, made once the process owns
//!           the pipeline) → join the group (static member {app}-{instance})
//!  ┌─► incarnation: settle the assignment → seek to the committed offsets
//!  │     → restore the owned key groups from the changelogs (cached after the first;
//!  │       counts as polling the group, and a rebalance interrupts it)
//!  │     → define + start the pipeline, fetch task feeding its splits
//!  │     ├─ cooperative revocation → release them at a checkpoint, go on     │
//!  │     ├─ cooperative assignment → adopt them at a checkpoint, go on       │
//!  │     ├─ rebalance pending → stop (final checkpoint commits) ─────────────┐
//!  │     ├─ failure (aborted / fenced transaction, broker gone) → abort,     │
//!  │     │    replace the producer if it is fenced and still ours ──────────┤
//!  │     ├─ stop requested (SIGTERM) → stop (final checkpoint) → leave ─► end│
//!  │     └─ bounded input ended → final commit ─► end                        │
//!  └──────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A pipeline whose state is keyed by hash (`key_by`) needs every input
//! partition in one process: the group's `exclusive` assignor gives them all to
//! one member, and the other processes stand by ([`JobState::Standby`]) to take
//! over from the last checkpoint when it leaves or its session expires (with
//! `group.protocol=consumer` the broker assigns: a second process is refused
//! before it joins when the group describes a member already; one that joined
//! anyway is refused and leaves, and the running one waits until it has every
//! partition back).
//!
//! A pipeline that writes Kafka but reads no Kafka topic (a generator, files)
//! runs the same way: its member subscribes to the owner topic
//! `{application.id}-owner` (one partition, never written), and the process
//! assigned that partition runs the pipeline. Its sources' positions are kept in
//! its checkpoints (changelogs), and every checkpoint commits offset 0 of the
//! owner partition under the member's generation, which fences a process that
//! lost it (stalled past its session).
//!
//! The processes of such a pipeline share one transactional id,
//! `{application.id}`, and a process makes its producer only once it owns the
//! pipeline: the one taking over fences the one before and aborts its open
//! transaction at once, so read_committed output does not wait for
//! `transaction.timeout.ms`.
//!
//! An incremental rebalance (partition-aligned state: `cooperative-sticky` over
//! one input topic, `cooperative-copartitioned` over several, moving partition
//! p of every topic as one; or `group.protocol=consumer`) does not restart: the
//! fetch task joins while the job goes on; revoked partitions leave the running
//! job at a checkpoint that commits their offsets and state
//! ([`engine::JobController::release`]) before the member joins again
//! (classic) or acknowledges the revocation (consumer protocol) to hand them
//! on, and assigned ones join it at a checkpoint that loads their state
//! from the changelogs ([`engine::JobController::adopt`]). Under event time
//! an adopted partition behind the job's watermark lags until it catches up
//! (its windows wait and its records are not late); through a repartition
//! topic, the process's markers hold the readers' watermark meanwhile.
//!
//! A change that would split a partition number between processes restarts
//! instead.
//!
//! Why a restart for everything else (rollbacks, eager rebalances): an
//! incarnation restores exactly the state of the partitions it owns,
//! and a rollback (an aborted transaction) has to reset every operator's state
//! and drop the records in flight between tasks anyway; restarting the tasks
//! does both with one mechanism. The process keeps what it committed last, so
//! only partitions new to it are read from the changelogs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::state::key_group::SourcePartitioner;
use engine::{
    Checkpoint, CheckpointId, ErrorClass, JobHandle, JobState, JobStatus, OperatorId, Pipeline,
    PipelineConfig,
};
use kafka_wire::client::admin::{Admin, OffsetSpec};
use kafka_wire::client::config::IsolationLevel;
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::client::partitioner::partition_for_key;
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::transaction::session::TransactSession;
use kafka_wire::client::{Client, Producer};
use tokio::sync::{mpsc, watch};

use super::changelog::Changelog;
use super::config::KafkaConfig;
use super::fetch::{self, FetchEvent};
use super::scope::{Claim, Incarnation, KafkaScope, LiveFeed, PartitionFeed};
use super::store::{KafkaCheckpointStore, RepartitionPurge, dead_letter_record};
use super::topics;
use super::writer::Writer;
use crate::error::{ConnectorError, classify};

/// Fetches a partition's queue holds before the fetch task waits (one more is
/// usually in flight).
const FEED_CAPACITY: usize = 2;
/// Rollbacks in a row (without a checkpoint in between) before the job gives up.
const MAX_ROLLBACKS_IN_A_ROW: u32 = 10;
/// Pause before starting an incarnation again after a retriable failure, times
/// the failures in a row (at most 10).
const SETUP_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// How the job gets past an error met while starting an incarnation: Kafka
/// errors by [`classify`], everything else (configuration, refusals) is fatal.
fn setup_class(e: &ConnectorError) -> ErrorClass {
    match e {
        ConnectorError::Kafka { source, .. } => classify(source),
        ConnectorError::Engine(e) => e.class(),
        _ => ErrorClass::Fatal,
    }
}

/// Runs `step` until it succeeds, fails for good, or has kept failing with
/// retriable errors (a broker down) for `limit` (`strom.setup.timeout.ms`);
/// `None` when a stop is requested before it succeeds.
async fn retry_setup<T, F, Fut>(
    what: &str,
    limit: Duration,
    stop: &watch::Receiver<bool>,
    mut step: F,
) -> Result<Option<T>, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectorError>>,
{
    let since = Instant::now();
    let mut failures = 0u32;
    let mut stop = stop.clone();
    loop {
        if *stop.borrow() {
            tracing::info!("stop requested while {what}: ending before the job started");
            return Ok(None);
        }
        match step().await {
            Ok(v) => return Ok(Some(v)),
            Err(e) if setup_class(&e) != ErrorClass::Fatal && since.elapsed() < limit => {
                failures += 1;
                tracing::warn!(error = %e, "{what} failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(SETUP_RETRY_BACKOFF * failures.min(10)) => {}
                    _ = stop.wait_for(|stopped| *stopped) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Asks a running [`KafkaJob`] to stop: a final checkpoint commits, the process
/// leaves the group (unless `strom.leave.group.on.stop=false`, with which its
/// static membership keeps its partitions for the session timeout), and `run`
/// returns.
#[derive(Clone, Debug)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// How a [`KafkaJob`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Its bounded input was read and committed.
    Bounded,
    /// It was stopped.
    Stopped,
}

/// One restore of state at the start of an incarnation.
#[derive(Debug, Clone)]
pub struct Restore {
    /// How long it took (changelog reads included).
    pub duration: Duration,
    /// Bytes read from the changelogs.
    pub bytes_read: usize,
    /// Key groups restored.
    pub key_groups: usize,
}

/// What a finished [`KafkaJob`] did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// How it ended.
    pub end: JobEnd,
    /// Incarnations run (1 + restarts for rebalances and rollbacks).
    pub incarnations: u32,
    /// Rollbacks to the last checkpoint.
    pub rollbacks: u32,
    /// Partitions a cooperative rebalance took away while the incarnation went
    /// on with the others (released at a checkpoint, no restart).
    pub released: u32,
    /// Partitions a cooperative rebalance brought that joined the running
    /// incarnation (adopted at a checkpoint, no restart).
    pub adopted: u32,
    /// Every restore, in order.
    pub restores: Vec<Restore>,
    /// The last checkpoint committed.
    pub last_checkpoint: CheckpointId,
}

impl JobReport {
    /// A job stopped before its first incarnation.
    fn not_started() -> JobReport {
        JobReport {
            end: JobEnd::Stopped,
            incarnations: 0,
            rollbacks: 0,
            released: 0,
            adopted: 0,
            restores: Vec::new(),
            last_checkpoint: CheckpointId(0),
        }
    }
}

/// Runs a pipeline over Kafka (see the module doc).
///
/// ```no_run
/// # async fn demo() -> Result<(), connectors::ConnectorError> {
/// use std::time::Duration;
/// use connectors::kafka::{Json, KafkaConfig, KafkaJob};
/// use engine::{Count, PipelineConfig, WatermarkStrategy, Windows};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Click { url: String, status: u16, ts: i64 }
///
/// let kafka = KafkaConfig::from_properties_file("kafka.properties")?; // application.id=errors
/// let job = KafkaJob::new(kafka, PipelineConfig::default().checkpoint_interval(Duration::from_secs(1)));
/// job.run(|p, k| {
///     p.source(
///         k.source().topics(["clicks"]).format(Json::<Click>::new()),
///         WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
///             .with_timestamp(|c: &Click| c.ts)
///             .with_idleness(Duration::from_secs(30)),
///     )
///     .filter(|c| c.status >= 500)
///     .key_by(|c| c.url.clone())
///     .window(Windows::tumbling(Duration::from_secs(60)))
///     .aggregate(Count)
///     .sink(k.sink("error-counts").exactly_once());
///     Ok(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub struct KafkaJob {
    config: KafkaConfig,
    pipeline: PipelineConfig,
    stop: watch::Sender<bool>,
}

/// What the pipeline definition asks for, learnt by defining it once.
struct Plan {
    topics: Vec<String>,
    /// The repartition topics among `topics` (made by [`KafkaScope::key_by`]).
    repartition_topics: Vec<String>,
    sink_topics: Vec<String>,
    bounded: bool,
    exactly_once: bool,
    aligned: bool,
    uids: BTreeMap<OperatorId, String>,
    /// The owner topic, when the job reads no Kafka topic (see the module doc).
    owner: Option<String>,
}

impl Plan {
    /// What the job's group member subscribes to: its input, else its owner topic.
    fn group_topics(&self) -> Vec<String> {
        match &self.owner {
            Some(owner) => vec![owner.clone()],
            None => self.topics.clone(),
        }
    }

    /// Whether one process runs the whole pipeline (state keyed by hash, or no
    /// Kafka input), the others standing by.
    fn single(&self) -> bool {
        !self.aligned
    }

    /// The partition whose owner runs the job, when it reads no Kafka topic.
    fn owner_partition(&self) -> Option<TopicPartition> {
        self.owner.as_ref().map(|t| (t.clone(), 0))
    }
}

/// Rollbacks in a row: a checkpoint committed between two rollbacks ends a run.
#[derive(Default)]
struct RollbackRun {
    in_a_row: u32,
    /// The last checkpoint committed at the previous rollback.
    committed_at: CheckpointId,
}

impl RollbackRun {
    /// Counts a rollback with `last` the last checkpoint committed; returns the
    /// rollbacks in a row.
    fn record(&mut self, last: CheckpointId) -> u32 {
        if last > self.committed_at {
            self.in_a_row = 0;
        }
        self.committed_at = last;
        self.in_a_row += 1;
        self.in_a_row
    }
}

/// Why an incarnation ended.
enum Outcome {
    Ended(engine::Result<engine::JobResult>),
    FetchFailed(kafka_wire::Error),
}

impl KafkaJob {
    /// A job with these Kafka settings and pipeline settings (a status registry
    /// named after the application id when `pipeline.status` is unset).
    pub fn new(config: KafkaConfig, mut pipeline: PipelineConfig) -> KafkaJob {
        if pipeline.status.is_none() {
            pipeline.status = Some(JobStatus::new(config.application_id()));
        }
        KafkaJob {
            config,
            pipeline,
            stop: watch::Sender::new(false),
        }
    }

    /// The job's live status, kept across incarnations.
    pub fn status(&self) -> JobStatus {
        self.pipeline
            .status
            .clone()
            .unwrap_or_else(|| JobStatus::new(self.config.application_id()))
    }

    /// A handle that stops the job (e.g. from a SIGTERM handler).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Runs the pipeline `define` builds (it is called once per incarnation, and
    /// once more up front to learn the topics) until its bounded input ends or the
    /// job is stopped.
    pub async fn run<F>(self, define: F) -> Result<JobReport, ConnectorError>
    where
        F: Fn(&Pipeline, &KafkaScope) -> engine::Result<()>,
    {
        let KafkaJob {
            config,
            pipeline,
            stop,
        } = self;
        config.validate()?;
        let status = pipeline
            .status
            .clone()
            .unwrap_or_else(|| JobStatus::new(config.application_id()));
        let scope = KafkaScope::new(config.clone());
        let mut plan = probe(&define, &scope, &pipeline)?;
        if plan.topics.is_empty() {
            plan.owner = Some(topics::owner_topic(config.application_id()));
        }
        let mut pipeline = pipeline;
        // Output under exactly-once is visible only once a checkpoint commits
        // it: commit as soon as the input pauses rather than at the interval.
        pipeline
            .checkpoint_when_caught_up
            .get_or_insert(plan.exactly_once);
        tracing::info!(
            application = config.application_id(),
            instance = config.instance(),
            topics = ?plan.topics,
            exactly_once = plan.exactly_once,
            aligned = plan.aligned,
            bounded = plan.bounded,
            "starting Kafka job"
        );
        // A process may start while a broker restarts: what it does before
        // its first incarnation waits for the cluster like the setup of an
        // incarnation does (retriable errors, `strom.setup.timeout.ms`).
        let setup_timeout = config.setup_timeout();
        let mut stop_rx = stop.subscribe();
        let client_config = config.producer_config(&[])?.client;
        let Some(client) = retry_setup("connecting", setup_timeout, &stop_rx, || async {
            Client::connect(client_config.clone())
                .await
                .map_err(|e| ConnectorError::kafka("connecting", e))
        })
        .await?
        else {
            return Ok(JobReport::not_started());
        };
        let admin = Admin::new(client);
        let mut widest = 1;
        let mut all_partitions = BTreeSet::new();
        for t in plan
            .topics
            .iter()
            .filter(|t| !plan.repartition_topics.contains(t))
        {
            let Some(n) = retry_setup("looking up the input", setup_timeout, &stop_rx, || {
                topics::partitions(&admin, t)
            })
            .await?
            else {
                return Ok(JobReport::not_started());
            };
            widest = widest.max(n);
            all_partitions.extend((0..n).map(|p| (t.clone(), p)));
        }
        // A repartition topic has a partition per input partition number, so a
        // process owning partition n of the input owns partition n of it.
        for t in &plan.repartition_topics {
            if retry_setup(
                "creating a repartition topic",
                setup_timeout,
                &stop_rx,
                || topics::ensure_repartition(&admin, &config, t, widest),
            )
            .await?
            .is_none()
            {
                return Ok(JobReport::not_started());
            }
            all_partitions.extend((0..widest).map(|p| (t.clone(), p)));
        }
        scope.repartition_partitions().store(
            u16::try_from(widest).unwrap_or(u16::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        for t in &plan.sink_topics {
            match retry_setup("looking up the output", setup_timeout, &stop_rx, || {
                topics::exists(&admin, t)
            })
            .await?
            {
                None => return Ok(JobReport::not_started()),
                Some(false) => {
                    return Err(ConnectorError::Refused(format!(
                        "sink topic {t} does not exist: create it first"
                    )));
                }
                Some(true) => {}
            }
        }
        if let Some(owner) = &plan.owner {
            if retry_setup("creating the owner topic", setup_timeout, &stop_rx, || {
                topics::ensure_owner(&admin, &config, owner)
            })
            .await?
            .is_none()
            {
                return Ok(JobReport::not_started());
            }
        }
        if plan.aligned && i64::from(pipeline.max_parallelism) < i64::from(widest) {
            pipeline.max_parallelism = u16::try_from(widest).unwrap_or(u16::MAX);
        }
        if pipeline.source_partitioner.is_none() {
            // What the Java client's default partitioner does with a record key:
            // key_by_source_partition keeps each key in that partition's key group.
            pipeline.source_partitioner = Some(SourcePartitioner(Arc::new(move |key: &[u8]| {
                u16::try_from(partition_for_key(key, widest)).unwrap_or(0)
            })));
        }
        // The classic protocol's `exclusive` assignor makes a second process of a
        // one-process pipeline stand by; with the consumer protocol the broker
        // assigns, and a second process is refused instead.
        let group_protocol_consumer = config.get("group.protocol") == Some("consumer");
        if !plan.aligned
            && plan.owner.is_none()
            && group_protocol_consumer
            && retry_setup("checking the group", setup_timeout, &stop_rx, || {
                refuse_second_process(&admin, &config)
            })
            .await?
            .is_none()
        {
            return Ok(JobReport::not_started());
        }
        let Some(mut group) = retry_setup("joining the group", setup_timeout, &stop_rx, || {
            join_group(&config, &plan)
        })
        .await?
        else {
            return Ok(JobReport::not_started());
        };
        // A one-process pipeline makes its producer once it owns the pipeline:
        // the transactional id is shared by its processes (see `make_writer`).
        let mut writer: Option<Arc<Writer>> = None;
        if plan.exactly_once && !plan.single() {
            // This instance's transactional id is its own: making the producer
            // before the first join fences the instance's previous process
            // (killed, say) and aborts its open transaction now. Its pending
            // offsets would otherwise hold up the committed offsets read while
            // the assignment settles until transaction.timeout.ms ran out
            // (SIGKILL to first output: 14 s instead of under 1 s).
            let made = retry_setup("creating the producer", setup_timeout, &stop_rx, || {
                make_writer(&config, &group, &plan)
            })
            .await;
            match made {
                Ok(Some(w)) => writer = Some(Arc::new(w)),
                Ok(None) => {
                    let _ = group.close().await;
                    return Ok(JobReport::not_started());
                }
                Err(e) => {
                    let _ = group.close().await;
                    return Err(e);
                }
            }
        }
        let changelog = Arc::new(Changelog::new(config.clone(), widest, plan.aligned));
        let purge = Arc::new(RepartitionPurge::new(
            plan.repartition_topics.clone(),
            config.repartition_purge_interval(),
        ));
        let mut report = JobReport::not_started();
        let mut rollbacks = RollbackRun::default();
        // A running one-process pipeline whose input the broker split.
        let mut waiting_for_all = false;
        // Failures in a row to start an incarnation, and since when.
        let mut setup_failures = 0u32;
        let mut failing_since: Option<Instant> = None;
        loop {
            let Some(mut assignment) =
                settle(&mut group, &plan, &status, &mut stop_rx, waiting_for_all).await?
            else {
                break;
            };
            // The owner partition is no input: it holds no records, and its
            // offset (0) goes with every checkpoint, so that a process that lost
            // it (stalled past its session) cannot commit.
            let held: BTreeMap<TopicPartition, i64> = match plan.owner_partition() {
                Some(owner) => {
                    assignment.retain(|tp| *tp != owner);
                    BTreeMap::from([(owner, 0)])
                }
                None => BTreeMap::new(),
            };
            if plan.aligned && plan.topics.len() > 1 {
                if let Err(e) = check_co_partitioned(&assignment, &all_partitions) {
                    let _ = group.close().await;
                    return Err(e);
                }
            }
            if !plan.aligned && plan.owner.is_none() && !assignment.is_empty() {
                let owned: BTreeSet<TopicPartition> = assignment.iter().cloned().collect();
                if owned != all_partitions && report.incarnations > 0 {
                    // The broker split the input (group.protocol=consumer) because
                    // another process joined: that one is refused and leaves,
                    // and this one gets every partition back.
                    if !waiting_for_all {
                        tracing::warn!(
                            partitions = owned.len(),
                            of = all_partitions.len(),
                            "another process joined this one-process pipeline; waiting until every partition is back"
                        );
                        waiting_for_all = true;
                        status.set_state(JobState::Starting);
                    }
                    continue;
                }
                if waiting_for_all && owned == all_partitions {
                    tracing::info!("every partition is back");
                }
                waiting_for_all = false;
                if owned != all_partitions {
                    // Leaving at once hands the partitions back to the running process.
                    let _ = group.close_and_leave().await;
                    return Err(ConnectorError::Refused(format!(
                        "this pipeline keys its state by something other than the input partitions (key_by), so it runs as one process; group {} has another member holding partitions of {:?} (use key_by_source_partition, or stop the other process)",
                        config.group_id(),
                        plan.topics
                    )));
                }
            }
            let writer_now = match &writer {
                Some(w) => w.clone(),
                None => {
                    let made =
                        retry_setup("creating the producer", setup_timeout, &stop_rx, || {
                            make_writer(&config, &group, &plan)
                        })
                        .await;
                    match made {
                        Ok(Some(w)) => writer.insert(Arc::new(w)).clone(),
                        Ok(None) => break,
                        Err(e) => {
                            let _ = group.close().await;
                            return Err(e);
                        }
                    }
                }
            };
            // Where each partition starts and the state to restore. A broker
            // that is down or a leader that moves fails this with a retriable
            // error: settle the group again and retry, as after a rollback.
            let member = group.handle();
            let setup = async {
                group
                    .seek_to_committed()
                    .await
                    .map_err(|e| ConnectorError::kafka("seeking to the committed offsets", e))?;
                group
                    .consumer()
                    .resume(assignment.iter().map(|(t, p)| (t.as_str(), *p)));
                let mut starts = BTreeMap::new();
                for (t, p) in &assignment {
                    let position = group
                        .consumer()
                        .position(t, *p)
                        .await
                        .map_err(|e| ConnectorError::kafka(format!("position of {t}-{p}"), e))?
                        .unwrap_or(0);
                    starts.insert((t.clone(), *p), position);
                }
                tracing::debug!(?starts, "incarnation starts at");
                status.set_state(JobState::Restoring);
                let ends = if plan.bounded {
                    Some(end_offsets(&admin, &assignment, &config).await?)
                } else {
                    None
                };
                let owned: BTreeSet<u16> = if plan.aligned {
                    numbers(&assignment)
                } else {
                    (0..pipeline.max_parallelism).collect()
                };
                // A long restore must not cost the membership: it runs as part
                // of the poll loop, and gives way to a rebalance.
                let restore = changelog.restore(&admin, &plan.uids, &owned, report.last_checkpoint);
                let restored = member.while_polling(restore).await.transpose()?;
                Ok::<_, ConnectorError>(restored.map(|r| (starts, ends, r)))
            };
            let (starts, ends, (checkpoint, took, bytes_read)) = match setup.await {
                Ok(None) => {
                    tracing::info!("a rebalance began while restoring state; settling it first");
                    continue;
                }
                Ok(Some(done)) => {
                    failing_since = None;
                    setup_failures = 0;
                    done
                }
                Err(e) if setup_class(&e) != ErrorClass::Fatal => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > setup_timeout {
                        let _ = group.close().await;
                        return Err(e);
                    }
                    setup_failures += 1;
                    tracing::warn!(error = %e, "starting the incarnation failed; retrying");
                    status.error(format!("starting the incarnation failed: {e}"));
                    status.set_state(JobState::Starting);
                    let backoff = SETUP_RETRY_BACKOFF * setup_failures.min(10);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(e) => {
                    let _ = group.close().await;
                    return Err(e);
                }
            };
            status.next_incarnation();
            status.retain_partitions(&assignment.iter().cloned().collect());
            let key_groups = checkpoint
                .operators
                .values()
                .map(|s| s.key_groups.len())
                .sum();
            tracing::info!(
                partitions = assignment.len(),
                key_groups,
                bytes_read,
                took_ms = took.as_millis() as u64,
                "state restored"
            );
            metrics::histogram!("strom_restore_seconds").record(took.as_secs_f64());
            status.restored(took);
            report.restores.push(Restore {
                duration: took,
                bytes_read,
                key_groups,
            });
            report.incarnations += 1;

            let mut feeds = HashMap::new();
            let mut senders = HashMap::new();
            let mut partition_status = HashMap::new();
            for tp in &assignment {
                let start = starts.get(tp).copied().unwrap_or(0);
                let end = ends.as_ref().and_then(|e| e.get(tp).copied());
                let (feed, tx) = PartitionFeed::new(&status, tp, (start, end), FEED_CAPACITY);
                partition_status.insert(tp.clone(), feed.status.clone());
                feeds.insert(tp.clone(), feed);
                senders.insert(tp.clone(), tx);
            }
            let claim = Claim {
                writer: config.instance_name(),
                owns: numbers(&assignment).into_iter().collect(),
                of: u16::try_from(widest).unwrap_or(u16::MAX),
            };
            let incarnation = Arc::new(Incarnation::new(
                feeds,
                writer_now.clone(),
                status.clone(),
                claim,
                held,
            ));
            writer_now.set_committed(report.last_checkpoint);
            scope.bind(Some(incarnation.clone()));
            let store = Arc::new(KafkaCheckpointStore {
                incarnation: incarnation.clone(),
                changelog: changelog.clone(),
                admin: admin.clone(),
                purge: purge.clone(),
            });
            let handle = start(&define, &scope, &pipeline, checkpoint, store);
            let handle = match handle {
                Ok(h) => {
                    status.set_state(JobState::Running);
                    h
                }
                Err(e) => {
                    status.error(e.to_string());
                    scope.bind(None);
                    let _ = group.close().await;
                    return Err(e);
                }
            };
            let controller = handle.controller();
            let (stop_fetch, stop_fetch_rx) = watch::channel(false);
            let (events_tx, mut events) = mpsc::unbounded_channel();
            if let Some(owner) = plan.owner_partition() {
                // The owner partition holds no records: the fetch task only keeps
                // the membership that makes this process the one running the job.
                group.consumer().pause([(owner.0.as_str(), owner.1)]);
            }
            // A cooperative rebalance moves partitions out of and into the
            // running job at checkpoints while the others go on
            // (partition-aligned state: a partition number is a key group,
            // with the partitions of that number of every topic).
            let in_place = plan.aligned && !plan.bounded && group.incremental();
            let (resume_tx, resume_rx) = mpsc::unbounded_channel();
            let (released_tx, mut released) = mpsc::unbounded_channel();
            let (live_tx, live_rx) = mpsc::unbounded_channel();
            incarnation.feed_adopted_to(live_tx);
            let (adopted_tx, mut adopted) = mpsc::unbounded_channel();
            // Partitions being adopted (their adoption not committed yet).
            let mut adopting: BTreeSet<TopicPartition> = BTreeSet::new();
            let adopt = Adopt {
                controller: controller.clone(),
                member: member.clone(),
                changelog: changelog.clone(),
                admin: admin.clone(),
                uids: plan.uids.clone(),
                incarnation: incarnation.clone(),
                status: status.clone(),
                reset: offset_reset(&config),
                isolation: isolation(&config),
            };
            let fetcher = tokio::spawn(fetch::run(
                group,
                senders,
                partition_status,
                stop_fetch_rx,
                events_tx,
                in_place.then_some(resume_rx),
                in_place.then_some(live_rx),
            ));
            let mut stopping = false;
            let mut stop_requested = *stop_rx.borrow();
            if stop_requested {
                controller.stop();
                stopping = true;
            }
            let wait = handle.wait();
            tokio::pin!(wait);
            let outcome = loop {
                tokio::select! {
                    r = &mut wait => break Outcome::Ended(r),
                    ev = events.recv() => match ev {
                        Some(FetchEvent::AssignmentChanged(changes)) => {
                            // Revoked or lost inside a poll: the open transaction's
                            // offsets would be refused; roll back.
                            tracing::warn!(?changes, "partitions moved before a checkpoint; rolling back");
                            controller.abort();
                            stopping = true;
                        }
                        Some(FetchEvent::RebalancePending) if !stopping => {
                            tracing::info!("partitions are moving: stopping the incarnation with a final checkpoint");
                            controller.stop();
                            stopping = true;
                        }
                        Some(FetchEvent::Failed(e)) => {
                            controller.abort();
                            let _ = (&mut wait).await;
                            break Outcome::FetchFailed(e);
                        }
                        Some(FetchEvent::Assigned(added)) if !stopping && !whole_numbers(&added, &assignment, &all_partitions, true) => {
                            tracing::info!(?added, "partitions added without the same numbers of every topic: stopping the incarnation with a final checkpoint");
                            controller.stop();
                            stopping = true;
                        }
                        Some(FetchEvent::Assigned(added)) if !stopping => {
                            adopting.extend(added.iter().cloned());
                            let adopt = adopt.clone();
                            let done = adopted_tx.clone();
                            tokio::spawn(async move {
                                let r = adopt.run(&added).await;
                                let _ = done.send((added, r));
                            });
                        }
                        Some(FetchEvent::Revoked(revoked)) if !stopping && revoked.iter().any(|tp| adopting.contains(tp)) => {
                            tracing::info!(?revoked, "partitions revoked while being adopted: stopping the incarnation with a final checkpoint");
                            controller.stop();
                            stopping = true;
                        }
                        Some(FetchEvent::Revoked(revoked)) if !stopping && !whole_numbers(&revoked, &assignment, &all_partitions, false) => {
                            tracing::info!(?revoked, "partitions revoked without the same numbers of every topic: stopping the incarnation with a final checkpoint");
                            controller.stop();
                            stopping = true;
                        }
                        Some(FetchEvent::Revoked(revoked)) if !stopping => {
                            let groups = numbers(&revoked);
                            let controller = controller.clone();
                            let done = released_tx.clone();
                            tokio::spawn(async move {
                                let r = controller.release(groups).await;
                                let _ = done.send((revoked, r));
                            });
                        }
                        // Stopping: the final checkpoint commits them, and the
                        // next incarnation settles without (or with) them.
                        Some(FetchEvent::RebalancePending | FetchEvent::Revoked(_) | FetchEvent::Assigned(_)) | None => {}
                    },
                    Some((added, r)) = adopted.recv() => {
                        for tp in &added {
                            adopting.remove(tp);
                        }
                        match r {
                            Ok(done) => {
                                tracing::info!(
                                    checkpoint = done.checkpoint.0,
                                    partitions = ?added,
                                    key_groups = done.restore.key_groups,
                                    bytes_read = done.restore.bytes_read,
                                    restore_ms = done.restore.duration.as_millis() as u64,
                                    "partitions adopted at a checkpoint; the others went on"
                                );
                                assignment.extend(added.iter().cloned());
                                incarnation.claim(&numbers(&added));
                                status.retain_partitions(&assignment.iter().cloned().collect());
                                metrics::counter!("strom_partitions_adopted_total")
                                    .increment(added.len() as u64);
                                metrics::histogram!("strom_restore_seconds")
                                    .record(done.restore.duration.as_secs_f64());
                                report.adopted += u32::try_from(added.len()).unwrap_or(u32::MAX);
                                report.restores.push(done.restore);
                            }
                            Err(AdoptError::Restart(why)) => {
                                tracing::info!(partitions = ?added, why, "partitions cannot join the running incarnation: stopping it with a final checkpoint to start with them");
                                if !stopping {
                                    controller.stop();
                                    stopping = true;
                                }
                            }
                            Err(AdoptError::Failed(e)) => {
                                tracing::warn!(error = %e, partitions = ?added, "adopting partitions failed; rolling back");
                                if !stopping {
                                    controller.abort();
                                    stopping = true;
                                }
                            }
                        }
                    },
                    Some((revoked, r)) = released.recv() => match r {
                        Ok(id) => {
                            tracing::info!(
                                checkpoint = id.0,
                                partitions = ?revoked,
                                "partitions released at a checkpoint; the others go on"
                            );
                            assignment.retain(|tp| !revoked.contains(tp));
                            incarnation.unclaim(&numbers(&revoked));
                            status.retain_partitions(&assignment.iter().cloned().collect());
                            metrics::counter!("strom_partitions_released_total")
                                .increment(revoked.len() as u64);
                            report.released += u32::try_from(revoked.len()).unwrap_or(u32::MAX);
                            let _ = resume_tx.send(());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, partitions = ?revoked, "releasing partitions failed; rolling back");
                            if !stopping {
                                controller.abort();
                                stopping = true;
                            }
                        }
                    },
                    changed = stop_rx.changed(), if !stop_requested => {
                        if changed.is_err() || *stop_rx.borrow() {
                            tracing::info!("stop requested: final checkpoint");
                            stop_requested = true;
                            if !stopping {
                                controller.stop();
                                stopping = true;
                            }
                        }
                    }
                }
            };
            stop_fetch.send_replace(true);
            group = fetcher
                .await
                .map_err(|e| ConnectorError::Refused(format!("the fetch task failed: {e}")))?;
            scope.bind(None);
            let last = CheckpointId(writer_now.last_committed());
            report.last_checkpoint = last;
            match outcome {
                Outcome::Ended(Ok(result)) if !result.stopped => {
                    // Bounded input read to its end: commit what is left.
                    let offsets = incarnation.final_positions();
                    let records = incarnation
                        .take_dead_letters(None)
                        .into_iter()
                        .map(dead_letter_record)
                        .collect();
                    let id = last.next();
                    writer_now.commit(id, records, &offsets).await?;
                    report.last_checkpoint = id;
                    report.end = JobEnd::Bounded;
                    break;
                }
                Outcome::Ended(Ok(_)) => {
                    rollbacks.in_a_row = 0;
                    if stop_requested {
                        break;
                    }
                    status.set_state(JobState::Starting);
                }
                Outcome::Ended(Err(e)) => {
                    let class = e.class();
                    tracing::warn!(error = %e, ?class, "incarnation failed");
                    status.error(format!("incarnation failed: {e}"));
                    status.set_state(JobState::Starting);
                    if class == ErrorClass::Fatal {
                        let _ = writer_now.abort().await;
                        let _ = group.close().await;
                        return Err(e.into());
                    }
                    let in_a_row = rollbacks.record(last);
                    report.rollbacks += 1;
                    metrics::counter!("strom_rollbacks_total").increment(1);
                    status.sinks_aborted();
                    if in_a_row > MAX_ROLLBACKS_IN_A_ROW {
                        let _ = group.close().await;
                        return Err(ConnectorError::Refused(format!(
                            "{MAX_ROLLBACKS_IN_A_ROW} rollbacks in a row without a checkpoint; last error: {e}"
                        )));
                    }
                    writer = recover(&config, &group, writer_now, &plan).await?;
                    if stop_requested {
                        break;
                    }
                }
                Outcome::FetchFailed(e) => {
                    let class = classify(&e);
                    tracing::warn!(error = %e, ?class, "fetching failed");
                    status.error(format!("fetching failed: {e}"));
                    status.set_state(JobState::Starting);
                    status.sinks_aborted();
                    if class == ErrorClass::Fatal {
                        let _ = group.close().await;
                        return Err(ConnectorError::kafka("fetching", e));
                    }
                    rollbacks.record(last);
                    report.rollbacks += 1;
                    writer = recover(&config, &group, writer_now, &plan).await?;
                }
            }
        }
        status.set_state(match report.end {
            JobEnd::Bounded => JobState::Finished,
            JobEnd::Stopped => JobState::Stopped,
        });
        let closed = if config.leave_group_on_stop() {
            group.close_and_leave().await
        } else {
            group.close().await
        };
        if let Err(e) = closed {
            tracing::warn!(error = %e, "leaving the group failed");
        }
        if let Some(Ok(w)) = writer.map(Arc::try_unwrap) {
            if let Err(e) = w.close(Duration::from_secs(10)).await {
                tracing::warn!(error = %e, "closing the producer failed");
            }
        }
        Ok(report)
    }
}

/// What adopting partitions into a running incarnation needs.
#[derive(Clone)]
struct Adopt {
    controller: engine::JobController,
    member: kafka_wire::client::group::GroupHandle,
    changelog: Arc<Changelog>,
    admin: Admin,
    uids: BTreeMap<OperatorId, String>,
    incarnation: Arc<Incarnation>,
    status: JobStatus,
    /// Where a partition the group never committed starts (`auto.offset.reset`),
    /// `None` when it must not start without a committed offset.
    reset: Option<OffsetSpec>,
    isolation: IsolationLevel,
}

/// Partitions adopted at a checkpoint.
struct Adopted {
    checkpoint: CheckpointId,
    restore: Restore,
}

/// Why partitions did not join the running incarnation.
enum AdoptError {
    /// They cannot (an operator that cannot load state or hold an adopted
    /// event-time partition back, no committed offset under
    /// `auto.offset.reset=none`, an adopting checkpoint
    /// that failed): restart the incarnation with them.
    Restart(String),
    /// Reading their state or the adopting checkpoint failed: roll back.
    Failed(ConnectorError),
}

impl Adopt {
    /// Reads the partitions' committed offsets and state, hands their feeds to
    /// the incarnation and adopts their key groups at the next checkpoint.
    async fn run(&self, partitions: &[TopicPartition]) -> Result<Adopted, AdoptError> {
        let committed = self
            .member
            .committed(partitions)
            .await
            .map_err(|e| AdoptError::Failed(ConnectorError::kafka("committed offsets", e)))?;
        let mut starts = BTreeMap::new();
        let mut never_committed: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            match committed.get(tp) {
                Some(o) if *o >= 0 => {
                    starts.insert(tp.clone(), *o);
                }
                _ => never_committed.entry(&tp.0).or_default().push(tp.1),
            }
        }
        // A partition no checkpoint has committed yet (a process that joined
        // with none, then was given fresh ones) starts where a new incarnation
        // would start it, per `auto.offset.reset`.
        for (topic, parts) in never_committed {
            let Some(spec) = self.reset else {
                return Err(AdoptError::Restart(format!(
                    "{topic} {parts:?} have no committed offset and auto.offset.reset is none"
                )));
            };
            let listed = self
                .admin
                .list_offsets(topic, &parts, spec, self.isolation)
                .await
                .map_err(|e| {
                    AdoptError::Failed(ConnectorError::kafka(
                        format!("reset offsets of {topic}"),
                        e,
                    ))
                })?;
            for (p, o) in listed {
                starts.insert((topic.to_string(), p), o.offset);
            }
        }
        let groups = numbers(partitions);
        let (state, took, bytes_read) = self
            .changelog
            .read_adopted(&self.admin, &self.uids, &groups)
            .await
            .map_err(AdoptError::Failed)?;
        let key_groups = state.operators.values().map(|s| s.key_groups.len()).sum();
        let feeds = starts
            .into_iter()
            .map(|(tp, start)| {
                let (feed, tx) =
                    PartitionFeed::new(&self.status, &tp, (start, None), FEED_CAPACITY);
                let live = LiveFeed {
                    tp,
                    start,
                    tx,
                    status: feed.status.clone(),
                };
                (feed, live)
            })
            .collect();
        self.incarnation.add_feeds(feeds);
        let checkpoint = match self.controller.adopt(groups, state).await {
            Ok(id) => id,
            Err(e @ engine::EngineError::Unsupported(_)) => {
                return Err(AdoptError::Restart(e.to_string()));
            }
            Err(e) if e.class() == ErrorClass::Fatal => {
                return Err(AdoptError::Failed(e.into()));
            }
            // The adopting checkpoint failed (an operator that cannot load the
            // state fails it, too): the rollback restarts with the partitions.
            Err(e) => return Err(AdoptError::Restart(e.to_string())),
        };
        Ok(Adopted {
            checkpoint,
            restore: Restore {
                duration: took,
                bytes_read,
                key_groups,
            },
        })
    }
}

/// Defines the pipeline once to learn what it reads and writes.
fn probe<F>(define: &F, scope: &KafkaScope, config: &PipelineConfig) -> Result<Plan, ConnectorError>
where
    F: Fn(&Pipeline, &KafkaScope) -> engine::Result<()>,
{
    scope.clear_specs();
    let p = Pipeline::with_config(config.clone());
    define(&p, scope)?;
    let sources = scope.source_specs();
    let sinks = scope.sink_specs();
    let mut topics: Vec<String> = sources.iter().flat_map(|s| s.topics.clone()).collect();
    topics.sort();
    topics.dedup();
    if topics.is_empty() && sinks.is_empty() {
        return Err(ConnectorError::Config {
            key: "sources".into(),
            message: "the pipeline neither reads nor writes a Kafka topic (KafkaScope::source().topics([...]), KafkaScope::sink(..))"
                .into(),
        });
    }
    let bounded = sources.iter().all(|s| s.bounded);
    if !bounded && sources.iter().any(|s| s.bounded) {
        return Err(ConnectorError::Config {
            key: "sources".into(),
            message: "either every Kafka source of a job is bounded or none is".into(),
        });
    }
    let mut repartition_topics: Vec<String> = sources
        .iter()
        .filter(|s| s.repartition)
        .flat_map(|s| s.topics.clone())
        .collect();
    repartition_topics.sort();
    repartition_topics.dedup();
    if bounded && !repartition_topics.is_empty() {
        return Err(ConnectorError::Config {
            key: "sources".into(),
            message: format!(
                "a bounded job cannot key through a repartition topic ({}): use key_by in one process",
                repartition_topics.join(", ")
            ),
        });
    }
    let mut sink_topics: Vec<String> = sinks.iter().map(|s| s.topic.clone()).collect();
    for s in &sources {
        if let super::BadRecordPolicy::DeadLetter(t) = &s.bad_records {
            sink_topics.push(t.clone());
        }
    }
    sink_topics.sort();
    sink_topics.dedup();
    // Without Kafka input there are no partitions to keep state with: the one
    // process owns every key group.
    let aligned = p.is_partition_aligned() && !topics.is_empty();
    Ok(Plan {
        topics,
        repartition_topics,
        sink_topics,
        bounded,
        exactly_once: sinks.iter().any(|s| s.exactly_once),
        aligned,
        uids: p.uids()?,
        owner: None,
    })
}

/// Defines and starts one incarnation's pipeline.
fn start<F>(
    define: &F,
    scope: &KafkaScope,
    config: &PipelineConfig,
    checkpoint: Checkpoint,
    store: Arc<KafkaCheckpointStore>,
) -> Result<JobHandle, ConnectorError>
where
    F: Fn(&Pipeline, &KafkaScope) -> engine::Result<()>,
{
    scope.clear_specs();
    let p = Pipeline::with_config(config.clone());
    define(&p, scope)?;
    p.restore_from(checkpoint);
    p.checkpoint_store(store);
    Ok(p.start()?)
}

/// State keyed by partition number over several topics needs every partition
/// number a process owns to be its own in every topic that has it.
fn check_co_partitioned(
    assignment: &[TopicPartition],
    all: &BTreeSet<TopicPartition>,
) -> Result<(), ConnectorError> {
    let missing: Vec<String> = splitting(assignment, &[], all, true)
        .into_iter()
        .map(|(t, p)| format!("{t}-{p}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ConnectorError::Refused(format!(
        "the group assigned this process some partition numbers without the same partitions of every topic (missing {}): keyed state spans topics, which then need equal partition counts and partition.assignment.strategy=cooperative-copartitioned or range (group.remote.assignor=range with group.protocol=consumer), the job's default",
        missing.join(", ")
    )))
}

/// The partition numbers of `partitions`: the key groups of partition-aligned state.
fn numbers(partitions: &[TopicPartition]) -> BTreeSet<u16> {
    partitions
        .iter()
        .filter_map(|(_, p)| u16::try_from(*p).ok())
        .collect()
}

/// Whether `changed` (partitions revoked from, or with `adding` assigned to, a
/// process holding `held`) moves whole partition numbers, each a key group
/// with that number's partition of every topic in `all`: revoked, every held
/// partition of the number goes; assigned, the process then holds all of it.
fn whole_numbers(
    changed: &[TopicPartition],
    held: &[TopicPartition],
    all: &BTreeSet<TopicPartition>,
    adding: bool,
) -> bool {
    splitting(changed, held, all, adding).is_empty()
}

/// The partitions of `all` that keep `changed` from moving whole partition
/// numbers (see [`whole_numbers`]).
fn splitting<'a>(
    changed: &[TopicPartition],
    held: &[TopicPartition],
    all: &'a BTreeSet<TopicPartition>,
    adding: bool,
) -> Vec<&'a TopicPartition> {
    let numbers: BTreeSet<i32> = changed.iter().map(|(_, p)| *p).collect();
    all.iter()
        .filter(|tp| numbers.contains(&tp.1))
        .filter(|tp| !changed.contains(tp) && adding != held.contains(tp))
        .collect()
}

/// A pipeline whose state is keyed by hash runs as one process: under
/// `group.protocol=consumer` the broker would split its input with a second
/// process, so a process refuses to join a group another member holds
/// partitions of (ConsumerGroupDescribe), before the broker can take any from it.
async fn refuse_second_process(admin: &Admin, config: &KafkaConfig) -> Result<(), ConnectorError> {
    let described = match admin.describe_group(config.group_id()).await {
        Ok(d) => d,
        Err(e) if e.code() == Some(kafka_wire::ErrorCode::GroupIdNotFound) => return Ok(()),
        Err(e) => return Err(ConnectorError::kafka("describing the group", e)),
    };
    let me = config.instance_name();
    let others: Vec<String> = described
        .members
        .iter()
        .filter(|m| m.instance_id.as_deref() != Some(me.as_str()))
        .map(|m| m.instance_id.clone().unwrap_or_else(|| m.member_id.clone()))
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(ConnectorError::Refused(format!(
        "this pipeline keys its state by something other than the input partitions (key_by), so it runs as one process, and group {} already has {} running; stop it first, or use key_by_source_partition to share partitions",
        config.group_id(),
        others.join(", ")
    )))
}

async fn join_group(config: &KafkaConfig, plan: &Plan) -> Result<GroupConsumer, ConnectorError> {
    let mut overrides = vec![
        ("group.id", config.group_id().to_string()),
        ("group.instance.id", config.instance_name()),
        ("enable.auto.commit", "false".to_string()),
    ];
    let group_protocol_consumer = config.get("group.protocol") == Some("consumer");
    // State keyed by partition number over several topics (input and
    // repartition topics, or joined inputs) needs each process to own the same
    // partition numbers of every topic: `cooperative-copartitioned`, and the
    // broker's `range` under KIP-848, give that (incrementally) to members
    // subscribed to the same topics of equal partition counts.
    let co_partitioned = plan.aligned && plan.topics.len() > 1;
    let assignor = if plan.single() {
        // One process runs the pipeline; the others stand by.
        "exclusive"
    } else if co_partitioned {
        "cooperative-copartitioned"
    } else {
        "cooperative-sticky"
    };
    if co_partitioned && group_protocol_consumer && config.get("group.remote.assignor").is_none() {
        overrides.push(("group.remote.assignor", "range".to_string()));
    }
    let defaults = [
        ("isolation.level", "read_committed"),
        ("partition.assignment.strategy", assignor),
        ("session.timeout.ms", "10000"),
        // A classic member learns of a rebalance from a heartbeat's answer, and
        // partitions that move wait for every member to rejoin twice (the
        // cooperative revoke, then the assign): at 1000 ms this waited about
        // 0.8 s of the 1.4 s a moved partition had no output after a join.
        ("heartbeat.interval.ms", "250"),
        ("auto.offset.reset", "earliest"),
        // A partition's queue holds FEED_CAPACITY fetches of it, each decoded
        // to about three times its size on the wire: 1/16 of the Java default
        // per fetch takes a pass-through's peak RSS from 221 MB (1 MiB) and
        // 109 MB (256 KiB) to 57 MB at the same throughput, and 40 MB with two
        // fetches queued instead of four (bench/engines, 1,000,000 records of
        // about 40 bytes).
        ("max.partition.fetch.bytes", "65536"),
    ];
    for (k, v) in defaults {
        let per_member = matches!(
            k,
            "partition.assignment.strategy" | "session.timeout.ms" | "heartbeat.interval.ms"
        );
        if config.get(k).is_none() && !(group_protocol_consumer && per_member) {
            overrides.push((k, v.to_string()));
        }
    }
    let mut group = GroupConsumer::new(config.consumer_config(&overrides)?)
        .await
        .map_err(|e| ConnectorError::kafka("creating the group consumer", e))?;
    group.subscribe(plan.group_topics());
    Ok(group)
}

async fn make_writer(
    config: &KafkaConfig,
    group: &GroupConsumer,
    plan: &Plan,
) -> Result<Writer, ConnectorError> {
    let member = Some(group.handle());
    let exactly_once = plan.exactly_once;
    if exactly_once {
        // One process at a time runs a one-process pipeline, so its processes
        // share one transactional id: the process taking over fences the one
        // before at once and aborts its open transaction, rather than waiting
        // out transaction.timeout.ms for read_committed output to move on.
        let transactional_id = if plan.single() {
            config.application_id().to_string()
        } else {
            config.instance_name()
        };
        let mut overrides = vec![("transactional.id", transactional_id)];
        if config.get("transaction.timeout.ms").is_none() {
            overrides.push(("transaction.timeout.ms", "10000".to_string()));
        }
        if config.get("delivery.timeout.ms").is_none() {
            overrides.push(("delivery.timeout.ms", "9000".to_string()));
            overrides.push(("request.timeout.ms", "5000".to_string()));
        }
        let producer = TransactionalProducer::new(config.producer_config(&overrides)?)
            .await
            .map_err(|e| ConnectorError::kafka("creating the transactional producer", e))?;
        Ok(Writer::transactional(
            TransactSession::new(producer, member),
            CheckpointId(0),
        ))
    } else {
        let producer =
            Producer::new(config.producer_config(&[("enable.idempotence", "true".into())])?)
                .await
                .map_err(|e| ConnectorError::kafka("creating the producer", e))?;
        Ok(Writer::idempotent(producer, member))
    }
}

/// After a failed incarnation: aborts the open transaction; a producer that can
/// no longer abort (fenced, fatal) is replaced, unless this process lost its
/// group membership to another process with the same instance name. A
/// one-process pipeline's is dropped instead (`None`): another process may own
/// the pipeline now, and a new producer with the shared transactional id would
/// fence it; the next one is made once this process owns the pipeline again.
async fn recover(
    config: &KafkaConfig,
    group: &GroupConsumer,
    writer: Arc<Writer>,
    plan: &Plan,
) -> Result<Option<Arc<Writer>>, ConnectorError> {
    match writer.abort().await {
        Ok(()) => Ok(Some(writer)),
        Err(e) => {
            tracing::warn!(error = %e, "the producer cannot abort; replacing it");
            if let Err(m) = group.handle().check_membership().await {
                if m.code() == Some(kafka_wire::ErrorCode::FencedInstanceId) {
                    return Err(ConnectorError::Refused(format!(
                        "another process took over instance {}: {m}",
                        config.instance_name()
                    )));
                }
            }
            drop(writer);
            if plan.single() {
                return Ok(None);
            }
            Ok(Some(Arc::new(make_writer(config, group, plan).await?)))
        }
    }
}

/// Polls until the group has given this member a settled assignment; `None` when
/// a stop was requested first (`log_quietly`: logged at debug level, for a caller
/// that asks again and again). A job that runs as one process (keyed by hash,
/// or reading no Kafka topic) waits, as [`JobState::Standby`], while it is
/// assigned nothing.
async fn settle(
    group: &mut GroupConsumer,
    plan: &Plan,
    status: &JobStatus,
    stop: &mut watch::Receiver<bool>,
    log_quietly: bool,
) -> Result<Option<Vec<TopicPartition>>, ConnectorError> {
    let mut quiet = 0;
    let mut standing_by = false;
    let started = Instant::now();
    loop {
        if *stop.borrow() {
            if standing_by {
                metrics::gauge!("strom_standby").set(0.0);
            }
            return Ok(None);
        }
        match group.poll_batches_for(Duration::from_millis(100)).await {
            Ok(_) => {}
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "joining the group: retrying");
            }
            Err(e) => return Err(ConnectorError::kafka("joining the group", e)),
        }
        let changes = group.take_events();
        if !changes.is_empty() {
            tracing::info!(?changes, "assignment");
            quiet = 0;
            continue;
        }
        let handle = group.handle();
        if handle.generation() >= 0 && !group.rebalance_pending() {
            quiet += 1;
            if quiet < 2 {
                continue;
            }
            let mut owned = group.assignment().to_vec();
            owned.sort();
            if plan.single() && owned.is_empty() {
                if !standing_by {
                    standing_by = true;
                    tracing::info!(
                        group = handle.group_id(),
                        "another process runs this pipeline: standing by to take over"
                    );
                    status.set_state(JobState::Standby);
                    metrics::gauge!("strom_standby").set(1.0);
                }
                continue;
            }
            if standing_by {
                status.set_state(JobState::Starting);
                metrics::gauge!("strom_standby").set(0.0);
                tracing::info!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "taking over the pipeline"
                );
            }
            let waited_ms = started.elapsed().as_millis() as u64;
            if log_quietly {
                tracing::debug!(partitions = ?owned, waited_ms, "assignment settled");
            } else {
                tracing::info!(partitions = ?owned, waited_ms, "assignment settled");
            }
            return Ok(Some(owned));
        }
        quiet = 0;
    }
}

/// The job's isolation level (`read_committed` unless set otherwise).
fn isolation(config: &KafkaConfig) -> IsolationLevel {
    match config.get("isolation.level") {
        Some("read_uncommitted") => IsolationLevel::ReadUncommitted,
        _ => IsolationLevel::ReadCommitted,
    }
}

/// Where a partition without a committed offset starts: the job's
/// `auto.offset.reset` (`earliest` unless set), `None` for `none`.
fn offset_reset(config: &KafkaConfig) -> Option<OffsetSpec> {
    match config.get("auto.offset.reset") {
        Some("latest") => Some(OffsetSpec::Latest),
        Some("none") => None,
        _ => Some(OffsetSpec::Earliest),
    }
}

/// Where each partition ends now (the last stable offset under read_committed).
async fn end_offsets(
    admin: &Admin,
    assignment: &[TopicPartition],
    config: &KafkaConfig,
) -> Result<BTreeMap<TopicPartition, i64>, ConnectorError> {
    let isolation = isolation(config);
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in assignment {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (t, parts) in by_topic {
        let listed = admin
            .list_offsets(t, &parts, OffsetSpec::Latest, isolation)
            .await
            .map_err(|e| ConnectorError::kafka(format!("end offsets of {t}"), e))?;
        for (p, o) in listed {
            out.insert((t.to_string(), p), o.offset);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_checkpoint_ends_a_run_of_rollbacks() {
        let mut run = RollbackRun::default();
        assert_eq!(run.record(CheckpointId(0)), 1);
        assert_eq!(run.record(CheckpointId(0)), 2);
        // Checkpoint 3 committed since: the next rollback starts a new run.
        assert_eq!(run.record(CheckpointId(3)), 1);
        assert_eq!(run.record(CheckpointId(3)), 2);
        assert_eq!(run.record(CheckpointId(4)), 1);
    }

    #[test]
    fn only_whole_partition_numbers_move_in_place() {
        let tp = |t: &str, p: i32| (t.to_string(), p);
        let all: BTreeSet<TopicPartition> =
            (0..4).flat_map(|p| [tp("in", p), tp("r", p)]).collect();
        let held = vec![tp("in", 0), tp("r", 0), tp("in", 1), tp("r", 1)];
        // Revoking number 1 of both topics moves it whole; one topic's alone splits it.
        assert!(whole_numbers(
            &[tp("in", 1), tp("r", 1)],
            &held,
            &all,
            false
        ));
        assert!(!whole_numbers(&[tp("in", 1)], &held, &all, false));
        // Assigned: number 2 whole, or the rest of a number held in part.
        assert!(whole_numbers(&[tp("in", 2), tp("r", 2)], &held, &all, true));
        assert!(!whole_numbers(&[tp("r", 3)], &held, &all, true));
        let part = vec![tp("in", 3)];
        assert!(whole_numbers(&[tp("r", 3)], &part, &all, true));
        // One topic: every partition is a whole number.
        let one: BTreeSet<TopicPartition> = (0..4).map(|p| tp("in", p)).collect();
        assert!(whole_numbers(&[tp("in", 3)], &[], &one, true));
        assert_eq!(numbers(&held), BTreeSet::from([0, 1]));
    }
}
