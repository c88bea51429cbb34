//! Consumer groups (classic protocol) against the real broker: members joining,
//! leaving and being killed, partition ownership after every rebalance, committed
//! offsets, static membership.
#![allow(clippy::unwrap_used)]

mod group_members;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use group_members::*;
use integration_tests::{random_topic, require_broker};
use kafka_wire::ErrorCode;
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ConsumerConfig, ProducerConfig};
use kafka_wire::client::group::{GroupConsumer, RebalanceEvent};
use kafka_wire::client::{Admin, Producer, ProducerRecord};

/// Upper bound for any wait on the broker in these tests.
const DEADLINE: Duration = Duration::from_secs(30);

/// The members' shared reports, with this file's bounds (a member runs at most
/// 90 s).
fn new_shared() -> Arc<Shared> {
    Shared::new(DEADLINE, Duration::from_secs(90))
}

fn config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("group.id".to_string(), group.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ("session.timeout.ms".to_string(), "6000".to_string()),
        ("heartbeat.interval.ms".to_string(), "100".to_string()),
        ("max.poll.interval.ms".to_string(), "10000".to_string()),
        (
            "partition.assignment.strategy".to_string(),
            "range".to_string(),
        ),
    ]);
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    ConsumerConfig::from_properties(&props).unwrap()
}

async fn produce(bootstrap: &str, topic: &str, values: &[String]) {
    let producer = Producer::new(ProducerConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let mut futures = Vec::new();
    for v in values {
        futures.push(
            producer
                .send(ProducerRecord::new(topic, v.clone()).key(v.clone()))
                .await
                .unwrap(),
        );
    }
    for f in futures {
        f.await.unwrap();
    }
}

/// Produces `values` to partitions 0, 1, .., `partitions - 1` in turn, so every
/// partition gets some.
async fn produce_to_every_partition(
    bootstrap: &str,
    topic: &str,
    values: &[String],
    partitions: i32,
) {
    let producer = Producer::new(ProducerConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let mut futures = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let record = ProducerRecord::new(topic, v.clone()).partition(i as i32 % partitions);
        futures.push(producer.send(record).await.unwrap());
    }
    for f in futures {
        f.await.unwrap();
    }
}

/// A member in a child process (src/bin/group_member.rs), so that it can be
/// killed with SIGKILL: it sends no LeaveGroup and commits nothing more, and the
/// coordinator only notices when its session times out. Its stdout feeds
/// `Shared` under its name, as an in-process member's reports do. Killed on drop,
/// so a failing test leaves no process behind.
struct ChildMember {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How long a child member runs at most (it exits on its own after this).
const CHILD_RUN_MS: &str = "120000";
/// A child member stops committing once it consumed a value starting with this.
const HOLD_PREFIX: &str = "hold-";

/// Starts a group_member child in `group` on `topic` with the config of
/// [`config`] and `partition.assignment.strategy=strategy`.
fn start_child_member(
    name: &str,
    bootstrap: &str,
    group: &str,
    topic: &str,
    strategy: &str,
    shared: Arc<Shared>,
) -> ChildMember {
    let mut child = Command::new(env!("CARGO_BIN_EXE_group_member"))
        .args([bootstrap, group, topic, strategy, CHILD_RUN_MS, HOLD_PREFIX])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (name, topic) = (name.to_string(), topic.to_string());
    // A thread, not a task: reading the pipe blocks. It ends at EOF, when the
    // child is gone.
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(value) = line.strip_prefix("consumed ") {
                shared.consumed.lock().unwrap().push(value.to_string());
            } else if let Some(report) = line.strip_prefix("report ") {
                let report = parse_report(report, &topic);
                shared.reports.lock().unwrap().insert(name.clone(), report);
            }
        }
        // Like a stopped in-process member, a dead one reports nothing. (The
        // coordinator still counts it until its session times out.)
        shared.reports.lock().unwrap().remove(&name);
    });
    ChildMember {
        child,
        reader: Some(reader),
    }
}

/// `<generation> <pending 0|1> <p,p,...|->` as printed by group_member.
fn parse_report(line: &str, topic: &str) -> Report {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [generation, pending, partitions] = fields[..] else {
        panic!("bad report line from group_member: {line}");
    };
    let partitions = match partitions {
        "-" => Vec::new(),
        list => list
            .split(',')
            .map(|p| (topic.to_string(), p.parse().unwrap()))
            .collect(),
    };
    (generation.parse().unwrap(), partitions, pending == "1")
}

