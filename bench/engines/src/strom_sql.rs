//! The pipelines in strom's SQL (the `strom-sql` system), and the arguments
//! both drivers give `strom run` (here and in `nexmark.rs`).
//!
//! ```text
//!  driver ── script(pipeline) ──► <run dir>/<system>-<pipeline>-<guarantee>.sql
//!         ── strom run FILE ────► child: Kafka source (csv) ─► SQL operators ─► Kafka sink (csv)
//!  output record: key k000123 ('key.format' = 'raw')  value k000123,1700000000000,42
//! ```
//!
//! Every pipeline reads the input as CSV text into `k STRING, ms BIGINT, amount
//! BIGINT` and writes CSV with the key column `k` as a raw record key, so keys
//! and values are the bytes the other systems write and the check is theirs.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};

use crate::data::{KEEP_BELOW, OUT_OF_ORDER_MS, SLIDING_SIZE_MS, SLIDING_SLIDE_MS, WINDOW_MS};
use crate::join::{JOIN_LOWER_MS, JOIN_UPPER_MS};

/// The key column of every output table: the record key is `{"k":"<value>"}`.
const KEY_COLUMN: &str = "k";

/// The arguments of `strom run` of `sql` as both drivers give them: no status
/// server, `parallelism` operators, checkpoints every `checkpoint_ms`, and
/// `app` as application id (consumer group, transactional ids, changelog
/// topics). `bounded`: read what the topics hold and end.
pub fn run_args(
    sql: &Path,
    app: &str,
    parallelism: usize,
    checkpoint_ms: u64,
    bounded: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["run".into()];
    if bounded {
        args.push("--bounded".into());
    }
    for (flag, value) in [
        ("--http-addr", "off".to_string()),
        ("--parallelism", parallelism.to_string()),
        ("--checkpoint-interval-ms", checkpoint_ms.to_string()),
        ("--application-id", app.to_string()),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    args.push(sql.into());
    args
}

/// What a script reads and writes.
pub struct Tables<'a> {
    /// Bootstrap servers.
    pub bootstrap: &'a str,
    /// The input topic (the orders of the join).
    pub input: &'a str,
    /// The join's second input.
    pub payments: &'a str,
    /// The output topic.
    pub output: &'a str,
    /// Exactly-once sink (else at-least-once).
    pub eos: bool,
    /// Extra Kafka properties, `key=value`.
    pub properties: &'a [String],
}

