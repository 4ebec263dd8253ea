//! The model's pprof decoder (`perfpilot convert`, `go tool pprof` files):
//! no panic on any input, and what decodes re-encodes to a fixed point
//! (decode → encode → decode → encode gives the same bytes).

use perfpilot_model::pprof;

pub fn run(data: &[u8]) {
    let Ok(p) = pprof::decode(data) else {
        return;
    };
    let once = pprof::encode_uncompressed(&p).expect("a decoded profile encodes");
    let again = pprof::decode(&once).expect("an encoded profile decodes");
    let twice = pprof::encode_uncompressed(&again).expect("a decoded profile encodes");
    assert!(once == twice, "pprof re-encoding is not a fixed point");
}
