//! Scale benchmark (in progress).
fn main() {}
