//! [`SaslConfig`]: which mechanism and credentials, from code or from the Java
//! client's properties.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::jaas::{self, JaasEntry};
use super::oauthbearer::{self, OAuthBearerClient};
use super::plain::PlainClient;
use super::scram::{Hash, ScramClient};
use super::{
    SUPPORTED, SaslMechanism, SaslSession, Secret, SessionState, StaticToken, TokenProvider,
    UnsecuredJwsToken, authentication_error,
};
use crate::error::{Error, Result};

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const OAUTHBEARER_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
const KERBEROS_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";

/// The property of our own that gives OAUTHBEARER a fixed token.
const TOKEN_KEY: &str = "sasl.oauthbearer.token";
const JAAS_KEY: &str = "sasl.jaas.config";

/// How a client authenticates with SASL: the mechanism and its credentials.
///
/// `Debug` shows the mechanism and user name, never a password or token.
#[derive(Clone)]
pub struct SaslConfig {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Plain {
        username: String,
        password: Secret,
    },
    Scram {
        mechanism: SaslMechanism,
        username: String,
        password: Secret,
        token_auth: bool,
    },
    OAuthBearer {
        provider: Arc<dyn TokenProvider>,
    },
}

impl SaslConfig {
    /// PLAIN with a user name and password.
    pub fn plain(username: impl Into<String>, password: impl Into<String>) -> Self {
        SaslConfig {
            kind: Kind::Plain {
                username: username.into(),
                password: Secret(password.into()),
            },
        }
    }

