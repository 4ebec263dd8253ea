//! perfpilot's own query API (`/api/v1/*`, documented in docs/API.md).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use perfpilot_query::{DiffOptions, TopRow};
use perfpilot_store::{
    MatchOp, Matcher, ProfileType, Selector, StackTable, Store, TimeRange, PROFILE_TYPE_LABEL,
};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::querying::{check_label_name, check_steps, native_max_nodes};
use crate::{now_ms, App};

/// Query string of every query endpoint; each uses what it needs.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Label selector, e.g. `{service_name="checkout"}`, optionally
    /// preceded by a profile type id.
    pub query: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    /// Parsed by the handler, so a bad value gets a JSON error naming it.
    pub max_nodes: Option<String>,
    pub format: Option<String>,
    pub limit: Option<usize>,
    pub step: Option<String>,
    pub group_by: Option<String>,
    pub function: Option<String>,
    pub name: Option<String>,
    pub base_query: Option<String>,
    pub base_from: Option<String>,
    pub base_until: Option<String>,
}

pub fn range(from: Option<&str>, until: Option<&str>) -> ApiResult<TimeRange> {
    Ok(perfpilot_query::parse_range(
        from.unwrap_or("now-1h"),
        until.unwrap_or("now"),
        now_ms(),
    )?)
}

/// A selector that names exactly one profile type: the one it gives, or
/// the one among the series it matches. Merging CPU time with allocated
/// bytes would mean nothing: several profile names (CPU and memory) are an
/// error listing them; several sample types of one profile (CPU time and
/// CPU samples, which the same pprof carries) resolve to the most telling
/// one: time over counts, space over objects.
fn preferred(types: &[String]) -> Option<&String> {
    let name = |t: &String| t.split(':').next().unwrap_or("").to_string();
    if types.iter().any(|t| name(t) != name(&types[0])) {
        return None;
    }
    const ORDER: [&str; 7] = [
        "cpu",
        "wall",
        "samples",
        "alloc_space",
        "inuse_space",
        "alloc_objects",
        "delay",
    ];
    let rank = |t: &&String| {
        let sample = t.split(':').nth(1).unwrap_or("");
        ORDER
            .iter()
            .position(|o| *o == sample)
            .unwrap_or(ORDER.len())
    };
    types.iter().min_by_key(|t| (rank(t), (*t).clone()))
}

/// The selector narrowed to one profile type (see [`preferred`]).
fn resolve_type(
    store: &dyn Store,
    mut sel: Selector,
    r: TimeRange,
) -> ApiResult<(Selector, Option<ProfileType>)> {
    if let Some(t) = sel.profile_type() {
        let pt = ProfileType::parse(t);
        return Ok((sel, pt));
    }
    let mut types: Vec<String> = store
        .series(&sel, r)?
        .into_iter()
        .filter_map(|l| {
            l.into_iter()
                .find(|(k, _)| k == PROFILE_TYPE_LABEL)
                .map(|(_, v)| v)
        })
        .collect();
    types.sort();
    types.dedup();
    let chosen = if types.len() == 1 {
        types.first()
    } else {
        preferred(&types)
    };
    match chosen {
        None if types.is_empty() => Ok((sel, None)),
        Some(t) => {
            let t = t.clone();
            sel.matchers
                .push(Matcher::new(PROFILE_TYPE_LABEL, MatchOp::Eq, &t)?);
            Ok((sel, ProfileType::parse(&t)))
        }
        None => Err(ApiError::bad_request(format!(
            "the selector matches several profile types; name one (e.g. '{}{{...}}'): {}",
            types[0],
            types.join(", ")
        ))),
    }
}

#[derive(Serialize, Deserialize)]
pub struct ProfileTypesResponse {
    pub profile_types: Vec<String>,
}

pub async fn profile_types(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<ProfileTypesResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let store = Arc::clone(&app.store);
    let types = app.queries.run(move || Ok(store.profile_types(r)?)).await?;
    Ok(Json(ProfileTypesResponse {
        profile_types: types,
    }))
}

#[derive(Serialize, Deserialize)]
pub struct NamesResponse {
    pub names: Vec<String>,
}

pub async fn label_names(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<NamesResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let store = Arc::clone(&app.store);
    let names = app
        .queries
        .run(move || Ok(store.label_names(&sel, r)?))
        .await?;
    Ok(Json(NamesResponse { names }))
}

#[derive(Serialize, Deserialize)]
pub struct ValuesResponse {
    pub values: Vec<String>,
}

pub async fn label_values(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<ValuesResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let name = p
        .name
        .clone()
        .ok_or_else(|| ApiError::bad_request("the 'name' parameter (a label name) is required"))?;
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let store = Arc::clone(&app.store);
    let values = app
        .queries
        .run(move || Ok(store.label_values(&name, &sel, r)?))
        .await?;
    Ok(Json(ValuesResponse { values }))
}

