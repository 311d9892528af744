//! French/European personal data: identifiers validated by their check
//! digits (NIR, SIREN, SIRET, NIF, VAT, IBAN, payment cards), passports
//! (keyword required), French phone numbers and e-mail addresses.
//!
//! Identifiers are found in *chains*: runs of ASCII alphanumeric groups
//! joined by a single space, no-break space, dash or dot ("1 85 05 78 006
//! 084 36", "FR76 3000 …", "732-829-320"). A candidate is a window of whole
//! groups, so digits glued to letters or to more digits never match, and a
//! detector accepts a window only when its group boundaries fall where that
//! identifier is usually split.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::checksum;
use super::text::{self, char_after, char_before, is_word_char, keyword_near};
use super::{Confidence, DetectorId, Finding};

/// The longest identifier looked for (an IBAN: 34 chars at most).
const MAX_COMPACT: usize = 34;

/// The most groups an identifier is printed in (an IBAN in fours: 9).
const MAX_GROUPS: usize = 9;

struct Compiled {
    phone: Option<Regex>,
    email: Option<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    phone: text::regex(
        r"(?:(?:\+|00)33[ .\-\u{a0}]?(?:\(0\)[ .\-\u{a0}]?)?|0)[1-9](?:[ .\-\u{a0}]?[0-9]{2}){4}",
    ),
    email: text::regex(
        r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
    ),
});

#[cfg(test)]
pub(super) fn patterns_compiled() -> bool {
    COMPILED.phone.is_some() && COMPILED.email.is_some()
}

pub(super) fn scan(text: &str, tables: &text::Tables, out: &mut Vec<Finding>) {
    chains(text, tables, out);
    phones(text, out);
    emails(text, out);
}

// ---------------------------------------------------------------- chains --

#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    digits: bool,
}

fn is_joiner(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '-' | '.')
}

fn is_space_joiner(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}')
}

/// Splits `text` into chains and hands each to [`windows`].
fn chains(text: &str, tables: &text::Tables, out: &mut Vec<Finding>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut joiners: Vec<char> = Vec::new();
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !c.is_ascii_alphanumeric() {
            continue;
        }
        // A group: the maximal ASCII alphanumeric run from here.
        let mut end = i + 1;
        let mut digits = c.is_ascii_digit();
        while let Some(&(j, d)) = iter.peek() {
            if !d.is_ascii_alphanumeric() {
                break;
            }
            digits &= d.is_ascii_digit();
            end = j + 1;
            iter.next();
        }
        // Glued to a non-ASCII letter or `_`: part of a word, not a number.
        let glued =
            char_before(text, i).is_some_and(is_word_char) || char_after(text, end).is_some_and(is_word_char);
        if glued {
            windows(text, tables, &groups, &joiners, out);
            groups.clear();
            joiners.clear();
            continue;
        }
        let between = groups.last().and_then(|g| text.get(g.end..i)).unwrap_or_default();
        let mut cs = between.chars();
        let single = matches!((cs.next(), cs.next()), (Some(j), None) if is_joiner(j));
        // A dash between spaces sets a part apart ("127 452 - 93", a
        // NIR's key): it joins like a space.
        let spaced_dash = matches!(between, " - " | " \u{2013} ");
        if single || spaced_dash {
            joiners.push(if spaced_dash { ' ' } else { char_before(text, i).unwrap_or(' ') });
        } else {
            windows(text, tables, &groups, &joiners, out);
            groups.clear();
            joiners.clear();
        }
        groups.push(Group { start: i, end, digits });
    }
    windows(text, tables, &groups, &joiners, out);
}

/// A candidate: consecutive whole groups of one chain.
struct Window<'a> {
    text: &'a str,
    tables: &'a text::Tables,
    compact: &'a str,
    /// Offsets in `compact` where groups meet.
    cuts: &'a [usize],
    span: Range<usize>,
    /// The groups joined to the window by a space on each side, if any.
    before: Option<&'a str>,
    after: Option<&'a str>,
}

