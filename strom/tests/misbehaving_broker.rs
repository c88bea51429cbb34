//! `strom consume` and `strom produce` against a broker that answers ApiVersions,
//! Metadata, ListOffsets and InitProducerId correctly, then breaks its Fetch or
//! Produce answers: truncated, oversized, garbled, or none at all. Each run must
//! exit non-zero within its timeout with the cause on one line, without a panic
//! and in bounded memory.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_wire::client::fake_broker::{
    Answer, Request, api_versions, bind, frame_of, one_broker_metadata, serve_all,
};
use kafka_wire::protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_wire::protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest,
};
use kafka_wire::protocol::{Message, Uuid};
use tokio::io::AsyncWriteExt;

const TOPIC: &str = "t";

/// How the fake answers the api under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    /// A complete frame whose body stops halfway through the response.
    Truncated,
    /// A size prefix of almost 2 GiB, then nothing.
    Oversized,
    /// The right correlation id, then pseudo-random bytes.
    Garbled,
    /// No answer at all.
    Silent,
}

struct Fake {
    port: u16,
    broken: ApiKey,
    breakage: Breakage,
}

impl Fake {
    async fn start(broken: ApiKey, breakage: Breakage) -> u16 {
        let (listener, port) = bind().await;
        let fake = Arc::new(Fake {
            port,
            broken,
            breakage,
        });
        serve_all(listener, &fake, Fake::answer);
        port
    }

    async fn answer(self: Arc<Self>, request: Request) -> Answer {
        let (version, cid, mut body) = (request.version, request.cid, request.body);
        let out = match request.api {
            ApiKey::ApiVersions => {
                let keys = [
                    (ApiKey::ApiVersions, 3),
                    (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                    (ApiKey::ListOffsets, ListOffsetsRequest::VALID_VERSIONS.max),
                    (
                        ApiKey::InitProducerId,
                        InitProducerIdRequest::VALID_VERSIONS.max,
                    ),
                    // Topic names, not ids.
                    (ApiKey::Fetch, 12),
                    (ApiKey::Produce, 11),
                ];
                api_versions(&keys, version, cid)
            }
            ApiKey::Metadata => {
                let topics = [(TOPIC, Uuid::default(), 1)];
                frame_of(&one_broker_metadata(self.port, &topics), version, cid)
            }
            ApiKey::ListOffsets => {
                let request = ListOffsetsRequest::decode(&mut body, version).unwrap();
                frame_of(&list_offsets_at_zero(&request), version, cid)
            }
            ApiKey::InitProducerId => {
                let response = InitProducerIdResponse {
                    producer_id: 7,
                    producer_epoch: 0,
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            api if api == self.broken => match self.broken_answer(api, version, cid) {
                Some(out) => out,
                None => return Answer::Silence,
            },
            other => panic!("fake broker got {other:?}"),
        };
        out.into()
    }

    /// The broken answer to a request of `api`; None to stay silent.
    fn broken_answer(&self, api: ApiKey, version: i16, cid: i32) -> Option<Bytes> {
        match self.breakage {
            Breakage::Silent => None,
            Breakage::Oversized => Some(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xf0])),
            Breakage::Truncated => {
                let whole = match api {
                    ApiKey::Fetch => frame_of(
                        &kafka_wire::protocol::messages::FetchResponse::default(),
                        version,
                        cid,
                    ),
                    _ => frame_of(
                        &kafka_wire::protocol::messages::ProduceResponse::default(),
                        version,
                        cid,
                    ),
                };
                // Keep the header, half of the body, and a size prefix that matches.
                let body = &whole[4..];
                let cut = &body[..body.len() / 2];
                let mut out = BytesMut::new();
                out.put_i32(cut.len() as i32);
                out.put_slice(cut);
                Some(out.freeze())
            }
            Breakage::Garbled => {
                let mut out = BytesMut::new();
                out.put_i32(4 + 1 + 64);
                out.put_i32(cid);
                out.put_u8(0); // empty tagged fields of a flexible header
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
                for _ in 0..64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    out.put_u8(x as u8);
                }
                Some(out.freeze())
            }
        }
    }
}