impl ChildMember {
    /// Sends SIGKILL (what `Child::kill` does on Unix), waits for the process and
    /// for its last lines to be read. Returns when the signal was sent.
    fn kill(&mut self) -> Instant {
        self.child.kill().unwrap();
        let at = Instant::now();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        at
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the group's committed offsets on `topic` are `expected`
/// (partition -> offset, for every partition).
async fn wait_committed(config: ConsumerConfig, topic: &str, expected: &BTreeMap<i32, i64>) {
    let checker = GroupConsumer::new(config).await.unwrap();
    let partitions = expected.len() as i32;
    let start = Instant::now();
    loop {
        let committed = committed_offsets(&checker, topic, partitions).await;
        if &committed == expected {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "committed {committed:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    checker.close().await.unwrap();
}

#[tokio::test]
async fn partitions_have_one_owner_through_leaves_and_joins_and_offsets_resume() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 6)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let first = values("a", 60);
    produce(&bootstrap, &topic, &first).await;

    let shared = new_shared();
    let cfg = || config(&bootstrap, &group, &[]);
    let m1 = start_member("m1", cfg(), &topic, shared.clone());
    let m2 = start_member("m2", cfg(), &topic, shared.clone());
    let m3 = start_member("m3", cfg(), &topic, shared.clone());
    let g1 = wait_balanced(&shared, &["m1", "m2", "m3"], &topic, 6, -1).await;
    wait_consumed(&shared, &first.iter().cloned().collect()).await;

    // One leaves: the other two take over its partitions.
    let m2_events = m2.stop().await;
    assert!(matches!(
        m2_events.first(),
        Some(RebalanceEvent::Assigned(_))
    ));
    let g2 = wait_balanced(&shared, &["m1", "m3"], &topic, 6, g1).await;

    // One joins: three owners again.
    let second = values("b", 60);
    produce(&bootstrap, &topic, &second).await;
    let m4 = start_member("m4", cfg(), &topic, shared.clone());
    let _g3 = wait_balanced(&shared, &["m1", "m3", "m4"], &topic, 6, g2).await;
    wait_consumed(&shared, &second.iter().cloned().collect()).await;

    let mut events = Vec::new();
    for m in [m1, m3, m4] {
        events.extend(m.stop().await);
    }
    // Orderly rebalances revoke; nothing was lost.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RebalanceEvent::Revoked(_)))
    );
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));

    // Every record was consumed; the committed offsets are the end offsets.
    let consumed: BTreeSet<String> = shared.consumed.lock().unwrap().iter().cloned().collect();
    let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(consumed, all);
    let mut checker = GroupConsumer::new(cfg()).await.unwrap();
    assert_eq!(
        committed_offsets(&checker, &topic, 6).await,
        end_offsets(&c, &topic, 6).await
    );

    // A new member resumes at the committed offsets: it sees only new records.
    checker.subscribe([topic.clone()]);
    let third = values("c", 12);
    produce(&bootstrap, &topic, &third).await;
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen.len() < third.len() && start.elapsed() < DEADLINE {
        for r in checker.poll_for(Duration::from_millis(200)).await.unwrap() {
            seen.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen, third.iter().cloned().collect());
    assert_eq!(checker.assignment().len(), 6);
    checker.close().await.unwrap();
}

#[tokio::test]
async fn round_robin_spreads_partitions_over_members() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-rr");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 5)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = || {
        config(
            &bootstrap,
            &group,
            &[("partition.assignment.strategy", "roundrobin")],
        )
    };
    let m1 = start_member("m1", cfg(), &topic, shared.clone());
    let m2 = start_member("m2", cfg(), &topic, shared.clone());
    wait_balanced(&shared, &["m1", "m2"], &topic, 5, -1).await;
    let sizes: BTreeSet<usize> = shared
        .reports
        .lock()
        .unwrap()
        .values()
        .map(|r| r.1.len())
        .collect();
    assert_eq!(sizes, BTreeSet::from([2, 3]));
    m1.stop().await;
    m2.stop().await;
}

#[tokio::test]
async fn a_static_member_restarting_keeps_its_partitions_without_a_rebalance() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-static");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 4)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = |instance: &str| config(&bootstrap, &group, &[("group.instance.id", instance)]);
    let a = start_member("a", cfg("instance-a"), &topic, shared.clone());
    let b = start_member("b", cfg("instance-b"), &topic, shared.clone());
    let generation = wait_balanced(&shared, &["a", "b"], &topic, 4, -1).await;
    let before = shared.reports.lock().unwrap()["a"].1.clone();

    // Static members send no LeaveGroup on close; the restart takes the old place.
    a.stop().await;
    let mut again = GroupConsumer::new(cfg("instance-a")).await.unwrap();
    again.subscribe([topic.clone()]);
    let start = Instant::now();
    while again.assignment().is_empty() && start.elapsed() < DEADLINE {
        again.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(again.assignment(), &before[..]);
    assert_eq!(
        again.generation(),
        generation,
        "no rebalance for a static rejoin"
    );
    assert_eq!(shared.reports.lock().unwrap()["b"].0, generation);
    b.stop().await;
    again.close().await.unwrap();
}

