//! Clipboard or prompt text as a user might paste it: any UTF-8 through
//! every detector, the organisation's too (a pattern with keywords and a
//! check digit, a dictionary), with low-confidence findings kept so every
//! path runs.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vigie_core::detect::{
    hash_term, scan, summarize, Checksum, Confidence, DetectorSettings, DictionaryDefinition, OrgDetectors,
    OrgDetectorsWritten, PatternDefinition,
};

static SETTINGS: LazyLock<DetectorSettings> = LazyLock::new(|| {
    let key = [1u8; 32];
    let terms = ["acme", "projet hélios", "dupont et fils sa"];
    let written = OrgDetectorsWritten {
        pattern: vec![PatternDefinition {
            name: "org-staff".parse().unwrap_or_else(|e: String| panic!("{e}")),
            pattern: r"\bE-?[0-9]{6}\b".to_owned(),
            keywords: vec!["matricule".to_owned()],
            keyword_window: 80,
            checksum: Some(Checksum::Luhn),
        }],
        dictionary: vec![DictionaryDefinition {
            name: "org-clients".parse().unwrap_or_else(|e: String| panic!("{e}")),
            key: "01".repeat(32),
            max_words: 3,
            terms: terms.iter().filter_map(|t| hash_term(&key, t)).map(|t| t.1).collect(),
        }],
    };
    let organisation = OrgDetectors::try_from(written).unwrap_or_else(|e| panic!("{e}"));
    DetectorSettings { min_confidence: Confidence::Low, source_code_min_lines: 2, organisation, ..Default::default() }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let findings = scan(text, &SETTINGS);
    for f in &findings {
        assert!(text.get(f.span.clone()).is_some(), "span {:?} is not a char range of the input", f.span);
    }
    let _ = summarize(&findings);
});
