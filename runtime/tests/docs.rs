//! The documentation against itself and against the code. README.md is the
//! landing page and the references live in `docs/`: every Markdown file of
//! the repository has working relative links (files and `#anchors`), README
//! links every `docs/` page, and the reference pages name every CLI command
//! and flag (`docs/cli.md`, `docs/configuration.md`), every HTTP route of the
//! OpenAPI document (`docs/http.md`) and every key of the config file
//! (`docs/configuration.md`). `docs/metrics.md` has its own test
//! (`metrics.rs`). The projection README.md shows is built from the README
//! (`testing/guests/readme-page-views`) and run as the README says.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use projector::config::FileConfig;
use utoipa::OpenApi;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ sits in the repository")
        .to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn docs_page(name: &str) -> String {
    read(&repo().join("docs").join(name))
}

/// Every Markdown file of the repository, build output, installed tools and
/// hidden folders left out.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let skipped = name.starts_with('.')
                    || matches!(
                        name.as_str(),
                        "target" | "node_modules" | "corpus" | "artifacts"
                    );
                if !skipped {
                    walk(&path, out);
                }
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo(), &mut out);
    out
}

/// The lines of a Markdown file outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// `line` without its inline code spans (a `[x](y)` inside backticks is
/// code, not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` of a Markdown file, with
/// their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push((number, target.to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as
/// `-`, and `-1`, `-2` ... for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug: String = line[hashes..]
            .trim()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .flat_map(char::to_lowercase)
            .collect();
        let repeat = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *repeat == 0 {
            slug
        } else {
            format!("{slug}-{repeat}")
        });
        *repeat += 1;
    }
    out
}

