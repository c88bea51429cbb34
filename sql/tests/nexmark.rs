//! Nexmark q0, q1, q2, q3, q4, q5, q7 and q8 as published (examples/nexmark/, sink
//! swapped from `blackhole` to files, or to `print` for q4's updates) over the
//! `nexmark` connector, each compared with a reference computed here from the
//! same generator's events.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use connectors::nexmark::{Bid, Event, Generator, NexmarkConfig};
use serde_json::{Value as J, json};
use sql::time::format_timestamp;
use sql::{RunOptions, SqlJob};

mod common;
use common::{print_child, printed_changes, upsert_table};

const EVENTS: u64 = 50_000;
const TPS: u32 = 2_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn events() -> Vec<Event> {
    let g = Generator::new(
        NexmarkConfig::new()
            .max_events(EVENTS)
            .events_per_second(TPS),
    )
    .unwrap();
    (0..EVENTS).map(|n| g.event(n).0).collect()
}

fn bids() -> Vec<Bid> {
    events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Runs examples/nexmark/ddl.sql + `query` with its blackhole sink replaced by a
/// directory of JSON lines; returns the rows, sorted.
async fn run_query(query: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("strom-nexmark-{query}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = format!("'connector' = 'filesystem', 'path' = '{}'", dir.display());
    run_job(query, &sink).await;
    let mut rows = read_rows(&dir);
    rows.sort();
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

/// Runs examples/nexmark/ddl.sql + `query` with its blackhole sink's options
/// replaced by `sink`, until the generator's events end.
async fn run_job(query: &str, sink: &str) {
    let vars = |n: &str| match n {
        "EVENTS_NUM" => Some(EVENTS.to_string()),
        "TPS" => Some(TPS.to_string()),
        _ => None,
    };
    let ddl = std::fs::read_to_string(root().join("examples/nexmark/ddl.sql")).unwrap();
    let q = std::fs::read_to_string(root().join(format!("examples/nexmark/{query}.sql"))).unwrap();
    let q = q.replace("'connector' = 'blackhole'", sink);
    let text = sql::vars::substitute(&format!("{ddl}\n{q}"), vars).unwrap();
    let job = SqlJob::compile(&text).unwrap();
    let (_stop, watch) = SqlJob::stop_signal();
    job.run(
        RunOptions {
            bounded: true,
            ..Default::default()
        },
        watch,
    )
    .await
    .unwrap();
}

fn read_rows(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        out.extend(
            text.lines()
                .map(|l| serde_json::from_str::<J>(l).unwrap().to_string()),
        );
    }
    out
}

fn sorted(v: impl IntoIterator<Item = J>) -> Vec<String> {
    let mut v: Vec<String> = v.into_iter().map(|j| j.to_string()).collect();
    v.sort();
    v
}

fn ts(ms: i64) -> String {
    format_timestamp(ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q0_passes_every_bid_through() {
    let want = sorted(bids().iter().map(|b| {
        json!({"auction": b.auction, "bidder": b.bidder, "price": b.price, "dateTime": ts(b.date_time), "extra": b.extra})
    }));
    assert_eq!(want.len(), 46_000);
    assert_eq!(run_query("q0").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q1_converts_prices_exactly() {
    let want = sorted(bids().iter().map(|b| {
        let milli = b.price * 908;
        let price: J = serde_json::from_str(&format!("{}.{:03}", milli / 1000, milli % 1000)).unwrap();
        json!({"auction": b.auction, "bidder": b.bidder, "price": price, "dateTime": ts(b.date_time), "extra": b.extra})
    }));
    assert_eq!(run_query("q1").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_selects_every_123rd_auction() {
    let want = sorted(
        bids()
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| json!({"auction": b.auction, "price": b.price})),
    );
    assert!(!want.is_empty());
    assert_eq!(run_query("q2").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q3_joins_category_10_auctions_with_their_sellers_in_or_id_and_ca() {
    let events = events();
    let people: HashMap<i64, _> = events
        .iter()
        .filter_map(|e| match e {
            Event::Person(p) => Some((p.id, p)),
            _ => None,
        })
        .collect();
    let mut want = Vec::new();
    for e in &events {
        let Event::Auction(a) = e else { continue };
        if a.category != 10 {
            continue;
        }
        if let Some(p) = people.get(&a.seller) {
            if ["OR", "ID", "CA"].contains(&p.state.as_str()) {
                want.push(json!({"name": p.name, "city": p.city, "state": p.state, "id": a.id}));
            }
        }
    }
    let want = sorted(want);
    assert!(want.len() >= 50, "{}", want.len());
    assert_eq!(run_query("q3").await, want);
}

/// Set in the child process that runs q4 into a print sink (its updates).
const Q4_CHILD: &str = "STROM_NEXMARK_Q4_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs as the child process of q4_averages_the_highest_bid_of_each_auction_per_category"]
async fn q4_print_child() {
    if std::env::var(Q4_CHILD).is_err() {
        return;
    }
    run_job("q4", "'connector' = 'print', 'print-identifier' = 'q4'").await;
}

#[test]
fn q4_averages_the_highest_bid_of_each_auction_per_category() {
    // Reference: per auction, the highest price of its bids made between its
    // start and its expiry (both included), whatever the order they arrived in;
    // per category, the integer average of those prices (AVG of BIGINT).
    let (mut auctions, mut bids) = (HashMap::new(), Vec::new());
    for e in events() {
        match e {
            Event::Auction(a) => {
                auctions.insert(a.id, a);
            }
            Event::Bid(b) => bids.push(b),
            Event::Person(_) => {}
        }
    }
    let mut highest: HashMap<i64, (i64, i64)> = HashMap::new();
    for b in &bids {
        let Some(a) = auctions.get(&b.auction) else {
            continue;
        };
        if a.date_time <= b.date_time && b.date_time <= a.expires {
            let h = highest.entry(a.id).or_insert((a.category, b.price));
            h.1 = h.1.max(b.price);
        }
    }
    let mut per_category: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (category, price) in highest.values() {
        let c = per_category.entry(*category).or_default();
        c.0 += price;
        c.1 += 1;
    }
    let want: BTreeMap<String, String> = per_category
        .iter()
        .map(|(c, (sum, n))| (c.to_string(), format!("{c}, {}", sum / n)))
        .collect();
    assert!(want.len() >= 3 && highest.len() >= 100, "{want:?}");

    let stdout = print_child("q4_print_child", &[(Q4_CHILD, "1")]);
    let changes = printed_changes(&stdout, "q4", 0);
    assert_eq!(upsert_table(&changes), want);
    // The average moved as auctions' highest bids rose: updates, not one row
    // per category.
    assert!(
        changes.values().map(Vec::len).sum::<usize>() > 2 * want.len(),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q5_finds_the_hot_auctions_of_each_sliding_window() {
    // HOP: 10 s windows every 2 s; bids per (window, auction); the auctions at
    // the window's maximum.
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for b in bids() {
        let t = b.date_time;
        let mut start = t - t.rem_euclid(2000);
        while start > t - 10_000 {
            *counts.entry((start, b.auction)).or_default() += 1;
            start -= 2000;
        }
    }
    let mut max: HashMap<i64, i64> = HashMap::new();
    for ((w, _), n) in &counts {
        let m = max.entry(*w).or_default();
        *m = (*m).max(*n);
    }
    let want = sorted(
        counts
            .iter()
            .filter(|((w, _), n)| **n >= max[w])
            .map(|((_, a), n)| json!({"auction": a, "num": n})),
    );
    assert!(want.len() > 10);
    assert_eq!(run_query("q5").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q7_finds_the_highest_bids_of_each_window() {
    let bids = bids();
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &bids {
        let end = b.date_time - b.date_time.rem_euclid(10_000) + 10_000;
        let m = max.entry(end).or_default();
        *m = (*m).max(b.price);
    }
    let mut want = Vec::new();
    for b in &bids {
        for (end, m) in &max {
            if b.price == *m && b.date_time >= end - 10_000 && b.date_time <= *end {
                want.push(json!({"auction": b.auction, "bidder": b.bidder, "price": b.price, "dateTime": ts(b.date_time), "extra": b.extra}));
            }
        }
    }
    let want = sorted(want);
    assert!(want.len() >= 2);
    assert_eq!(run_query("q7").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q8_finds_the_people_who_opened_an_auction_in_the_window_they_registered() {
    let window = |t: i64| t - t.rem_euclid(10_000);
    let mut people = BTreeSet::new();
    let mut sellers = BTreeSet::new();
    for e in events() {
        match e {
            Event::Person(p) => {
                people.insert((window(p.date_time), p.id, p.name));
            }
            Event::Auction(a) => {
                sellers.insert((window(a.date_time), a.seller));
            }
            Event::Bid(_) => {}
        }
    }
    let want = sorted(
        people
            .iter()
            .filter(|(w, id, _)| sellers.contains(&(*w, *id)))
            .map(|(w, id, name)| json!({"id": id, "name": name, "stime": ts(*w)})),
    );
    assert!(want.len() >= 10, "{want:?}");
    assert_eq!(run_query("q8").await, want);
}

/// Each query's sources decode only the columns it reads (and the event time).
#[test]
fn each_query_decodes_only_the_columns_it_reads() {
    let ddl = std::fs::read_to_string(root().join("examples/nexmark/ddl.sql")).unwrap();
    for (query, expected) in [
        (
            "q0",
            vec!["bid decodes only [auction, bidder, price, dateTime, extra]"],
        ),
        ("q2", vec!["bid decodes only [auction, price, dateTime]"]),
        (
            "q3",
            vec![
                "auction decodes only [id, dateTime, seller, category]",
                "person decodes only [id, name, city, state, dateTime]",
            ],
        ),
        (
            "q4",
            vec![
                "auction decodes only [id, dateTime, expires, category]",
                "bid decodes only [auction, price, dateTime]",
            ],
        ),
        ("q5", vec!["bid decodes only [auction, dateTime]"]),
        (
            "q8",
            vec![
                "person decodes only [id, name, dateTime]",
                "auction decodes only [dateTime, seller]",
            ],
        ),
    ] {
        let sql =
            std::fs::read_to_string(root().join(format!("examples/nexmark/{query}.sql"))).unwrap();
        let text = sql::vars::substitute(&format!("{ddl}\n{sql}"), |_| None).unwrap();
        let explain = SqlJob::compile(&text).unwrap().explain();
        let scans: Vec<String> = explain
            .lines()
            .filter_map(|l| {
                let l = l.trim_start().strip_prefix("Scan ")?;
                let table = l.split_whitespace().next()?;
                Some(format!("{table} {}", &l[l.find("decodes only")?..]))
            })
            .collect();
        for e in expected {
            assert!(
                scans.iter().any(|s| s == e),
                "{query}: {e} not in {scans:?}"
            );
        }
    }
}
