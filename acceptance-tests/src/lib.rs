//! acceptance tests live in tests/
