//! Time series responses.

use std::collections::BTreeMap;

use perfpilot_model::series::Points;
use serde::{Deserialize, Serialize};

/// One series of a time-series query, as JSON:
/// `{"labels": {"service_name": "api"}, "points": [[1700000000000, 42], ...]}`
/// with points as `[step start in ms since the epoch, value]`, in time
/// order, steps without data omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// The grouping labels; empty when not grouped.
    pub labels: BTreeMap<String, String>,
    pub points: Vec<[i64; 2]>,
}

impl From<&Points> for Series {
    fn from(p: &Points) -> Series {
        let mut points: Vec<[i64; 2]> = p.points.iter().map(|&(t, v)| [t, v]).collect();
        points.sort_by_key(|pt| pt[0]);
        Series {
            labels: p.labels.iter().cloned().collect(),
            points,
        }
    }
}

/// Converts store results into responses.
pub fn to_series(points: &[Points]) -> Vec<Series> {
    points.iter().map(Series::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let p = Points {
            labels: vec![("service_name".into(), "api".into())],
            points: vec![(2000, 7), (1000, 5)],
        };
        let s = to_series(&[p]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"[{"labels":{"service_name":"api"},"points":[[1000,5],[2000,7]]}]"#
        );
        let back: Vec<Series> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
