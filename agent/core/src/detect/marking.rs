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
    corporate_cell: Option<Regex>,
    msip: Option<Regex>,
    dr_after_label: Option<Regex>,
    dr_in_list: Option<Regex>,
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
    // "C2 – Usage interne", "C3 - Highly restricted", "[C2] Synthèse",
    // "C2 Confidentiel": a level then a word of a label's description.
    // Word boundaries are ASCII ones (`(?-u:\b)`): a Unicode `\b` keeps the
    // regex crate off its DFA on non-ASCII text, and the marking family
    // took 7× longer on French text with it (898 µs against 137 µs per 10 KB).
    corporate: text::regex(
        r"\[C[0-3]\]|(?-u:\b)C[0-3][ \t]*(?:[-–—:/|][ \t]*)?(?i:public|interne|internal|restreint|restricted|limited|confidentiel(?:le)?|confidential|sensible|sensitive|secret|critique|critical|usage|accès|acces|access|highly|strictly|strictement|très|tres|diffusion|distribution|personnel|external|externe)(?-u:\b)",
    ),
    // "Classification : C2", "Doc classé C2", "passé en C3"; a bare
    // "niveau" needs its colon ("niveau C1 en anglais" is a language level).
    corporate_after_label: text::regex(
        r"(?i:classification|niveau[ \t]*:|niveau de (?:confidentialité|sensibilité|classification|protection)|sensibilité|sensitivity|label|marquage|étiquette|étiqueté|étiquetée|classé|classée|passé en|passée en)[ \t\u{a0}]*:?[ \t\u{a0}]*C[0-3](?-u:\b)",
    ),
    // A level alone in a table cell, read with its column's header.
    corporate_cell: text::regex(r"(?-u:\b)C[0-3](?-u:\b)"),
    // "DR" alone is too short to be a stamp, except as the value of a
    // protection label: "Mention de protection : DR".
    dr_after_label: text::regex(
        r"(?im:^[ \t]*(?:mention(?: de protection)?|marquage|classification|niveau de protection|protection)[ \t\u{a0}]*:[ \t\u{a0}]*)DR\b",
    ),
    // "PJ 4 : Synthèse (DR)" in a list whose other items say "(NP)".
    dr_in_list: text::regex(r"\(DR\)"),
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
        && COMPILED.dr_in_list.is_some()
        && COMPILED.corporate_cell.is_some()
}

