//! The page-views projection of README.md, as the README writes it (the
//! build script copies it out of the README).

include!(concat!(env!("OUT_DIR"), "/page_views.rs"));
