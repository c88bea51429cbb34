//! TLS for broker connections, with rustls.
