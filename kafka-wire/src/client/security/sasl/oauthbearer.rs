//! OAUTHBEARER (RFC 7628) as Kafka uses it (KIP-255, KIP-342): tokens from a
//! [`TokenProvider`], and the client side of the exchange.
//!
//! ```text
//!  client   n,,^Aauth=Bearer <token>^A[<key>=<value>^A]*^A      (^A = 0x01)
//!  server   empty: authenticated
//!           {"status":"invalid_token",...}: refused; the client answers ^A and
//!           the broker ends the exchange with SASL_AUTHENTICATION_FAILED
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Secret;
use crate::error::{Error, Result};

/// The future [`TokenProvider::token`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<OAuthToken>> + Send + 'a>>;

/// Supplies OAUTHBEARER tokens: asked once per authentication (each connection
/// and each re-authentication), so it may refresh an expiring token.
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A token valid for the next authentication.
    fn token(&self) -> TokenFuture<'_>;
}

/// A bearer token with what the client knows about it.
#[derive(Clone)]
pub struct OAuthToken {
    value: Secret,
    /// The principal the token names (its `sub` claim for a JWT), or empty when
    /// unknown.
    pub principal: String,
    /// When the token expires, when known.
    pub expires_at: Option<SystemTime>,
    /// SASL extensions sent with the token (KIP-342), e.g. `logicalCluster`.
    pub extensions: BTreeMap<String, String>,
}

impl OAuthToken {
    /// A token with the given value and principal, no expiry and no extensions.
    pub fn new(value: impl Into<String>, principal: impl Into<String>) -> Self {
        OAuthToken {
            value: Secret(value.into()),
            principal: principal.into(),
            expires_at: None,
            extensions: BTreeMap::new(),
        }
    }

    /// The token itself, as sent to the broker.
    pub fn value(&self) -> &str {
        self.value.expose()
    }
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("value", &self.value)
            .field("principal", &self.principal)
            .field("expires_at", &self.expires_at)
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A fixed token string (e.g. from `sasl.oauthbearer.token`).
///
/// If the token is a JWT, its `sub` and `exp` claims (read, not verified) give
/// the principal and expiry, and an expired token fails before it is sent.
#[derive(Clone)]
pub struct StaticToken {
    token: Secret,
    extensions: BTreeMap<String, String>,
}

impl StaticToken {
    /// A provider that always hands out `token`.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken {
            token: Secret(token.into()),
            extensions: BTreeMap::new(),
        }
    }

    /// Adds a SASL extension sent with the token.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    fn token_at(&self, now: SystemTime) -> Result<OAuthToken> {
        let mut token = OAuthToken::new(self.token.expose(), "");
        token.extensions = self.extensions.clone();
        if let Some(claims) = jwt_claims(self.token.expose()) {
            if let Some(sub) = claims.get("sub").and_then(|v| v.as_str()) {
                token.principal = sub.to_string();
            }
            if let Some(exp) = claims.get("exp").and_then(|v| v.as_f64()) {
                let expires_at = seconds_to_time(exp);
                if expires_at.is_some_and(|t| t <= now) {
                    let ago = now
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs_f64() - exp)
                        .unwrap_or(0.0);
                    return Err(Error::Authentication {
                        broker: String::new(),
                        mechanism: "OAUTHBEARER".into(),
                        reason: format!(
                            "the configured token expired {ago:.0} s ago (its exp claim is {exp})"
                        ),
                    });
                }
                token.expires_at = expires_at;
            }
        }
        Ok(token)
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("token", &self.token)
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.token_at(SystemTime::now());
        Box::pin(async move { token })
    }
}

