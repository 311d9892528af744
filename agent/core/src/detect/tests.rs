//! API-level tests: names, settings, bounds, and hand-picked examples per
//! detector. The labelled corpus lives in `agent/core/tests/detector_corpus.rs`.

use super::*;

fn found(text: &str) -> Vec<DetectorId> {
    scan(text, &DetectorSettings::default()).into_iter().map(|f| f.detector).collect()
}

#[test]
fn every_pattern_compiles() {
    assert!(secrets::patterns_compiled());
    assert!(personal::patterns_compiled());
    assert!(marking::patterns_compiled());
}

#[test]
fn names_are_stable_and_serialized_as_is() {
    let mut seen = BTreeSet::new();
    for id in DetectorId::ALL {
        assert!(seen.insert(id.as_str()), "duplicate name {id}");
        let json = serde_json::to_string(id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.as_str()));
        let back: DetectorId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, *id);
    }
    assert_eq!(DetectorId::Nir.family(), Family::PersonalData);
    assert_eq!(DetectorId::MarkingDiffusionRestreinte.as_str(), "marking-diffusion-restreinte");
    assert_eq!(serde_json::to_string(&Family::PersonalData).unwrap(), "\"personal-data\"");
}

#[test]
fn settings_reject_unknown_fields_and_default_sensibly() {
    let s: DetectorSettings = toml::from_str("min_confidence = \"high\"\ndisabled = [\"email\"]").unwrap();
    assert_eq!(s.min_confidence, Confidence::High);
    assert!(!s.is_enabled(DetectorId::Email));
    assert!(s.is_enabled(DetectorId::Nir));
    assert!(toml::from_str::<DetectorSettings>("min_confidense = \"high\"").is_err());
    assert!(toml::from_str::<DetectorSettings>("disabled = [\"no-such-detector\"]").is_err());
    let d = DetectorSettings::default();
    assert!(DetectorId::ALL.iter().all(|id| d.is_enabled(*id)));
    assert_eq!(d.min_confidence, Confidence::Medium);
}

#[test]
fn settings_select_families_and_confidence() {
    let text = "IBAN FR76 3000 6000 0112 3456 7890 189, SIREN 732829320";
    let only_secrets = DetectorSettings { families: [Family::Secret].into(), ..Default::default() };
    assert!(scan(text, &only_secrets).is_empty());
    assert_eq!(found(text), [DetectorId::Iban, DetectorId::Siren]);
    // Without its keyword a Luhn-valid 9-digit number is only Low.
    assert!(found("order 732829320").is_empty());
    let low = DetectorSettings { min_confidence: Confidence::Low, ..Default::default() };
    assert_eq!(scan("order 732829320", &low).len(), 1);
}

