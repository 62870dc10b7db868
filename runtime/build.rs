//! Embeds what `projector new` writes: every SDK under `sdk/<lang>/` (its
//! project templates `template*/` apart), the WIT contract and the
//! workspace's Cargo.lock, into `$OUT_DIR/scaffold_files.rs`, so an
//! installed binary needs no checkout.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Folders that are tests, caches or build outputs, never part of an SDK copy.
const SKIPPED_DIRS: &[&str] = &[
    "tests",
    "test",
    "__pycache__",
    "node_modules",
    "build",
    "target",
    "dist",
    "out",
    ".pytest_cache",
    ".mypy_cache",
];
const SKIPPED_EXTENSIONS: &[&str] = &["pyc", "wasm", "o", "a", "obj", "so", "dylib", "dll"];

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("runtime/ sits in the workspace")
        .to_path_buf();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let sdk = root.join("sdk");
    println!("cargo:rerun-if-changed={}", sdk.display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("wit/projection.wit").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    // (folder under sdk/, path inside it, absolute file)
    let mut sdk_files = Vec::new();
    let mut template_files = Vec::new();
    let mut langs: Vec<_> = std::fs::read_dir(&sdk)
        .unwrap_or_else(|e| panic!("read {}: {e}", sdk.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    langs.sort();
    for lang in &langs {
        let dir = sdk.join(lang);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            if entry.is_dir() && name.starts_with("template") {
                // Templates are copied whole: a template's own tests belong
                // to the generated project.
                walk(&entry, &entry, &[], &mut |rel, abs| {
                    template_files.push((format!("{lang}/{name}"), rel, abs));
                });
            } else if entry.is_dir() {
                if skipped(&name, true) {
                    continue;
                }
                walk(&dir, &entry, SKIPPED_DIRS, &mut |rel, abs| {
                    sdk_files.push((lang.clone(), rel, abs));
                });
            } else if !skipped(&name, false) {
                sdk_files.push((lang.clone(), name, entry));
            }
        }
    }

    let mut code = String::new();
    code.push_str("/// (SDK folder, path inside it, bytes)\npub static SDK_FILES: &[(&str, &str, &[u8])] = &[\n");
    for (lang, rel, abs) in &sdk_files {
        writeln!(
            code,
            "    ({lang:?}, {rel:?}, include_bytes!({:?})),",
            path_str(abs)
        )
        .unwrap();
    }
    code.push_str("];\n/// (`<lang>/template...`, path inside it, bytes)\npub static TEMPLATE_FILES: &[(&str, &str, &[u8])] = &[\n");
    for (dir, rel, abs) in &template_files {
        writeln!(
            code,
            "    ({dir:?}, {rel:?}, include_bytes!({:?})),",
            path_str(abs)
        )
        .unwrap();
    }
    code.push_str("];\n");
    writeln!(
        code,
        "pub static PROJECTION_WIT: &[u8] = include_bytes!({:?});",
        path_str(&root.join("wit/projection.wit"))
    )
    .unwrap();
    writeln!(
        code,
        "pub static CARGO_LOCK: &[u8] = include_bytes!({:?});",
        path_str(&root.join("Cargo.lock"))
    )
    .unwrap();
    std::fs::write(out.join("scaffold_files.rs"), code).expect("write scaffold_files.rs");
}

fn skipped(name: &str, is_dir: bool) -> bool {
    if name.starts_with('.')
        || (is_dir && (SKIPPED_DIRS.contains(&name) || name.ends_with(".egg-info")))
    {
        return true;
    }
    !is_dir
        && Path::new(name)
            .extension()
            .is_some_and(|ext| SKIPPED_EXTENSIONS.contains(&ext.to_string_lossy().as_ref()))
}

/// Every file under `dir`, by path relative to `base` with `/` separators,
/// in sorted order; `skip` names folders left out (plus hidden ones and
/// build outputs when `skip` is not empty).
fn walk(base: &Path, dir: &Path, skip: &[&str], found: &mut dyn FnMut(String, PathBuf)) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let is_dir = path.is_dir();
        if !skip.is_empty() && skipped(&name, is_dir) {
            continue;
        }
        if skip.is_empty()
            && (name == "__pycache__" || name == "node_modules" || name.ends_with(".pyc"))
        {
            continue;
        }
        if is_dir {
            walk(base, &path, skip, found);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            found(rel, path);
        }
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}
