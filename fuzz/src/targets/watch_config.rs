//! `perfpilot baseline watch` configs (TOML) and the feature kinds in
//! them: no panic, and a config that is accepted builds its engine, with
//! every Prometheus feature's kind one the engine knows.

use perfpilot_baseline::detectors::FeatureKind;
use perfpilot_baseline::watch::WatchConfig;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A kind on its own, as `--series NAME:KIND=FILE` and configs give it.
    if let Ok(kind) = text.parse::<FeatureKind>() {
        assert_eq!(
            kind.name().parse::<FeatureKind>().map(FeatureKind::name),
            Ok(kind.name())
        );
        assert!(kind.pages_high() || kind.pages_low(), "{kind:?} pages on no side");
    }
    let Ok(cfg) = WatchConfig::parse(text, "fuzz.toml") else {
        return;
    };
    for p in &cfg.prometheus {
        for f in &p.features {
            if let Some(k) = &f.kind {
                assert!(k.parse::<FeatureKind>().is_ok(), "{k:?} was accepted");
            }
        }
    }
    cfg.engine()
        .unwrap_or_else(|e| panic!("an accepted config does not build its engine: {e}"));
}