#[tokio::test]
async fn a_static_member_that_closes_and_leaves_hands_its_partitions_over_at_once() {
    let bootstrap = require_broker!();
    // A session far longer than the test's 10 s wait: only a LeaveGroup can
    // move the leaving member's partitions in time.
    static_member_leaves_at_once(&bootstrap, "group-static-leave", |group, extra| {
        let mut extra = extra.to_vec();
        extra.push(("session.timeout.ms", "30000"));
        config(&bootstrap, group, &extra)
    })
    .await;
}

/// A poll while every owned partition is paused waits out its timeout, as the
/// Java consumer's does, rather than returning at once: a loop that polls to keep
/// its membership would otherwise spin and starve the other tasks.
#[tokio::test]
async fn a_poll_with_every_partition_paused_waits_its_timeout() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("paused-poll");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .unwrap();
    let mut member = GroupConsumer::new(config(&bootstrap, &random_topic("paused-poll-g"), &[]))
        .await
        .unwrap();
    member.subscribe([topic.clone()]);
    let started = Instant::now();
    while member.assignment().is_empty() {
        assert!(started.elapsed() < DEADLINE, "no assignment");
        member
            .poll_batches_for(Duration::from_millis(100))
            .await
            .unwrap();
    }
    member.consumer().pause([(topic.as_str(), 0)]);
    let polls = 5;
    let started = Instant::now();
    for _ in 0..polls {
        let got = member
            .poll_batches_for(Duration::from_millis(100))
            .await
            .unwrap();
        assert!(got.is_empty());
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100 * polls - 20),
        "{polls} polls of 100 ms with everything paused took {took:?}"
    );
    member.close().await.unwrap();
}

#[tokio::test]
async fn partitions_added_to_a_subscribed_topic_get_assigned() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-grow");
    let admin = Admin::new(c.clone());
    admin
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = || config(&bootstrap, &group, &[("metadata.max.age.ms", "500")]);
    let m1 = start_member("m1", cfg(), &topic, shared.clone());
    let m2 = start_member("m2", cfg(), &topic, shared.clone());
    let generation = wait_balanced(&shared, &["m1", "m2"], &topic, 2, -1).await;
    admin.create_partitions(&topic, 5).await.unwrap();
    wait_balanced(&shared, &["m1", "m2"], &topic, 5, generation).await;
    m1.stop().await;
    m2.stop().await;
}