/// `base/relative` with `.` and `..` folded, without touching the disk.
fn join(base: &Path, relative: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for part in base.join(relative).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn no_markdown_file_has_a_broken_link() {
    let root = repo();
    let files = markdown_files();
    assert!(
        files.iter().any(|f| f.ends_with("docs/cli.md")),
        "the walk found no docs/cli.md: {files:?}"
    );
    let mut broken = Vec::new();
    for file in &files {
        let text = read(file);
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                join(file.parent().unwrap(), path)
            };
            if !resolved.starts_with(&root) || !resolved.exists() {
                broken.push(format!("{shown}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor {
                let is_markdown = resolved.extension().is_some_and(|e| e == "md");
                if is_markdown && !anchors(&read(&resolved)).contains(anchor) {
                    broken.push(format!(
                        "{shown}:{line}: {target}: no heading with that anchor"
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn readme_links_every_docs_page() {
    let readme = read(&repo().join("README.md"));
    let linked: BTreeSet<String> = links(&readme).into_iter().map(|(_, t)| t).collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") && !linked.contains(&format!("docs/{name}")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md does not link these docs/ pages (add them to \"Where to go next\"): {missing:?}"
    );
}

/// The anchor check itself, on the cases the docs rely on.
#[test]
fn anchors_follow_github() {
    let text = "# Error policies, limits and the sandbox\n## `as_of` reads\n## Dashboard\n## Dashboard\n```sh\n# not a heading\n```\n";
    let got = anchors(text);
    let want: BTreeSet<String> = [
        "error-policies-limits-and-the-sandbox",
        "as_of-reads",
        "dashboard",
        "dashboard-1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        links("see [`x`](../a.md#b) and `[c](d)`\n```\n[e](f)\n```\n"),
        vec![(1, "../a.md#b".to_owned())]
    );
}

/// `projector ARGS --help` on stdout.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "projector {args:?} --help failed: {out:?}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a clap help lists under `Commands:` (`help` left out).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// The long flags a clap help lists under `Options:` (`--help` left out).
fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Options:")
        .skip(1)
        .filter(|l| l.trim_start().starts_with('-'))
        .filter_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == ',' || c == '=')
                .find(|word| word.starts_with("--"))
        })
        .filter(|flag| *flag != "--help")
        .map(String::from)
        .collect()
}

#[test]
fn cli_reference_names_every_command_and_flag() {
    let cli = docs_page("cli.md");
    let configuration = docs_page("configuration.md");
    let mut missing = Vec::new();
    let mut checked = 0;
    let top = help(&[]);
    let mut commands: Vec<Vec<String>> = subcommands(&top).into_iter().map(|c| vec![c]).collect();
    assert!(
        commands.len() >= 10,
        "projector --help lists too few commands:\n{top}"
    );
    while let Some(command) = commands.pop() {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let text = help(&args);
        let nested = subcommands(&text);
        let form = format!("projector {}", command.join(" "));
        if nested.is_empty() {
            // `snapshot list|create` documents two subcommands in one form.
            let parent = format!("projector {}", command[..command.len() - 1].join(" "));
            let last = command.last().unwrap();
            let named = cli.contains(&format!("`{form}"))
                || (command.len() > 1
                    && cli.lines().any(|l| {
                        l.contains(&format!("`{parent} "))
                            && l.split(['`', ' ', '|']).any(|w| w == last)
                    }));
            if !named {
                missing.push(format!("{form}: no row in docs/cli.md"));
            }
            for flag in long_flags(&text) {
                checked += 1;
                let documented = [&cli, &configuration].iter().any(|page| {
                    page.match_indices(flag.as_str()).any(|(at, _)| {
                        // `--kafka` must not count as `--kafka-property`.
                        !page[at + flag.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '-')
                    })
                });
                if !documented {
                    missing.push(format!(
                        "{form} {flag}: not in docs/cli.md or docs/configuration.md"
                    ));
                }
            }
        } else {
            commands.extend(nested.into_iter().map(|sub| {
                let mut path = command.clone();
                path.push(sub);
                path
            }));
        }
    }
    assert!(
        checked >= 20,
        "only {checked} flags found: the help format changed?"
    );
    assert!(
        missing.is_empty(),
        "undocumented CLI:\n{}",
        missing.join("\n")
    );
}

#[test]
fn http_reference_names_every_route() {
    let http = docs_page("http.md");
    let document = projector::api::openapi::ApiDoc::openapi();
    let mut missing = Vec::new();
    let mut checked = 0;
    let json = serde_json::to_value(&document).unwrap();
    for (path, item) in json["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head"] {
            if item.get(method).is_none() {
                continue;
            }
            checked += 1;
            let route = format!("`{} {path}", method.to_uppercase());
            let documented = http
                .match_indices(&route)
                .any(|(at, _)| http[at + route.len()..].starts_with(['`', '?']));
            if !documented {
                missing.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        checked >= 15,
        "only {checked} routes in the OpenAPI document"
    );
    assert!(
        missing.is_empty(),
        "routes missing from docs/http.md's table:\n{}",
        missing.join("\n")
    );
}

/// The fields a `deny_unknown_fields` struct accepts, from the error serde
/// gives for an unknown one.
fn accepted_keys(toml: &str) -> Vec<String> {
    let error = toml::from_str::<FileConfig>(toml)
        .expect_err("an unknown key is refused")
        .to_string();
    let list = error
        .split("expected one of ")
        .nth(1)
        .or_else(|| error.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("no list of keys in: {error}"));
    list.split(',')
        .filter_map(|part| part.split('`').nth(1))
        .map(String::from)
        .collect()
}

#[test]
fn configuration_reference_names_every_key() {
    let page = docs_page("configuration.md");
    let mut missing = Vec::new();
    let top = accepted_keys("not_a_key = 1");
    assert!(top.len() >= 20, "top-level keys: {top:?}");
    for key in &top {
        if !page.contains(&format!("`{key}`")) && !page.contains(&format!("`[{key}]")) {
            missing.push(key.clone());
        }
    }
    for (section, preamble) in [
        ("limits", ""),
        ("snapshots", ""),
        ("kafka", "bootstrap = \"x\"\n"),
    ] {
        let keys = accepted_keys(&format!("[{section}]\n{preamble}not_a_key = 1\n"));
        assert!(!keys.is_empty(), "[{section}] has no keys?");
        for key in keys {
            let documented = page.lines().any(|line| {
                line.contains(&format!("`[{section}"))
                    && (line.contains(&format!("`[{section}] {key}`"))
                        || line.contains(&format!("`{key}`"))
                        || line.contains(&format!("`[{section}.{key}]`")))
            });
            if !documented {
                missing.push(format!("[{section}] {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config keys missing from docs/configuration.md: {missing:?}"
    );
}

/// README.md's page-views projection, compiled from the README, loaded by
/// the host and fed and queried with the README's own commands.
#[test]
fn the_readme_projection_builds_and_answers_as_shown() {
    let server = common::Server::with_modules(&[projector_test_guests::README_PAGE_VIEWS]).start();
    // echo '{"page": "/home"}' | projector publish views --key-field page
    let mut publish = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(["publish", "views", "--key-field", "page"])
        .env("PROJECTOR_SERVER", &server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    publish
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"page\": \"/home\"}\n")
        .unwrap();
    let published = publish.wait_with_output().unwrap();
    assert!(published.status.success(), "{}", common::stderr(&published));
    server.wait_applied("page-views", 1);
    // projector query page-views page//home
    let query = server.cli(&["query", "page-views", "page//home"]);
    assert!(query.status.success(), "{}", common::stderr(&query));
    assert_eq!(common::stdout(&query).trim(), "1");
    // curl localhost:7878/v1/projections/page-views/state/page%2F%2Fhome
    let reply = server.get("/v1/projections/page-views/state/page%2F%2Fhome");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, serde_json::json!(1));
}
