//! Replays every input the fuzzers kept (`fuzz/corpus/<target>/`) and every crash they ever
//! saved (`fuzz/artifacts/<target>/`, which should hold none) through the same functions the
//! fuzz targets call, so a regression on any of them fails the normal `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, sorted so that a failure names the same input every run.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a corpus entry can be read").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on every file, naming the file that fails.
fn replay(target: lien_fuzz::Target, inputs: &[PathBuf]) {
    for path in inputs {
        let data = fs::read(path).expect("a corpus file can be read");
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(outcome.is_ok(), "{} fails its fuzz target", path.display());
    }
}

#[test]
fn every_target_has_a_corpus_and_passes_it() {
    for (name, target) in lien_fuzz::TARGETS {
        let inputs = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !inputs.is_empty(),
            "fuzz/corpus/{name} is missing or empty: run the fuzzer and commit its corpus"
        );
        replay(target, &inputs);
    }
}

#[test]
fn saved_crashes_no_longer_crash() {
    for (name, target) in lien_fuzz::TARGETS {
        replay(target, &files(&fuzz_dir().join("artifacts").join(name)));
    }
}

#[test]
fn every_fuzz_target_calls_its_function() {
    // A target added to TARGETS without a cargo-fuzz binary (or the other way round) would be
    // fuzzed or replayed on one side only.
    let mut binaries: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    let mut names: Vec<String> = lien_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    names.sort();
    assert_eq!(binaries, names);
    for name in &names {
        let source =
            fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs"))).unwrap();
        assert!(
            source.contains(&format!("lien_fuzz::{name}(data)")),
            "fuzz/fuzz_targets/{name}.rs does not call lien_fuzz::{name}"
        );
    }
}