impl Window<'_> {
    /// Every cut falls on one of `allowed`.
    fn cuts_within(&self, allowed: &[usize]) -> bool {
        self.cuts.iter().all(|c| allowed.contains(c))
    }

    /// One of `keywords` close by, or heading the window's table column.
    fn keyword(&self, keywords: &[&str]) -> bool {
        keyword_near(self.text, &self.span, 48, 24, keywords) || self.header_has(keywords)
    }

    fn header_has(&self, keywords: &[&str]) -> bool {
        self.tables
            .column_header(self.text, self.span.start)
            .is_some_and(|header| text::has_keyword(&header.to_lowercase(), keywords))
    }

    /// A company identifier's own words, which may stand further off
    /// ("immatriculée au registre du commerce et des sociétés de Paris sous
    /// le numéro 985 731 017"), or a legal form close by.
    fn company_keyword(&self) -> bool {
        keyword_near(self.text, &self.span, 120, 24, COMPANY_IDENTIFIER_WORDS)
            || self.header_has(COMPANY_IDENTIFIER_WORDS)
            || self.keyword(COMPANY_FORMS)
    }
}

/// Tries the windows of one chain, longest first from each start, and keeps
/// the best reading of the first window that is something.
fn windows(text: &str, tables: &text::Tables, groups: &[Group], joiners: &[char], out: &mut Vec<Finding>) {
    let mut compact = String::with_capacity(MAX_COMPACT);
    let mut cuts: Vec<usize> = Vec::with_capacity(16);
    let mut i = 0;
    while i < groups.len() {
        let mut hit = None;
        // The furthest end whose compact length fits.
        let mut len = 0;
        let mut last = i;
        for (k, g) in groups.iter().enumerate().skip(i) {
            len += g.end - g.start;
            if len > MAX_COMPACT || k - i >= MAX_GROUPS {
                break;
            }
            last = k;
        }
        for j in (i..=last).rev() {
            let (Some(first), Some(end)) = (groups.get(i), groups.get(j)) else { break };
            if !outer_joins_ok(groups, joiners, i, j) {
                continue;
            }
            // One joiner char inside a window: "732 829-320" is two numbers.
            let inner = joiners.get(i..j).unwrap_or_default();
            if inner.windows(2).any(|w| w.first() != w.last()) {
                continue;
            }
            // Nothing looked for is shorter than nine chars (SIREN, passport).
            if end.end - first.start < 9 {
                break;
            }
            compact.clear();
            cuts.clear();
            for g in groups.get(i..=j).unwrap_or_default() {
                if !compact.is_empty() {
                    cuts.push(compact.len());
                }
                compact.push_str(text.get(g.start..g.end).unwrap_or_default());
            }
            let neighbour = |k: Option<usize>, joiner: Option<usize>| {
                let joined = joiner.and_then(|x| joiners.get(x)).is_some_and(|&c| is_space_joiner(c));
                k.and_then(|k| groups.get(k)).filter(|_| joined).and_then(|g| text.get(g.start..g.end))
            };
            let window = Window {
                text,
                tables,
                compact: &compact,
                cuts: &cuts,
                span: first.start..end.end,
                before: neighbour(i.checked_sub(1), i.checked_sub(1)),
                after: neighbour(Some(j + 1), Some(j)),
            };
            if let Some((detector, confidence)) = classify(&window) {
                hit = Some((j, Finding { detector, confidence, span: window.span }));
                break;
            }
        }
        match hit {
            Some((j, finding)) => {
                out.push(finding);
                i = j + 1;
            }
            None => i += 1,
        }
    }
}

/// A window must stand apart from its chain: a space on each side (not a
/// dash or dot, which would make it part of a longer code), and no digit
/// group continuing the same grouping ("1234 5678 9012 3456 7890").
fn outer_joins_ok(groups: &[Group], joiners: &[char], i: usize, j: usize) -> bool {
    let width = |k: usize| groups.get(k).map_or(0, |g| g.end - g.start);
    let multi = j > i;
    if i > 0 {
        if !joiners.get(i - 1).is_some_and(|&c| is_space_joiner(c)) {
            return false;
        }
        if multi && groups.get(i - 1).is_some_and(|g| g.digits) {
            return false;
        }
    }
    if j + 1 < groups.len() {
        if !joiners.get(j).is_some_and(|&c| is_space_joiner(c)) {
            return false;
        }
        if multi && groups.get(j + 1).is_some_and(|g| g.digits) && width(j + 1) == width(i) {
            return false;
        }
    }
    true
}

