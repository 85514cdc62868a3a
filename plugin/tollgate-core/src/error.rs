//! The error a policy check reports: where in the document, and what is wrong there.

use std::fmt;

/// One problem in a policy document, located by a path such as `routes[3].methods[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// Path from the document root (`""` for the root itself).
    pub path: String,
    /// What is wrong, in words for the policy's author.
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(document): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}
