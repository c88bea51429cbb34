//! `strom groups`: list, describe and delete consumer groups, reset and delete
//! their committed offsets (the work of Kafka's `kafka-consumer-groups.sh`).
//!
//! Tables print with the column names of Kafka's tool, one row per line, columns
//! separated by spaces, `-` where a value is unknown.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{GroupDescription, OffsetSpec};
use kafka_wire::client::config::IsolationLevel;
use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::client::{Admin, Client};

use super::Cli;

/// `strom groups` subcommands.
#[derive(Subcommand)]
pub(super) enum GroupsAction {
    /// List the groups of the cluster: group, type, state, protocol type.
    List,
    /// Per partition: committed offset, log end offset, lag and owner (the table of
    /// kafka-consumer-groups.sh --describe).
    Describe {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
        /// One row per member instead: id, host, client id, partitions.
        #[arg(long, conflicts_with = "state")]
        members: bool,
        /// One row per group instead: coordinator, assignor, state, member count.
        #[arg(long)]
        state: bool,
    },
    /// Delete groups (only groups without members can be deleted).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Reset a group's committed offsets: prints the plan, and commits it with
    /// --execute. The group must have no active members.
    ResetOffsets {
        /// The group.
        #[arg(long)]
        group: String,
        /// `TOPIC` (every partition) or `TOPIC:P,P,...` (repeatable).
        #[arg(long = "topic", required_unless_present = "all_topics")]
        topics: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long, conflicts_with = "topics")]
        all_topics: bool,
        /// Where to move the offsets.
        #[command(flatten)]
        to: ResetTo,
        /// Commit the new offsets (without it, only the plan is printed).
        #[arg(long)]
        execute: bool,
        /// Only print the plan (the default; for kafka-consumer-groups.sh habits).
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
    },
    /// Delete a group's committed offsets of some partitions.
    DeleteOffsets {
        /// The group.
        #[arg(long)]
        group: String,
        /// `TOPIC` (every partition) or `TOPIC:P,P,...` (repeatable).
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
    },
}

/// The target of `strom groups reset-offsets` (exactly one). Every new offset is
/// clamped into [log start offset, log end offset].
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(super) struct ResetTo {
    /// The log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    to_latest: bool,
    /// This offset.
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// The first offset at or after this time: `yyyy-MM-ddTHH:mm:ss[.SSS]`, then
    /// `Z` or `+hh:mm`/`-hh:mm` (without a zone: UTC); the log end offset when no
    /// record is that recent.
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// The committed offset plus N (N may be negative).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

/// A [`ResetTo`] with its one choice resolved (a datetime parsed into epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    ShiftBy(i64),
}

impl ResetTo {
    fn target(&self) -> anyhow::Result<Target> {
        Ok(if self.to_earliest {
            Target::Earliest
        } else if self.to_latest {
            Target::Latest
        } else if let Some(o) = self.to_offset {
            Target::Offset(o)
        } else if let Some(d) = &self.to_datetime {
            Target::Timestamp(parse_datetime(d).with_context(|| {
                format!(
                    "--to-datetime {d:?}: expected yyyy-MM-ddTHH:mm:ss[.SSS] with an optional Z or +hh:mm"
                )
            })?)
        } else if let Some(n) = self.shift_by {
            Target::ShiftBy(n)
        } else {
            bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by")
        })
    }
}

