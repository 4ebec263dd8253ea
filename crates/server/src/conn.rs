//! The accept loop and what each connection may hold: a cap on open
//! connections, a header-read timeout, an idle keep-alive timeout, a
//! minimum rate for request bodies, and a timeout for responses nobody
//! reads. `axum::serve` has none of these; hyper's HTTP/1 connections are
//! driven here instead, each watched by its own task.
//!
//! At the cap, the loop holds the connection it has just accepted and
//! closes the connection that has been idle longest (no request in
//! flight: a client between requests, or one that has not finished sending
//! a header), so a flood of idle connections can never lock out a client
//! with a request to make; when every connection is busy, it waits. The
//! cap is kept below the process's open-file limit (raised to its hard
//! limit at start), so the server never runs out of descriptors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::memory::Activity;
use crate::querying::humantime;

/// Limits on connections and on how slowly a client may talk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most (`--max-connections`); lowered to fit
    /// the open-file limit.
    pub max_connections: usize,
    /// A request's header must arrive within this, counted from the
    /// connection's start or from the first byte of a later request
    /// (`--header-timeout`).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request is closed after this, and
    /// so is one whose client stops reading a response
    /// (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// A request body may pause this long at most, and must keep up
    /// `body_min_rate` after its first `body_timeout` (`--body-timeout`).
    pub body_timeout: Duration,
    /// Bytes per second a request body must average (`--body-min-rate`).
    pub body_min_rate: u64,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 16 << 10,
        }
    }
}

/// Descriptors kept for everything but connections: the store, the
/// autopilot's files and commands, the agent of `perfpilot up`.
fn reserved_fds(limit: u64) -> u64 {
    (limit / 8).max(256)
}

/// Raises the soft limit on open files to the hard limit; returns the
/// limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if rl.rlim_cur < rl.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(rl.rlim_cur)
}

/// The connection cap in force: the configured one, or less to fit
/// `fd_limit`.
pub fn effective_max_connections(configured: usize, fd_limit: u64) -> usize {
    let room = fd_limit.saturating_sub(reserved_fds(fd_limit)).max(1);
    configured.clamp(1, usize::try_from(room).unwrap_or(usize::MAX))
}

/// What the watcher of one connection needs to know, updated by its I/O
/// and its requests. Times are milliseconds since `start`.
struct ConnState {
    start: Instant,
    last_io_ms: AtomicU64,
    /// When the current request's header began to arrive (NONE: not yet).
    header_from_ms: AtomicU64,
    /// When the last request finished (its response written).
    idle_from_ms: AtomicU64,
    in_flight: AtomicBool,
    /// The response's head is out; its body is being written.
    responding: AtomicBool,
    /// Why a request body was cut off; the answer becomes 408 saying so.
    body_error: Mutex<Option<String>>,
    /// Asked to close (the cap needs its slot, or shutdown).
    evict: AtomicBool,
    wake: Notify,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            // A new connection's first header is due from its start.
            header_from_ms: AtomicU64::new(0),
            idle_from_ms: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            responding: AtomicBool::new(false),
            body_error: Mutex::new(None),
            evict: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn read_some(&self) {
        let now = self.now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if !self.in_flight.load(Ordering::Acquire)
            && self
                .header_from_ms
                .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            // The header timeout is due sooner than the idle one.
            self.wake.notify_one();
        }
    }

    fn wrote_some(&self) {
        self.last_io_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.store(true, Ordering::Release);
        self.responding.store(false, Ordering::Release);
        self.header_from_ms.store(NONE, Ordering::Release);
    }

    fn request_finished(&self) {
        self.idle_from_ms.store(self.now_ms(), Ordering::Release);
        self.responding.store(false, Ordering::Release);
        self.in_flight.store(false, Ordering::Release);
        // The idle timeout starts now, maybe sooner than the watcher's
        // current deadline; an eviction waiting for this goes ahead.
        self.wake.notify_one();
    }

    fn idle(&self) -> bool {
        !self.in_flight.load(Ordering::Acquire)
    }

    /// How long it has been idle, for choosing whom to evict.
    fn idle_for_ms(&self) -> Option<u64> {
        if !self.idle() {
            return None;
        }
        Some(
            self.now_ms()
                .saturating_sub(self.idle_from_ms.load(Ordering::Acquire)),
        )
    }

    /// When the connection must next be looked at, and whether it is
    /// already past its time.
    fn deadline(&self, limits: &ConnLimits) -> (Instant, bool) {
        let now = self.now_ms();
        let ms = |d: Duration| d.as_millis() as u64;
        let due = if self.in_flight.load(Ordering::Acquire) {
            if self.responding.load(Ordering::Acquire) {
                // A response nobody reads.
                Some(self.last_io_ms.load(Ordering::Relaxed) + ms(limits.idle_timeout))
            } else {
                // The handler works (queries have their own timeout).
                None
            }
        } else {
            match self.header_from_ms.load(Ordering::Acquire) {
                NONE => Some(self.idle_from_ms.load(Ordering::Acquire) + ms(limits.idle_timeout)),
                from => Some(from + ms(limits.header_timeout)),
            }
        };
        match due {
            Some(due) => (self.at(due), now >= due),
            // Looked at again later: the state may have changed by then.
            None => (self.at(now + ms(limits.idle_timeout)), false),
        }
    }
}