#[derive(Serialize, Deserialize)]
pub struct SeriesResponse {
    pub series: Vec<std::collections::BTreeMap<String, String>>,
}

pub async fn series(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<SeriesResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let store = Arc::clone(&app.store);
    let series = app.queries.run(move || Ok(store.series(&sel, r)?)).await?;
    Ok(Json(SeriesResponse {
        series: series
            .into_iter()
            .map(|l| l.into_iter().collect())
            .collect(),
    }))
}

/// Merges the selection (blocking).
fn merged(app: &App, sel: Selector, r: TimeRange) -> ApiResult<(StackTable, Option<ProfileType>)> {
    let (sel, pt) = resolve_type(app.store.as_ref(), sel, r)?;
    Ok((app.store.merge(&sel, r)?, pt))
}

#[derive(Serialize, Deserialize)]
pub struct FlamegraphResponse {
    pub profile_type: Option<String>,
    pub unit: Option<String>,
    pub from: i64,
    pub until: i64,
    pub flamegraph: perfpilot_query::FlatFlame,
}

/// A file format of the flame graph and export endpoints, with its
/// content type; checked before anything is merged.
#[derive(Debug, Clone, Copy)]
struct FileFormat(perfpilot_model::Format, &'static str);

/// `json` (None: the flame graph's own answer) or a file format.
fn file_format(format: &str, json_allowed: bool) -> ApiResult<Option<FileFormat>> {
    use perfpilot_model::Format;
    Ok(Some(match format {
        "json" if json_allowed => return Ok(None),
        "pprof" => FileFormat(Format::Pprof, "application/octet-stream"),
        "folded" => FileFormat(Format::Folded, "text/plain; charset=utf-8"),
        "svg" => FileFormat(Format::Svg, "image/svg+xml"),
        "speedscope" => FileFormat(Format::Speedscope, "application/json"),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}: use {}folded, svg, speedscope or pprof",
                if json_allowed { "json, " } else { "" }
            )))
        }
    }))
}

/// Renders a table in one of the file formats.
fn as_file(
    table: &StackTable,
    pt: Option<&ProfileType>,
    r: TimeRange,
    FileFormat(fmt, content_type): FileFormat,
    title: &str,
) -> ApiResult<Response> {
    let (kind, unit) = pt
        .map(|t| (t.sample_type.as_str(), t.sample_unit.as_str()))
        .unwrap_or(("samples", "count"));
    let period = pt.map(|t| (t.period_type.as_str(), t.period_unit.as_str()));
    let profile =
        perfpilot_query::to_profile(table, (kind, unit), period, 0, (r.start_ms, r.end_ms));
    if table.stacks.is_empty() && fmt == perfpilot_model::Format::Svg {
        return Err(ApiError::bad_request(
            "no samples in the range: nothing to draw",
        ));
    }
    let bytes = fmt
        .encode(&profile, title)
        .map_err(|e| ApiError::internal(format!("encoding {}: {e}", fmt.name())))?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

pub async fn flamegraph(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Response> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let max_nodes = native_max_nodes(p.max_nodes.as_deref(), app.config.query.max_flame_nodes)?;
    let format = file_format(p.format.as_deref().unwrap_or("json"), true)?;
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let title = p.query.clone().unwrap_or_default();
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (table, pt) = merged(&app, sel, r)?;
            if let Some(format) = format {
                return as_file(&table, pt.as_ref(), r, format, &title);
            }
            let tree = perfpilot_query::flame_tree(&table, max_nodes);
            Ok(Json(FlamegraphResponse {
                profile_type: pt.as_ref().map(ProfileType::id),
                unit: pt.as_ref().map(|t| t.sample_unit.clone()),
                from: r.start_ms,
                until: r.end_ms,
                flamegraph: tree.to_flat(),
            })
            .into_response())
        })
        .await
}

#[derive(Serialize, Deserialize)]
pub struct SandwichResponse {
    pub profile_type: Option<String>,
    pub unit: Option<String>,
    pub from: i64,
    pub until: i64,
    pub function: String,
    pub self_value: i64,
    pub total_value: i64,
    /// The whole selection's total, so the function's share can be shown.
    pub total: i64,
    /// Rooted at the function, then its callers outwards.
    pub callers: perfpilot_query::FlatFlame,
    /// Rooted at the function, then what it calls.
    pub callees: perfpilot_query::FlatFlame,
}

