//! CPython interpreter images (any ELF file a Python process maps) and
//! the `_Py_DebugOffsets` a 3.13 binary publishes in them: no panic; what
//! parses is 3.13's, and an image recognised by anything but its debug
//! offsets has its version's layout from the table.

use crate::refused;
use perfpilot_pyruntime::{inspect, offsets_for, parse_debug_offsets};

pub fn run(data: &[u8]) {
    let parsed = parse_debug_offsets(data);
    if let Ok((version, _)) = parsed {
        assert_eq!(version, (3, 13));
    }
    let image = inspect("/fuzz/python3.11", data);
    if let Some(py) = image {
        if py.version != (3, 13) {
            assert_eq!(py.offsets, offsets_for(py.version.0, py.version.1));
        }
    }
    if let (Err(e), None) = (parsed, image) {
        refused("the input, as an interpreter image or _Py_DebugOffsets", e);
    }
}