fn list_offsets_at_zero(request: &ListOffsetsRequest) -> ListOffsetsResponse {
    ListOffsetsResponse {
        topics: request
            .topics
            .iter()
            .map(|t| ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        timestamp: -1,
                        offset: 0,
                        leader_epoch: 0,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// What a run of the binary left behind.
struct Run {
    success: bool,
    elapsed: Duration,
    stderr: String,
    peak_rss_kib: u64,
}

/// Runs `strom ARGS` with `stdin` fed in, sampling its peak RSS, and kills it if it
/// outlives `limit`.
async fn run_strom(args: &[String], stdin: &str, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .env_remove("KAFKA_BOOTSTRAP")
        .env("RUST_LOG", "off")
        .env("STROM_HTTP_ADDR", "127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let pid = child.id().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .unwrap();
        text
    });
    let mut peak_rss_kib = 0;
    let status = loop {
        if let Some(kib) = peak_rss(pid) {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        match tokio::time::timeout(Duration::from_millis(20), child.wait()).await {
            Ok(status) => break status.unwrap(),
            Err(_) if started.elapsed() > limit => {
                child.kill().await.unwrap();
                panic!("strom {args:?} still running after {limit:?}");
            }
            Err(_) => {}
        }
    };
    Run {
        success: status.success(),
        elapsed: started.elapsed(),
        stderr: reader.await.unwrap(),
        peak_rss_kib,
    }
}

/// VmHWM of a running process, in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Asserts the run failed in time, with one `error:` line that holds `cause` once.
fn assert_failed_with(run: &Run, cause: &str, within: Duration) {
    eprintln!(
        "exit success={} after {:?}, peak RSS {} KiB, stderr:\n{}",
        run.success, run.elapsed, run.peak_rss_kib, run.stderr
    );
    assert!(!run.success, "exited 0; stderr: {}", run.stderr);
    assert!(
        run.elapsed < within,
        "took {:?} (limit {within:?})",
        run.elapsed
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "stderr: {}", run.stderr);
    assert_eq!(
        errors[0].matches(cause).count(),
        1,
        "{cause:?} not named exactly once in {:?}",
        errors[0]
    );
    assert!(
        run.peak_rss_kib < 200 * 1024,
        "peak RSS {} KiB",
        run.peak_rss_kib
    );
}

async fn consume_against(breakage: Breakage) -> Run {
    let port = Fake::start(ApiKey::Fetch, breakage).await;
    let args: Vec<String> = [
        "--bootstrap",
        &format!("127.0.0.1:{port}"),
        "-X",
        "retry.backoff.ms=20",
        "-X",
        "reconnect.backoff.ms=20",
        "consume",
        "--topic",
        TOPIC,
        "--from-beginning",
        "--timeout-ms",
        "2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_strom(&args, "", Duration::from_secs(30)).await
}

async fn produce_against(breakage: Breakage) -> Run {
    let port = Fake::start(ApiKey::Produce, breakage).await;
    let args: Vec<String> = [
        "--bootstrap",
        &format!("127.0.0.1:{port}"),
        "-X",
        "retry.backoff.ms=20",
        "-X",
        "reconnect.backoff.ms=20",
        "-X",
        "request.timeout.ms=1000",
        "-X",
        "delivery.timeout.ms=3000",
        "produce",
        "--topic",
        TOPIC,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run_strom(&args, "a\nb\nc\n", Duration::from_secs(30)).await
}

/// The consume's idle timeout (2 s) plus start-up and shutdown.
const CONSUME_LIMIT: Duration = Duration::from_secs(6);
/// The produce's delivery timeout (3 s) plus start-up and shutdown.
const PRODUCE_LIMIT: Duration = Duration::from_secs(7);

#[tokio::test]
async fn consume_reports_truncated_fetch_answers() {
    let run = consume_against(Breakage::Truncated).await;
    assert_failed_with(&run, "truncated input", CONSUME_LIMIT);
    assert!(run.stderr.contains("reading t failed"), "{}", run.stderr);
}

#[tokio::test]
async fn consume_reports_oversized_fetch_answers() {
    let run = consume_against(Breakage::Oversized).await;
    assert_failed_with(&run, "outside [4, 268435456]", CONSUME_LIMIT);
}

#[tokio::test]
async fn consume_reports_garbled_fetch_answers() {
    let run = consume_against(Breakage::Garbled).await;
    assert_failed_with(&run, "reading t failed", CONSUME_LIMIT);
}

#[tokio::test]
async fn consume_reports_fetches_never_answered() {
    let run = consume_against(Breakage::Silent).await;
    assert_failed_with(
        &run,
        "no fetch of t-0 was answered within 2000 ms",
        CONSUME_LIMIT,
    );
}

#[tokio::test]
async fn produce_reports_truncated_produce_answers() {
    let run = produce_against(Breakage::Truncated).await;
    assert_failed_with(&run, "truncated input", PRODUCE_LIMIT);
    assert!(!run.stderr.contains("cannot encode"), "{}", run.stderr);
}

#[tokio::test]
async fn produce_reports_oversized_produce_answers() {
    let run = produce_against(Breakage::Oversized).await;
    assert_failed_with(&run, "outside [4, 268435456]", PRODUCE_LIMIT);
}

#[tokio::test]
async fn produce_reports_garbled_produce_answers() {
    let run = produce_against(Breakage::Garbled).await;
    assert_failed_with(&run, "producing to t", PRODUCE_LIMIT);
    assert!(!run.stderr.contains("cannot encode"), "{}", run.stderr);
}

#[tokio::test]
async fn produce_reports_produce_answers_that_never_come() {
    let run = produce_against(Breakage::Silent).await;
    assert_failed_with(
        &run,
        "delivery.timeout.ms expired (possibly written); last error: timed out: Produce to 127.0.0.1:",
        PRODUCE_LIMIT,
    );
}
