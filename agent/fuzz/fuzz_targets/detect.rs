//! Clipboard or prompt text as a user might paste it: any UTF-8 through
//! every detector, with low-confidence findings kept so every path runs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::detect::{scan, summarize, Confidence, DetectorSettings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let settings =
        DetectorSettings { min_confidence: Confidence::Low, source_code_min_lines: 2, ..Default::default() };
    let findings = scan(text, &settings);
    for f in &findings {
        assert!(text.get(f.span.clone()).is_some(), "span {:?} is not a char range of the input", f.span);
    }
    let _ = summarize(&findings);
});
