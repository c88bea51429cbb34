//! SASL mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER) as state
//! machines that do no I/O; the connection carries their bytes in SaslAuthenticate.
//!
//! ```text
//!  properties ──SaslConfig::from_properties──▶ SaslConfig   (once per client)
//!                                                  │ session().await   (per connection and
//!                                                  ▼                    per re-authentication)
//!  connection: SaslHandshake(mechanism_name) ── SaslSession
//!     loop { bytes = session.step(last server auth_bytes)?     (None on the first call)
//!            Some(bytes) ──▶ SaslAuthenticate(bytes) ──▶ server auth_bytes ─┐
//!            None        ──▶ authenticated                   ◀──────────────┘ }
//! ```
//!
//! A session never blocks and never reads a socket: it turns the server's last
//! message into the next client message, and fails with
//! [`Error::Authentication`] (its `broker` left empty; [`with_broker`] fills it in)
//! when the server's message is malformed, refuses us, or (SCRAM) cannot prove it
//! knows the password. Secrets (passwords, tokens, derived keys) never appear in
//! `Debug` output or in errors.

mod config;
mod jaas;
mod oauthbearer;
mod plain;
mod scram;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

pub use config::SaslConfig;
pub use oauthbearer::{OAuthToken, StaticToken, TokenFuture, TokenProvider, UnsecuredJwsToken};

/// A SASL mechanism kafka-wire speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    /// PLAIN (RFC 4616): user name and password in the clear (use it over TLS only).
    Plain,
    /// SCRAM-SHA-256 (RFC 5802, RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-512 (RFC 5802).
    ScramSha512,
    /// OAUTHBEARER (RFC 7628, KIP-255): a bearer token from a [`TokenProvider`].
    OAuthBearer,
}

const SUPPORTED: &str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER";

impl SaslMechanism {
    /// Every mechanism, in the order they are listed in messages.
    pub const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::OAuthBearer,
    ];

    /// The name in `sasl.mechanism` and in SaslHandshake, e.g. `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Whether this is one of the SCRAM mechanisms.
    pub fn is_scram(self) -> bool {
        matches!(
            self,
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512
        )
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = Error;

    /// Parses a mechanism name, ignoring case and surrounding white space.
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim();
        if let Some(m) = Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(wanted))
        {
            return Ok(m);
        }
        let message = if wanted.eq_ignore_ascii_case("GSSAPI") {
            format!("GSSAPI (Kerberos) is not supported; use {SUPPORTED}")
        } else {
            format!("unknown SASL mechanism {wanted:?}: expected {SUPPORTED}")
        };
        Err(Error::Config {
            key: "sasl.mechanism".into(),
            message,
        })
    }
}

/// One authentication exchange in progress: feed it the server's messages with
/// [`step`](Self::step) until it returns `Ok(None)`.
///
/// Made by [`SaslConfig::session`]; a new one is needed for each connection and
/// each re-authentication.
pub struct SaslSession {
    mechanism: SaslMechanism,
    state: SessionState,
}

enum SessionState {
    Plain(plain::PlainClient),
    Scram(scram::ScramClient),
    OAuthBearer(oauthbearer::OAuthBearerClient),
}

impl SaslSession {
    /// The mechanism name to send in SaslHandshake, e.g. `SCRAM-SHA-256`.
    pub fn mechanism_name(&self) -> &'static str {
        self.mechanism.name()
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    /// The bytes to send next in SaslAuthenticate, given the `auth_bytes` of the
    /// server's last SaslAuthenticate response (`None` on the first call).
    ///
    /// `Ok(None)` means the exchange finished on our side (for SCRAM: the server's
    /// signature was verified). Errors are [`Error::Authentication`] with an empty
    /// `broker`; a call after the end or after an error fails too.
    ///
    /// SCRAM's second step runs PBKDF2 with the server's iteration count: with
    /// Kafka's counts (4096 to 16384) a few milliseconds; counts above 1,000,000
    /// are refused.
    pub fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let mechanism = self.mechanism;
        match &mut self.state {
            SessionState::Plain(c) => c.step(server),
            SessionState::Scram(c) => c.step(server),
            SessionState::OAuthBearer(c) => c.step(server),
        }
        .map_err(|reason| authentication_error(mechanism, reason))
    }

    /// OAUTHBEARER: what the server said when it refused the token (its error
    /// JSON's `status` and `scope`), once it did. The broker ends such an exchange
    /// with SASL_AUTHENTICATION_FAILED; this is the more precise reason to report.
    pub fn server_error(&self) -> Option<&str> {
        match &self.state {
            SessionState::OAuthBearer(c) => c.server_error(),
            _ => None,
        }
    }

    fn new(mechanism: SaslMechanism, state: SessionState) -> Self {
        SaslSession { mechanism, state }
    }
}

impl fmt::Debug for SaslSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match &self.state {
            SessionState::Plain(c) => c.stage(),
            SessionState::Scram(c) => c.stage(),
            SessionState::OAuthBearer(c) => c.stage(),
        };
        f.debug_struct("SaslSession")
            .field("mechanism", &self.mechanism.name())
            .field("stage", &stage)
            .finish_non_exhaustive()
    }
}

/// Fills in the broker of an [`Error::Authentication`] that came from a
/// [`SaslSession`] (which does not know the broker); other errors pass unchanged.
pub fn with_broker(error: Error, broker: &str) -> Error {
    match error {
        Error::Authentication {
            broker: b,
            mechanism,
            reason,
        } if b.is_empty() => Error::Authentication {
            broker: broker.to_string(),
            mechanism,
            reason,
        },
        other => other,
    }
}

fn authentication_error(mechanism: SaslMechanism, reason: String) -> Error {
    Error::Authentication {
        broker: String::new(),
        mechanism: mechanism.name().to_string(),
        reason,
    }
}

/// A password or token: kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Renders bytes that came from the server for an error message: printable
/// ASCII as is, the rest escaped, at most 200 characters.
fn server_text(bytes: &[u8]) -> String {
    const LIMIT: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(LIMIT)]);
    let mut out: String = text.escape_debug().collect();
    if bytes.len() > LIMIT {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;
