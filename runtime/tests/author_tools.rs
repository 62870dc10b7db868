//! The authoring tools of the real `projector` binary: `projector test` on
//! the example modules (components and a core module), and `projector new`
//! for every language followed by the project's own build script, its
//! native unit tests and `projector test` on the module it built.
//!
//! Toolchains are not installed here: a missing one fails its test with the
//! command that installs it (the `scripts/build-*-examples.sh` of that
//! language), never skips it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{events_file, stderr, stdout};
use projector_test_guests::{ACCOUNT_BALANCES, GLOBAL_COUNTER, ORDER_TOTALS};
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the binary in `dir`, with its per-user compiled-code cache in
/// `dir/.cache/projector` (never the real home folder's).
fn projector(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(args)
        .current_dir(dir)
        .env("PROJECTOR_LOG", "warn")
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .env_remove("PROJECTOR_TEST_CACHE_DIR")
        .env_remove("PROJECTOR_DATA")
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

fn orders() -> (PathBuf, PathBuf) {
    (
        events_file("orders.jsonl"),
        events_file("orders.expected.json"),
    )
}

#[test]
fn example_modules_reach_their_expected_state() {
    let dir = tempfile::tempdir().unwrap();
    for (module, events, expected) in [
        (ORDER_TOTALS, "orders.jsonl", "orders.expected.json"),
        (ACCOUNT_BALANCES, "accounts.jsonl", "accounts.expected.json"),
    ] {
        let (events, expected) = (events_file(events), events_file(expected));
        let output = projector(
            &[
                "test",
                module,
                "--events",
                path(&events),
                "--expect",
                path(&expected),
                "--exact",
            ],
            dir.path(),
        );
        assert!(output.status.success(), "{module}: {}", show(&output));
        assert!(
            stderr(&output).contains("byte for byte"),
            "{}",
            show(&output)
        );
        // Without --expect the state is printed, one key a line, sorted.
        let output = projector(&["test", module, "--events", path(&events)], dir.path());
        assert!(output.status.success(), "{}", show(&output));
        let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(printed, common::read_json(&expected));
        let text = stdout(&output);
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('"'))
            .map(|l| l.split('"').next().unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), printed.as_object().unwrap().len());
    }
}

