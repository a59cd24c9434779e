//! The Sluice control plane: everything on the main lcore.

pub mod agent;
pub mod appliance;
pub mod capture;
pub mod cli;
pub mod config;
pub mod default;
pub mod guard;
pub mod log;
pub mod metrics;
pub mod neighbor;
pub mod policy;
pub mod sample;
pub mod state;
pub mod stats;
pub mod telemetry;