    /// SCRAM-SHA-256 or SCRAM-SHA-512 with a user name and password; any other
    /// mechanism is an error.
    pub fn scram(
        mechanism: SaslMechanism,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<Self> {
        Self::scram_with(mechanism, username.into(), password.into(), false)
    }

    /// SCRAM with a delegation token (KIP-48): the token id as the user name, its
    /// HMAC as the password, and the `tokenauth=true` extension.
    pub fn scram_delegation_token(
        mechanism: SaslMechanism,
        token_id: impl Into<String>,
        token_hmac: impl Into<String>,
    ) -> Result<Self> {
        Self::scram_with(mechanism, token_id.into(), token_hmac.into(), true)
    }

    fn scram_with(
        mechanism: SaslMechanism,
        username: String,
        password: String,
        token_auth: bool,
    ) -> Result<Self> {
        if !mechanism.is_scram() {
            return Err(Error::Config {
                key: "sasl.mechanism".into(),
                message: format!("{mechanism} is not SCRAM-SHA-256 or SCRAM-SHA-512"),
            });
        }
        if username.is_empty() {
            return Err(config_error(JAAS_KEY, "the SCRAM user name is empty"));
        }
        Ok(SaslConfig {
            kind: Kind::Scram {
                mechanism,
                username,
                password: Secret(password),
                token_auth,
            },
        })
    }

    /// OAUTHBEARER with tokens from `provider`, asked once per authentication.
    pub fn oauthbearer(provider: Arc<dyn TokenProvider>) -> Self {
        SaslConfig {
            kind: Kind::OAuthBearer { provider },
        }
    }

    /// Reads the Java client's SASL properties; `lookup` returns the raw value of
    /// a key.
    ///
    /// Only `security.protocol` `SASL_PLAINTEXT` or `SASL_SSL` asks for SASL (as
    /// in Java, `sasl.*` keys are ignored under other protocols): `Ok(None)`
    /// otherwise. Then:
    /// - `sasl.mechanism` is required (Java's default, GSSAPI/Kerberos, is not
    ///   supported): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    /// - `sasl.jaas.config` gives the credentials as Java users write them, e.g.
    ///   `org.apache.kafka.common.security.scram.ScramLoginModule required
    ///   username="alice" password="alice-secret";` (PlainLoginModule for PLAIN;
    ///   ScramLoginModule takes `tokenauth="true"` for a delegation token).
    /// - OAUTHBEARER takes `OAuthBearerLoginModule` with Kafka's unsecured-token
    ///   options (`unsecuredLoginStringClaim_sub="admin"`, and optionally
    ///   `unsecuredLoginLifetimeSeconds`, `unsecuredLoginListClaim_scope`,
    ///   `unsecuredLoginNumberClaim_<name>`, `unsecuredLoginPrincipalClaimName`,
    ///   `unsecuredLoginScopeClaimName`), or a fixed token in the property
    ///   `sasl.oauthbearer.token` (ours, not Java's; then `sasl.jaas.config` may
    ///   be left out). Extensions come from `unsecuredLoginExtension_<name>` or
    ///   `extension_<name>` options.
    ///
    /// Java callback handler classes (`sasl.login.callback.handler.class`, ...)
    /// and the OAuth client-credentials flow (`sasl.oauthbearer.token.endpoint.url`)
    /// are refused with an error naming the key.
    pub fn from_properties(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<SaslConfig>> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let protocol = get("security.protocol")
            .map(|p| p.to_ascii_uppercase())
            .unwrap_or_default();
        if protocol != "SASL_PLAINTEXT" && protocol != "SASL_SSL" {
            return Ok(None);
        }
        for (key, what) in [
            (
                "sasl.client.callback.handler.class",
                "Java callback handler classes",
            ),
            (
                "sasl.login.callback.handler.class",
                "Java callback handler classes",
            ),
            ("sasl.login.class", "Java login classes"),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "the OAuth client-credentials flow",
            ),
        ] {
            if get(key).is_some() {
                return Err(config_error(
                    key,
                    format!(
                        "{what} are not supported; give OAUTHBEARER a token in \
                         {TOKEN_KEY} or through SaslConfig::oauthbearer"
                    ),
                ));
            }
        }
        let mechanism: SaslMechanism = match get("sasl.mechanism") {
            Some(name) => name.parse()?,
            None => {
                return Err(config_error(
                    "sasl.mechanism",
                    format!(
                        "required with security.protocol={protocol}: {SUPPORTED} (the Java \
                         client's default, GSSAPI/Kerberos, is not supported)"
                    ),
                ));
            }
        };
        let jaas = get(JAAS_KEY)
            .map(|text| jaas::parse(&text).map_err(|m| config_error(JAAS_KEY, m)))
            .transpose()?;
        let config = match mechanism {
            SaslMechanism::Plain => {
                let entry = login_module(jaas, mechanism, PLAIN_MODULE)?;
                let (username, password) = credentials(&entry)?;
                SaslConfig::plain(username, password)
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let entry = login_module(jaas, mechanism, SCRAM_MODULE)?;
                let (username, password) = credentials(&entry)?;
                let token_auth = match entry.options.get("tokenauth").map(|v| v.trim()) {
                    None => false,
                    Some(v) if v.eq_ignore_ascii_case("true") => true,
                    Some(v) if v.eq_ignore_ascii_case("false") => false,
                    Some(v) => {
                        return Err(config_error(
                            JAAS_KEY,
                            format!("option tokenauth is {v:?}: expected true or false"),
                        ));
                    }
                };
                Self::scram_with(mechanism, username, password, token_auth)?
            }
            SaslMechanism::OAuthBearer => {
                SaslConfig::oauthbearer(token_provider(jaas, get(TOKEN_KEY))?)
            }
        };
        Ok(Some(config))
    }

    /// The mechanism to authenticate with.
    pub fn mechanism(&self) -> SaslMechanism {
        match &self.kind {
            Kind::Plain { .. } => SaslMechanism::Plain,
            Kind::Scram { mechanism, .. } => *mechanism,
            Kind::OAuthBearer { .. } => SaslMechanism::OAuthBearer,
        }
    }

