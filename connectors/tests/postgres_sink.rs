//! The PostgreSQL sink against a real server, driven through the `Sink` trait.
//!
//! `scripts/test` starts the server (`scripts/postgres up`) and exports
//! `POSTGRES_URL`. Run by hand without one, these tests skip with a loud message;
//! under `CI=true` they fail instead.
//!
//! `POSTGRES_URL="$(scripts/postgres url)" cargo test -p connectors --test postgres_sink`

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use connectors::postgres::{PgColumn, PgType, PgValue, PostgresSink, WriteMode};
use engine::{CheckpointId, Epoch, ErrorClass, Record, Sink, SinkContext};
use tokio_postgres::{Client, NoTls};

/// The test server's connection string, or `None` (after a loud message) when
/// there is none; panics under `CI=true`.
fn pg_url() -> Option<String> {
    if let Ok(url) = std::env::var("POSTGRES_URL") {
        if !url.trim().is_empty() {
            return Some(url.trim().to_string());
        }
    }
    if let Some(url) = url_from_env_file() {
        return Some(url);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if in_ci {
        panic!("CI=true but no PostgreSQL is configured: set POSTGRES_URL or run scripts/test");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!! SKIPPING PostgreSQL test: no server configured (POSTGRES_URL unset).   !!");
    eprintln!("!! Run `scripts/test`, or `scripts/postgres up` before `cargo test`.      !!");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    None
}

/// `POSTGRES_URL=` from the env file of a server `scripts/postgres up` started.
fn url_from_env_file() -> Option<String> {
    let dir = std::env::var_os("STROM_POSTGRES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/postgres"));
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("POSTGRES_URL="))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

macro_rules! require_pg {
    () => {
        match pg_url() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A name no other test (or earlier run) uses.
fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or(0);
    format!(
        "strom_t_{tag}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn client(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// `(id, name)` rows of `table`, ordered by id.
async fn rows(c: &Client, table: &str) -> Vec<(i64, String)> {
    c.query(
        &format!("SELECT id, name FROM \"{table}\" ORDER BY id, name"),
        &[],
    )
    .await
    .expect("select")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Gids of sink `name` still prepared.
async fn prepared_of(c: &Client, name: &str) -> Vec<String> {
    let prefix = format!("strom-{name}-");
    c.query("SELECT gid FROM pg_prepared_xacts", &[])
        .await
        .expect("pg_prepared_xacts")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|g| g.starts_with(&prefix))
        .collect()
}

type Row = (i64, String);

fn sink(url: &str, table: &str) -> PostgresSink<Row> {
    PostgresSink::new(
        url,
        table,
        vec![
            PgColumn::new("id", PgType::BigInt),
            PgColumn::new("name", PgType::Text),
        ],
        |r: &Row| vec![PgValue::BigInt(r.0), PgValue::Text(r.1.clone())],
    )
    .create_table(true)
}

fn ctx(restored: Vec<Vec<u8>>) -> SinkContext {
    SinkContext {
        subtask: 0,
        parallelism: 1,
        epoch: Epoch(0),
        restored,
    }
}

fn batch(rows: &[(i64, &str)]) -> Vec<Record<Row>> {
    rows.iter()
        .map(|(id, name)| Record::new((*id, name.to_string()), 0))
        .collect()
}

fn owned(rows: &[(i64, &str)]) -> Vec<Row> {
    rows.iter().map(|(i, n)| (*i, n.to_string())).collect()
}

#[tokio::test]
async fn at_least_once_rows_are_committed_at_pre_commit() {
    let url = require_pg!();
    let table = unique("append");
    let c = client(&url).await;
    // A batch size below the row count: rows reach the open transaction early but
    // stay invisible until the checkpoint's pre-commit.
    let mut s = sink(&url, &table).batch_size(2);
    s.open(&ctx(vec![])).await.expect("open");
    s.write(batch(&[(1, "a"), (2, "b"), (3, "c")]))
        .await
        .expect("write");
    assert_eq!(
        rows(&c, &table).await,
        vec![],
        "nothing visible before the checkpoint"
    );
    let state = s.pre_commit(CheckpointId(1)).await.expect("pre_commit");
    assert!(state.is_empty(), "at-least-once keeps no state");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "a"), (2, "b"), (3, "c")])
    );
    s.commit(CheckpointId(1)).await.expect("commit");
    s.write(batch(&[(1, "a")])).await.expect("write");
    s.finish().await.expect("finish");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "a"), (1, "a"), (2, "b"), (3, "c")]),
        "append keeps duplicates"
    );
}