#[tokio::test]
async fn heartbeat_now_fails_once_a_rebalance_begins_and_succeeds_after_the_rejoin() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-hb");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let mut first = GroupConsumer::new(config(&bootstrap, &group, &[]))
        .await
        .unwrap();
    first.subscribe([topic.clone()]);
    let start = Instant::now();
    while first.assignment().len() != 2 {
        assert!(
            start.elapsed() < DEADLINE,
            "the first member never got both partitions"
        );
        first.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    first.heartbeat_now().await.unwrap();

    // A second member joins; the first does not poll, so it is still in the old
    // generation when its next heartbeat hears of the rebalance.
    let shared = new_shared();
    let second = start_member(
        "second",
        config(&bootstrap, &group, &[]),
        &topic,
        shared.clone(),
    );
    let start = Instant::now();
    let err = loop {
        assert!(
            start.elapsed() < DEADLINE,
            "heartbeat_now never saw the rebalance"
        );
        match first.heartbeat_now().await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some(ErrorCode::RebalanceInProgress), "{err}");

    // After polling (the rejoin) the member is settled again.
    let start = Instant::now();
    while first.rebalance_pending() || first.assignment().len() != 1 {
        assert!(
            start.elapsed() < DEADLINE,
            "the first member never rejoined"
        );
        first.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    first.heartbeat_now().await.unwrap();
    first.close().await.unwrap();
    second.stop().await;
}

#[tokio::test]
async fn a_second_member_with_the_same_instance_id_fences_the_first() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-fenced");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let cfg = || config(&bootstrap, &group, &[("group.instance.id", "same")]);
    let mut first = GroupConsumer::new(cfg()).await.unwrap();
    first.subscribe([topic.clone()]);
    let start = Instant::now();
    while first.assignment().is_empty() && start.elapsed() < DEADLINE {
        first.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    let mut second = GroupConsumer::new(cfg()).await.unwrap();
    second.subscribe([topic.clone()]);
    while second.assignment().is_empty() && start.elapsed() < DEADLINE {
        second.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(second.assignment().len(), 2);
    // The first one learns at its next heartbeat or commit that it was replaced.
    let mut fenced = None;
    while fenced.is_none() && start.elapsed() < DEADLINE {
        match first.poll_for(Duration::from_millis(100)).await {
            Ok(_) => {}
            Err(e) => fenced = Some(e),
        }
    }
    assert_eq!(
        fenced.unwrap().code(),
        Some(kafka_wire::ErrorCode::FencedInstanceId)
    );
    second.close().await.unwrap();
}

#[tokio::test]
async fn a_member_that_stops_polling_leaves_and_its_partitions_move() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-slow");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 4)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = || config(&bootstrap, &group, &[("max.poll.interval.ms", "1500")]);
    let busy = start_member("busy", cfg(), &topic, shared.clone());
    let mut slow = GroupConsumer::new(cfg()).await.unwrap();
    slow.subscribe([topic.clone()]);
    let start = Instant::now();
    while (slow.assignment().len() != 2 || slow.rebalance_pending()) && start.elapsed() < DEADLINE {
        slow.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(slow.assignment().len(), 2);
    slow.take_events();
    // Stop polling: the heartbeat task leaves, and "busy" gets every partition.
    let generation = slow.generation();
    wait_balanced(&shared, &["busy"], &topic, 4, generation).await;
    // The next poll reports the partitions lost and joins again.
    while (slow.assignment().is_empty() || slow.rebalance_pending()) && start.elapsed() < DEADLINE {
        slow.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    let events = slow.take_events();
    assert!(
        matches!(events.first(), Some(RebalanceEvent::Lost(p)) if p.len() == 2),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(RebalanceEvent::Assigned(_))),
        "{events:?}"
    );
    slow.close().await.unwrap();
    busy.stop().await;
}

/// Work run through `GroupHandle::while_polling` (a state restore) may take
/// longer than `max.poll.interval.ms` without the member leaving, and gives way
/// as soon as another member's join starts a rebalance.
#[tokio::test]
async fn work_between_polls_keeps_the_membership_and_yields_to_a_rebalance() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-work");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 4)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let cfg = || config(&bootstrap, &group, &[("max.poll.interval.ms", "1500")]);
    let mut worker = GroupConsumer::new(cfg()).await.unwrap();
    worker.subscribe([topic.clone()]);
    let start = Instant::now();
    while (worker.assignment().len() != 4 || worker.rebalance_pending())
        && start.elapsed() < DEADLINE
    {
        worker.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(worker.assignment().len(), 4);
    worker.take_events();
    let generation = worker.generation();

    // Alone in the group: work twice as long as max.poll.interval.ms finishes,
    // and the member still holds its partitions in the same generation.
    let member = worker.handle();
    let done = member
        .while_polling(tokio::time::sleep(Duration::from_secs(3)))
        .await;
    assert_eq!(done, Some(()));
    worker.poll_for(Duration::from_millis(100)).await.unwrap();
    assert_eq!(worker.generation(), generation);
    assert_eq!(worker.assignment().len(), 4);
    assert!(worker.take_events().is_empty());

    // A second member joins: the work is dropped long before it would end.
    let shared = new_shared();
    let second = start_member("second", cfg(), &topic, shared.clone());
    let started = Instant::now();
    let done = member
        .while_polling(tokio::time::sleep(Duration::from_secs(60)))
        .await;
    assert_eq!(done, None);
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    while (worker.assignment().len() != 2 || worker.rebalance_pending())
        && start.elapsed() < 2 * DEADLINE
    {
        worker.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(worker.assignment().len(), 2);
    let events = worker.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))),
        "{events:?}"
    );
    worker.close().await.unwrap();
    second.stop().await;
}

/// Samples every member's reported partitions until stopped: never two owners at
/// once. Sound for cooperative rebalancing only: a member reports the partitions
/// it gave up in the first round when that poll returns, before its next poll
/// joins the second round that hands them on. With eager rebalancing a member's
/// report stays stale while it waits in JoinGroup, and others may already report
/// its old partitions: [`OwnerWatcher::start_with_eager`] skips those reports.
struct OwnerWatcher {
    watching: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<usize>,
}

impl OwnerWatcher {
    fn start(shared: Arc<Shared>) -> OwnerWatcher {
        Self::start_with_eager(shared, &[])
    }

