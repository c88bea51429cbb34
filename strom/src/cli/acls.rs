//! `strom acls`: list, create and delete ACLs with the options of Kafka's
//! `kafka-acls.sh` (`--allow-principal`, `--operation`, `--topic`, `--producer`,
//! `--resource-pattern-type`, ...).
//!
//! ACLs print in `kafka-acls.sh --list`'s layout, which scripts grep (the entry
//! lines start with a tab):
//!
//! ```text
//! Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:
//!     (principal=User:alice, host=*, operation=READ, permissionType=ALLOW)
//!
//! ```
//!
//! `delete` does not ask (the command is not interactive): without `--force` it
//! prints the ACLs that would be deleted and deletes nothing.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_wire::client::Admin;
use kafka_wire::client::admin::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType,
    PatternTypeFilter, ResourcePattern, ResourceType,
};
use serde_json::json;

use super::Cli;

/// The name of the one cluster resource.
const CLUSTER: &str = "kafka-cluster";

/// `strom acls` subcommands.
#[derive(Subcommand)]
pub(super) enum AclsAction {
    /// List ACLs: all of them, or those on the resources given (with
    /// --resource-pattern-type; default literal when a resource is given).
    List {
        #[command(flatten)]
        resources: Resources,
        /// any, match (every ACL that applies to the resource: literal, `*`
        /// and prefixes), literal or prefixed.
        #[arg(long, value_parser = pattern_filter)]
        resource_pattern_type: Option<PatternTypeFilter>,
        /// Only ACLs of this principal, `Type:name` (repeatable).
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// One JSON object per ACL instead of kafka-acls.sh's layout.
        #[arg(long)]
        json: bool,
    },
    /// Create ACLs: every allowed (or denied) principal, from each host, gets
    /// each operation on each resource.
    Create {
        #[command(flatten)]
        resources: Resources,
        #[command(flatten)]
        entries: Entries,
        /// literal (the name exactly; `*` for every resource) or prefixed.
        #[arg(long, value_parser = pattern_type, default_value = "literal")]
        resource_pattern_type: PatternType,
    },
    /// Delete ACLs on the resources given: those of the principals, hosts and
    /// operations given, or all of them when no principal is given. Without
    /// --force, prints what would be deleted and deletes nothing.
    Delete {
        #[command(flatten)]
        resources: Resources,
        #[command(flatten)]
        entries: Entries,
        /// any, match, literal or prefixed.
        #[arg(long, value_parser = pattern_filter, default_value = "literal")]
        resource_pattern_type: PatternTypeFilter,
        /// Delete (without it, only list what would be deleted).
        #[arg(long)]
        force: bool,
    },
}

/// The resources of a command (`*` as a name: every resource of the type).
#[derive(Args, Debug, Default, Clone)]
pub(super) struct Resources {
    /// A topic (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// A consumer group (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// A transactional id (repeatable).
    #[arg(long = "transactional-id")]
    transactional_ids: Vec<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
}

