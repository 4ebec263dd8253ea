//! Golden tests on profiles captured from real tools (see
//! `testdata/README.md` for how each was made).
//!
//! Each test decodes a capture, checks facts read from it with another tool
//! (`go tool pprof`, python, `perf report`), and compares what every codec
//! writes for it with a committed `*.expected.*` file. Run with
//! `PERFPILOT_BLESS=1` to rewrite the expected files after an intended
//! change, then review the diff.

use std::io::Read;
use std::path::PathBuf;

use perfpilot_model::{folded, pprof, speedscope, svg, Profile, ValueType};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    let path = testdata(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Compares `actual` with the committed file `name`, or rewrites it when
/// blessing.
fn golden(name: &str, actual: &[u8]) {
    let path = testdata(name);
    if std::env::var("PERFPILOT_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}; run with PERFPILOT_BLESS=1 to create it",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    // Point at the first differing line rather than dumping whole files.
    let (exp, act) = (
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual),
    );
    let line = exp
        .lines()
        .zip(act.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| exp.lines().count().min(act.lines().count()));
    let excerpt = |s: &str| {
        s.lines()
            .nth(line)
            .unwrap_or("<end of file>")
            .chars()
            .take(300)
            .collect::<String>()
    };
    panic!(
        "{name} differs from the output ({} bytes expected, {} written); first difference \
         on line {}:\n expected: {}\n  written: {}\nrerun with PERFPILOT_BLESS=1 if the change \
         is intended",
        expected.len(),
        actual.len(),
        line + 1,
        excerpt(&exp),
        excerpt(&act),
    );
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The folded line for `stack` (root first, `;`-joined) in `text`.
fn folded_count(text: &str, stack: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(stack)?.strip_prefix(' ')?.parse().ok())
}

/// Every codec's output for `p`, against `PREFIX.expected.*`; folded output
/// only when `folded_golden`, i.e. when the capture is not itself folded.
fn check_all_codecs(p: &Profile, prefix: &str, title: &str, folded_golden: bool) {
    if folded_golden {
        let text = folded::encode(p, p.default_value_index()).unwrap();
        golden(&format!("{prefix}.expected.folded"), text.as_bytes());
    }
    golden(
        &format!("{prefix}.expected.speedscope.json"),
        &speedscope::encode(p, title).unwrap(),
    );
    golden(
        &format!("{prefix}.expected.pb"),
        &gunzip(&pprof::encode(p).unwrap()),
    );
    golden(
        &format!("{prefix}.expected.svg"),
        &svg::encode(p, title).unwrap(),
    );
}

/// A CPU profile written by Go 1.19's runtime/pprof
/// (testdata/src/gocpu/main.go).
#[test]
fn go_runtime_pprof_cpu_profile() {
    let p = pprof::decode(&read("go-cpu.pb.gz")).unwrap();

    // From `go tool pprof -raw` and `-top -sample_index=samples`.
    assert_eq!(
        p.sample_types,
        vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds")
        ]
    );
    assert_eq!(p.period_type, Some(ValueType::new("cpu", "nanoseconds")));
    assert_eq!(p.period, 10_000_000);
    assert_eq!(p.total(0), 131);
    assert_eq!(p.total(1), 1_310_000_000);
    assert!((1_900_000_000..1_920_000_000).contains(&p.duration_nanos));
    assert!(p.mappings()[0].file.ends_with("/gocpu"));

    let text = folded::encode(&p, 0).unwrap();
    let base = "runtime.main;main.main;main.work";
    assert_eq!(
        folded_count(&text, &format!("{base};main.spinArithmetic")),
        Some(90)
    );
    assert_eq!(
        folded_count(
            &text,
            &format!("{base};main.spinArithmetic;runtime.asyncPreempt")
        ),
        Some(3)
    );
    assert_eq!(
        folded_count(
            &text,
            &format!(
                "{base};main.hashBlocks;crypto/sha256.Sum256;crypto/sha256.(*digest).Write;\
                 crypto/sha256.block"
            )
        ),
        Some(38)
    );
    assert_eq!(text.lines().count(), 3);
    let cpu = folded::encode(&p, 1).unwrap();
    assert_eq!(
        folded_count(&cpu, &format!("{base};main.spinArithmetic")),
        Some(900_000_000)
    );

    // pprof → model → pprof keeps everything folded output shows.
    let back = pprof::decode(&pprof::encode(&p).unwrap()).unwrap();
    assert_eq!(folded::encode(&back, 0).unwrap(), text);
    assert_eq!(folded::encode(&back, 1).unwrap(), cpu);

    golden("go-cpu.expected.cpu.folded", cpu.as_bytes());
    // The flame graph agrees with `go tool pprof -top`'s cum column.
    let graph = String::from_utf8(svg::encode(&p, "t").unwrap()).unwrap();
    assert!(graph.contains("<title>main.spinArithmetic (93 samples, 70.99%)</title>"));
    assert!(graph.contains("<title>crypto/sha256.block (38 samples, 29.01%)</title>"));

    check_all_codecs(&p, "go-cpu", "gocpu CPU", true);
}

