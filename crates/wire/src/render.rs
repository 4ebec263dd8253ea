//! `GET /pyroscope/render?query=...&from=...&until=...&format=json`, the
//! legacy flame graph endpoint (Pyroscope's `pkg/querier/http.go` `Render`;
//! Grafana's older Pyroscope data source and the Pyroscope UI call it).
//!
//! Parameters: `query` is a Prometheus-style selector whose metric name is
//! the profile type id, `process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="app"}`
//! (Grafana sends `profileTypeID + labelSelector`), or
//! `{__name__="<profile type id>", ...}`; a legacy Pyroscope query,
//! `app.cpu{env="prod"}`, is also read: the suffix picks a profile type
//! (see [`crate::profile_type::legacy_query_profile_type`]) and the rest
//! becomes `service_name="app"`. `from`/`until` take Pyroscope's time syntax
//! ([`crate::parse_time`]: Unix seconds/ms/µs/ns, `now-1h`), default
//! `now-1h`..`now`; `maxNodes` (or `max-nodes`; default
//! [`crate::flamegraph::DEFAULT_MAX_NODES`]), `groupBy` and `format` (only
//! `json`) are optional.
//!
//! Response (`flamebearer.FlamebearerProfile`, `pkg/og/structs/flamebearer`):
//!
//! ```text
//! {"version": 1,
//!  "flamebearer": {"names": [...], "levels": [[x, total, self, name], ...], "numTicks": N, "maxSelf": M},
//!  "metadata": {"format": "single", "spyName": "", "sampleRate": 100, "units": "samples", "name": "cpu"},
//!  "timeline": {"startTime": <s>, "samples": [...], "durationDelta": <s>, "watermarks": null},
//!  "groups": null, "heatmap": null}
//! ```
//!
//! `levels` is the flame graph of [`crate::flamegraph`]; `metadata.units`
//! and `name` follow Pyroscope's `ExportToFlamebearer` (`objects` for
//! `*_objects`/`goroutine`/`samples` sample types, `samples` for `cpu`,
//! otherwise the sample unit; `sampleRate` is always 100). The timeline
//! starts at `from` (seconds), has one sample per `durationDelta` seconds
//! up to `until`, zeros where there is no data; the step comes from
//! [`timeline_step_seconds`], Pyroscope's `CalcPointInterval`.

use perfpilot_model::selector::{MatchOp, Matcher, Selector};
use perfpilot_model::series::{Points, StackTable, PROFILE_TYPE_LABEL};
use serde_json::{json, Value};

use crate::error::{shorten, WireError};
use crate::flamegraph::{flame_graph, DEFAULT_MAX_NODES};
use crate::legacy::{parse_query, parse_time};
use crate::profile_type::legacy_query_profile_type;

/// The parsed parameters of a `/render` request.
#[derive(Debug, Clone)]
pub struct RenderParams {
    pub profile_type_id: String,
    /// All matchers, `__profile_type__` included.
    pub selector: Selector,
    pub from_ms: i64,
    pub until_ms: i64,
    pub max_nodes: Option<i64>,
    pub group_by: Vec<String>,
}

const HOUR_MS: i64 = 3_600_000;

