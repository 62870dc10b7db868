//! A core-module guest in WAT (core-module ABI, `wit/core-abi.md`), for the
//! tests of core modules and of `projector test`.

use serde_json::json;

/// Counts events: raw u64 under `n`, the decimal count under `count`;
/// query `count` answers the decimal count. `counter`'s `handle_result` is
/// what `projector_handle` returns: `(i64.const 0)` for success, or e.g. a
/// pointer far outside memory.
/// The ABI's fixed part of every guest here: version, a bump allocator
/// reset after each call, and the descriptor (JSON at address 256).
pub const PRELUDE: &str = r#"
  (data (i32.const 256) "$DESCRIPTOR")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "projector_abi_version") (result i32) (i32.const 1))
  (func (export "projector_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "projector_describe") (result i64)
    (i64.or (i64.shl (i64.const 256) (i64.const 32)) (i64.const $DESCRIPTOR_LEN)))"#;

pub const COUNTER: &str = r#"
(module
  (import "projector" "state_get" (func $get (param i32 i32 i32 i32) (result i64)))
  (import "projector" "state_put" (func $put (param i32 i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "ncount")
$PRELUDE
  ;; Writes the decimal digits of $v so that they end at $end; returns the start.
  (func $itoa (param $v i64) (param $end i32) (result i32)
    (local $p i32)
    (local.set $p (local.get $end))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $v) (i64.const 0))))
    (local.get $p))
  (func $count (result i64)
    (if (result i64)
      (i64.eq (call $get (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 8)) (i64.const 8))
      (then (i64.load (i32.const 32)))
      (else (i64.const 0))))
  (func (export "projector_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $n i64) (local $start i32)
    (local.set $n (i64.add (call $count) (i64.extend_i32_u (i32.load (local.get $ptr)))))
    (i64.store (i32.const 32) (local.get $n))
    (call $put (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 8))
    (local.set $start (call $itoa (local.get $n) (i32.const 128)))
    (call $put (i32.const 17) (i32.const 5) (local.get $start) (i32.sub (i32.const 128) (local.get $start)))
    (global.set $heap (i32.const 4096))
    $HANDLE_RESULT)
  (func (export "projector_query") (param i32 i32 i32 i32) (result i64)
    (local $start i32)
    (local.set $start (call $itoa (call $count) (i32.const 192)))
    (i32.store8 (i32.sub (local.get $start) (i32.const 1)) (i32.const 0))
    (global.set $heap (i32.const 4096))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.sub (local.get $start) (i32.const 1))) (i64.const 32))
      (i64.extend_i32_u (i32.sub (i32.const 193) (local.get $start)))))
)
"#;

/// Counts the calls (not the events) in a global and stores the count
/// under `calls`: the state depends on how events were cut into calls, so
/// `projector test`'s determinism check must flag it.
const CALL_COUNTER: &str = r#"
(module
  (import "projector" "state_put" (func $put (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "calls")
$PRELUDE
  (global $calls (mut i32) (i32.const 0))
  (func (export "projector_handle") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 32) (global.get $calls))
    (call $put (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 4))
    (global.set $heap (i32.const 4096))
    (i64.const 0))
  (func (export "projector_query") (param i32 i32 i32 i32) (result i64)
    (i64.const 0))
)
"#;

pub fn counter(name: &str, handle_result: &str) -> Vec<u8> {
    assemble(
        &COUNTER.replace("$HANDLE_RESULT", handle_result),
        name,
        &["count"],
    )
}

pub fn call_counter() -> Vec<u8> {
    assemble(CALL_COUNTER, "call-counter", &[])
}

/// Fills in the prelude and a descriptor for `name` reading `orders`.
fn assemble(text: &str, name: &str, queries: &[&str]) -> Vec<u8> {
    let descriptor = json!({
        "name": name, "version": "1", "sources": ["orders"],
        "state_version": 1, "queries": queries,
    })
    .to_string();
    let text = text
        .replace("$PRELUDE", PRELUDE)
        .replace("$DESCRIPTOR_LEN", &descriptor.len().to_string())
        .replace("$DESCRIPTOR", &descriptor.replace('"', "\\\""));
    wat::parse_str(text).unwrap()
}
