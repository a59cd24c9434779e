//! The Sluice control plane: everything on the main lcore.

pub mod config;
pub mod policy;
pub mod neighbor;
