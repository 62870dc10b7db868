//! Copies the first Rust block of README.md into `$OUT_DIR/page_views.rs`,
//! so the projection the README shows is compiled (and run by
//! runtime/tests/docs.rs) as written there.

use std::path::Path;

fn main() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme).expect("README.md is readable");
    let start = text
        .find("```rust\n")
        .expect("README.md has a ```rust block")
        + "```rust\n".len();
    let length = text[start..]
        .find("```")
        .expect("README.md's ```rust block ends");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("page_views.rs");
    std::fs::write(out, &text[start..start + length]).expect("OUT_DIR is writable");
}
