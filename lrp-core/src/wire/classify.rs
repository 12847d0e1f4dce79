//! One-pass classification (placeholder: being written).
use crate::flow::{Classification, Malformed};
/// Classify a frame.
pub fn classify(frame: &[u8]) -> Classification {
    let _ = frame;
    Classification::Malformed(Malformed::TruncatedEthernet)
}
