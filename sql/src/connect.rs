//! The `WITH` options of tables: which connector a table reads or writes, and
//! with which settings. Every option is checked when the script is planned, so an
//! unknown or malformed option fails before anything runs.
//!
//! | connector | source | sink | options |
//! |---|---|---|---|
//! | `kafka` | yes | yes | `topic`, `format`, `properties.file`, `properties.*`, `scan.startup.mode`, `scan.watermark.idle-timeout`, `scan.bad-records`, `scan.bad-records.topic`, `key.fields`, `key.format` (json, csv, raw), `value.fields-include` (ALL, EXCEPT_KEY), `sink.delivery-guarantee` |
//! | `filesystem` | yes (bounded) | yes | `path`, `format`, `csv.header`, `scan.bad-records`, `sink.rolling-policy.file-size` |
//! | `nexmark` | yes | | `nexmark.table` (person, auction, bid; default the table name), `events.num` (bounded), `first-event.rate`, `next-event.rate`, `person.proportion`, `auction.proportion`, `bid.proportion`, `base-time` |
//! | `print` | | yes | `print-identifier`, `standard-error` |
//! | `blackhole` | | yes | |
//! | `postgres` | | yes | `url`, `table-name`, `username`, `password`, `sink.delivery-guarantee`, `sink.create-table` |
//!
//! An updating result (a GROUP BY without window) goes to every sink but files,
//! keyed by the table's PRIMARY KEY (or `key.fields`), else by the group keys: an
//! upsert as a row (print: `+U`), a delete of a key as a tombstone (Kafka: the key
//! with a null value), a `DELETE` by key (PostgreSQL, in the checkpoint's
//! transaction), or `-D` (print). That key must be the group keys themselves:
//! a sink key with other columns (or fewer) is refused when the script is planned.
//!
//! A Kafka record key holds the `key.fields` columns (a sink: else the PRIMARY
//! KEY), encoded by `key.format`: `json` (default, `{"k":"v"}`), `csv` or `raw`
//! (one STRING column, its bare text). The value holds every column
//! (`'value.fields-include' = 'ALL'`, default) or, with `EXCEPT_KEY`, only the
//! others; a source then reads the key columns from the record key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, SqlError};
use crate::format::{KeyValueSplit, RowFormat, TableRows};
use crate::parse::TableDef;
use crate::plan::table_time;
use crate::types::{DataType, Schema};

/// Where a source table's rows come from.
#[derive(Clone, Debug)]
pub enum SourceConnector {
    /// Kafka topics read by the job's consumer group.
    Kafka {
        /// Topics.
        topics: Vec<String>,
        /// Value format.
        format: TableRows,
        /// Dead-letter topic for records that do not decode (else `skip`).
        dead_letter: Option<String>,
        /// Skip bad records (counted) instead of failing.
        skip_bad: bool,
        /// Watermark idleness.
        idle: Option<Duration>,
    },
    /// Generated Nexmark events of one kind (persons, auctions or bids).
    Nexmark {
        /// Generator settings.
        config: connectors::nexmark::NexmarkConfig,
        /// Which events the table holds.
        kind: connectors::nexmark::EventKind,
        /// For each column, the event field it reads.
        fields: Vec<NexmarkField>,
    },
    /// Files, read once (bounded).
    File {
        /// A file or directory.
        path: String,
        /// Line format.
        format: TableRows,
        /// Skip the first line of each file.
        header: bool,
        /// Skip bad lines (counted) instead of failing.
        skip_bad: bool,
    },
}

