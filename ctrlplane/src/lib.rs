//! The Sluice control plane.
