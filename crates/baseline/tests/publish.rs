//! Publishing baseline versions on a real file system that fills up: a
//! small tmpfs, mounted for the test (root).

use std::path::{Path, PathBuf};
use std::process::Command;

use perfpilot_baseline::engine::{latest_version, publish};

/// A tmpfs of `size` mounted on a temporary directory, unmounted when
/// dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            ok.success(),
            "mounting a tmpfs on {} (the test needs root)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system `dir` is on; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("the filler");
    let chunk = vec![0xa5u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("listed")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn root_a_full_disk_leaves_no_partial_version_and_publishing_resumes() {
    let fs = Tmpfs::mount("1m");
    let dir = fs.path().join("baselines");
    let body = |v: u64| {
        Ok(format!("{{\"version\": {v}, \"pad\": \"{}\"}}", "x".repeat(100_000)).into_bytes())
    };
    let (v1, _) = publish(&dir, 0, body).expect("the first version");
    assert_eq!(v1, 1);
    let filler = fill(fs.path());
    let err = publish(&dir, 0, body).expect_err("the disk is full");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(
        names(&dir),
        vec!["v000001.json"],
        "nothing half-written is left"
    );
    std::fs::remove_file(&filler).expect("space freed");
    let (v2, path) = publish(&dir, 0, body).expect("publishing resumes");
    assert_eq!(v2, 2);
    assert_eq!(latest_version(&dir).expect("listed"), Some((2, path)));
    assert_eq!(names(&dir), vec!["v000001.json", "v000002.json"]);
}
