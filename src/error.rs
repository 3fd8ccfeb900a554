//! Errors: a rejected policy says where and what.

use std::fmt;

/// A policy that cannot be compiled: the location of the problem (e.g.
/// `routes[2].response.fields[0].path`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    location: String,
    message: String,
}

impl PolicyError {
    pub(crate) fn new(location: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError {
            location: location.into(),
            message: message.into(),
        }
    }

    /// Where in the document the problem is (a path such as `routes[0].match.regex`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}
