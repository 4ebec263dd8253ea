//! NAB's per-row results layout:
//! `<dir>/<category>/<detector>_<file>.csv` with at least the columns
//! `timestamp` and `anomaly_score` (NAB also writes `value`, `label` and
//! per-profile scores). Reading it scores other detectors' outputs with
//! [`super::scorer`]; writing it lets other tools score ours.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use perfpilot_baseline::BaselineError;

use super::corpus::{format_timestamp, CsvTable, Series, Windows};
use super::scorer::{window_rows, FileScores};

/// The results file of series `name` (`category/file.csv`) for `detector`.
pub fn results_path(dir: &Path, detector: &str, name: &str) -> PathBuf {
    let (category, file) = name.split_once('/').unwrap_or(("", name));
    dir.join(category).join(format!("{detector}_{file}"))
}

/// The detector name NAB uses for a results directory: its last component.
pub fn detector_name(dir: &Path) -> Result<String, BaselineError> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            BaselineError::invalid(
                dir.display().to_string(),
                "cannot take a detector name from this directory; name the detector",
            )
        })
}

/// Reads the per-row scores of every labelled series from a results
/// directory. `detector` defaults to the directory's name, as in NAB's own
/// `results/<detector>/`.
pub fn read_results_dir(
    dir: &Path,
    detector: Option<&str>,
    windows: &Windows,
) -> Result<Vec<FileScores>, BaselineError> {
    let detector = match detector {
        Some(d) => d.to_string(),
        None => detector_name(dir)?,
    };
    let mut out = Vec::with_capacity(windows.len());
    for name in windows.keys() {
        out.push(read_results_file(
            &results_path(dir, &detector, name),
            name,
        )?);
    }
    Ok(out)
}

/// Reads one results file's `timestamp` and `anomaly_score` columns.
pub fn read_results_file(path: &Path, name: &str) -> Result<FileScores, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))?;
    let table = CsvTable::parse(path, &text)?;
    let ts_col = table.column("timestamp")?;
    let score_col = table.column("anomaly_score")?;
    let mut timestamps = Vec::with_capacity(table.rows.len());
    let mut scores = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        timestamps.push(row.timestamp(ts_col)?);
        scores.push(row.number(score_col)?);
    }
    Ok(FileScores {
        name: name.to_string(),
        timestamps,
        scores,
    })
}

/// Writes one detector's per-row scores in NAB's layout under `dir`
/// (`dir/<category>/<detector>_<file>.csv`: timestamp, value, anomaly_score,
/// label), so NAB or any tool reading that layout can score them.
pub fn write_results_dir(
    dir: &Path,
    detector: &str,
    series: &[Series],
    scores: &[FileScores],
    windows: &Windows,
) -> Result<(), BaselineError> {
    for (s, f) in series.iter().zip(scores) {
        if s.name != f.name || s.len() != f.scores.len() {
            return Err(BaselineError::invalid(
                &f.name,
                format!(
                    "scores ({} rows) do not belong to series {} ({} rows)",
                    f.scores.len(),
                    s.name,
                    s.len()
                ),
            ));
        }
        let rows = match windows.get(&s.name) {
            Some(w) => window_rows(&s.name, &s.timestamps, w)?,
            None => Vec::new(),
        };
        let mut text = String::with_capacity(s.len() * 48);
        text.push_str("timestamp,value,anomaly_score,label\n");
        for (i, ((&t, &v), &a)) in s
            .timestamps
            .iter()
            .zip(&s.values)
            .zip(&f.scores)
            .enumerate()
        {
            let label = u8::from(rows.iter().any(|&(l, r)| l <= i && i <= r));
            // `{}` on f64 prints the shortest text that reads back exactly.
            let _ = writeln!(text, "{},{v},{a},{label}", format_timestamp(t));
        }
        let path = results_path(dir, detector, &s.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BaselineError::io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| BaselineError::io(&path, e))?;
    }
    Ok(())
}