#[test]
fn summary_has_names_and_counts_only() {
    let findings = scan("a@b.fr, c@d.fr, SIREN 732 829 320", &DetectorSettings::default());
    let summary = summarize(&findings);
    assert_eq!(summary.counts.get(&DetectorId::Email), Some(&2));
    assert_eq!(summary.total(), 3);
    assert_eq!(summary.highest, Some(Confidence::High));
    let json = serde_json::to_string(&summary).unwrap();
    // Counts keyed by name in `DetectorId::ALL` order; no text, no spans.
    assert_eq!(json, r#"{"counts":{"siren":1,"email":2},"highest":"high"}"#);
}

#[test]
fn contained_findings_are_dropped() {
    // The SIREN inside a VAT number, the e-mail-like tail of a URL password.
    assert_eq!(found("TVA : FR40303265045"), [DetectorId::VatFr]);
    assert_eq!(
        found("postgres://app:S3cr3tPassw0rd@db.internal.example.com:5432/app"),
        [DetectorId::ConnectionString]
    );
}

#[test]
fn spans_are_char_boundaries_of_the_input() {
    let text = "Référence : né le … NIR 2 95 10 99 126 111 93 — tél. 06 12 34 56 78 — TRÈS SECRET";
    let findings = scan(text, &DetectorSettings::default());
    assert_eq!(findings.len(), 3, "{findings:?}");
    for f in &findings {
        assert!(text.get(f.span.clone()).is_some());
    }
    assert_eq!(&text[findings[0].span.clone()], "2 95 10 99 126 111 93");
}

#[test]
fn long_inputs_are_cut_at_the_cap() {
    let mut text = "é".repeat(MAX_SCAN_BYTES / 2 - 1);
    text.push_str("x ");
    text.push_str("jean.dupont@exemple.fr");
    assert!(found(&text).is_empty());
    assert_eq!(found(&format!("jean.dupont@exemple.fr {text}")), [DetectorId::Email]);
}

#[test]
fn never_panics_on_random_bytes() {
    // A small xorshift: deterministic, no dev-dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = "0123456789 -.AZaz+/=_:;@éÈ\u{a0}\n{}()sk-hf_AKIAeyJ€2AB".chars().collect();
    let low =
        DetectorSettings { min_confidence: Confidence::Low, source_code_min_lines: 2, ..Default::default() };
    for _ in 0..3000 {
        let len = (next() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = scan(&String::from_utf8_lossy(&bytes), &low);
        let s: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        for f in scan(&s, &low) {
            assert!(s.get(f.span.clone()).is_some());
        }
    }
}

/// Inputs built to make a detector work per match over the whole text
/// (no newline, repeated triggers): each 1 MiB input must stay linear. The
/// bound is loose (a debug build, a shared machine); quadratic behaviour
/// would take minutes.
#[test]
fn pathological_inputs_stay_linear() {
    let low =
        DetectorSettings { min_confidence: Confidence::Low, source_code_min_lines: 2, ..Default::default() };
    let fill = |unit: &str| unit.repeat(MAX_SCAN_BYTES / unit.len() + 1);
    let inputs = [
        fill("1 "),
        fill("12 "),
        fill("password=x;"),
        fill("SECRET "),
        fill("-----BEGIN PRIVATE KEY-----"),
        fill("a@b.fr "),
        fill("06 "),
        fill("x;\n"),
        fill("a"),
        fill("Ab1+"),
        fill("é"),
        // Table cells read with their column header, the corporate levels.
        fill("C1 "),
        fill("a;C2\n"),
        fill("| C3 |\n"),
        fill("Étiquette;Confidentiel\n"),
        fill("x;732 829 320 000 12\n"),
        fill("(DR) "),
        fill("est diffusion restreinte "),
        fill("MSIP_Label_00000000-0000-0000-0000-000000000000_Name=General\n"),
    ];
    for input in &inputs {
        let start = std::time::Instant::now();
        let _ = scan(input, &low);
        let took = start.elapsed();
        println!("{:?}…: {took:?}", input.get(..12));
        assert!(took.as_secs() < 20, "{:?}…: {took:?}", input.get(..12));
    }
}

/// What the independent corpus taught: each case was a miss or a false
/// alarm before.
#[test]
fn lessons_from_the_independent_corpus() {
    use DetectorId as D;
    let cases: &[(&str, &[DetectorId])] = &[
        ("NIR : 1 03 09 99 127 452 - 93", &[D::Nir]),
        ("mailto:thomasm@free.fr?subject=Candidature", &[D::Email]),
        ("Establishment ID (SIRET) 959 081 019 00029", &[]),
        ("Northwind Logistique SAS – TVA FR31 966887168", &[]),
        ("secret: false", &[]),
        ("Le journal affirme que le dossier a été classé secret-défense il y a dix ans.", &[]),
        ("Document classé SECRET.", &[D::MarkingSecret]),
        ("Mention de protection : DR\nN° 8706/SGDSN/PRT", &[D::MarkingDiffusionRestreinte]),
        ("Boulangeries Lemoine SAS | C3 – Critique | v1.8", &[D::MarkingCorporateLabel]),
        ("token: xoxa-2-163984005385-970469797612-8788526680870-541c5e6734f2fd08b08f0ed3677b147828218e40", &[D::SlackToken]),
        ("\"SecretAccessKey\": \"PbgSsESeVmvmoEKMbo5tq1yKLEwLyAkf9gnCueJg\"", &[D::AwsSecretKey]),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", &[]),
        ("password = oCaBwLSliP!pE5", &[D::GenericSecret]),
        ("export SECRET_KEY='YVxr^-mjtU^7xKTn^hJ'", &[D::GenericSecret]),
        ("const SECRET_HEADER = \"X-Signature\";", &[]),
        ("ANTHROPIC_API_KEY=sk-ant-api03-<votre-clé>", &[]),
        ("SLACK_BOT_TOKEN=xoxb-your-bot-token", &[]),
        ("POSTGRES_PASSWORD_FILE: /run/secrets/db_password", &[]),
        ("# Author: emilie_perrin@editionsduquai.fr", &[D::Email]),
        ("cache miss for key=user:3246", &[]),
        ("S3 object key: exports/2022-03-01/dPvjYAWVK02eTz1zvh7vgOaYhxF2Iouwu4wwVwoV.csv.gz", &[]),
        (
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAYICRsq2KpZfIiY3wmQ9x\n-----END PUBLIC KEY-----",
            &[],
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(found(text), *expected, "{text}");
    }
}

fn org_settings(toml_text: &str) -> DetectorSettings {
    let organisation: OrgDetectors = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"));
    DetectorSettings { organisation, ..DetectorSettings::default() }
}

fn org_found(text: &str, settings: &DetectorSettings) -> Vec<(String, Confidence)> {
    let low = DetectorSettings { min_confidence: Confidence::Low, ..settings.clone() };
    scan(text, &low)
        .into_iter()
        .filter(|f| f.detector.family() == Family::Organisation)
        .map(|f| (f.detector.as_str().to_owned(), f.confidence))
        .collect()
}

#[test]
fn organisation_patterns_weigh_keywords_and_check_digits() {
    // Staff numbers "E-" + 6 digits, the last a Luhn check digit.
    let s = org_settings(
        r#"[[pattern]]
name = "org-staff"
pattern = '\bE-?[0-9]{6}\b'
keywords = ["matricule", "n° agent"]
keyword_window = 40
checksum = "luhn"
"#,
    );
    let high = vec![("org-staff".to_owned(), Confidence::High)];
    assert_eq!(org_found("Matricule : E-104232, service achats", &s), high);
    assert_eq!(org_found("le N° agent E104232 est muté", &s), high);
    // No keyword: reported low, so not by default.
    assert_eq!(org_found("ref E-104232", &s), vec![("org-staff".to_owned(), Confidence::Low)]);
    assert!(found("ref E-104232").is_empty());
    // Check digit wrong; a keyword inside another word does not count.
    assert!(org_found("Matricule : E-104233", &s).is_empty());
    assert_eq!(org_found("matricules E-104232", &s), vec![("org-staff".to_owned(), Confidence::Low)]);
    // Without keywords, a match is medium: reported by default.
    let s = org_settings("[[pattern]]\nname = \"org-projects\"\npattern = 'PRJ-[A-Z]{3}-[0-9]{4}'\n");
    let found: Vec<DetectorId> = scan("voir PRJ-HEL-2031", &s).into_iter().map(|f| f.detector).collect();
    assert_eq!(found, vec!["org-projects".parse::<DetectorId>().unwrap()]);
}

#[test]
fn organisation_detectors_cross_the_console_socket_as_written() {
    let key = [9u8; DICTIONARY_KEY_BYTES];
    let (words, digest) = hash_term(&key, "Projet Hélios").unwrap();
    assert_eq!(words, 2);
    let s = org_settings(&format!(
        "[[pattern]]\nname = \"org-a\"\npattern = 'A[0-9]+'\n[[dictionary]]\nname = \"org-b\"\nkey = \"{}\"\nmax_words = 2\nterms = [\"{digest}\"]\n",
        "09".repeat(32)
    ));
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("lios"), "{json}");
    let back: DetectorSettings = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(org_found("le PROJET hélios !", &back), vec![("org-b".to_owned(), Confidence::High)]);
    // Counts keyed by an organisation detector, as the console reports them.
    let counts: BTreeMap<DetectorId, u32> = serde_json::from_str(r#"{"org-b": 2, "nir": 1}"#).unwrap();
    assert_eq!(counts.get(&"org-b".parse().unwrap()), Some(&2));
    // What a console cannot send: a name outside the syntax, a pattern that
    // does not compile (refused as the policy would refuse it).
    for bad in [r#"{"org-": 1}"#, r#"{"ORG-B": 1}"#, r#"{"org-b\u0000": 1}"#] {
        assert!(serde_json::from_str::<BTreeMap<DetectorId, u32>>(bad).is_err(), "{bad}");
    }
    let bad = json.replace("A[0-9]+", "A[0-9+");
    assert!(serde_json::from_str::<DetectorSettings>(&bad).is_err());
    let long = format!("\"org-{}\"", "a".repeat(40));
    assert!(serde_json::from_str::<DetectorId>(&long).is_err());
}

#[test]
fn dictionary_terms_match_word_for_word() {
    let key = [3u8; DICTIONARY_KEY_BYTES];
    let terms: Vec<String> =
        ["ACME", "Projet Hélios", "Dupont & Fils SA"].iter().map(|t| hash_term(&key, t).unwrap().1).collect();
    let s = org_settings(&format!(
        "[[dictionary]]\nname = \"org-clients\"\nkey = \"{}\"\nmax_words = 4\nterms = {terms:?}\n",
        "03".repeat(32)
    ));
    let count = |text: &str| org_found(text, &s).len();
    assert_eq!(count("Devis pour acme, puis DUPONT & FILS sa; projet\nhélios."), 3);
    assert_eq!(count("acmes, acme-corp? projet helios, dupont fils"), 1, "only `acme` in acme-corp");
    assert_eq!(normalise_term("  Dupont & Fils   SA. "), "dupont fils sa");
    assert_eq!(hash_term(&key, " -- "), None);
    // Spans are the original text's, on char boundaries, whatever the case mapping.
    let text = "ÉÉ projet HÉLIOS ÉÉ";
    let spans: Vec<_> = scan(text, &s).into_iter().map(|f| f.span).collect();
    assert_eq!(spans.iter().map(|r| &text[r.clone()]).collect::<Vec<_>>(), vec!["projet HÉLIOS"]);
}

#[test]
fn column_headers_are_found_for_cells_of_pasted_tables() {
    let header = |text: &str, needle: &str| {
        let at = text.find(needle).unwrap();
        text::Tables::new(text).column_header(text, at).map(str::to_owned)
    };
    let csv = "Fournisseur;SIRET;NAF\nA;887 809 077 00217;43.32A\nB;787932417;69.20Z\n";
    assert_eq!(header(csv, "787932417").as_deref(), Some("SIRET"));
    let md = "| Fichier | Classification |\n|---|---|\n| a.docx | C3 |\n| b.docx | C1 |";
    assert_eq!(header(md, "C1").as_deref(), Some("Classification"));
    let tsv = "Fichier\tNiveau\r\nx\tC2";
    assert_eq!(header(tsv, "C2").as_deref(), Some("Niveau"));
    // Deep in a long table: still its header.
    let long = format!("N°;SIRET\n{}x;887 809 077 00217\n", "a;123\n".repeat(5_000));
    assert_eq!(header(&long, "887").as_deref(), Some("SIRET"));
    // Prose, the header line itself, a row of another shape, a blank line between.
    assert_eq!(header("le SIRET 887 809 077 00217", "887"), None);
    assert_eq!(header(csv, "SIRET"), None);
    assert_eq!(header("a;b;c\nx;887 809 077 00217", "887"), None);
    assert_eq!(header("N°;SIRET\n\nx;887 809 077 00217", "887"), None);
}
