//! `hostile` with the bug behind `"do": "fail"` fixed: those events apply
//! like any other. Same name and state version, so it takes over the
//! state of `hostile` without replay, and re-runs the events parked or
//! dead-lettered by it.

// The exports wit-bindgen generates are `unsafe extern` functions.
#![allow(unsafe_code)]

const FIXED: bool = true;

include!("../../hostile/src/guest.rs");
