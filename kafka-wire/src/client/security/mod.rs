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
