//! A projection that misbehaves on request, to show the host contains it.
//! Each event's payload is `{"do": WHAT, "id": ID}`; see `guest.rs`.

// The exports wit-bindgen generates are `unsafe extern` functions.
#![allow(unsafe_code)]

const FIXED: bool = false;

include!("guest.rs");
