//! `strom groups` against the real broker: list, describe (lag, members, state)
//! and delete; reset-offsets as a dry run (nothing changes) and with --execute;
//! delete-offsets; one-line errors with a non-zero exit; and the describe table
//! compared with the one Kafka's own `ConsumerGroupCommand` prints.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::{
    PollingMember, create_random_topic, java_tool, random_topic, require_broker,
};
use kafka_wire::client::config::{ClientConfig, ProducerConfig};
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// What one run of the binary printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `strom --bootstrap BOOTSTRAP groups ARGS` (at most 60 s).
async fn strom_groups(bootstrap: &str, args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(["--bootstrap", bootstrap, "groups"])
            .args(args)
            .env_remove("KAFKA_BOOTSTRAP")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("strom groups did not end")
    .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// As [`strom_groups`], panicking unless it succeeds; returns stdout.
async fn ok(bootstrap: &str, args: &[&str]) -> String {
    let run = strom_groups(bootstrap, args).await;
    assert!(run.ok, "strom groups {args:?} failed: {}", run.stderr);
    run.stdout
}

/// As [`strom_groups`], panicking if it succeeds; returns the error line.
async fn fails(bootstrap: &str, args: &[&str]) -> String {
    let run = strom_groups(bootstrap, args).await;
    assert!(!run.ok, "strom groups {args:?} succeeded: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", run.stderr);
    lines[0].to_string()
}

/// The rows of a table printed with a header line: column name -> cell, for
/// every line after the first line that starts with `first_column`.
fn table(text: &str, first_column: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with(first_column))
        .filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells.len(), names.len(), "row {l:?} under {header:?}");
            names
                .iter()
                .zip(cells)
                .map(|(n, c)| (n.to_string(), c.to_string()))
                .collect()
        })
        .collect()
}

/// `TOPIC-PARTITION` -> (CURRENT-OFFSET, LOG-END-OFFSET, LAG, CONSUMER-ID, HOST, CLIENT-ID).
type LagRows = BTreeMap<String, [String; 6]>;

fn lag_rows(text: &str) -> LagRows {
    table(text, "GROUP")
        .into_iter()
        .map(|r| {
            (
                format!("{}-{}", r["TOPIC"], r["PARTITION"]),
                [
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ]
                .map(|c| r[c].clone()),
            )
        })
        .collect()
}

/// `TOPIC-PARTITION` -> NEW-OFFSET of a reset plan.
fn plan(text: &str) -> BTreeMap<String, i64> {
    table(text, "GROUP")
        .into_iter()
        .map(|r| {
            (
                format!("{}-{}", r["TOPIC"], r["PARTITION"]),
                r["NEW-OFFSET"].parse().unwrap(),
            )
        })
        .collect()
}

async fn admin(bootstrap: &str) -> Admin {
    Admin::new(
        Client::connect(ClientConfig::new(bootstrap).unwrap())
            .await
            .unwrap(),
    )
}

/// Produces `counts[p]` records to partition `p`, the i-th of each with
/// timestamp `base_ms + i * 1000`.
async fn produce(bootstrap: &str, topic: &str, counts: &[usize], base_ms: i64) {
    let producer = Producer::new(ProducerConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let mut futures = Vec::new();
    for (p, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let record = ProducerRecord::new(topic, format!("v{i}"))
                .partition(p as i32)
                .timestamp(base_ms + i as i64 * 1000);
            futures.push(producer.send(record).await.unwrap());
        }
    }
    for f in futures {
        f.await.unwrap();
    }
}