/// The socket, noting every byte read or written.
struct Watched {
    io: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.read_some();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.wrote_some();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.wrote_some();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why a request body was cut off.
#[derive(Debug)]
struct BodyTooSlow(String);

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyTooSlow {}

/// A request body that fails once it pauses longer than `body_timeout`
/// or falls below `body_min_rate` after its first `body_timeout`. The
/// clock starts when the handler first reads it: time spent before (the
/// token check, waiting for room) is not the client's.
struct TimedBody {
    inner: Incoming,
    state: Arc<ConnState>,
    timeout: Duration,
    min_rate: u64,
    start: Instant,
    last: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    /// Not read yet.
    first: bool,
}

impl TimedBody {
    fn new(inner: Incoming, state: Arc<ConnState>, limits: &ConnLimits) -> TimedBody {
        let now = Instant::now();
        TimedBody {
            inner,
            state,
            timeout: limits.body_timeout,
            min_rate: limits.body_min_rate,
            start: now,
            last: now,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(now + limits.body_timeout)),
            first: true,
        }
    }

    /// The time by which more data must have come.
    fn due(&self) -> Instant {
        let pause = self.last + self.timeout;
        if self.min_rate == 0 {
            return pause;
        }
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        pause.min(self.start + self.timeout + earned)
    }

