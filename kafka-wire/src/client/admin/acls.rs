//! ACLs: CreateAcls, DescribeAcls and DeleteAcls (the work of `kafka-acls.sh`).
//!
//! ```text
//!  create_acls([AclBinding])        ─► CreateAcls   ─► one result per binding
//!  describe_acls(AclBindingFilter)  ─► DescribeAcls ─► the bindings that match
//!  delete_acls([AclBindingFilter])  ─► DeleteAcls   ─► per filter, the bindings deleted
//! ```
//!
//! Every request goes to any broker (with KRaft the broker forwards ACL changes
//! to the controller quorum). A broker without an authorizer answers
//! SECURITY_DISABLED. The numeric codes of the enums are Kafka's
//! (`org.apache.kafka.common.acl` and `.resource`); a code this crate does not
//! know is kept as `Unknown(code)`.

use std::fmt;

use super::{Admin, check_on};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::ApiKey;
use crate::protocol::messages::create_acls_request::AclCreation;
use crate::protocol::messages::delete_acls_request::DeleteAclsFilter;
use crate::protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

/// The wire code that matches any value in a filter (`ANY`).
const ANY: i8 = 1;

/// Declares an enum of Kafka ACL codes: variants with their wire code and Java
/// name, `code()`, `from_code()`, `name()` and `from_name()`.
macro_rules! acl_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $java:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code this crate does not know, as the broker sent it.
            Unknown(i8),
        }

        impl $name {
            /// Every known value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                    $name::Unknown(code) => code,
                }
            }

            /// The value of a wire code (`Unknown` for codes this crate does not know).
            pub fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }

            /// Kafka's name, as `kafka-acls.sh` prints it (e.g. `TRANSACTIONAL_ID`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $java,)*
                    $name::Unknown(_) => "UNKNOWN",
                }
            }

            /// Parses Kafka's name in any case, with or without `_` or `-` between
            /// words: `IDEMPOTENT_WRITE`, `IdempotentWrite`, `idempotent-write`.
            pub fn from_name(name: &str) -> Option<Self> {
                let wanted = squash(name);
                Self::ALL.iter().copied().find(|v| squash(v.name()) == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Lower case without `_` and `-`, for comparing names.
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

acl_enum! {
    /// The kind of resource an ACL is on.
    ResourceType {
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (its name is `kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user principal (for CreateTokens / DescribeTokens).
        User = 7, "USER";
    }
}

acl_enum! {
    /// How an ACL's resource name matches resources (KIP-290).
    PatternType {
        /// The name exactly (`*` matches every resource of the type).
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with it.
        Prefixed = 4, "PREFIXED";
    }
}

acl_enum! {
    /// The operation an ACL allows or denies.
    AclOperation {
        /// Every operation.
        All = 2, "ALL";
        /// Read (fetch, join a group, commit offsets).
        Read = 3, "READ";
        /// Write (produce, a transactional id's transactions).
        Write = 4, "WRITE";
        /// Create (topics).
        Create = 5, "CREATE";
        /// Delete (topics, records, groups).
        Delete = 6, "DELETE";
        /// Alter (partitions, ACLs).
        Alter = 7, "ALTER";
        /// Describe (metadata, offsets, groups, transactional ids).
        Describe = 8, "DESCRIBE";
        /// Broker-to-broker actions on the cluster.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Read configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Change configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// An idempotent producer's InitProducerId (on the cluster; since Kafka 3.0
        /// Write on any topic implies it, KIP-679).
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// Two-phase commit of a transactional id (KIP-939).
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

acl_enum! {
    /// Whether an ACL allows or denies (a deny wins over any allow).
    AclPermission {
        /// Deny.
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
}

/// The resources an ACL applies to: a type, a name and how the name matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    /// The kind of resource.
    pub resource_type: ResourceType,
    /// The name (`*`: every resource of the type; `kafka-cluster` for the cluster).
    pub name: String,
    /// Literal or prefixed.
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    /// A pattern of `resource_type` named `name`, matched as `pattern_type`.
    pub fn new(
        resource_type: ResourceType,
        name: impl Into<String>,
        pattern_type: PatternType,
    ) -> Self {
        ResourcePattern {
            resource_type,
            name: name.into(),
            pattern_type,
        }
    }
}

/// As Kafka prints it: `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`.
impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type, self.name, self.pattern_type
        )
    }
}

/// Who may (or may not) do what from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessControlEntry {
    /// The principal, `Type:name` (e.g. `User:alice`; `User:*` is every user).
    pub principal: String,
    /// The client host (`*`: any host).
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermission,
}

/// As Kafka prints it: `(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)`.
impl fmt::Display for AccessControlEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal, self.host, self.operation, self.permission
        )
    }
}

/// One ACL: an entry on a resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resources.
    pub pattern: ResourcePattern,
    /// The entry.
    pub entry: AccessControlEntry,
}

impl AclBinding {
    /// `principal` gets `permission` for `operation` on `pattern` from any host.
    pub fn new(
        pattern: ResourcePattern,
        principal: impl Into<String>,
        operation: AclOperation,
        permission: AclPermission,
    ) -> Self {
        AclBinding {
            pattern,
            entry: AccessControlEntry {
                principal: principal.into(),
                host: "*".into(),
                operation,
                permission,
            },
        }
    }
}

/// As Kafka prints it: `(pattern=ResourcePattern(..), entry=(..))`.
impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(pattern={}, entry={})", self.pattern, self.entry)
    }
}

/// Which patterns a filter matches, by pattern type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatternTypeFilter {
    /// Patterns of any type whose name equals the filter's name.
    #[default]
    Any,
    /// Every pattern that applies to the named resource: the literal name, the
    /// wildcard `*`, and every prefix of it.
    Match,
    /// Literal patterns only.
    Literal,
    /// Prefixed patterns only.
    Prefixed,
}

impl PatternTypeFilter {
    /// The wire code (`ANY` 1, `MATCH` 2, `LITERAL` 3, `PREFIXED` 4).
    pub fn code(self) -> i8 {
        match self {
            PatternTypeFilter::Any => ANY,
            PatternTypeFilter::Match => 2,
            PatternTypeFilter::Literal => PatternType::Literal.code(),
            PatternTypeFilter::Prefixed => PatternType::Prefixed.code(),
        }
    }

    /// Parses `any`, `match`, `literal` or `prefixed` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match squash(name).as_str() {
            "any" => PatternTypeFilter::Any,
            "match" => PatternTypeFilter::Match,
            "literal" => PatternTypeFilter::Literal,
            "prefixed" => PatternTypeFilter::Prefixed,
            _ => return None,
        })
    }
}

/// Which ACLs to describe or delete: every field left `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclBindingFilter {
    /// The kind of resource.
    pub resource_type: Option<ResourceType>,
    /// The resource name.
    pub name: Option<String>,
    /// How patterns are matched against `name`.
    pub pattern_type: PatternTypeFilter,
    /// The principal, `Type:name`.
    pub principal: Option<String>,
    /// The host.
    pub host: Option<String>,
    /// The operation.
    pub operation: Option<AclOperation>,
    /// Allow or deny.
    pub permission: Option<AclPermission>,
}

impl AclBindingFilter {
    /// Matches every ACL.
    pub fn any() -> Self {
        AclBindingFilter::default()
    }

    /// Matches exactly `binding` (its pattern type, not `Any`).
    pub fn exactly(binding: &AclBinding) -> Self {
        AclBindingFilter {
            resource_type: Some(binding.pattern.resource_type),
            name: Some(binding.pattern.name.clone()),
            pattern_type: match binding.pattern.pattern_type {
                PatternType::Prefixed => PatternTypeFilter::Prefixed,
                _ => PatternTypeFilter::Literal,
            },
            principal: Some(binding.entry.principal.clone()),
            host: Some(binding.entry.host.clone()),
            operation: Some(binding.entry.operation),
            permission: Some(binding.entry.permission),
        }
    }
}

impl fmt::Display for AclBindingFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let any = |v: Option<String>| v.unwrap_or_else(|| "<any>".into());
        write!(
            f,
            "(resourceType={}, name={}, patternType={:?}, principal={}, host={}, operation={}, permissionType={})",
            any(self.resource_type.map(|t| t.name().to_string())),
            any(self.name.clone()),
            self.pattern_type,
            any(self.principal.clone()),
            any(self.host.clone()),
            any(self.operation.map(|o| o.name().to_string())),
            any(self.permission.map(|p| p.name().to_string())),
        )
    }
}

/// A binding from the wire fields of a DescribeAcls or DeleteAcls answer.
fn binding_of(
    resource_type: i8,
    name: String,
    pattern_type: i8,
    principal: String,
    host: String,
    operation: i8,
    permission: i8,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(resource_type),
            name,
            pattern_type: PatternType::from_code(pattern_type),
        },
        entry: AccessControlEntry {
            principal,
            host,
            operation: AclOperation::from_code(operation),
            permission: AclPermission::from_code(permission),
        },
    }
}

impl Admin {
    /// Creates ACLs. The request fails as a whole only when no broker answers;
    /// the broker's verdict on each binding comes back in the same order (an
    /// existing binding is created again without error).
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
        let request = CreateAclsRequest {
            creations: bindings
                .iter()
                .map(|b| AclCreation {
                    resource_type: b.pattern.resource_type.code(),
                    resource_name: b.pattern.name.clone(),
                    resource_pattern_type: b.pattern.pattern_type.code(),
                    principal: b.entry.principal.clone(),
                    host: b.entry.host.clone(),
                    operation: b.entry.operation.code(),
                    permission_type: b.entry.permission.code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let response = self.call_any("CreateAcls", &request).await?;
        if response.results.len() != bindings.len() {
            return Err(Error::broker(
                ErrorCode::UnknownServerError,
                format!(
                    "CreateAcls answered {} results for {} creations",
                    response.results.len(),
                    bindings.len()
                ),
            )
            .with_api(ApiKey::CreateAcls));
        }
        Ok(response
            .results
            .iter()
            .zip(bindings)
            .map(|(r, b)| {
                // Creating and deleting ACLs needs Alter on the cluster.
                check_on(
                    ApiKey::CreateAcls,
                    r.error_code,
                    r.error_message.as_deref(),
                    "",
                    "alter",
                    || format!("create ACL {b}"),
                )
            })
            .collect())
    }

    /// The ACLs that match `filter`, sorted.
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let request = DescribeAclsRequest {
            resource_type_filter: filter.resource_type.map_or(ANY, ResourceType::code),
            resource_name_filter: filter.name.clone(),
            pattern_type_filter: filter.pattern_type.code(),
            principal_filter: filter.principal.clone(),
            host_filter: filter.host.clone(),
            operation: filter.operation.map_or(ANY, AclOperation::code),
            permission_type: filter.permission.map_or(ANY, AclPermission::code),
            ..Default::default()
        };
        let response = self.call_any("DescribeAcls", &request).await?;
        check_on(
            ApiKey::DescribeAcls,
            response.error_code,
            response.error_message.as_deref(),
            "",
            "describe",
            || format!("describe ACLs {filter}"),
        )?;
        let mut out = Vec::new();
        for r in response.resources {
            for a in r.acls {
                out.push(binding_of(
                    r.resource_type,
                    r.resource_name.clone(),
                    r.pattern_type,
                    a.principal,
                    a.host,
                    a.operation,
                    a.permission_type,
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the ACLs that match each filter. Per filter, in the same order: the
    /// bindings it deleted (sorted), or the broker's error for it.
    pub async fn delete_acls(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>>>> {
        let request = DeleteAclsRequest {
            filters: filters
                .iter()
                .map(|f| DeleteAclsFilter {
                    resource_type_filter: f.resource_type.map_or(ANY, ResourceType::code),
                    resource_name_filter: f.name.clone(),
                    pattern_type_filter: f.pattern_type.code(),
                    principal_filter: f.principal.clone(),
                    host_filter: f.host.clone(),
                    operation: f.operation.map_or(ANY, AclOperation::code),
                    permission_type: f.permission.map_or(ANY, AclPermission::code),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let response = self.call_any("DeleteAcls", &request).await?;
        if response.filter_results.len() != filters.len() {
            return Err(Error::broker(
                ErrorCode::UnknownServerError,
                format!(
                    "DeleteAcls answered {} results for {} filters",
                    response.filter_results.len(),
                    filters.len()
                ),
            )
            .with_api(ApiKey::DeleteAcls));
        }
        Ok(response
            .filter_results
            .into_iter()
            .zip(filters)
            .map(|(r, f)| {
                check_on(
                    ApiKey::DeleteAcls,
                    r.error_code,
                    r.error_message.as_deref(),
                    "",
                    "alter",
                    || format!("delete ACLs {f}"),
                )?;
                let mut deleted = Vec::new();
                for m in r.matching_acls {
                    let binding = binding_of(
                        m.resource_type,
                        m.resource_name,
                        m.pattern_type,
                        m.principal,
                        m.host,
                        m.operation,
                        m.permission_type,
                    );
                    check_on(
                        ApiKey::DeleteAcls,
                        m.error_code,
                        m.error_message.as_deref(),
                        "",
                        "alter",
                        || format!("delete ACL {binding}"),
                    )?;
                    deleted.push(binding);
                }
                deleted.sort();
                Ok(deleted)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enums_carry_kafkas_wire_codes() {
        let types: Vec<(i8, &str)> = ResourceType::ALL
            .iter()
            .map(|t| (t.code(), t.name()))
            .collect();
        assert_eq!(
            types,
            [
                (2, "TOPIC"),
                (3, "GROUP"),
                (4, "CLUSTER"),
                (5, "TRANSACTIONAL_ID"),
                (6, "DELEGATION_TOKEN"),
                (7, "USER")
            ]
        );
        let ops: Vec<i8> = AclOperation::ALL.iter().map(|o| o.code()).collect();
        assert_eq!(ops, (2..=15).collect::<Vec<i8>>());
        assert_eq!(AclOperation::IdempotentWrite.code(), 12);
        assert_eq!(AclOperation::DescribeConfigs.code(), 10);
        assert_eq!(
            (AclPermission::Deny.code(), AclPermission::Allow.code()),
            (2, 3)
        );
        assert_eq!(
            (PatternType::Literal.code(), PatternType::Prefixed.code()),
            (3, 4)
        );
        let filters = [
            PatternTypeFilter::Any,
            PatternTypeFilter::Match,
            PatternTypeFilter::Literal,
            PatternTypeFilter::Prefixed,
        ];
        assert_eq!(filters.map(PatternTypeFilter::code), [1, 2, 3, 4]);
    }

    #[test]
    fn every_code_reads_back_and_unknown_codes_are_kept() {
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(t.code()), *t);
        }
        for o in AclOperation::ALL {
            assert_eq!(AclOperation::from_code(o.code()), *o);
        }
        assert_eq!(AclOperation::from_code(42), AclOperation::Unknown(42));
        assert_eq!(AclOperation::Unknown(42).code(), 42);
        assert_eq!(ResourceType::from_code(0).name(), "UNKNOWN");
    }

    #[test]
    fn names_parse_in_kafka_acls_and_java_spellings() {
        assert_eq!(
            AclOperation::from_name("IdempotentWrite"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(
            AclOperation::from_name("IDEMPOTENT_WRITE"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(
            AclOperation::from_name("describe-configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(AclOperation::from_name("read"), Some(AclOperation::Read));
        assert_eq!(AclOperation::from_name("Any"), None);
        assert_eq!(
            ResourceType::from_name("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(
            PatternTypeFilter::from_name("MATCH"),
            Some(PatternTypeFilter::Match)
        );
        assert_eq!(PatternTypeFilter::from_name("exact"), None);
    }

    #[test]
    fn bindings_print_as_kafka_prints_them() {
        let b = AclBinding::new(
            ResourcePattern::new(ResourceType::Topic, "orders", PatternType::Literal),
            "User:alice",
            AclOperation::Read,
            AclPermission::Allow,
        );
        assert_eq!(
            b.pattern.to_string(),
            "ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)"
        );
        assert_eq!(
            b.entry.to_string(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"
        );
        let f = AclBindingFilter::exactly(&b);
        assert_eq!(f.pattern_type, PatternTypeFilter::Literal);
        assert_eq!(f.operation, Some(AclOperation::Read));
    }
}
