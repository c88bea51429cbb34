//! What every client run shares: the workload parameters, the payloads, the result
//! line a child prints for the parent, and latency percentiles.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;

/// The workload one child process runs (passed on its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct Workload {
    /// Bootstrap broker, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Records to produce, then to consume back.
    #[arg(long, default_value_t = 5_000_000)]
    pub records: u64,
    /// Value size in bytes (records have no key).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Partitions of each fresh topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// `batch.size` for every producer (rskafka: the uncompressed bytes of values per request and partition).
    #[arg(long, default_value_t = 65_536)]
    pub batch_size: usize,
    /// `linger.ms` for every producer.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// strom producer: await every DeliveryFuture in a collector task
    /// (FuturesUnordered) instead of on the sending task.
    #[arg(long)]
    pub strom_collector: bool,
    #[command(flatten)]
    pub security: Security,
}

/// How the clients connect: `security.protocol` and the files TLS needs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Security {
    /// `security.protocol`: PLAINTEXT, SSL (TLS; mutual TLS with --ssl-cert and
    /// --ssl-key) or SASL_SSL (TLS plus SASL --sasl-mechanism). strom and librdkafka
    /// only: rskafka and the Java tools run over PLAINTEXT.
    #[arg(long, default_value = "PLAINTEXT")]
    pub security_protocol: String,
    /// PEM file of the CA that signed the broker's certificate.
    #[arg(long)]
    pub ssl_ca: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS.
    #[arg(long)]
    pub ssl_cert: Option<PathBuf>,
    /// PEM (PKCS#8, unencrypted) private key of --ssl-cert.
    #[arg(long)]
    pub ssl_key: Option<PathBuf>,
    /// SASL mechanism with SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "PLAIN")]
    pub sasl_mechanism: String,
    /// SASL user name.
    #[arg(long, default_value = "admin")]
    pub sasl_username: String,
    /// SASL password.
    #[arg(long, default_value = "admin-secret")]
    pub sasl_password: String,
}

impl Security {
    /// `security.protocol`, upper case.
    pub fn protocol(&self) -> String {
        self.security_protocol.trim().to_ascii_uppercase()
    }

    /// Whether anything but PLAINTEXT is asked for.
    pub fn is_secured(&self) -> bool {
        self.protocol() != "PLAINTEXT"
    }

    /// The label in reports: `PLAINTEXT`, `SSL (mTLS)`, `SASL_SSL (PLAIN)`.
    pub fn label(&self) -> String {
        match self.protocol().as_str() {
            "SSL" if self.ssl_cert.is_some() => "SSL (mTLS)".into(),
            "SASL_SSL" => format!("SASL_SSL ({})", self.sasl_mechanism),
            p => p.into(),
        }
    }

    /// The arguments that hand these settings to a child process.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--security-protocol".to_string(),
            self.security_protocol.clone(),
        ];
        for (flag, path) in [
            ("--ssl-ca", &self.ssl_ca),
            ("--ssl-cert", &self.ssl_cert),
            ("--ssl-key", &self.ssl_key),
        ] {
            if let Some(path) = path {
                args.push(flag.into());
                args.push(path.display().to_string());
            }
        }
        for (flag, value) in [
            ("--sasl-mechanism", &self.sasl_mechanism),
            ("--sasl-username", &self.sasl_username),
            ("--sasl-password", &self.sasl_password),
        ] {
            args.push(flag.into());
            args.push(value.clone());
        }
        args
    }

    /// The Java client properties strom reads (`ProducerConfig::from_properties`
    /// and `ConsumerConfig::from_properties`): the one place the bench passes
    /// security settings to strom. The CA as `ssl.truststore.location` of type
    /// PEM; the client identity inline as `ssl.keystore.certificate.chain` and
    /// `ssl.keystore.key` (KIP-651), since the certificate and key are two files.
    pub fn java_properties(&self) -> Result<Vec<(String, String)>> {
        let protocol = self.protocol();
        let mut props = vec![("security.protocol".to_string(), protocol.clone())];
        if protocol == "PLAINTEXT" {
            return Ok(props);
        }
        if !matches!(protocol.as_str(), "SSL" | "SASL_SSL") {
            bail!("--security-protocol {protocol}: expected PLAINTEXT, SSL or SASL_SSL");
        }
        if let Some(ca) = &self.ssl_ca {
            props.push(("ssl.truststore.location".into(), ca.display().to_string()));
            props.push(("ssl.truststore.type".into(), "PEM".into()));
        }
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => {
                let read = |p: &PathBuf| {
                    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
                };
                props.push(("ssl.keystore.type".into(), "PEM".into()));
                props.push(("ssl.keystore.certificate.chain".into(), read(cert)?));
                props.push(("ssl.keystore.key".into(), read(key)?));
            }
            (None, None) => {}
            _ => bail!("--ssl-cert and --ssl-key go together"),
        }
        if protocol == "SASL_SSL" {
            let module = if self
                .sasl_mechanism
                .to_ascii_uppercase()
                .starts_with("SCRAM")
            {
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            } else {
                "org.apache.kafka.common.security.plain.PlainLoginModule"
            };
            props.push(("sasl.mechanism".into(), self.sasl_mechanism.clone()));
            props.push((
                "sasl.jaas.config".into(),
                format!(
                    "{module} required username=\"{}\" password=\"{}\";",
                    self.sasl_username, self.sasl_password
                ),
            ));
        }
        Ok(props)
    }

    /// The same settings under librdkafka's names.
    pub fn librdkafka_properties(&self) -> Vec<(String, String)> {
        let protocol = self.protocol();
        let mut props = vec![(
            "security.protocol".to_string(),
            protocol.to_ascii_lowercase(),
        )];
        for (key, path) in [
            ("ssl.ca.location", &self.ssl_ca),
            ("ssl.certificate.location", &self.ssl_cert),
            ("ssl.key.location", &self.ssl_key),
        ] {
            if let Some(path) = path.as_ref().filter(|_| protocol != "PLAINTEXT") {
                props.push((key.into(), path.display().to_string()));
            }
        }
        if protocol == "SASL_SSL" {
            props.push(("sasl.mechanisms".into(), self.sasl_mechanism.clone()));
            props.push(("sasl.username".into(), self.sasl_username.clone()));
            props.push(("sasl.password".into(), self.sasl_password.clone()));
        }
        props
    }
}

