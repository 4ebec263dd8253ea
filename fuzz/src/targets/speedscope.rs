//! The speedscope reader: no panic, and what decodes re-encodes to a
//! fixed point.

use perfpilot_model::speedscope;

pub fn run(data: &[u8]) {
    let Ok(p) = speedscope::decode(data) else {
        return;
    };
    let Ok(once) = speedscope::encode(&p, "fuzz") else {
        return;
    };
    let again = speedscope::decode(&once).expect("encoded speedscope decodes");
    let twice = speedscope::encode(&again, "fuzz").expect("re-decoded speedscope encodes");
    assert!(once == twice, "speedscope re-encoding is not a fixed point");
}
