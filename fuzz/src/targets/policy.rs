//! AutopilotPolicy YAML files (`--policies`, `perfpilot validate`): no
//! panic, no stack overflow, and every diagnostic points into the file.

use perfpilot_autopilot::parse_policies;

pub fn run(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let report = parse_policies(source);
    // An upper bound on the line count whichever of \n, \r\n or \r ends
    // lines, plus one for a diagnostic at the very end.
    let lines = source.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 2;
    for d in &report.diagnostics {
        assert!(
            (1..=lines).contains(&d.line),
            "diagnostic at line {} of a file of at most {lines} lines: {}",
            d.line,
            d.message
        );
    }
}
