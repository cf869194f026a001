//! io_uring-compatible rings (placeholder; see SPEC.md).
pub mod abi;