const NIR_WORDS: &[&str] = &[
    "nir",
    "insee",
    "sécu*",
    "secu*",
    "sécurité sociale",
    "securite sociale",
    "social security",
    "ssn",
    "carte vitale",
    "n° ss",
    "matricule",
    "assuré*",
];
/// Words that name a company identifier itself: the Kbis and the RNE call
/// the SIREN "numéro d'identification", followed by "R.C.S. <greffe>".
const COMPANY_IDENTIFIER_WORDS: &[&str] = &[
    "siren",
    "siret",
    "rcs",
    "r.c.s",
    "registre du commerce",
    "registre national des entreprises",
    "numéro d'identification",
    "numéro d’identification",
    "numero d'identification",
    "immatricul*",
];

/// Words that sit next to a company's number without naming it.
const COMPANY_FORMS: &[&str] = &[
    "company number",
    "établissement",
    "etablissement",
    "entreprise",
    "société",
    "sarl",
    "sas",
    "sasu",
    "eurl",
];
const NIF_WORDS: &[&str] = &["nif", "spi", "fiscal*", "impôt*", "impot*", "tax*", "contribuable"];
const CARD_WORDS: &[&str] = &[
    "carte*",
    "card*",
    "cb",
    "visa",
    "mastercard",
    "amex",
    "american express",
    "pan",
    "paiement",
    "payment",
    "crédit",
    "credit",
    "expire*",
    "exp",
    "cvv",
    "cvc",
];
/// Words naming a number as some reference, not a card or a person.
const REFERENCE_WORDS: &[&str] = &[
    "commande",
    "order*",
    "réf*",
    "ref*",
    "id",
    "transaction",
    "facture",
    "invoice",
    "dossier",
    "suivi",
    "tracking",
    "ticket",
    "colis",
    "lot",
];
const PASSPORT_WORDS: &[&str] = &["passeport*", "passport*"];

/// The best reading of a window, if any (highest confidence, then the
/// detector order of `DetectorId::ALL`).
fn classify(w: &Window<'_>) -> Option<(DetectorId, Confidence)> {
    let c = w.compact;
    let all_digits = c.bytes().all(|b| b.is_ascii_digit());
    let candidates = [
        (DetectorId::Iban, iban(w)),
        (DetectorId::VatFr, vat(w)),
        (DetectorId::Nir, nir(w)),
        (DetectorId::PaymentCard, if all_digits { card(w) } else { None }),
        (DetectorId::Siret, if all_digits { siret(w) } else { None }),
        (DetectorId::Nif, if all_digits { nif(w) } else { None }),
        (DetectorId::Siren, if all_digits { siren(w) } else { None }),
        (DetectorId::PassportFr, passport(w)),
    ];
    let mut best: Option<(DetectorId, Confidence)> = None;
    for (id, conf) in candidates {
        if let Some(conf) = conf {
            if best.is_none_or(|(_, b)| conf > b) {
                best = Some((id, conf));
            }
        }
    }
    best
}

fn iban(w: &Window<'_>) -> Option<Confidence> {
    // Printed in groups of four, or in one piece.
    let fours = w.cuts.iter().enumerate().all(|(k, &cut)| cut == 4 * (k + 1));
    (fours && checksum::iban(w.compact)).then_some(Confidence::High)
}

fn vat(w: &Window<'_>) -> Option<Confidence> {
    (w.cuts_within(&[2, 4, 7, 10]) && checksum::vat_fr(w.compact)).then_some(Confidence::High)
}

