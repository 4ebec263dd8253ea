//! Loading the NAB corpus: the series under `data/`, the anomaly windows in
//! `labels/combined_windows.json` and the cost profiles in
//! `config/profiles.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use perfpilot_baseline::BaselineError;

/// One labelled series, named by its path under `data/`
/// (`category/file.csv`), as NAB names it in its labels and results.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// Unix seconds, UTC (NAB's timestamps carry no zone).
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn category(&self) -> &str {
        self.name.split_once('/').map_or("", |(c, _)| c)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// An anomaly window, inclusive at both ends, in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// Windows per series name (`category/file.csv`), in time order.
pub type Windows = BTreeMap<String, Vec<Window>>;

/// The three NAB scoring profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    Standard,
    RewardLowFpRate,
    RewardLowFnRate,
}

impl Profile {
    pub const ALL: [Profile; 3] = [
        Profile::Standard,
        Profile::RewardLowFpRate,
        Profile::RewardLowFnRate,
    ];

    /// The profile's name in NAB's configuration and results.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::RewardLowFpRate => "reward_low_FP_rate",
            Profile::RewardLowFnRate => "reward_low_FN_rate",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = BaselineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                BaselineError::invalid(
                    "--profile",
                    format!(
                        "unknown NAB profile {s:?}; expected standard, reward_low_FP_rate or reward_low_FN_rate"
                    ),
                )
            })
    }
}

/// A profile's weights for a true positive, a missed window and a false
/// positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostWeights {
    pub tp: f64,
    pub fn_: f64,
    pub fp: f64,
}

/// Weights of each profile, as read from `config/profiles.json`.
pub type Profiles = BTreeMap<Profile, CostWeights>;

/// The labelled corpus: every series that has an entry in the windows file.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
    pub series: Vec<Series>,
    pub windows: Windows,
    pub profiles: Profiles,
}

impl Corpus {
    pub fn points(&self) -> usize {
        self.series.iter().map(Series::len).sum()
    }
}

/// Loads the series, windows and profiles of a NAB checkout at `root`.
pub fn load_corpus(root: &Path) -> Result<Corpus, BaselineError> {
    let windows = load_windows(&root.join("labels").join("combined_windows.json"))?;
    let profiles = load_profiles(&root.join("config").join("profiles.json"))?;
    let mut series = Vec::with_capacity(windows.len());
    for name in windows.keys() {
        series.push(load_series(&root.join("data").join(name), name)?);
    }
    Ok(Corpus {
        root: root.to_path_buf(),
        series,
        windows,
        profiles,
    })
}

fn read(path: &Path) -> Result<String, BaselineError> {
    std::fs::read_to_string(path).map_err(|e| BaselineError::io(path, e))
}

/// Reads a `timestamp,value` CSV.
pub fn load_series(path: &Path, name: &str) -> Result<Series, BaselineError> {
    let text = read(path)?;
    let table = CsvTable::parse(path, &text)?;
    let ts_col = table.column("timestamp")?;
    let value_col = table.column("value")?;
    let mut timestamps = Vec::with_capacity(table.rows.len());
    let mut values = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        timestamps.push(row.timestamp(ts_col)?);
        values.push(row.number(value_col)?);
    }
    Ok(Series {
        name: name.to_string(),
        timestamps,
        values,
    })
}

/// A small CSV reader for NAB's files: a header, then comma-separated
/// fields without quoting.
pub(crate) struct CsvTable<'a> {
    path: &'a Path,
    header: Vec<&'a str>,
    pub(crate) rows: Vec<CsvRow<'a>>,
}

pub(crate) struct CsvRow<'a> {
    path: &'a Path,
    pub(crate) line: usize,
    fields: Vec<&'a str>,
}

impl<'a> CsvTable<'a> {
    pub(crate) fn parse(path: &'a Path, text: &'a str) -> Result<Self, BaselineError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        let header: Vec<&str> = match lines.find(|(_, l)| !l.trim().is_empty()) {
            Some((_, l)) => l.split(',').map(str::trim).collect(),
            None => {
                return Err(BaselineError::invalid(
                    path.display().to_string(),
                    "empty file, expected a CSV header",
                ))
            }
        };
        let mut rows = Vec::new();
        for (line, text) in lines {
            if text.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            if fields.len() != header.len() {
                return Err(BaselineError::invalid(
                    format!("{}:{line}", path.display()),
                    format!("{} fields, the header has {}", fields.len(), header.len()),
                ));
            }
            rows.push(CsvRow { path, line, fields });
        }
        Ok(CsvTable { path, header, rows })
    }

    pub(crate) fn column(&self, name: &str) -> Result<usize, BaselineError> {
        self.header.iter().position(|h| *h == name).ok_or_else(|| {
            BaselineError::invalid(
                format!("{}:1", self.path.display()),
                format!("no {name:?} column in header {:?}", self.header.join(",")),
            )
        })
    }
}

