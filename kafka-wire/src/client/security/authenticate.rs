//! The SASL exchange on a connection: SaslHandshake v1 naming the mechanism, then
//! SaslAuthenticate rounds carrying the mechanism's bytes, and the re-authentication
//! before the session the broker granted ends (KIP-368).
//!
//! ```text
//!  client                                   broker
//!    │── SaslHandshake(mechanism) ───────────►│  (mechanism enabled?)
//!    │── SaslAuthenticate(step(None)) ───────►│
//!    │◄─────────────── auth_bytes, lifetime ──│
//!    │── SaslAuthenticate(step(auth_bytes)) ─►│  ... until step returns None
//! ```

use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::SaslConfig;
use crate::client::connection::Connection;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};

/// Rounds of SaslAuthenticate one authentication may take (SCRAM needs two).
const MAX_ROUNDS: usize = 16;

/// Authenticates `conn` with `sasl`; returns the session lifetime the broker
/// granted (`None` when the session does not expire). The caller holds the
/// connection exclusively (a fresh connection, or every in-flight permit).
pub(crate) async fn authenticate(conn: &Connection, sasl: &SaslConfig) -> Result<Option<Duration>> {
    let mechanism = sasl.mechanism().name();
    let failed = |reason: String| Error::Authentication {
        broker: conn.broker().to_string(),
        mechanism: mechanism.to_string(),
        reason,
    };
    let from_mechanism = |e: Error| match e {
        Error::Authentication { reason, .. } => failed(reason),
        other => failed(other.to_string()),
    };
    let mut session = sasl.session().await.map_err(from_mechanism)?;
    let handshake_version = conn.version_at_most::<SaslHandshakeRequest>(1)?;
    if handshake_version < 1 {
        return Err(failed(
            "the broker does not support SaslHandshake v1 (Kafka 1.0 or later is needed)".into(),
        ));
    }
    let handshake = conn
        .call_exclusive(
            &SaslHandshakeRequest {
                mechanism: mechanism.to_string(),
            },
            handshake_version,
        )
        .await?;
    match ErrorCode::from_code(handshake.error_code) {
        ErrorCode::NoError => {}
        ErrorCode::UnsupportedSaslMechanism => {
            return Err(failed(format!(
                "the broker's listener does not enable {mechanism} (it enables {}); check \
                 sasl.mechanism and the port",
                handshake.mechanisms.join(", ")
            )));
        }
        code => return Err(failed(format!("SaslHandshake failed: {code}"))),
    }
    let version = conn.version_for::<SaslAuthenticateRequest>()?;
    let mut server: Option<Bytes> = None;
    let mut lifetime_ms = 0i64;
    for _ in 0..MAX_ROUNDS {
        let Some(bytes) = session.step(server.as_deref()).map_err(from_mechanism)? else {
            debug!(
                broker = conn.broker(),
                mechanism, lifetime_ms, "authenticated"
            );
            return Ok((lifetime_ms > 0).then(|| Duration::from_millis(lifetime_ms as u64)));
        };
        let response = conn
            .call_exclusive(
                &SaslAuthenticateRequest {
                    auth_bytes: Bytes::from(bytes),
                    ..Default::default()
                },
                version,
            )
            .await?;
        let code = ErrorCode::from_code(response.error_code);
        if !code.is_ok() {
            let message = response
                .error_message
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| code.to_string());
            // OAUTHBEARER: the error JSON the server sent before ending the
            // exchange says why the token was refused.
            return Err(failed(
                session.server_error().map_or(message, str::to_string),
            ));
        }
        lifetime_ms = response.session_lifetime_ms;
        server = Some(response.auth_bytes);
    }
    Err(failed(format!(
        "the exchange did not finish in {MAX_ROUNDS} rounds"
    )))
}

/// When to re-authenticate: at 85% to 95% of `lifetime` (as the Java client), so
/// connections opened together do not all re-authenticate at once.
fn reauthentication_delay(lifetime: Duration, seed: u64) -> Duration {
    let mut x = seed | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let fraction = 0.85 + 0.10 * ((x % 10_000) as f64 / 10_000.0);
    lifetime.mul_f64(fraction)
}

/// Re-authenticates `conn` before each session ends, until the connection dies or
/// the broker grants a session that does not expire. A failure poisons the
/// connection with the [`Error::Authentication`] (or the error that ended it).
pub(crate) async fn reauthenticate(conn: Connection, sasl: SaslConfig, mut lifetime: Duration) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut round = 0u64;
    loop {
        round += 1;
        tokio::time::sleep(reauthentication_delay(lifetime, seed.wrapping_add(round))).await;
        // Every permit: the requests already written get their responses, none is
        // written until the exchange is over.
        let Ok(_all) = conn.exclusive().await else {
            return;
        };
        if conn.is_closed() {
            return;
        }
        match authenticate(&conn, &sasl).await {
            Ok(Some(next)) => {
                debug!(broker = conn.broker(), ?next, "re-authenticated");
                lifetime = next;
            }
            Ok(None) => {
                info!(
                    broker = conn.broker(),
                    "re-authenticated; the session no longer expires"
                );
                return;
            }
            Err(e) => {
                warn!(broker = conn.broker(), error = %e, "re-authentication failed; closing the connection");
                conn.poison_with(e);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauthentication_happens_between_85_and_95_percent_of_the_lifetime() {
        let lifetime = Duration::from_secs(100);
        for seed in 0..1_000 {
            let d = reauthentication_delay(lifetime, seed);
            assert!(
                d >= Duration::from_secs(85) && d <= Duration::from_secs(95),
                "{d:?}"
            );
        }
    }
}
