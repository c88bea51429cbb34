//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka speaks them:
//! no channel binding, no authzid.
//!
//! ```text
//!  client-first   n,,n=<name>,r=<cnonce>[,tokenauth=true]
//!  server-first   r=<cnonce><snonce>,s=<base64 salt>,i=<iterations>[,<ext>]
//!  client-final   c=biws,r=<cnonce><snonce>,p=<base64 ClientKey XOR ClientSignature>
//!  server-final   v=<base64 ServerSignature>   or   e=<error>
//! ```
//!
//! Like Kafka's Java client, the user name is only escaped (`=` as `=3D`, `,` as
//! `=2C`) and the password is used as its UTF-8 bytes: no SASLprep, so a broker
//! whose credentials were made by Kafka's tools agrees on every name and password.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::Secret;

/// Kafka's minimum iteration count for SCRAM credentials.
pub(super) const MIN_ITERATIONS: u32 = 4096;
/// The largest iteration count accepted, to bound the CPU one exchange can cost
/// (Kafka itself stores at most 16384).
pub(super) const MAX_ITERATIONS: u32 = 1_000_000;

/// Base64 that accepts the salt and signature with or without padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hash {
    Sha256,
    Sha512,
}

/// Runs `$body` with `$d` naming the digest type of `$hash`.
macro_rules! with_digest {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            Hash::Sha256 => {
                type $d = Sha256;
                $body
            }
            Hash::Sha512 => {
                type $d = Sha512;
                $body
            }
        }
    };
}

