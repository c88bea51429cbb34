//! SASL mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER) as state
//! machines that do no I/O; the connection carries their bytes in SaslAuthenticate.
