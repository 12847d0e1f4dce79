//! lrp examples (placeholder).
