//! Engine-backed commands: discover, match, rotate, cleanup, history, demo.
