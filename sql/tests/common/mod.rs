//! What the SQL test files share: reading the changes a `print` sink writes.
//!
//! The print sink writes to the process's standard output (not through the test
//! harness's capture), so a test that reads an updating result runs an ignored
//! test of its own binary in a child process and reads that child's stdout:
//!
//! ```text
//! parent test ──print_child(name, env)──> child: cargo test binary name --ignored
//!      ^                                        └ SqlJob with print sinks `tag> +U[..]`
//!      └────────── stdout ── printed_changes(tag) ── upsert_table ──> compare
//! ```
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;

/// Runs the ignored test `name` of this test binary in a child process with
/// `env` set, and returns its standard output (what its print sinks wrote).
pub fn print_child(name: &str, env: &[(&str, &str)]) -> String {
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout).into_owned();
    assert!(
        child.status.success(),
        "child failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    stdout
}

/// The changes a print sink `prefix` wrote, per key (the `key` column of its
/// rows) in the order written: `(true, row)` an upsert, `(false, row)` a delete.
pub fn printed_changes(
    stdout: &str,
    prefix: &str,
    key: usize,
) -> BTreeMap<String, Vec<(bool, String)>> {
    let mut out: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
    let tag = format!("{prefix}> ");
    for line in stdout.lines() {
        // The harness prints `test name ... ` without a newline before the
        // child's first line.
        let Some(at) = line.find(&tag) else {
            continue;
        };
        let change = &line[at + tag.len()..];
        let (upsert, fields) = if let Some(f) = change.strip_prefix("+U[") {
            (true, f)
        } else if let Some(f) = change.strip_prefix("-D[") {
            (false, f)
        } else {
            panic!("neither +U nor -D: {line}");
        };
        let fields = fields.strip_suffix(']').unwrap();
        let k = fields.split(", ").nth(key).unwrap().to_string();
        out.entry(k).or_default().push((upsert, fields.to_string()));
    }
    out
}

/// The table an upsert sink ends with after `changes`: the last upsert of each
/// key not deleted after it.
pub fn upsert_table(changes: &BTreeMap<String, Vec<(bool, String)>>) -> BTreeMap<String, String> {
    let mut table = BTreeMap::new();
    for (k, cs) in changes {
        for (upsert, row) in cs {
            if *upsert {
                table.insert(k.clone(), row.clone());
            } else {
                table.remove(k);
            }
        }
    }
    table
}
