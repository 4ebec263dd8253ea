//! perfpilot's wire formats: what Pyroscope SDKs send and what Grafana's
//! Pyroscope data source asks for, decoded into the store's types and
//! encoded from them. Pure functions: no sockets, no clock (callers pass
//! `now_ms`), no global state.
//!
//! Ingest (bytes → [`perfpilot_model::series::Batch`]):
//! * [`batch_from_push`]: `POST /push.v1.PusherService/Push` ([`push`]).
//! * [`batch_from_legacy`] with [`LegacyIngestParams`]: `POST /ingest`
//!   ([`legacy`], [`multipart`]).
//! * [`batch_from_pprof`]: one pprof, for perfpilot's own agent ([`mod@pprof`]).
//!
//! Query (requests → typed structs, store results → response bytes):
//! * `querier.v1.QuerierService` over Connect ([`query`], [`connect`],
//!   [`flamegraph`]).
//! * `GET /pyroscope/render` ([`render`]).
//!
//! Every decoder enforces [`Limits`] and reports a [`WireError`] that says
//! what was wrong and where. How profile type ids are formed is in
//! [`profile_type`].

mod batch;
pub mod connect;
pub mod error;
pub mod flamegraph;
pub mod legacy;
pub mod limits;
pub mod multipart;
pub mod pprof;
pub mod profile_type;
pub mod push;
pub mod query;
mod rawpprof;
pub mod render;

pub use connect::{connect_error_json, error_body, Codec};
pub use error::WireError;
pub use flamegraph::{flame_graph, FlameGraph, DEFAULT_MAX_NODES};
pub use legacy::{batch_from_legacy, parse_time, LegacyFormat, LegacyIngestParams};
pub use limits::{decompress_zstd, Limits, MemoryPool, MemoryTicket};
pub use pprof::batch_from_pprof;
pub use profile_type::{SampleTypeConfig, SampleTypeConfigs};
pub use push::{batch_from_push, LabelPair, PushRequest, RawProfileSeries, RawSample};
pub use query::{
    encode_names, encode_profile_types, encode_select_merge_stacktraces, encode_select_series,
    encode_series, Aggregation, LabelsRequest, ProfileFormat, ProfileTypesRequest,
    SelectMergeStacktracesRequest, SelectSeriesRequest, SeriesRequest,
};
pub use render::{encode_render_json, RenderParams};
