//! The organisation's own detectors, written in its policy as DLP products
//! offer them: patterns (a regular expression, supporting keywords, an
//! optional check digit) and exact-match dictionaries (client names,
//! project code names, staff numbers).
//!
//! A dictionary is stored only as keyed hashes (HMAC-SHA-256, truncated to
//! 128 bits) of its normalised terms, so the list cannot be read back from
//! the workstation. The key travels with the hashes, since the console must
//! hash what is pasted: whoever can read the policy can still test a guess
//! (is "Projet Hélios" on the list?), as with any keyed-hash dictionary.
//! A slow hash would not change that and would make a 1 MiB paste cost
//! seconds. Terms are compared word by word: letters and digits, lower
//! case, any run of other characters as one separator ("ACME  Corp." and
//! "acme corp" are the same term; "Hélios" and "Helios" are not).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{checksum, text, Confidence, DetectorId, Finding};

/// Organisation detectors' names start with this, so that they never clash
/// with a built-in detector added later.
pub const ORG_PREFIX: &str = "org-";
const NAME_MAX: usize = 40;
const PATTERN_MAX_CHARS: usize = 2000;
/// Compiled size of one pattern: enough for alternations of a few hundred
/// words, small enough that a policy cannot make the console allocate much.
const PATTERN_COMPILED_MAX: usize = 1 << 20;
const KEYWORD_WINDOW_MAX: usize = 500;
const MAX_PATTERNS: usize = 64;
const MAX_DICTIONARIES: usize = 16;
const MAX_TERMS: usize = 200_000;
/// Longest term, in words: each word of a paste starts one look-up per
/// length up to this, so it bounds the cost.
pub const MAX_WORDS: u8 = 6;
const DIGEST_BYTES: usize = 16;
const KEY_BYTES: usize = 32;

/// The name of an organisation detector: `org-` then lower-case letters,
/// digits and dashes, at most 40 bytes. Kept inline so that a
/// [`DetectorId`] stays `Copy`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export, type = "`org-${string}`"))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrgDetectorName {
    len: u8,
    bytes: [u8; NAME_MAX],
}

impl OrgDetectorName {
    pub fn as_str(&self) -> &str {
        self.bytes.get(..usize::from(self.len)).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default()
    }
}

impl FromStr for OrgDetectorName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let rest = name.strip_prefix(ORG_PREFIX).unwrap_or_default();
        let well_formed = !rest.is_empty()
            && name.len() <= NAME_MAX
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err(format!(
                "`{}` is not an organisation detector name: `{ORG_PREFIX}` then lower-case letters, digits and dashes, at most {NAME_MAX} bytes",
                name.escape_debug()
            ));
        }
        let mut bytes = [0u8; NAME_MAX];
        for (slot, b) in bytes.iter_mut().zip(name.bytes()) {
            *slot = b;
        }
        Ok(OrgDetectorName { len: name.len() as u8, bytes })
    }
}

impl Ord for OrgDetectorName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for OrgDetectorName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for OrgDetectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for OrgDetectorName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OrgDetectorName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A check digit the digits of a pattern's match must pass.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checksum {
    /// Luhn (cards, SIREN, SIRET, many staff and customer numbers).
    Luhn,
    /// ISO 7064 MOD 97-10: the number mod 97 is 1 (IBAN-style).
    Mod97,
    /// The last two digits are 97 − (the rest mod 97) (NIR-style keys).
    Key97,
}

impl Checksum {
    fn holds(self, matched: &str) -> bool {
        let digits: String = matched.chars().filter(char::is_ascii_digit).collect();
        match self {
            Checksum::Luhn => digits.len() >= 2 && checksum::luhn(&digits),
            Checksum::Mod97 => checksum::mod97(&digits),
            Checksum::Key97 => checksum::key97(&digits),
        }
    }
}

/// `[[clipboard.detectors.pattern]]`: a match is reported at high
/// confidence when one of `keywords` stands within `keyword_window` bytes
/// of it, at low confidence (not reported by default) when none does, and
/// at medium confidence when the detector has no keywords.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternDefinition {
    pub name: OrgDetectorName,
    /// A regular expression in Rust's `regex` syntax: linear time whatever
    /// the text, no look-around or back-references.
    pub pattern: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default = "default_keyword_window")]
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub keyword_window: usize,
    #[serde(default)]
    pub checksum: Option<Checksum>,
}