impl RenderParams {
    /// Parses the raw query string (without `?`).
    pub fn parse(query_string: &str, now_ms: i64) -> Result<RenderParams, WireError> {
        let params = parse_query(query_string)?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        if let Some(f) = get("format") {
            if f != "json" {
                return Err(WireError::Unsupported(format!(
                    "/render format {:?}; only json is produced",
                    shorten(f)
                )));
            }
        }
        let query = get("query").ok_or_else(|| WireError::param("query", "is required"))?;
        let (profile_type_id, selector) = parse_render_query(query)?;
        let until_ms = match get("until") {
            Some(v) => parse_time(v, now_ms).map_err(|m| WireError::param("until", m))?,
            None => now_ms,
        };
        let from_ms = match get("from") {
            Some(v) => parse_time(v, now_ms).map_err(|m| WireError::param("from", m))?,
            None => until_ms - HOUR_MS,
        };
        if until_ms < from_ms {
            return Err(WireError::param(
                "until",
                format!("{until_ms} ms is before from ({from_ms} ms)"),
            ));
        }
        let mut max_nodes = None;
        for key in ["max-nodes", "maxNodes"] {
            if let Some(v) = get(key) {
                let n: i64 = v.trim().parse().map_err(|_| {
                    WireError::param(key, format!("{:?} is not a whole number", shorten(v)))
                })?;
                if n != 0 {
                    max_nodes = Some(n);
                }
            }
        }
        let group_by = params
            .iter()
            .filter(|(k, v)| k == "groupBy" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect();
        Ok(RenderParams {
            profile_type_id,
            selector,
            from_ms,
            until_ms,
            max_nodes,
            group_by,
        })
    }

    /// The timeline step for this range, in seconds.
    pub fn step_seconds(&self) -> i64 {
        timeline_step_seconds(self.from_ms, self.until_ms)
    }
}

fn is_profile_type_id(s: &str) -> bool {
    let n = s.split(':').count();
    (n == 5 || n == 6) && !s.starts_with(':')
}

/// `query` → (profile type id, selector including `__profile_type__`).
fn parse_render_query(query: &str) -> Result<(String, Selector), WireError> {
    let mut sel = Selector::parse(query).map_err(|e| WireError::Selector {
        selector: shorten(query),
        message: e.to_string(),
    })?;
    // The name before the braces arrives as a __profile_type__ matcher; a
    // `__name__` matcher says the same in selector form.
    let pos = sel
        .matchers
        .iter()
        .position(|m| m.name == PROFILE_TYPE_LABEL && m.op == MatchOp::Eq)
        .or_else(|| {
            sel.matchers
                .iter()
                .position(|m| m.name == "__name__" && m.op == MatchOp::Eq)
        })
        .ok_or_else(|| WireError::param("query", "must contain a profile-type selection"))?;
    let name = sel.matchers.remove(pos).value;
    let id = if is_profile_type_id(&name) {
        // A sixth part (`:delta`) names a Pyroscope-internal variant.
        name.split(':').take(5).collect::<Vec<_>>().join(":")
    } else {
        let (app, suffix) = name.rsplit_once('.').ok_or_else(|| {
            WireError::param(
                "query",
                format!(
                    "{:?} is neither a profile type id (name:sample_type:sample_unit:period_type:period_unit) nor APP.TYPE",
                    shorten(&name)
                ),
            )
        })?;
        let id = legacy_query_profile_type(suffix).ok_or_else(|| {
            WireError::param(
                "query",
                format!(
                    "unknown profile type suffix {:?} in {:?}",
                    shorten(suffix),
                    shorten(&name)
                ),
            )
        })?;
        if !sel.matchers.iter().any(|m| m.name == "service_name") {
            sel.matchers.push(matcher("service_name", app)?);
        }
        id.to_string()
    };
    sel.matchers.retain(|m| m.name != PROFILE_TYPE_LABEL);
    sel.matchers.push(matcher(PROFILE_TYPE_LABEL, &id)?);
    Ok((id, sel))
}

fn matcher(name: &str, value: &str) -> Result<Matcher, WireError> {
    Matcher::new(name, MatchOp::Eq, value).map_err(|e| WireError::Selector {
        selector: value.to_string(),
        message: e.to_string(),
    })
}

/// Pyroscope's `CalcPointInterval`: the range over 1500 points, at least 15
/// s, rounded to a "nice" step; in seconds.
pub fn timeline_step_seconds(from_ms: i64, until_ms: i64) -> i64 {
    let interval_ms = until_ms.saturating_sub(from_ms) / 1500;
    if interval_ms < 15_000 {
        return 15;
    }
    // (upper bound of the interval, step), both ms.
    const STEPS: &[(i64, i64)] = &[
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_799_999, 2_592_000_000),
    ];
    let step = STEPS
        .iter()
        .find(|(bound, _)| interval_ms <= *bound)
        .map_or(31_536_000_000, |(_, step)| *step);
    step / 1000
}

/// The flamebearer `units` and `name` of a profile type, as Pyroscope's
/// `ExportToFlamebearer` sets them.
pub fn flamebearer_units(profile_type_id: &str) -> (String, String) {
    let parts: Vec<&str> = profile_type_id.split(':').collect();
    let sample_type = parts.get(1).copied().unwrap_or("");
    let sample_unit = parts.get(2).copied().unwrap_or("");
    let units = match sample_type {
        "inuse_objects" | "alloc_objects" | "goroutine" | "samples" => "objects",
        "cpu" => "samples",
        _ => sample_unit,
    };
    (units.to_string(), sample_type.to_string())
}

/// Timeline samples: one per `step_s` seconds from `from`, zeros where the
/// points have nothing; points outside [from, until) are ignored.
pub fn timeline_samples(
    points: &[(i64, i64)],
    from_ms: i64,
    until_ms: i64,
    step_s: i64,
) -> Vec<u64> {
    let step_s = step_s.max(1);
    let start_s = from_ms.div_euclid(1000);
    let n = (until_ms.div_euclid(1000) - start_s).max(0) / step_s;
    // A range with millions of points is a client error; cap the output.
    let n = usize::try_from(n).unwrap_or(0).min(1_000_000);
    let mut samples = vec![0u64; n];
    for &(t, v) in points {
        if t < from_ms || t >= until_ms {
            continue;
        }
        let i = (t.div_euclid(1000) - start_s) / step_s;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| samples.get_mut(i)) {
            *slot = slot.saturating_add(u64::try_from(v).unwrap_or(0));
        }
    }
    samples
}

