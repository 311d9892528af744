//! Sensitive-content detectors for text about to leave for a GenAI service
//! (clipboard, prompt): secrets, French/European personal data, protection
//! markings and blocks of source code.
//!
//! Everything here is a pure function over `&str`. A [`Finding`] carries a
//! detector name, a confidence and a byte span, never the matched text; an
//! event records only the [`Summary`] (names and counts).
//!
//! Inputs are scanned on their first [`MAX_SCAN_BYTES`] bytes only, so a
//! huge paste costs a bounded time. A 10 KB mixed text takes 0.6–0.8 ms
//! in a release build (3–5 ms with vigie-core unoptimised), every detector
//! enabled; `scan_speed_10kb` in `tests/detector_corpus.rs` measures it.
//! Per-match context look-ups are clipped to a few hundred bytes, so the
//! cost stays linear even on a 1 MiB text without a newline.

mod checksum;
mod marking;
mod org;
mod personal;
mod secrets;
mod source;
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use org::{
    hash_term, normalise_term, Checksum, DictionaryDefinition, OrgDetectorName, OrgDetectors,
    OrgDetectorsWritten, PatternDefinition, Problem, ProblemAt, DICTIONARY_KEY_BYTES, MAX_WORDS, ORG_PREFIX,
};

/// Inputs longer than this are scanned on their first `MAX_SCAN_BYTES`
/// bytes (cut back to a char boundary); what lies beyond is not looked at.
pub const MAX_SCAN_BYTES: usize = 1 << 20;

/// What a detector protects.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Secret,
    PersonalData,
    Marking,
    SourceCode,
    /// The organisation's own detectors, from its policy.
    Organisation,
}

impl Family {
    pub const ALL: [Family; 5] =
        [Family::Secret, Family::PersonalData, Family::Marking, Family::SourceCode, Family::Organisation];
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Format matches but nothing corroborates it (a Luhn-valid 9-digit
    /// number without "SIREN" nearby): reported only when asked for.
    Low,
    Medium,
    High,
}

macro_rules! detectors {
    ($($variant:ident => $name:literal, $family:ident;)*) => {
        /// One detector: a built-in one or one of the organisation's
        /// (`org-…`, defined in its policy). The serialized name is
        /// [`DetectorId::as_str`] and is stable: policies and stored events
        /// refer to it.
        #[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export, rename_all = "kebab-case"))]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum DetectorId {
            $($variant,)*
            #[cfg_attr(feature = "ts", ts(untagged))]
            Org(OrgDetectorName),
        }

        impl DetectorId {
            /// Every built-in detector, in priority order (the first wins
            /// when two report the same span); the organisation's come last.
            pub const ALL: &'static [DetectorId] = &[$(DetectorId::$variant,)*];

            pub fn as_str(&self) -> &str {
                match self {
                    $(DetectorId::$variant => $name,)*
                    DetectorId::Org(name) => name.as_str(),
                }
            }

            pub const fn family(self) -> Family {
                match self {
                    $(DetectorId::$variant => Family::$family,)*
                    DetectorId::Org(_) => Family::Organisation,
                }
            }
        }
    };
}

detectors! {
    PrivateKey => "private-key", Secret;
    OpenaiKey => "openai-key", Secret;
    AnthropicKey => "anthropic-key", Secret;
    HuggingfaceToken => "huggingface-token", Secret;
    AwsAccessKey => "aws-access-key", Secret;
    AwsSecretKey => "aws-secret-key", Secret;
    GithubToken => "github-token", Secret;
    GitlabToken => "gitlab-token", Secret;
    SlackToken => "slack-token", Secret;
    GoogleApiKey => "google-api-key", Secret;
    AzureStorageKey => "azure-storage-key", Secret;
    Jwt => "jwt", Secret;
    ConnectionString => "connection-string", Secret;
    GenericSecret => "generic-secret", Secret;
    Iban => "iban", PersonalData;
    VatFr => "vat-fr", PersonalData;
    Nir => "nir", PersonalData;
    PaymentCard => "payment-card", PersonalData;
    Siret => "siret", PersonalData;
    Nif => "nif", PersonalData;
    Siren => "siren", PersonalData;
    PassportFr => "passport-fr", PersonalData;
    PhoneFr => "phone-fr", PersonalData;
    Email => "email", PersonalData;
    MarkingTresSecret => "marking-tres-secret", Marking;
    MarkingDefenseLegacy => "marking-defense-legacy", Marking;
    MarkingSecret => "marking-secret", Marking;
    MarkingDiffusionRestreinte => "marking-diffusion-restreinte", Marking;
    MarkingSpecialFrance => "marking-special-france", Marking;
    MarkingConfidential => "marking-confidential", Marking;
    MarkingCorporateLabel => "marking-corporate-label", Marking;
    MarkingMsipLabel => "marking-msip-label", Marking;
    SourceCode => "source-code", SourceCode;
}

