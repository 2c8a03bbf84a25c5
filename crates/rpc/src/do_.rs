//! Typed do client methods and wire types (being written).
