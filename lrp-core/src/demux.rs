//! demux (placeholder: being written).