/// `yyyy-MM-ddTHH:mm:ss[.SSS][Z|+hh:mm|-hh:mm]` to epoch ms (no zone: UTC).
fn parse_datetime(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if !text.contains('T') {
        bail!("no time of day");
    }
    let (local, offset_minutes) = match text.len().checked_sub(6).map(|i| text.split_at(i)) {
        Some((local, zone))
            if matches!(zone.as_bytes().first(), Some(b'+' | b'-'))
                && zone.as_bytes().get(3) == Some(&b':') =>
        {
            let hours: i64 = zone[1..3].parse().context("zone hours")?;
            let minutes: i64 = zone[4..6].parse().context("zone minutes")?;
            if hours > 18 || minutes > 59 {
                bail!("zone offset out of range");
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            (local, sign * (hours * 60 + minutes))
        }
        _ => (text, 0),
    };
    let ms = sql::time::parse_timestamp(local).context("not a date and time")?;
    Ok(ms - offset_minutes * 60_000)
}

/// `TOPIC` or `TOPIC:P,P,...` (partitions None: all of them).
fn parse_topic(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    let Some((topic, list)) = spec.split_once(':') else {
        return Ok((spec.to_string(), None));
    };
    let partitions = list
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .with_context(|| format!("--topic {spec:?}: {p:?} is not a partition number"))
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    if topic.is_empty() || partitions.is_empty() {
        bail!("--topic {spec:?}: expected TOPIC or TOPIC:P,P,...");
    }
    Ok((topic.to_string(), Some(partitions)))
}

/// The partitions `--topic` specs name, checked against the topics' metadata.
async fn partitions_of(client: &Client, specs: &[String]) -> anyhow::Result<Vec<TopicPartition>> {
    let mut out = BTreeSet::new();
    for spec in specs {
        let (topic, wanted) = parse_topic(spec)?;
        let info = client.topic(&topic).await.map_err(|e| {
            if e.code() == Some(ErrorCode::UnknownTopicOrPartition) {
                anyhow!("topic {topic} does not exist")
            } else {
                anyhow!(e)
            }
        })?;
        let existing: BTreeSet<i32> = info.partitions.iter().map(|p| p.partition).collect();
        match wanted {
            None => out.extend(existing.iter().map(|&p| (topic.clone(), p))),
            Some(ps) => {
                for p in ps {
                    if !existing.contains(&p) {
                        bail!(
                            "topic {topic} has no partition {p} (it has {})",
                            existing.len()
                        );
                    }
                    out.insert((topic.clone(), p));
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// A kafka-wire error with what to do about it, on one line.
fn with_hint(e: kafka_wire::Error, hint: &str) -> anyhow::Error {
    let text = e.to_string();
    anyhow!("{}: {hint}", text.trim_end_matches('.'))
}

/// Prints rows as columns padded to their widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$} ", w = *w));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `topic(0,1),other(2)`.
fn assignment_text(parts: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let text: Vec<String> = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}({})", ps.join(","))
        })
        .collect();
    if text.is_empty() {
        "-".into()
    } else {
        text.join(",")
    }
}

pub(super) async fn groups(cli: &Cli, action: &GroupsAction) -> anyhow::Result<()> {
    let client = super::admin::connect(cli).await?;
    let admin = Admin::new(client.clone());
    match action {
        GroupsAction::List => list(&admin).await,
        GroupsAction::Describe {
            groups,
            members,
            state,
        } => {
            if *members {
                describe_members(&admin, groups).await
            } else if *state {
                describe_state(&admin, groups).await
            } else {
                describe_lag(&admin, groups).await
            }
        }
        GroupsAction::Delete { groups } => {
            for g in groups {
                admin.delete_groups(std::slice::from_ref(g)).await?;
                println!("deleted group {g}");
            }
            Ok(())
        }
        GroupsAction::ResetOffsets {
            group,
            topics,
            all_topics,
            to,
            execute,
            dry_run: _,
        } => {
            let target = to.target()?;
            reset_offsets(&admin, group, topics, *all_topics, target, *execute).await
        }
        GroupsAction::DeleteOffsets { group, topics } => {
            let partitions = partitions_of(&client, topics).await?;
            admin.delete_group_offsets(group, &partitions).await?;
            let rows: Vec<Vec<String>> = partitions
                .iter()
                .map(|(t, p)| vec![t.clone(), p.to_string(), "Successful".into()])
                .collect();
            print_table(&["TOPIC", "PARTITION", "STATUS"], &rows);
            Ok(())
        }
    }
}

async fn list(admin: &Admin) -> anyhow::Result<()> {
    let groups = admin.list_groups().await?;
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|g| {
            vec![
                g.group_id,
                or_dash(g.group_type),
                or_dash(g.state),
                if g.protocol_type.is_empty() {
                    "-".into()
                } else {
                    g.protocol_type
                },
            ]
        })
        .collect();
    print_table(&["GROUP", "TYPE", "STATE", "PROTOCOL-TYPE"], &rows);
    Ok(())
}

fn no_members_note(d: &GroupDescription) {
    if d.members.is_empty() {
        eprintln!("group {} has no active members", d.group_id);
    }
}

async fn describe_lag(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for g in groups {
        let lag = admin.group_lag(g).await?;
        no_members_note(&lag.description);
        for p in lag.partitions {
            let member = p
                .member_id
                .as_ref()
                .and_then(|id| lag.description.members.iter().find(|m| &m.member_id == id));
            rows.push(vec![
                g.clone(),
                p.topic,
                p.partition.to_string(),
                or_dash(p.committed),
                or_dash(p.log_end_offset),
                or_dash(p.lag),
                or_dash(member.map(|m| &m.member_id)),
                or_dash(member.map(|m| &m.client_host)),
                or_dash(member.map(|m| &m.client_id)),
            ]);
        }
    }
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    );
    Ok(())
}

async fn describe_members(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for g in groups {
        let d = admin.describe_group(g).await?;
        no_members_note(&d);
        for m in &d.members {
            rows.push(vec![
                g.clone(),
                m.member_id.clone(),
                m.client_host.clone(),
                m.client_id.clone(),
                m.assignment.len().to_string(),
                assignment_text(&m.assignment),
            ]);
        }
    }
    print_table(
        &[
            "GROUP",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "ASSIGNMENT",
        ],
        &rows,
    );
    Ok(())
}

async fn describe_state(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for g in groups {
        let d = admin.describe_group(g).await?;
        rows.push(vec![
            g.clone(),
            d.group_type.to_string(),
            d.coordinator.clone(),
            if d.assignor.is_empty() {
                "-".into()
            } else {
                d.assignor.clone()
            },
            d.state.clone(),
            d.members.len().to_string(),
        ]);
    }
    print_table(
        &[
            "GROUP",
            "TYPE",
            "COORDINATOR",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "#MEMBERS",
        ],
        &rows,
    );
    Ok(())
}

/// `value` moved into `[start, end]`.
fn clamp(value: i64, start: i64, end: i64) -> i64 {
    value.max(start).min(end.max(start))
}

/// The new offset of one partition; `None` for a shift without a committed offset.
fn new_offset(
    target: Target,
    committed: Option<i64>,
    start: i64,
    end: i64,
    found: i64,
) -> Option<i64> {
    Some(match target {
        Target::Earliest => start,
        Target::Latest => end,
        Target::Offset(o) => clamp(o, start, end),
        // ListOffsets answers -1 when no record is that recent: the log end.
        Target::Timestamp(_) if found < 0 => end,
        Target::Timestamp(_) => clamp(found, start, end),
        Target::ShiftBy(n) => clamp(committed?.saturating_add(n), start, end),
    })
}

async fn reset_offsets(
    admin: &Admin,
    group: &str,
    topics: &[String],
    all_topics: bool,
    target: Target,
    execute: bool,
) -> anyhow::Result<()> {
    match admin.describe_group(group).await {
        Ok(d) if !d.members.is_empty() => bail!(
            "group {group} is not empty ({} active member{}, state {}): stop its consumers before resetting offsets",
            d.members.len(),
            if d.members.len() == 1 { "" } else { "s" },
            d.state
        ),
        Ok(_) => {}
        // Offsets may be set for a group that does not exist yet, as Kafka's tool allows.
        Err(e) if e.code() == Some(ErrorCode::GroupIdNotFound) => {}
        Err(e) => return Err(anyhow::Error::from(e)),
    }
    let committed = admin.list_group_offsets(group).await?;
    let partitions = if all_topics {
        if committed.is_empty() {
            bail!("group {group} has no committed offsets: name the topics with --topic");
        }
        committed.keys().cloned().collect()
    } else {
        partitions_of(admin.client(), topics).await?
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut plan: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for (topic, parts) in by_topic {
        let list = |spec| admin.list_offsets(topic, &parts, spec, IsolationLevel::ReadUncommitted);
        let starts = list(OffsetSpec::Earliest).await?;
        let ends = list(OffsetSpec::Latest).await?;
        let found = match target {
            Target::Timestamp(ms) => list(OffsetSpec::Timestamp(ms)).await?,
            _ => BTreeMap::new(),
        };
        for p in parts {
            let tp = (topic.to_string(), p);
            let start = starts.get(&p).map(|o| o.offset).unwrap_or(0);
            let end = ends.get(&p).map(|o| o.offset).unwrap_or(start);
            let found = found.get(&p).map(|o| o.offset).unwrap_or(-1);
            let offset = new_offset(target, committed.get(&tp).copied(), start, end, found)
                .with_context(|| {
                    format!(
                        "cannot shift {topic}-{p}: group {group} has no committed offset for it"
                    )
                })?;
            plan.insert(tp, offset);
        }
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|((t, p), o)| vec![group.to_string(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if execute {
        admin
            .alter_group_offsets(group, &plan)
            .await
            .map_err(|e| match e.code() {
                Some(
                    ErrorCode::UnknownMemberId
                    | ErrorCode::IllegalGeneration
                    | ErrorCode::StaleMemberEpoch
                    | ErrorCode::FencedMemberEpoch,
                ) => with_hint(e, "stop the group's consumers before resetting offsets"),
                _ => anyhow::Error::from(e),
            })?;
    } else {
        eprintln!("dry run: nothing changed; add --execute to commit these offsets");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_read_with_and_without_a_zone() {
        let utc = 1_796_292_000_000; // 2026-12-03T10:00:00Z
        assert_eq!(parse_datetime("2026-12-03T10:00:00").unwrap(), utc);
        assert_eq!(parse_datetime("2026-12-03T10:00:00Z").unwrap(), utc);
        assert_eq!(
            parse_datetime("2026-12-03T10:00:00.250Z").unwrap(),
            utc + 250
        );
        assert_eq!(parse_datetime("2026-12-03T11:30:00+01:30").unwrap(), utc);
        assert_eq!(parse_datetime("2026-12-03T08:00:00-02:00").unwrap(), utc);
        assert!(parse_datetime("2026-12-03").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn topic_specs_name_all_or_some_partitions() {
        assert_eq!(parse_topic("t").unwrap(), ("t".to_string(), None));
        assert_eq!(
            parse_topic("t:0,2").unwrap(),
            ("t".to_string(), Some(vec![0, 2]))
        );
        assert!(parse_topic("t:").is_err());
        assert!(parse_topic("t:x").is_err());
        assert!(parse_topic("t:-1").is_err());
    }

    #[test]
    fn new_offsets_stay_between_log_start_and_log_end() {
        let (start, end) = (10, 20);
        assert_eq!(new_offset(Target::Earliest, None, start, end, -1), Some(10));
        assert_eq!(new_offset(Target::Latest, None, start, end, -1), Some(20));
        assert_eq!(
            new_offset(Target::Offset(5), None, start, end, -1),
            Some(10)
        );
        assert_eq!(
            new_offset(Target::Offset(25), None, start, end, -1),
            Some(20)
        );
        assert_eq!(
            new_offset(Target::Offset(15), None, start, end, -1),
            Some(15)
        );
        assert_eq!(
            new_offset(Target::ShiftBy(-3), Some(12), start, end, -1),
            Some(10)
        );
        assert_eq!(
            new_offset(Target::ShiftBy(3), Some(12), start, end, -1),
            Some(15)
        );
        assert_eq!(
            new_offset(Target::ShiftBy(30), Some(12), start, end, -1),
            Some(20)
        );
        assert_eq!(new_offset(Target::ShiftBy(1), None, start, end, -1), None);
        assert_eq!(
            new_offset(Target::Timestamp(0), None, start, end, -1),
            Some(20)
        );
        assert_eq!(
            new_offset(Target::Timestamp(0), None, start, end, 14),
            Some(14)
        );
    }

    #[test]
    fn assignments_print_per_topic() {
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 1),
            ("b".to_string(), 2),
        ];
        assert_eq!(assignment_text(&parts), "a(0,1),b(2)");
        assert_eq!(assignment_text(&[]), "-");
    }
}
