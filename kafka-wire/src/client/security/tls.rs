//! TLS for broker connections, with rustls (the `ring` provider).
//!
//! [`TlsConfig`] holds what to trust (CA certificates in PEM or PKCS12, or the
//! Mozilla roots of `webpki-roots` when none are given), an optional client
//! identity for mutual TLS, and whether the broker's host name is checked. The
//! rustls configuration is built once, on the first connection, and shared.
//!
//! A failed handshake becomes [`Error::Tls`] with its cause in a user's words
//! (unknown CA, a certificate that does not cover the host, expired, a peer that
//! is not speaking TLS, a client certificate the broker refused).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};

/// Where the CA certificates that sign the brokers' certificates come from.
#[derive(Clone)]
enum Trust {
    /// The Mozilla root program's CAs (`webpki-roots`).
    SystemRoots,
    /// Certificates given in the configuration.
    Certificates(Vec<CertificateDer<'static>>),
}

/// A client certificate chain and its private key, for mutual TLS.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// TLS settings of a client: trusted CAs, a client identity (mTLS) and host name
/// verification (`ssl.endpoint.identification.algorithm`). `Debug` never shows the
/// private key.
#[derive(Clone)]
pub struct TlsConfig {
    trust: Trust,
    identity: Option<Arc<Identity>>,
    verify_hostname: bool,
    built: Arc<OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let trust = match &self.trust {
            Trust::SystemRoots => "system roots".to_string(),
            Trust::Certificates(c) => format!("{} certificate(s)", c.len()),
        };
        let identity = self
            .identity
            .as_ref()
            .map(|i| format!("{} certificate(s), key <redacted>", i.chain.len()));
        f.debug_struct("TlsConfig")
            .field("trust", &trust)
            .field("client_identity", &identity)
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig::new()
    }
}

fn config_error(key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_string(),
        message: message.into(),
    }
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| config_error(key, format!("cannot read {}: {e}", path.display())))
}

/// The kind of store a file holds, from `ssl.*.type` or, when not given, its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreType {
    Pem,
    Pkcs12,
    Jks,
}

fn store_type(key: &str, given: Option<&str>, bytes: &[u8]) -> Result<StoreType> {
    match given.map(str::to_ascii_uppercase).as_deref() {
        Some("PEM") => return Ok(StoreType::Pem),
        Some("PKCS12") => return Ok(StoreType::Pkcs12),
        Some("JKS") => return Ok(StoreType::Jks),
        Some(other) => {
            return Err(config_error(
                key,
                format!("invalid value {other:?}: expected PEM, PKCS12 or JKS"),
            ));
        }
        None => {}
    }
    Ok(if bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) {
        StoreType::Jks
    } else if bytes.first() == Some(&0x30) {
        StoreType::Pkcs12
    } else {
        StoreType::Pem
    })
}

fn jks_error(key: &str, path: &Path) -> Error {
    config_error(
        key,
        format!(
            "{} is a Java KeyStore (JKS), which only Java reads; convert it to PKCS12 with \
             `keytool -importkeystore -srckeystore {0} -srcstoretype JKS -destkeystore store.p12 \
             -deststoretype PKCS12`, or to PEM with `openssl pkcs12 -in store.p12 -out store.pem -nodes`, \
             and set the store's type accordingly",
            path.display()
        ),
    )
}

fn pem_certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| config_error(key, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(config_error(
            key,
            "holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)",
        ));
    }
    Ok(certs)
}

