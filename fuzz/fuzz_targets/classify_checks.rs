//! The checks of the `classify` fuzz target, shared with the corpus replay test
//! (`lrp-core/tests/wire_fuzz_corpus.rs`): `classify` then `verify` on arbitrary bytes.
//! Neither may panic; a flow's offsets lie inside the frame; `verify` repeats a
//! malformed verdict; `flow::classify` is the same function.

use lrp_core::flow::{self, Classification};
use lrp_core::wire::{classify::classify, verify};

/// Classify and verify `frame`, panicking on a violated invariant.
pub(crate) fn run(frame: &[u8]) {
    let class = classify(frame);
    if let Classification::Flow { offsets, .. } = class {
        let (l3, l4, len) = (
            usize::from(offsets.l3),
            usize::from(offsets.l4),
            usize::from(offsets.l3_len),
        );
        assert!(
            l3 <= l4 && l4 <= l3 + len && l3 + len <= frame.len(),
            "{offsets:?}"
        );
    }
    let verdict = verify(frame, &class);
    if let Classification::Malformed(reason) = class {
        assert_eq!(verdict, Err(reason));
    }
    assert_eq!(flow::classify(frame), class);
}
