//! What to do about an error: a short hint that `main` appends to the one-line
//! message, keyed by the Kafka error code or the I/O error underneath.

use kafka_wire::ErrorCode;

/// The hint for the first cause in `error`'s chain that has one.
pub fn advice(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<kafka_wire::Error>() {
            return for_kafka(e);
        }
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| for_io(io.kind()))
    })
}

fn for_kafka(e: &kafka_wire::Error) -> Option<&'static str> {
    use kafka_wire::Error as E;
    match e {
        E::Io { source, .. } => for_io(source.kind()),
        E::DeliveryTimeout {
            last_error: Some(last),
            ..
        } => for_kafka(last),
        E::NoCommonVersion { .. } => {
            Some("the broker is too old for this call: strom needs Kafka 3.x or 4.x")
        }
        e => e.code().and_then(for_code),
    }
}

fn for_code(code: ErrorCode) -> Option<&'static str> {
    use ErrorCode as C;
    Some(match code {
        C::UnknownTopicOrPartition | C::UnknownTopicId => {
            "check the topic name with `strom topics list`"
        }
        C::TopicAlreadyExists => "pick another name, or delete it first with `strom topics delete`",
        C::InvalidReplicationFactor => {
            "lower --replication-factor to at most the number of brokers (`strom cluster describe`)"
        }
        C::InvalidPartitions => "give at least one partition (and never fewer than the topic has)",
        C::InvalidConfig | C::PolicyViolation => {
            "check the config names and values against the broker's documentation"
        }
        C::InvalidTopicException => {
            "topic names use letters, digits, '.', '_' and '-', at most 249 characters"
        }
        C::TopicDeletionDisabled => "the broker has delete.topic.enable=false",
        C::GroupIdNotFound => "check the group id with `strom groups list`",
        C::InvalidGroupId => "give a non-empty group id",
        C::NonEmptyGroup => "stop the group's consumers first, then retry",
        C::GroupSubscribedToTopic => "stop the group's consumers of that topic first, then retry",
        C::TransactionalIdNotFound => "check the transactional id with `strom txns list`",
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed => {
            "the principal lacks an ACL for this operation: ask an administrator to grant it"
        }
        C::SecurityDisabled => {
            "the broker has no authorizer: set authorizer.class.name (e.g. org.apache.kafka.metadata.authorizer.StandardAuthorizer) to use ACLs"
        }
        C::SaslAuthenticationFailed => "check the user name, password and sasl.mechanism",
        C::MessageTooLarge => "raise max.message.bytes on the topic or send smaller records",
        C::OffsetOutOfRange => "start from a valid offset (`--from beginning` or `--from end`)",
        C::UnsupportedVersion => {
            "the broker is too old for this call: strom needs Kafka 3.x or 4.x"
        }
        C::ProducerFenced => "another producer with the same transactional.id took over",
        _ => return None,
    })
}

fn for_io(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => {
            "is a broker listening there? check --bootstrap, bootstrap.servers or $KAFKA_BOOTSTRAP"
        }
        K::AddrInUse => "another process holds that port: pick another address",
        K::NotFound => "check the path",
        K::PermissionDenied => "check the permissions of the file or port",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_error_code_deep_in_the_chain_gets_its_hint() {
        let e = anyhow::Error::from(kafka_wire::Error::broker(
            ErrorCode::UnknownTopicOrPartition,
            "DeleteTopics nope",
        ))
        .context("deleting topics");
        assert_eq!(
            advice(&e),
            Some("check the topic name with `strom topics list`")
        );
    }

    #[test]
    fn a_refused_connection_points_at_the_bootstrap_setting() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(advice(&e).is_some_and(|a| a.contains("--bootstrap")));
    }

    #[test]
    fn errors_without_a_known_remedy_get_no_hint() {
        assert_eq!(advice(&anyhow::anyhow!("something else")), None);
        let e = anyhow::Error::from(kafka_wire::Error::broker(
            ErrorCode::NotLeaderOrFollower,
            "Produce",
        ));
        assert_eq!(advice(&e), None);
    }
}
