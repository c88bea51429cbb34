//! What the admin commands (`topics`, `groups`, `txns`, `cluster`) share: the
//! client, and the Kafka errors a wrong name causes told as one sentence about
//! that name (other errors get the generic hint of `advice.rs` in `main`).

use anyhow::anyhow;
use kafka_wire::ErrorCode;
use kafka_wire::client::Client;
use kafka_wire::client::config::ProducerConfig;

use super::Cli;

/// A client of the cluster the command line names. When no broker answers (after
/// `request.timeout.ms`), the error names the addresses tried; a TLS or SASL
/// failure is told as itself.
pub(super) async fn connect(cli: &Cli) -> anyhow::Result<Client> {
    let props = cli.properties()?;
    let config = ProducerConfig::from_properties(&props)?;
    let servers = config.client.bootstrap_servers.join(",");
    Client::connect(config.client).await.map_err(|e| {
        // A TLS or SASL failure names its cause and the setting to change.
        if e.code().is_some() || e.is_security_failure() {
            anyhow::Error::from(e)
        } else {
            anyhow!(
                "cannot reach a broker at {servers} ({e}): check --bootstrap and that the brokers are running"
            )
        }
    })
}

/// What a failed request was about.
#[derive(Clone, Copy)]
pub(super) enum Subject<'a> {
    /// A topic.
    Topic(&'a str),
    /// One partition of a topic.
    Partition(&'a str, i32),
    /// A transactional id.
    TransactionalId(&'a str),
}

/// Turns the Kafka errors a user causes (a wrong name, an existing topic) into a
/// sentence about the subject with what to do; other errors keep kafka-wire's
/// message, which names the request and the code.
pub(super) trait Explain<T> {
    /// The result, its error explained for `subject`.
    fn about(self, subject: Subject<'_>) -> anyhow::Result<T>;
}

impl<T> Explain<T> for kafka_wire::Result<T> {
    fn about(self, subject: Subject<'_>) -> anyhow::Result<T> {
        self.map_err(|e| explain(e, subject))
    }
}

fn explain(e: kafka_wire::Error, subject: Subject<'_>) -> anyhow::Error {
    let Some(code) = e.code() else {
        return e.into();
    };
    let name = code.name();
    // A request about several partitions of a topic fails on one of them: the
    // error names which, so the sentence can too.
    let subject = match (subject, e.topic_partition()) {
        (Subject::Topic(t), Some((topic, p))) if topic == t => Subject::Partition(t, p),
        _ => subject,
    };
    match (code, subject) {
        (ErrorCode::UnknownTopicOrPartition, Subject::Topic(t)) => {
            anyhow!("topic {t} does not exist ({name}): check the name with `strom topics list`")
        }
        (ErrorCode::UnknownTopicOrPartition, Subject::Partition(t, p)) => anyhow!(
            "partition {p} of topic {t} does not exist ({name}): check the topic and its partitions with `strom topics describe {t}`"
        ),
        (ErrorCode::TopicAlreadyExists, Subject::Topic(t)) => anyhow!(
            "topic {t} already exists ({name}): pick another name, or delete it first with `strom topics delete {t}`"
        ),
        (ErrorCode::TransactionalIdNotFound, Subject::TransactionalId(id)) => anyhow!(
            "transactional id {id} is not known to its coordinator ({name}): check the id with `strom txns list`"
        ),
        (ErrorCode::OffsetOutOfRange, Subject::Partition(t, p)) => anyhow!(
            "the offset is past the end of partition {p} of topic {t} ({name}): use --all to delete every record"
        ),
        _ => e.into(),
    }
}

/// The error for a partition the topic's metadata does not list.
pub(super) fn no_such_partition(topic: &str, partition: i32) -> anyhow::Error {
    explain(
        kafka_wire::Error::broker(
            ErrorCode::UnknownTopicOrPartition,
            format!("{topic}-{partition}"),
        )
        .with_partition(topic, partition),
        Subject::Partition(topic, partition),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_about_one_partition_of_a_topic_is_told_about_that_partition() {
        let e = kafka_wire::Error::broker(ErrorCode::OffsetOutOfRange, "delete records of t-2")
            .with_partition("t", 2);
        assert_eq!(
            explain(e, Subject::Topic("t")).to_string(),
            "the offset is past the end of partition 2 of topic t (OFFSET_OUT_OF_RANGE): use --all to delete every record"
        );
        let other =
            kafka_wire::Error::broker(ErrorCode::OffsetOutOfRange, "x").with_partition("u", 2);
        assert!(
            explain(other, Subject::Topic("t"))
                .to_string()
                .starts_with("x: ")
        );
    }
}
