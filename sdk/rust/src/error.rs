use core::fmt;

use crate::__bindings::projector::projection::types::QueryError as WitQueryError;

/// Why an event could not be applied, or why a state or payload helper
/// failed. A message for the operator; the host shows it in status and in the
/// dead-letter store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, by value.
    pub fn into_message(self) -> String {
        self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }
}

/// Why a custom query failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The projection knows no query of that name.
    UnknownQuery,
    /// The arguments could not be understood; the message says why.
    BadArgs(String),
    /// The query failed while running.
    Failed(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownQuery => f.write_str("unknown query"),
            Self::BadArgs(message) => write!(f, "bad query arguments: {message}"),
            Self::Failed(message) => write!(f, "query failed: {message}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A failed state read or encoding inside a query is a query failure, so `?`
/// works on [`crate::state`] helpers.
impl From<Error> for QueryError {
    fn from(error: Error) -> Self {
        Self::Failed(error.into_message())
    }
}

impl From<QueryError> for WitQueryError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::UnknownQuery => Self::UnknownQuery,
            QueryError::BadArgs(message) => Self::BadArgs(message),
            QueryError::Failed(message) => Self::Failed(message),
        }
    }
}