/// A field of a Nexmark event, as a table column reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NexmarkField {
    /// A column no query reads: NULL.
    Unread,
    /// person.id / auction.id
    Id,
    /// person.name
    Name,
    /// person.emailAddress
    EmailAddress,
    /// person.creditCard
    CreditCard,
    /// person.city
    City,
    /// person.state
    State,
    /// auction.itemName
    ItemName,
    /// auction.description
    Description,
    /// auction.initialBid
    InitialBid,
    /// auction.reserve
    Reserve,
    /// auction.expires
    Expires,
    /// auction.seller
    Seller,
    /// auction.category
    Category,
    /// bid.auction
    Auction,
    /// bid.bidder
    Bidder,
    /// bid.price
    Price,
    /// bid.channel
    Channel,
    /// bid.url
    Url,
    /// the event time
    DateTime,
    /// the padding string
    Extra,
}

fn nexmark_field(
    kind: connectors::nexmark::EventKind,
    column: &str,
) -> Option<(NexmarkField, DataType)> {
    use NexmarkField as F;
    use connectors::nexmark::EventKind as K;
    let norm: String = column
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let (f, ty) = match (kind, norm.as_str()) {
        (K::Person | K::Auction, "id") => (F::Id, DataType::BigInt),
        (K::Person, "name") => (F::Name, DataType::String),
        (K::Person, "emailaddress") => (F::EmailAddress, DataType::String),
        (K::Person, "creditcard") => (F::CreditCard, DataType::String),
        (K::Person, "city") => (F::City, DataType::String),
        (K::Person, "state") => (F::State, DataType::String),
        (K::Auction, "itemname") => (F::ItemName, DataType::String),
        (K::Auction, "description") => (F::Description, DataType::String),
        (K::Auction, "initialbid") => (F::InitialBid, DataType::BigInt),
        (K::Auction, "reserve") => (F::Reserve, DataType::BigInt),
        (K::Auction, "expires") => (F::Expires, DataType::Timestamp),
        (K::Auction, "seller") => (F::Seller, DataType::BigInt),
        (K::Auction, "category") => (F::Category, DataType::BigInt),
        (K::Bid, "auction") => (F::Auction, DataType::BigInt),
        (K::Bid, "bidder") => (F::Bidder, DataType::BigInt),
        (K::Bid, "price") => (F::Price, DataType::BigInt),
        (K::Bid, "channel") => (F::Channel, DataType::String),
        (K::Bid, "url") => (F::Url, DataType::String),
        (_, "datetime" | "customtime") => (F::DateTime, DataType::Timestamp),
        (_, "extra") => (F::Extra, DataType::String),
        _ => return None,
    };
    Some((f, ty))
}

fn nexmark_source(t: &TableDef) -> Result<SourceConnector> {
    use connectors::nexmark::{EventKind, NexmarkConfig};
    check_known(t, NEXMARK_OPTIONS)?;
    let which = t
        .option("nexmark.table")
        .unwrap_or(&t.name)
        .to_ascii_lowercase();
    let kind = match which.as_str() {
        "person" => EventKind::Person,
        "auction" => EventKind::Auction,
        "bid" => EventKind::Bid,
        other => {
            return Err(SqlError::options(
                &t.name,
                format!("'nexmark.table' = '{other}': use 'person', 'auction' or 'bid'"),
            ));
        }
    };
    let num = |key: &str| -> Result<Option<u64>> {
        t.option(key)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    SqlError::options(&t.name, format!("'{key}' = '{v}': a whole number"))
                })
            })
            .transpose()
    };
    let mut config = NexmarkConfig::new();
    match num("events.num")? {
        Some(n) if n > 0 => config = config.max_events(n),
        _ => config = config.unbounded(),
    }
    if let Some(r) = num("first-event.rate")? {
        config = config.first_event_rate(u32::try_from(r).unwrap_or(u32::MAX));
    }
    if let Some(r) = num("next-event.rate")? {
        config = config.next_event_rate(u32::try_from(r).unwrap_or(u32::MAX));
    }
    let p = [
        num("person.proportion")?,
        num("auction.proportion")?,
        num("bid.proportion")?,
    ];
    if p.iter().any(Option::is_some) {
        let get = |i: usize, d: u32| p[i].map_or(d, |v| u32::try_from(v).unwrap_or(u32::MAX));
        config = config.proportions(get(0, 1), get(1, 3), get(2, 46));
    }
    if let Some(ms) = num("base-time")? {
        config = config.base_time(i64::try_from(ms).unwrap_or(i64::MAX));
    }
    config
        .validate()
        .map_err(|e| SqlError::options(&t.name, e.to_string()))?;
    let mut fields = Vec::new();
    for f in &t.physical.fields {
        let (field, ty) = nexmark_field(kind, &f.name).ok_or_else(|| {
            SqlError::options(
                &t.name,
                format!("column {}: no such field of a Nexmark {which}", f.name),
            )
        })?;
        if ty != f.ty {
            return Err(SqlError::options(
                &t.name,
                format!(
                    "column {}: Nexmark gives {ty}, the table says {}",
                    f.name, f.ty
                ),
            ));
        }
        fields.push(field);
    }
    Ok(SourceConnector::Nexmark {
        config,
        kind,
        fields,
    })
}

