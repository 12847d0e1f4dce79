//! channel (placeholder: being written).
