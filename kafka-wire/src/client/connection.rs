//! One connection to one broker: pipelined requests matched to responses by
//! correlation id, a bounded number of requests in flight, request timeouts, and
//! ApiVersions negotiation.
//!
//! ```text
//!  call() ──encode──► writer queue ──► writer task ──► socket
//!     │                                                  │
//!     └──◄── oneshot ◄── pending[correlation id] ◄── reader task
//! ```
//!
//! Frames are written by a task of their own, so a caller that gives up (drops its
//! future) can never leave half a frame on the socket. When the connection fails
//! (I/O error, a response too large, an unknown correlation id, a request timeout)
//! it is poisoned: every pending and later request fails with
//! [`Error::Disconnected`], and the owner (the broker pool) opens a new one. A
//! TLS failure after the handshake (a client certificate the broker refused) or a
//! failed re-authentication poisons it with [`Error::Tls`] or
//! [`Error::Authentication`] instead, which callers do not retry.
//!
//! With `security.protocol` SSL or SASL_SSL the stream is TLS
//! ([`crate::client::security::tls`]); with SASL the connection authenticates after
//! ApiVersions and re-authenticates before the session the broker granted ends
//! (KIP-368): a task takes every in-flight permit (so the requests already sent
//! get their responses and no new one is written), runs SaslHandshake and
//! SaslAuthenticate, and gives the permits back.
//! A request that timed out closes the connection as the Java client does: its
//! response might still arrive, and nothing after it can be trusted to be in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::buffer_pool::BufferPool;
use crate::client::security::{SecurityConfig, authenticate, tls};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use crate::protocol::{
    ApiKey, Message, Request, Response, Versions, decode_response_frame, encode_request_frame,
};
use crate::sync::lock;

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent as `client_id` in every request header.
    pub client_id: String,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    /// How long establishing the TCP connection may take.
    pub connect_timeout: Duration,
    /// Requests written but not yet answered, at most.
    pub max_in_flight: usize,
    /// Largest response accepted; larger ones poison the connection.
    pub max_response_size: usize,
    /// TLS and SASL (`security.protocol`, `ssl.*`, `sasl.*`).
    pub security: SecurityConfig,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            client_id: "strom".to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            max_response_size: 256 << 20,
            security: SecurityConfig::default(),
        }
    }
}

type Waiter = oneshot::Sender<Result<Bytes>>;

#[derive(Default)]
struct PendingState {
    waiters: HashMap<i32, Waiter>,
    closed: Option<String>,
    /// The error pending and later requests fail with, when it is not
    /// [`Error::Disconnected`] (a TLS alert, a failed re-authentication).
    fatal: Option<Error>,
}

/// Response frame buffers a connection keeps for reuse.
const RESPONSE_BUFFERS_KEPT: usize = 4;
/// Response frames smaller than this are not pooled.
const MIN_POOLED_RESPONSE: usize = 64 * 1024;

struct Shared {
    broker: String,
    /// Buffers for large response frames (fetch responses).
    buffers: Arc<BufferPool>,
    options: ConnectionOptions,
    pending: Mutex<PendingState>,
    next_correlation_id: AtomicI32,
    in_flight: Arc<Semaphore>,
    /// All permits of `in_flight`.
    permits: u32,
    /// Whether the stream is plain TCP (a TLS record in answer means the wrong port).
    plaintext: bool,
    api_versions: Mutex<HashMap<i16, Versions>>,
}

impl Shared {
    fn disconnected(&self, reason: &str) -> Error {
        Error::Disconnected {
            broker: self.broker.clone(),
            reason: reason.to_string(),
        }
    }

    /// Marks the connection dead and fails every pending request with `reason`.
    fn poison(&self, reason: &str) {
        self.poison_with(reason, None);
    }

    /// Marks the connection dead; pending and later requests fail with `fatal`,
    /// or with [`Error::Disconnected`] naming `reason` when it is `None`.
    fn poison_with(&self, reason: &str, fatal: Option<Error>) {
        let (waiters, error) = {
            let mut state = lock(&self.pending);
            if state.closed.is_none() {
                state.closed = Some(reason.to_string());
                state.fatal = fatal;
            }
            let error = state
                .fatal
                .clone()
                .unwrap_or_else(|| self.disconnected(reason));
            (std::mem::take(&mut state.waiters), error)
        };
        if !waiters.is_empty() {
            debug!(broker = %self.broker, reason, failed = waiters.len(), "connection poisoned");
        }
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    fn closed_reason(&self) -> Option<String> {
        lock(&self.pending).closed.clone()
    }

    /// The error a request on a dead connection fails with; `None` while it lives.
    fn closed_error(&self) -> Option<Error> {
        let state = lock(&self.pending);
        let reason = state.closed.as_ref()?;
        Some(
            state
                .fatal
                .clone()
                .unwrap_or_else(|| self.disconnected(reason)),
        )
    }
}

/// A connection to one broker. Cheap to clone; all clones share the socket.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Bytes>,
    _tasks: Arc<TaskGuard>,
}

