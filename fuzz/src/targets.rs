//! One module per target, each a `run(data)` that libFuzzer calls with
//! every input; [`ALL`] names them.

pub mod condition;
pub mod connect;
pub mod folded;
pub mod legacy_ingest;
pub mod multipart;
pub mod policy;
pub mod pprof_decode;
pub mod pprof_ingest;
pub mod push;
pub mod python_runtime;
pub mod render;
pub mod request_logs;
pub mod selector;
pub mod series_csv;
pub mod speedscope;
pub mod store_recovery;
pub mod watch_config;
pub mod webhook;

/// A target: its name (the name of its module, its seeds' and corpus'
/// directories) and what runs an input.
pub type Target = (&'static str, fn(&[u8]));

pub const ALL: &[Target] = &[
    ("condition", condition::run),
    ("connect", connect::run),
    ("folded", folded::run),
    ("legacy_ingest", legacy_ingest::run),
    ("multipart", multipart::run),
    ("policy", policy::run),
    ("pprof_decode", pprof_decode::run),
    ("pprof_ingest", pprof_ingest::run),
    ("push", push::run),
    ("python_runtime", python_runtime::run),
    ("render", render::run),
    ("request_logs", request_logs::run),
    ("selector", selector::run),
    ("series_csv", series_csv::run),
    ("speedscope", speedscope::run),
    ("store_recovery", store_recovery::run),
    ("watch_config", watch_config::run),
    ("webhook", webhook::run),
];

/// The target called `name`.
pub fn by_name(name: &str) -> Option<fn(&[u8])> {
    ALL.iter().find(|(n, _)| *n == name).map(|&(_, run)| run)
}
