//! eager (placeholder: being written).