fn default_keyword_window() -> usize {
    80
}

/// `[[clipboard.detectors.dictionary]]`, as `vigie-agent hash-terms` writes it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DictionaryDefinition {
    pub name: OrgDetectorName,
    /// The HMAC key, 32 bytes in hex.
    pub key: String,
    /// The most words in one term.
    pub max_words: u8,
    /// Each term's keyed hash, 16 bytes in hex.
    pub terms: Vec<String>,
}

/// The organisation's detectors as the policy wrote them, compiled once
/// when read (from the policy file or from the agent over IPC).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(as = "OrgDetectorsWritten"))]
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "OrgDetectorsWritten", into = "OrgDetectorsWritten")]
pub struct OrgDetectors {
    written: OrgDetectorsWritten,
    patterns: Vec<CompiledPattern>,
    dictionaries: Vec<CompiledDictionary>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrgDetectorsWritten {
    pub pattern: Vec<PatternDefinition>,
    pub dictionary: Vec<DictionaryDefinition>,
}

#[derive(Clone)]
struct CompiledPattern {
    name: OrgDetectorName,
    regex: Regex,
    keywords: Vec<String>,
    window: usize,
    checksum: Option<Checksum>,
}

#[derive(Clone)]
struct CompiledDictionary {
    name: OrgDetectorName,
    key: Hmac<Sha256>,
    max_words: usize,
    digests: HashSet<[u8; DIGEST_BYTES]>,
}

impl PartialEq for OrgDetectors {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
}

impl Eq for OrgDetectors {}

impl fmt::Debug for OrgDetectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgDetectors")
            .field("patterns", &self.written.pattern.iter().map(|p| p.name).collect::<Vec<_>>())
            .field("dictionaries", &self.written.dictionary.iter().map(|d| d.name).collect::<Vec<_>>())
            .finish()
    }
}

impl From<OrgDetectors> for OrgDetectorsWritten {
    fn from(detectors: OrgDetectors) -> Self {
        detectors.written
    }
}

impl TryFrom<OrgDetectorsWritten> for OrgDetectors {
    type Error = String;

    fn try_from(written: OrgDetectorsWritten) -> Result<Self, String> {
        OrgDetectors::compile(written)
            .map_err(|problems| problems.into_iter().next().map(|p| p.message).unwrap_or_default())
    }
}

/// Where a problem of the organisation's detectors is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemAt {
    /// The `n`th `[[pattern]]`.
    Pattern(usize),
    /// The `n`th `[[dictionary]]`.
    Dictionary(usize),
    /// The section as a whole (too many definitions).
    Section,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: ProblemAt,
    pub message: String,
}

impl OrgDetectors {
    /// Compiles every definition once: the detectors, or every problem
    /// with where it is written.
    pub fn compile(written: OrgDetectorsWritten) -> Result<OrgDetectors, Vec<Problem>> {
        let mut problems = Vec::new();
        if written.pattern.len() > MAX_PATTERNS {
            problems.push(Problem {
                at: ProblemAt::Section,
                message: format!("at most {MAX_PATTERNS} organisation patterns"),
            });
        }
        if written.dictionary.len() > MAX_DICTIONARIES {
            problems.push(Problem {
                at: ProblemAt::Section,
                message: format!("at most {MAX_DICTIONARIES} organisation dictionaries"),
            });
        }
        let places = (0..written.pattern.len())
            .map(ProblemAt::Pattern)
            .chain((0..written.dictionary.len()).map(ProblemAt::Dictionary));
        let mut seen = HashSet::new();
        for (name, at) in written.names().zip(places) {
            if !seen.insert(name) {
                problems
                    .push(Problem { at, message: format!("detector `{}` is defined twice", name.as_str()) });
            }
        }
        let mut patterns = Vec::with_capacity(written.pattern.len());
        for (i, definition) in written.pattern.iter().enumerate() {
            match compile_pattern(definition) {
                Ok(pattern) => patterns.push(pattern),
                Err(message) => problems.push(Problem { at: ProblemAt::Pattern(i), message }),
            }
        }
        let mut dictionaries = Vec::with_capacity(written.dictionary.len());
        for (i, definition) in written.dictionary.iter().enumerate() {
            match compile_dictionary(definition) {
                Ok(dictionary) => dictionaries.push(dictionary),
                Err(message) => problems.push(Problem { at: ProblemAt::Dictionary(i), message }),
            }
        }
        if problems.is_empty() {
            Ok(OrgDetectors { written, patterns, dictionaries })
        } else {
            Err(problems)
        }
    }

