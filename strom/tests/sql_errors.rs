//! `strom run` on bad input and unreachable systems: one clear `error:` line and
//! a non-zero exit, never a panic. Needs no broker or database.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// Runs `strom run` on `sql`; returns (exit success, stderr).
fn strom_run(name: &str, sql: &str) -> (bool, String) {
    strom_run_with(name, sql, &[])
}

/// Runs `strom [global] run` on `sql`; returns (exit success, stderr).
fn strom_run_with(name: &str, sql: &str, global: &[&str]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("strom-sql-errors-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "a\nb\n").unwrap();
    let file = dir.join("p.sql");
    std::fs::write(&file, sql.replace("$DIR", &dir.display().to_string())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(global)
        .args(["run", &file.display().to_string()])
        .env_remove("KAFKA_BOOTSTRAP")
        .env("STROM_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_error(name: &str, sql: &str, expect: &str) {
    let (ok, stderr) = strom_run(name, sql);
    assert!(!ok, "{name}: exit 0\n{stderr}");
    assert!(!stderr.contains("panicked"), "{name}: panic\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{name}: one error line expected\n{stderr}");
    assert!(
        errors[0].contains(expect),
        "{name}: {:?} lacks {expect:?}",
        errors[0]
    );
}

const FILE_SOURCE: &str = "CREATE TABLE t (line STRING) WITH ('connector' = 'filesystem', 'path' = '$DIR/in.txt', 'format' = 'raw');\n";

#[test]
fn malformed_sql_names_its_line_and_column() {
    assert_one_error(
        "syntax",
        &format!("{FILE_SOURCE}INSERT INTO o SELEC line FROM t;"),
        "line 2, column",
    );
}

#[test]
fn an_unknown_option_lists_the_known_ones() {
    let sql = format!(
        "{FILE_SOURCE}CREATE TABLE o (line STRING) WITH ('connector' = 'print', 'colour' = 'red');\nINSERT INTO o SELECT line FROM t;"
    );
    assert_one_error(
        "option",
        &sql,
        "unknown option 'colour'; print tables take: connector, print-identifier",
    );
}

#[test]
fn a_type_error_names_both_types() {
    let sql = format!(
        "{FILE_SOURCE}CREATE TABLE o (n INT) WITH ('connector' = 'print');\nINSERT INTO o SELECT line + 1 FROM t;"
    );
    assert_one_error("types", &sql, "cannot apply + to STRING and INT");
}

#[test]
fn an_unreachable_broker_fails_after_the_setup_timeout() {
    let sql = "CREATE TABLE t (line STRING) WITH ('connector' = 'kafka', 'topic' = 'x', 'format' = 'raw', 'properties.bootstrap.servers' = '127.0.0.1:1', 'properties.request.timeout.ms' = '2000', 'properties.strom.setup.timeout.ms' = '3000');\nCREATE TABLE o (line STRING) WITH ('connector' = 'print');\nINSERT INTO o SELECT line FROM t;";
    let started = std::time::Instant::now();
    assert_one_error("broker", sql, "connecting to 127.0.0.1:1");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_database_fails_naming_the_table() {
    let sql = format!(
        "{FILE_SOURCE}CREATE TABLE o (line STRING) WITH ('connector' = 'postgres', 'url' = 'host=127.0.0.1 port=1 user=postgres dbname=strom');\nINSERT INTO o SELECT line FROM t;"
    );
    assert_one_error("database", &sql, "postgres table o: connecting");
}

#[test]
fn an_explicit_bootstrap_flag_wins_over_the_tables_properties() {
    let sql = "CREATE TABLE t (line STRING) WITH ('connector' = 'kafka', 'topic' = 'x', 'format' = 'raw', 'properties.bootstrap.servers' = '127.0.0.1:1', 'properties.request.timeout.ms' = '2000', 'properties.strom.setup.timeout.ms' = '3000');\nCREATE TABLE o (line STRING) WITH ('connector' = 'print');\nINSERT INTO o SELECT line FROM t;";
    let (ok, stderr) = strom_run_with("flag", sql, &["--bootstrap", "127.0.0.1:2"]);
    assert!(!ok);
    assert!(stderr.contains("connecting to 127.0.0.1:2"), "{stderr}");
}

#[test]
fn run_takes_the_broker_from_x_properties_and_the_config_file() {
    let sql = "CREATE TABLE t (line STRING) WITH ('connector' = 'kafka', 'topic' = 'x', 'format' = 'raw', 'properties.request.timeout.ms' = '2000', 'properties.strom.setup.timeout.ms' = '3000');\nCREATE TABLE o (line STRING) WITH ('connector' = 'print');\nINSERT INTO o SELECT line FROM t;";
    let (ok, stderr) = strom_run_with("x-flag", sql, &["-X", "bootstrap.servers=127.0.0.1:3"]);
    assert!(!ok);
    assert!(stderr.contains("connecting to 127.0.0.1:3"), "{stderr}");
    let config = std::env::temp_dir().join(format!(
        "strom-run-config-{}.properties",
        std::process::id()
    ));
    std::fs::write(&config, "bootstrap.servers=127.0.0.1:4\n").unwrap();
    let (ok, stderr) = strom_run_with("config", sql, &["--config", &config.display().to_string()]);
    let _ = std::fs::remove_file(&config);
    assert!(!ok);
    assert!(stderr.contains("connecting to 127.0.0.1:4"), "{stderr}");
}

#[test]
fn sigterm_while_waiting_for_an_unreachable_broker_stops_at_once() {
    let dir = std::env::temp_dir().join(format!("strom-sql-errors-{}-term", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p.sql");
    // Setup would keep retrying for a minute.
    std::fs::write(&file, "CREATE TABLE t (line STRING) WITH ('connector' = 'kafka', 'topic' = 'x', 'format' = 'raw', 'properties.bootstrap.servers' = '127.0.0.1:1', 'properties.request.timeout.ms' = '1000', 'properties.strom.setup.timeout.ms' = '60000');\nCREATE TABLE o (line STRING) WITH ('connector' = 'print');\nINSERT INTO o SELECT line FROM t;").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["run", &file.display().to_string()])
        .env_remove("KAFKA_BOOTSTRAP")
        .env("STROM_HTTP_ADDR", "127.0.0.1:0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let signalled = std::time::Instant::now();
    integration_tests::signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(10),
        "{:?} after SIGTERM\n{stderr}",
        signalled.elapsed()
    );
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(
        stderr.contains("stopped after 0 incarnation(s)"),
        "{stderr}"
    );
}
