//! `--series` CSVs (`timestamp,value`) and the `[SERVICE/]NAME:KIND=FILE`
//! argument. No panic; every point is finite and the points come out in
//! time order.

use perfpilot_baseline::series::{parse_csv, SeriesSpec};

pub fn run(data: &[u8]) {
    if let Ok(points) = parse_csv(data, "fuzz.csv") {
        assert!(points.iter().all(|p| p.1.is_finite()));
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0));
    }
    if let Ok(arg) = std::str::from_utf8(data) {
        let _ = SeriesSpec::parse(arg);
    }
}
