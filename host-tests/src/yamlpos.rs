//! YAML positions.
