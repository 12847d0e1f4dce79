//! account (placeholder: being written).