/// A topic with `counts[p]` records in partition `p` (timestamps from `base_ms`).
async fn topic_with(admin: &Admin, bootstrap: &str, counts: &[usize], base_ms: i64) -> String {
    let topic = create_random_topic(admin.client(), "cli-groups", counts.len() as i32).await;
    integration_tests::topic_metadata(admin.client(), &topic).await;
    produce(bootstrap, &topic, counts, base_ms).await;
    topic
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Starts a member of `group` and waits until it owns `partitions` partitions.
async fn live_member(
    admin: &Admin,
    bootstrap: &str,
    group: &str,
    topic: &str,
    protocol: &str,
    partitions: usize,
) -> PollingMember {
    let member = PollingMember::start(
        bootstrap,
        group,
        &[topic],
        &[
            ("group.protocol", protocol),
            ("client.id", "cli-groups-member"),
        ],
        Duration::from_secs(240),
    )
    .await;
    let start = Instant::now();
    loop {
        if let Ok(d) = admin.describe_group(group).await {
            if d.state == "Stable"
                && d.members.len() == 1
                && d.members[0].assignment.len() == partitions
            {
                return member;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{group} never got its member"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (at most 60 s) until `group` has no members, e.g. after its member stopped.
async fn wait_until_empty(admin: &Admin, group: &str) {
    let start = Instant::now();
    while !admin
        .describe_group(group)
        .await
        .unwrap()
        .members
        .is_empty()
    {
        assert!(start.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn offsets(topic: &str, pairs: &[(i32, i64)]) -> BTreeMap<(String, i32), i64> {
    pairs
        .iter()
        .map(|&(p, o)| ((topic.to_string(), p), o))
        .collect()
}

#[tokio::test]
async fn groups_are_listed_described_and_deleted() {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    let topic = topic_with(&admin, &bootstrap, &[10, 6], now_ms()).await;
    let group = random_topic("cli-groups-life");
    let member = live_member(&admin, &bootstrap, &group, &topic, "classic", 2).await;
    member
        .handle()
        .commit_offsets(&offsets(&topic, &[(0, 4), (1, 6)]))
        .await
        .unwrap();
    let member_id = member.handle().member_id();

    let listed = table(&ok(&bootstrap, &["list"]).await, "GROUP");
    let row = listed.iter().find(|r| r["GROUP"] == group).unwrap();
    assert_eq!(row["TYPE"], "classic");
    assert_eq!(row["STATE"], "Stable");
    assert_eq!(row["PROTOCOL-TYPE"], "consumer");

    let rows = lag_rows(&ok(&bootstrap, &["describe", &group]).await);
    let owner = |c: &str, e: &str, l: &str| {
        [c, e, l, &member_id, "/127.0.0.1", "cli-groups-member"].map(String::from)
    };
    assert_eq!(
        rows,
        BTreeMap::from([
            (format!("{topic}-0"), owner("4", "10", "6")),
            (format!("{topic}-1"), owner("6", "6", "0")),
        ])
    );

    let members = table(
        &ok(&bootstrap, &["describe", "--members", &group]).await,
        "GROUP",
    );
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["CONSUMER-ID"], member_id);
    assert_eq!(members[0]["#PARTITIONS"], "2");
    assert_eq!(members[0]["ASSIGNMENT"], format!("{topic}(0,1)"));
    let state = table(
        &ok(&bootstrap, &["describe", "--state", &group]).await,
        "GROUP",
    );
    assert_eq!(state[0]["STATE"], "Stable");
    assert_eq!(state[0]["#MEMBERS"], "1");
    assert_eq!(state[0]["TYPE"], "classic");

    // Refused while the member is alive, with what to do.
    let e = fails(&bootstrap, &["delete", &group]).await;
    assert!(e.contains("NON_EMPTY_GROUP") && e.contains(&group), "{e}");
    assert!(e.contains("stop the group's consumers"), "{e}");
    let e = fails(
        &bootstrap,
        &[
            "reset-offsets",
            "--group",
            &group,
            "--all-topics",
            "--to-earliest",
        ],
    )
    .await;
    assert!(
        e.contains(&format!("group {group} is not empty (1 active member"))
            && e.contains("stop its consumers before resetting offsets"),
        "{e}"
    );
    let e = fails(
        &bootstrap,
        &["delete-offsets", "--group", &group, "--topic", &topic],
    )
    .await;
    assert!(e.contains("GROUP_SUBSCRIBED_TO_TOPIC"), "{e}");

    member.stop().await;
    wait_until_empty(&admin, &group).await;
    let rows = lag_rows(&ok(&bootstrap, &["describe", &group]).await);
    assert_eq!(rows[&format!("{topic}-0")][3], "-");

    ok(
        &bootstrap,
        &[
            "delete-offsets",
            "--group",
            &group,
            "--topic",
            &format!("{topic}:1"),
        ],
    )
    .await;
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 4)])
    );

    let out = ok(&bootstrap, &["delete", &group]).await;
    assert!(out.contains(&group));
    let e = fails(&bootstrap, &["describe", &group]).await;
    assert!(
        e.contains("GROUP_ID_NOT_FOUND") && e.contains(&group),
        "{e}"
    );
    let listed = table(&ok(&bootstrap, &["list"]).await, "GROUP");
    assert!(!listed.iter().any(|r| r["GROUP"] == group));
}

#[tokio::test]
async fn reset_offsets_is_a_dry_run_until_executed() {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    // Timestamps: partition p's i-th record at base + i s.
    let base = now_ms() - 3_600_000;
    let topic = topic_with(&admin, &bootstrap, &[10, 6], base).await;
    let group = random_topic("cli-groups-reset");
    let start = offsets(&topic, &[(0, 5), (1, 3)]);
    admin.alter_group_offsets(&group, &start).await.unwrap();
    let all = ["reset-offsets", "--group", &group, "--topic", &topic];

    let reset = |extra: &'static [&'static str], execute: bool| {
        let mut args: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        if execute {
            args.push("--execute".into());
        }
        args
    };
    let run = |args: Vec<String>| {
        let bootstrap = bootstrap.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            plan(&ok(&bootstrap, &args).await)
        }
    };
    let by_name = |pairs: &[(i32, i64)]| -> BTreeMap<String, i64> {
        pairs
            .iter()
            .map(|&(p, o)| (format!("{topic}-{p}"), o))
            .collect()
    };

    // --to-earliest: the plan, then nothing changed; --execute commits it.
    assert_eq!(
        run(reset(&["--to-earliest"], false)).await,
        by_name(&[(0, 0), (1, 0)])
    );
    assert_eq!(admin.list_group_offsets(&group).await.unwrap(), start);
    assert_eq!(
        run(reset(&["--to-earliest"], true)).await,
        by_name(&[(0, 0), (1, 0)])
    );
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 0), (1, 0)])
    );

    // --shift-by from the committed offsets, clamped to the log end.
    assert_eq!(
        run(reset(&["--shift-by", "4"], false)).await,
        by_name(&[(0, 4), (1, 4)])
    );
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 0), (1, 0)])
    );
    assert_eq!(
        run(reset(&["--shift-by", "4"], true)).await,
        by_name(&[(0, 4), (1, 4)])
    );
    assert_eq!(
        run(reset(&["--shift-by", "4"], true)).await,
        by_name(&[(0, 8), (1, 6)])
    );
    assert_eq!(
        run(reset(&["--shift-by", "-7"], true)).await,
        by_name(&[(0, 1), (1, 0)])
    );
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 1), (1, 0)])
    );

    // --to-datetime: the first record at or after the time; the log end when
    // none is that recent. Record 3 of each partition is at base + 3 s.
    let at = sql::time::format_timestamp(base + 2_500).replace(' ', "T");
    let mut args = reset(&[], false);
    args.extend(["--to-datetime".to_string(), format!("{at}Z")]);
    assert_eq!(run(args.clone()).await, by_name(&[(0, 3), (1, 3)]));
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 1), (1, 0)])
    );
    args.push("--execute".into());
    assert_eq!(run(args).await, by_name(&[(0, 3), (1, 3)]));
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 3), (1, 3)])
    );
    // The same instant written in another zone; then a time after every record.
    let east = sql::time::format_timestamp(base + 2_500 + 2 * 3_600_000).replace(' ', "T");
    let mut args = reset(&[], false);
    args.extend(["--to-datetime".to_string(), format!("{east}+02:00")]);
    assert_eq!(run(args).await, by_name(&[(0, 3), (1, 3)]));
    let late = sql::time::format_timestamp(base + 8_500).replace(' ', "T");
    let mut args = reset(&[], true);
    args.extend(["--to-datetime".to_string(), late]);
    assert_eq!(run(args).await, by_name(&[(0, 9), (1, 6)]));
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 9), (1, 6)])
    );

    // One partition, an explicit offset clamped to the log end; --to-latest.
    let mut args: Vec<String> = ["reset-offsets", "--group", &group, "--topic"]
        .map(String::from)
        .to_vec();
    args.extend([format!("{topic}:0"), "--to-offset".into(), "100".into()]);
    args.push("--execute".into());
    assert_eq!(run(args).await, by_name(&[(0, 10)]));
    let mut args: Vec<String> = ["reset-offsets", "--group", &group, "--all-topics"]
        .map(String::from)
        .to_vec();
    args.extend(["--to-offset".into(), "2".into(), "--execute".into()]);
    assert_eq!(run(args).await, by_name(&[(0, 2), (1, 2)]));
    assert_eq!(
        run(reset(&["--to-latest"], true)).await,
        by_name(&[(0, 10), (1, 6)])
    );
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        offsets(&topic, &[(0, 10), (1, 6)])
    );
    admin.delete_groups(&[group]).await.unwrap();
}

