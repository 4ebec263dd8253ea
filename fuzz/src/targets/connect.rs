//! Grafana's `querier.v1` requests over Connect: the first byte picks the
//! method, the codec (protobuf or JSON) and whether the body is declared
//! gzipped; the rest is the body. Decoded requests go through what the
//! server does next (selectors, step, node budget). No panic.

use crate::small_limits;
use perfpilot_wire::query::{
    LabelsRequest, ProfileTypesRequest, SelectMergeStacktracesRequest, SelectSeriesRequest,
    SeriesRequest,
};
use perfpilot_wire::Codec;

pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let codec = if mode & 8 == 0 {
        Codec::Proto
    } else {
        Codec::Json
    };
    let enc = (mode & 16 != 0).then_some("gzip");
    let limits = small_limits();
    match mode % 6 {
        0 => {
            let _ = ProfileTypesRequest::decode(codec, enc, body, &limits);
        }
        1 => {
            if let Ok(r) = LabelsRequest::decode_label_names(codec, enc, body, &limits) {
                let _ = r.selectors();
            }
        }
        2 => {
            if let Ok(r) = LabelsRequest::decode_label_values(codec, enc, body, &limits) {
                let _ = r.selectors();
            }
        }
        3 => {
            if let Ok(r) = SeriesRequest::decode(codec, enc, body, &limits) {
                let _ = r.selectors();
            }
        }
        4 => {
            if let Ok(r) = SelectSeriesRequest::decode(codec, enc, body, &limits) {
                let _ = r.selector();
                let _ = r.step_ms();
            }
        }
        _ => {
            if let Ok(r) = SelectMergeStacktracesRequest::decode(codec, enc, body, &limits) {
                let _ = r.selector();
                let _ = r.max_nodes_or_default();
            }
        }
    }
}