impl Hash {
    /// `Hi(password, salt, i)`: PBKDF2 with HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        with_digest!(self, D => {
            let mut out = vec![0u8; <D as Digest>::output_size()];
            pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
            out
        })
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        with_digest!(self, D => {
            let mut mac = <Hmac<D> as Mac>::new_from_slice(key)
                .map_err(|_| "the HMAC key was refused".to_string())?;
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        })
    }

    /// Whether `tag` is `HMAC(key, data)`, compared in constant time.
    fn verify_hmac(self, key: &[u8], data: &[u8], tag: &[u8]) -> Result<bool, String> {
        with_digest!(self, D => {
            let mut mac = <Hmac<D> as Mac>::new_from_slice(key)
                .map_err(|_| "the HMAC key was refused".to_string())?;
            mac.update(data);
            Ok(mac.verify_slice(tag).is_ok())
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        with_digest!(self, D => D::digest(data).to_vec())
    }
}

/// A SCRAM exchange, client side.
pub(super) struct ScramClient {
    hash: Hash,
    /// The user name, escaped as a saslname.
    name: String,
    password: Secret,
    /// `,tokenauth=true` for a delegation token, else empty.
    extensions: &'static str,
    nonce: String,
    stage: Stage,
}

enum Stage {
    Initial,
    ClientFirstSent {
        client_first_bare: String,
    },
    ClientFinalSent {
        server_key: Vec<u8>,
        auth_message: String,
    },
    Done,
    /// An error ended the exchange.
    Failed,
}

impl ScramClient {
    /// A client with a fresh random nonce. `token_auth` marks a delegation token
    /// (the user name is the token id, the password its HMAC).
    pub(super) fn new(
        hash: Hash,
        username: &str,
        password: &Secret,
        token_auth: bool,
    ) -> Result<Self, String> {
        let mut random = [0u8; 24];
        getrandom::fill(&mut random)
            .map_err(|e| format!("no random bytes for the SCRAM nonce: {e}"))?;
        Self::with_nonce(
            hash,
            username,
            password,
            token_auth,
            URL_SAFE_NO_PAD.encode(random),
        )
    }

    /// A client with the given nonce (tests use fixed ones).
    pub(super) fn with_nonce(
        hash: Hash,
        username: &str,
        password: &Secret,
        token_auth: bool,
        nonce: String,
    ) -> Result<Self, String> {
        if username.is_empty() {
            return Err("the user name is empty".into());
        }
        Ok(ScramClient {
            hash,
            name: sasl_name(username),
            password: password.clone(),
            extensions: if token_auth { ",tokenauth=true" } else { "" },
            nonce,
            stage: Stage::Initial,
        })
    }

    pub(super) fn stage(&self) -> &'static str {
        match self.stage {
            Stage::Initial => "initial",
            Stage::ClientFirstSent { .. } => "sent client-first",
            Stage::ClientFinalSent { .. } => "sent client-final",
            Stage::Done => "done",
            Stage::Failed => "failed",
        }
    }

    pub(super) fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        // Any error below leaves the exchange in `Failed`.
        match std::mem::replace(&mut self.stage, Stage::Failed) {
            Stage::Initial => {
                if server.is_some_and(|s| !s.is_empty()) {
                    return Err(
                        "the server sent a challenge before the client-first message".into(),
                    );
                }
                let client_first_bare =
                    format!("n={},r={}{}", self.name, self.nonce, self.extensions);
                let message = format!("n,,{client_first_bare}").into_bytes();
                self.stage = Stage::ClientFirstSent { client_first_bare };
                Ok(Some(message))
            }
            Stage::ClientFirstSent { client_first_bare } => {
                let server = server.ok_or("no server-first message was given")?;
                let (client_final, server_key, auth_message) =
                    self.client_final(&client_first_bare, server)?;
                self.stage = Stage::ClientFinalSent {
                    server_key,
                    auth_message,
                };
                Ok(Some(client_final.into_bytes()))
            }
            Stage::ClientFinalSent {
                server_key,
                auth_message,
            } => {
                let server = server.ok_or("no server-final message was given")?;
                self.verify_server_final(&server_key, &auth_message, server)?;
                self.stage = Stage::Done;
                Ok(None)
            }
            Stage::Done => {
                self.stage = Stage::Done;
                Err("the exchange already finished".into())
            }
            Stage::Failed => Err("the exchange already failed".into()),
        }
    }

    /// Reads server-first and computes client-final, plus what verifying
    /// server-final needs: ServerKey and AuthMessage.
    fn client_final(
        &self,
        client_first_bare: &str,
        server_first: &[u8],
    ) -> Result<(String, Vec<u8>, String), String> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first message is not UTF-8".to_string())?;
        let first = parse_server_first(text, &self.nonce)?;
        let salted = self.hash.salted_password(
            self.password.expose().as_bytes(),
            &first.salt,
            first.iterations,
        );
        let client_key = self.hash.hmac(&salted, b"Client Key")?;
        let stored_key = self.hash.digest(&client_key);
        let server_key = self.hash.hmac(&salted, b"Server Key")?;
        // `biws` is base64("n,,"): the GS2 header, no channel binding, no authzid.
        let without_proof = format!("c=biws,r={}", first.nonce);
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        let client_signature = self.hash.hmac(&stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let client_final = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok((client_final, server_key, auth_message))
    }

    fn verify_server_final(
        &self,
        server_key: &[u8],
        auth_message: &str,
        server_final: &[u8],
    ) -> Result<(), String> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| "the server-final message is not UTF-8".to_string())?;
        let attrs = attributes(text, "server-final")?;
        match attrs.first() {
            Some(("e", reason)) => Err(format!(
                "the server refused the client proof: {}",
                super::server_text(reason.as_bytes())
            )),
            Some(("v", signature)) => {
                let signature = LENIENT_BASE64
                    .decode(signature)
                    .map_err(|_| "the server signature (v=) is not valid base64".to_string())?;
                if self
                    .hash
                    .verify_hmac(server_key, auth_message.as_bytes(), &signature)?
                {
                    Ok(())
                } else {
                    Err(
                        "the server signature does not match: the server does not know \
                         this user's credentials (or the exchange was tampered with)"
                            .into(),
                    )
                }
            }
            _ => Err("the server-final message has neither v= nor e=".into()),
        }
    }
}