pub(super) fn scan(text: &str, tables: &text::Tables, out: &mut Vec<Finding>) {
    msip_labels(text, out);
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
    if let Some(re) = COMPILED.dr_in_list.as_ref() {
        for m in re.find_iter(text) {
            let (before, after) = text::around(text, &m.range(), 600, 600);
            if before.contains("(NP)") || after.contains("(NP)") {
                let span = m.start() + 1..m.end() - 1;
                out.push(Finding {
                    detector: DetectorId::MarkingDiffusionRestreinte,
                    confidence: Confidence::High,
                    span,
                });
            }
        }
    }
    if let Some(re) = COMPILED.corporate.as_ref() {
        for m in re.find_iter(text) {
            out.push(corporate_level(text, m.start()));
        }
    }
    if let Some(re) = COMPILED.corporate_after_label.as_ref() {
        for m in re.find_iter(text) {
            if char_before(text, m.start()).is_some_and(is_word_char) {
                continue;
            }
            out.push(corporate_level(text, m.end().saturating_sub(2)));
        }
    }
    if let Some(re) = COMPILED.corporate_cell.as_ref() {
        for m in re.find_iter(text) {
            if cell_under_label(text, tables, &m.range()) {
                out.push(corporate_level(text, m.start()));
            }
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
        if let Some(confidence) = stamp(text, tables, &span, phrase, detector) {
            out.push(Finding { detector, confidence, span });
        }
    }
}

/// The corporate level at `at` ("C2", or "[C2]"'s "C2"); its description
/// ("C2 – Confidentiel") is part of it (see `stamp`). C0 is "public": a
/// label, but nothing to protect.
fn corporate_level(text: &str, at: usize) -> Finding {
    let at = if text.get(at..).is_some_and(|t| t.starts_with('[')) { at + 1 } else { at };
    let level = text.as_bytes().get(at + 1).copied();
    let confidence = if level == Some(b'0') { Confidence::Low } else { Confidence::High };
    Finding { detector: DetectorId::MarkingCorporateLabel, confidence, span: at..at + 2 }
}

/// Column headers under which a cell is a marking: "Classification",
/// "Étiquette", "Niveau", "Sensitivity"…
const HEADER_LABELS: &[&str] = &[
    "classification",
    "étiquette*",
    "etiquette*",
    "niveau*",
    "label*",
    "sensitivity",
    "sensibilité",
    "marquage",
    "mention",
    "confidentialité",
];

/// `span` fills its table cell and the cell's column is headed by a label.
fn cell_under_label(text: &str, tables: &text::Tables, span: &Range<usize>) -> bool {
    let line = text::line_of(text, span.start, 256);
    let before = text.get(line.start..span.start).unwrap_or_default();
    let after = text.get(span.end..line.end).unwrap_or_default();
    let delimiters = ['\t', '|', ';', ','];
    let alone_before =
        before.trim_end_matches([' ', '\u{a0}']).chars().next_back().is_none_or(|c| delimiters.contains(&c));
    let alone_after =
        after.trim_start_matches([' ', '\u{a0}']).chars().next().is_none_or(|c| delimiters.contains(&c));
    alone_before
        && alone_after
        && tables
            .column_header(text, span.start)
            .is_some_and(|header| text::has_keyword(&header.to_lowercase(), HEADER_LABELS))
}

/// Label names that mark nothing to protect (Microsoft Purview's default
/// labels and their usual French names).
const PUBLIC_LABEL_NAMES: &[&str] = &[
    "general",
    "général",
    "public",
    "internal",
    "interne",
    "usage interne",
    "internal use",
    "personal",
    "personnel",
    "non-business",
    "non business",
];

/// `MSIP_Label_<guid>_<property>` metadata, one finding per property,
/// except for a label whose `_Name` says it protects nothing.
fn msip_labels(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = COMPILED.msip.as_ref() else { return };
    let found: Vec<Range<usize>> = re.find_iter(text).map(|m| m.range()).collect();
    // "MSIP_Label_" + 36 chars of GUID.
    let guid = |span: &Range<usize>| text.get(span.start + 11..span.start + 47).unwrap_or_default();
    let public: std::collections::HashSet<&str> = found
        .iter()
        .filter(|span| text.get(..span.end).is_some_and(|t| t.ends_with("_Name")))
        .filter(|span| {
            label_name(text, span.end)
                .is_some_and(|n| PUBLIC_LABEL_NAMES.contains(&n.to_lowercase().as_str()))
        })
        .map(guid)
        .collect();
    for span in found {
        if !public.contains(&guid(&span)) {
            out.push(Finding { detector: DetectorId::MarkingMsipLabel, confidence: Confidence::High, span });
        }
    }
}

/// The value after `…_Name`: `=General`, ` = General`, or custom.xml's
/// `"><vt:lpwstr>General</vt:lpwstr>`.
fn label_name(text: &str, at: usize) -> Option<&str> {
    let (_, rest) = text::around(text, &(at..at), 0, 120);
    let rest = rest.trim_start_matches([' ', '=', '"', '\'', '>']);
    let rest = rest.strip_prefix("<vt:lpwstr>").unwrap_or(rest);
    let end = rest.find(['\n', '\r', ';', '<', '"', '&']).unwrap_or(rest.len());
    rest.get(..end).map(str::trim)
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
    "étiquette de confidentialité",
    "etiquette de confidentialite",
    "niveau de confidentialité",
    "niveau de sensibilité",
    "sensitivity label",
    "classification level",
    "mention de protection",
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
fn stamp(
    text: &str,
    tables: &text::Tables,
    span: &Range<usize>,
    phrase: &str,
    detector: DetectorId,
) -> Option<Confidence> {
    let line = text::line_of(text, span.start, 256);
    let (before, after) = cell_of(
        text.get(line.start..span.start).unwrap_or_default(),
        text.get(span.end..line.end).unwrap_or_default(),
    );
    let bare = matches!(detector, DetectorId::MarkingSecret | DetectorId::MarkingConfidential);
    let dr = detector == DetectorId::MarkingDiffusionRestreinte;
    let cased = phrase.chars().next().is_some_and(char::is_uppercase);

    // "C2 – Confidentiel", "C3 - Secret entreprise": the description of a
    // company level, reported as that level (marking-corporate-label).
    if after_corporate_level(before) {
        return None;
    }
    if after_label(before) || cell_under_label(text, tables, span) {
        return Some(Confidence::High);
    }
    // "marqués DR (diffusion restreinte)".
    if dr && before.trim_end().strip_suffix('(').is_some_and(|b| b.trim_end().ends_with("DR")) {
        return Some(Confidence::High);
    }
    // "Document classé SECRET", "Classifié : secret", "étiqueté Confidential"
    // are stamps; "le dossier a été classé secret-défense" is prose about one.
    let capitals = phrase.chars().any(char::is_alphabetic) && !phrase.chars().any(char::is_lowercase);
    if let Some(colon) = after_verb_label(before) {
        if colon || capitals || cased || dr {
            return Some(Confidence::High);
        }
    }
    // "la note est diffusion restreinte", "le support est en diffusion
    // restreinte": a document declared DR. "Une diffusion restreinte de la
    // vidéo" is about broadcasting, and does not follow a copula.
    if dr && after_copula(before) {
        return Some(Confidence::High);
    }
    // "[Confidentiel] Réorganisation", "[Strictement confidentiel]".
    let bracketed = before.trim_end().ends_with(['[', '(']) && after.trim_start().starts_with([']', ')']);
    if bracketed && (cased || capitals) {
        return Some(Confidence::High);
    }
    if capitals {
        if !neighbour_ok(before.split(char::is_whitespace).rev().find(|w| !w.is_empty()))
            || !neighbour_ok(after.split(char::is_whitespace).find(|w| !w.is_empty()))
        {
            return None;
        }
        let alone = !before.chars().chain(after.chars()).any(char::is_lowercase);
        // "Objet : CONFIDENTIEL – Offre Orion": a stamp, then what it marks.
        let dashed = after.trim_start().starts_with(['–', '—', '-', ':']);
        if alone || bracketed || dashed {
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
    let head =
        before.trim_start_matches(|c: char| c.is_whitespace() || "*#>-–—•[(|_\"'".contains(c)).is_empty();
    let tail = after.trim_start();
    let separated = tail.is_empty() || tail.starts_with(['-', '–', '—', ':', '/', '|', ')', ']', '*', '_']);
    // "secret: false" is a setting, "Confidentiel – ne pas diffuser" a stamp.
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

/// The part of a line's `before` and `after` in the same table cell, when
/// the line is a row of `|` or tab-separated cells ("Q3 forecast |
/// CONFIDENTIAL – INTERNAL USE ONLY | 8").
fn cell_of<'t>(before: &'t str, after: &'t str) -> (&'t str, &'t str) {
    let cell_before = before.rfind(['|', '\t']).map_or(before, |at| before.get(at + 1..).unwrap_or_default());
    let cell_after = after.find(['|', '\t']).map_or(after, |at| after.get(..at).unwrap_or_default());
    (cell_before, cell_after)
}

/// `before` ends with a corporate level and a separator: "C2 – ", "[C3] ".
fn after_corporate_level(before: &str) -> bool {
    let trimmed = before.trim_end_matches(|c: char| c.is_whitespace() || "-–—:/|]".contains(c));
    let Some(head) = ["C1", "C2", "C3"].iter().find_map(|level| trimmed.strip_suffix(level)) else {
        return false;
    };
    // A separator after the level, and the level a word of its own.
    trimmed.len() < before.len() && !head.chars().next_back().is_some_and(is_word_char)
}

/// `before` ends with a copula that declares a document's marking: "est",
/// "sont", "reste", "est en", "passé en".
fn after_copula(before: &str) -> bool {
    let lower = before.to_lowercase();
    let trimmed = lower.trim_end();
    ["est", "sont", "reste", "restent", "est en", "sont en", "passé en", "passée en", "mis en", "mise en"]
        .iter()
        .any(|w| {
            trimmed
                .strip_suffix(w)
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
    [
        "classé",
        "classée",
        "classés",
        "classées",
        "classifié",
        "classifiée",
        "étiqueté",
        "étiquetée",
        "étiquetés",
        "marqué",
        "marquée",
        "marqués",
        "marquées",
        "passé en",
        "passée en",
        "labelled",
        "labeled",
        "marked",
    ]
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
