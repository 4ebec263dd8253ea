//! The watch config's durations: perfpilot's one grammar, with fractions,
//! positive only.

use perfpilot_baseline::watch::parse_duration;

#[test]
fn the_watch_config_reads_fractions_and_compound_durations() {
    for (text, ms) in [
        ("10s", 10_000),
        ("5m", 300_000),
        ("1d", 86_400_000),
        ("500ms", 500),
        ("1.5h", 5_400_000),
        (" .5s ", 500),
        ("1h30m", 5_400_000),
        ("2w", 14 * 86_400_000),
    ] {
        assert_eq!(parse_duration(text, "window").ok(), Some(ms), "{text:?}");
    }
}

#[test]
fn the_watch_config_refuses_zero_and_non_durations() {
    for text in ["0s", "0.4ms", "", "10", "10x", "1 h", "-5s"] {
        let e = match parse_duration(text, "window") {
            Err(e) => e.to_string(),
            Ok(v) => panic!("{text:?} gave {v}"),
        };
        assert!(e.contains("window"), "{e}");
    }
}
