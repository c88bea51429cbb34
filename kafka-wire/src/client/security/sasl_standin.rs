//! A stand-in for [`super::sasl`] with PLAIN only, under the same API, used until
//! the real mechanisms land; `security/mod.rs` picks one of the two with one `use`.

use crate::error::{Error, Result};

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-512.
    ScramSha512,
    /// OAUTHBEARER (RFC 7628).
    OAuthBearer,
}

impl SaslMechanism {
    /// The mechanism's name in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// SASL settings (`sasl.mechanism`, `sasl.jaas.config`).
#[derive(Clone)]
pub struct SaslConfig {
    username: String,
    password: String,
}

impl std::fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanism", &"PLAIN")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
    let end = jaas[start..].find('"')? + start;
    Some(jaas[start..end].to_string())
}

impl SaslConfig {
    /// From `sasl.mechanism` and `sasl.jaas.config`; `None` when no mechanism is set.
    pub fn from_properties(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<SaslConfig>> {
        let mechanism = lookup("sasl.mechanism").unwrap_or_else(|| "GSSAPI".into());
        if mechanism != "PLAIN" {
            return Err(Error::Config {
                key: "sasl.mechanism".into(),
                message: format!("{mechanism} is not supported (PLAIN only)"),
            });
        }
        let jaas = lookup("sasl.jaas.config").ok_or_else(|| Error::Config {
            key: "sasl.jaas.config".into(),
            message: "required".into(),
        })?;
        let (Some(username), Some(password)) = (
            jaas_option(&jaas, "username"),
            jaas_option(&jaas, "password"),
        ) else {
            return Err(Error::Config {
                key: "sasl.jaas.config".into(),
                message: "needs username and password".into(),
            });
        };
        Ok(Some(SaslConfig { username, password }))
    }

    /// The mechanism.
    pub fn mechanism(&self) -> SaslMechanism {
        SaslMechanism::Plain
    }

    /// Starts one authentication.
    pub async fn session(&self) -> Result<SaslSession> {
        Ok(SaslSession {
            config: self.clone(),
            sent: false,
        })
    }
}

/// One authentication in progress.
pub struct SaslSession {
    config: SaslConfig,
    sent: bool,
}

impl SaslSession {
    /// The mechanism's name.
    pub fn mechanism_name(&self) -> &'static str {
        "PLAIN"
    }

    /// OAUTHBEARER: the server's error for a refused token (never, for PLAIN).
    pub fn server_error(&self) -> Option<&str> {
        None
    }

    /// The bytes to send next given the server's last bytes; `Ok(None)` when done.
    pub fn step(&mut self, _server: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        if self.sent {
            return Ok(None);
        }
        self.sent = true;
        let c = &self.config;
        Ok(Some(
            format!("\0{}\0{}", c.username, c.password).into_bytes(),
        ))
    }
}
