//! Helpers for [`crate::Projection::query`]: JSON arguments in, JSON answer
//! out.

use core::any::type_name;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::QueryError;

/// Decode query arguments from JSON.
///
/// Empty (or blank) arguments read as `{}`, so a query called without
/// arguments can take a struct whose fields all have defaults. Anything that
/// is not valid JSON for `T` is [`QueryError::BadArgs`].
pub fn args_json<T: DeserializeOwned>(args: &[u8]) -> Result<T, QueryError> {
    let args = if args.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        args
    };
    serde_json::from_slice(args).map_err(|error| {
        QueryError::BadArgs(format!("expected JSON for {}: {error}", type_name::<T>()))
    })
}

/// Encode a query answer as JSON.
pub fn reply_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, QueryError> {
    serde_json::to_vec(value).map_err(|error| {
        QueryError::Failed(format!(
            "cannot encode {} as JSON: {error}",
            type_name::<T>()
        ))
    })
}
