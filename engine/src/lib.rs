//! rotor engine (work in progress)
