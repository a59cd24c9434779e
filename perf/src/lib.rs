//! Criterion benches are in `benches/`; the end-to-end harness comes with issue 8.
