//! Host emulator (being written).
