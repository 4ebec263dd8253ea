//! Prints the unwind table size of each ELF file given.
fn main() {
    for path in std::env::args().skip(1) {
        let t0 = std::time::Instant::now();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        // SAFETY: read-only mapping of a file we do not modify.
        let data = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        match perfpilot_unwind::build_table(&data) {
            Ok(t) => println!(
                "{path}: {} rows in {:?} {:?}",
                t.rows.len(),
                t0.elapsed(),
                t.stats
            ),
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}