/// Builds the unsecured JWS tokens Kafka's test setups accept (its
/// `OAuthBearerUnsecuredLoginCallbackHandler`): header `{"alg":"none"}`, claims
/// with the principal (`sub`), `iat`, `exp` and an optional scope, as
/// `base64url(header).base64url(claims).` with no padding and no signature.
///
/// A fresh token (new `iat` and `exp`) is made for each authentication. Only for
/// brokers configured with Kafka's unsecured validator: the token proves nothing.
#[derive(Debug, Clone)]
pub struct UnsecuredJwsToken {
    principal_claim: String,
    principal: String,
    lifetime: Duration,
    scope_claim: String,
    scope: Vec<String>,
    claims: BTreeMap<String, serde_json::Value>,
    extensions: BTreeMap<String, String>,
}

impl UnsecuredJwsToken {
    /// Tokens for `principal` (the `sub` claim), valid for one hour, no scope.
    pub fn new(principal: impl Into<String>) -> Self {
        UnsecuredJwsToken {
            principal_claim: "sub".into(),
            principal: principal.into(),
            lifetime: Duration::from_secs(3600),
            scope_claim: "scope".into(),
            scope: Vec::new(),
            claims: BTreeMap::new(),
            extensions: BTreeMap::new(),
        }
    }

    /// How long each token is valid (`exp` - `iat`).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The scope claim's values.
    pub fn with_scope<S: Into<String>>(mut self, scope: impl IntoIterator<Item = S>) -> Self {
        self.scope = scope.into_iter().map(Into::into).collect();
        self
    }

    /// The claim holding the principal, instead of `sub`.
    pub fn with_principal_claim_name(mut self, name: impl Into<String>) -> Self {
        self.principal_claim = name.into();
        self
    }

    /// The claim holding the scope, instead of `scope`.
    pub fn with_scope_claim_name(mut self, name: impl Into<String>) -> Self {
        self.scope_claim = name.into();
        self
    }

    /// Adds a string claim (`iat` and `exp` are set from the clock and lifetime).
    pub fn with_string_claim(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims
            .insert(name.into(), serde_json::Value::String(value.into()));
        self
    }

    /// Adds a numeric claim; a value that is not finite is left out.
    pub fn with_number_claim(mut self, name: impl Into<String>, value: f64) -> Self {
        if let Some(n) = serde_json::Number::from_f64(value) {
            self.claims
                .insert(name.into(), serde_json::Value::Number(n));
        }
        self
    }

    /// Adds a claim holding a list of strings.
    pub fn with_list_claim<S: Into<String>>(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let values = values
            .into_iter()
            .map(|v| serde_json::Value::String(v.into()))
            .collect();
        self.claims
            .insert(name.into(), serde_json::Value::Array(values));
        self
    }

    /// Adds a SASL extension sent with each token.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// The token issued at `now`.
    pub fn token_at(&self, now: SystemTime) -> OAuthToken {
        use serde_json::Value;
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as f64 / 1000.0)
            .unwrap_or(0.0);
        let exp = iat + self.lifetime.as_secs_f64();
        let mut claims: serde_json::Map<String, Value> = self
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        claims.insert(
            self.principal_claim.clone(),
            Value::String(self.principal.clone()),
        );
        if !self.scope.is_empty() {
            claims.insert(
                self.scope_claim.clone(),
                Value::Array(self.scope.iter().cloned().map(Value::String).collect()),
            );
        }
        for (name, seconds) in [("iat", iat), ("exp", exp)] {
            if let Some(n) = serde_json::Number::from_f64(seconds) {
                claims.insert(name.into(), Value::Number(n));
            }
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
        let mut token = OAuthToken::new(format!("{header}.{body}."), self.principal.clone());
        token.expires_at = now.checked_add(self.lifetime);
        token.extensions = self.extensions.clone();
        token
    }
}

impl TokenProvider for UnsecuredJwsToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.token_at(SystemTime::now());
        Box::pin(async move { Ok(token) })
    }
}

