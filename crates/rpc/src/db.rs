//! Typed db client methods and wire types (being written).