pub async fn sandwich(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<SandwichResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let max_nodes = native_max_nodes(p.max_nodes.as_deref(), app.config.query.max_flame_nodes)?;
    let function = p.function.clone().ok_or_else(|| {
        ApiError::bad_request("the 'function' parameter (a function name) is required")
    })?;
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (table, pt) = merged(&app, sel, r)?;
            let s = perfpilot_query::sandwich(&table, &function);
            Ok(Json(SandwichResponse {
                profile_type: pt.as_ref().map(ProfileType::id),
                unit: pt.as_ref().map(|t| t.sample_unit.clone()),
                from: r.start_ms,
                until: r.end_ms,
                self_value: s.self_value,
                total_value: s.total_value,
                total: table.total(),
                callers: perfpilot_query::flame_tree(&s.callers, max_nodes).to_flat(),
                callees: perfpilot_query::flame_tree(&s.callees, max_nodes).to_flat(),
                function,
            }))
        })
        .await
}

pub async fn export(State(app): State<Arc<App>>, Query(p): Query<Params>) -> ApiResult<Response> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let format = file_format(p.format.as_deref().unwrap_or("pprof"), false)?
        .ok_or_else(|| ApiError::internal("export has no JSON format"))?;
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let title = p.query.clone().unwrap_or_default();
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (table, pt) = merged(&app, sel, r)?;
            as_file(&table, pt.as_ref(), r, format, &title)
        })
        .await
}

#[derive(Serialize, Deserialize)]
pub struct TopResponse {
    pub profile_type: Option<String>,
    pub total: i64,
    pub functions: Vec<TopRow>,
}

pub async fn top(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<TopResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let limit = p.limit.unwrap_or(100);
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (table, pt) = merged(&app, sel, r)?;
            let mut functions = perfpilot_query::top_functions(&table);
            functions.truncate(limit);
            Ok(Json(TopResponse {
                profile_type: pt.as_ref().map(ProfileType::id),
                total: table.total(),
                functions,
            }))
        })
        .await
}

#[derive(Serialize, Deserialize)]
pub struct DiffResponse {
    pub profile_type: Option<String>,
    pub diff: perfpilot_query::Diff,
    pub flamegraph: perfpilot_query::FlatDiff,
}

/// How many value units one sample is worth, so the diff's test runs on
/// counts: 1 for counts, the period for CPU time in nanoseconds (100 Hz,
/// what Pyroscope SDKs and perfpilot's 99 Hz agent are close to).
fn sample_weight(pt: Option<&ProfileType>) -> f64 {
    match pt.map(|t| t.sample_unit.as_str()) {
        Some("nanoseconds") => 10_000_000.0,
        _ => 1.0,
    }
}

pub async fn diff(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<DiffResponse>> {
    let target_range = range(p.from.as_deref(), p.until.as_deref())?;
    let base_range = range(
        p.base_from.as_deref().or(p.from.as_deref()),
        p.base_until.as_deref().or(p.until.as_deref()),
    )?;
    let max_nodes = native_max_nodes(p.max_nodes.as_deref(), app.config.query.max_flame_nodes)?;
    let target_sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let base_sel = Selector::parse(
        p.base_query
            .as_deref()
            .or(p.query.as_deref())
            .unwrap_or("{}"),
    )?;
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (target, pt) = merged(&app, target_sel, target_range)?;
            let (base, base_pt) = merged(&app, base_sel, base_range)?;
            if let (Some(a), Some(b)) = (&pt, &base_pt) {
                if a != b {
                    return Err(ApiError::bad_request(format!(
                        "the two selections have different profile types: {} and {}",
                        b.id(),
                        a.id()
                    )));
                }
            }
            let pt = pt.or(base_pt);
            let options = DiffOptions {
                sample_weight: sample_weight(pt.as_ref()),
                ..Default::default()
            };
            let diff = perfpilot_query::diff_with(&base, &target, &options)?;
            let tree = perfpilot_query::diff_tree(&base, &target, max_nodes);
            Ok(Json(DiffResponse {
                profile_type: pt.as_ref().map(ProfileType::id),
                diff,
                flamegraph: tree.to_flat_with(&options),
            }))
        })
        .await
}

#[derive(Serialize, Deserialize)]
pub struct TimeseriesResponse {
    pub profile_type: Option<String>,
    pub step_ms: i64,
    pub series: Vec<perfpilot_query::Series>,
    /// With `function`: the same series for the stacks containing it, so
    /// its share is `function_series / series` per point.
    pub function_series: Option<Vec<perfpilot_query::Series>>,
}

