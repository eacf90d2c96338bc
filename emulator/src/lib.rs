//! rotor emulator (work in progress)
