//! arm (in progress)
