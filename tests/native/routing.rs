//! routing tests
