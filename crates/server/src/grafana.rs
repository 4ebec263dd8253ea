//! The part of Pyroscope's query API that Grafana's Pyroscope data source
//! calls: `querier.v1.QuerierService` over Connect (JSON or protobuf) and
//! the older `GET /pyroscope/render`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use perfpilot_store::{Labels, Selector, TimeRange};
use perfpilot_wire::query::{
    LabelsRequest, ProfileTypesRequest, SelectMergeStacktracesRequest, SelectSeriesRequest,
    SeriesRequest,
};
use perfpilot_wire::{Codec, WireError};

use crate::error::ApiError;
use crate::ingest::connect_error;
use crate::querying::{check_label_name, check_steps, grafana_max_nodes};
use crate::{now_ms, App};

fn bad(e: WireError) -> Response {
    connect_error(StatusCode::BAD_REQUEST, e.connect_code(), &e.to_string())
}

fn failed(e: ApiError) -> Response {
    let code = if e.status.is_client_error() {
        "invalid_argument"
    } else if e.status == StatusCode::SERVICE_UNAVAILABLE {
        "unavailable"
    } else {
        "internal"
    };
    connect_error(e.status, code, &e.message)
}

/// Union over several selectors (a series counts if any matches).
fn any_of<T: Ord>(
    selectors: &[Selector],
    mut each: impl FnMut(&Selector) -> Result<Vec<T>, perfpilot_store::StoreError>,
) -> Result<Vec<T>, ApiError> {
    if selectors.is_empty() {
        return Ok(each(&Selector::all())?);
    }
    let mut out = BTreeSet::new();
    for s in selectors {
        out.extend(each(s)?);
    }
    Ok(out.into_iter().collect())
}

pub async fn querier(
    State(app): State<Arc<App>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/proto");
    let codec = match Codec::from_content_type(content_type) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limits = app.config.limits.clone();
    let query = app.config.query.clone();
    let store = Arc::clone(&app.store);
    let result = app
        .queries
        .run_with(move || -> Result<Vec<u8>, Failure> {
            let enc = encoding.as_deref();
            match method.as_str() {
                "ProfileTypes" => {
                    let r = ProfileTypesRequest::decode(codec, enc, &body, &limits)?;
                    let ids = store.profile_types(r.range).map_err(ApiError::from)?;
                    Ok(perfpilot_wire::query::encode_profile_types(codec, &ids))
                }
                "LabelNames" | "LabelValues" => {
                    let r = if method == "LabelNames" {
                        LabelsRequest::decode_label_names(codec, enc, &body, &limits)?
                    } else {
                        LabelsRequest::decode_label_values(codec, enc, &body, &limits)?
                    };
                    let sels = r.selectors()?;
                    let names = if r.name.is_empty() {
                        any_of(&sels, |s| store.label_names(s, r.range))?
                    } else {
                        any_of(&sels, |s| store.label_values(&r.name, s, r.range))?
                    };
                    Ok(perfpilot_wire::query::encode_names(codec, &names))
                }
                "Series" => {
                    let r = SeriesRequest::decode(codec, enc, &body, &limits)?;
                    let sels = r.selectors()?;
                    let mut all: Vec<Labels> = any_of(&sels, |s| store.series(s, r.range))?;
                    if !r.label_names.is_empty() {
                        for l in &mut all {
                            l.retain(|(k, _)| r.label_names.contains(k));
                        }
                        all.sort();
                        all.dedup();
                    }
                    Ok(perfpilot_wire::query::encode_series(codec, &all))
                }
                "SelectSeries" => {
                    let r = SelectSeriesRequest::decode(codec, enc, &body, &limits)?;
                    let sel = r.selector()?;
                    let function = r.call_site.last().map(String::as_str);
                    let step_ms = r.step_ms().max(1000);
                    check_steps(
                        r.range.end_ms.saturating_sub(r.range.start_ms),
                        step_ms,
                        &query.series,
                    )?;
                    for name in &r.group_by {
                        check_label_name("groupBy", name)?;
                    }
                    let pts = store
                        .time_series(&sel, r.range, step_ms, &r.group_by, function, &query.series)
                        .map_err(ApiError::from)?;
                    Ok(perfpilot_wire::query::encode_select_series(codec, &pts))
                }
                "SelectMergeStacktraces" => {
                    let r = SelectMergeStacktracesRequest::decode(codec, enc, &body, &limits)?;
                    let sel = r.selector()?;
                    let max_nodes = grafana_max_nodes(r.max_nodes, query.max_flame_nodes)?;
                    let table = store.merge(&sel, r.range).map_err(ApiError::from)?;
                    Ok(perfpilot_wire::query::encode_select_merge_stacktraces(
                        codec,
                        &table,
                        Some(max_nodes as i64),
                    ))
                }
                other => Err(Failure::Api(ApiError {
                    status: StatusCode::NOT_FOUND,
                    message: format!("querier.v1.QuerierService/{other} is not implemented"),
                })),
            }
        })
        .await;
    match result {
        Ok(bytes) => ([(header::CONTENT_TYPE, codec.content_type())], bytes).into_response(),
        Err(Failure::Wire(e)) => bad(e),
        Err(Failure::Api(e)) => failed(e),
    }
}

enum Failure {
    Wire(WireError),
    Api(ApiError),
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        Failure::Wire(e)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

pub async fn render(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let mut params =
        perfpilot_wire::render::RenderParams::parse(q.as_deref().unwrap_or(""), now_ms())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let query = app.config.query.clone();
    params.max_nodes = Some(grafana_max_nodes(params.max_nodes, query.max_flame_nodes)? as i64);
    let range = TimeRange {
        start_ms: params.from_ms,
        end_ms: params.until_ms,
    };
    let step_ms = params.step_seconds().saturating_mul(1000);
    check_steps(
        range.end_ms.saturating_sub(range.start_ms),
        step_ms,
        &query.series,
    )?;
    let store = Arc::clone(&app.store);
    app.queries
        .run(move || {
            let table = store.merge(&params.selector, range)?;
            let timeline =
                store.time_series(&params.selector, range, step_ms, &[], None, &query.series)?;
            let body =
                perfpilot_wire::render::encode_render_json(&params, &table, timeline.first());
            Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
        })
        .await
}