/// Where a sink table's rows go.
#[derive(Clone, Debug)]
pub enum SinkConnector {
    /// A Kafka topic.
    Kafka {
        /// The topic.
        topic: String,
        /// Value format.
        format: RowFormat,
        /// The columns the record key holds (`key.fields`, else the PRIMARY
        /// KEY; empty: the group keys of an updating result, or no key).
        key_fields: Vec<usize>,
        /// How the key columns are encoded (`key.format`, json by default).
        key_format: RowFormat,
        /// With `'value.fields-include' = 'EXCEPT_KEY'`, the columns the value
        /// holds; `None`: all of them.
        value_fields: Option<Vec<usize>>,
        /// Whether writes are part of the checkpoint's transaction.
        exactly_once: bool,
    },
    /// Rolling files in a directory.
    File {
        /// The directory.
        path: String,
        /// Line format.
        format: RowFormat,
        /// Roll at this size.
        max_file_size: Option<u64>,
    },
    /// Discards the rows (benchmarks).
    Blackhole,
    /// Standard output.
    Print {
        /// Line prefix.
        prefix: Option<String>,
        /// Standard error instead.
        stderr: bool,
    },
    /// A PostgreSQL table.
    Postgres {
        /// tokio-postgres connection string.
        connection: String,
        /// The table.
        table: String,
        /// Two-phase commit with the checkpoint.
        exactly_once: bool,
        /// Create the table if missing.
        create: bool,
    },
}