#[tokio::test]
async fn an_unknown_group_is_a_one_line_error() {
    let bootstrap = require_broker!();
    let group = random_topic("cli-groups-none");
    for args in [
        vec!["describe", group.as_str()],
        vec!["describe", "--members", group.as_str()],
        vec!["delete", group.as_str()],
    ] {
        let e = fails(&bootstrap, &args).await;
        assert!(
            e.contains(&group)
                && e.contains("GROUP_ID_NOT_FOUND")
                && e.contains("strom groups list"),
            "{args:?}: {e}"
        );
    }
    let e = fails(
        &bootstrap,
        &[
            "reset-offsets",
            "--group",
            &group,
            "--all-topics",
            "--to-earliest",
        ],
    )
    .await;
    assert!(e.contains("has no committed offsets"), "{e}");
    let e = fails(
        &bootstrap,
        &[
            "reset-offsets",
            "--group",
            &group,
            "--topic",
            &random_topic("none"),
            "--to-earliest",
        ],
    )
    .await;
    assert!(e.contains("does not exist"), "{e}");
}

/// The table of Kafka's `ConsumerGroupCommand --describe` for `group`.
fn java_describe(bootstrap: &str, group: &str) -> String {
    let out = java_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
        None,
        Duration::from_secs(120),
    );
    assert!(out.success(), "ConsumerGroupCommand failed: {}", out.stderr);
    out.stdout
}