/// Who gets (or loses) which rights.
#[derive(Args, Debug, Default, Clone)]
pub(super) struct Entries {
    /// A principal to allow, `Type:name` such as `User:alice` (repeatable).
    #[arg(long = "allow-principal")]
    allow_principals: Vec<String>,
    /// A principal to deny (repeatable; a deny wins over any allow).
    #[arg(long = "deny-principal")]
    deny_principals: Vec<String>,
    /// A host the allowed principals may connect from (repeatable; default `*`).
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
    /// A host the denied principals are refused from (repeatable; default `*`).
    #[arg(long = "deny-host")]
    deny_hosts: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite or All (repeatable;
    /// create: default All; delete: default every operation).
    #[arg(long = "operation", value_parser = operation, conflicts_with_all = ["producer", "consumer"])]
    operations: Vec<AclOperation>,
    /// A producer's rights: Write, Describe and Create on the topics; Write and
    /// Describe on the transactional ids. Kafka 3.0+ grants an idempotent
    /// producer's InitProducerId to anyone with Write on a topic (KIP-679), so
    /// IdempotentWrite on the cluster is not needed (--idempotent adds it).
    #[arg(long)]
    producer: bool,
    /// With --producer: IdempotentWrite on the cluster as well (for brokers
    /// before Kafka 3.0).
    #[arg(long, requires = "producer")]
    idempotent: bool,
    /// A consumer's rights: Read and Describe on the topics, Read on the groups.
    #[arg(long)]
    consumer: bool,
}

fn operation(s: &str) -> Result<AclOperation, String> {
    AclOperation::from_name(s).ok_or_else(|| {
        format!(
            "unknown operation {s:?}; one of Read, Write, Create, Delete, Alter, Describe, \
             ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All"
        )
    })
}

fn pattern_type(s: &str) -> Result<PatternType, String> {
    PatternType::from_name(s).ok_or_else(|| format!("{s:?}: literal or prefixed"))
}

fn pattern_filter(s: &str) -> Result<PatternTypeFilter, String> {
    PatternTypeFilter::from_name(s).ok_or_else(|| format!("{s:?}: any, match, literal or prefixed"))
}

impl Resources {
    /// Each resource as (type, name), in the order topic, group, transactional id, cluster.
    fn each(&self) -> Vec<(ResourceType, String)> {
        let mut out = Vec::new();
        out.extend(self.topics.iter().map(|t| (ResourceType::Topic, t.clone())));
        out.extend(self.groups.iter().map(|g| (ResourceType::Group, g.clone())));
        out.extend(
            self.transactional_ids
                .iter()
                .map(|i| (ResourceType::TransactionalId, i.clone())),
        );
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER.to_string()));
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.each().is_empty()
    }
}

/// The operations `kafka-acls.sh` accepts on a resource type.
fn supported(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation as O;
    match resource_type {
        ResourceType::Topic => &[
            O::Read,
            O::Write,
            O::Create,
            O::Describe,
            O::Delete,
            O::Alter,
            O::DescribeConfigs,
            O::AlterConfigs,
            O::All,
        ],
        ResourceType::Group => &[O::Read, O::Describe, O::Delete, O::All],
        ResourceType::Cluster => &[
            O::Create,
            O::ClusterAction,
            O::DescribeConfigs,
            O::AlterConfigs,
            O::IdempotentWrite,
            O::Alter,
            O::Describe,
            O::All,
        ],
        ResourceType::TransactionalId => &[O::Describe, O::Write, O::TwoPhaseCommit, O::All],
        _ => &[],
    }
}

impl Entries {
    /// The operations on one resource: the role's, the ones given, or `default`.
    fn operations(
        &self,
        resource_type: ResourceType,
        default: &[AclOperation],
    ) -> anyhow::Result<Vec<AclOperation>> {
        use AclOperation as O;
        if self.producer || self.consumer {
            let mut ops = BTreeSet::new();
            if self.producer {
                ops.extend(match resource_type {
                    ResourceType::Topic => &[O::Write, O::Describe, O::Create][..],
                    ResourceType::TransactionalId => &[O::Write, O::Describe],
                    ResourceType::Cluster if self.idempotent => &[O::IdempotentWrite],
                    _ => &[],
                });
            }
            if self.consumer {
                ops.extend(match resource_type {
                    ResourceType::Topic => &[O::Read, O::Describe][..],
                    ResourceType::Group => &[O::Read],
                    _ => &[],
                });
            }
            return Ok(ops.into_iter().collect());
        }
        if self.operations.is_empty() {
            return Ok(default.to_vec());
        }
        let allowed = supported(resource_type);
        for op in &self.operations {
            if !allowed.contains(op) {
                let names: Vec<&str> = allowed.iter().map(|o| o.name()).collect();
                bail!(
                    "operation {op} is not one of a {resource_type}'s: {}",
                    names.join(", ")
                );
            }
        }
        Ok(self.operations.clone())
    }

    /// (principal, host, permission) of every entry: each allowed principal from
    /// each allowed host (default `*`), then the same for the denied ones.
    fn principals(&self) -> Vec<(String, String, AclPermission)> {
        let star = vec!["*".to_string()];
        let mut out = Vec::new();
        for (principals, hosts, permission) in [
            (
                &self.allow_principals,
                &self.allow_hosts,
                AclPermission::Allow,
            ),
            (&self.deny_principals, &self.deny_hosts, AclPermission::Deny),
        ] {
            let hosts = if hosts.is_empty() { &star } else { hosts };
            for p in principals {
                for h in hosts {
                    out.push((p.clone(), h.clone(), permission));
                }
            }
        }
        out
    }