/// Checks a SASL extension as Kafka does: the name letters only and not `auth`,
/// the value printable ASCII, space, tab, CR or LF. The value is never echoed.
pub(super) fn check_extension(name: &str, value: &str) -> std::result::Result<(), String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) || name == "auth" {
        return Err(format!(
            "the SASL extension name {name:?} is invalid: letters only, and not \"auth\""
        ));
    }
    let valid = |b: u8| (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    if value.is_empty() || !value.bytes().all(valid) {
        return Err(format!(
            "the value of SASL extension {name} is invalid: printable ASCII, space, tab, CR or LF"
        ));
    }
    Ok(())
}

/// Whether `token` is an RFC 6750 b64token: `[A-Za-z0-9-._~+/]+=*`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The claims of a JWT-shaped token, read without verification.
fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

fn seconds_to_time(seconds: f64) -> Option<SystemTime> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
}

/// An OAUTHBEARER exchange, client side.
pub(super) struct OAuthBearerClient {
    message: Secret,
    stage: Stage,
    server_error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Initial,
    Sent,
    /// The server sent its error JSON; we answered with the dummy `^A`.
    Refused,
    Done,
}

impl OAuthBearerClient {
    /// Fails when the token or an extension could not be carried in the message.
    pub(super) fn new(token: &OAuthToken) -> std::result::Result<Self, String> {
        if !is_b64token(token.value()) {
            return Err(
                "the token is empty or has characters a bearer token cannot have \
                 (RFC 6750: letters, digits, -._~+/ and trailing =)"
                    .into(),
            );
        }
        let mut message = format!("n,,\u{1}auth=Bearer {}\u{1}", token.value());
        for (name, value) in &token.extensions {
            check_extension(name, value)?;
            message.push_str(&format!("{name}={value}\u{1}"));
        }
        message.push('\u{1}');
        Ok(OAuthBearerClient {
            message: Secret(message),
            stage: Stage::Initial,
            server_error: None,
        })
    }

    pub(super) fn stage(&self) -> &'static str {
        match self.stage {
            Stage::Initial => "initial",
            Stage::Sent => "sent token",
            Stage::Refused => "token refused",
            Stage::Done => "done",
        }
    }

    pub(super) fn server_error(&self) -> Option<&str> {
        self.server_error.as_deref()
    }

    pub(super) fn step(
        &mut self,
        server: Option<&[u8]>,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        let server = server.unwrap_or_default();
        match self.stage {
            Stage::Initial => {
                if !server.is_empty() {
                    return Err("the server sent a challenge before the client's message".into());
                }
                self.stage = Stage::Sent;
                Ok(Some(self.message.expose().as_bytes().to_vec()))
            }
            Stage::Sent if server.is_empty() => {
                self.stage = Stage::Done;
                Ok(None)
            }
            Stage::Sent => {
                self.server_error = Some(refusal(server));
                self.stage = Stage::Refused;
                Ok(Some(vec![1]))
            }
            Stage::Refused => Err(self
                .server_error
                .clone()
                .unwrap_or_else(|| "the broker refused the token".into())),
            Stage::Done => Err("the exchange already finished".into()),
        }
    }
}

/// Describes the server's error message (RFC 7628 section 3.2.2 JSON).
fn refusal(server: &[u8]) -> String {
    let Ok(serde_json::Value::Object(json)) = serde_json::from_slice(server) else {
        return format!(
            "the broker refused the token: {}",
            super::server_text(server)
        );
    };
    let field = |name: &str| match json.get(name) {
        Some(serde_json::Value::String(s)) => Some(super::server_text(s.as_bytes())),
        Some(other) => Some(super::server_text(other.to_string().as_bytes())),
        None => None,
    };
    let mut reason = format!(
        "the broker refused the token: status {}",
        field("status").unwrap_or_else(|| "(none)".into())
    );
    if let Some(scope) = field("scope") {
        reason.push_str(&format!(", scope {scope}"));
    }
    if let Some(openid) = field("openid-configuration") {
        reason.push_str(&format!(", openid-configuration {openid}"));
    }
    reason
}
