//! Classification and protection markings (IGI 1300: TRÈS SECRET, SECRET;
//! the legacy … DÉFENSE stamps; DIFFUSION RESTREINTE; SPÉCIAL FRANCE),
//! corporate C0–C3 labels, "Confidential" and Microsoft sensitivity-label
//! metadata.
//!
//! A marking must look like a stamp, not like prose: in capitals (and not
//! inside a sentence written in capitals), or right after a label such as
//! "Classification :", or alone at the start of a line ("Confidentiel – ne
//! pas diffuser"). "Un secret de polichinelle" and "the secret to good
//! bread" are not markings.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::text::{self, char_after, char_before, is_word_char};
use super::{Confidence, DetectorId, Finding};

struct Compiled {
    phrase: Option<Regex>,
    corporate: Option<Regex>,
    corporate_after_label: Option<Regex>,
    msip: Option<Regex>,
    dr_after_label: Option<Regex>,
}

/// Words between the parts of a marking: spaces, tabs, no-break spaces,
/// and a hyphen ("Secret-Défense").
const GAP: &str = r"[ \t\u{a0}\-]+";

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    // Longest phrases first: the regex takes the first alternative that
    // matches at a position.
    phrase: text::regex(&format!(
        r"(?i:(?:tr[èe]s{GAP}secret|confidentiel|secret){GAP}d[ée]fense|(?:tr[èe]s|top){GAP}secret|diffusion{GAP}restreinte|sp[ée]cial{GAP}france|(?:highly|strictly|strictement|hautement){GAP}confidenti(?:al|el)|confidentiel(?:le)?|confidential|secret)"
    )),
    corporate: text::regex(
        r"\bC[0-3][ \t]*(?:[-–—:/|][ \t]*)?(?i:public|interne|internal|restreint|restricted|limited|confidentiel(?:le)?|confidential|sensible|sensitive|secret|critique|critical)\b",
    ),
    corporate_after_label: text::regex(
        r"(?i:classification|niveau(?: de (?:confidentialité|sensibilité|classification))?|sensibilité|sensitivity|label|marquage|étiquette)[ \t\u{a0}]*:?[ \t\u{a0}]*C[0-3]\b",
    ),
    // "DR" alone is too short to be a stamp, except as the value of a
    // protection label: "Mention de protection : DR".
    dr_after_label: text::regex(
        r"(?im:^[ \t]*(?:mention(?: de protection)?|marquage|classification|niveau de protection|protection)[ \t\u{a0}]*:[ \t\u{a0}]*)DR\b",
    ),
    msip: text::regex(
        r"MSIP_Label_[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}_(?:Enabled|SetDate|Method|Name|SiteId|ActionId|ContentBits|Application)",
    ),
});

#[cfg(test)]
pub(super) fn patterns_compiled() -> bool {
    COMPILED.phrase.is_some()
        && COMPILED.corporate.is_some()
        && COMPILED.corporate_after_label.is_some()
        && COMPILED.msip.is_some()
        && COMPILED.dr_after_label.is_some()
}

pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    if let Some(re) = COMPILED.msip.as_ref() {
        out.extend(re.find_iter(text).map(|m| Finding {
            detector: DetectorId::MarkingMsipLabel,
            confidence: Confidence::High,
            span: m.range(),
        }));
    }
    if let Some(re) = COMPILED.dr_after_label.as_ref() {
        for m in re.find_iter(text) {
            // The match ends with "DR": report those two letters.
            let span = m.end().saturating_sub(2)..m.end();
            out.push(Finding {
                detector: DetectorId::MarkingDiffusionRestreinte,
                confidence: Confidence::High,
                span,
            });
        }
    }
    if let Some(re) = COMPILED.corporate.as_ref() {
        for m in re.find_iter(text) {
            let level = m.as_str().as_bytes().get(1).copied();
            // C0 is "public": a label, but nothing to protect.
            let confidence = if level == Some(b'0') { Confidence::Low } else { Confidence::High };
            out.push(Finding { detector: DetectorId::MarkingCorporateLabel, confidence, span: m.range() });
        }
    }
    if let Some(re) = COMPILED.corporate_after_label.as_ref() {
        for m in re.find_iter(text) {
            if char_before(text, m.start()).is_some_and(is_word_char) {
                continue;
            }
            let confidence = if m.as_str().ends_with('0') { Confidence::Low } else { Confidence::High };
            out.push(Finding { detector: DetectorId::MarkingCorporateLabel, confidence, span: m.range() });
        }
    }
    let Some(re) = COMPILED.phrase.as_ref() else { return };
    for m in re.find_iter(text) {
        let span = m.range();
        if char_before(text, span.start).is_some_and(is_word_char)
            || char_after(text, span.end).is_some_and(is_word_char)
        {
            continue;
        }
        let phrase = m.as_str();
        let detector = detector_of(phrase);
        if let Some(confidence) = stamp(text, &span, phrase, detector) {
            out.push(Finding { detector, confidence, span });
        }
    }
}

fn detector_of(phrase: &str) -> DetectorId {
    let lower = phrase.to_lowercase();
    if lower.ends_with("fense") {
        DetectorId::MarkingDefenseLegacy
    } else if lower.starts_with("tr") || lower.starts_with("top") {
        DetectorId::MarkingTresSecret
    } else if lower.starts_with("diffusion") {
        DetectorId::MarkingDiffusionRestreinte
    } else if lower.starts_with("sp") {
        DetectorId::MarkingSpecialFrance
    } else if lower == "secret" {
        DetectorId::MarkingSecret
    } else {
        DetectorId::MarkingConfidential
    }
}

/// Capitalised words that may stand next to a marking in a stamp.
const STAMP_WORDS: &[&str] = &[
    "SECRET",
    "TRÈS",
    "TRES",
    "TOP",
    "DÉFENSE",
    "DEFENSE",
    "CONFIDENTIEL",
    "CONFIDENTIELLE",
    "CONFIDENTIAL",
    "DIFFUSION",
    "RESTREINTE",
    "SPÉCIAL",
    "SPECIAL",
    "FRANCE",
    "NP",
    "NON",
    "PROTÉGÉ",
    "OTAN",
    "NATO",
    "UE",
    "EU",
    "CLASSIFICATION",
    "CLASSIFIÉ",
    "CLASSIFIED",
    "NIVEAU",
    "MENTION",
    "DOCUMENT",
    "HIGHLY",
    "STRICTLY",
    "STRICTEMENT",
    "HAUTEMENT",
    "PERSONNEL",
    "ET",
    "INTERNE",
    "INTERNAL",
    "ONLY",
    "USE",
    "NOFORN",
    "REL",
    "FR",
    "C0",
    "C1",
    "C2",
    "C3",
];

/// Lower-case labels after which any capitalisation counts.
const LABELS: &[&str] = &[
    "classification",
    "classified",
    "niveau",
    "niveau de protection",
    "niveau de classification",
    "marquage",
    "mention",
    "sensitivity",
    "sensibilité",
    "label",
    "étiquette",
    "protection",
];

