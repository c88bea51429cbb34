//! Group members for the consumer-group tests of both protocols: in-process
//! members that poll, record what they consume, commit and report their
//! assignment, and the waits that check those reports.
#![allow(clippy::unwrap_used, dead_code)] // shared by test crates that use parts of it

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_wire::client::admin::OffsetSpec;
use kafka_wire::client::config::{ClientConfig, ConsumerConfig, IsolationLevel};
use kafka_wire::client::consumer::ConsumerRecord;
use kafka_wire::client::group::{GroupConsumer, RebalanceEvent};
use kafka_wire::client::{Admin, Client};

pub async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

pub fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

pub fn text(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

/// What one member last reported: generation (classic) or member epoch (consumer
/// protocol), owned partitions, rebalance pending.
pub type Report = (i32, Vec<(String, i32)>, bool);

/// What the members of one test report, and how long its waits may take.
pub struct Shared {
    pub reports: Mutex<BTreeMap<String, Report>>,
    pub consumed: Mutex<Vec<String>>,
    /// Upper bound for each wait on the group.
    pub deadline: Duration,
    /// Upper bound for a member's whole run.
    pub run_limit: Duration,
}

impl Shared {
    pub fn new(deadline: Duration, run_limit: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            reports: Mutex::default(),
            consumed: Mutex::default(),
            deadline,
            run_limit,
        })
    }
}

pub struct Member {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<RebalanceEvent>>,
}

/// Runs a member that polls, records what it consumes, commits after each poll,
/// and reports its assignment; stops (commit, leave) when told.
pub fn start_member(
    name: &str,
    config: ConsumerConfig,
    topic: &str,
    shared: Arc<Shared>,
) -> Member {
    start_member_of(name, config, &[topic], shared)
}

/// [`start_member`] subscribed to several topics.
pub fn start_member_of(
    name: &str,
    config: ConsumerConfig,
    topics: &[&str],
    shared: Arc<Shared>,
) -> Member {
    let stop = Arc::new(AtomicBool::new(false));
    let (name, flag) = (name.to_string(), stop.clone());
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    let task = tokio::spawn(async move {
        let mut c = GroupConsumer::new(config).await.unwrap();
        c.subscribe(topics);
        let mut events = Vec::new();
        let started = Instant::now();
        while !flag.load(Ordering::Acquire) {
            assert!(started.elapsed() < shared.run_limit, "member ran too long");
            let records = c.poll_for(Duration::from_millis(100)).await.unwrap();
            if !records.is_empty() {
                shared
                    .consumed
                    .lock()
                    .unwrap()
                    .extend(records.iter().map(text));
                // A commit racing a rebalance or a fencing may be refused; the
                // records are then consumed again by the next owner (at least once).
                let _ = c.commit().await;
            }
            events.extend(c.take_events());
            shared.reports.lock().unwrap().insert(
                name.clone(),
                (
                    c.generation(),
                    c.assignment().to_vec(),
                    c.rebalance_pending(),
                ),
            );
        }
        shared.reports.lock().unwrap().remove(&name);
        c.close().await.unwrap();
        events
    });
    Member { stop, task }
}

impl Member {
    pub async fn stop(self) -> Vec<RebalanceEvent> {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap()
    }
}

/// Waits until exactly `members` report the same generation (member epoch) above
/// `after`, no rebalance is pending, and every partition of `topic` has exactly
/// one owner. Returns the generation.
pub async fn wait_balanced(
    shared: &Shared,
    members: &[&str],
    topic: &str,
    partitions: i32,
    after: i32,
) -> i32 {
    let all: BTreeSet<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    wait_balanced_over(shared, members, &all, after).await
}