    /// As [`OwnerWatcher::start`], in a group where the members named `eager`
    /// rebalance eagerly: one whose report is of an older generation than
    /// another's gave its partitions up before it joined the newer one (the
    /// generation forms only once it has), and is skipped.
    fn start_with_eager(shared: Arc<Shared>, eager: &[&str]) -> OwnerWatcher {
        let eager: BTreeSet<String> = eager.iter().map(|n| n.to_string()).collect();
        let watching = Arc::new(AtomicBool::new(true));
        let flag = watching.clone();
        let task = tokio::spawn(async move {
            let mut samples = 0;
            while flag.load(Ordering::Acquire) {
                let reports = shared.reports.lock().unwrap().clone();
                let newest = reports.values().map(|r| r.0).max().unwrap_or(-1);
                let all: Vec<&(String, i32)> = reports
                    .iter()
                    .filter(|(name, r)| !(eager.contains(*name) && r.0 < newest))
                    .flat_map(|(_, r)| &r.1)
                    .collect();
                let unique: BTreeSet<_> = all.iter().collect();
                assert_eq!(
                    all.len(),
                    unique.len(),
                    "a partition with two owners: {reports:?}"
                );
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        });
        OwnerWatcher { watching, task }
    }

    /// Stops sampling; returns how many samples were taken.
    async fn stop(self) -> usize {
        self.watching.store(false, Ordering::Release);
        self.task.await.unwrap()
    }
}

#[tokio::test]
async fn cooperative_sticky_moves_only_what_it_must_and_never_double_assigns() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-coop");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 6)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = || {
        config(
            &bootstrap,
            &group,
            &[("partition.assignment.strategy", "cooperative-sticky")],
        )
    };
    let watcher = OwnerWatcher::start(shared.clone());
    let m1 = start_member("m1", cfg(), &topic, shared.clone());
    let m2 = start_member("m2", cfg(), &topic, shared.clone());
    let m3 = start_member("m3", cfg(), &topic, shared.clone());
    let g1 = wait_balanced(&shared, &["m1", "m2", "m3"], &topic, 6, -1).await;
    let (a1, a3) = (owned(&shared, "m1"), owned(&shared, "m3"));
    assert_eq!((a1.len(), a3.len()), (2, 2));

    // m2 leaves: m1 and m3 keep theirs and split m2's.
    m2.stop().await;
    let g2 = wait_balanced(&shared, &["m1", "m3"], &topic, 6, g1).await;
    let (b1, b3) = (owned(&shared, "m1"), owned(&shared, "m3"));
    assert!(
        b1.is_superset(&a1) && b3.is_superset(&a3),
        "{a1:?} {b1:?} {a3:?} {b3:?}"
    );

    // m4 joins: m1 and m3 give up one each, keep the rest.
    let m4 = start_member("m4", cfg(), &topic, shared.clone());
    wait_balanced(&shared, &["m1", "m3", "m4"], &topic, 6, g2).await;
    let (c1, c3) = (owned(&shared, "m1"), owned(&shared, "m3"));
    assert!(
        c1.is_subset(&b1) && c3.is_subset(&b3),
        "{b1:?} {c1:?} {b3:?} {c3:?}"
    );
    assert_eq!((c1.len(), c3.len()), (2, 2));

    let mut events = Vec::new();
    for m in [m1, m3, m4] {
        events.extend(m.stop().await);
    }
    assert!(watcher.stop().await > 0);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RebalanceEvent::Revoked(p) if p.len() == 1))
    );
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));
}

/// Two new topics of four partitions each, named after `prefix`.
async fn two_topics_of_four(bootstrap: &str, prefix: &str) -> (String, String) {
    let c = client(bootstrap).await;
    let (t, u) = (
        random_topic(&format!("{prefix}-t")),
        random_topic(&format!("{prefix}-u")),
    );
    Admin::new(c)
        .create_topics(&[NewTopic::new(&t, 4), NewTopic::new(&u, 4)])
        .await
        .unwrap();
    (t, u)
}

/// Two topics of four partitions under `cooperative-copartitioned`: every
/// member always holds the same partition numbers of both (sampled throughout,
/// with no partition ever held twice); a joining member takes whole numbers
/// from the others, who keep the rest.
#[tokio::test]
async fn cooperative_copartitioned_keeps_partition_numbers_together_through_joins() {
    let bootstrap = require_broker!();
    let (t, u) = two_topics_of_four(&bootstrap, "group-copart").await;
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = || {
        config(
            &bootstrap,
            &group,
            &[("partition.assignment.strategy", "cooperative-copartitioned")],
        )
    };
    let all: BTreeSet<(String, i32)> = (0..4)
        .flat_map(|p| [(t.clone(), p), (u.clone(), p)])
        .collect();
    let watcher = OwnerWatcher::start(shared.clone());
    let co_partitioned = CoPartitionWatcher::start(shared.clone(), &t, &u);
    let topics = [t.as_str(), u.as_str()];
    let m1 = start_member_of("m1", cfg(), &topics, shared.clone());
    let m2 = start_member_of("m2", cfg(), &topics, shared.clone());
    let g1 = wait_balanced_over(&shared, &["m1", "m2"], &all, -1).await;
    let (a1, a2) = (owned(&shared, "m1"), owned(&shared, "m2"));
    assert_eq!((a1.len(), a2.len()), (4, 4));

    let m3 = start_member_of("m3", cfg(), &topics, shared.clone());
    wait_balanced_over(&shared, &["m1", "m2", "m3"], &all, g1).await;
    let (b1, b2, b3) = (
        owned(&shared, "m1"),
        owned(&shared, "m2"),
        owned(&shared, "m3"),
    );
    assert!(
        b1.is_subset(&a1) && b2.is_subset(&a2),
        "{a1:?} {b1:?} {a2:?} {b2:?}"
    );
    assert_eq!(b3.len(), 2, "one partition number of both topics: {b3:?}");

    let mut events = Vec::new();
    for m in [m1, m2, m3] {
        events.extend(m.stop().await);
    }
    co_partitioned.stop().await;
    assert!(watcher.stop().await > 0);
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));
}