/// The fields of a server-first message.
#[derive(Debug)]
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn parse_server_first<'a>(text: &'a str, client_nonce: &str) -> Result<ServerFirst<'a>, String> {
    let attrs = attributes(text, "server-first")?;
    let get = |name: &str| attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    if let Some(reason) = get("e") {
        return Err(format!(
            "the server refused the client-first message: {}",
            super::server_text(reason.as_bytes())
        ));
    }
    if get("m").is_some() {
        return Err("the server requires an extension (m=) this client does not know".into());
    }
    let nonce = get("r").ok_or("the server-first message has no nonce (r=)")?;
    if !nonce.starts_with(client_nonce) || nonce.len() <= client_nonce.len() {
        return Err("the server nonce does not extend the client nonce".into());
    }
    if !nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err("the server nonce has characters outside printable ASCII".into());
    }
    let salt = get("s").ok_or("the server-first message has no salt (s=)")?;
    let salt = LENIENT_BASE64
        .decode(salt)
        .map_err(|_| "the salt (s=) is not valid base64".to_string())?;
    if salt.is_empty() {
        return Err("the salt (s=) is empty".into());
    }
    let iterations = get("i").ok_or("the server-first message has no iteration count (i=)")?;
    let iterations: u32 = iterations
        .parse()
        .ok()
        .filter(|_| iterations.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!(
                "the iteration count (i=) {} is not a number up to {MAX_ITERATIONS}",
                super::server_text(iterations.as_bytes())
            )
        })?;
    if iterations < MIN_ITERATIONS {
        return Err(format!(
            "the iteration count {iterations} is below Kafka's minimum of {MIN_ITERATIONS}"
        ));
    }
    if iterations > MAX_ITERATIONS {
        return Err(format!(
            "the iteration count {iterations} is above the limit of {MAX_ITERATIONS} \
             (refused to bound the CPU time of one authentication)"
        ));
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// Splits `a=value,b=value` into its attributes. RFC 5802 names are one letter;
/// longer ASCII names (Kafka's extensions, e.g. `tokenauth`) are kept and ignored.
fn attributes<'a>(text: &'a str, what: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    text.split(',')
        .enumerate()
        .map(|(i, part)| match part.split_once('=') {
            Some((name, value))
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                Ok((name, value))
            }
            _ => Err(format!(
                "the {what} message is malformed: attribute {} is not `<name>=<value>`",
                i + 1
            )),
        })
        .collect()
}

/// Escapes a user name as an RFC 5802 saslname (`=` and `,` only, as Kafka does).
fn sasl_name(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
pub(super) mod test_server {
    //! The server side of SCRAM, computed independently of [`ScramClient`] for
    //! round-trip tests.
    use super::*;

    /// The server's view of one credential.
    pub(in super::super) struct Server {
        pub hash: Hash,
        pub salt: Vec<u8>,
        pub iterations: u32,
        pub stored_key: Vec<u8>,
        pub server_key: Vec<u8>,
    }

    impl Server {
        pub fn new(hash: Hash, password: &str, salt: &[u8], iterations: u32) -> Self {
            let salted = hash.salted_password(password.as_bytes(), salt, iterations);
            let client_key = hash.hmac(&salted, b"Client Key").unwrap();
            Server {
                hash,
                salt: salt.to_vec(),
                iterations,
                stored_key: hash.digest(&client_key),
                server_key: hash.hmac(&salted, b"Server Key").unwrap(),
            }
        }

        /// The server-first message for a client-first message.
        pub fn first(&self, client_first: &str, server_nonce: &str) -> String {
            let r = client_first
                .split(",r=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            format!(
                "r={r}{server_nonce},s={},i={}",
                STANDARD.encode(&self.salt),
                self.iterations
            )
        }

        /// Checks the client's proof; returns server-final on success.
        pub fn last(
            &self,
            client_first: &str,
            server_first: &str,
            client_final: &str,
        ) -> Option<String> {
            let bare = client_first.strip_prefix("n,,").unwrap();
            let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
            let auth_message = format!("{bare},{server_first},{without_proof}");
            let signature = self
                .hash
                .hmac(&self.stored_key, auth_message.as_bytes())
                .unwrap();
            let proof = STANDARD.decode(proof).unwrap();
            let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
            if self.hash.digest(&client_key) != self.stored_key {
                return None;
            }
            let server_signature = self
                .hash
                .hmac(&self.server_key, auth_message.as_bytes())
                .unwrap();
            Some(format!("v={}", STANDARD.encode(server_signature)))
        }
    }
}