/// A SQL string literal: `text` in single quotes, quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Tables<'_> {
    /// The Kafka options of the input table: topic, CSV, the job's Kafka
    /// properties (one table carries them for the whole job).
    fn source(&self, topic: &str) -> Result<String> {
        let mut with = format!(
            "'connector' = 'kafka', 'topic' = {}, 'format' = 'csv',\n  \
             'scan.startup.mode' = 'earliest-offset',\n  \
             'properties.bootstrap.servers' = {},\n  \
             'properties.compression.type' = 'lz4', 'properties.linger.ms' = '5'",
            literal(topic),
            literal(self.bootstrap)
        );
        for p in self.properties {
            let Some((k, v)) = p.split_once('=') else {
                bail!("--strom-property {p}: expected key=value");
            };
            let _ = write!(
                with,
                ",\n  {} = {}",
                literal(&format!("properties.{k}")),
                literal(v)
            );
        }
        Ok(with)
    }

    /// A source table `name` over `topic`: the input's three fields, and with
    /// `event_time` the computed column `ts` and a watermark
    /// [`OUT_OF_ORDER_MS`] behind it. Only the `first` source carries the
    /// job's Kafka properties (they are merged over the tables and must agree).
    fn input_table(
        &self,
        name: &str,
        topic: &str,
        first: bool,
        event_time: bool,
    ) -> Result<String> {
        let time = if event_time {
            format!(
                ",\n  ts AS TO_TIMESTAMP_LTZ(ms, 3),\n  \
                 WATERMARK FOR ts AS ts - INTERVAL '{}' SECOND",
                OUT_OF_ORDER_MS / 1000
            )
        } else {
            String::new()
        };
        let with = if first {
            self.source(topic)?
        } else {
            format!(
                "'connector' = 'kafka', 'topic' = {}, 'format' = 'csv'",
                literal(topic)
            )
        };
        Ok(format!(
            "CREATE TABLE {name} (\n  {KEY_COLUMN} STRING, ms BIGINT, amount BIGINT{time}\n) WITH (\n  {with}\n);\n\n"
        ))
    }

    /// The output table: `columns` (the first is the key) as CSV.
    fn output_table(&self, columns: &str) -> String {
        format!(
            "CREATE TABLE output (\n  {columns}\n) WITH (\n  'connector' = 'kafka', 'topic' = {}, \
             'format' = 'csv', 'key.fields' = '{KEY_COLUMN}', 'key.format' = 'raw',\n  \
             'sink.delivery-guarantee' = '{}'\n);\n\n",
            literal(self.output),
            if self.eos {
                "exactly-once"
            } else {
                "at-least-once"
            }
        )
    }

    /// The script of `pipeline`, or why strom's SQL cannot run it.
    pub fn script(&self, pipeline: &str) -> Result<String> {
        let k = KEY_COLUMN;
        let secs = |ms: i64| ms / 1000;
        let body = match pipeline {
            // No event time, as the other systems: the records are copied.
            "passthrough" => format!(
                "{}{}INSERT INTO output SELECT {k}, ms, amount FROM input;\n",
                self.input_table("input", self.input, true, false)?,
                self.output_table(&format!("{k} STRING, ms BIGINT, amount BIGINT")),
            ),
            "filtermap" => format!(
                "{}{}INSERT INTO output SELECT {k}, ms, amount * 2 FROM input WHERE amount < {KEEP_BELOW};\n",
                self.input_table("input", self.input, true, false)?,
                self.output_table(&format!("{k} STRING, ms BIGINT, amount BIGINT")),
            ),
            "count" => format!(
                "{}{}INSERT INTO output\nSELECT {k}, CAST(window_start AS BIGINT), COUNT(*)\n\
                 FROM TABLE(TUMBLE(TABLE input, DESCRIPTOR(ts), INTERVAL '{}' SECOND))\n\
                 GROUP BY {k}, window_start, window_end;\n",
                self.input_table("input", self.input, true, true)?,
                self.output_table(&format!("{k} STRING, window_start BIGINT, n BIGINT")),
                secs(WINDOW_MS),
            ),
            // The region (`crate::data::region`): `r` and the key's last three
            // characters (digits), an end marker's own key.
            "sliding" => format!(
                "{}CREATE VIEW regions AS\nSELECT CASE WHEN {k} LIKE 'k%' \
                 THEN CONCAT('r', SUBSTRING({k}, CHAR_LENGTH({k}) - 2)) ELSE {k} END AS {k}, amount, ts\n\
                 FROM input;\n\n{}INSERT INTO output\nSELECT {k}, CAST(window_start AS BIGINT), SUM(amount)\n\
                 FROM TABLE(HOP(TABLE regions, DESCRIPTOR(ts), INTERVAL '{}' SECOND, INTERVAL '{}' SECOND))\n\
                 GROUP BY {k}, window_start, window_end;\n",
                self.input_table("input", self.input, true, true)?,
                self.output_table(&format!("{k} STRING, window_start BIGINT, total BIGINT")),
                secs(SLIDING_SLIDE_MS),
                secs(SLIDING_SIZE_MS),
            ),
            "join" => format!(
                "{}{}{}INSERT INTO output\nSELECT o.{k}, o.ms, o.amount, p.ms, p.amount\n\
                 FROM orders o JOIN payments p\n  ON o.{k} = p.{k}\n \
                 AND p.ts BETWEEN o.ts - INTERVAL '{}' SECOND AND o.ts + INTERVAL '{}' SECOND;\n",
                self.input_table("orders", self.input, true, true)?,
                self.input_table("payments", self.payments, false, true)?,
                self.output_table(&format!(
                    "{k} STRING, order_ms BIGINT, order_amount BIGINT, payment_ms BIGINT, payment_amount BIGINT"
                )),
                secs(-JOIN_LOWER_MS),
                secs(JOIN_UPPER_MS),
            ),
            other => bail!("strom-sql has no pipeline {other}"),
        };
        Ok(format!(
            "-- bench/engines, pipeline {pipeline} on strom's SQL (written by the driver).\n\n{body}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pipeline_has_a_script_and_quotes_its_literals() {
        let props = ["max.partition.fetch.bytes=65536".to_string()];
        let t = Tables {
            bootstrap: "127.0.0.1:9092",
            input: "in",
            payments: "pay",
            output: "o'ut",
            eos: true,
            properties: &props,
        };
        for p in ["passthrough", "filtermap", "count", "sliding", "join"] {
            let sql = t.script(p).expect(p);
            assert!(sql.contains("'topic' = 'o''ut'"), "{sql}");
            assert!(sql.contains("'exactly-once'"), "{sql}");
            assert!(sql.contains("'properties.max.partition.fetch.bytes' = '65536'"));
        }
        assert!(t.script("nope").is_err());
    }
}