fn nir(w: &Window<'_>) -> Option<Confidence> {
    let c = w.compact.as_bytes();
    if c.len() != 15 || !w.cuts_within(&[1, 3, 5, 7, 10, 13]) {
        return None;
    }
    // Sex 1/2, or 3/4 and 7/8 for temporary numbers; month 01–12, 20–42 or
    // 50–99 (unknown or fictitious months); a department, 2A/2B in Corsica.
    let num = |a: usize, b: usize| w.compact.get(a..b).and_then(|s| s.parse::<u32>().ok());
    let sex_ok = matches!(c.first(), Some(b'1' | b'2' | b'3' | b'4' | b'7' | b'8'));
    let month_ok = num(3, 5).is_some_and(|m| matches!(m, 1..=12 | 20..=42 | 50..=99));
    let dept_ok = matches!(w.compact.get(5..7), Some("2A" | "2B")) || num(5, 7).is_some_and(|d| d != 0);
    if !(sex_ok && month_ok && dept_ok && checksum::nir(w.compact)) {
        return None;
    }
    Some(if w.keyword(NIR_WORDS) || !w.cuts.is_empty() { Confidence::High } else { Confidence::Medium })
}

/// Issuer prefixes (IIN) and the lengths each network issues.
fn card_network(c: &str) -> Option<&'static [usize]> {
    let p = |n: usize| c.get(..n).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    let network: &'static [usize] = match () {
        _ if c.starts_with('4') => &[13, 16, 19],
        _ if (51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4)) => &[16],
        _ if matches!(p(2), 34 | 37) => &[15],
        _ if p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3)) => &[16, 19],
        _ if (3528..=3589).contains(&p(4)) => &[16, 19],
        _ if matches!(p(2), 36 | 38 | 39) || (300..=305).contains(&p(3)) => &[14, 16],
        _ if p(2) == 62 => &[16, 17, 18, 19],
        _ if matches!(p(2), 50 | 56..=58 | 67) => &[12, 13, 14, 15, 16, 17, 18, 19],
        _ => return None,
    };
    Some(network)
}

fn card(w: &Window<'_>) -> Option<Confidence> {
    let c = w.compact;
    let len = c.len();
    let lengths = card_network(c)?;
    if !lengths.contains(&len) || !checksum::luhn(c) || c.bytes().all(|b| Some(&b) == c.as_bytes().first()) {
        return None;
    }
    // 4-4-4-4(-3), or Amex/Diners 4-6-5 / 4-6-4, or one piece.
    let fours = !w.cuts.is_empty() && w.cuts.iter().enumerate().all(|(k, &cut)| cut == 4 * (k + 1));
    let amex = w.cuts == [4, 10] && matches!(len, 14 | 15);
    if !(w.cuts.is_empty() || fours || amex) {
        return None;
    }
    let common = matches!(len, 15 | 16);
    Some(if w.keyword(CARD_WORDS) || ((fours || amex) && common) {
        Confidence::High
    } else if common && !w.keyword(REFERENCE_WORDS) {
        Confidence::Medium
    } else {
        Confidence::Low
    })
}

fn siret(w: &Window<'_>) -> Option<Confidence> {
    // 3-3-3-5 as INSEE prints it, or 3-3-3-3-2 as tables often do.
    let spreadsheet = w.cuts == [3, 6, 9, 12];
    if !(w.cuts_within(&[3, 6, 9]) || spreadsheet) || !checksum::siret(w.compact) {
        return None;
    }
    Some(if w.company_keyword() {
        Confidence::High
    } else if w.cuts == [3, 6, 9] || w.cuts == [9] {
        // SIREN + NIC as printed on invoices.
        Confidence::Medium
    } else {
        Confidence::Low
    })
}

fn siren(w: &Window<'_>) -> Option<Confidence> {
    // One 9-digit number in ten passes Luhn: a keyword is needed.
    if !w.cuts_within(&[3, 6]) || !checksum::siren(w.compact) || w.compact == "000000000" {
        return None;
    }
    // The head of a SIRET ("959 081 019 00029") or the tail of a VAT
    // number ("FR31 966887168") that failed their own check is not a SIREN.
    let siret_tail = w.after.is_some_and(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()));
    let vat_head =
        w.before.is_some_and(|g| g.len() == 4 && g.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("FR")));
    if siret_tail || vat_head {
        return None;
    }
    Some(if w.company_keyword() { Confidence::High } else { Confidence::Low })
}

fn nif(w: &Window<'_>) -> Option<Confidence> {
    if !w.cuts_within(&[2, 4, 7, 10]) || !checksum::nif(w.compact) {
        return None;
    }
    Some(if w.keyword(NIF_WORDS) { Confidence::High } else { Confidence::Low })
}