/// The private key in `pem`: PKCS#8, RSA (PKCS#1) or SEC1 EC, or an encrypted
/// PKCS#8 key (`ENCRYPTED PRIVATE KEY`) opened with `password`.
fn pem_private_key(
    key: &str,
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else {
            return Err(config_error(
                key,
                "the private key is encrypted: set ssl.key.password",
            ));
        };
        let start = text
            .find("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            .unwrap_or_default();
        let end_marker = "-----END ENCRYPTED PRIVATE KEY-----";
        let end = text[start..]
            .find(end_marker)
            .map(|i| start + i + end_marker.len())
            .ok_or_else(|| config_error(key, "invalid PEM: no END ENCRYPTED PRIVATE KEY line"))?;
        let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
            .map_err(|e| config_error(key, format!("invalid PEM: {e}")))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| config_error(key, format!("invalid encrypted private key: {e}")))?;
        let document = encrypted.decrypt(password).map_err(|_| {
            config_error(
                "ssl.key.password",
                "cannot decrypt the private key: wrong password or an unsupported cipher (PBES2 with AES is supported)",
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            document.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(config_error(
            key,
            "the private key is encrypted in OpenSSL's legacy format; convert it to PKCS#8 with \
             `openssl pkcs8 -topk8 -in key.pem -out key-pkcs8.pem` (add -nocrypt for no password)",
        ));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => config_error(
            key,
            "holds no private key (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)",
        ),
        other => config_error(key, format!("invalid PEM: {other}")),
    })
}

/// A PKCS12 store: its certificates, and its first key with its chain.
fn pkcs12(
    key: &str,
    bytes: &[u8],
    password: Option<&str>,
) -> Result<(Vec<CertificateDer<'static>>, Option<Identity>)> {
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password.unwrap_or(""),
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        config_error(
            key,
            format!(
                "cannot open the PKCS12 store ({e}); check its password, or convert it to PEM with \
                 `openssl pkcs12 -in store.p12 -out store.pem -nodes`"
            ),
        )
    })?;
    let mut certs = Vec::new();
    let mut identity = None;
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::Certificate(c) => {
                certs.push(CertificateDer::from(c.as_der().to_vec()));
            }
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) if identity.is_none() => {
                identity = Some(Identity {
                    chain: chain
                        .certs()
                        .iter()
                        .map(|c| CertificateDer::from(c.as_der().to_vec()))
                        .collect(),
                    key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        chain.key().as_der().to_vec(),
                    )),
                });
            }
            _ => {}
        }
    }
    Ok((certs, identity))
}

impl TlsConfig {
    /// TLS trusting the Mozilla root CAs, checking the broker's host name, without a
    /// client certificate.
    pub fn new() -> Self {
        TlsConfig {
            trust: Trust::SystemRoots,
            identity: None,
            verify_hostname: true,
            built: Arc::default(),
        }
    }

    fn changed(mut self) -> Self {
        self.built = Arc::default();
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks)
    /// instead of the system roots.
    pub fn with_trusted_pem(mut self, pem: &[u8]) -> Result<Self> {
        self.trust = Trust::Certificates(pem_certificates("ssl.truststore.certificates", pem)?);
        Ok(self.changed())
    }