/// [`wait_balanced`] over the partitions `all` (of any topics).
pub async fn wait_balanced_over(
    shared: &Shared,
    members: &[&str],
    all: &BTreeSet<(String, i32)>,
    after: i32,
) -> i32 {
    let start = Instant::now();
    let mut last = BTreeMap::new();
    while start.elapsed() < shared.deadline {
        let reports = shared.reports.lock().unwrap().clone();
        let names: BTreeSet<&str> = reports.keys().map(String::as_str).collect();
        let generations: BTreeSet<i32> = reports.values().map(|r| r.0).collect();
        if names == members.iter().copied().collect() && generations.len() == 1 {
            let generation = *generations.iter().next().unwrap();
            let owned: Vec<(String, i32)> = reports.values().flat_map(|r| r.1.clone()).collect();
            let unique: BTreeSet<(String, i32)> = owned.iter().cloned().collect();
            let pending = reports.values().any(|r| r.2);
            if generation > after && !pending && owned.len() == unique.len() && unique == *all {
                return generation;
            }
        }
        last = reports;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("group never balanced over {members:?}; last reports {last:?}");
}

pub async fn wait_consumed(shared: &Shared, expected: &BTreeSet<String>) {
    let start = Instant::now();
    loop {
        let seen: BTreeSet<String> = shared.consumed.lock().unwrap().iter().cloned().collect();
        if expected.is_subset(&seen) {
            return;
        }
        assert!(
            start.elapsed() < shared.deadline,
            "missing {} records",
            expected.difference(&seen).count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The partitions `name` owns, as it last reported.
pub fn owned(shared: &Shared, name: &str) -> BTreeSet<(String, i32)> {
    shared.reports.lock().unwrap()[name]
        .1
        .iter()
        .cloned()
        .collect()
}

pub async fn end_offsets(c: &Client, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let ends = Admin::new(c.clone())
        .list_offsets(
            topic,
            &(0..partitions).collect::<Vec<_>>(),
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    ends.into_iter().map(|(p, o)| (p, o.offset)).collect()
}

/// The group's committed offsets for partitions 0..`partitions` of `topic`,
/// read with a consumer that does not join.
pub async fn committed_offsets(
    checker: &GroupConsumer,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let all: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    let committed = checker.committed(&all).await.unwrap();
    committed.into_iter().map(|((_, p), o)| (p, o)).collect()
}

/// A static member (instance-a) that calls `close_and_leave` hands its
/// partitions of a 4-partition topic to the other static member (instance-b)
/// within 10 s, though their session timeout is longer (30 s in the classic
/// protocol's config, the broker's 45 s default with KIP-848).
/// `config(group, extra)` builds a member's config for the protocol under test.
pub async fn static_member_leaves_at_once(
    bootstrap: &str,
    prefix: &str,
    config: impl Fn(&str, &[(&str, &str)]) -> ConsumerConfig,
) {
    use kafka_wire::client::admin::NewTopic;
    let topic = integration_tests::random_topic(prefix);
    Admin::new(client(bootstrap).await)
        .create_topics(&[NewTopic::new(&topic, 4)])
        .await
        .unwrap();
    let group = integration_tests::random_topic("group-id");
    let shared = Shared::new(Duration::from_secs(30), Duration::from_secs(90));
    let cfg = |instance: &str| config(&group, &[("group.instance.id", instance)]);
    let b = start_member("b", cfg("instance-b"), &topic, shared.clone());
    let mut a = GroupConsumer::new(cfg("instance-a")).await.unwrap();
    a.subscribe([topic.clone()]);
    let start = Instant::now();
    loop {
        a.poll_for(Duration::from_millis(100)).await.unwrap();
        let theirs = shared
            .reports
            .lock()
            .unwrap()
            .get("b")
            .filter(|r| r.0 == a.generation() && !r.2)
            .map(|r| r.1.len());
        if !a.assignment().is_empty()
            && !a.rebalance_pending()
            && theirs.is_some_and(|n| n + a.assignment().len() == 4)
        {
            break;
        }
        assert!(
            start.elapsed() < shared.deadline,
            "a and b never shared the topic"
        );
    }
    let generation = a.generation();
    let left = Instant::now();
    a.close_and_leave().await.unwrap();
    wait_balanced(&shared, &["b"], &topic, 4, generation).await;
    assert!(
        left.elapsed() < Duration::from_secs(10),
        "b got a's partitions only after {:?}",
        left.elapsed()
    );
    b.stop().await;
}
