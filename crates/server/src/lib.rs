//! perfpilot's HTTP server.
//!
//! Routes (documented in `docs/API.md`):
//! - ingest: perfpilot agents (`/api/v1/ingest`), plain pprof uploads
//!   (`/api/v1/pprof`), Pyroscope SDKs (`/ingest`,
//!   `/push.v1.PusherService/Push`);
//! - queries: `/api/v1/*` (JSON, pprof, folded, SVG);
//! - the autopilot: `/api/v1/alertmanager`, `/api/v1/audit` and
//!   `/api/v1/actions` (approvals, pause), with its engine's thread;
//! - Grafana's Pyroscope data source: `/querier.v1.QuerierService/*` and
//!   `/pyroscope/render`;
//! - the web UI (`ui.rs`, embedded from `ui/dist` by build.rs) for every
//!   other GET, behind the same token.
//!
//! Store calls block (the WAL syncs before an ingest is acknowledged), so
//! they run on tokio's blocking pool; queries take one of a bounded number
//! of slots and have a deadline (`querying.rs`). Connections are accepted
//! and watched by `conn.rs`: a cap, header, idle and body timeouts.

mod alerts;
mod auth;
mod autopilot;
mod bodies;
mod conn;
mod error;
mod grafana;
mod ingest;
mod memory;
mod native;
mod profiles;
mod querying;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use perfpilot_store::Store;

pub use alerts::AlertsHandle;
pub use autopilot::{mode_name, sources, Autopilot, AutopilotHandle, Engine, EngineError, Sources};
pub use conn::{effective_max_connections, raise_fd_limit, ConnLimits};
pub use error::ApiError;
pub use memory::trim as return_free_memory;
pub use perfpilot_autopilot::executor::Mode as AutopilotMode;
pub use perfpilot_autopilot::inbox::WebhookLimits;
pub use perfpilot_wire::Limits;
pub use profiles::StoreProfiles;
pub use querying::{QueryLimits, DEFAULT_MAX_NODES};

/// Whether the web UI was built into this binary (else `/` explains how).
pub fn ui_embedded() -> bool {
    ui::embedded()
}

/// Response types of the query API, for clients (the CLI) to read back.
pub mod api {
    pub use crate::alerts::{AlertsResponse, BaselineView, BaselinesResponse, ReceivedAlert};
    pub use crate::autopilot::{
        ActionView, ActionsResponse, AuditResponse, ImpactView, PauseResponse, PoliciesResponse,
        PolicyView, WebhookResponse,
    };
    pub use crate::native::{
        DiffResponse, FlamegraphResponse, LeaksResponse, NamesResponse, ProfileTypesResponse,
        SandwichResponse, SeriesResponse, TimeseriesResponse, TopResponse, ValuesResponse,
    };
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Required as a bearer token (or basic-auth password) on every
    /// ingest and query when set.
    pub token: Option<String>,
    /// What one ingest request may hold (decoded, decompressed, labels,
    /// frames, names, timestamps); docs/LIMITS.md lists them with their
    /// flags.
    pub limits: perfpilot_wire::Limits,
    /// Largest request body accepted before decompression
    /// (`--max-body-mib`).
    pub max_body_bytes: usize,
    /// Request bodies all requests together may hold while they are read
    /// and handled (`--max-inflight-body-mib`); a request that would go
    /// past it waits briefly, then gets 503 with `Retry-After`.
    pub max_inflight_body_bytes: usize,
    /// Memory all ingest requests being decoded may hold at once:
    /// decompressed bytes and decoded batches (`--max-ingest-memory-mib`);
    /// past it a request gets 503 with `Retry-After`.
    pub max_ingest_memory_bytes: usize,
    /// What one Alertmanager webhook post may hold.
    pub webhook: perfpilot_autopilot::inbox::WebhookLimits,
    /// The baseline engine whose alerts the API lists, when one runs.
    pub alerts: Option<AlertsHandle>,
    /// `alerts` learns nothing: it holds only the autopilot's own alerts
    /// (no `--baseline-config`), so `/api/v1/baselines` is off and
    /// `/api/v1/alerts` says so.
    pub alerts_only: bool,
    /// The autopilot's inbox and audit log (`AutopilotHandle::open` on
    /// the `--autopilot-dir`); its endpoints answer 404 without it.
    pub autopilot: Option<AutopilotHandle>,
    /// What one query may cost.
    pub query: QueryLimits,
    /// Connections: their number and timeouts.
    pub conn: ConnLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4040)),
            token: None,
            limits: perfpilot_wire::Limits::default(),
            max_body_bytes: 64 << 20,
            max_inflight_body_bytes: 256 << 20,
            max_ingest_memory_bytes: 256 << 20,
            webhook: Default::default(),
            alerts: None,
            alerts_only: false,
            autopilot: None,
            query: QueryLimits::default(),
            conn: ConnLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Checks that the limits fit together: a request alone within the
    /// per-request limits must fit the server-wide ones, or it could never
    /// be served. The error names the flags.
    pub fn check_limits(&self) -> Result<(), String> {
        let mib = |b: usize| b >> 20;
        if self.max_inflight_body_bytes < self.max_body_bytes {
            return Err(format!(
                "--max-inflight-body-mib ({}) must be at least --max-body-mib ({})",
                mib(self.max_inflight_body_bytes),
                mib(self.max_body_bytes)
            ));
        }
        let one = self.limits.max_decompressed_bytes + self.limits.max_decoded_bytes;
        if self.max_ingest_memory_bytes < one {
            return Err(format!(
                "--max-ingest-memory-mib ({}) must be at least --max-decompressed-mib plus \
                 --max-decoded-mib ({} + {})",
                mib(self.max_ingest_memory_bytes),
                mib(self.limits.max_decompressed_bytes),
                mib(self.limits.max_decoded_bytes)
            ));
        }
        Ok(())
    }
}