pub async fn timeseries(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<TimeseriesResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let span = r.end_ms.saturating_sub(r.start_ms);
    let step_ms = match p.step.as_deref() {
        Some(s) => perfpilot_query::parse_duration(s)?,
        None => perfpilot_query::default_step(span, 300),
    };
    let limits = app.config.query.series;
    check_steps(span, step_ms, &limits)?;
    let group_by: Vec<String> = p
        .group_by
        .as_deref()
        .map(|g| {
            g.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for name in &group_by {
        check_label_name("group_by", name)?;
    }
    let sel = Selector::parse(p.query.as_deref().unwrap_or("{}"))?;
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (sel, pt) = resolve_type(app.store.as_ref(), sel, r)?;
            let all = app
                .store
                .time_series(&sel, r, step_ms, &group_by, None, &limits)?;
            let function_series = match p.function.as_deref() {
                Some(f) => Some(perfpilot_query::to_series(&app.store.time_series(
                    &sel,
                    r,
                    step_ms,
                    &group_by,
                    Some(f),
                    &limits,
                )?)),
                None => None,
            };
            Ok(Json(TimeseriesResponse {
                profile_type: pt.as_ref().map(ProfileType::id),
                step_ms,
                series: perfpilot_query::to_series(&all),
                function_series,
            }))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::preferred;

    #[test]
    fn one_profile_name_picks_the_telling_sample_type() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cpu = t(&[
            "process_cpu:samples:count:cpu:nanoseconds",
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        ]);
        assert_eq!(
            preferred(&cpu).unwrap(),
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        );
        let mem = t(&[
            "memory:inuse_objects:count:space:bytes",
            "memory:alloc_space:bytes:space:bytes",
        ]);
        assert_eq!(
            preferred(&mem).unwrap(),
            "memory:alloc_space:bytes:space:bytes"
        );
        let mixed = t(&[
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
            "memory:alloc_space:bytes:space:bytes",
        ]);
        assert_eq!(preferred(&mixed), None);
    }
}

#[derive(Serialize, Deserialize)]
pub struct LeaksResponse {
    pub profile_type: Option<String>,
    pub from: i64,
    pub until: i64,
    pub step_ms: i64,
    /// Steps with data: the points each stack's trend is tested on.
    pub snapshots: usize,
    pub leaks: Vec<perfpilot_query::leaks::Leak>,
}

/// Most steps a leak query merges (one merge each).
const MAX_LEAK_STEPS: i64 = 120;

/// Stacks whose in-use bytes grow steadily over the range: the selection
/// (in-use space unless the query names a type) merged per step, each
/// step's value the mean of its snapshots, each stack's series tested
/// for a trend.
pub async fn leaks(
    State(app): State<Arc<App>>,
    Query(p): Query<Params>,
) -> ApiResult<Json<LeaksResponse>> {
    let r = range(p.from.as_deref(), p.until.as_deref())?;
    let mut query = p.query.clone().unwrap_or_else(|| "{}".to_string());
    if query.trim_start().starts_with('{') {
        query = format!("memory:inuse_space:bytes:space:bytes{query}");
    }
    let sel = Selector::parse(&query)?;
    let span = r.end_ms - r.start_ms;
    let step_ms = match p.step.as_deref() {
        Some(s) => perfpilot_query::parse_duration(s)?,
        None => perfpilot_query::default_step(span, 30),
    };
    if step_ms <= 0 || span / step_ms > MAX_LEAK_STEPS {
        return Err(ApiError::bad_request(format!(
            "a leak query merges each step: at most {MAX_LEAK_STEPS} steps, use a larger step"
        )));
    }
    let queries = app.queries.clone();
    queries
        .run(move || {
            let (sel, pt) = resolve_type(app.store.as_ref(), sel, r)?;
            let mut series: std::collections::HashMap<Vec<String>, Vec<(i64, f64)>> =
                std::collections::HashMap::new();
            let mut times: Vec<i64> = Vec::new();
            let mut t = r.start_ms;
            while t < r.end_ms {
                let step = TimeRange {
                    start_ms: t,
                    end_ms: (t + step_ms).min(r.end_ms),
                };
                let table = app.store.merge(&sel, step)?;
                if !table.stacks.is_empty() {
                    let mut now: std::collections::HashMap<Vec<String>, f64> =
                        std::collections::HashMap::new();
                    for (frames, v) in &table.stacks {
                        let names: Vec<String> = frames
                            .iter()
                            .filter_map(|&f| table.functions.get(f as usize).cloned())
                            .collect();
                        *now.entry(names).or_default() += *v as f64;
                    }
                    // A stack absent from a step held nothing then.
                    for (stack, points) in series.iter_mut() {
                        points.push((t, now.remove(stack).unwrap_or(0.0)));
                    }
                    for (stack, v) in now {
                        let mut points: Vec<(i64, f64)> =
                            times.iter().map(|&earlier| (earlier, 0.0)).collect();
                        points.push((t, v));
                        series.insert(stack, points);
                    }
                    times.push(t);
                }
                t += step_ms;
            }
            let series: Vec<perfpilot_query::leaks::StackSeries> = series.into_iter().collect();
            Ok(Json(LeaksResponse {
                profile_type: pt.as_ref().map(ProfileType::id),
                from: r.start_ms,
                until: r.end_ms,
                step_ms,
                snapshots: times.len(),
                leaks: perfpilot_query::leaks::find_leaks(&series, &Default::default()),
            }))
        })
        .await
}
