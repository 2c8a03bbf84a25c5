//! Typed auth client methods and wire types (being written).