async fn describe_matches_kafkas_tool(protocol: &str) {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    let topic = topic_with(&admin, &bootstrap, &[7, 3, 0], now_ms()).await;
    let group = random_topic(&format!("cli-groups-java-{protocol}"));
    let member = live_member(&admin, &bootstrap, &group, &topic, protocol, 3).await;
    // Partition 1 has no committed offset: CURRENT-OFFSET and LAG are "-".
    member
        .handle()
        .commit_offsets(&offsets(&topic, &[(0, 5), (2, 0)]))
        .await
        .unwrap();
    let ours = lag_rows(&ok(&bootstrap, &["describe", &group]).await);
    let java = lag_rows(&java_describe(&bootstrap, &group));
    assert_eq!(ours, java);
    assert_eq!(
        ours[&format!("{topic}-0")][..3],
        ["5", "7", "2"].map(String::from)
    );
    assert_eq!(
        ours[&format!("{topic}-1")][..3],
        ["-", "3", "-"].map(String::from)
    );

    // Without members: the committed partitions only, no owner.
    member.stop().await;
    wait_until_empty(&admin, &group).await;
    let ours = lag_rows(&ok(&bootstrap, &["describe", &group]).await);
    let java = lag_rows(&java_describe(&bootstrap, &group));
    assert_eq!(ours, java);
    assert_eq!(ours.len(), 2);
    admin.delete_groups(&[group]).await.unwrap();
}

#[tokio::test]
async fn describe_shows_what_kafkas_tool_shows_for_a_classic_group() {
    describe_matches_kafkas_tool("classic").await;
}

#[tokio::test]
async fn describe_shows_what_kafkas_tool_shows_for_a_consumer_protocol_group() {
    describe_matches_kafkas_tool("consumer").await;
}
