//! Securing connections: TLS (rustls) and SASL authentication, configured with the
//! Java client's `security.protocol`, `ssl.*` and `sasl.*` properties.
//!
//! ```text
//!  TCP connect ─► TLS handshake (SSL, SASL_SSL) ─► ApiVersions
//!      ─► SaslHandshake + SaslAuthenticate rounds (SASL_*) ─► requests
//!                        ▲                         │
//!                        └── re-authentication ◄───┘ before session_lifetime_ms ends (KIP-368)
//! ```
//!
//! [`SecurityConfig`] is what [`crate::client::config::ClientConfig`] carries and
//! every connection receives through
//! [`crate::client::connection::ConnectionOptions`]. Handshake and authentication
//! failures are [`crate::Error::Tls`] and [`crate::Error::Authentication`]: not
//! retriable, so clients report them at once instead of reconnecting.

pub(crate) mod authenticate;
pub mod sasl;
pub mod tls;

pub use sasl::{SaslConfig, SaslMechanism};
pub use tls::TlsConfig;

use crate::error::{Error, Result};

/// Every `ssl.*` and `sasl.*` key a client config accepts: the Java clients'
/// (consumer, producer and admin of the pinned Kafka, 4.1.1), whether this crate
/// reads it or, as the Java-only ones, ignores it, plus `sasl.oauthbearer.token`
/// (a static token, this crate's own). Any other key under those prefixes is a
/// typo, or another client's name, and is refused.
pub(crate) const SECURITY_KEYS: &[&str] = &[
    "sasl.client.callback.handler.class",
    "sasl.jaas.config",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.callback.handler.class",
    "sasl.login.class",
    "sasl.login.connect.timeout.ms",
    "sasl.login.read.timeout.ms",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.retry.backoff.max.ms",
    "sasl.login.retry.backoff.ms",
    "sasl.mechanism",
    "sasl.oauthbearer.assertion.algorithm",
    "sasl.oauthbearer.assertion.claim.aud",
    "sasl.oauthbearer.assertion.claim.exp.seconds",
    "sasl.oauthbearer.assertion.claim.iss",
    "sasl.oauthbearer.assertion.claim.jti.include",
    "sasl.oauthbearer.assertion.claim.nbf.seconds",
    "sasl.oauthbearer.assertion.claim.sub",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.template.file",
    "sasl.oauthbearer.client.credentials.client.id",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.header.urlencode",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.jwt.retriever.class",
    "sasl.oauthbearer.jwt.validator.class",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.token",
    "sasl.oauthbearer.token.endpoint.url",
    "ssl.cipher.suites",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.factory.class",
    "ssl.key.password",
    "ssl.keymanager.algorithm",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.protocol",
    "ssl.provider",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

/// librdkafka's names of security settings, with what to set here instead.
pub(crate) const LIBRDKAFKA_SECURITY_KEYS: &[(&str, &str)] = &[
    ("sasl.mechanisms", "sasl.mechanism"),
    ("sasl.username", "sasl.jaas.config"),
    ("sasl.password", "sasl.jaas.config"),
    ("ssl.ca.location", "ssl.truststore.location"),
    ("ssl.certificate.location", "ssl.keystore.location"),
    ("ssl.key.location", "ssl.keystore.location"),
];

/// Whether a property's value is a secret (a password, a private key, a token or
/// a JAAS line holding one), to be left out of `Debug` output and logs.
pub fn is_secret_property(key: &str) -> bool {
    key.ends_with(".password")
        || key == "sasl.jaas.config"
        || key == "ssl.keystore.key"
        || key == "sasl.oauthbearer.token"
        || key.contains("secret")
}

/// `security.protocol`: how a client talks to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS; the principal is the client certificate's, if any.
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// TLS, then SASL authentication.
    SaslSsl,
}

impl SecurityProtocol {
    /// The Java name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(Error::Config {
                key: "security.protocol".into(),
                message: format!(
                    "invalid value {s:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                ),
            }),
        }
    }
}

/// How connections are secured: the protocol, and the TLS and SASL settings it
/// needs. `Debug` shows no password, key or token.
///
/// Built from properties by [`SecurityConfig::from_properties`] (which
/// `ClientConfig` calls), or in code:
///
/// ```no_run
/// # fn main() -> kafka_wire::Result<()> {
/// use kafka_wire::client::security::{SecurityConfig, TlsConfig};
/// let tls = TlsConfig::new()
///     .with_trusted_pem_file("/etc/kafka/ca.pem")?
///     .with_client_identity_pem_files("/etc/kafka/me.pem", "/etc/kafka/me.key", None)?;
/// let security = SecurityConfig::ssl(tls);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    protocol: SecurityProtocol,
    tls: Option<TlsConfig>,
    sasl: Option<SaslConfig>,
}

impl SecurityConfig {
    /// PLAINTEXT: neither TLS nor SASL.
    pub fn plaintext() -> Self {
        SecurityConfig::default()
    }

    /// SSL: TLS with `tls`.
    pub fn ssl(tls: TlsConfig) -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::Ssl,
            tls: Some(tls),
            sasl: None,
        }
    }

    /// SASL_SSL: TLS with `tls`, then SASL with `sasl`.
    pub fn sasl_ssl(tls: TlsConfig, sasl: SaslConfig) -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::SaslSsl,
            tls: Some(tls),
            sasl: Some(sasl),
        }
    }

    /// SASL_PLAINTEXT: SASL with `sasl` over plain TCP.
    pub fn sasl_plaintext(sasl: SaslConfig) -> Self {
        SecurityConfig {
            protocol: SecurityProtocol::SaslPlaintext,
            tls: None,
            sasl: Some(sasl),
        }
    }

    /// Reads `security.protocol` and, as it requires, the `ssl.*` and `sasl.*`
    /// properties; `lookup` returns the raw value of a key. Files named by
    /// properties (trust store, key store) are read now, so a missing file or a
    /// bad PEM is an error naming its key before any connection is made.
    pub fn from_properties(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let protocol = match lookup("security.protocol") {
            Some(v) => v.parse()?,
            None => SecurityProtocol::Plaintext,
        };
        let tls = if protocol.uses_tls() {
            Some(TlsConfig::from_properties(lookup)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            let sasl = SaslConfig::from_properties(lookup)?.ok_or_else(|| Error::Config {
                key: "sasl.mechanism".into(),
                message: format!(
                    "security.protocol={} needs sasl.mechanism and sasl.jaas.config",
                    protocol.name()
                ),
            })?;
            Some(sasl)
        } else {
            None
        };
        Ok(SecurityConfig {
            protocol,
            tls,
            sasl,
        })
    }

    /// The protocol.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// The TLS settings (SSL and SASL_SSL).
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The SASL settings (SASL_PLAINTEXT and SASL_SSL).
    pub fn sasl(&self) -> Option<&SaslConfig> {
        self.sasl.as_ref()
    }
}

#[cfg(test)]
mod tests;