/// The `/render` JSON: flame graph of `table`, timeline from `timeline`
/// (the series' points over the request's range at
/// [`RenderParams::step_seconds`]).
pub fn encode_render_json(
    params: &RenderParams,
    table: &StackTable,
    timeline: Option<&Points>,
) -> Vec<u8> {
    let fg = flame_graph(table, Some(params.max_nodes.unwrap_or(DEFAULT_MAX_NODES)));
    let (units, name) = flamebearer_units(&params.profile_type_id);
    let step = params.step_seconds();
    let samples = timeline_samples(
        timeline.map_or(&[][..], |p| p.points.as_slice()),
        params.from_ms,
        params.until_ms,
        step,
    );
    let v: Value = json!({
        "version": 1,
        "flamebearer": {
            "names": fg.names,
            "levels": fg.levels,
            "numTicks": fg.total,
            "maxSelf": fg.max_self,
        },
        "metadata": {
            "format": "single",
            "spyName": "",
            "sampleRate": 100,
            "units": units,
            "name": name,
        },
        "timeline": {
            "startTime": params.from_ms.div_euclid(1000),
            "samples": samples,
            "durationDelta": step,
            "watermarks": null,
        },
        "groups": null,
        "heatmap": null,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn matchers(sel: &Selector) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = sel
            .matchers
            .iter()
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn grafana_style_query() {
        let p = RenderParams::parse(
            "query=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7Bservice_name%3D%22api%22%7D\
             &from=1699996400000&until=1700000000000&format=json&maxNodes=1024",
            NOW,
        )
        .unwrap();
        assert_eq!(
            p.profile_type_id,
            "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
        );
        assert_eq!(
            matchers(&p.selector),
            vec![
                (
                    "__profile_type__".into(),
                    "process_cpu:cpu:nanoseconds:cpu:nanoseconds".into()
                ),
                ("service_name".into(), "api".into())
            ]
        );
        assert_eq!(
            (p.from_ms, p.until_ms, p.max_nodes),
            (1_699_996_400_000, NOW, Some(1024))
        );
        assert_eq!(p.step_seconds(), 15);
    }

    #[test]
    fn legacy_and_name_matcher_queries() {
        let p = RenderParams::parse(
            "query=my.app.alloc_space%7Benv%3D%22prod%22%7D&from=now-6h",
            NOW,
        )
        .unwrap();
        assert_eq!(p.profile_type_id, "memory:alloc_space:bytes:space:bytes");
        assert_eq!(
            matchers(&p.selector),
            vec![
                (
                    "__profile_type__".into(),
                    "memory:alloc_space:bytes:space:bytes".into()
                ),
                ("env".into(), "prod".into()),
                ("service_name".into(), "my.app".into())
            ]
        );
        assert_eq!(p.from_ms, NOW - 6 * HOUR_MS);
        let p = RenderParams::parse(
            "query=%7B__name__%3D%22memory%3Ainuse_space%3Abytes%3Aspace%3Abytes%22%2Cservice_name%3D%22x%22%7D",
            NOW,
        )
        .unwrap();
        assert_eq!(p.profile_type_id, "memory:inuse_space:bytes:space:bytes");
        assert_eq!(p.from_ms, NOW - HOUR_MS);
        for bad in [
            "query=app.nope",
            "query=%7Bservice_name%3D%22x%22%7D",
            "from=now",
            "query=app.cpu&format=svg",
            "query=app.cpu&from=now&until=now-1h",
        ] {
            assert!(RenderParams::parse(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn steps_follow_calc_point_interval() {
        assert_eq!(timeline_step_seconds(0, HOUR_MS), 15);
        assert_eq!(timeline_step_seconds(0, 24 * HOUR_MS), 60);
        assert_eq!(timeline_step_seconds(0, 7 * 24 * HOUR_MS), 300);
        assert_eq!(timeline_step_seconds(0, 30 * 24 * HOUR_MS), 1800);
    }

    #[test]
    fn timeline_backfills_zeros() {
        let s = timeline_samples(&[(10_000, 5), (40_000, 7), (99_000, 1)], 0, 60_000, 15);
        assert_eq!(s, vec![5, 0, 7, 0]);
    }

    #[test]
    fn units() {
        assert_eq!(
            flamebearer_units("process_cpu:cpu:nanoseconds:cpu:nanoseconds"),
            ("samples".into(), "cpu".into())
        );
        assert_eq!(
            flamebearer_units("memory:alloc_space:bytes:space:bytes"),
            ("bytes".into(), "alloc_space".into())
        );
        assert_eq!(
            flamebearer_units("memory:inuse_objects:count:space:bytes").0,
            "objects"
        );
        assert_eq!(
            flamebearer_units("mutex:delay:nanoseconds:contentions:count").0,
            "nanoseconds"
        );
    }
}