    fn check_roles(&self, resources: &Resources) -> anyhow::Result<()> {
        if (self.producer || self.consumer) && resources.topics.is_empty() {
            bail!("--producer and --consumer need at least one --topic");
        }
        if self.consumer && resources.groups.is_empty() {
            bail!("--consumer needs a --group");
        }
        Ok(())
    }
}

fn check_principal(p: &str) -> anyhow::Result<()> {
    match p.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
        _ => bail!("principal {p:?} is not Type:name (e.g. User:alice)"),
    }
}

/// The bindings `strom acls create` makes.
fn bindings_to_create(
    resources: &Resources,
    entries: &Entries,
    pattern_type: PatternType,
) -> anyhow::Result<Vec<AclBinding>> {
    if resources.is_empty() {
        bail!("give a resource: --topic, --group, --transactional-id or --cluster");
    }
    let principals = entries.principals();
    if principals.is_empty() {
        bail!("give --allow-principal or --deny-principal");
    }
    for (p, _, _) in &principals {
        check_principal(p)?;
    }
    entries.check_roles(resources)?;
    let mut out = BTreeSet::new();
    for (resource_type, name) in resources.each() {
        let pattern = ResourcePattern::new(resource_type, name, pattern_type);
        for op in entries.operations(resource_type, &[AclOperation::All])? {
            for (principal, host, permission) in &principals {
                out.insert(AclBinding {
                    pattern: pattern.clone(),
                    entry: AccessControlEntry {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: op,
                        permission: *permission,
                    },
                });
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The filters `strom acls delete` deletes with.
fn delete_filters(
    resources: &Resources,
    entries: &Entries,
    pattern_type: PatternTypeFilter,
) -> anyhow::Result<Vec<AclBindingFilter>> {
    if resources.is_empty() {
        bail!("give a resource: --topic, --group, --transactional-id or --cluster");
    }
    entries.check_roles(resources)?;
    let principals = entries.principals();
    for (p, _, _) in &principals {
        check_principal(p)?;
    }
    let mut out = Vec::new();
    for (resource_type, name) in resources.each() {
        let base = AclBindingFilter {
            resource_type: Some(resource_type),
            name: Some(name),
            pattern_type,
            ..Default::default()
        };
        let ops: Vec<Option<AclOperation>> = match entries.operations(resource_type, &[])? {
            ops if ops.is_empty() && (entries.producer || entries.consumer) => continue,
            ops if ops.is_empty() => vec![None],
            ops => ops.into_iter().map(Some).collect(),
        };
        for op in ops {
            if principals.is_empty() {
                out.push(AclBindingFilter {
                    operation: op,
                    ..base.clone()
                });
            }
            for (principal, host, permission) in &principals {
                out.push(AclBindingFilter {
                    principal: Some(principal.clone()),
                    host: Some(host.clone()),
                    operation: op,
                    permission: Some(*permission),
                    ..base.clone()
                });
            }
        }
    }
    Ok(out)
}

/// The filters of `strom acls list`.
fn list_filters(
    resources: &Resources,
    pattern_type: Option<PatternTypeFilter>,
    principal: Option<&str>,
) -> Vec<AclBindingFilter> {
    let principal = principal.map(str::to_string);
    if resources.is_empty() {
        return vec![AclBindingFilter {
            pattern_type: pattern_type.unwrap_or(PatternTypeFilter::Any),
            principal,
            ..Default::default()
        }];
    }
    resources
        .each()
        .into_iter()
        .map(|(resource_type, name)| AclBindingFilter {
            resource_type: Some(resource_type),
            name: Some(name),
            pattern_type: pattern_type.unwrap_or(PatternTypeFilter::Literal),
            principal: principal.clone(),
            ..Default::default()
        })
        .collect()
}

/// `bindings` grouped by resource pattern (both sorted), in kafka-acls.sh's layout, each
/// group headed `{heading} `PATTERN`:` and followed by a blank line.
fn render(heading: &str, bindings: &[AclBinding]) -> String {
    let mut by_pattern: BTreeMap<&ResourcePattern, Vec<&AccessControlEntry>> = BTreeMap::new();
    for b in bindings {
        by_pattern.entry(&b.pattern).or_default().push(&b.entry);
    }
    let mut out = String::new();
    for (pattern, mut entries) in by_pattern {
        entries.sort();
        out.push_str(&format!("{heading} `{pattern}`:\n"));
        for e in entries {
            out.push_str(&format!("\t{e}\n"));
        }
        out.push('\n');
    }
    out
}

fn json_line(b: &AclBinding) -> String {
    json!({
        "resource_type": b.pattern.resource_type.name(),
        "name": b.pattern.name,
        "pattern_type": b.pattern.pattern_type.name(),
        "principal": b.entry.principal,
        "host": b.entry.host,
        "operation": b.entry.operation.name(),
        "permission": b.entry.permission.name(),
    })
    .to_string()
}

async fn describe_all(
    admin: &Admin,
    filters: &[AclBindingFilter],
) -> anyhow::Result<Vec<AclBinding>> {
    let mut found = BTreeSet::new();
    for f in filters {
        found.extend(
            admin
                .describe_acls(f)
                .await
                .with_context(|| "listing ACLs".to_string())?,
        );
    }
    Ok(found.into_iter().collect())
}

pub(super) async fn acls(cli: &Cli, action: &AclsAction) -> anyhow::Result<()> {
    // Arguments first: a mistake in them needs no broker.
    let plan = Plan::of(action)?;
    let client = super::admin::connect(cli).await?;
    let admin = Admin::new(client);
    match plan {
        Plan::List { by_principal, json } => {
            for (principal, filters) in by_principal {
                let found = describe_all(&admin, &filters).await?;
                if json {
                    for b in &found {
                        println!("{}", json_line(b));
                    }
                    continue;
                }
                if let Some(p) = &principal {
                    println!("ACLs for principal `{p}`");
                }
                print!("{}", render("Current ACLs for resource", &found));
            }
        }
        Plan::Create(bindings) => {
            let results = admin
                .create_acls(&bindings)
                .await
                .context("creating ACLs")?;
            let mut created = Vec::new();
            let mut failed = Vec::new();
            for (b, r) in bindings.into_iter().zip(results) {
                match r {
                    Ok(()) => created.push(b),
                    Err(e) => failed.push(e),
                }
            }
            print!("{}", render("Adding ACLs for resource", &created));
            if let Some(first) = failed.first() {
                return Err(anyhow::Error::from(first.clone()).context(format!(
                    "{} of {} ACLs not created",
                    failed.len(),
                    failed.len() + created.len()
                )));
            }
        }
        Plan::Delete { filters, force } => {
            if !force {
                let found = describe_all(&admin, &filters).await?;
                print!("{}", render("Would delete ACLs for resource", &found));
                println!(
                    "{} ACL(s) match; nothing deleted: pass --force to delete them",
                    found.len()
                );
                return Ok(());
            }
            let results = admin.delete_acls(&filters).await.context("deleting ACLs")?;
            let mut deleted = BTreeSet::new();
            for r in results {
                deleted.extend(r.context("deleting ACLs")?);
            }
            let deleted: Vec<AclBinding> = deleted.into_iter().collect();
            print!("{}", render("Deleted ACLs for resource", &deleted));
            println!("deleted {} ACL(s)", deleted.len());
        }
    }
    Ok(())
}

/// What a command will do, decided from its arguments alone.
#[derive(Debug)]
enum Plan {
    /// Per principal asked for (None: all), the filters to describe.
    List {
        by_principal: Vec<(Option<String>, Vec<AclBindingFilter>)>,
        json: bool,
    },
    Create(Vec<AclBinding>),
    Delete {
        filters: Vec<AclBindingFilter>,
        force: bool,
    },
}

impl Plan {
    fn of(action: &AclsAction) -> anyhow::Result<Plan> {
        Ok(match action {
            AclsAction::List {
                resources,
                resource_pattern_type,
                principals,
                json,
            } => {
                for p in principals {
                    check_principal(p)?;
                }
                let by_principal = if principals.is_empty() {
                    vec![(None, list_filters(resources, *resource_pattern_type, None))]
                } else {
                    principals
                        .iter()
                        .map(|p| {
                            (
                                Some(p.clone()),
                                list_filters(resources, *resource_pattern_type, Some(p)),
                            )
                        })
                        .collect()
                };
                Plan::List {
                    by_principal,
                    json: *json,
                }
            }
            AclsAction::Create {
                resources,
                entries,
                resource_pattern_type,
            } => Plan::Create(bindings_to_create(
                resources,
                entries,
                *resource_pattern_type,
            )?),
            AclsAction::Delete {
                resources,
                entries,
                resource_pattern_type,
                force,
            } => Plan::Delete {
                filters: delete_filters(resources, entries, *resource_pattern_type)?,
                force: *force,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let mut argv = vec!["strom", "acls"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv)?;
        match &cli.command {
            Command::Acls { action } => Plan::of(action),
            _ => unreachable!(),
        }
    }

    fn created(args: &[&str]) -> Vec<String> {
        match plan(args).unwrap() {
            Plan::Create(b) => b.iter().map(ToString::to_string).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn topic(name: &str, principal: &str, op: AclOperation, p: AclPermission) -> String {
        AclBinding::new(
            ResourcePattern::new(ResourceType::Topic, name, PatternType::Literal),
            principal,
            op,
            p,
        )
        .to_string()
    }

    #[test]
    fn create_gives_every_principal_each_operation_on_each_resource() {
        let b = created(&[
            "create",
            "--allow-principal",
            "User:alice",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--operation",
            "describe",
            "--topic",
            "orders",
        ]);
        assert_eq!(b.len(), 4);
        assert!(b.contains(&topic(
            "orders",
            "User:bob",
            AclOperation::Describe,
            AclPermission::Allow
        )));
    }

    #[test]
    fn create_defaults_to_all_from_any_host_and_denies_from_the_deny_hosts() {
        let b = created(&[
            "create",
            "--deny-principal",
            "User:mallory",
            "--deny-host",
            "10.0.0.1",
            "--topic",
            "t",
        ]);
        assert_eq!(
            b,
            [
                "(pattern=ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL), \
              entry=(principal=User:mallory, host=10.0.0.1, operation=ALL, permissionType=DENY))"
            ]
        );
    }

    #[test]
    fn producer_and_consumer_expand_as_kafka_acls_does() {
        let args = [
            "create",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--consumer",
            "--topic",
            "t",
            "--group",
            "g",
            "--transactional-id",
            "tx",
            "--resource-pattern-type",
            "prefixed",
        ];
        let b = created(&args);
        let ops: BTreeSet<(String, String)> = match plan(&args).unwrap() {
            Plan::Create(b) => b
                .iter()
                .map(|b| {
                    assert_eq!(b.pattern.pattern_type, PatternType::Prefixed);
                    (
                        b.pattern.resource_type.name().to_string(),
                        b.entry.operation.name().to_string(),
                    )
                })
                .collect(),
            other => panic!("{other:?}"),
        };
        let want: BTreeSet<(String, String)> = [
            ("TOPIC", "WRITE"),
            ("TOPIC", "DESCRIBE"),
            ("TOPIC", "CREATE"),
            ("TOPIC", "READ"),
            ("GROUP", "READ"),
            ("TRANSACTIONAL_ID", "WRITE"),
            ("TRANSACTIONAL_ID", "DESCRIBE"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(ops, want);
        assert_eq!(b.len(), 7);
    }

    #[test]
    fn idempotent_adds_idempotent_write_on_the_cluster() {
        let b = created(&[
            "create",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--idempotent",
            "--topic",
            "t",
            "--cluster",
        ]);
        assert!(b.iter().any(|b| b.contains(
            "ResourcePattern(resourceType=CLUSTER, name=kafka-cluster, patternType=LITERAL), \
             entry=(principal=User:alice, host=*, operation=IDEMPOTENT_WRITE"
        )));
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn wrong_arguments_are_refused_before_any_broker_is_asked() {
        let err = |args: &[&str]| plan(args).unwrap_err().to_string();
        assert!(err(&["create", "--topic", "t"]).contains("--allow-principal"));
        assert!(err(&["create", "--allow-principal", "User:a"]).contains("give a resource"));
        assert!(
            err(&["create", "--allow-principal", "alice", "--topic", "t"]).contains("Type:name")
        );
        assert!(
            err(&[
                "create",
                "--allow-principal",
                "User:a",
                "--operation",
                "Write",
                "--group",
                "g"
            ])
            .contains("not one of a GROUP's")
        );
        assert!(
            err(&[
                "create",
                "--allow-principal",
                "User:a",
                "--operation",
                "Fly",
                "--topic",
                "t"
            ])
            .contains("unknown operation")
        );
        assert!(
            err(&[
                "create",
                "--allow-principal",
                "User:a",
                "--consumer",
                "--topic",
                "t"
            ])
            .contains("--group")
        );
        assert!(
            err(&[
                "create",
                "--allow-principal",
                "User:a",
                "--topic",
                "t",
                "--resource-pattern-type",
                "match"
            ])
            .contains("literal or prefixed")
        );
        assert!(err(&["delete", "--force"]).contains("give a resource"));
    }

    #[test]
    fn delete_without_principals_matches_every_acl_of_the_resource() {
        let Plan::Delete { filters, force } = plan(&["delete", "--topic", "t"]).unwrap() else {
            panic!()
        };
        assert!(!force);
        assert_eq!(
            filters,
            [AclBindingFilter {
                resource_type: Some(ResourceType::Topic),
                name: Some("t".into()),
                pattern_type: PatternTypeFilter::Literal,
                ..Default::default()
            }]
        );
        let Plan::Delete { filters, force } = plan(&[
            "delete",
            "--force",
            "--group",
            "g",
            "--deny-principal",
            "User:m",
            "--operation",
            "Read",
            "--resource-pattern-type",
            "any",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(force);
        assert_eq!(
            filters,
            [AclBindingFilter {
                resource_type: Some(ResourceType::Group),
                name: Some("g".into()),
                pattern_type: PatternTypeFilter::Any,
                principal: Some("User:m".into()),
                host: Some("*".into()),
                operation: Some(AclOperation::Read),
                permission: Some(AclPermission::Deny),
            }]
        );
    }

    #[test]
    fn list_without_a_resource_asks_for_every_acl() {
        let Plan::List { by_principal, json } = plan(&["list"]).unwrap() else {
            panic!()
        };
        assert!(!json);
        assert_eq!(by_principal, [(None, vec![AclBindingFilter::any()])]);
        let Plan::List { by_principal, .. } = plan(&[
            "list",
            "--topic",
            "t",
            "--principal",
            "User:alice",
            "--resource-pattern-type",
            "match",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            by_principal,
            [(
                Some("User:alice".to_string()),
                vec![AclBindingFilter {
                    resource_type: Some(ResourceType::Topic),
                    name: Some("t".into()),
                    pattern_type: PatternTypeFilter::Match,
                    principal: Some("User:alice".into()),
                    ..Default::default()
                }]
            )]
        );
    }

    #[test]
    fn acls_print_in_kafka_acls_layout_grouped_by_resource() {
        let read = AclBinding::new(
            ResourcePattern::new(ResourceType::Topic, "orders", PatternType::Literal),
            "User:alice",
            AclOperation::Read,
            AclPermission::Allow,
        );
        let mut write = read.clone();
        write.entry.operation = AclOperation::Write;
        let group = AclBinding::new(
            ResourcePattern::new(ResourceType::Group, "billing", PatternType::Prefixed),
            "User:bob",
            AclOperation::Read,
            AclPermission::Deny,
        );
        assert_eq!(
            render("Current ACLs for resource", &[write, group.clone(), read]),
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:\n\
             \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\
             \t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)\n\
             \n\
             Current ACLs for resource `ResourcePattern(resourceType=GROUP, name=billing, patternType=PREFIXED)`:\n\
             \t(principal=User:bob, host=*, operation=READ, permissionType=DENY)\n\
             \n"
        );
        assert_eq!(render("x", &[]), "");
        let v: serde_json::Value = serde_json::from_str(&json_line(&group)).unwrap();
        assert_eq!(v["pattern_type"], "PREFIXED");
        assert_eq!(v["permission"], "DENY");
        assert_eq!(v["principal"], "User:bob");
    }
}
