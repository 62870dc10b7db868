//! Log lines attributed by the host to this projection and its version.
//!
//! ```no_run
//! use projector_sdk::log;
//!
//! let order_id = "o-17";
//! log::warn!("order {order_id} cancelled twice");
//! log::log(log::Level::Info, "plain message");
//! ```

/// Severity of a log line.
pub use crate::__bindings::projector::projection::log::Level;

/// Log `message` at `level`.
pub fn log(level: Level, message: &str) {
    backend(level, message);
}

#[cfg(target_arch = "wasm32")]
fn backend(level: Level, message: &str) {
    crate::__bindings::projector::projection::log::log(level, message);
}

// Off wasm (unit tests) there is no host to attribute the line.
#[cfg(not(target_arch = "wasm32"))]
fn backend(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_at {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::__log_at!(Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::__log_at!(Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::__log_at!(Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::__log_at!(Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::__log_at!(Error, $($arg)+) };
}

// `#[macro_export]` puts macros at the crate root; these give them their
// `log::` paths.
/// Log at debug level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_debug as debug;
/// Log at error level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_error as error;
/// Log at info level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_info as info;
/// Log at trace level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_trace as trace;
/// Log at warn level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_warn as warn;