fn check_known(t: &TableDef, known: &[&str]) -> Result<()> {
    for k in t.options.keys() {
        let ok = known.contains(&k.as_str())
            || (k.starts_with("properties.") && known.contains(&"properties.*"))
            || (CSV_OPTIONS.contains(&k.as_str()) && known.contains(&"csv.*"));
        if !ok {
            return Err(SqlError::options(
                &t.name,
                format!(
                    "unknown option '{k}'; {} tables take: {}",
                    t.option("connector").unwrap_or("?"),
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn connector(t: &TableDef) -> Result<&str> {
    t.option("connector").ok_or_else(|| {
        SqlError::options(
            &t.name,
            "missing 'connector': use 'kafka', 'filesystem', 'print' or 'postgres'",
        )
    })
}

/// Parses `30 s`, `30s`, `500 ms`, `1 min`, `2 h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "milli" | "millis" | "milliseconds" => 1.0,
        "" | "s" | "sec" | "second" | "seconds" => 1000.0,
        "min" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        _ => return None,
    };
    Some(Duration::from_millis((n * ms) as u64))
}

fn bool_option(t: &TableDef, key: &str) -> Result<bool> {
    match t.option(key) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(SqlError::options(
            &t.name,
            format!("'{key}' = '{v}': use 'true' or 'false'"),
        )),
    }
}

/// The rows of source table `t`: its format plus computed columns.
pub fn table_rows(t: &TableDef) -> Result<TableRows> {
    Ok(TableRows {
        physical: row_format(t)?,
        computed: Arc::new(
            t.computed
                .iter()
                .map(|c| (c.position, c.expr.eval.clone()))
                .collect(),
        ),
        required: table_time(t).map(|i| (i, t.schema.fields[i].name.clone())),
        read: None,
        key: None,
    })
}

/// The row format a table's `format` option names (physical columns).
pub fn row_format(t: &TableDef) -> Result<RowFormat> {
    named_format(
        t,
        t.option("format").or(t.option("value.format")),
        &t.physical,
        "format",
    )
}

/// The row format `name` (json when `None`) over `schema`; `what` names the
/// option in errors.
fn named_format(
    t: &TableDef,
    name: Option<&str>,
    schema: &Schema,
    what: &str,
) -> Result<RowFormat> {
    let columns = schema;
    let schema = Arc::new(schema.clone());
    let required = None;
    let char_opt = |key: &str, default: char| -> Result<char> {
        match t.option(key) {
            None => Ok(default),
            Some("\\t") => Ok('\t'),
            Some(v) if v.chars().count() == 1 => Ok(v.chars().next().unwrap_or(default)),
            Some(v) => Err(SqlError::options(
                &t.name,
                format!("'{key}' = '{v}': one character"),
            )),
        }
    };
    match name {
        None | Some("json") => Ok(RowFormat::Json { schema, required }),
        Some("csv") => Ok(RowFormat::Csv {
            schema,
            required,
            delimiter: char_opt("csv.field-delimiter", ',')?,
            quote: char_opt("csv.quote-character", '"')?,
        }),
        Some("raw") => {
            if columns.len() != 1 || columns.fields[0].ty != DataType::String {
                return Err(SqlError::options(
                    &t.name,
                    format!(
                        "{what} 'raw' needs exactly one STRING column, not ({})",
                        columns.describe()
                    ),
                ));
            }
            Ok(RowFormat::Raw)
        }
        Some(other) => Err(SqlError::options(
            &t.name,
            format!(
                "unknown {what} '{other}': use 'json', 'csv' or 'raw' (Avro with a schema registry is not supported yet)"
            ),
        )),
    }
}

/// How a Kafka table lays its columns out in a record: the key columns
/// (`key.fields`, for a sink else the PRIMARY KEY) with their `key.format`, and
/// with `'value.fields-include' = 'EXCEPT_KEY'` the value columns.
#[derive(Clone, Debug)]
pub struct KafkaLayout {
    /// Key columns (physical positions), empty without a key.
    pub key_columns: Vec<usize>,
    /// Encodes and decodes the key (json by default).
    pub key_format: RowFormat,
    /// `Some(columns)` with EXCEPT_KEY: the value holds only these; `None`:
    /// every column (ALL).
    pub value_columns: Option<Vec<usize>>,
    /// The value format, over the value columns.
    pub value_format: RowFormat,
}

/// The key and value layout of Kafka table `t`; `sink` lets the PRIMARY KEY
/// stand for `key.fields`.
pub fn kafka_layout(t: &TableDef, sink: bool) -> Result<KafkaLayout> {
    let key_names: Vec<String> = match t.option("key.fields") {
        Some(v) => v.split(';').map(|s| s.trim().to_string()).collect(),
        None if sink => t.primary_key.clone(),
        None => Vec::new(),
    };
    let key_columns = columns(t, &key_names, "key.fields")?;
    if key_columns.is_empty() {
        for opt in ["key.format", "value.fields-include"] {
            if t.option(opt).is_some() {
                return Err(SqlError::options(
                    &t.name,
                    format!("'{opt}' needs 'key.fields' (the columns the record key holds)"),
                ));
            }
        }
    }
    let key_schema = Schema::new(
        key_columns
            .iter()
            .map(|&c| t.physical.fields[c].clone())
            .collect(),
    );
    let key_format = named_format(t, t.option("key.format"), &key_schema, "key.format")?;
    let value_columns = match t.option("value.fields-include") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("ALL") => None,
        Some(v) if v.eq_ignore_ascii_case("EXCEPT_KEY") => Some(
            (0..t.physical.len())
                .filter(|c| !key_columns.contains(c))
                .collect::<Vec<_>>(),
        ),
        Some(v) => {
            return Err(SqlError::options(
                &t.name,
                format!("'value.fields-include' = '{v}': use 'ALL' or 'EXCEPT_KEY'"),
            ));
        }
    };
    let value_format = match &value_columns {
        None => row_format(t)?,
        Some(cols) if cols.is_empty() => {
            return Err(SqlError::options(
                &t.name,
                "'value.fields-include' = 'EXCEPT_KEY' leaves no column for the value: every column is a key field",
            ));
        }
        Some(cols) => named_format(
            t,
            t.option("format").or(t.option("value.format")),
            &Schema::new(cols.iter().map(|&c| t.physical.fields[c].clone()).collect()),
            "format",
        )?,
    };
    Ok(KafkaLayout {
        key_columns,
        key_format,
        value_columns,
        value_format,
    })
}

fn bad_records(t: &TableDef) -> Result<(bool, Option<String>)> {
    let topic = t.option("scan.bad-records.topic").map(str::to_string);
    match t.option("scan.bad-records") {
        None | Some("fail") if topic.is_none() => Ok((false, None)),
        None | Some("dead-letter") if topic.is_some() => Ok((false, topic)),
        Some("skip") if topic.is_none() => Ok((true, None)),
        Some(v) => Err(SqlError::options(
            &t.name,
            format!(
                "'scan.bad-records' = '{v}': use 'fail', 'skip', or 'dead-letter' with 'scan.bad-records.topic'"
            ),
        )),
        None => Err(SqlError::options(&t.name, "bad records")),
    }
}

/// The source connector of table `t`.
pub fn source(t: &TableDef) -> Result<SourceConnector> {
    match connector(t)? {
        "kafka" => {
            check_known(t, KAFKA_OPTIONS)?;
            let topics: Vec<String> = t
                .option("topic")
                .ok_or_else(|| SqlError::options(&t.name, "missing 'topic'"))?
                .split(';')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let (skip_bad, dead_letter) = bad_records(t)?;
            if let Some(mode) = t.option("scan.startup.mode") {
                if !["group-offsets", "earliest-offset", "latest-offset"].contains(&mode) {
                    return Err(SqlError::options(
                        &t.name,
                        format!(
                            "'scan.startup.mode' = '{mode}': use 'group-offsets', 'earliest-offset' or 'latest-offset'"
                        ),
                    ));
                }
            }
            let idle = match t.option("scan.watermark.idle-timeout") {
                Some(v) => Some(parse_duration(v).ok_or_else(|| {
                    SqlError::options(
                        &t.name,
                        format!("'scan.watermark.idle-timeout' = '{v}': write e.g. '30 s'"),
                    )
                })?),
                None => None,
            };
            let layout = kafka_layout(t, false)?;
            let mut format = table_rows(t)?;
            if let Some(value_columns) = layout.value_columns {
                format.physical = layout.value_format;
                format.key = Some(Arc::new(KeyValueSplit {
                    key_columns: layout.key_columns,
                    key_format: layout.key_format,
                    value_columns,
                }));
            }
            Ok(SourceConnector::Kafka {
                topics,
                format,
                dead_letter,
                skip_bad,
                idle,
            })
        }
        "filesystem" => {
            check_known(t, FILE_OPTIONS)?;
            let (skip_bad, dlq) = bad_records(t)?;
            if dlq.is_some() {
                return Err(SqlError::options(
                    &t.name,
                    "files have no dead-letter topic: use 'fail' or 'skip'",
                ));
            }
            Ok(SourceConnector::File {
                path: t
                    .option("path")
                    .ok_or_else(|| SqlError::options(&t.name, "missing 'path'"))?
                    .to_string(),
                format: table_rows(t)?,
                header: bool_option(t, "csv.header")?,
                skip_bad,
            })
        }
        "nexmark" => nexmark_source(t),
        other => Err(SqlError::options(
            &t.name,
            format!(
                "connector '{other}' cannot be read: sources are 'kafka', 'filesystem' and 'nexmark'"
            ),
        )),
    }
}

fn exactly_once(t: &TableDef) -> Result<bool> {
    match t.option("sink.delivery-guarantee") {
        None | Some("at-least-once") | Some("none") => Ok(false),
        Some("exactly-once") => Ok(true),
        Some(v) => Err(SqlError::options(
            &t.name,
            format!("'sink.delivery-guarantee' = '{v}': use 'exactly-once' or 'at-least-once'"),
        )),
    }
}

fn columns(t: &TableDef, names: &[String], what: &str) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            t.physical
                .find(None, n)
                .map_err(|_| SqlError::options(&t.name, format!("{what}: no column {n}")))
        })
        .collect()
}