fn passport(w: &Window<'_>) -> Option<Confidence> {
    let c = w.compact.as_bytes();
    let shape = c.len() == 9
        && w.cuts.is_empty()
        && c.iter().enumerate().all(|(k, b)| {
            if (2..4).contains(&k) {
                b.is_ascii_uppercase()
            } else {
                b.is_ascii_digit()
            }
        });
    (shape && w.keyword(PASSPORT_WORDS)).then_some(Confidence::High)
}

// ---------------------------------------------------------------- phones --

const PHONE_WORDS: &[&str] = &[
    "tél*", "tel*", "phone*", "portable", "mobile", "fax", "appel*", "call*", "joindre", "contact*", "numéro",
];

fn phones(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = COMPILED.phone.as_ref() else { return };
    for m in re.find_iter(text) {
        let span = m.range();
        let before = char_before(text, span.start);
        let after = char_after(text, span.end);
        // Glued to more digits or letters, or continuing a dotted/dashed
        // sequence ("01.02.03.04.05.06", an IP-like or version string).
        if before.is_some_and(|c| is_word_char(c) || c == '+' || c == '/')
            || after.is_some_and(|c| is_word_char(c) || c == '/')
        {
            continue;
        }
        let continues = |c: Option<char>, next: Option<char>| {
            c.is_some_and(|c| matches!(c, '.' | '-')) && next.is_some_and(|n| n.is_ascii_digit())
        };
        let before2 = text.get(..span.start).and_then(|h| h.chars().rev().nth(1));
        let after2 = text.get(span.end..).and_then(|t| t.chars().nth(1));
        // …or one pair in a longer run ("01 02 03 04 05 06 07").
        let spaced = |c: Option<char>, next: Option<char>| {
            c.is_some_and(|c| c == ' ' || c == '\u{a0}') && next.is_some_and(|n| n.is_ascii_digit())
        };
        if continues(before, before2)
            || continues(after, after2)
            || spaced(before, before2)
            || spaced(after, after2)
        {
            continue;
        }
        let s = m.as_str();
        let international = s.starts_with('+') || s.starts_with("00");
        let national =
            if international { s.trim_start_matches(['+', '0']).get(2..).unwrap_or_default() } else { s };
        let seps: Vec<char> =
            national.chars().filter(|c| !c.is_ascii_digit() && !matches!(c, '(' | ')')).collect();
        let consistent = seps.windows(2).all(|w| w.first() == w.last());
        let mobile = s
            .trim_start_matches(['+', '0'])
            .trim_start_matches("33")
            .trim_start_matches([' ', '.', '-', '\u{a0}', '(', '0', ')'])
            .starts_with(['6', '7']);
        let confidence = if international || keyword_near(text, &span, 32, 0, PHONE_WORDS) {
            Confidence::High
        } else if !consistent {
            Confidence::Low
        } else if !seps.is_empty() || mobile {
            Confidence::Medium
        } else {
            Confidence::Low
        };
        out.push(Finding { detector: DetectorId::PhoneFr, confidence, span });
    }
}

// ---------------------------------------------------------------- e-mail --

/// Extensions of files named like `icon@2x.png`.
const FILE_TLDS: &[&str] =
    &["png", "jpg", "jpeg", "gif", "svg", "webp", "js", "css", "ts", "map", "json", "ico"];

fn emails(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = COMPILED.email.as_ref() else { return };
    for m in re.find_iter(text) {
        let span = m.range();
        let s = m.as_str();
        let mailto = span
            .start
            .checked_sub(7)
            .and_then(|from| text.get(from..span.start))
            .is_some_and(|b| b.eq_ignore_ascii_case("mailto:"));
        if !mailto && char_before(text, span.start).is_some_and(|c| is_word_char(c) || ".%+-:/@".contains(c))
            || char_after(text, span.end).is_some_and(|c| is_word_char(c) || c == ':' || c == '-' || c == '@')
        {
            continue;
        }
        let Some((local, domain)) = s.split_once('@') else { continue };
        let tld = domain.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
        if local.contains("..") || local.ends_with('.') || FILE_TLDS.contains(&tld.as_str()) {
            continue;
        }
        out.push(Finding { detector: DetectorId::Email, confidence: Confidence::Medium, span });
    }
}
