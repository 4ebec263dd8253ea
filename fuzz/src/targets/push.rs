//! Pyroscope's Push (`/push.v1.PusherService/Push`): the first byte picks
//! the codec (protobuf or JSON) and whether the body is declared gzipped;
//! the rest is the body. No panic; an accepted request is a valid batch.

use crate::{check_batch, refused, small_limits, NOW_MS};

pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let content_type = if mode & 1 == 0 {
        "application/proto"
    } else {
        "application/json"
    };
    let encoding = (mode & 2 != 0).then_some("gzip");
    let limits = small_limits();
    match perfpilot_wire::batch_from_push(content_type, encoding, body, NOW_MS, &limits) {
        Ok(b) => check_batch(&b, &limits),
        Err(e) => refused("batch_from_push", e),
    }
}