    /// Trusts the CA certificates of a PEM file instead of the system roots.
    pub fn with_trusted_pem_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let key = "ssl.truststore.location";
        let bytes = read_file(key, path.as_ref())?;
        let mut with = self;
        with.trust = Trust::Certificates(pem_certificates(key, &bytes)?);
        Ok(with.changed())
    }

    /// Presents a client certificate (mutual TLS): `chain_pem` holds the
    /// certificate first, then its intermediates; `key_pem` the private key
    /// (PKCS#8, RSA or EC; an encrypted PKCS#8 key needs `password`).
    pub fn with_client_identity_pem(
        mut self,
        chain_pem: &[u8],
        key_pem: &[u8],
        password: Option<&str>,
    ) -> Result<Self> {
        let chain = pem_certificates("ssl.keystore.certificate.chain", chain_pem)?;
        let key = pem_private_key("ssl.keystore.key", key_pem, password)?;
        self.identity = Some(Arc::new(Identity { chain, key }));
        Ok(self.changed())
    }

    /// As [`TlsConfig::with_client_identity_pem`], from files (they may be the
    /// same file, holding both).
    pub fn with_client_identity_pem_files(
        self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        password: Option<&str>,
    ) -> Result<Self> {
        let chain = read_file("ssl.keystore.location", chain.as_ref())?;
        let key = read_file("ssl.keystore.location", key.as_ref())?;
        self.with_client_identity_pem(&chain, &key, password)
    }

    /// Presents the first key and its certificate chain of a PKCS12 file.
    pub fn with_client_identity_pkcs12_file(
        mut self,
        path: impl AsRef<Path>,
        password: &str,
    ) -> Result<Self> {
        let key = "ssl.keystore.location";
        let bytes = read_file(key, path.as_ref())?;
        let (_, identity) = pkcs12(key, &bytes, Some(password))?;
        let identity = identity.ok_or_else(|| config_error(key, "holds no private key"))?;
        self.identity = Some(Arc::new(identity));
        Ok(self.changed())
    }

    /// Whether the broker's certificate must cover the host name connected to
    /// (`ssl.endpoint.identification.algorithm=https`, the default). When off, the
    /// certificate chain is still verified.
    pub fn with_hostname_verification(mut self, verify: bool) -> Self {
        self.verify_hostname = verify;
        self.changed()
    }

    /// Whether a client certificate is presented (mutual TLS).
    pub fn has_client_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// Whether the host name is checked.
    pub fn verifies_hostname(&self) -> bool {
        self.verify_hostname
    }

    /// Reads the `ssl.*` properties (`lookup` returns a key's raw value):
    /// `ssl.truststore.location` / `.type` (PEM or PKCS12) / `.password`,
    /// `ssl.truststore.certificates`, `ssl.keystore.location` / `.type` /
    /// `.password`, `ssl.keystore.certificate.chain` + `ssl.keystore.key`,
    /// `ssl.key.password` and `ssl.endpoint.identification.algorithm`.
    pub fn from_properties(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut tls = TlsConfig::new();
        if let Some(pem) = get("ssl.truststore.certificates") {
            tls.trust = Trust::Certificates(pem_certificates(
                "ssl.truststore.certificates",
                pem.as_bytes(),
            )?);
        } else if let Some(location) = get("ssl.truststore.location") {
            let key = "ssl.truststore.location";
            let path = Path::new(&location);
            let bytes = read_file(key, path)?;
            let certs = match store_type(
                "ssl.truststore.type",
                get("ssl.truststore.type").as_deref(),
                &bytes,
            )? {
                StoreType::Pem => pem_certificates(key, &bytes)?,
                StoreType::Pkcs12 => {
                    let password = get("ssl.truststore.password");
                    let (mut certs, identity) = pkcs12(key, &bytes, password.as_deref())?;
                    certs.extend(identity.into_iter().flat_map(|i| i.chain));
                    if certs.is_empty() {
                        return Err(config_error(key, "the PKCS12 store holds no certificate"));
                    }
                    certs
                }
                StoreType::Jks => return Err(jks_error(key, path)),
            };
            tls.trust = Trust::Certificates(certs);
        }
        let key_password = get("ssl.key.password");
        if let Some(chain) = get("ssl.keystore.certificate.chain") {
            let key = get("ssl.keystore.key").ok_or_else(|| {
                config_error(
                    "ssl.keystore.key",
                    "required with ssl.keystore.certificate.chain",
                )
            })?;
            tls = tls.with_client_identity_pem(
                chain.as_bytes(),
                key.as_bytes(),
                key_password.as_deref(),
            )?;
        } else if get("ssl.keystore.key").is_some() {
            return Err(config_error(
                "ssl.keystore.certificate.chain",
                "required with ssl.keystore.key",
            ));
        } else if let Some(location) = get("ssl.keystore.location") {
            let key = "ssl.keystore.location";
            let path = Path::new(&location);
            let bytes = read_file(key, path)?;
            let identity = match store_type(
                "ssl.keystore.type",
                get("ssl.keystore.type").as_deref(),
                &bytes,
            )? {
                StoreType::Pem => Identity {
                    chain: pem_certificates(key, &bytes)?,
                    key: pem_private_key(key, &bytes, key_password.as_deref())?,
                },
                StoreType::Pkcs12 => {
                    let password = get("ssl.keystore.password");
                    pkcs12(key, &bytes, password.as_deref())?
                        .1
                        .ok_or_else(|| config_error(key, "the PKCS12 store holds no private key"))?
                }
                StoreType::Jks => return Err(jks_error(key, path)),
            };
            tls.identity = Some(Arc::new(identity));
        }
        match lookup("ssl.endpoint.identification.algorithm")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("https") => {}
            Some("") => tls.verify_hostname = false,
            Some(other) => {
                return Err(config_error(
                    "ssl.endpoint.identification.algorithm",
                    format!("invalid value {other:?}: expected https or an empty value"),
                ));
            }
        }
        // Fail on a key that does not match its certificate now, not at connect time.
        tls.rustls()
            .map_err(|message| config_error("ssl.keystore.location", message))?;
        Ok(tls)
    }

    /// The rustls configuration, built on first use.
    fn rustls(&self) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
        self.built.get_or_init(|| self.build()).clone()
    }

    fn build(&self) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match &self.trust {
            Trust::SystemRoots => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Trust::Certificates(certs) => {
                for cert in certs {
                    roots
                        .add(cert.clone())
                        .map_err(|e| format!("a trusted certificate is unusable: {e}"))?;
                }
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.verify_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
        };
        let config = match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| format!("the client certificate or its key is unusable: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// Runs the TLS handshake over `tcp` to `broker` (`host:port`), with SNI and
    /// the certificate check for its host.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        broker: &str,
    ) -> Result<TlsStream<TcpStream>> {
        let tls_error = |reason: String| Error::Tls {
            broker: broker.to_string(),
            reason,
        };
        let config = self.rustls().map_err(tls_error)?;
        let host = host_of(broker);
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| tls_error(format!("{host:?} is not a valid host name")))?;
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(describe_io(&e, host, true, self.identity.is_some())))
    }
}