pub struct App {
    pub config: ServerConfig,
    pub store: Arc<dyn Store>,
    pub(crate) queries: querying::QuerySlots,
    /// The allowance `max_inflight_body_bytes` (see `bodies.rs`).
    pub(crate) bodies: bodies::BodyBudget,
    /// The pool `max_ingest_memory_bytes`, charged by the decoders.
    pub(crate) memory: perfpilot_wire::MemoryPool,
}

impl App {
    pub fn new(config: ServerConfig, store: Arc<dyn Store>) -> App {
        App {
            queries: querying::QuerySlots::new(&config.query),
            bodies: bodies::BodyBudget::new(config.max_inflight_body_bytes),
            memory: perfpilot_wire::MemoryPool::new(config.max_ingest_memory_bytes),
            config,
            store,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs a blocking store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a request handler failed: {e}")))?
}

pub fn router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .route("/api/v1/ingest", post(ingest::agent))
        .route("/api/v1/pprof", post(ingest::pprof_upload))
        .route("/ingest", post(ingest::legacy))
        .route("/push.v1.PusherService/Push", post(ingest::push))
        .route("/api/v1/profile_types", get(native::profile_types))
        .route("/api/v1/labels", get(native::label_names))
        .route("/api/v1/label_values", get(native::label_values))
        .route("/api/v1/series", get(native::series))
        .route("/api/v1/flamegraph", get(native::flamegraph))
        .route("/api/v1/top", get(native::top))
        .route("/api/v1/leaks", get(native::leaks))
        .route("/api/v1/sandwich", get(native::sandwich))
        .route("/api/v1/diff", get(native::diff))
        .route("/api/v1/timeseries", get(native::timeseries))
        .route("/api/v1/export", get(native::export))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}/ack", post(alerts::ack))
        .route("/api/v1/baselines", get(alerts::baselines))
        .route("/api/v1/alertmanager", post(autopilot::alertmanager))
        .route("/api/v1/audit", get(autopilot::audit))
        .route("/api/v1/actions", get(autopilot::actions))
        .route("/api/v1/actions/pause", post(autopilot::pause))
        .route("/api/v1/actions/resume", post(autopilot::resume))
        .route("/api/v1/actions/{id}/approve", post(autopilot::approve))
        .route("/api/v1/actions/{id}/reject", post(autopilot::reject))
        .route("/api/v1/policies", get(autopilot::policies))
        .route(
            "/api/v1/policies/{name}/rollback",
            post(autopilot::rollback_policy),
        )
        .route(
            "/querier.v1.QuerierService/{method}",
            post(grafana::querier),
        )
        .route("/pyroscope/render", get(grafana::render))
        // Before the auth layer, so the UI needs the token too.
        .fallback(ui::serve)
        // Inside the auth layer: a request without the token is refused
        // before its body takes any of the allowance.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            bodies::read_within_budget,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .layer(DefaultBodyLimit::max(app.config.max_body_bytes))
        .with_state(app)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    serve_on(listener, config, store, shutdown).await
}

/// Serves on a listener already bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let conn_limits = config.conn.clone();
    let app = Arc::new(App::new(config, store));
    memory::tune();
    let activity = memory::Activity::new();
    let trimmer = memory::spawn_trimmer(Arc::clone(&activity));
    let served = conn::serve(listener, router(app), conn_limits, activity, shutdown).await;
    trimmer.abort();
    served
}
