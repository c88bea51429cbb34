//! Securing connections: TLS (rustls) and SASL authentication, configured with the
//! Java client's `security.protocol`, `ssl.*` and `sasl.*` properties.

pub mod sasl;
pub mod tls;
