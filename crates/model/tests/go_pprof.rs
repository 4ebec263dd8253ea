//! Checks that `go tool pprof` reads what `pprof::encode` writes.
//!
//! Needs `go` on PATH (CI installs Debian's golang-go); set
//! `PERFPILOT_SKIP_GO=1` to skip where it cannot be installed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use perfpilot_model::{pprof, Function, Line, Location, Mapping, Profile, ValueType};

/// Runs `go tool pprof ARGS FILE` on `p` encoded, or returns None when go is
/// missing and skipping was asked for.
fn go_pprof(p: &Profile, name: &str, args: &[&str]) -> Option<String> {
    match Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => {}
        other => {
            if std::env::var("PERFPILOT_SKIP_GO").as_deref() == Ok("1") {
                eprintln!("skipping: `go` is not usable and PERFPILOT_SKIP_GO=1");
                return None;
            }
            panic!(
                "this test needs the Go toolchain on PATH to run `go tool pprof` \
                 (apt-get install golang-go), or PERFPILOT_SKIP_GO=1 to skip it; \
                 running `go version` gave {other:?}"
            );
        }
    }
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.pb.gz", std::process::id()));
    std::fs::write(&path, pprof::encode(p).unwrap()).unwrap();
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "go tool pprof failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    Some(stdout)
}

/// `name → (flat, cum)` from `go tool pprof -top` output.
fn top_rows(output: &str) -> HashMap<String, (String, String)> {
    output
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.len() >= 6).then(|| {
                (
                    fields[5..].join(" "),
                    (fields[0].to_string(), fields[3].to_string()),
                )
            })
        })
        .collect()
}

/// A profile using every kind of location pprof has: symbolized with a
/// mapping, inlined frames, function-only, and unsymbolized.
fn profile() -> Profile {
    let mut p = Profile::new(vec![
        ValueType::new("samples", "count"),
        ValueType::new("cpu", "nanoseconds"),
    ]);
    p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
    p.period = 10_000_000;
    p.duration_nanos = 1_000_000_000;
    let m = p.add_mapping(Mapping {
        start: 0x40_0000,
        limit: 0x80_0000,
        offset: 0,
        file: "/opt/perfpilot-test/app".into(),
        build_id: "0123abcd".into(),
    });
    let function = |p: &mut Profile, name: &str| {
        p.add_function(Function {
            name: name.into(),
            system_name: name.into(),
            file: "app/main.go".into(),
            start_line: 1,
        })
    };
    let main = function(&mut p, "main.main");
    let work = function(&mut p, "main.work");
    let hot = function(&mut p, "main.hotLoop");
    let helper = function(&mut p, "main.inlinedHelper");
    let parse = p.add_function_named("encoding/json.Unmarshal");

    let l_main = p.add_location(Location {
        mapping: Some(m),
        address: 0x40_1000,
        lines: vec![Line {
            function: main,
            line: 10,
        }],
    });
    let l_work = p.add_location(Location {
        mapping: Some(m),
        address: 0x40_2000,
        lines: vec![
            Line {
                function: helper,
                line: 40,
            },
            Line {
                function: work,
                line: 20,
            },
        ],
    });
    let l_hot = p.add_location(Location {
        mapping: Some(m),
        address: 0x40_3000,
        lines: vec![Line {
            function: hot,
            line: 30,
        }],
    });
    let l_parse = p.add_function_location(parse);
    let labels = p.add_label_set([("process_name", "app"), ("pid", "4242")]);
    let hot_stack = p.add_stack(&[l_hot, l_work, l_main]);
    let work_stack = p.add_stack(&[l_work, l_main]);
    let parse_stack = p.add_stack(&[l_parse, l_main]);
    p.add_sample(hot_stack, labels, &[7, 70_000_000]);
    p.add_sample(work_stack, labels, &[2, 20_000_000]);
    p.add_sample(parse_stack, labels, &[3, 30_000_000]);
    p
}

#[test]
fn go_tool_pprof_top_shows_our_functions_and_counts() {
    let Some(out) = go_pprof(&profile(), "top", &["-top", "-nodecount=50"]) else {
        return;
    };
    let rows = top_rows(&out);
    let row = |name: &str| {
        rows.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from `go tool pprof -top`:\n{out}"))
    };
    assert_eq!(row("main.hotLoop"), ("7".into(), "7".into()), "{out}");
    assert_eq!(
        row("encoding/json.Unmarshal"),
        ("3".into(), "3".into()),
        "{out}"
    );
    // pprof marks frames that a location lists before its last line.
    assert_eq!(
        row("main.inlinedHelper (inline)"),
        ("2".into(), "9".into()),
        "{out}"
    );
    assert_eq!(row("main.work"), ("0".into(), "9".into()), "{out}");
    assert_eq!(row("main.main"), ("0".into(), "12".into()), "{out}");
    assert!(out.contains("Type: samples"), "{out}");
    assert_eq!(rows.len(), 5, "{out}");
}

#[test]
fn go_tool_pprof_reads_our_labels_and_second_value() {
    let Some(out) = go_pprof(&profile(), "tags", &["-tags"]) else {
        return;
    };
    assert!(out.contains("process_name: Total 12"), "{out}");
    assert!(out.contains("app"), "{out}");
    assert!(out.contains("pid: Total 12"), "{out}");
    assert!(out.contains("4242"), "{out}");

    let Some(out) = go_pprof(
        &profile(),
        "cpu",
        &["-top", "-nodecount=50", "-sample_index=cpu"],
    ) else {
        return;
    };
    let rows = top_rows(&out);
    assert_eq!(
        rows.get("main.hotLoop").map(|r| r.0.as_str()),
        Some("70ms"),
        "{out}"
    );
}