#[test]
fn a_query_is_answered_on_the_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = orders();
    let output = projector(
        &[
            "test",
            ORDER_TOTALS,
            "--events",
            path(&events),
            "--query",
            "top-customers",
            "--args",
            r#"{"n": 2}"#,
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(
        stdout(&output).trim(),
        r#"[{"customer":"carol","total_cents":32472},{"customer":"bob","total_cents":18490}]"#
    );
    let output = projector(
        &[
            "test",
            ORDER_TOTALS,
            "--events",
            path(&events),
            "--query",
            "top-customers",
            "--args",
            r#"{"n": -1}"#,
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(stderr(&output).contains("bad-args"), "{}", show(&output));
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let (events, expected) = orders();
    let mut wrong = common::read_json(&expected);
    wrong["customer/alice"] = json!({"orders": 1, "total_cents": 3});
    wrong.as_object_mut().unwrap().remove("customer/bob");
    wrong["customer/zed"] = json!({"orders": 0, "total_cents": 0});
    let file = dir.path().join("wrong.json");
    std::fs::write(&file, serde_json::to_string_pretty(&wrong).unwrap()).unwrap();
    let output = projector(
        &[
            "test",
            ORDER_TOTALS,
            "--events",
            path(&events),
            "--expect",
            path(&file),
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let diff = stdout(&output);
    assert!(diff.contains("(1 missing, 1 extra, 1 different)"), "{diff}");
    for line in [
        r#"differs "customer/alice": expected {"orders":1,"total_cents":3}, got {"orders":8,"total_cents":14482}"#,
        r#"extra   "customer/bob": got {"orders":7,"total_cents":18490}"#,
        r#"missing "customer/zed": expected {"orders":0,"total_cents":0}"#,
    ] {
        assert!(diff.contains(line), "no {line:?} in\n{diff}");
    }
}

#[test]
fn exact_catches_a_byte_difference_that_json_equality_forgives() {
    let dir = tempfile::tempdir().unwrap();
    let (events, expected) = orders();
    // Same values, fields in another order and a float: equal as JSON,
    // not the bytes the module stores.
    let mut text = std::fs::read_to_string(&expected).unwrap();
    let start = text
        .find(r#""customer/alice": {"#)
        .expect("orders.expected.json has alice");
    let end = start + text[start..].find('}').unwrap() + 1;
    text.replace_range(
        start..end,
        r#""customer/alice": {"total_cents": 14482, "orders": 8.0}"#,
    );
    let file = dir.path().join("reordered.json");
    std::fs::write(&file, text).unwrap();
    let args = [
        "test",
        ORDER_TOTALS,
        "--events",
        path(&events),
        "--expect",
        path(&file),
    ];
    let output = projector(&args, dir.path());
    assert!(output.status.success(), "{}", show(&output));
    let output = projector(&[&args[..], &["--exact"]].concat(), dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        stdout(&output).contains(
            r#"bytes   "customer/alice": expected {"total_cents":14482,"orders":8.0}, got {"orders":8,"total_cents":14482} (equal as JSON, different bytes)"#
        ),
        "{}",
        show(&output)
    );
}

#[test]
fn a_failing_event_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let bad = r#"{"type": "OrderPlaced", "order_id": "o2", "customer": "bea", "amount_cents": -5}"#;
    std::fs::write(
        &file,
        format!(
            "{}\n\n{}\n{bad}\n{}\n",
            r#"{"type": "OrderPlaced", "order_id": "o1", "customer": "ann", "amount_cents": 5}"#,
            r#"{"type": "Other"}"#,
            r#"{"type": "Other"}"#
        ),
    )
    .unwrap();
    let output = projector(&["test", ORDER_TOTALS, "--events", path(&file)], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "FAILED at line 4 of {} (offset 2): event {bad}",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("invalid value: integer `-5`, expected u64"),
        "{err}"
    );
    // A line that is not JSON is refused before the module runs.
    std::fs::write(&file, "{\"type\": \"Other\"}\nnot json\n").unwrap();
    let output = projector(&["test", ORDER_TOTALS, "--events", path(&file)], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        stderr(&output).contains("line 2: not valid JSON"),
        "{}",
        show(&output)
    );
}

#[test]
fn a_core_module_is_tested_like_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("counter.wasm");
    std::fs::write(
        &module,
        common::core_counter::counter("core-counter", "(i64.const 0)"),
    )
    .unwrap();
    let (events, _) = orders();
    let count = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    // `n` holds raw bytes, not JSON: shown (and compared) as hex.
    let expected = dir.path().join("expected.json");
    std::fs::write(
        &expected,
        json!({
            "count": count,
            "n": {"$hex": count.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()},
        })
        .to_string(),
    )
    .unwrap();
    let output = projector(
        &[
            "test",
            path(&module),
            "--events",
            path(&events),
            "--expect",
            path(&expected),
            "--exact",
            "--query",
            "count",
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(stdout(&output).trim(), count.to_string());
}

/// The files in `dir`.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect()
}

/// `projector test` compiles a module once and keeps the compiled code in
/// the per-user cache (or the data folder's, or `--cache-dir`): testing
/// the same module again loads it instead of compiling.
#[test]
fn testing_a_module_again_loads_its_compiled_code_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (events, expected) = orders();
    let args = [
        "test",
        ORDER_TOTALS,
        "--events",
        path(&events),
        "--expect",
        path(&expected),
    ];
    let per_user = dir.path().join(".cache/projector");
    let data = dir.path().join("data");
    let chosen = dir.path().join("chosen");
    for (extra, cache) in [
        (&[][..], &per_user),
        (&["--data", path(&data)][..], &data.join("cache")),
        (&["--cache-dir", path(&chosen)][..], &chosen),
    ] {
        let args = [&args[..], extra].concat();
        let first = projector(&args, dir.path());
        assert!(first.status.success(), "{}", show(&first));
        let line = format!("({})", cache.display());
        assert!(
            stderr(&first).contains("compiled code: compiled in ")
                && stderr(&first).contains(&line),
            "{extra:?}: {}",
            show(&first)
        );
        let entries = files_in(cache);
        assert_eq!(entries.len(), 1, "{extra:?}: {entries:?}");

        let second = projector(&args, dir.path());
        assert!(second.status.success(), "{}", show(&second));
        assert!(
            stderr(&second).contains("compiled code: loaded from the cache in ")
                && stderr(&second).contains(&line),
            "{extra:?}: {}",
            show(&second)
        );
        assert_eq!(files_in(cache), entries);
    }

    // The per-user folder keeps the newest entries only (each build of a
    // module is a new one); the module under test stays.
    let old: Vec<PathBuf> = (0..25)
        .map(|i| per_user.join(format!("{i:064x}-0000000000000000.cwasm")))
        .collect();
    for (hours, file) in (1..).zip(&old) {
        std::fs::write(file, b"an old build's code").unwrap();
        let written = std::time::SystemTime::now() - std::time::Duration::from_secs(3600 * hours);
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(written)
            .unwrap();
    }
    let module = dir.path().join("counter.wasm");
    std::fs::write(
        &module,
        common::core_counter::counter("core-counter", "(i64.const 0)"),
    )
    .unwrap();
    let output = projector(
        &["test", path(&module), "--events", path(&events)],
        dir.path(),
    );
    assert!(output.status.success(), "{}", show(&output));
    // The new entry, order-totals' (written minutes ago) and the 18 newest
    // of the old ones.
    let mut kept = files_in(&per_user);
    kept.sort();
    let mut expected: Vec<PathBuf> = old[..18].to_vec();
    expected.push(entry_of(&per_user, &std::fs::read(ORDER_TOTALS).unwrap()));
    expected.push(entry_of(&per_user, &std::fs::read(&module).unwrap()));
    expected.sort();
    assert_eq!(kept.len(), 20, "{kept:?}");
    assert_eq!(kept, expected);
}

/// The entry of the module `bytes` in a cache folder (named after the
/// module's hash).
fn entry_of(dir: &Path, bytes: &[u8]) -> PathBuf {
    let hash = blake3::hash(bytes).to_hex().to_string();
    files_in(dir)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&hash))
        .unwrap_or_else(|| panic!("no entry {hash}... in {}", dir.display()))
}

/// The determinism check runs the events again cut into other batches and
/// with new instances at other points, as a replay may: a module that keeps
/// a count in a global (per instance, or per call) comes out different, and
/// the check names the first key that differs.
#[test]
fn state_kept_in_a_global_is_reported_as_not_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = orders();
    let calls = dir.path().join("call-counter.wasm");
    std::fs::write(&calls, common::core_counter::call_counter()).unwrap();
    // `last` (the last offset) is the same in every run; `seen` and
    // `calls` are not.
    for (module, key) in [(GLOBAL_COUNTER, "seen"), (path(&calls), "calls")] {
        let output = projector(&["test", module, "--events", path(&events)], dir.path());
        assert_eq!(output.status.code(), Some(1), "{module}: {}", show(&output));
        let err = stderr(&output);
        assert!(err.contains("NOT DETERMINISTIC"), "{module}: {err}");
        assert!(
            err.contains(&format!("first differing key \"{key}\"")),
            "{module}: {err}"
        );
        // The author can still see the state of one run.
        let output = projector(
            &[
                "test",
                module,
                "--events",
                path(&events),
                "--no-determinism-check",
            ],
            dir.path(),
        );
        assert!(output.status.success(), "{module}: {}", show(&output));
    }
}

#[test]
fn new_refuses_bad_names_and_non_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let output = projector(&["new", "Page_Views", "--lang", "rust"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        stderr(&output).contains("invalid projection name \"Page_Views\""),
        "{}",
        show(&output)
    );
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/keep.txt"), "mine").unwrap();
    let output = projector(
        &["new", "taken", "--lang", "python", "--dir", "taken"],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        stderr(&output).contains("exists and is not empty"),
        "{}",
        show(&output)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
}

/// Variables of the cargo running this test that must not reach a nested
/// build (flags and wrappers for the host build, its jobserver).
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// The tool locations a generated project's scripts read, pointing at the
/// tools the build scripts of the examples install; panics with the
/// install command when one is missing.
fn tool_env(lang: &str) -> Vec<(&'static str, String)> {
    let tools = workspace().join("target/tools");
    let need = |file: &Path, install: &str| {
        assert!(
            file.exists(),
            "{lang}: {} is missing; install the {lang} toolchain with `{install}`",
            file.display()
        );
        path(file).to_owned()
    };
    match lang {
        "rust" => {
            let installed = Command::new("rustup")
                .args(["target", "list", "--installed"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            assert!(
                installed.lines().any(|l| l == "wasm32-wasip2"),
                "rust: the wasm32-wasip2 target is missing; install it with `rustup target add wasm32-wasip2`"
            );
            // One target folder for every run, so only the first compiles
            // the SDK's dependencies.
            vec![(
                "CARGO_TARGET_DIR",
                path(&workspace().join("target/author-tools/cargo")).to_owned(),
            )]
        }
        "python" => vec![(
            "COMPONENTIZE_PY",
            need(
                &tools.join("python/bin/componentize-py"),
                "scripts/build-python-examples.sh",
            ),
        )],
        "js" | "ts" => {
            for tool in ["esbuild", "tsc"] {
                need(
                    &tools.join("js/node_modules/.bin").join(tool),
                    "scripts/build-js-examples.sh",
                );
            }
            vec![(
                "PROJECTOR_JS_TOOLS",
                need(&tools.join("js"), "scripts/build-js-examples.sh"),
            )]
        }
        "go" => vec![
            (
                "GO",
                need(&tools.join("go/bin/go"), "scripts/build-go-examples.sh"),
            ),
            ("GOCACHE", path(&tools.join("go-cache/build")).to_owned()),
            ("GOMODCACHE", path(&tools.join("go-cache/mod")).to_owned()),
            // What build.sh sets too: this Go, no network.
            ("GOTOOLCHAIN", "local".to_owned()),
            ("GOFLAGS", "-mod=mod".to_owned()),
            ("GOPROXY", "off".to_owned()),
        ],
        "c" => {
            // scripts/build-c-examples.sh links the wit-bindgen it vetted
            // (from PATH, $CARGO_HOME/bin or its own install) here.
            let wit_bindgen = tools.join("cargo/bin/wit-bindgen");
            if !wit_bindgen.exists() {
                panic!(
                    "c: wit-bindgen is missing from {}; install the C toolchain with `scripts/build-c-examples.sh`",
                    wit_bindgen.display()
                );
            }
            vec![
                ("WIT_BINDGEN", path(&wit_bindgen).to_owned()),
                (
                    "JCO",
                    need(
                        &tools.join("js/node_modules/.bin/jco"),
                        "scripts/build-c-examples.sh",
                    ),
                ),
            ]
        }
        _ => unreachable!("{lang}"),
    }
}

fn run(what: &str, command: &mut Command) -> Output {
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(output.status.success(), "{what} failed: {}", show(&output));
    output
}

/// `projector new` for `lang`, its build script, its native unit tests
/// (`native`: program and arguments, run in the project; a program named
/// like a variable of [`tool_env`], as `GO`, is that variable's tool) and
/// `projector test` on the module it built. The native tests' output must
/// name each of `native_tests` (proof that they ran).
fn new_project_builds_and_passes(lang: &str, native: Option<&[&str]>, native_tests: &[&str]) {
    let env = tool_env(lang);
    let dir = tempfile::tempdir().unwrap();
    let name = format!("count-{lang}");
    let output = projector(&["new", &name, "--lang", lang], dir.path());
    assert!(output.status.success(), "{}", show(&output));
    let project = dir.path().join(&name);
    for file in [
        "README.md",
        "build.sh",
        "events.jsonl",
        "expected.json",
        "wit/projection.wit",
    ] {
        assert!(project.join(file).is_file(), "{lang}: no {file}");
    }
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "projector test build/{name}.wasm --events events.jsonl --expect expected.json"
        )),
        "{lang}: README.md lacks the test line:\n{readme}"
    );

    run(
        &format!("{lang}: ./build.sh"),
        Command::new(project.join("build.sh"))
            .current_dir(&project)
            .envs(env.iter().map(|(k, v)| (*k, v))),
    );
    let module = project.join("build").join(format!("{name}.wasm"));
    assert!(
        module.is_file(),
        "{lang}: build.sh wrote no {}",
        module.display()
    );
    if let Some([program, args @ ..]) = native {
        let tool = env
            .iter()
            .find(|(var, _)| var == program)
            .map_or(*program, |(_, tool)| tool.as_str());
        let output = run(
            &format!("{lang}: native unit tests `{program} {}`", args.join(" ")),
            Command::new(tool)
                .args(args)
                .current_dir(&project)
                .envs(env.iter().map(|(k, v)| (*k, v))),
        );
        let text = format!("{}{}", stdout(&output), stderr(&output));
        for test in native_tests {
            assert!(
                text.contains(test),
                "{lang}: the native tests did not run {test}: {}",
                show(&output)
            );
        }
    } else {
        assert!(native_tests.is_empty(), "{lang}: no native test command");
    }

    let output = projector(
        &[
            "test",
            path(&module),
            "--events",
            "events.jsonl",
            "--expect",
            "expected.json",
            "--exact",
            "--query",
            "count",
            "--args",
            r#"{"type": "signed-up"}"#,
        ],
        &project,
    );
    assert!(output.status.success(), "{lang}: {}", show(&output));
    assert_eq!(stdout(&output).trim(), r#"{"count":2}"#, "{lang}");
    let output = projector(
        &[
            "test",
            path(&module),
            "--events",
            "events.jsonl",
            "--query",
            "count",
            "--args",
            r#"{"type": "never"}"#,
        ],
        &project,
    );
    assert!(output.status.success(), "{lang}: {}", show(&output));
    assert_eq!(stdout(&output).trim(), "null", "{lang}");
}

#[test]
fn new_rust_project_builds_and_passes() {
    new_project_builds_and_passes("rust", Some(&["cargo", "test", "--release"]), &[]);
}

#[test]
fn new_python_project_builds_and_passes() {
    new_project_builds_and_passes(
        "python",
        Some(&["python3", "-m", "unittest", "test_app.py"]),
        &[],
    );
}

#[test]
fn new_js_project_builds_and_passes() {
    new_project_builds_and_passes(
        "js",
        Some(&[
            "node",
            "--harmony-json-parse-with-source",
            "--import",
            "./sdk/testing/register.js",
            "--test",
            "test.js",
        ]),
        &[],
    );
}

#[test]
fn new_ts_project_builds_and_passes() {
    new_project_builds_and_passes("ts", Some(&["./test.sh"]), &[]);
}

#[test]
fn new_go_project_builds_and_passes() {
    // `go test -v` names each test it ran: the template's three.
    new_project_builds_and_passes(
        "go",
        Some(&["GO", "test", "-v", "./..."]),
        &[
            "--- PASS: TestSampleEventsGiveTheExpectedState",
            "--- PASS: TestCountQuery",
            "--- PASS: TestAnEventWithoutATypeFailsAndLeavesNoTrace",
        ],
    );
}

#[test]
fn new_c_project_builds_and_passes() {
    new_project_builds_and_passes("c", None, &[]);
}