    pub fn written(&self) -> &OrgDetectorsWritten {
        &self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written.pattern.is_empty() && self.written.dictionary.is_empty()
    }

    pub fn defines(&self, name: OrgDetectorName) -> bool {
        self.written.names().any(|n| n == name)
    }
}

impl OrgDetectorsWritten {
    fn names(&self) -> impl Iterator<Item = OrgDetectorName> + '_ {
        self.pattern.iter().map(|p| p.name).chain(self.dictionary.iter().map(|d| d.name))
    }
}

fn compile_pattern(p: &PatternDefinition) -> Result<CompiledPattern, String> {
    let name = p.name.as_str();
    if p.pattern.chars().count() > PATTERN_MAX_CHARS {
        return Err(format!("detector `{name}`: the pattern is longer than {PATTERN_MAX_CHARS} characters"));
    }
    let regex = RegexBuilder::new(&p.pattern)
        .size_limit(PATTERN_COMPILED_MAX)
        .dfa_size_limit(2 * PATTERN_COMPILED_MAX)
        .build()
        .map_err(|e| format!("detector `{name}`: the pattern does not compile: {e}"))?;
    // A pattern that matches nothing at all would report every position.
    if regex.is_match("") {
        return Err(format!("detector `{name}`: the pattern matches empty text"));
    }
    if p.keyword_window > KEYWORD_WINDOW_MAX {
        return Err(format!("detector `{name}`: keyword_window is at most {KEYWORD_WINDOW_MAX} bytes"));
    }
    if p.keywords.iter().any(|k| k.trim().is_empty()) {
        return Err(format!("detector `{name}`: a keyword is empty"));
    }
    Ok(CompiledPattern {
        name: p.name,
        regex,
        keywords: p.keywords.iter().map(|k| k.trim().to_lowercase()).collect(),
        window: p.keyword_window,
        checksum: p.checksum,
    })
}

fn compile_dictionary(d: &DictionaryDefinition) -> Result<CompiledDictionary, String> {
    let name = d.name.as_str();
    let key = hex::decode(&d.key)
        .ok()
        .filter(|k| k.len() == KEY_BYTES)
        .ok_or_else(|| format!("detector `{name}`: the key is not {KEY_BYTES} bytes of hex"))?;
    let key = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| format!("detector `{name}`: {e}"))?;
    if d.max_words == 0 || d.max_words > MAX_WORDS {
        return Err(format!("detector `{name}`: max_words is between 1 and {MAX_WORDS}"));
    }
    if d.terms.len() > MAX_TERMS {
        return Err(format!("detector `{name}`: at most {MAX_TERMS} terms"));
    }
    let mut digests = HashSet::with_capacity(d.terms.len());
    for (i, term) in d.terms.iter().enumerate() {
        let digest =
            hex::decode(term).ok().and_then(|bytes| <[u8; DIGEST_BYTES]>::try_from(bytes).ok()).ok_or_else(
                || format!("detector `{name}`: term {} is not a {DIGEST_BYTES}-byte hash in hex", i + 1),
            )?;
        digests.insert(digest);
    }
    Ok(CompiledDictionary { name: d.name, key, max_words: usize::from(d.max_words), digests })
}

/// A term as the dictionary compares it: its words (runs of letters and
/// digits) in lower case, joined by one space. Empty when it has no word.
pub fn normalise_term(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for word in words(term) {
        if !out.is_empty() {
            out.push(' ');
        }
        push_lowercase(&mut out, word.text);
    }
    out
}

/// `term`'s number of words and keyed hash (hex), or `None` when it has no word.
pub fn hash_term(key: &[u8; KEY_BYTES], term: &str) -> Option<(usize, String)> {
    let normalised = normalise_term(term);
    if normalised.is_empty() {
        return None;
    }
    let mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    Some((normalised.split(' ').count(), hex::encode(digest(&mac, &normalised))))
}