impl CsvRow<'_> {
    fn location(&self) -> String {
        format!("{}:{}", self.path.display(), self.line)
    }

    pub(crate) fn number(&self, col: usize) -> Result<f64, BaselineError> {
        let field = self.fields.get(col).copied().unwrap_or("");
        match field.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(BaselineError::invalid(
                self.location(),
                format!("{field:?} is not a finite number"),
            )),
        }
    }

    pub(crate) fn timestamp(&self, col: usize) -> Result<i64, BaselineError> {
        let field = self.fields.get(col).copied().unwrap_or("");
        parse_timestamp(field).ok_or_else(|| {
            BaselineError::invalid(
                self.location(),
                format!("{field:?} is not a timestamp like 2014-04-10 07:15:00"),
            )
        })
    }
}

/// Parses NAB's `YYYY-MM-DD HH:MM:SS[.ffffff]` (also with a `T`) into unix
/// seconds. Fractions are dropped: every NAB timestamp is whole seconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let time = time.split_once('.').map_or(time, |(t, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            t
        } else {
            ""
        }
    });
    let mut t = time.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..61).contains(&second)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Formats unix seconds the way NAB writes timestamps.
pub fn format_timestamp(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Proleptic Gregorian calendar day counts relative to 1970-01-01, by shifting
// the year to start in March so the leap day falls at the end.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Reads `combined_windows.json`: `{ "category/file.csv": [[start, end], ...] }`.
pub fn load_windows(path: &Path) -> Result<Windows, BaselineError> {
    let text = read(path)?;
    let json: Value = serde_json::from_str(&text).map_err(|e| {
        BaselineError::invalid(
            format!("{}:{}:{}", path.display(), e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let obj = json.as_object().ok_or_else(|| {
        BaselineError::invalid(
            path.display().to_string(),
            "expected an object of file name to windows",
        )
    })?;
    let mut out = Windows::new();
    for (name, list) in obj {
        let loc = || format!("{}: {name:?}", path.display());
        let list = list
            .as_array()
            .ok_or_else(|| BaselineError::invalid(loc(), "expected a list of windows"))?;
        let mut windows = Vec::with_capacity(list.len());
        for (i, w) in list.iter().enumerate() {
            let pair = w.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                BaselineError::invalid(
                    loc(),
                    format!("window {i}: expected [start, end] timestamps"),
                )
            })?;
            let ts = |v: &Value| v.as_str().and_then(parse_timestamp);
            match (ts(&pair[0]), ts(&pair[1])) {
                (Some(start), Some(end)) if start <= end => windows.push(Window { start, end }),
                _ => {
                    return Err(BaselineError::invalid(
                        loc(),
                        format!("window {i}: {w} is not a [start, end] pair of timestamps"),
                    ))
                }
            }
        }
        windows.sort_by_key(|w| w.start);
        out.insert(name.clone(), windows);
    }
    Ok(out)
}

/// Reads `profiles.json`: `{ "standard": {"CostMatrix": {"tpWeight": ..}}, .. }`.
pub fn load_profiles(path: &Path) -> Result<Profiles, BaselineError> {
    let text = read(path)?;
    let json: Value = serde_json::from_str(&text).map_err(|e| {
        BaselineError::invalid(
            format!("{}:{}:{}", path.display(), e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let mut out = Profiles::new();
    for profile in Profile::ALL {
        let loc = || format!("{}: {}", path.display(), profile.name());
        let matrix = json
            .get(profile.name())
            .and_then(|p| p.get("CostMatrix"))
            .ok_or_else(|| BaselineError::invalid(loc(), "missing profile or its CostMatrix"))?;
        let weight = |key: &str| {
            matrix
                .get(key)
                .and_then(Value::as_f64)
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| {
                    BaselineError::invalid(loc(), format!("{key} is not a non-negative number"))
                })
        };
        out.insert(
            profile,
            CostWeights {
                tp: weight("tpWeight")?,
                fn_: weight("fnWeight")?,
                fp: weight("fpWeight")?,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "1970-01-01 00:00:00",
            "2014-04-10 07:15:00",
            "2000-02-29 23:59:59",
            "2015-12-31 12:00:00",
        ] {
            let t = parse_timestamp(s).expect(s);
            assert_eq!(format_timestamp(t), s);
        }
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.000000"),
            Some(1_397_114_100)
        );
        assert_eq!(parse_timestamp("2014-02-30 00:00:00"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.csv");
        std::fs::write(
            &path,
            "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,abc\n",
        )
        .expect("write");
        let err = load_series(&path, "c/x.csv").expect_err("bad value");
        assert!(err.to_string().contains("x.csv:3"), "{err}");
        std::fs::write(&path, "timestamp,value\n2014-01-01 00:05:00,1,2\n").expect("write");
        let err = load_series(&path, "c/x.csv").expect_err("extra field");
        assert!(err.to_string().contains("x.csv:2"), "{err}");
    }
}