/// A speedscope file written by py-spy 0.4.3 for a two-thread Python
/// script (testdata/src/pyspy/busy.py).
#[test]
fn py_spy_speedscope_file() {
    let p = speedscope::decode(&read("py-spy.speedscope.json")).unwrap();

    // From reading the JSON with python: two "sampled" profiles in seconds,
    // 54 and 34 samples of 0.02 s each.
    assert_eq!(p.sample_types, vec![ValueType::new("time", "nanoseconds")]);
    assert_eq!(p.total(0), 1_760_000_000);
    let text = folded::encode(&p, 0).unwrap();
    assert_eq!(
        folded_count(&text, "Thread 6152 \"\";<module>;main;add_numbers"),
        Some(1_060_000_000)
    );
    assert_eq!(
        folded_count(
            &text,
            "Thread 6156 \"joiner\";Thread._bootstrap;Thread._bootstrap_inner;Thread.run;\
             join_strings;join_strings.<locals>.<listcomp>"
        ),
        Some(600_000_000)
    );
    assert_eq!(
        folded_count(
            &text,
            "Thread 6156 \"joiner\";Thread._bootstrap;Thread._bootstrap_inner;Thread.run;\
             join_strings"
        ),
        Some(80_000_000)
    );
    assert_eq!(text.lines().count(), 4);
    // Frames keep py-spy's file and line.
    let add = p
        .functions()
        .iter()
        .find(|f| f.name == "add_numbers" && f.start_line == 12)
        .unwrap();
    assert!(add.file.ends_with("/busy.py"));

    // speedscope → model → speedscope keeps stacks and weights.
    let back = speedscope::decode(&speedscope::encode(&p, "py-spy").unwrap()).unwrap();
    assert_eq!(folded::encode(&back, 0).unwrap(), text);

    check_all_codecs(&p, "py-spy", "py-spy busy.py", true);
}

/// `perf record -g` + `perf script` of a C program
/// (testdata/src/perfc/busy.c), collapsed by inferno-collapse-perf 0.12.8.
#[test]
fn perf_script_collapsed_by_inferno() {
    let input = read("perf-busy.folded");
    let p = folded::decode(&input).unwrap();

    // From `perf report --stdio`: 357 samples of period 5025125.
    assert_eq!(p.total(0), 357 * 5_025_125);
    let text = folded::encode(&p, 0).unwrap();
    assert_eq!(
        folded_count(&text, "busy;__libc_start_call_main;main;spin;mix"),
        Some(227 * 5_025_125)
    );
    assert_eq!(
        folded_count(&text, "busy;__libc_start_call_main;main;checksum"),
        Some(119 * 5_025_125)
    );

    // Folded → model → folded is byte-identical on real collapse output,
    // so the capture is its own expected folded output.
    assert_eq!(text.as_bytes(), &input[..]);

    check_all_codecs(&p, "perf-busy", "perf busy", false);
}
