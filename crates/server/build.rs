//! Embeds the web UI's production build (`ui/dist` at the repository root,
//! made by scripts/build-ui.sh) into the server binary, so one file serves
//! both the API and the UI.
//!
//! Generates `$OUT_DIR/ui_assets.rs`: a table of (URL path, content type,
//! bytes, gzipped bytes) read by `src/ui.rs`. Text files are gzipped here,
//! once, rather than on every request. Without `ui/dist/index.html` the
//! table is empty and the server says how to build the UI.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // crates/server → the repository root; canonical, so the paths given to
    // include_bytes! and rerun-if-changed hold no "..".
    let root = manifest
        .canonicalize()
        .ok()
        .and_then(|m| m.parent()?.parent().map(Path::to_path_buf));
    let dist = root.as_ref().map(|r| r.join("ui").join("dist"));

    let assets = match &dist {
        Some(dist) if dist.join("index.html").is_file() => {
            println!("cargo:rerun-if-changed={}", dist.display());
            collect(dist)
                .unwrap_or_else(|e| panic!("reading the web UI build in {}: {e}", dist.display()))
        }
        _ => {
            println!(
                "cargo:warning=the web UI was not built (no ui/dist/index.html): the server \
                 will say so at /; run scripts/build-ui.sh, then cargo build"
            );
            if let Some(root) = &root {
                watch_for_build(root);
            }
            Vec::new()
        }
    };

    let code = generate(&assets, &out.join("ui"))
        .unwrap_or_else(|e| panic!("writing the embedded web UI into {}: {e}", out.display()));
    fs::write(out.join("ui_assets.rs"), code)
        .unwrap_or_else(|e| panic!("writing {}/ui_assets.rs: {e}", out.display()));
}

/// Makes a later `ui/dist` trigger a rebuild. Cargo treats a missing
/// rerun-if-changed path as changed, which would recompile the server on
/// every build, so the existing `ui/` is watched instead (cargo scans it
/// recursively: editing UI sources then rebuilds the server too, only
/// while no UI build exists). Without `ui/` (a packaged crate) there is
/// nothing to wait for.
fn watch_for_build(root: &Path) {
    let ui = root.join("ui");
    if ui.is_dir() {
        println!("cargo:rerun-if-changed={}", ui.display());
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}

/// One file of the UI build.
struct File {
    /// Absolute path on disk.
    source: PathBuf,
    /// URL path, e.g. `/assets/index-3f2a.js`.
    url: String,
    content_type: &'static str,
    compress: bool,
}

/// Every file under `dist`, sorted by URL path; dotfiles are skipped.
fn collect(dist: &Path) -> io::Result<Vec<File>> {
    let mut files = Vec::new();
    let mut dirs = vec![dist.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            // Follows symlinks, as a copy of the build would.
            let meta = fs::metadata(&path)?;
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let Some(rel) = path.strip_prefix(dist).ok().and_then(Path::to_str) else {
                println!(
                    "cargo:warning=skipping {}: not a UTF-8 path, so it has no URL",
                    path.display()
                );
                continue;
            };
            let url = format!("/{}", rel.replace(std::path::MAIN_SEPARATOR, "/"));
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            let (content_type, compress) = content_type(&ext);
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(File {
                source: path,
                url,
                content_type,
                compress,
            });
        }
    }
    files.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(files)
}

/// (Content-Type, worth gzipping) by extension.
fn content_type(ext: &str) -> (&'static str, bool) {
    match ext {
        "html" | "htm" => ("text/html; charset=utf-8", true),
        "js" | "mjs" => ("text/javascript; charset=utf-8", true),
        "css" => ("text/css; charset=utf-8", true),
        "json" | "map" => ("application/json", true),
        "webmanifest" => ("application/manifest+json", true),
        "svg" => ("image/svg+xml", true),
        "txt" => ("text/plain; charset=utf-8", true),
        "wasm" => ("application/wasm", true),
        "ttf" => ("font/ttf", true),
        "ico" => ("image/x-icon", true),
        "png" => ("image/png", false),
        "jpg" | "jpeg" => ("image/jpeg", false),
        "gif" => ("image/gif", false),
        "webp" => ("image/webp", false),
        "avif" => ("image/avif", false),
        "woff" => ("font/woff", false),
        "woff2" => ("font/woff2", false),
        _ => ("application/octet-stream", false),
    }
}

/// The Rust source of the asset table; gzipped copies go into `gz_dir`.
fn generate(files: &[File], gz_dir: &Path) -> io::Result<String> {
    // Copies from an earlier build would linger otherwise.
    if gz_dir.exists() {
        fs::remove_dir_all(gz_dir)?;
    }
    fs::create_dir_all(gz_dir)?;
    let mut code = String::from(
        "// Generated by build.rs from ui/dist: the embedded web UI.\n\
         pub(crate) static ASSETS: &[Asset] = &[\n",
    );
    for (i, f) in files.iter().enumerate() {
        let gzip = if f.compress {
            let plain = fs::read(&f.source)?;
            let gz = gzip(&plain)?;
            // Only when it saves something: tiny files can grow.
            if gz.len() < plain.len() {
                let gz_path = gz_dir.join(format!("{i}.gz"));
                fs::write(&gz_path, gz)?;
                Some(gz_path)
            } else {
                None
            }
        } else {
            None
        };
        let gzip = match gzip.as_deref().map(Path::to_str) {
            Some(Some(p)) => format!("Some(include_bytes!({p:?}))"),
            Some(None) => return Err(io::Error::other("OUT_DIR is not a UTF-8 path")),
            None => "None".to_string(),
        };
        let source = f.source.to_str().ok_or_else(|| {
            io::Error::other(format!("{} is not a UTF-8 path", f.source.display()))
        })?;
        // Debug formatting of a str is a valid Rust string literal.
        let _ = writeln!(
            code,
            "    Asset {{ path: {:?}, content_type: {:?}, bytes: include_bytes!({:?}), gzip: {} }},",
            f.url, f.content_type, source, gzip
        );
    }
    code.push_str("];\n");
    Ok(code)
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    // flate2 writes a zero timestamp, so builds are reproducible.
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data)?;
    enc.finish()
}