#[tokio::test]
async fn upsert_keeps_the_last_row_per_key_within_and_across_checkpoints() {
    let url = require_pg!();
    let table = unique("upsert");
    let c = client(&url).await;
    let mut s = sink(&url, &table).mode(WriteMode::Upsert {
        key: vec!["id".into()],
    });
    s.open(&ctx(vec![])).await.expect("open");
    // Repeated keys in one batch and across batches of one checkpoint: one
    // statement cannot update a row twice, so the sink must keep only the last.
    s.write(batch(&[(1, "a"), (2, "b"), (1, "c")]))
        .await
        .expect("write");
    s.write(batch(&[(2, "d"), (1, "e")])).await.expect("write");
    s.pre_commit(CheckpointId(1)).await.expect("pre_commit");
    s.commit(CheckpointId(1)).await.expect("commit");
    assert_eq!(rows(&c, &table).await, owned(&[(1, "e"), (2, "d")]));
    s.write(batch(&[(2, "f"), (3, "g")])).await.expect("write");
    s.pre_commit(CheckpointId(2)).await.expect("pre_commit");
    s.commit(CheckpointId(2)).await.expect("commit");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "e"), (2, "f"), (3, "g")])
    );
}

/// An upsert sink whose records with an empty name delete their id.
fn deleting_sink(url: &str, table: &str) -> PostgresSink<Row> {
    sink(url, table)
        .mode(WriteMode::Upsert {
            key: vec!["id".into()],
        })
        .deletes(|r: &Row| r.1.is_empty())
}

#[tokio::test]
async fn deletes_remove_their_key_in_the_checkpoint_transaction_and_the_last_change_per_key_wins() {
    let url = require_pg!();
    let table = unique("delete");
    let name = unique("delete");
    let c = client(&url).await;
    let mut s = deleting_sink(&url, &table).exactly_once(&name);
    s.open(&ctx(vec![])).await.expect("open");
    s.write(batch(&[(1, "a"), (2, "b"), (3, "c")]))
        .await
        .expect("write");
    s.pre_commit(CheckpointId(1)).await.expect("pre_commit");
    s.commit(CheckpointId(1)).await.expect("commit");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "a"), (2, "b"), (3, "c")])
    );
    // 1 deleted; 2 deleted then written again; 3 written then deleted; 4 never
    // existed (a no-op). Nothing is visible before the checkpoint commits.
    s.write(batch(&[(1, ""), (2, ""), (3, "d"), (4, "")]))
        .await
        .expect("write");
    s.write(batch(&[(2, "e"), (3, "")])).await.expect("write");
    s.pre_commit(CheckpointId(2)).await.expect("pre_commit");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "a"), (2, "b"), (3, "c")]),
        "deletes are prepared with the upserts, invisible until the commit"
    );
    s.commit(CheckpointId(2)).await.expect("commit");
    assert_eq!(rows(&c, &table).await, owned(&[(2, "e")]));
    s.finish().await.expect("finish");
}

#[tokio::test]
async fn a_delete_reaching_an_append_sink_fails_it() {
    let url = require_pg!();
    let table = unique("append_delete");
    let mut s = sink(&url, &table).deletes(|r: &Row| r.1.is_empty());
    s.open(&ctx(vec![])).await.expect("open");
    let err = s.write(batch(&[(1, "")])).await.expect_err("a delete");
    assert!(err.to_string().contains("no key to delete by"), "{err}");
}

#[tokio::test]
async fn exactly_once_rows_are_invisible_after_pre_commit_and_visible_after_commit() {
    let url = require_pg!();
    let table = unique("eo");
    let name = unique("eo");
    let c = client(&url).await;
    let mut s = sink(&url, &table).exactly_once(&name);
    s.open(&ctx(vec![])).await.expect("open");
    s.write(batch(&[(1, "a"), (2, "b")])).await.expect("write");
    let state = s.pre_commit(CheckpointId(1)).await.expect("pre_commit");
    assert!(
        !state.is_empty(),
        "the prepared gid is kept in the checkpoint"
    );
    assert_eq!(
        rows(&c, &table).await,
        vec![],
        "prepared rows are invisible"
    );
    assert_eq!(
        prepared_of(&c, &name).await,
        vec![format!("strom-{name}-0-1")]
    );
    s.commit(CheckpointId(1)).await.expect("commit");
    assert_eq!(rows(&c, &table).await, owned(&[(1, "a"), (2, "b")]));
    assert_eq!(prepared_of(&c, &name).await, Vec::<String>::new());
    // A checkpoint without rows prepares nothing and keeps no state.
    let empty = s.pre_commit(CheckpointId(2)).await.expect("pre_commit");
    assert!(empty.is_empty());
    s.commit(CheckpointId(2)).await.expect("commit");
}

