// Each NAB test crate uses this.
#![allow(dead_code)]

use std::path::PathBuf;

/// The NAB corpus: `PERFPILOT_NAB_DIR`, else `../shared/nab` next to the
/// repository, else the workplace's `/work/shared/nab`. Absent, the test
/// fails and says where it looked: a benchmark that silently passes
/// without its data would prove nothing.
pub fn nab_dir() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("PERFPILOT_NAB_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/nab"),
            PathBuf::from("/work/shared/nab"),
        ],
    };
    for dir in &candidates {
        if dir.join("labels/combined_windows.json").is_file() {
            return dir.clone();
        }
    }
    panic!(
        "NAB corpus not found at {} (set PERFPILOT_NAB_DIR, or place it at ../shared/nab next to the repository)",
        candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    );
}
