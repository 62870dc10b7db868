//! `projector new`: writes a ready-to-build projection project from the
//! templates under `sdk/<lang>/template*/`, with a copy of that language's
//! SDK and the WIT contract, all embedded in this binary at build time.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/scaffold_files.rs"));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    Ts,
    Go,
    C,
}

impl Lang {
    /// The folder under `sdk/` holding the SDK, and its template folder.
    fn sources(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("rust", "rust/template"),
            Lang::Python => ("python", "python/template"),
            Lang::Js => ("js", "js/template"),
            Lang::Ts => ("js", "js/template-ts"),
            Lang::Go => ("go", "go/template"),
            Lang::C => ("c", "c/template"),
        }
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Projection name: 1 to 64 of a-z, 0-9 and '-', not starting with '-'
    name: String,
    /// Language of the projection
    #[arg(long, value_enum)]
    lang: Lang,
    /// Folder to create [default: ./NAME]; must not exist or be empty
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

/// The host's rule for projection names (see `describe` validation).
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "invalid projection name {name:?}: use 1 to 64 characters of a-z, 0-9 and '-', not starting with '-' (e.g. `page-views`)"
        );
    }
    Ok(())
}

pub fn execute(args: NewArgs) -> Result<ExitCode> {
    check_name(&args.name)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = project_files(&args.name, args.lang)?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(&dir).with_context(|| {
            format!(
                "{} exists and is not a readable folder; pick another --dir",
                dir.display()
            )
        })?;
        if entries.next().is_some() {
            bail!(
                "{} exists and is not empty; pick another --dir or remove it",
                dir.display()
            );
        }
    }
    for (path, bytes) in &files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
        if path.ends_with(".sh") {
            make_executable(&target)?;
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created {} ({} files): a {} projection `{}`",
        dir.display(),
        files.len(),
        args.lang
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned()),
        args.name
    )?;
    writeln!(out, "next: cd {} && see README.md", dir.display())?;
    writeln!(
        out,
        "  ./build.sh && projector test build/{}.wasm --events events.jsonl --expect expected.json",
        args.name
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

/// Every file of the project, by relative path.
fn project_files(name: &str, lang: Lang) -> Result<Vec<(String, Vec<u8>)>> {
    let (sdk_dir, template_dir) = lang.sources();
    let mut files: Vec<(String, Vec<u8>)> = embedded::TEMPLATE_FILES
        .iter()
        .filter(|(dir, _, _)| *dir == template_dir)
        .map(|(_, path, bytes)| (fill(path, name), fill_bytes(bytes, name)))
        .collect();
    if files.is_empty() {
        bail!(
            "this projector was built without a {} template (sdk/{template_dir}/ was missing at build time); rebuild projector from a checkout that has it",
            lang.to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned())
        );
    }
    for (dir, path, bytes) in embedded::SDK_FILES {
        if *dir == sdk_dir {
            files.push((format!("sdk/{path}"), vendored(lang, path, bytes)?));
        }
    }
    if lang == Lang::Rust {
        // The vendored SDK cannot inherit from the host's workspace.
        files.retain(|(path, _)| path != "sdk/Cargo.toml");
        files.push(("sdk/Cargo.toml".to_owned(), RUST_SDK_MANIFEST.into()));
        // Pins the crates the host's own guests are built and tested with;
        // cargo drops the entries this project does not use.
        files.push(("Cargo.lock".to_owned(), embedded::CARGO_LOCK.to_vec()));
    }
    files.push((
        "wit/projection.wit".to_owned(),
        embedded::PROJECTION_WIT.to_vec(),
    ));
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    Ok(files)
}

/// A standalone manifest for the vendored Rust SDK: the workspace one
/// inherits versions and lints from the host's workspace.
const RUST_SDK_MANIFEST: &str = r#"[package]
name = "projector-sdk"
description = "Write Projector projections in Rust: one handler per event, typed JSON state, queries"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
license = "Apache-2.0"
publish = false

[dependencies]
wit-bindgen = { version = "0.63", default-features = false, features = ["macros", "realloc"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
"#;

/// A file of the SDK as the project needs it.
fn vendored(lang: Lang, path: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    if lang == Lang::Rust && path == "src/lib.rs" {
        // In the checkout the WIT is two folders up (sdk/rust -> wit); in a
        // project the SDK sits in sdk/ beside wit/.
        let text = std::str::from_utf8(bytes).context("sdk/rust/src/lib.rs is not UTF-8")?;
        let from = "path: \"../../wit\"";
        if !text.contains(from) {
            bail!(
                "sdk/rust/src/lib.rs no longer says `{from}`; update the WIT path rewrite in projector new"
            );
        }
        return Ok(text.replacen(from, "path: \"../wit\"", 1).into_bytes());
    }
    Ok(bytes.to_vec())
}

/// `{{name}}` and its spellings: `{{name_snake}}` (`page_views`, Rust crate
/// and C identifiers), `{{name_pascal}}` (`PageViews`, type names).
fn fill(text: &str, name: &str) -> String {
    let snake = name.replace('-', "_");
    let pascal: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    text.replace("{{name_snake}}", &snake)
        .replace("{{name_pascal}}", &pascal)
        .replace("{{name}}", name)
}

fn fill_bytes(bytes: &[u8], name: &str) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => fill(text, name).into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_host_rule() {
        assert!(check_name("page-views").is_ok());
        assert!(check_name("a1").is_ok());
        for bad in ["", "Page", "-x", "a_b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placeholders_take_every_spelling() {
        assert_eq!(
            fill("{{name}} {{name_snake}} {{name_pascal}}", "page-views-2"),
            "page-views-2 page_views_2 PageViews2"
        );
    }

    #[test]
    fn every_template_in_this_build_makes_a_project_with_its_sdk_and_wit() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::Ts] {
            let files = project_files("demo", lang).unwrap();
            let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
            for wanted in [
                "build.sh",
                "README.md",
                "events.jsonl",
                "expected.json",
                "wit/projection.wit",
            ] {
                assert!(
                    paths.contains(&wanted),
                    "{lang:?}: no {wanted} in {paths:?}"
                );
            }
            assert!(paths.iter().any(|p| p.starts_with("sdk/")), "{lang:?}");
            assert!(
                !paths
                    .iter()
                    .any(|p| p.contains("{{") || p.contains("__pycache__")),
                "{lang:?}: {paths:?}"
            );
            for (path, bytes) in &files {
                if !path.starts_with("sdk/") {
                    let text = String::from_utf8_lossy(bytes);
                    assert!(
                        !text.contains("{{name"),
                        "{lang:?} {path}: unfilled placeholder"
                    );
                }
            }
        }
        let rust = project_files("demo", Lang::Rust).unwrap();
        let lib = rust.iter().find(|(p, _)| p == "sdk/src/lib.rs").unwrap();
        assert!(String::from_utf8_lossy(&lib.1).contains("path: \"../wit\""));
    }
}