/// The sink connector of table `t`.
pub fn sink(t: &TableDef) -> Result<SinkConnector> {
    if !t.computed.is_empty() {
        return Err(SqlError::options(
            &t.name,
            "computed columns cannot be written: declare every column of a sink table",
        ));
    }
    match connector(t)? {
        "kafka" => {
            check_known(t, KAFKA_OPTIONS)?;
            let topic = t
                .option("topic")
                .ok_or_else(|| SqlError::options(&t.name, "missing 'topic'"))?;
            if topic.contains(';') {
                return Err(SqlError::options(&t.name, "a sink writes one topic"));
            }
            let layout = kafka_layout(t, true)?;
            Ok(SinkConnector::Kafka {
                topic: topic.to_string(),
                format: layout.value_format,
                key_fields: layout.key_columns,
                key_format: layout.key_format,
                value_fields: layout.value_columns,
                exactly_once: exactly_once(t)?,
            })
        }
        "filesystem" => {
            check_known(t, FILE_OPTIONS)?;
            let max_file_size = match t.option("sink.rolling-policy.file-size") {
                Some(v) => Some(parse_size(v).ok_or_else(|| {
                    SqlError::options(
                        &t.name,
                        format!("'sink.rolling-policy.file-size' = '{v}': write e.g. '128MB'"),
                    )
                })?),
                None => None,
            };
            Ok(SinkConnector::File {
                path: t
                    .option("path")
                    .ok_or_else(|| SqlError::options(&t.name, "missing 'path'"))?
                    .to_string(),
                format: row_format(t)?,
                max_file_size,
            })
        }
        "blackhole" => {
            check_known(t, &["connector"])?;
            Ok(SinkConnector::Blackhole)
        }
        "print" => {
            check_known(t, PRINT_OPTIONS)?;
            Ok(SinkConnector::Print {
                prefix: t.option("print-identifier").map(str::to_string),
                stderr: bool_option(t, "standard-error")?,
            })
        }
        "postgres" | "jdbc" => {
            check_known(t, POSTGRES_OPTIONS)?;
            let url = t
                .option("url")
                .ok_or_else(|| SqlError::options(&t.name, "missing 'url'"))?;
            let mut connection =
                jdbc_to_connection(url).map_err(|m| SqlError::options(&t.name, m))?;
            if let Some(u) = t.option("username") {
                connection.push_str(&format!(" user={u}"));
            }
            if let Some(p) = t.option("password") {
                connection.push_str(&format!(" password={p}"));
            }
            Ok(SinkConnector::Postgres {
                connection,
                table: t.option("table-name").unwrap_or(&t.name).to_string(),
                exactly_once: exactly_once(t)?,
                create: t.option("sink.create-table").is_none_or(|v| v == "true"),
            })
        }
        other => Err(SqlError::options(
            &t.name,
            format!(
                "unknown connector '{other}': sinks are 'kafka', 'filesystem', 'print' and 'postgres'"
            ),
        )),
    }
}

