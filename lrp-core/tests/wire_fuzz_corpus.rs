//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`) under `cargo test`, with the same
//! checks the fuzz targets run (their modules are compiled in here), so the seed inputs
//! and any regression input added to the corpus are checked on every run, without
//! cargo-fuzz or a nightly toolchain.
//!
//! - Every file of every target goes through `classify` + `verify` (the `classify`
//!   target's checks: no panic, a flow's offsets inside the frame).
//! - `wire_roundtrip/*` files also go through that target's parse/emit checks.
//! - `classify/*.bin` files are valid captured-style frames: they must not classify as
//!   malformed and their checksums must verify. Minimized fuzzer findings are added as
//!   `classify/regress-*` and only have to pass the checks.

use std::fs;
use std::path::{Path, PathBuf};

use lrp_core::flow::Classification;
use lrp_core::wire::{classify::classify, verify};

#[path = "../../fuzz/fuzz_targets/classify_checks.rs"]
mod classify_checks;
#[path = "../../fuzz/fuzz_targets/roundtrip_checks.rs"]
mod roundtrip_checks;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable corpus entry").path();
            let name = file_name(&path);
            (name, fs::read(&path).expect("readable corpus file"))
        })
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn replay_classify_corpus() {
    let files = corpus("classify");
    let mut valid = 0;
    for (name, frame) in &files {
        classify_checks::run(frame);
        if name.ends_with(".bin") {
            let class = classify(frame);
            assert!(
                !matches!(class, Classification::Malformed(_)),
                "{name}: {class:?}"
            );
            assert_eq!(
                verify(frame, &class),
                Ok(()),
                "{name}: checksums of a valid frame"
            );
            valid += 1;
        }
    }
    assert!(
        valid >= 10,
        "expected the seed frames, found {valid} of {}",
        files.len()
    );
}

#[test]
fn replay_wire_roundtrip_corpus() {
    let files = corpus("wire_roundtrip");
    assert!(
        files.len() >= 10,
        "expected the seed inputs, found {}",
        files.len()
    );
    for (_, input) in &files {
        roundtrip_checks::run(input);
        classify_checks::run(input);
    }
}