/// The host part of `host:port` (without the brackets of an IPv6 address).
pub(crate) fn host_of(broker: &str) -> &str {
    let host = broker.rsplit_once(':').map_or(broker, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Verifies the broker's chain but not its host name
/// (`ssl.endpoint.identification.algorithm=`): webpki checks the name only after
/// the chain, so a name error means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

const PLAINTEXT_HINT: &str = "the broker did not answer with TLS — is this a PLAINTEXT listener? \
     (security.protocol=SSL or SASL_SSL needs the broker's SSL or SASL_SSL port)";

/// The rustls error inside an I/O error from a TLS stream, if any.
pub(crate) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Describes a TLS failure (`e` from the handshake, or from a read just after it)
/// in a user's words; `host` is the name the certificate was checked against.
/// `with_certificate`: whether this client presented a certificate.
pub(crate) fn describe_io(
    e: &std::io::Error,
    host: &str,
    in_handshake: bool,
    with_certificate: bool,
) -> String {
    if let Some(inner) = rustls_error(e) {
        return describe(inner, host, with_certificate);
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe
            if in_handshake =>
        {
            format!("the connection was closed during the handshake: {PLAINTEXT_HINT}")
        }
        _ => e.to_string(),
    }
}

fn describe(e: &rustls::Error, host: &str, with_certificate: bool) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "certificate signed by an unknown authority: the \
                 broker's certificate chain does not lead to a CA this client trusts (set \
                 ssl.truststore.location or ssl.truststore.certificates to the CA that signed it)"
                .to_string(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the broker's certificate does not cover the host name {host:?} it was reached \
                     at (connect with a name or address in its subject alternative names, or set \
                     ssl.endpoint.identification.algorithm= to skip the host name check)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the broker's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet (check the clocks)".to_string()
            }
            CertificateError::Revoked => "the broker's certificate is revoked".to_string(),
            other => format!("the broker's certificate was refused: {other:?}"),
        },
        E::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::HandshakeFailure
                if !with_certificate =>
            {
                format!(
                    "the broker requires a client certificate (mutual TLS; TLS alert {alert:?}): \
                     set ssl.keystore.location, or ssl.keystore.certificate.chain and ssl.keystore.key"
                )
            }
            AlertDescription::CertificateRequired => "the broker requires a client certificate \
                 (mutual TLS): set ssl.keystore.location, or ssl.keystore.certificate.chain and \
                 ssl.keystore.key"
                .to_string(),
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError => format!(
                "the broker rejected the client certificate (TLS alert {alert:?}): check \
                 ssl.keystore.* and that the broker trusts the CA that signed it"
            ),
            AlertDescription::HandshakeFailure
            | AlertDescription::ProtocolVersion
            | AlertDescription::InsufficientSecurity => format!(
                "the broker and this client share no TLS version or cipher suite (alert {alert:?}); \
                 TLS 1.2 and 1.3 are supported"
            ),
            other => format!("the broker ended the handshake with TLS alert {other:?}"),
        },
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => PLAINTEXT_HINT.to_string(),
        E::NoCertificatesPresented => "the broker presented no certificate".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_taken_from_the_address() {
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("broker-1.example:9093"), "broker-1.example");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn causes_are_described_in_words() {
        let unknown = describe(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "127.0.0.1",
            true,
        );
        assert!(unknown.contains("unknown authority"), "{unknown}");
        let name = describe(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            "localhost",
            true,
        );
        assert!(
            name.contains("\"localhost\"") && name.contains("does not cover"),
            "{name}"
        );
        let expired = describe(
            &rustls::Error::InvalidCertificate(CertificateError::Expired),
            "h",
            true,
        );
        assert!(expired.contains("expired"), "{expired}");
        let refused = describe(
            &rustls::Error::AlertReceived(AlertDescription::BadCertificate),
            "h",
            true,
        );
        assert!(
            refused.contains("rejected the client certificate"),
            "{refused}"
        );
        let eof = describe_io(
            &std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            "h",
            true,
            true,
        );
        assert!(eof.contains("PLAINTEXT listener"), "{eof}");
    }

    #[test]
    fn jks_stores_are_refused_with_the_conversion() {
        let err = store_type("ssl.truststore.type", None, &[0xfe, 0xed, 0xfe, 0xed, 0, 0])
            .map(|t| assert_eq!(t, StoreType::Jks));
        assert!(err.is_ok());
        let err = jks_error("ssl.truststore.location", Path::new("/x/store.jks")).to_string();
        assert!(
            err.contains("keytool -importkeystore") && err.contains("openssl pkcs12"),
            "{err}"
        );
    }
}