fn parse_size(v: &str) -> Option<u64> {
    let t = v.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `jdbc:postgresql://host:port/db?..` (or a key=value string) as a tokio-postgres
/// connection string.
pub fn jdbc_to_connection(url: &str) -> std::result::Result<String, String> {
    let Some(rest) = url
        .strip_prefix("jdbc:postgresql://")
        .or(url.strip_prefix("postgresql://"))
        .or(url.strip_prefix("postgres://"))
    else {
        if url.contains('=') {
            return Ok(url.to_string());
        }
        return Err(format!(
            "'url' = '{url}': write jdbc:postgresql://host:port/database"
        ));
    };
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
    let db = db.split('?').next().unwrap_or("postgres");
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    Ok(format!("host={host} port={port} dbname={db}"))
}

/// Kafka settings of the script: `properties.file` then `properties.*` of every
/// Kafka table, which must agree.
pub fn kafka_properties(tables: &[&TableDef]) -> Result<BTreeMap<String, String>> {
    let mut props = BTreeMap::new();
    let mut from: BTreeMap<String, String> = BTreeMap::new();
    for t in tables {
        let mut mine = BTreeMap::new();
        if let Some(file) = t.option("properties.file") {
            let text = std::fs::read_to_string(file).map_err(|e| SqlError::Io {
                path: file.to_string(),
                source: e,
            })?;
            mine.extend(kafka_wire::client::properties::parse(&text));
        }
        for (k, v) in &t.options {
            if let Some(key) = k.strip_prefix("properties.") {
                if key != "file" {
                    mine.insert(key.to_string(), v.clone());
                }
            }
        }
        if let Some(mode) = t.option("scan.startup.mode") {
            let reset = match mode {
                "earliest-offset" => "earliest",
                "latest-offset" => "latest",
                _ => "",
            };
            if !reset.is_empty() {
                mine.insert("auto.offset.reset".into(), reset.into());
            }
        }
        for (k, v) in mine {
            match props.get(&k) {
                Some(old)
                    if *old != v
                        && (k == "bootstrap.servers"
                            || k == "group.id"
                            || k == "auto.offset.reset") =>
                {
                    return Err(SqlError::options(
                        &t.name,
                        format!(
                            "'{k}' is '{v}' here but '{old}' in table {}: a pipeline uses one Kafka cluster and one group",
                            from[&k]
                        ),
                    ));
                }
                _ => {
                    from.insert(k.clone(), t.name.clone());
                    props.insert(k, v);
                }
            }
        }
    }
    Ok(props)
}

const KAFKA_OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "format",
    "value.format",
    "key.fields",
    "key.format",
    "value.fields-include",
    "properties.file",
    "properties.*",
    "csv.*",
    "scan.startup.mode",
    "scan.watermark.idle-timeout",
    "scan.bad-records",
    "scan.bad-records.topic",
    "sink.delivery-guarantee",
];
/// The CSV options strom reads (`csv.*` in the lists below).
const CSV_OPTIONS: &[&str] = &["csv.field-delimiter", "csv.quote-character", "csv.header"];
const FILE_OPTIONS: &[&str] = &[
    "connector",
    "path",
    "format",
    "csv.*",
    "scan.bad-records",
    "sink.rolling-policy.file-size",
];
const NEXMARK_OPTIONS: &[&str] = &[
    "connector",
    "nexmark.table",
    "events.num",
    "first-event.rate",
    "next-event.rate",
    "person.proportion",
    "auction.proportion",
    "bid.proportion",
    "base-time",
];
const PRINT_OPTIONS: &[&str] = &["connector", "print-identifier", "standard-error"];
const POSTGRES_OPTIONS: &[&str] = &[
    "connector",
    "url",
    "table-name",
    "username",
    "password",
    "sink.delivery-guarantee",
    "sink.create-table",
];

