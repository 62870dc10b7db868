//! Calls into code that may panic on untrusted bytes.
//!
//! redb trusts a file that was closed cleanly: a damaged page is not
//! detected by a checksum but reaches an `unreachable!()` the moment it is
//! read, at open (the allocator and system tables) or later. A damaged data
//! file must give an error that names the file, not take the process down,
//! so such calls run under [`catch`]: a panic becomes an error message, and
//! the panic's own report stays off stderr (the caller reports the error,
//! with the file, instead).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs a guarded call.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// Where the last guarded panic of this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `work`; a panic inside it becomes `Err` with the panic's message
/// and location. Other threads' panics are reported as before.
pub(crate) fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let location = info.location().map(ToString::to_string);
                LOCATION.with(|l| *l.borrow_mut() = location);
            } else {
                report(info);
            }
        }));
    });
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(work));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| {
        let message = message(payload.as_ref());
        match LOCATION.with(|l| l.borrow_mut().take()) {
            Some(location) => format!("{message} at {location}"),
            None => message,
        }
    })
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_place() {
        assert_eq!(catch(|| 7), Ok(7));
        let err = catch(|| -> u8 { panic!("bad page {}", 3) }).unwrap_err();
        assert!(err.starts_with("bad page 3 at "), "{err}");
        assert!(err.contains("panic_guard.rs"), "{err}");
        // Nested: the inner guard does not end the outer one.
        let outer = catch(|| {
            let inner = catch(|| -> u8 { panic!("inner") });
            assert!(inner.is_err());
            panic!("outer")
        });
        assert!(outer.unwrap_err().starts_with("outer"));
        assert!(!GUARDED.with(Cell::get));
    }
}