    /// Starts one authentication (for OAUTHBEARER: asks the token provider for a
    /// token). Fails with [`Error::Authentication`] (broker empty) when the
    /// credentials cannot be sent, or with the provider's error.
    pub async fn session(&self) -> Result<SaslSession> {
        let mechanism = self.mechanism();
        let state = match &self.kind {
            Kind::Plain { username, password } => SessionState::Plain(
                PlainClient::new(username, password)
                    .map_err(|r| authentication_error(mechanism, r))?,
            ),
            Kind::Scram {
                username,
                password,
                token_auth,
                ..
            } => {
                let hash = match mechanism {
                    SaslMechanism::ScramSha512 => Hash::Sha512,
                    _ => Hash::Sha256,
                };
                SessionState::Scram(
                    ScramClient::new(hash, username, password, *token_auth)
                        .map_err(|r| authentication_error(mechanism, r))?,
                )
            }
            Kind::OAuthBearer { provider } => {
                let token = provider.token().await?;
                SessionState::OAuthBearer(
                    OAuthBearerClient::new(&token)
                        .map_err(|r| authentication_error(mechanism, r))?,
                )
            }
        };
        Ok(SaslSession::new(mechanism, state))
    }

    /// A SCRAM session with a fixed nonce, for the RFC test vectors.
    #[cfg(test)]
    pub(super) fn scram_session_with_nonce(&self, nonce: &str) -> SaslSession {
        let Kind::Scram {
            mechanism,
            username,
            password,
            token_auth,
        } = &self.kind
        else {
            panic!("not a SCRAM config");
        };
        let hash = match mechanism {
            SaslMechanism::ScramSha512 => Hash::Sha512,
            _ => Hash::Sha256,
        };
        let client =
            ScramClient::with_nonce(hash, username, password, *token_auth, nonce.into()).unwrap();
        SaslSession::new(*mechanism, SessionState::Scram(client))
    }
}

impl fmt::Debug for SaslConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SaslConfig");
        d.field("mechanism", &self.mechanism().name());
        match &self.kind {
            Kind::Plain { username, password } => {
                d.field("username", username).field("password", password);
            }
            Kind::Scram {
                username,
                password,
                token_auth,
                ..
            } => {
                d.field("username", username)
                    .field("password", password)
                    .field("token_auth", token_auth);
            }
            Kind::OAuthBearer { provider } => {
                d.field("provider", provider);
            }
        }
        d.finish()
    }
}