/// A schema's column list for messages.
pub fn describe(schema: &Schema) -> String {
    schema.describe()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table `t` (columns `cols`) with Kafka options `opts`.
    fn kafka_table(cols: &str, opts: &str) -> TableDef {
        let sql =
            format!("CREATE TABLE t ({cols}) WITH ('connector' = 'kafka', 'topic' = 'x'{opts});");
        let script = crate::parse::parse_script(&sql).unwrap();
        script.table("t").unwrap().clone()
    }

    fn layout_error(cols: &str, opts: &str, sink: bool) -> String {
        kafka_layout(&kafka_table(cols, opts), sink)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn key_format_and_value_fields_include_lay_out_key_and_value() {
        let t = kafka_table(
            "k STRING, n BIGINT, s STRING",
            ", 'key.fields' = 'k', 'key.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY', 'format' = 'csv'",
        );
        let l = kafka_layout(&t, false).unwrap();
        assert_eq!(l.key_columns, vec![0]);
        assert!(matches!(l.key_format, RowFormat::Raw));
        assert_eq!(l.value_columns, Some(vec![1, 2]));
        assert!(matches!(l.value_format, RowFormat::Csv { ref schema, .. } if schema.len() == 2));
        let t = kafka_table("k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED", "");
        let l = kafka_layout(&t, true).unwrap();
        assert_eq!(l.key_columns, vec![0], "a sink is keyed by its PRIMARY KEY");
        assert!(matches!(l.key_format, RowFormat::Json { .. }));
        assert_eq!(l.value_columns, None);
        let l = kafka_layout(&t, false).unwrap();
        assert!(
            l.key_columns.is_empty(),
            "a source reads no key without key.fields"
        );
    }

    #[test]
    fn bad_key_options_are_refused_naming_the_option() {
        let e = layout_error(
            "k STRING",
            ", 'key.fields' = 'k', 'key.format' = 'avro'",
            true,
        );
        assert!(e.contains("unknown key.format 'avro'"), "{e}");
        let e = layout_error(
            "k BIGINT",
            ", 'key.fields' = 'k', 'key.format' = 'raw'",
            true,
        );
        assert!(
            e.contains("key.format 'raw' needs exactly one STRING column"),
            "{e}"
        );
        let e = layout_error(
            "k STRING, j STRING",
            ", 'key.fields' = 'k;j', 'key.format' = 'raw'",
            true,
        );
        assert!(
            e.contains("key.format 'raw' needs exactly one STRING column"),
            "{e}"
        );
        let e = layout_error("k STRING", ", 'key.format' = 'raw'", false);
        assert!(e.contains("'key.format' needs 'key.fields'"), "{e}");
        let e = layout_error("k STRING", ", 'value.fields-include' = 'EXCEPT_KEY'", true);
        assert!(
            e.contains("'value.fields-include' needs 'key.fields'"),
            "{e}"
        );
        let e = layout_error(
            "k STRING, n BIGINT",
            ", 'key.fields' = 'k', 'value.fields-include' = 'SOME'",
            true,
        );
        assert!(e.contains("use 'ALL' or 'EXCEPT_KEY'"), "{e}");
        let e = layout_error(
            "k STRING",
            ", 'key.fields' = 'k', 'value.fields-include' = 'EXCEPT_KEY'",
            true,
        );
        assert!(e.contains("leaves no column for the value"), "{e}");
        let e = layout_error("k STRING", ", 'key.fields' = 'q'", true);
        assert!(e.contains("key.fields: no column q"), "{e}");
    }

    #[test]
    fn durations_sizes_and_urls_parse() {
        assert_eq!(parse_duration("30 s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2 min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_size("128MB"), Some(128 << 20));
        assert_eq!(
            jdbc_to_connection("jdbc:postgresql://127.0.0.1:5433/strom?x=1").as_deref(),
            Ok("host=127.0.0.1 port=5433 dbname=strom")
        );
    }
}
