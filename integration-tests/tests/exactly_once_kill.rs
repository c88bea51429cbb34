//! Exactly-once under SIGKILL: a child copier (src/bin/eos_copier.rs) reads an input
//! topic in a group, writes transformed records and commits offsets in one
//! transaction, aborting about a third of its transactions on purpose. The test
//! kills it with SIGKILL at random moments and restarts it; afterwards the output,
//! read with read_committed, holds exactly one transformed copy of every input
//! record, in input order per partition, and no transaction is left open. The
//! same holds when a copier is stalled (SIGSTOP) and replaced, by a copier with
//! other ids or with its own `transactional.id`, and when the broker is killed
//! and restarted under a running copier.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{broker_is_ours, kafka_script, random_topic, require_broker, signal};
use kafka_wire::client::admin::{NewTopic, OffsetSpec};
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

fn spawn_copier(args: &[String], seed: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eos_copier"))
        .args(args)
        .arg(seed.to_string())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every record of `topic`-`partition` at `isolation`, read up to the partition's
/// end offset at that isolation (within 120 s): a slow fetch after a broker
/// restart must not cut the read short.
async fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    isolation: &str,
) -> Vec<String> {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("isolation.level".to_string(), isolation.to_string()),
    ]);
    let client = Client::connect(ProducerConfig::new(bootstrap).unwrap().client)
        .await
        .unwrap();
    let level = if isolation == "read_committed" {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let end = Admin::new(client)
        .list_offsets(topic, &[partition], OffsetSpec::Latest, level)
        .await
        .unwrap()
        .values()
        .map(|o| o.offset)
        .sum::<i64>();
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    consumer.assign([(topic.to_string(), partition)]);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let records = consumer.poll_for(Duration::from_millis(500)).await.unwrap();
        out.extend(
            records.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            }),
        );
        let at = consumer
            .positions()
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0);
        if at >= end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition}: read up to offset {at} of {end} in 120 s"
        );
    }
    out
}

/// The two tests are heavy (a debug-build child process each): they take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh input topic filled with `records` records (record i in partition
/// i % partitions), an empty output topic, and the output each partition must
/// end up with.
struct Job {
    admin: Admin,
    input: String,
    output: String,
    partitions: i32,
    expected: BTreeMap<i32, Vec<String>>,
}

impl Job {
    async fn new(bootstrap: &str, name: &str, partitions: i32, records: usize) -> Job {
        let client = Client::connect(ProducerConfig::new(bootstrap).unwrap().client)
            .await
            .unwrap();
        let admin = Admin::new(client.clone());
        let input = random_topic(&format!("{name}-in"));
        let output = random_topic(&format!("{name}-out"));
        admin
            .create_topics(&[
                NewTopic::new(&input, partitions),
                NewTopic::new(&output, partitions),
            ])
            .await
            .unwrap();
        let producer = Producer::with_client(client, ProducerConfig::new(bootstrap).unwrap())
            .await
            .unwrap();
        let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        let mut pending = Vec::new();
        for i in 0..records {
            let p = (i % partitions as usize) as i32;
            let value = format!("p{p}-{i}");
            expected.entry(p).or_default().push(format!("{value}!"));
            pending.push(
                producer
                    .send(ProducerRecord::new(&input, value).partition(p))
                    .await
                    .unwrap(),
            );
        }
        for f in pending {
            f.await.unwrap();
        }
        Job {
            admin,
            input,
            output,
            partitions,
            expected,
        }
    }

    /// Output offsets summed over partitions, at `isolation`.
    async fn output_end(&self, isolation: IsolationLevel) -> i64 {
        let parts: Vec<i32> = (0..self.partitions).collect();
        let ends = self
            .admin
            .list_offsets(&self.output, &parts, OffsetSpec::Latest, isolation)
            .await
            .unwrap();
        ends.values().map(|o| o.offset).sum::<i64>()
    }

    /// The output read with read_committed is exactly the transformed input, in
    /// input order per partition, and no transaction is left open. Returns the
    /// number of output records.
    async fn check_exactly_once(&self, bootstrap: &str) -> usize {
        let mut total = 0;
        for p in 0..self.partitions {
            let got = read_partition(bootstrap, &self.output, p, "read_committed").await;
            total += got.len();
            let want = &self.expected[&p];
            assert_eq!(
                got.len(),
                want.len(),
                "partition {p}: {} records, {} expected",
                got.len(),
                want.len()
            );
            assert!(
                got == *want,
                "partition {p}: output differs from the transformed input"
            );
        }
        // No transaction left hanging: read_committed end == read_uncommitted end.
        let parts: Vec<i32> = (0..self.partitions).collect();
        for (p, committed, uncommitted) in self.ends(&parts).await {
            assert_eq!(
                committed, uncommitted,
                "partition {p} has an open transaction"
            );
        }
        total
    }

