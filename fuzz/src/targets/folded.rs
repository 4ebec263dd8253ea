//! The folded-stacks reader: no panic, and what decodes re-encodes to a
//! fixed point (decode → encode → decode → encode gives the same text).

use perfpilot_model::folded;

pub fn run(data: &[u8]) {
    let Ok(p) = folded::decode(data) else {
        return;
    };
    let Ok(once) = folded::encode(&p, 0) else {
        // Sums past i64 are refused on encoding, not decoding.
        return;
    };
    let again = folded::decode(once.as_bytes()).expect("encoded folded stacks decode");
    let twice = folded::encode(&again, 0).expect("re-decoded folded stacks encode");
    assert_eq!(once, twice, "folded re-encoding is not a fixed point");
}
