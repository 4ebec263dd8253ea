//! Scores perfpilot's detector on the Numenta Anomaly Benchmark, or scores
//! another detector's per-row outputs written in NAB's results layout.
//!
//! ```text
//! cargo run --release -p perfpilot-baseline-lab --example nab -- --data /work/shared/nab
//! cargo run --release -p perfpilot-baseline-lab --example nab -- --data /work/shared/nab \
//!     --score-results target/nab-peers/riverHST
//! ```
//!
//! Options: `--profile standard|reward_low_FP_rate|reward_low_FN_rate` (the
//! profile broken down by category), `--write-results DIR` (also write
//! perfpilot's per-row scores in NAB's layout), `--detector NAME` (the file
//! prefix under `--score-results`, by default the directory's name).
//!
//! `benches/nab_peers.py` runs river and ruptures over the same corpus and
//! scores them through this example.

use std::path::PathBuf;
use std::process::ExitCode;

use perfpilot_baseline::BaselineError;
use perfpilot_baseline_lab::nab::{self, NabOptions, Profile};

const USAGE: &str = "usage: nab --data NAB_DIR [--profile PROFILE] [--write-results DIR] \
                     [--score-results DIR [--detector NAME]]";

fn main() -> ExitCode {
    match run() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, BaselineError> {
    let mut data = None;
    let mut profile = None;
    let mut write_results = None;
    let mut score_results = None;
    let mut detector = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| BaselineError::invalid(&arg, format!("needs a value; {USAGE}")))
        };
        match arg.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--profile" => profile = Some(value()?.parse::<Profile>()?),
            "--write-results" => write_results = Some(PathBuf::from(value()?)),
            "--score-results" => score_results = Some(PathBuf::from(value()?)),
            "--detector" => detector = Some(value()?),
            "-h" | "--help" => return Ok(format!("{USAGE}\n")),
            _ => {
                return Err(BaselineError::invalid(
                    &arg,
                    format!("unknown option; {USAGE}"),
                ))
            }
        }
    }
    let data = data.ok_or_else(|| BaselineError::invalid("--data", USAGE))?;
    let report = match score_results {
        Some(dir) => nab::score_results(&data, &dir, detector.as_deref(), profile)?,
        None => nab::run(&NabOptions {
            data,
            profile,
            write_results,
        })?,
    };
    Ok(report.to_string())
}