    async fn ends(&self, parts: &[i32]) -> Vec<(i32, i64, i64)> {
        let committed = self
            .admin
            .list_offsets(
                &self.output,
                parts,
                OffsetSpec::Latest,
                IsolationLevel::ReadCommitted,
            )
            .await
            .unwrap();
        let uncommitted = self
            .admin
            .list_offsets(
                &self.output,
                parts,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await
            .unwrap();
        parts
            .iter()
            .map(|p| (*p, committed[p].offset, uncommitted[p].offset))
            .collect()
    }
}

async fn run(partitions: i32, records: usize, kills: usize) {
    let bootstrap = require_broker!();
    let _turn = ONE_AT_A_TIME.lock().await;
    let job = Job::new(&bootstrap, "eos-kill", partitions, records).await;
    let mut next = rng();
    let args = copier_args(&bootstrap, &job, "eos-kill", "15");
    let started = Instant::now();
    let mut child = spawn_copier(&args, next());
    let mut killed = 0;
    let mut committed_at_kill = Vec::new();
    while killed < kills {
        // Let it run between 0.3 and 1.2 s, then SIGKILL it (Child::kill sends
        // SIGKILL): all kills land well before a copier run would end on its own.
        tokio::time::sleep(Duration::from_millis(300 + next() % 900)).await;
        if child.try_wait().unwrap().is_some() {
            break; // finished before we could kill it again
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed += 1;
        committed_at_kill.push(job.output_end(IsolationLevel::ReadCommitted).await);
        child = spawn_copier(&args, next());
    }
    // The last incarnation runs until the input is exhausted and it idles out.
    let status = wait_exit(&mut child, Duration::from_secs(240)).await;
    assert!(status.success(), "copier failed: {status}");

    let total = job.check_exactly_once(&bootstrap).await;
    // Kills that landed before the copier was done (committed end offsets, markers
    // included, still below their final value).
    let final_end = job.output_end(IsolationLevel::ReadCommitted).await;
    let mid_run = committed_at_kill.iter().filter(|&&c| c < final_end).count();
    eprintln!(
        "{killed} kills (SIGKILL), {mid_run} of them mid-run (committed end offsets at each kill: {committed_at_kill:?} of {final_end}); {records} input records, {total} committed output records, exactly once, in {:?}",
        started.elapsed()
    );
    assert_eq!(killed, kills, "the copier finished before all kills");
    assert!(mid_run >= kills / 2, "only {mid_run} kills landed mid-run");
}

/// A xorshift generator seeded from the clock (the seed is printed).
fn rng() -> impl FnMut() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// The copier's arguments but the seed: 4 s idle exit, `pace_ms` inside each transaction.
fn copier_args(bootstrap: &str, job: &Job, name: &str, pace_ms: &str) -> Vec<String> {
    vec![
        bootstrap.to_string(),
        random_topic(&format!("{name}-group")),
        job.input.clone(),
        job.output.clone(),
        random_topic(&format!("{name}-txn")),
        "4000".to_string(),
        pace_ms.to_string(),
    ]
}

/// Waits at most `limit` for `child` to exit.
async fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "copier did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copier_killed_ten_times_writes_every_record_exactly_once() {
    run(3, 200_000, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_partition_output_equals_input_despite_kills() {
    run(1, 100_000, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_zombie_is_fenced_and_its_writes_stay_invisible() {
    stalled_zombie(false).await;
}

/// Two processes with the same `transactional.id` (and group instance id): the
/// successor's InitProducerId fences the stalled one and aborts its open
/// transaction; on waking, the zombie's next step is refused as fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_zombie_with_the_same_transactional_id_is_fenced_by_its_successor() {
    stalled_zombie(true).await;
}

/// Copier A is stopped (SIGSTOP) inside an open transaction; copier B takes over
/// its partitions (after A's session expires, or at once when it reuses A's ids);
/// A is woken (SIGCONT) and must be refused, and nothing it wrote after the stall
/// may become visible.
async fn stalled_zombie(same_transactional_id: bool) {
    let bootstrap = require_broker!();
    let _turn = ONE_AT_A_TIME.lock().await;
    let job = Job::new(&bootstrap, "eos-stall", 3, 60_000).await;
    eprintln!("successor reuses the zombie's transactional.id: {same_transactional_id}");
    let (input, output) = (&job.input, &job.output);
    let group = random_topic("eos-stall-group");
    // A 300 ms pause inside each transaction, so the stall lands in an open one; seed
    // 0 turns deliberate aborts off for the zombie, so each abort of its is explained.
    let args = |txn: &str, seed: &str| {
        vec![
            bootstrap.clone(),
            group.clone(),
            input.clone(),
            output.clone(),
            txn.to_string(),
            "4000".to_string(),
            "300".to_string(),
            seed.to_string(),
        ]
    };
    let committed_end = || job.output_end(IsolationLevel::ReadCommitted);
    // A works a little, then stalls (SIGSTOP) past its session timeout (6 s).
    let zombie_id = random_topic("eos-stall-a");
    let successor_id = if same_transactional_id {
        zombie_id.clone()
    } else {
        random_topic("eos-stall-b")
    };
    let mut zombie = Command::new(env!("CARGO_BIN_EXE_eos_copier"))
        .args(args(&zombie_id, "0"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it while a transaction of its is open with records written (the end
    // offsets differ between isolation levels), inside the copier's pause before
    // it sends offsets and commits.
    let uncommitted_end = || job.output_end(IsolationLevel::ReadUncommitted);
    let start = Instant::now();
    loop {
        let (c, u) = (committed_end().await, uncommitted_end().await);
        if c > 0 && u > c {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "A never opened a second transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&zombie, "STOP");
    let at_stall = committed_end().await;

    // B joins and takes over A's partitions once A's session has expired (or at
    // once, replacing A's static membership, when it reuses A's ids).
    let mut successor = Command::new(env!("CARGO_BIN_EXE_eos_copier"))
        .args(args(&successor_id, "7"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while committed_end().await <= at_stall {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "B never took over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A wakes up: whatever it does next must be refused.
    signal(&zombie, "CONT");
    let deadline = Instant::now() + Duration::from_secs(240);
    while successor.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "B did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if zombie.try_wait().unwrap().is_none() {
        tokio::time::sleep(Duration::from_secs(6)).await;
        let _ = zombie.kill();
    }
    let out = zombie.wait_with_output().unwrap();
    let zombie_log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("zombie's own log:\n{zombie_log}");
    assert!(
        zombie_log.contains("offsets refused")
            || zombie_log.contains("commit failed")
            || zombie_log.contains("partitions are moving"),
        "the zombie was never told it was fenced"
    );
    if same_transactional_id {
        assert!(
            zombie_log.to_lowercase().contains("fenced"),
            "the zombie's refusal does not say it was fenced"
        );
    }

    job.check_exactly_once(&bootstrap).await;
}

/// The broker is killed (SIGKILL) and restarted twice while the copier runs. The
/// copier rides it out, or, when an error ends it, is started again as a
/// supervisor would: the output is still exactly the transformed input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_twice_mid_run_leaves_the_output_exactly_once() {
    let bootstrap = require_broker!();
    if !broker_is_ours(&bootstrap) {
        eprintln!(
            "!! SKIPPING: the broker at {bootstrap} was not started by scripts/kafka, so this test cannot restart it"
        );
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let records = 100_000;
    let job = Job::new(&bootstrap, "eos-restart", 3, records).await;
    let mut next = rng();
    let mut args = copier_args(&bootstrap, &job, "eos-restart", "15");
    // A long idle exit, so a copier that sees no input while the broker is down
    // does not take that for the end of the input.
    args[5] = "20000".to_string();
    let started = Instant::now();
    let mut child = spawn_copier(&args, next());
    let mut copier_restarts = 0;
    let mut supervise = |child: &mut Child, next: &mut dyn FnMut() -> u64| -> bool {
        match child.try_wait().unwrap() {
            Some(status) if status.success() => true,
            Some(status) => {
                copier_restarts += 1;
                eprintln!("copier exited with {status}; starting it again");
                assert!(copier_restarts <= 20, "the copier keeps failing");
                *child = spawn_copier(&args, next());
                false
            }
            None => false,
        }
    };
    let mut committed_at_kill = Vec::new();
    for _ in 0..2 {
        let run_for = Duration::from_millis(1_000 + next() % 2_000);
        let until = Instant::now() + run_for;
        while Instant::now() < until {
            assert!(
                !supervise(&mut child, &mut next),
                "finished before the broker kills"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        committed_at_kill.push(job.output_end(IsolationLevel::ReadCommitted).await);
        tokio::task::spawn_blocking(|| {
            kafka_script(&["stop-node", "1", "-9"]);
            kafka_script(&["start-node", "1"]);
        })
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while !supervise(&mut child, &mut next) {
        assert!(Instant::now() < deadline, "copier did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let total = job.check_exactly_once(&bootstrap).await;
    let final_end = job.output_end(IsolationLevel::ReadCommitted).await;
    eprintln!(
        "2 broker kills (SIGKILL + restart) at committed end offsets {committed_at_kill:?} of {final_end}; copier restarted {copier_restarts} times after errors; {records} input records, {total} committed output records, exactly once, in {:?}",
        started.elapsed()
    );
    assert!(
        committed_at_kill.iter().all(|&c| c < final_end),
        "a broker kill landed after the copier was done"
    );
}
