//! What runs on the lcores around the stages: the compiled policy, counters,
//! the worker loop, TX buffering and the exception path.

pub mod policy;
