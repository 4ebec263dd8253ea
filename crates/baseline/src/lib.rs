//! perfpilot's baseline engine: what normal looks like for a service, and
//! when it stops looking like that.
//!
//! - [`logs`]: request logs (JSON lines, nginx/Apache combined format) into
//!   events.
//! - [`window`]: events into feature windows per service and endpoint
//!   (rate, latency quantiles from a mergeable sketch, error rate), with
//!   bounded lateness.
//! - [`sketch`]: a mergeable quantile sketch with bounded relative error.
//! - [`drift`]: divergence between two latency distributions.
//! - [`baseline`]: the expected band of a feature, learned from its
//!   history (rolling quantiles around an EWMA level, daily and weekly
//!   profiles, warm-up), and not from the windows found anomalous.
//! - [`detectors`]: service detectors over feature windows (band breach,
//!   change point, leak, error burst, surprise), each emitting findings
//!   with evidence.
//! - [`surprise`]: how unusual a value is against the feature's own
//!   history (new extremes, rare deviations, novel shapes): what judges a
//!   gauge, and what `perfpilot baseline nab` scores through the engine.
//! - [`incidents`]: findings grouped into one incident per problem of a
//!   service (evidence, severity, firing → resolved after a quiet time,
//!   acknowledged).
//! - [`alerts`]: incidents sent to Alertmanager and webhooks.
//! - [`engine`]: the streaming engine: windows and metric samples in,
//!   alerts out, baselines saved as versions and reloaded while running.
//! - [`feature`]: feature names typed: scope (service or endpoint) and
//!   metric.
//! - [`fit`]: whether loaded baselines fit the input; relearned, and
//!   said so, when they do not.
//! - [`feed`]: the engine seen from outside its owner: alert changes on
//!   a bounded channel, a read-only snapshot, commands.
//! - [`watch`]: the watch loop and its TOML config: logs and Prometheus
//!   in, alerts out, as a service owning its engine
//!   (`perfpilot baseline watch`, and inside the server).
//! - [`replay`]: finished inputs read to their end in event time: logs
//!   merged by timestamp, `--series` CSVs, the engine run over them.
//! - [`series`]: `timestamp,value` CSVs as features (`--series`).
//! - [`profiles`]: perfpilot's own profile store as a source (CPU cores
//!   and function shares per service).
//! - [`prom`]: Prometheus `query` and `query_range`, retried.
//!
//! The offline tools (the release gate, alert quality, calibration, NAB
//! scoring) are in `perfpilot-baseline-lab`: only the CLI links them, the
//! server does not.

pub mod alerts;
pub mod baseline;
pub mod detectors;
pub mod drift;
pub mod engine;
pub mod error;
pub mod feature;
pub mod feed;
pub mod fit;
pub mod incidents;
pub mod logs;
pub mod profiles;
pub mod prom;
pub mod replay;
pub mod series;
pub mod sketch;
pub mod surprise;
pub mod watch;
pub mod window;

pub use error::BaselineError;
