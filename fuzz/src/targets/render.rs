//! `GET /pyroscope/render`'s query string (Grafana's flame graph and
//! timeline), then its step and the answer for a small merged table and
//! timeline. No panic.

use crate::NOW_MS;
use perfpilot_store::{Points, StackTable};
use perfpilot_wire::render::{encode_render_json, RenderParams};

pub fn run(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = RenderParams::parse(query, NOW_MS) else {
        return;
    };
    let _ = params.step_seconds();
    let table = StackTable {
        functions: vec!["main".into(), "work".into(), "io".into()],
        stacks: vec![(vec![0, 1], 30), (vec![0, 2], 10), (vec![0], 5)],
    };
    let timeline = Points {
        labels: Vec::new(),
        points: vec![(params.from_ms, 3), (params.until_ms, 4), (NOW_MS, 5)],
    };
    let _ = encode_render_json(&params, &table, Some(&timeline));
}
