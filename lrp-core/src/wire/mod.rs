//! Wire formats (placeholder: being written).
pub mod classify;