/// Aborts the reader, writer and re-authentication tasks when the last handle is
/// dropped.
struct TaskGuard(Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in lock(&self.0).iter() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.shared.broker)
            .finish()
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`): TCP, the TLS handshake when
    /// `security.protocol` asks for TLS (both within the connect timeout),
    /// ApiVersions, then SASL authentication when it asks for SASL.
    pub async fn connect(addr: &str, options: ConnectionOptions) -> Result<Connection> {
        crate::client::metrics::connection_attempt(&options.client_id, addr);
        let security = options.security.clone();
        let timeout = options.connect_timeout;
        let open = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|source| Error::Io {
                    context: format!("connecting to {addr}"),
                    source: Arc::new(source),
                })?;
            stream.set_nodelay(true).map_err(|source| Error::Io {
                context: format!("configuring {addr}"),
                source: Arc::new(source),
            })?;
            let conn = match security.tls() {
                Some(tls) if security.protocol().uses_tls() => {
                    let stream = tls.handshake(stream, addr).await?;
                    Connection::from_stream(stream, addr, options)
                }
                _ => Connection::from_stream(stream, addr, options),
            };
            Ok::<_, Error>(conn)
        };
        let conn = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| Error::Timeout {
                context: format!("connecting to {addr}"),
            })??;
        conn.establish().await?;
        Ok(conn)
    }

    /// Negotiates api versions, then, when the options' `security.protocol` uses
    /// SASL, authenticates and keeps re-authenticating before each session ends.
    /// [`Connection::connect`] calls it; call it after [`Connection::from_stream`].
    pub async fn establish(&self) -> Result<()> {
        self.negotiate_api_versions().await?;
        let security = &self.shared.options.security;
        if let Some(sasl) = security.sasl().filter(|_| security.protocol().uses_sasl()) {
            let lifetime = authenticate::authenticate(self, sasl).await?;
            if let Some(lifetime) = lifetime {
                let task = tokio::spawn(authenticate::reauthenticate(
                    self.detached(),
                    sasl.clone(),
                    lifetime,
                ));
                lock(&self._tasks.0).push(task);
            }
        }
        Ok(())
    }

    /// A handle that shares the socket but does not keep its tasks alive (for the
    /// connection's own re-authentication task).
    fn detached(&self) -> Connection {
        Connection {
            shared: self.shared.clone(),
            writer: self.writer.clone(),
            _tasks: Arc::new(TaskGuard(Mutex::new(Vec::new()))),
        }
    }

    /// Waits until no request is in flight and holds every permit, so no request
    /// is sent until the guard drops (re-authentication).
    pub(crate) async fn exclusive(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.shared
            .in_flight
            .clone()
            .acquire_many_owned(self.shared.permits)
            .await
            .map_err(|_| self.shared.disconnected("closed"))
    }

    /// Fails every pending and later request with `error`.
    pub(crate) fn poison_with(&self, error: Error) {
        self.shared.poison_with(&error.to_string(), Some(error));
    }

    /// Sends `request` at `version` without taking an in-flight permit (the caller
    /// holds them all: the SASL exchange) and waits for the answer.
    pub(crate) async fn call_exclusive<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response> {
        let mut frame = self
            .start::<R>(request, version, None)
            .await?
            .frame()
            .await?;
        let (_, response) = decode_response_frame::<R::Response>(&mut frame, version)?;
        Ok(response)
    }

    /// Wraps an already open stream (TCP, TLS, or an in-memory duplex in tests). Does
    /// not negotiate api versions: call [`Connection::negotiate_api_versions`].
    pub fn from_stream<S>(stream: S, broker: &str, options: ConnectionOptions) -> Connection
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        let permits = options
            .max_in_flight
            .clamp(1, Semaphore::MAX_PERMITS.min(1 << 20));
        let shared = Arc::new(Shared {
            broker: broker.to_string(),
            buffers: Arc::new(BufferPool::new(
                RESPONSE_BUFFERS_KEPT,
                MIN_POOLED_RESPONSE,
                usize::MAX,
            )),
            in_flight: Arc::new(Semaphore::new(permits)),
            permits: permits as u32,
            plaintext: !options.security.protocol().uses_tls(),
            options,
            pending: Mutex::new(PendingState::default()),
            next_correlation_id: AtomicI32::new(1),
            api_versions: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(read_half, shared.clone()));
        let writer = tokio::spawn(write_loop(write_half, rx, shared.clone()));
        Connection {
            shared,
            writer: tx,
            _tasks: Arc::new(TaskGuard(Mutex::new(vec![reader, writer]))),
        }
    }

    /// The `host:port` this connection talks to.
    pub fn broker(&self) -> &str {
        &self.shared.broker
    }

    /// Whether the connection has failed; a failed connection never recovers.
    pub fn is_closed(&self) -> bool {
        self.shared.closed_reason().is_some()
    }

    /// The versions of `api` the broker supports, once negotiated.
    pub fn broker_versions(&self, api: ApiKey) -> Option<Versions> {
        lock(&self.shared.api_versions).get(&api.code()).copied()
    }

    /// The highest version of `R` both this client and the broker support (see
    /// [`client_max_version`]).
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        self.version_at_most::<R>(i16::MAX)
    }

    /// As [`Connection::version_for`], but never above `max`.
    pub fn version_at_most<R: Request>(&self, max: i16) -> Result<i16> {
        let theirs = self
            .broker_versions(R::API_KEY)
            .ok_or(Error::NoCommonVersion {
                api: R::NAME,
                broker: self.shared.broker.clone(),
            })?;
        let ours = Versions::new(
            R::VALID_VERSIONS.min,
            R::VALID_VERSIONS
                .max
                .min(client_max_version(R::API_KEY))
                .min(max),
        );
        let both = ours.intersect(theirs);
        if both.is_empty() {
            return Err(Error::NoCommonVersion {
                api: R::NAME,
                broker: self.shared.broker.clone(),
            });
        }
        Ok(both.max)
    }

    /// Sends ApiVersions and records the versions the broker supports.
    ///
    /// Starts at our highest version; a broker that does not know it answers with a
    /// v0 body listing its own ApiVersions range, and the request is retried once at
    /// the highest version both support.
    pub async fn negotiate_api_versions(&self) -> Result<()> {
        let request = ApiVersionsRequest {
            client_software_name: "strom".to_string(),
            client_software_version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        let mut version = ApiVersionsRequest::VALID_VERSIONS.max;
        for _ in 0..2 {
            let frame = self
                .round_trip::<ApiVersionsRequest>(&request, version)
                .await?;
            let response = decode_api_versions(frame, version)?;
            let code = ErrorCode::from_code(response.error_code);
            if code == ErrorCode::UnsupportedVersion {
                let theirs = response
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions.code())
                    .map(|k| Versions::new(k.min_version, k.max_version))
                    .unwrap_or(Versions::new(0, 0));
                let both = ApiVersionsRequest::VALID_VERSIONS.intersect(theirs);
                if both.is_empty() || both.max >= version {
                    break;
                }
                version = both.max;
                continue;
            }
            code.into_result()
                .map_err(|code| Error::broker(code, "ApiVersions").with_api(ApiKey::ApiVersions))?;
            let map = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, Versions::new(k.min_version, k.max_version)))
                .collect();
            *lock(&self.shared.api_versions) = map;
            return Ok(());
        }
        Err(Error::NoCommonVersion {
            api: ApiVersionsRequest::NAME,
            broker: self.shared.broker.clone(),
        })
    }

    /// Sends `request` at the highest version both sides support and waits for the answer.
    pub async fn call<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.call_version(request, version).await
    }

    /// Sends `request` at `version` and waits for the answer.
    pub async fn call_version<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        let mut frame = self.round_trip(request, version).await?;
        let (_, response) = decode_response_frame::<R::Response>(&mut frame, version)?;
        Ok(response)
    }

    /// Sends a request that gets no response (a produce with `acks=0`).
    pub async fn send_without_response<R: Request>(&self, request: &R, version: i16) -> Result<()> {
        let _permit = self.acquire().await?;
        let correlation_id = self.next_correlation_id();
        let frame = encode_request_frame(
            request,
            version,
            correlation_id,
            Some(&self.shared.options.client_id),
        )?;
        self.enqueue(frame.freeze())
    }

    fn next_correlation_id(&self) -> i32 {
        // Wraps at i32::MAX; ids are only compared for equality.
        self.shared
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed)
            & i32::MAX
    }

    async fn acquire(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        if let Some(error) = self.shared.closed_error() {
            return Err(error);
        }
        self.shared
            .in_flight
            .acquire()
            .await
            .map_err(|_| self.shared.disconnected("closed"))
    }

    fn enqueue(&self, frame: Bytes) -> Result<()> {
        self.writer
            .send(frame)
            .map_err(|_| self.shared.disconnected("writer stopped"))
    }

    /// Writes the request and returns the response frame after its size prefix,
    /// starting with the response header.
    async fn round_trip<R: Request>(&self, request: &R, version: i16) -> Result<Bytes> {
        let permit = self.acquire_owned().await?;
        self.start::<R>(request, version, Some(permit))
            .await?
            .frame()
            .await
    }

    /// Queues `request` for writing and returns a handle to await its response.
    ///
    /// Requests are written in the order `send` is called and completes, so a
    /// caller that must keep requests ordered on the wire (idempotent produce)
    /// awaits `send` in order and the responses concurrently.
    pub async fn send<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<PendingResponse<R::Response>> {
        let permit = self.acquire_owned().await?;
        Ok(PendingResponse {
            inner: self.start::<R>(request, version, Some(permit)).await?,
            version,
            _response: std::marker::PhantomData,
        })
    }

    async fn acquire_owned(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        if let Some(error) = self.shared.closed_error() {
            return Err(error);
        }
        self.shared
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| self.shared.disconnected("closed"))
    }

    async fn start<R: Request>(
        &self,
        request: &R,
        version: i16,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<InFlight> {
        if let Some(error) = self.shared.closed_error() {
            return Err(error);
        }
        let correlation_id = self.next_correlation_id();
        let frame = encode_request_frame(
            request,
            version,
            correlation_id,
            Some(&self.shared.options.client_id),
        )?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&self.shared.pending);
            if state.closed.is_some() {
                drop(state);
                return Err(self
                    .shared
                    .closed_error()
                    .unwrap_or_else(|| self.shared.disconnected("closed")));
            }
            state.waiters.insert(correlation_id, tx);
        }
        crate::client::metrics::request_sent(R::API_KEY, frame.len());
        self.enqueue(frame.freeze())?;
        Ok(InFlight {
            shared: self.shared.clone(),
            rx,
            correlation_id,
            api: R::API_KEY,
            started: Instant::now(),
            _permit: permit,
        })
    }
}

/// A request written (or queued for writing) whose response has not been read yet.
struct InFlight {
    shared: Arc<Shared>,
    rx: oneshot::Receiver<Result<Bytes>>,
    correlation_id: i32,
    api: ApiKey,
    started: Instant,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl InFlight {
    async fn frame(self) -> Result<Bytes> {
        let timeout = self.shared.options.request_timeout;
        let frame = match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(self.shared.disconnected("connection dropped")),
            Err(_) => {
                let name = self.api.name();
                let reason = format!(
                    "{name} (correlation id {}) timed out after {timeout:?}",
                    self.correlation_id
                );
                warn!(broker = %self.shared.broker, api = name, "request timed out; closing connection");
                self.shared.poison(&reason);
                return Err(Error::Timeout {
                    context: format!("{name} to {}", self.shared.broker),
                });
            }
        };
        crate::client::metrics::response_received(self.api, frame.len(), self.started.elapsed());
        Ok(frame)
    }
}

/// The response to a request sent with [`Connection::send`].
pub struct PendingResponse<R> {
    inner: InFlight,
    version: i16,
    _response: std::marker::PhantomData<fn() -> R>,
}

impl<R: Response> PendingResponse<R> {
    /// Waits for the response (up to the request timeout) and decodes it.
    pub async fn response(self) -> Result<R> {
        let version = self.version;
        let mut frame = self.inner.frame().await?;
        let (_, response) = decode_response_frame::<R>(&mut frame, version)?;
        Ok(response)
    }
}

fn decode_api_versions(frame: Bytes, version: i16) -> Result<ApiVersionsResponse> {
    // A broker that does not support `version` answers with a v0 body, whose error
    // code sits in the same place as in every later version.
    let mut peek = frame.clone();
    peek.advance(4.min(peek.remaining())); // response header v0: correlation id
    let code = crate::protocol::primitives::read_i16(&mut peek, "ApiVersionsResponse.error_code")?;
    let decode_as = if code == ErrorCode::UnsupportedVersion.code() {
        0
    } else {
        version
    };
    let mut frame = frame;
    let (_, response) = decode_response_frame::<ApiVersionsResponse>(&mut frame, decode_as)?;
    Ok(response)
}

async fn write_loop<W: AsyncWrite>(
    writer: W,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
) {
    let mut writer = std::pin::pin!(writer);
    while let Some(frame) = frames.recv().await {
        if let Err(e) = writer.write_all(&frame).await {
            shared.poison(&format!("write failed: {e}"));
            return;
        }
        // Write whatever else is queued before flushing, to batch small frames.
        while let Ok(more) = frames.try_recv() {
            if let Err(e) = writer.write_all(&more).await {
                shared.poison(&format!("write failed: {e}"));
                return;
            }
        }
        if let Err(e) = writer.flush().await {
            shared.poison(&format!("flush failed: {e}"));
            return;
        }
        if shared.closed_reason().is_some() {
            return;
        }
    }
}

/// Whether the first bytes of a "size" are a TLS record header (handshake or
/// alert, TLS 1.x): a TLS listener answering a plaintext client.
fn looks_like_tls_record(size: i32) -> bool {
    let [content_type, major, ..] = size.to_be_bytes();
    matches!(content_type, 0x15 | 0x16) && major == 0x03
}

/// The error a read failure poisons the connection with: [`Error::Tls`] for a
/// TLS alert or failure (e.g. the broker refused the client certificate after the
/// TLS 1.3 handshake), else `None` (disconnected).
fn read_failure(shared: &Shared, e: &std::io::Error) -> Option<Error> {
    tls::rustls_error(e).map(|_| Error::Tls {
        broker: shared.broker.clone(),
        reason: tls::describe_io(
            e,
            tls::host_of(&shared.broker),
            false,
            shared
                .options
                .security
                .tls()
                .is_some_and(|t| t.has_client_identity()),
        ),
    })
}

async fn read_loop<R: AsyncRead>(reader: R, shared: Arc<Shared>) {
    let mut reader = std::pin::pin!(reader);
    let mut fatal = None;
    let reason = loop {
        let size = match reader.read_i32().await {
            Ok(size) => size,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "closed by the broker".to_string();
            }
            Err(e) => {
                fatal = read_failure(&shared, &e);
                break format!("read failed: {e}");
            }
        };
        if shared.plaintext && looks_like_tls_record(size) {
            let error = Error::Tls {
                broker: shared.broker.clone(),
                reason: format!(
                    "the broker answered with TLS — is this an SSL listener? set \
                     security.protocol=SSL or SASL_SSL (it is {})",
                    shared.options.security.protocol().name()
                ),
            };
            fatal = Some(error);
            break "the broker answered with TLS".to_string();
        }
        if size < 4 || size as usize > shared.options.max_response_size {
            break format!(
                "response size {size} outside [4, {}] (max response size)",
                shared.options.max_response_size
            );
        }
        let size = size as usize;
        let mut body = shared.buffers.take(size);
        let mut limited = reader.as_mut().take(size as u64);
        let read = loop {
            match limited.read_buf(&mut body).await {
                Ok(0) if body.len() < size => {
                    break Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
                Ok(_) if body.len() < size => {}
                Ok(_) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = read {
            fatal = read_failure(&shared, &e);
            break format!("read failed mid-response: {e}");
        }
        let body = shared.buffers.freeze(body);
        let correlation_id = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let waiter = {
            let mut state = lock(&shared.pending);
            state.waiters.remove(&correlation_id)
        };
        match waiter {
            Some(waiter) => {
                // The caller may have given up; its response is simply dropped.
                let _ = waiter.send(Ok(body));
            }
            None => break format!("response with unknown correlation id {correlation_id}"),
        }
        if shared.closed_reason().is_some() {
            return;
        }
    };
    shared.poison_with(&reason, fatal);
}

/// The highest version of `api` whose meaning this client implements.
///
/// The codecs know every version of the pinned Kafka's message definitions, but some
/// newer versions change what the client must do, not just the bytes: Produce v13,
/// OffsetCommit v10 and OffsetFetch v10 name topics by id only; Metadata v13 adds a
/// top-level error; InitProducerId v6 is two-phase commit (KIP-939). Those stay
/// unused until the client logic handles them. TxnOffsetCommit v5 and Produce v12 are
/// transaction version 2 (KIP-890), which [`crate::client::transaction`] opts into
/// per producer.
pub fn client_max_version(api: ApiKey) -> i16 {
    match api {
        ApiKey::Produce => 12,
        ApiKey::Fetch => 17,
        ApiKey::Metadata => 12,
        ApiKey::OffsetCommit | ApiKey::OffsetFetch => 9,
        ApiKey::InitProducerId => 5,
        ApiKey::DescribeGroups => 5,
        ApiKey::ListTransactions | ApiKey::DescribeCluster => 1,
        ApiKey::ConsumerGroupDescribe => 0,
        _ => i16::MAX,
    }
}

#[cfg(test)]
mod tests;