fn config_error(key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The JAAS entry, checked to name the login module `mechanism` needs.
fn login_module(
    jaas: Option<JaasEntry>,
    mechanism: SaslMechanism,
    module: &str,
) -> Result<JaasEntry> {
    let Some(entry) = jaas else {
        return Err(config_error(
            JAAS_KEY,
            format!(
                "required for {mechanism}: e.g. {module} required username=\"<user>\" \
                 password=\"<password>\";"
            ),
        ));
    };
    if entry.module == module {
        return Ok(entry);
    }
    let message = if entry.module == KERBEROS_MODULE {
        "Kerberos (Krb5LoginModule, GSSAPI) is not supported".to_string()
    } else {
        format!(
            "sasl.mechanism {mechanism} needs the login module {module}, not {}",
            entry.module
        )
    };
    Err(config_error(JAAS_KEY, message))
}

/// The `username` and `password` options of a PLAIN or SCRAM login module.
fn credentials(entry: &JaasEntry) -> Result<(String, String)> {
    let short = entry.module.rsplit('.').next().unwrap_or(&entry.module);
    let option = |name: &str| match entry.options.get(name) {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        Some(_) => Err(config_error(
            JAAS_KEY,
            format!("the {name} option of {short} is empty"),
        )),
        None => Err(config_error(
            JAAS_KEY,
            format!("{short} needs a {name} option"),
        )),
    };
    Ok((option("username")?, option("password")?))
}

const UNSECURED: &str = "unsecuredLogin";

/// The OAUTHBEARER token provider from the JAAS entry and `sasl.oauthbearer.token`.
fn token_provider(
    jaas: Option<JaasEntry>,
    static_token: Option<String>,
) -> Result<Arc<dyn TokenProvider>> {
    let needs_token = || {
        config_error(
            JAAS_KEY,
            format!(
                "OAUTHBEARER needs a token: set {TOKEN_KEY}, or give {OAUTHBEARER_MODULE} \
                 required unsecuredLoginStringClaim_sub=\"<principal>\"; for Kafka's \
                 unsecured tokens"
            ),
        )
    };
    let entry = match jaas {
        Some(entry) => login_module(Some(entry), SaslMechanism::OAuthBearer, OAUTHBEARER_MODULE)?,
        None => match static_token {
            Some(token) => return Ok(Arc::new(StaticToken::new(token))),
            None => return Err(needs_token()),
        },
    };
    let mut extensions = BTreeMap::new();
    for (key, value) in &entry.options {
        let name = key
            .strip_prefix("unsecuredLoginExtension_")
            .or_else(|| key.strip_prefix("extension_"));
        if let Some(name) = name {
            oauthbearer::check_extension(name, value).map_err(|m| config_error(JAAS_KEY, m))?;
            extensions.insert(name.to_string(), value.clone());
        }
    }
    let unsecured = entry
        .options
        .keys()
        .any(|k| k.starts_with(UNSECURED) && !k.starts_with("unsecuredLoginExtension_"));
    match (static_token, unsecured) {
        (Some(_), true) => Err(config_error(
            TOKEN_KEY,
            "both this and unsecuredLogin* options in sasl.jaas.config give a token: keep one",
        )),
        (Some(token), false) => {
            let token = extensions
                .into_iter()
                .fold(StaticToken::new(token), |t, (k, v)| t.with_extension(k, v));
            Ok(Arc::new(token))
        }
        (None, true) => Ok(Arc::new(unsecured_token(&entry.options, extensions)?)),
        (None, false) => Err(needs_token()),
    }
}

/// Kafka's `OAuthBearerUnsecuredLoginCallbackHandler` options as an
/// [`UnsecuredJwsToken`].
fn unsecured_token(
    options: &BTreeMap<String, String>,
    extensions: BTreeMap<String, String>,
) -> Result<UnsecuredJwsToken> {
    let named = |key: &str, default: &str| {
        options
            .get(&format!("{UNSECURED}{key}"))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
            .to_string()
    };
    let principal_claim = named("PrincipalClaimName", "sub");
    let scope_claim = named("ScopeClaimName", "scope");
    let lifetime = named("LifetimeSeconds", "3600");
    let lifetime: u64 = lifetime.parse().map_err(|_| {
        config_error(
            JAAS_KEY,
            format!("unsecuredLoginLifetimeSeconds {lifetime:?} is not a whole number of seconds"),
        )
    })?;
    let Some(principal) = options
        .get(&format!("{UNSECURED}StringClaim_{principal_claim}"))
        .filter(|v| !v.trim().is_empty())
    else {
        return Err(config_error(
            JAAS_KEY,
            format!(
                "OAuthBearerLoginModule needs unsecuredLoginStringClaim_{principal_claim}=\"<principal>\""
            ),
        ));
    };
    let mut token = UnsecuredJwsToken::new(principal.clone())
        .with_principal_claim_name(principal_claim.clone())
        .with_scope_claim_name(scope_claim.clone())
        .with_lifetime(Duration::from_secs(lifetime));
    for (key, value) in options {
        let claim = |prefix: &str| {
            key.strip_prefix(UNSECURED)
                .and_then(|k| k.strip_prefix(prefix))
                .filter(|name| !name.is_empty())
        };
        let reserved = |name: &str| {
            if name == "iat" || name == "exp" {
                Err(config_error(
                    JAAS_KEY,
                    format!(
                        "option {key}: the {name} claim is set from the clock and cannot be given"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(name) = claim("StringClaim_") {
            reserved(name)?;
            if name != principal_claim {
                token = token.with_string_claim(name, value.clone());
            }
        } else if let Some(name) = claim("NumberClaim_") {
            reserved(name)?;
            let number: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| config_error(JAAS_KEY, format!("option {key} is not a number")))?;
            token = token.with_number_claim(name, number);
        } else if let Some(name) = claim("ListClaim_") {
            reserved(name)?;
            // The first character is the delimiter, e.g. ",read,write".
            let mut chars = value.chars();
            let items: Vec<String> = match chars.next() {
                Some(delimiter) => chars
                    .as_str()
                    .split(delimiter)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            };
            token = if name == scope_claim {
                token.with_scope(items)
            } else {
                token.with_list_claim(name, items)
            };
        }
    }
    Ok(extensions
        .into_iter()
        .fold(token, |t, (k, v)| t.with_extension(k, v)))
}
