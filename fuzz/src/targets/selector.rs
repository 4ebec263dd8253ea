//! Label selectors (`{service_name="x", pod=~"web-.*"}`), in every query
//! API: no panic, and a selector that parses prints and parses back to the
//! same matchers.

use crate::print_selector;
use perfpilot_store::Selector;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sel) = Selector::parse(text) else {
        return;
    };
    let printed = print_selector(&sel);
    let again = Selector::parse(&printed)
        .unwrap_or_else(|e| panic!("{printed:?}, printed from {text:?}, does not parse: {e}"));
    assert_eq!(
        sel, again,
        "{text:?} printed as {printed:?} reads differently"
    );
    let labels = [("service_name".to_string(), "checkout".to_string())];
    assert_eq!(sel.matches(&labels), again.matches(&labels));
}