#[tokio::test]
async fn after_a_crash_the_restored_checkpoint_commits_and_the_incomplete_one_rolls_back() {
    let url = require_pg!();
    let table = unique("crash");
    let name = unique("crash");
    let c = client(&url).await;

    // Sink A pre-commits checkpoints 1 and 2, then the process "dies": no commit.
    let mut a = sink(&url, &table).exactly_once(&name);
    a.open(&ctx(vec![])).await.expect("open");
    a.write(batch(&[(1, "one")])).await.expect("write");
    let state1 = a.pre_commit(CheckpointId(1)).await.expect("pre_commit 1");
    a.write(batch(&[(2, "two")])).await.expect("write");
    let state2 = a.pre_commit(CheckpointId(2)).await.expect("pre_commit 2");
    // Rows after the last barrier are lost with the connection.
    a.write(batch(&[(3, "three")])).await.expect("write");
    assert_ne!(state1, state2);
    drop(a);
    assert_eq!(prepared_of(&c, &name).await.len(), 2);
    assert_eq!(rows(&c, &table).await, vec![]);

    // The job restores checkpoint 1 (2 never completed).
    let mut b = sink(&url, &table).exactly_once(&name);
    b.open(&ctx(vec![state1]))
        .await
        .expect("open after the crash");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "one")]),
        "checkpoint 1 committed, 2 rolled back"
    );
    assert_eq!(
        prepared_of(&c, &name).await,
        Vec::<String>::new(),
        "no gid of this sink is left"
    );

    // The replay after checkpoint 1, then the end of the input.
    b.write(batch(&[(2, "two")])).await.expect("write");
    b.pre_commit(CheckpointId(2))
        .await
        .expect("pre_commit 2 again");
    b.write(batch(&[(3, "three")])).await.expect("write");
    b.finish().await.expect("finish");
    assert_eq!(
        rows(&c, &table).await,
        owned(&[(1, "one"), (2, "two"), (3, "three")])
    );
    assert_eq!(prepared_of(&c, &name).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_restore_commits_a_prepared_transaction_only_once() {
    let url = require_pg!();
    let table = unique("twice");
    let name = unique("twice");
    let c = client(&url).await;
    let mut a = sink(&url, &table).exactly_once(&name);
    a.open(&ctx(vec![])).await.expect("open");
    a.write(batch(&[(1, "one")])).await.expect("write");
    let state1 = a.pre_commit(CheckpointId(1)).await.expect("pre_commit");
    a.commit(CheckpointId(1)).await.expect("commit");
    drop(a);
    // Checkpoint 1 was committed before the crash: its gid is gone, nothing to do.
    let mut b = sink(&url, &table).exactly_once(&name);
    b.open(&ctx(vec![state1])).await.expect("open");
    assert_eq!(rows(&c, &table).await, owned(&[(1, "one")]));
}

#[tokio::test]
async fn exactly_once_upserts_of_a_key_locked_by_a_prepared_transaction_wait_for_its_commit() {
    let url = require_pg!();
    let table = unique("locked");
    let name = unique("locked");
    let c = client(&url).await;
    // batch_size 1: without holding rows back, the second write would update row 1
    // while the prepared transaction of checkpoint 1 still locks it, and wait for
    // a COMMIT PREPARED only this task can send.
    let mut s = sink(&url, &table)
        .mode(WriteMode::Upsert {
            key: vec!["id".into()],
        })
        .exactly_once(&name)
        .batch_size(1);
    let run = async {
        s.open(&ctx(vec![])).await.expect("open");
        s.write(batch(&[(1, "a")])).await.expect("write");
        s.pre_commit(CheckpointId(1)).await.expect("pre_commit 1");
        s.write(batch(&[(1, "b"), (2, "c")]))
            .await
            .expect("write while 1 is prepared");
        s.commit(CheckpointId(1)).await.expect("commit 1");
        assert_eq!(rows(&c, &table).await, owned(&[(1, "a")]));
        s.pre_commit(CheckpointId(2)).await.expect("pre_commit 2");
        s.commit(CheckpointId(2)).await.expect("commit 2");
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the sink must not wait on its own prepared transaction's locks");
    assert_eq!(rows(&c, &table).await, owned(&[(1, "b"), (2, "c")]));
}

#[tokio::test]
async fn every_column_type_round_trips() {
    let url = require_pg!();
    let table = unique("types");
    let c = client(&url).await;
    let columns = vec![
        PgColumn::new("b", PgType::Boolean),
        PgColumn::new("i", PgType::Integer),
        PgColumn::new("l", PgType::BigInt),
        PgColumn::new("d", PgType::Double),
        PgColumn::new("n", PgType::Numeric),
        PgColumn::new("t", PgType::Text),
        PgColumn::new("y", PgType::Bytea),
        PgColumn::new("ts", PgType::Timestamp),
    ];
    let mut s =
        PostgresSink::new(&url, &table, columns, |v: &Vec<PgValue>| v.clone()).create_table(true);
    s.open(&ctx(vec![])).await.expect("open");
    let row = vec![
        PgValue::Bool(true),
        PgValue::BigInt(7), // fits the integer column
        PgValue::Int(-3),   // widens into the bigint column
        PgValue::Double(1.5),
        PgValue::Numeric("12345678901234567890.125".into()),
        PgValue::Text("it's \"quoted\"".into()),
        PgValue::Bytes(vec![0, 255, 1]),
        PgValue::Timestamp(1_700_000_000_123),
    ];
    let nulls = vec![PgValue::Null; 8];
    s.write(vec![Record::new(row, 0), Record::new(nulls, 0)])
        .await
        .expect("write");
    s.pre_commit(CheckpointId(1)).await.expect("pre_commit");
    let r = c
        .query_one(
            &format!(
                "SELECT b, i, l, d, n::text, t, y, \
                 to_char(ts, 'YYYY-MM-DD HH24:MI:SS.MS') FROM \"{table}\" WHERE b IS NOT NULL"
            ),
            &[],
        )
        .await
        .expect("select");
    assert!(r.get::<_, bool>(0));
    assert_eq!(r.get::<_, i32>(1), 7);
    assert_eq!(r.get::<_, i64>(2), -3);
    assert_eq!(r.get::<_, f64>(3), 1.5);
    assert_eq!(r.get::<_, String>(4), "12345678901234567890.125");
    assert_eq!(r.get::<_, String>(5), "it's \"quoted\"");
    assert_eq!(r.get::<_, Vec<u8>>(6), vec![0, 255, 1]);
    assert_eq!(
        r.get::<_, String>(7),
        "2023-11-14 22:13:20.123",
        "UTC, millisecond precision"
    );
    let nulls: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM \"{table}\" WHERE b IS NULL AND ts IS NULL"),
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(nulls, 1);
}

#[tokio::test]
async fn a_value_of_the_wrong_type_fails_the_job_naming_table_and_column() {
    let url = require_pg!();
    let table = unique("wrong");
    let mut s = PostgresSink::new(
        &url,
        &table,
        vec![PgColumn::new("id", PgType::Integer)],
        |v: &String| vec![PgValue::Text(v.clone())],
    )
    .create_table(true);
    s.open(&ctx(vec![])).await.expect("open");
    let e = s
        .write(vec![Record::new("x".to_string(), 0)])
        .await
        .expect_err("a text value in an integer column");
    let text = e.to_string();
    assert!(
        text.contains(&table) && text.contains("column id"),
        "{text}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);
    // The sink refuses to go on after a failure.
    assert!(s.pre_commit(CheckpointId(1)).await.is_err());
}

#[tokio::test]
async fn an_sql_error_names_the_table_and_the_server_message() {
    let url = require_pg!();
    let table = unique("missing");
    // No create_table: the table does not exist.
    let mut s = sink(&url, &table).create_table(false);
    s.open(&ctx(vec![])).await.expect("open");
    s.write(batch(&[(1, "a")])).await.expect("buffered");
    let e = s
        .pre_commit(CheckpointId(1))
        .await
        .expect_err("unknown table");
    let text = e.to_string();
    assert!(
        text.contains(&table) && text.contains("42P01") && text.contains("does not exist"),
        "{text}"
    );
    assert_eq!(e.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retriable_error() {
    // A port nothing listens on (the test server's port + 1 would be a guess;
    // port 1 is reserved and closed).
    let mut s = sink(
        "host=127.0.0.1 port=1 user=postgres dbname=strom connect_timeout=2",
        "t",
    );
    let e = s
        .open(&ctx(vec![]))
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
    assert!(e.to_string().contains("connecting"), "{e}");
}
