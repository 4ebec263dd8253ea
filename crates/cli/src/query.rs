//! `perfpilot query`: the query API from the command line.

use std::io::Write;

use anyhow::Context;
use perfpilot_server::api::{DiffResponse, TimeseriesResponse, TopResponse};

use crate::exit::{self, Failure};
use crate::{QueryArgs, QueryCommand, QueryCommon};

fn common_params(c: &QueryCommon) -> Vec<(&'static str, String)> {
    vec![
        ("query", c.query.clone()),
        ("from", c.from.clone()),
        ("until", c.until.clone()),
    ]
}

fn output(c: &QueryCommon, bytes: &[u8], binary: bool) -> exit::Result<()> {
    match &c.output {
        Some(path) => crate::record::write_atomically(path, bytes),
        None if binary => Err(Failure::new(
            exit::USAGE,
            anyhow::anyhow!("this format is binary: write it to a file with -o FILE"),
        )),
        None => {
            std::io::stdout()
                .write_all(bytes)
                .context("writing to standard output")?;
            Ok(())
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> exit::Result<T> {
    serde_json::from_slice(bytes)
        .context("the server's answer is not what this perfpilot expects (a different version?)")
        .map_err(Failure::from)
}

fn pct(part: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

pub fn run(args: QueryArgs) -> exit::Result<()> {
    match args.command {
        QueryCommand::Flamegraph(a) => {
            let format = a.format.clone().unwrap_or_else(|| "folded".into());
            let mut p = common_params(&a.common);
            p.push(("format", format.clone()));
            if let Some(n) = a.max_nodes {
                p.push(("max_nodes", n.to_string()));
            }
            let body = a.common.conn.get_with("/api/v1/flamegraph", &p)?;
            output(&a.common, &body, format == "pprof")
        }
        QueryCommand::Top(a) => {
            let mut p = common_params(&a.common);
            p.push(("limit", a.limit.to_string()));
            let body = a.common.conn.get_with("/api/v1/top", &p)?;
            if a.format.as_deref() == Some("json") {
                return output(&a.common, &body, false);
            }
            let top: TopResponse = parse(&body)?;
            let mut text = format!(
                "{} total {}\n{:>7} {:>7}  FUNCTION\n",
                top.profile_type.as_deref().unwrap_or("(no data)"),
                top.total,
                "SELF%",
                "TOTAL%"
            );
            for f in &top.functions {
                text.push_str(&format!(
                    "{:>7.2} {:>7.2}  {}\n",
                    f.self_percent, f.total_percent, f.name
                ));
            }
            output(&a.common, text.as_bytes(), false)
        }
        QueryCommand::Diff(a) => {
            let mut p = common_params(&a.common);
            for (k, v) in [
                ("base_query", &a.base_query),
                ("base_from", &a.base_from),
                ("base_until", &a.base_until),
            ] {
                if let Some(v) = v {
                    p.push((k, v.clone()));
                }
            }
            let body = a.common.conn.get_with("/api/v1/diff", &p)?;
            if a.format.as_deref() == Some("json") {
                return output(&a.common, &body, false);
            }
            let d: DiffResponse = parse(&body)?;
            let mut text = format!(
                "{:>9} {:>8} {:>8} {:>10}  FUNCTION (total share, base -> target)\n",
                "CHANGE", "BASE%", "TARGET%", "q-value"
            );
            for r in d.diff.rows.iter().take(a.limit) {
                text.push_str(&format!(
                    "{:>+8.2}pp {:>8.2} {:>8.2} {:>10.2e}  {}{}\n",
                    r.total_percent_change,
                    r.base_total_percent,
                    r.target_total_percent,
                    r.q_value,
                    r.name,
                    if r.significant { "  *" } else { "" }
                ));
            }
            text.push_str("* significant (Benjamini-Hochberg q < 0.05)\n");
            output(&a.common, text.as_bytes(), false)
        }
        QueryCommand::Series(a) => {
            let mut p = common_params(&a.common);
            if let Some(s) = &a.step {
                p.push(("step", s.clone()));
            }
            if let Some(g) = &a.group_by {
                p.push(("group_by", g.clone()));
            }
            if let Some(f) = &a.function {
                p.push(("function", f.clone()));
            }
            let body = a.common.conn.get_with("/api/v1/timeseries", &p)?;
            if a.format.as_deref() == Some("json") {
                return output(&a.common, &body, false);
            }
            let ts: TimeseriesResponse = parse(&body)?;
            let mut text = String::new();
            for (i, s) in ts.series.iter().enumerate() {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                text.push_str(&format!(
                    "# {{{}}} step {} ms\n",
                    labels.join(","),
                    ts.step_ms
                ));
                let function = ts.function_series.as_ref().and_then(|f| f.get(i));
                for pt in &s.points {
                    match function {
                        Some(f) => {
                            let part = f.points.iter().find(|q| q[0] == pt[0]).map_or(0, |q| q[1]);
                            text.push_str(&format!(
                                "{}\t{}\t{:.2}%\n",
                                pt[0],
                                pt[1],
                                pct(part, pt[1])
                            ));
                        }
                        None => text.push_str(&format!("{}\t{}\n", pt[0], pt[1])),
                    }
                }
            }
            output(&a.common, text.as_bytes(), false)
        }
    }
}
