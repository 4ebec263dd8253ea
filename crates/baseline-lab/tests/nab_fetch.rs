//! `scripts/nab-corpus.sh --fetch`: the NAB corpus downloaded at its
//! pinned commit is kept only when every file matches the committed
//! checksums. The "download" here is a tarball made from the local
//! corpus, laid out as GitHub's archive is, through a file:// address.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::nab_dir;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/nab-corpus.sh")
}

/// `tar` of `corpus` under a top directory named as GitHub names it.
fn tarball(corpus: &Path, out: &Path) {
    let top = "NAB-ea702d75cc2258d9d7dd35ca8e5e2539d71f3140";
    let name = corpus.file_name().unwrap().to_str().unwrap();
    let status = Command::new("tar")
        .arg("-czf")
        .arg(out)
        .arg("-C")
        .arg(corpus.parent().unwrap())
        .arg(format!("--transform=s|^{name}|{top}|"))
        .arg(name)
        .status()
        .unwrap();
    assert!(status.success(), "tar: {status}");
}

fn fetch(url: &Path, dest: &Path) -> Output {
    Command::new("bash")
        .arg(script())
        .arg("--fetch")
        .arg(dest)
        .env("PERFPILOT_NAB_URL", format!("file://{}", url.display()))
        .output()
        .unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_download_is_kept_only_when_every_file_matches_its_checksum() {
    let corpus = nab_dir();
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.tar.gz");
    tarball(&corpus, &good);
    let dest = tmp.path().join("cache/nab");

    let out = fetch(&good, &dest);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dest.display().to_string()
    );
    assert!(stderr.contains("verified 256 files"), "{stderr}");
    let windows = "labels/combined_windows.json";
    assert_eq!(
        std::fs::read(dest.join(windows)).unwrap(),
        std::fs::read(corpus.join(windows)).unwrap()
    );
    // Verified once, the copy is used without downloading again.
    let out = fetch(&tmp.path().join("gone.tar.gz"), &dest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One series changed and one file missing: refused, naming both, and
    // nothing is kept.
    let altered = tmp.path().join("nab");
    copy_tree(&corpus, &altered);
    let series = "data/realTweets/Twitter_volume_AAPL.csv";
    let mut text = std::fs::read_to_string(altered.join(series)).unwrap();
    text.push_str("2015-04-23 03:00:00,1\n");
    std::fs::write(altered.join(series), text).unwrap();
    std::fs::remove_file(altered.join("config/profiles.json")).unwrap();
    let bad = tmp.path().join("bad.tar.gz");
    tarball(&altered, &bad);
    let other = tmp.path().join("cache/other");
    let out = fetch(&bad, &other);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{series}: FAILED")), "{stderr}");
    assert!(stderr.contains("config/profiles.json: FAILED"), "{stderr}");
    assert!(
        stderr.contains(
            "does not match scripts/nab-corpus.sha256 (2 file(s) above); nothing was kept"
        ),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("nab")], "{left:?}");
}

#[test]
fn an_unreachable_source_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fetch(&tmp.path().join("absent.tar.gz"), &tmp.path().join("nab"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot download the NAB corpus from file://")
            && stderr.contains("set PERFPILOT_NAB_DIR"),
        "{stderr}"
    );
    assert!(!tmp.path().join("nab").exists());
}