/// Samples every 5 ms that each member reports the same partition numbers of
/// topics `t` and `u`.
struct CoPartitionWatcher {
    sampling: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CoPartitionWatcher {
    fn start(shared: Arc<Shared>, t: &str, u: &str) -> CoPartitionWatcher {
        let sampling = Arc::new(AtomicBool::new(true));
        let (flag, t, u) = (sampling.clone(), t.to_string(), u.to_string());
        let task = tokio::spawn(async move {
            while flag.load(Ordering::Acquire) {
                for (name, (_, owned, _)) in shared.reports.lock().unwrap().iter() {
                    let of = |topic: &str| -> BTreeSet<i32> {
                        owned
                            .iter()
                            .filter(|(x, _)| x == topic)
                            .map(|(_, p)| *p)
                            .collect()
                    };
                    assert_eq!(of(&t), of(&u), "{name} holds {owned:?}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        CoPartitionWatcher { sampling, task }
    }

    async fn stop(self) {
        self.sampling.store(false, Ordering::Release);
        self.task.await.unwrap();
    }
}

/// A rolling upgrade of a group from `range` (what strom asked for before
/// `cooperative-copartitioned`) in two bounces. A member with only the new
/// assignor is refused while `range` members run (INCONSISTENT_GROUP_PROTOCOL,
/// naming the fallback). Members listing `cooperative-copartitioned,range`
/// join the `range` group (eagerly), and once every member lists both the
/// group takes the new one; then members with the new one alone replace them
/// one by one, and a member joining after that leaves the others a subset of
/// what they held (cooperative). Throughout, no partition has two owners and
/// every member holds the same partition numbers of both topics.
#[tokio::test]
async fn a_rolling_upgrade_from_range_to_cooperative_copartitioned_takes_two_bounces() {
    let bootstrap = require_broker!();
    let (t, u) = two_topics_of_four(&bootstrap, "group-upgrade").await;
    let group = random_topic("group-id");
    let shared = new_shared();
    let cfg = |strategy: &str| {
        config(
            &bootstrap,
            &group,
            &[("partition.assignment.strategy", strategy)],
        )
    };
    let (old, both, new) = (
        "range",
        "cooperative-copartitioned,range",
        "cooperative-copartitioned",
    );
    let all: BTreeSet<(String, i32)> = (0..4)
        .flat_map(|p| [(t.clone(), p), (u.clone(), p)])
        .collect();
    // Members listing `range` rebalance eagerly.
    let watcher = OwnerWatcher::start_with_eager(shared.clone(), &["a", "b", "a1", "b1"]);
    let co_partitioned = CoPartitionWatcher::start(shared.clone(), &t, &u);
    let topics = [t.as_str(), u.as_str()];
    let mut members = BTreeMap::new();
    members.insert("a", start_member_of("a", cfg(old), &topics, shared.clone()));
    members.insert("b", start_member_of("b", cfg(old), &topics, shared.clone()));
    let mut generation = wait_balanced_over(&shared, &["a", "b"], &all, -1).await;

    let mut refused = GroupConsumer::new(cfg(new)).await.unwrap();
    refused.subscribe(vec![t.clone(), u.clone()]);
    let e = refused.poll_for(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InconsistentGroupProtocol), "{e}");
    assert!(
        e.to_string()
            .contains("partition.assignment.strategy=cooperative-copartitioned,range"),
        "{e}"
    );
    drop(refused);

    // Each step replaces one member; the group settles with the others.
    let steps = [
        ("a", "a1", both),
        ("b", "b1", both),
        ("a1", "a2", new),
        ("b1", "b2", new),
    ];
    let mut events = Vec::new();
    for (gone, next, strategy) in steps {
        events.extend(members.remove(gone).unwrap().stop().await);
        members.insert(
            next,
            start_member_of(next, cfg(strategy), &topics, shared.clone()),
        );
        let names: Vec<&str> = members.keys().copied().collect();
        generation = wait_balanced_over(&shared, &names, &all, generation).await;
    }
    let (a2, b2) = (owned(&shared, "a2"), owned(&shared, "b2"));
    members.insert("c", start_member_of("c", cfg(new), &topics, shared.clone()));
    wait_balanced_over(&shared, &["a2", "b2", "c"], &all, generation).await;
    assert!(owned(&shared, "a2").is_subset(&a2) && owned(&shared, "b2").is_subset(&b2));
    assert_eq!(owned(&shared, "c").len(), 2);

    for (_, m) in members {
        events.extend(m.stop().await);
    }
    co_partitioned.stop().await;
    assert!(watcher.stop().await > 0);
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));
}

/// Three members on six partitions, one of them a child process killed with
/// SIGKILL: it sends no LeaveGroup, so the coordinator rebalances only when its
/// session times out. The survivors then own every partition, resuming the dead
/// member's at its committed offsets: what it consumed but had not committed is
/// consumed again, nothing else is. A third member joins and the group balances
/// over three again; at the end the committed offsets are the end offsets. With `cooperative-sticky` the survivors keep what
/// they owned through both rebalances.
async fn a_killed_member_is_expired_and_its_partitions_resume_elsewhere(strategy: &str) {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-kill");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 6)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let cooperative = strategy == "cooperative-sticky";
    let shared = new_shared();
    let cfg = || {
        config(
            &bootstrap,
            &group,
            &[("partition.assignment.strategy", strategy)],
        )
    };
    let watcher = cooperative.then(|| OwnerWatcher::start(shared.clone()));
    let m1 = start_member("m1", cfg(), &topic, shared.clone());
    let m2 = start_member("m2", cfg(), &topic, shared.clone());
    let mut doomed = start_child_member(
        "doomed",
        &bootstrap,
        &group,
        &topic,
        strategy,
        shared.clone(),
    );
    let g1 = wait_balanced(&shared, &["doomed", "m1", "m2"], &topic, 6, -1).await;
    let (a1, a2, dead) = (
        owned(&shared, "m1"),
        owned(&shared, "m2"),
        owned(&shared, "doomed"),
    );
    assert!(!dead.is_empty(), "the child owns nothing: {dead:?}");

    // Produced into a stable generation, consumed and committed by all three
    // (the child too) before the kill.
    let first = values("a", 60);
    produce_to_every_partition(&bootstrap, &topic, &first, 6).await;
    wait_consumed(&shared, &first.iter().cloned().collect()).await;
    let after_first = end_offsets(&c, &topic, 6).await;
    wait_committed(cfg(), &topic, &after_first).await;
    // Consumed by all three, committed by the survivors only: the child stops
    // committing at the first of these.
    let held = values(HOLD_PREFIX.trim_end_matches('-'), 60);
    produce_to_every_partition(&bootstrap, &topic, &held, 6).await;
    wait_consumed(&shared, &held.iter().cloned().collect()).await;
    let after_held = end_offsets(&c, &topic, 6).await;
    let dead_partitions: BTreeSet<i32> = dead.iter().map(|(_, p)| *p).collect();
    let expected: BTreeMap<i32, i64> = (0..6)
        .map(|p| {
            let end = if dead_partitions.contains(&p) {
                after_first[&p]
            } else {
                after_held[&p]
            };
            (p, end)
        })
        .collect();
    wait_committed(cfg(), &topic, &expected).await;
    // Value i went to partition i % 6.
    let uncommitted: BTreeSet<String> = held
        .iter()
        .enumerate()
        .filter(|(i, _)| dead_partitions.contains(&(*i as i32 % 6)))
        .map(|(_, v)| v.clone())
        .collect();
    let consumed_before_kill = shared.consumed.lock().unwrap().len();

    let killed_at = doomed.kill();
    // Partly onto the dead member's partitions, which nobody fetches until its
    // session times out.
    let second = values("b", 60);
    produce_to_every_partition(&bootstrap, &topic, &second, 6).await;
    let g2 = wait_balanced(&shared, &["m1", "m2"], &topic, 6, g1).await;
    let took = killed_at.elapsed();
    println!(
        "{strategy}: kill to rebalance over the survivors took {took:?} (session.timeout.ms 6000); generation {g1} -> {g2}"
    );
    // Only the session timeout can have ended its membership.
    assert!(took >= Duration::from_secs(5), "rebalanced after {took:?}");
    let (b1, b2) = (owned(&shared, "m1"), owned(&shared, "m2"));
    if cooperative {
        assert!(
            b1.is_superset(&a1) && b2.is_superset(&a2),
            "{a1:?} {b1:?} {a2:?} {b2:?}"
        );
    }
    let third = values("c", 60);
    produce_to_every_partition(&bootstrap, &topic, &third, 6).await;
    let expected: BTreeSet<String> = second
        .iter()
        .chain(&third)
        .chain(&uncommitted)
        .cloned()
        .collect();
    let start = Instant::now();
    loop {
        let seen: BTreeSet<String> = shared.consumed.lock().unwrap()[consumed_before_kill..]
            .iter()
            .cloned()
            .collect();
        if expected.is_subset(&seen) {
            break;
        }
        let missing: Vec<&String> = expected.difference(&seen).collect();
        assert!(
            start.elapsed() < DEADLINE,
            "not consumed after the kill: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The survivors resumed exactly at the committed offsets: of what was
    // produced before the kill, they consumed again just what the dead member
    // had not committed. (Records of the second round may be consumed twice: a
    // survivor's commit racing the rebalance may be refused.)
    let again: BTreeSet<String> = shared.consumed.lock().unwrap()[consumed_before_kill..]
        .iter()
        .filter(|v| !v.starts_with("b-") && !v.starts_with("c-"))
        .cloned()
        .collect();
    assert_eq!(again, uncommitted, "consumed again after the kill");

    // One joins: three owners again.
    let m3 = start_member("m3", cfg(), &topic, shared.clone());
    wait_balanced(&shared, &["m1", "m2", "m3"], &topic, 6, g2).await;
    let (c1, c2) = (owned(&shared, "m1"), owned(&shared, "m2"));
    if cooperative {
        assert!(
            c1.is_subset(&b1) && c2.is_subset(&b2),
            "{b1:?} {c1:?} {b2:?} {c2:?}"
        );
    }
    // Consumed in a stable generation, so every partition's last commit stands.
    let fourth = values("d", 60);
    produce_to_every_partition(&bootstrap, &topic, &fourth, 6).await;
    wait_consumed(&shared, &fourth.iter().cloned().collect()).await;

    let mut events = Vec::new();
    for m in [m1, m2, m3] {
        events.extend(m.stop().await);
    }
    if let Some(watcher) = watcher {
        assert!(watcher.stop().await > 0);
    }
    // The survivors lost nothing: only the dead member's partitions moved to them.
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));

    let consumed: BTreeSet<String> = shared.consumed.lock().unwrap().iter().cloned().collect();
    let all: BTreeSet<String> = [&first, &held, &second, &third, &fourth]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    assert_eq!(consumed, all);
    let checker = GroupConsumer::new(cfg()).await.unwrap();
    assert_eq!(
        committed_offsets(&checker, &topic, 6).await,
        end_offsets(&c, &topic, 6).await
    );
    checker.close().await.unwrap();
}

#[tokio::test]
async fn a_killed_member_is_expired_and_its_partitions_resume_elsewhere_range() {
    a_killed_member_is_expired_and_its_partitions_resume_elsewhere("range").await;
}

#[tokio::test]
async fn a_killed_member_is_expired_and_cooperative_survivors_keep_their_partitions() {
    a_killed_member_is_expired_and_its_partitions_resume_elsewhere("cooperative-sticky").await;
}

#[tokio::test]
async fn a_rebalance_listener_hears_every_assignment_change_in_order() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("group-listener");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 2)])
        .await
        .unwrap();
    let group = random_topic("group-id");
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut first = GroupConsumer::new(config(&bootstrap, &group, &[]))
        .await
        .unwrap();
    first.subscribe([topic.as_str()]);
    let sink = heard.clone();
    first.set_rebalance_listener(move |e| sink.lock().unwrap().push(e.clone()));
    let owned = |events: &[RebalanceEvent]| {
        let mut owned = BTreeSet::new();
        for e in events {
            match e {
                RebalanceEvent::Assigned(p) => owned.extend(p.iter().cloned()),
                RebalanceEvent::Revoked(p) | RebalanceEvent::Lost(p) => {
                    for tp in p {
                        owned.remove(tp);
                    }
                }
            }
        }
        owned
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned(&heard.lock().unwrap()).len() < 2 {
        assert!(Instant::now() < deadline, "never assigned both partitions");
        first.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    // A second member, polling in its own task, takes one partition: the first
    // hears it go.
    let mut second = GroupConsumer::new(config(&bootstrap, &group, &[]))
        .await
        .unwrap();
    second.subscribe([topic.as_str()]);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let second = tokio::spawn(async move {
        while !stopping.load(Ordering::Relaxed) {
            second.poll_for(Duration::from_millis(100)).await.unwrap();
        }
        second
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned(&heard.lock().unwrap()).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the partitions were never split: heard {:?}",
            heard.lock().unwrap()
        );
        first.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let second = second.await.unwrap();
    assert_eq!(
        owned(&heard.lock().unwrap()),
        first.assignment().iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(
        first.take_events().is_empty(),
        "events went to the listener"
    );
    second.close().await.unwrap();
    first.close().await.unwrap();
}