/// How many distinct payloads to cycle through. Large enough that a batch never
/// repeats a value (so LZ4 sees no cross-record repeats), small enough to build fast.
const PAYLOAD_POOL: usize = 4096;

/// Values of `size` random upper-case ASCII letters, as Java's ProducerPerformance
/// makes them (`random.nextInt(26) + 65`), so every client compresses the same kind
/// of data. A fixed-seed xorshift keeps runs comparable.
pub fn payloads(size: usize) -> Vec<Bytes> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..PAYLOAD_POOL)
        .map(|_| {
            let v: Vec<u8> = (0..size).map(|_| b'A' + (next() % 26) as u8).collect();
            Bytes::from(v)
        })
        .collect()
}

/// What a child measured, printed as one `BENCH-RESULT` line on stdout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Records produced (acknowledged) or consumed.
    pub records: u64,
    /// Value bytes of those records.
    pub bytes: u64,
    /// Wall time of the measured phase (first send to last ack; assign to last record).
    pub secs: f64,
    /// Send-to-ack latency median, ms.
    pub p50_ms: Option<f64>,
    /// Send-to-ack latency 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

const PREFIX: &str = "BENCH-RESULT";

impl Measured {
    /// The line the child prints.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "{PREFIX} records={} bytes={} secs={:.6}",
            self.records, self.bytes, self.secs
        );
        if let (Some(p50), Some(p99)) = (self.p50_ms, self.p99_ms) {
            s.push_str(&format!(" p50_ms={p50:.3} p99_ms={p99:.3}"));
        }
        s
    }

    /// Finds and parses the result line in a child's stdout.
    pub fn from_output(out: &str) -> Option<Measured> {
        let line = out.lines().rev().find(|l| l.starts_with(PREFIX))?;
        let mut m = Measured::default();
        for field in line.split_whitespace().skip(1) {
            let (k, v) = field.split_once('=')?;
            match k {
                "records" => m.records = v.parse().ok()?,
                "bytes" => m.bytes = v.parse().ok()?,
                "secs" => m.secs = v.parse().ok()?,
                "p50_ms" => m.p50_ms = v.parse().ok(),
                "p99_ms" => m.p99_ms = v.parse().ok(),
                _ => {}
            }
        }
        Some(m)
    }
}

/// Send-to-ack latencies in microseconds.
#[derive(Debug, Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    /// Records the same latency `n` times (every record of one batch).
    pub fn push_n(&mut self, d: Duration, n: usize) {
        let us = d.as_micros().min(u32::MAX as u128) as u32;
        self.0.extend(std::iter::repeat_n(us, n));
    }

    /// (p50, p99) in ms, or `None` when nothing was recorded.
    pub fn percentiles(mut self) -> (Option<f64>, Option<f64>) {
        if self.0.is_empty() {
            return (None, None);
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
            self.0[i] as f64 / 1000.0
        };
        (Some(at(0.50)), Some(at(0.99)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips() {
        let m = Measured {
            records: 10,
            bytes: 1000,
            secs: 1.5,
            p50_ms: Some(2.0),
            p99_ms: Some(9.5),
        };
        let out = format!("noise\n{}\n", m.to_line());
        assert_eq!(Measured::from_output(&out), Some(m));
    }

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.percentiles(), (Some(50.0), Some(99.0)));
    }
}
