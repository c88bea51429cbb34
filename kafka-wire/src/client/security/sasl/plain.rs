//! PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`, with an
//! empty authzid as Kafka's Java client sends it.

use super::Secret;

pub(super) struct PlainClient {
    username: String,
    password: Secret,
    sent: bool,
    done: bool,
}

impl PlainClient {
    /// Fails (without naming the values) when a NUL would break the message.
    pub(super) fn new(username: &str, password: &Secret) -> Result<Self, String> {
        if username.is_empty() {
            return Err("the user name is empty".into());
        }
        if username.contains('\0') || password.expose().contains('\0') {
            return Err("the user name or password contains a NUL character".into());
        }
        Ok(PlainClient {
            username: username.to_string(),
            password: password.clone(),
            sent: false,
            done: false,
        })
    }

    pub(super) fn stage(&self) -> &'static str {
        match (self.sent, self.done) {
            (false, _) => "initial",
            (true, false) => "sent credentials",
            (true, true) => "done",
        }
    }

    /// The server answers PLAIN with empty bytes on success (and with an error
    /// code, which the connection sees, on failure): any answer ends the exchange.
    pub(super) fn step(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        if self.done {
            return Err("the exchange already finished".into());
        }
        if self.sent {
            self.done = true;
            return Ok(None);
        }
        if server.is_some_and(|s| !s.is_empty()) {
            return Err("the server sent a challenge before the client's message".into());
        }
        self.sent = true;
        let password = self.password.expose();
        let mut message = Vec::with_capacity(2 + self.username.len() + password.len());
        message.push(0);
        message.extend_from_slice(self.username.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        Ok(Some(message))
    }
}
