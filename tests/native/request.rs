//! request tests