impl DetectorId {
    fn priority(self) -> usize {
        DetectorId::ALL.iter().position(|d| *d == self).unwrap_or(usize::MAX)
    }
}

impl FromStr for DetectorId {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        if let Some(builtin) = DetectorId::ALL.iter().find(|d| d.as_str() == name) {
            return Ok(*builtin);
        }
        if name.starts_with(ORG_PREFIX) {
            return name.parse().map(DetectorId::Org);
        }
        Err(format!(
            "unknown detector `{}`: a built-in name such as `nir` or `aws-access-key`, or `{ORG_PREFIX}…` for one the policy defines",
            name.escape_debug()
        ))
    }
}

impl Serialize for DetectorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DetectorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = DetectorId;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a detector name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<DetectorId, E> {
                name.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

impl std::fmt::Display for DetectorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detection: which detector, how sure, and where (a byte range of the
/// scanned text, on char boundaries). The matched text itself is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub detector: DetectorId,
    pub confidence: Confidence,
    pub span: Range<usize>,
}

/// Which detectors run and what they report.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorSettings {
    /// Families to run; a detector runs when its family is listed here and
    /// it is not in `disabled`.
    pub families: BTreeSet<Family>,
    pub disabled: BTreeSet<DetectorId>,
    /// Findings below this confidence are dropped.
    pub min_confidence: Confidence,
    /// Fewest code-like lines for a block to count as source code.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub source_code_min_lines: usize,
    /// The organisation's own patterns and dictionaries.
    pub organisation: OrgDetectors,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            families: Family::ALL.into_iter().collect(),
            disabled: BTreeSet::new(),
            min_confidence: Confidence::Medium,
            source_code_min_lines: 8,
            organisation: OrgDetectors::default(),
        }
    }
}

impl DetectorSettings {
    pub fn is_enabled(&self, detector: DetectorId) -> bool {
        self.families.contains(&detector.family()) && !self.disabled.contains(&detector)
    }
}

/// Runs every enabled detector over `text` (its first [`MAX_SCAN_BYTES`]
/// bytes) and returns the findings sorted by position. A finding inside
/// another one's span is dropped (the SIREN inside a VAT number, a token
/// inside a connection string), except against a source-code block, which
/// keeps what it contains.
pub fn scan(text: &str, settings: &DetectorSettings) -> Vec<Finding> {
    let text = text::truncate(text, MAX_SCAN_BYTES);
    let mut out = Vec::new();
    let runs = |family| settings.families.contains(&family);
    if runs(Family::Secret) {
        secrets::scan(text, &mut out);
    }
    // Table columns are read once for both families that look at headers.
    let tables = (runs(Family::PersonalData) || runs(Family::Marking)).then(|| text::Tables::new(text));
    if let Some(tables) = tables.as_ref().filter(|_| runs(Family::PersonalData)) {
        personal::scan(text, tables, &mut out);
    }
    if let Some(tables) = tables.as_ref().filter(|_| runs(Family::Marking)) {
        marking::scan(text, tables, &mut out);
    }
    if runs(Family::SourceCode) {
        source::scan(text, settings.source_code_min_lines, &mut out);
    }
    if runs(Family::Organisation) {
        org::scan(text, &settings.organisation, &mut out);
    }
    out.retain(|f| settings.is_enabled(f.detector) && f.confidence >= settings.min_confidence);
    drop_contained(&mut out);
    out
}

/// Sorts by start (longest, then highest-priority first) and drops every
/// finding whose span lies within an earlier one's.
fn drop_contained(findings: &mut Vec<Finding>) {
    findings.sort_by_key(|f| (f.span.start, std::cmp::Reverse(f.span.end), f.detector.priority()));
    let mut reach = 0usize;
    let mut any = false;
    findings.retain(|f| {
        if f.detector == DetectorId::SourceCode {
            return true;
        }
        let inside = any && f.span.end <= reach;
        if !inside {
            reach = f.span.end;
            any = true;
        }
        !inside
    });
}

/// What an event records about a scan: detector names and counts, never the
/// content or its position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub counts: BTreeMap<DetectorId, u32>,
    pub highest: Option<Confidence>,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn total(&self) -> u32 {
        self.counts.values().fold(0u32, |a, n| a.saturating_add(*n))
    }

    pub fn families(&self) -> BTreeSet<Family> {
        self.counts.keys().map(|d| d.family()).collect()
    }
}

pub fn summarize(findings: &[Finding]) -> Summary {
    let mut summary = Summary::default();
    for f in findings {
        let n = summary.counts.entry(f.detector).or_insert(0);
        *n = n.saturating_add(1);
        summary.highest = summary.highest.max(Some(f.confidence));
    }
    summary
}

#[cfg(test)]
mod tests;
