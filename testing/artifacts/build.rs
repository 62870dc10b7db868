//! Builds the example and test projections for `wasm32-wasip2` and writes
//! their paths to `$OUT_DIR/guests.rs`.
//!
//! The guests are members of this same workspace, built by a nested cargo
//! into their own target directory, `<workspace>/target/guests`: the outer
//! build holds the lock on its own target directory, and one fixed place lets
//! debug, release and clippy builds of the host share a single guest build.
//! The `wasm32-wasip2` target links with `wasm-component-ld`, so each
//! `cdylib` comes out as a component, ready for the host.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// Package name and the name of its constant in `guests.rs`.
const GUESTS: &[(&str, &str)] = &[
    ("order-totals", "ORDER_TOTALS"),
    ("account-balances", "ACCOUNT_BALANCES"),
    ("failing", "FAILING"),
    ("missing-export", "MISSING_EXPORT"),
    ("wrong-version", "WRONG_VERSION"),
    ("recorder", "RECORDER"),
    ("order-totals-v2", "ORDER_TOTALS_V2"),
    ("order-totals-query", "ORDER_TOTALS_QUERY"),
    ("order-totals-trap", "ORDER_TOTALS_TRAP"),
    ("hostile", "HOSTILE"),
    ("hostile-fixed", "HOSTILE_FIXED"),
    ("liar", "LIAR"),
    ("global-counter", "GLOBAL_COUNTER"),
    ("readme-page-views", "README_PAGE_VIEWS"),
];

/// Variables a cargo running this script sets for its own build that must
/// not leak into the nested one: flags and wrappers meant for the host build
/// (including clippy's driver), the outer target directory, and the outer
/// jobserver, whose file descriptors the nested cargo cannot use.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("testing/artifacts sits two levels below the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_dir = workspace.join("target").join("guests");

    watch(&workspace);
    check_target_installed();
    build(&workspace, &target_dir);

    let mut code = String::new();
    for (package, constant) in GUESTS {
        let wasm = target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            wasm.is_file(),
            "cargo built `{package}` but {} is missing",
            wasm.display()
        );
        // Rebuild if the artifact disappears (a `cargo clean` of the guests).
        println!("cargo:rerun-if-changed={}", wasm.display());
        writeln!(
            code,
            "/// Path of the `{package}` component.\npub const {constant}: &str = {:?};",
            path_str(&wasm)
        )
        .expect("write to String");
    }
    let events = workspace.join("examples").join("events");
    writeln!(
        code,
        "/// Directory of the sample event files and their expected states.\n\
         pub const EXAMPLE_EVENTS_DIR: &str = {:?};",
        path_str(&events)
    )
    .expect("write to String");
    std::fs::write(out_dir.join("guests.rs"), code).expect("write guests.rs");
}

/// Everything the guests are built from.
fn watch(workspace: &Path) {
    let mut paths = vec![
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
        workspace.join("wit"),
        workspace.join("sdk/rust/Cargo.toml"),
        workspace.join("sdk/rust/src"),
        // readme-page-views is README.md's projection.
        workspace.join("README.md"),
    ];
    for group in ["examples", "testing/guests"] {
        let dir = workspace.join(group);
        // A new crate in the group changes the workspace members.
        paths.push(dir.clone());
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        {
            let crate_dir = entry.expect("read directory entry").path();
            for part in ["Cargo.toml", "build.rs", "src", "wit"] {
                let path = crate_dir.join(part);
                if path.exists() {
                    paths.push(path);
                }
            }
        }
    }
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", rustc.to_string_lossy()));
    let libdir = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !Path::new(libdir.trim()).is_dir() {
        panic!(
            "the {TARGET} target is not installed, and the test guests are built for it: \
             run `rustup target add {TARGET}`"
        );
    }
}

fn build(workspace: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    eprintln!("running: {cmd:?}");
    let status = cmd.status().expect("run cargo to build the guests");
    assert!(status.success(), "building the guests failed: {cmd:?}");
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("path is not UTF-8: {}", path.display()))
}