pub const DICTIONARY_KEY_BYTES: usize = KEY_BYTES;

fn digest(key: &Hmac<Sha256>, normalised: &str) -> [u8; DIGEST_BYTES] {
    let mut mac = key.clone();
    mac.update(normalised.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; DIGEST_BYTES];
    for (slot, b) in out.iter_mut().zip(full.iter()) {
        *slot = *b;
    }
    out
}

struct Word<'t> {
    text: &'t str,
    span: Range<usize>,
}

fn words(text: &str) -> impl Iterator<Item = Word<'_>> {
    let mut start = None;
    let mut chars = text.char_indices().chain(std::iter::once((text.len(), ' ')));
    std::iter::from_fn(move || {
        for (i, c) in chars.by_ref() {
            match (start, c.is_alphanumeric()) {
                (None, true) => start = Some(i),
                (Some(s), false) => {
                    start = None;
                    return Some(Word { text: text.get(s..i).unwrap_or_default(), span: s..i });
                }
                _ => {}
            }
        }
        None
    })
}

fn push_lowercase(out: &mut String, word: &str) {
    for c in word.chars() {
        out.extend(c.to_lowercase());
    }
}

pub(super) fn scan(text: &str, detectors: &OrgDetectors, out: &mut Vec<Finding>) {
    for pattern in &detectors.patterns {
        scan_pattern(text, pattern, out);
    }
    if !detectors.dictionaries.is_empty() {
        scan_dictionaries(text, &detectors.dictionaries, out);
    }
}

fn scan_pattern(text: &str, pattern: &CompiledPattern, out: &mut Vec<Finding>) {
    for m in pattern.regex.find_iter(text) {
        if pattern.checksum.is_some_and(|c| !c.holds(m.as_str())) {
            continue;
        }
        let confidence = if pattern.keywords.is_empty() {
            Confidence::Medium
        } else if keyword_near(text, &m.range(), pattern) {
            Confidence::High
        } else {
            Confidence::Low
        };
        out.push(Finding { detector: DetectorId::Org(pattern.name), confidence, span: m.range() });
    }
}

/// A keyword, as a whole word or phrase, within the window on either side.
fn keyword_near(text: &str, span: &Range<usize>, pattern: &CompiledPattern) -> bool {
    let (before, after) = text::around(text, span, pattern.window, pattern.window);
    [before, after].into_iter().any(|side| {
        let side = side.to_lowercase();
        pattern.keywords.iter().any(|k| {
            side.match_indices(k.as_str()).any(|(at, found)| {
                !text::char_before(&side, at).is_some_and(text::is_word_char)
                    && !text::char_after(&side, at + found.len()).is_some_and(text::is_word_char)
            })
        })
    })
}

fn scan_dictionaries(text: &str, dictionaries: &[CompiledDictionary], out: &mut Vec<Finding>) {
    // Each word lower-cased once into one buffer; `lowered[i]` is its range there.
    let mut buffer = String::with_capacity(text.len());
    let mut spans = Vec::new();
    let mut lowered = Vec::new();
    for word in words(text) {
        let start = buffer.len();
        push_lowercase(&mut buffer, word.text);
        lowered.push(start..buffer.len());
        spans.push(word.span);
    }
    let longest = dictionaries.iter().map(|d| d.max_words).max().unwrap_or(0);
    let mut term = String::new();
    for first in 0..lowered.len() {
        term.clear();
        for (n, range) in lowered.iter().skip(first).take(longest).enumerate() {
            if n > 0 {
                term.push(' ');
            }
            term.push_str(buffer.get(range.clone()).unwrap_or_default());
            for dictionary in dictionaries.iter().filter(|d| n < d.max_words) {
                if dictionary.digests.contains(&digest(&dictionary.key, &term)) {
                    let start = spans.get(first).map_or(0, |s| s.start);
                    let end = spans.get(first + n).map_or(start, |s| s.end);
                    out.push(Finding {
                        detector: DetectorId::Org(dictionary.name),
                        confidence: Confidence::High,
                        span: start..end,
                    });
                }
            }
        }
    }
}
