//! A loopback TCP proxy between Kafka clients and a real broker, for network-fault
//! tests: added latency, requests of one api held back (late Produce or EndTxn, the
//! KAFKA-17754 pattern), responses of one api held back (a JoinGroup the broker has
//! completed and the client has not heard of), a request cut in the middle, every
//! connection dropped, and connections that hang.
//!
//! The proxy reads Kafka frames in both directions. It rewrites the broker addresses
//! in Metadata, FindCoordinator, DescribeCluster and the `node_endpoints` of Produce
//! and Fetch responses to addresses of its own, opening a listener per broker on
//! first sight, so a client that bootstraps through the proxy never connects to a
//! broker directly.
//!
//! ```text
//!  client ──► proxy listener (one per broker) ──► broker
//!        ◄── responses, broker addresses rewritten ◄──
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_wire::protocol::messages::{
    DescribeClusterResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ResponseHeader,
};
use kafka_wire::protocol::{ApiKey, Message, Response, decode_request_frame_header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest frame the proxy forwards; a larger size prefix closes the connection.
const MAX_FRAME: usize = 256 << 20;
/// How often a hanging connection looks whether it may go on.
const HANG_POLL: Duration = Duration::from_millis(20);

/// The faults applied to traffic from now on.
#[derive(Debug, Default, Clone)]
struct Faults {
    /// Added before each request is forwarded.
    latency: Duration,
    /// Requests of these api keys wait this long before they are forwarded.
    hold: HashMap<i16, Duration>,
    /// Responses to requests of these api keys wait this long before they are
    /// forwarded.
    hold_responses: HashMap<i16, Duration>,
    /// The next request of each of these api keys is cut after half its bytes,
    /// and its connection closed.
    cut_next: HashSet<i16>,
    /// Nothing is forwarded in either direction while set.
    hang: bool,
}

struct Inner {
    faults: Mutex<Faults>,
    /// Broker `host:port` → the proxy's port for it.
    routes: Mutex<HashMap<String, u16>>,
    /// Bumped to close every open connection.
    epoch: watch::Sender<u64>,
    accepted: AtomicUsize,
    cut: AtomicUsize,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running proxy; dropping it stops its listeners and connections.
pub struct KafkaProxy {
    inner: Arc<Inner>,
    bootstrap: String,
}

impl Drop for KafkaProxy {
    fn drop(&mut self) {
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
        self.inner.epoch.send_modify(|e| *e += 1);
    }
}

impl KafkaProxy {
    /// Starts a listener for each broker of `bootstrap` (comma-separated
    /// `host:port`, loopback only); more listeners open as responses name other
    /// brokers.
    pub async fn start(bootstrap: &str) -> Result<KafkaProxy> {
        let inner = Arc::new(Inner {
            faults: Mutex::new(Faults::default()),
            routes: Mutex::new(HashMap::new()),
            epoch: watch::channel(0).0,
            accepted: AtomicUsize::new(0),
            cut: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let mut proxied = Vec::new();
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let port = route(&inner, addr)?;
            proxied.push(format!("127.0.0.1:{port}"));
        }
        if proxied.is_empty() {
            bail!("no broker address in {bootstrap:?}");
        }
        Ok(KafkaProxy {
            inner,
            bootstrap: proxied.join(","),
        })
    }

    /// The proxy's addresses for the bootstrap brokers: give this to clients.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Adds `latency` before every request from now on (zero removes it).
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.inner.faults).latency = latency;
    }

    /// Holds every request of `api` for `delay` before forwarding it (and, as on a
    /// TCP connection, the requests behind it on the same connection).
    pub fn hold(&self, api: ApiKey, delay: Duration) {
        lock(&self.inner.faults).hold.insert(api.code(), delay);
    }

    /// Holds every response to a request of `api` for `delay` before forwarding
    /// it (and the responses behind it on the same connection): the broker has
    /// acted on the request, the client does not know yet.
    pub fn hold_responses(&self, api: ApiKey, delay: Duration) {
        lock(&self.inner.faults)
            .hold_responses
            .insert(api.code(), delay);
    }

    /// Cuts the next request of `api`: half of its bytes reach the broker, then
    /// its connection closes on both sides.
    pub fn cut_next(&self, api: ApiKey) {
        lock(&self.inner.faults).cut_next.insert(api.code());
    }

    /// While `on`, nothing is forwarded in either direction; connections stay open.
    pub fn hang(&self, on: bool) {
        lock(&self.inner.faults).hang = on;
    }

    /// Removes every fault (latency, holds, pending cuts, hang).
    pub fn heal(&self) {
        *lock(&self.inner.faults) = Faults::default();
    }

    /// Closes every open connection now; new ones are accepted as before.
    pub fn drop_connections(&self) {
        self.inner.epoch.send_modify(|e| *e += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Requests cut by [`KafkaProxy::cut_next`] so far.
    pub fn cuts(&self) -> usize {
        self.inner.cut.load(Ordering::Relaxed)
    }
}

/// The proxy port for broker `addr`, opening a listener for it the first time.
fn route(inner: &Arc<Inner>, addr: &str) -> Result<u16> {
    let mut routes = lock(&inner.routes);
    if let Some(port) = routes.get(addr) {
        return Ok(*port);
    }
    let target: SocketAddr = addr
        .parse()
        .with_context(|| format!("broker address {addr} is not an IP:port"))?;
    if !target.ip().is_loopback() {
        bail!("the proxy only forwards to loopback brokers, not {addr}");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a proxy port")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let listener = TcpListener::from_std(listener)?;
    routes.insert(addr.to_string(), port);
    let task = tokio::spawn(accept_loop(Arc::downgrade(inner), listener, target));
    lock(&inner.tasks).push(task);
    Ok(port)
}

async fn accept_loop(inner: std::sync::Weak<Inner>, listener: TcpListener, target: SocketAddr) {
    while let Ok((client, _)) = listener.accept().await {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        tokio::spawn(serve(strong, client, target));
    }
}

/// Api key and version of each request in flight on one connection, by correlation id.
type InFlight = Mutex<HashMap<i32, (i16, i16)>>;

async fn serve(inner: Arc<Inner>, client: TcpStream, target: SocketAddr) {
    let mut epoch = inner.epoch.subscribe();
    epoch.borrow_and_update();
    let Ok(broker) = TcpStream::connect(target).await else {
        return;
    };
    let _ = broker.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (broker_read, broker_write) = broker.into_split();
    let in_flight = InFlight::default();
    tokio::select! {
        _ = requests(&inner, client_read, broker_write, &in_flight) => {}
        _ = responses(&inner, broker_read, client_write, &in_flight) => {}
        _ = epoch.changed() => {}
    }
}

async fn read_frame<R: AsyncRead + Unpin>(from: &mut R) -> Option<Bytes> {
    let size = from.read_i32().await.ok()?;
    let size = usize::try_from(size).ok().filter(|s| *s <= MAX_FRAME)?;
    let mut frame = BytesMut::with_capacity(4 + size);
    frame.put_i32(size as i32);
    frame.resize(4 + size, 0);
    from.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame.freeze())
}

async fn wait_while_hung(inner: &Inner) {
    while lock(&inner.faults).hang {
        tokio::time::sleep(HANG_POLL).await;
    }
}

/// Client → broker: applies latency, holds, cuts and hangs.
async fn requests<R, W>(inner: &Inner, mut from: R, mut to: W, in_flight: &InFlight)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = read_frame(&mut from).await {
        let mut body = frame.slice(4..);
        let header = decode_request_frame_header(&mut body).ok();
        let api = header.as_ref().map(|h| h.request_api_key);
        if let Some(h) = &header {
            lock(in_flight).insert(h.correlation_id, (h.request_api_key, h.request_api_version));
        }
        let (delay, cut) = {
            let mut faults = lock(&inner.faults);
            let hold = api.and_then(|a| faults.hold.get(&a).copied());
            let cut = api.is_some_and(|a| faults.cut_next.remove(&a));
            (faults.latency + hold.unwrap_or_default(), cut)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        wait_while_hung(inner).await;
        if cut {
            let _ = to.write_all(&frame[..frame.len() / 2]).await;
            let _ = to.flush().await;
            inner.cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if to.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// Broker → client: rewrites broker addresses, applies response holds, waits
/// out hangs.
async fn responses<R, W>(inner: &Arc<Inner>, mut from: R, mut to: W, in_flight: &InFlight)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(frame) = read_frame(&mut from).await {
        let correlation_id = frame
            .get(4..8)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let request = correlation_id.and_then(|id| lock(in_flight).remove(&id));
        let hold =
            request.and_then(|(api, _)| lock(&inner.faults).hold_responses.get(&api).copied());
        if let Some(delay) = hold {
            tokio::time::sleep(delay).await;
        }
        let frame = match request {
            Some((api, version)) => match rewrite_addresses(inner, api, version, &frame) {
                Ok(Some(rewritten)) => rewritten,
                Ok(None) => frame,
                Err(e) => {
                    eprintln!("proxy: cannot rewrite a response of api {api} v{version}: {e:#}");
                    return;
                }
            },
            None => frame,
        };
        wait_while_hung(inner).await;
        if to.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// The response frame with every broker address replaced by the proxy's, or
/// `None` when this api names no brokers.
fn rewrite_addresses(
    inner: &Arc<Inner>,
    api: i16,
    version: i16,
    frame: &Bytes,
) -> Result<Option<Bytes>> {
    let map = |host: &mut String, port: &mut i32| -> Result<()> {
        let proxied = route(inner, &format!("{host}:{port}"))?;
        *host = "127.0.0.1".to_string();
        *port = i32::from(proxied);
        Ok(())
    };
    let Ok(api) = ApiKey::try_from(api) else {
        return Ok(None);
    };
    let out = match api {
        ApiKey::Metadata => rewrite::<MetadataResponse>(frame, version, |r| {
            r.brokers
                .iter_mut()
                .try_for_each(|b| map(&mut b.host, &mut b.port))
        })?,
        ApiKey::FindCoordinator => rewrite::<FindCoordinatorResponse>(frame, version, |r| {
            if !r.host.is_empty() {
                map(&mut r.host, &mut r.port)?;
            }
            r.coordinators
                .iter_mut()
                .filter(|c| !c.host.is_empty())
                .try_for_each(|c| map(&mut c.host, &mut c.port))
        })?,
        ApiKey::DescribeCluster => rewrite::<DescribeClusterResponse>(frame, version, |r| {
            r.brokers
                .iter_mut()
                .try_for_each(|b| map(&mut b.host, &mut b.port))
        })?,
        ApiKey::Produce => rewrite::<ProduceResponse>(frame, version, |r| {
            r.node_endpoints
                .iter_mut()
                .try_for_each(|n| map(&mut n.host, &mut n.port))
        })?,
        ApiKey::Fetch => rewrite::<FetchResponse>(frame, version, |r| {
            r.node_endpoints
                .iter_mut()
                .try_for_each(|n| map(&mut n.host, &mut n.port))
        })?,
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Decodes a response frame of type `R`, lets `edit` change it, and encodes it again
/// with the same header.
fn rewrite<R: Response>(
    frame: &Bytes,
    version: i16,
    edit: impl FnOnce(&mut R) -> Result<()>,
) -> Result<Bytes> {
    let header_version = R::API_KEY.response_header_version(version);
    let mut body = frame.slice(4..);
    let header = ResponseHeader::decode(&mut body, header_version)?;
    let mut response = R::decode(&mut body, version)?;
    if !body.is_empty() {
        bail!("{} bytes left after {} v{version}", body.len(), R::NAME);
    }
    edit(&mut response)?;
    let len = header.encoded_len(header_version)? + response.encoded_len(version)?;
    let mut out = BytesMut::with_capacity(4 + len);
    out.put_i32(i32::try_from(len)?);
    header.encode(&mut out, header_version)?;
    response.encode(&mut out, version)?;
    Ok(out.freeze())
}