    fn too_slow(&self) -> BodyTooSlow {
        let now = Instant::now();
        BodyTooSlow(if now >= self.last + self.timeout {
            format!(
                "the request body stopped for {} after {} bytes (--body-timeout)",
                humantime(self.timeout),
                self.received
            )
        } else {
            format!(
                "the request body came too slowly: {} bytes in {:.1} s, under {} bytes/s \
                 (--body-min-rate)",
                self.received,
                (now - self.start).as_secs_f64(),
                self.min_rate
            )
        })
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.first {
            this.first = false;
            this.start = Instant::now();
            this.last = this.start;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last = Instant::now();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let due = this.due();
                if Instant::now() < due {
                    this.timer.as_mut().reset(due);
                    // Registers the wake-up at `due`.
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                let e = this.too_slow();
                if let Ok(mut slot) = this.state.body_error.lock() {
                    *slot = Some(e.0.clone());
                }
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request from its start until hyper lets go of its response (or of
/// the request, when the connection ends first).
struct InFlight {
    state: Arc<ConnState>,
    activity: Arc<Activity>,
}

impl InFlight {
    fn start(state: &Arc<ConnState>, activity: &Arc<Activity>) -> InFlight {
        state.request_started();
        activity.begin();
        InFlight {
            state: Arc::clone(state),
            activity: Arc::clone(activity),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.request_finished();
        self.activity.end();
    }
}

/// A response body that keeps its request in flight until hyper has
/// written it and let it go.
struct TrackedBody {
    inner: Body,
    _request: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The router as one connection's hyper service.
#[derive(Clone)]
struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    limits: Arc<ConnLimits>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let request = InFlight::start(&self.state, &self.activity);
        let state = Arc::clone(&self.state);
        let req = req.map(|b| Body::new(TimedBody::new(b, Arc::clone(&state), &self.limits)));
        let mut router = self.router.clone();
        Box::pin(async move {
            let mut response = match tower_service::Service::call(&mut router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let cut = state.body_error.lock().ok().and_then(|mut e| e.take());
            if let Some(message) = cut {
                // The handler saw a body error; say what happened, and
                // drop the connection with its unread rest.
                response = ApiError {
                    status: StatusCode::REQUEST_TIMEOUT,
                    message: format!("{message}; the request was dropped"),
                }
                .into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            state.responding.store(true, Ordering::Release);
            Ok(response.map(|inner| TrackedBody {
                inner,
                _request: request,
            }))
        })
    }
}

/// Open connections, for eviction at the cap and for shutdown.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next: AtomicU64,
}

impl Registry {
    fn add(&self, state: Arc<ConnState>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id, state);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&id);
        }
    }

    /// Asks the connection idle longest to close; false when none is idle.
    fn evict_idlest(&self) -> bool {
        let Ok(m) = self.conns.lock() else {
            return false;
        };
        let idlest = m
            .values()
            .filter(|c| !c.evict.load(Ordering::Acquire))
            .filter_map(|c| c.idle_for_ms().map(|ms| (ms, c)))
            .max_by_key(|(ms, _)| *ms)
            .map(|(_, c)| Arc::clone(c));
        drop(m);
        match idlest {
            Some(c) => {
                c.evict.store(true, Ordering::Release);
                c.wake.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        if let Ok(m) = self.conns.lock() {
            for c in m.values() {
                c.evict.store(true, Ordering::Release);
                c.wake.notify_one();
            }
        }
    }

    fn len(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (up to `drain`) and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    activity: Arc<Activity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let fd_limit = raise_fd_limit().unwrap_or(1024);
    let cap = effective_max_connections(limits.max_connections, fd_limit);
    if cap < limits.max_connections {
        tracing::warn!(
            cap,
            fd_limit,
            "serving at most {cap} connections, not {} (--max-connections): the \
             open-file limit is {fd_limit}",
            limits.max_connections
        );
    }
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    // The watcher below enforces the header timeout (hyper's would also
    // close keep-alive connections after it, with no idle timeout of
    // their own).
    http.header_read_timeout(None).keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or a connection reset before it
                // was taken): the kernel keeps the rest queued.
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    tracing::error!(error = %e, "cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => loop {
                registry.evict_idlest();
                tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => match p {
                        Ok(p) => break p,
                        Err(_) => return Ok(()),
                    },
                    // Evicted connections may have turned busy meanwhile.
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = &mut shutdown => {
                        registry.close_all();
                        return Ok(());
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::new());
        let id = registry.add(Arc::clone(&state));
        let service = ConnService {
            router: router.clone(),
            state: Arc::clone(&state),
            limits: Arc::clone(&limits),
            activity: Arc::clone(&activity),
        };
        let http = Arc::clone(&http);
        let registry = Arc::clone(&registry);
        let limits = Arc::clone(&limits);
        tokio::spawn(async move {
            let io = TokioIo::new(Watched {
                io: stream,
                state: Arc::clone(&state),
            });
            let conn = http.serve_connection(io, service);
            watch(conn, &state, &limits).await;
            registry.remove(id);
            drop(permit);
        });
    }
    // Idle connections close now; the others once their request is done.
    registry.close_all();
    let until = Instant::now() + Duration::from_secs(10);
    while registry.len() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Drives one connection until it ends or breaks a limit.
async fn watch(
    conn: hyper::server::conn::http1::Connection<TokioIo<Watched>, ConnService>,
    state: &ConnState,
    limits: &ConnLimits,
) {
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let (due, past) = state.deadline(limits);
        if past {
            return;
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(due) => {}
            // A header began, a request ended, or the slot is wanted.
            _ = state.wake.notified() => {
                if state.evict.load(Ordering::Acquire) && !closing {
                    if state.idle() {
                        return;
                    }
                    // Finishes the request in flight, then closes.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