/// Whether a phrase match is a stamp, and how sure.
fn stamp(text: &str, span: &Range<usize>, phrase: &str, detector: DetectorId) -> Option<Confidence> {
    let line = text::line_of(text, span.start, 256);
    let before = text.get(line.start..span.start).unwrap_or_default();
    let after = text.get(span.end..line.end).unwrap_or_default();
    let bare = matches!(detector, DetectorId::MarkingSecret | DetectorId::MarkingConfidential);

    if after_label(before) {
        return Some(Confidence::High);
    }
    // "Document classé SECRET", "Classifié : secret" are stamps; "le dossier
    // a été classé secret-défense" is prose about one.
    let capitals = phrase.chars().any(char::is_alphabetic) && !phrase.chars().any(char::is_lowercase);
    if let Some(colon) = after_verb_label(before) {
        if colon || capitals {
            return Some(Confidence::High);
        }
    }
    if capitals {
        if !neighbour_ok(before.split(char::is_whitespace).rev().find(|w| !w.is_empty()))
            || !neighbour_ok(after.split(char::is_whitespace).find(|w| !w.is_empty()))
        {
            return None;
        }
        let alone = !before.chars().chain(after.chars()).any(char::is_lowercase);
        let bracketed = before.trim_end().ends_with(['[', '(']) && after.trim_start().starts_with([']', ')']);
        if alone || bracketed {
            return Some(Confidence::High);
        }
        // A bare "SECRET" inside a sentence is emphasis more often than a
        // stamp; at the head of a line it may still be one (below).
        if !bare {
            return Some(Confidence::Medium);
        }
    } else if phrase.to_lowercase().starts_with("top") {
        // "TOP SECRET" is a marking; "Top secret : la recette" is a title.
        return None;
    }
    // Several words in title case ("Diffusion Restreinte", "Spécial
    // France"): prose writes them in lower case.
    let words: Vec<&str> =
        phrase.split(|c: char| c.is_whitespace() || c == '-').filter(|w| !w.is_empty()).collect();
    if !bare && words.len() >= 2 && words.iter().all(|w| w.chars().next().is_some_and(char::is_uppercase)) {
        return Some(Confidence::Medium);
    }
    // Any case, alone at the head of a line and followed by a separator:
    // "Confidentiel – ne pas diffuser", "Diffusion restreinte".
    let head = before.trim_start_matches(|c: char| c.is_whitespace() || "*#>-[(|_\"'".contains(c)).is_empty();
    let tail = after.trim_start();
    let separated = tail.is_empty() || tail.starts_with(['-', '–', '—', ':', '/', '|', ')', ']', '*', '_']);
    // "secret: false" is a setting, "Confidentiel – ne pas diffuser" a stamp.
    let cased = phrase.chars().next().is_some_and(char::is_uppercase);
    (head && separated && (cased || !bare)).then_some(Confidence::Medium)
}

/// `before` ends with a label and an optional colon: "Classification : ".
fn after_label(before: &str) -> bool {
    let lower = before.to_lowercase();
    let trimmed = lower.trim_end_matches(|c: char| c.is_whitespace() || ":=\"'«»[(*".contains(c));
    LABELS.iter().any(|l| {
        trimmed
            .strip_suffix(l)
            .is_some_and(|head| !head.chars().next_back().is_some_and(char::is_alphanumeric))
    })
}

/// `before` ends with "classé", "classifiée"…: `Some(whether a colon follows it)`.
fn after_verb_label(before: &str) -> Option<bool> {
    let lower = before.to_lowercase();
    let trimmed = lower.trim_end_matches(|c: char| c.is_whitespace() || "\"'«»[(*".contains(c));
    let (trimmed, colon) = match trimmed.strip_suffix(':') {
        Some(head) => (head.trim_end(), true),
        None => (trimmed, false),
    };
    ["classé", "classée", "classifié", "classifiée"]
        .iter()
        .any(|l| {
            trimmed
                .strip_suffix(l)
                .is_some_and(|head| !head.chars().next_back().is_some_and(char::is_alphanumeric))
        })
        .then_some(colon)
}

/// A neighbouring word in capitals is allowed only when it belongs to a
/// stamp ("SECRET // SPÉCIAL FRANCE"); "THE SECRET TO GOOD BREAD" is prose.
fn neighbour_ok(word: Option<&str>) -> bool {
    let Some(word) = word else { return true };
    let word = word.trim_matches(|c: char| !c.is_alphanumeric());
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    let shouting = letters >= 2 && !word.chars().any(char::is_lowercase);
    !shouting || STAMP_WORDS.contains(&word)
}
