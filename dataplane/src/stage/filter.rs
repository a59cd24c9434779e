//! See stage/mod.rs.
