//! `perfpilot validate FILE...`: checks autopilot policy files and reports
//! every problem as `file:line:column: message`.

use std::path::PathBuf;

use clap::Args;
use perfpilot_autopilot::{load_file, PolicyError};

use crate::exit::{self, Failure};

#[derive(Args)]
pub struct ValidateArgs {
    /// Policy files (YAML, one or more AutopilotPolicy documents each).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(args: ValidateArgs) -> exit::Result<()> {
    let mut invalid = 0;
    for path in &args.files {
        let name = path.display().to_string();
        match load_file(path) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("{}", w.in_file(&name));
                }
                let n = loaded.policies.len();
                println!(
                    "{name}: ok ({n} {})",
                    if n == 1 { "policy" } else { "policies" }
                );
            }
            Err(PolicyError::Invalid { diagnostics, .. }) => {
                invalid += 1;
                for d in &diagnostics {
                    eprintln!("{}", d.in_file(&name));
                }
            }
            Err(e @ PolicyError::Io { .. }) => {
                invalid += 1;
                eprintln!("perfpilot: {e}");
            }
        }
    }
    if invalid > 0 {
        let total = args.files.len();
        return Err(Failure::new(
            exit::BAD_INPUT,
            anyhow::anyhow!("{invalid} of {total} file(s) invalid"),
        ));
    }
    Ok(())
}
