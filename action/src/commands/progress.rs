//! Live progress on stderr: a progress display on a terminal, one line per step elsewhere, or JSON
//! events (`--progress json`).
