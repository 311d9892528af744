//! Small text helpers shared by the detectors: char-boundary-safe windows,
//! word boundaries and keyword look-ups. Every function takes byte offsets
//! that may fall anywhere and never panics.

use std::ops::Range;

use regex::Regex;

/// Compiles a detector pattern. Patterns are constants checked by a unit
/// test (`every_pattern_compiles`), so `None` only means a bug caught there;
/// at run time a detector without its pattern finds nothing instead of
/// panicking.
pub(super) fn regex(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

/// The largest char boundary at or below `idx`.
pub(super) fn floor_boundary(text: &str, idx: usize) -> usize {
    let mut idx = idx.min(text.len());
    while idx > 0 && !text.is_char_boundary(idx) {
        idx -= 1;
    }
    idx
}

/// The smallest char boundary at or above `idx`.
pub(super) fn ceil_boundary(text: &str, idx: usize) -> usize {
    let mut idx = idx.min(text.len());
    while idx < text.len() && !text.is_char_boundary(idx) {
        idx += 1;
    }
    idx
}

/// The first `max` bytes of `text`, cut back to a char boundary.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    text.get(..floor_boundary(text, max)).unwrap_or_default()
}

pub(super) fn char_before(text: &str, pos: usize) -> Option<char> {
    text.get(..pos)?.chars().next_back()
}

pub(super) fn char_after(text: &str, pos: usize) -> Option<char> {
    text.get(pos..)?.chars().next()
}

/// Letters, digits and `_`: what glues a token to its neighbours.
pub(super) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The `before` bytes preceding `span` and the `after` bytes following it,
/// both cut to char boundaries.
pub(super) fn around<'t>(
    text: &'t str,
    span: &Range<usize>,
    before: usize,
    after: usize,
) -> (&'t str, &'t str) {
    let start = floor_boundary(text, span.start);
    let end = ceil_boundary(text, span.end);
    let lo = ceil_boundary(text, start.saturating_sub(before));
    let hi = floor_boundary(text, end.saturating_add(after));
    (text.get(lo..start).unwrap_or_default(), text.get(end..hi).unwrap_or_default())
}

/// The line holding byte `pos` (without its newline), clipped to `reach`
/// bytes on each side so that a text without newlines costs no more per
/// match than a short line.
pub(super) fn line_of(text: &str, pos: usize, reach: usize) -> Range<usize> {
    let pos = floor_boundary(text, pos);
    let lo = ceil_boundary(text, pos.saturating_sub(reach));
    let hi = floor_boundary(text, pos.saturating_add(reach));
    let head = text.get(lo..pos).unwrap_or_default();
    let tail = text.get(pos..hi).unwrap_or_default();
    let start = head.rfind('\n').map_or(lo, |i| lo + i + 1);
    let end = tail.find('\n').map_or(hi, |i| pos + i);
    start..end
}

/// Whether `hay` (already lower-case) holds one of `keywords` as a word. A
/// keyword ending in `*` matches as a prefix ("immatricul*"); one starting
/// with `*` may sit inside an identifier ("*secret" in "client_secret").
pub(super) fn has_keyword(hay: &str, keywords: &[&str]) -> bool {
    keywords.iter().any(|kw| {
        let (inner, kw) = match kw.strip_prefix('*') {
            Some(rest) => (true, rest),
            None => (false, *kw),
        };
        let (prefix, kw) = match kw.strip_suffix('*') {
            Some(rest) => (true, rest),
            None => (false, kw),
        };
        hay.match_indices(kw).any(|(at, _)| {
            let starts = inner || !char_before(hay, at).is_some_and(char::is_alphanumeric);
            let ends = prefix || !char_after(hay, at + kw.len()).is_some_and(char::is_alphanumeric);
            starts && ends
        })
    })
}

/// Whether one of `keywords` appears within `before` bytes ahead of `span` or
/// `after` bytes behind it (case-insensitive).
pub(super) fn keyword_near(
    text: &str,
    span: &Range<usize>,
    before: usize,
    after: usize,
    keywords: &[&str],
) -> bool {
    let (ahead, behind) = around(text, span, before, after);
    has_keyword(&ahead.to_lowercase(), keywords) || has_keyword(&behind.to_lowercase(), keywords)
}

/// Shannon entropy in bits per char.
pub(super) fn entropy(token: &str) -> f64 {
    let mut counts = [0u32; 128];
    let mut other = 0u32;
    let mut total = 0u32;
    for c in token.chars() {
        total += 1;
        match counts.get_mut(c as usize) {
            Some(n) => *n += 1,
            None => other += 1,
        }
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .chain(std::iter::once(&other))
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / total;
            -p * p.log2()
        })
        .sum()
}

/// Delimiters of the tables people paste: spreadsheet cells (tab), CSV
/// (`;` in French locales, `,`) and Markdown (`|`).
const CELL_DELIMITERS: [char; 4] = ['\t', '|', ';', ','];

/// The rows of the delimited tables in a text, found in one pass per scan
/// so that every cell's column header is a look-up, not a walk up the
/// table (a pasted sheet of a hundred thousand cells stays linear).
pub(super) struct Tables {
    /// Lines holding a delimiter, in order: where each starts and ends, its
    /// delimiter, and the header line of its table (`None` on the header
    /// itself).
    rows: Vec<TableRow>,
}

struct TableRow {
    line: Range<usize>,
    delimiter: char,
    header: Option<Range<usize>>,
}

impl Tables {
    /// A table is a run of consecutive lines with the same delimiter and
    /// the same number of cells; its header is the first of them that is
    /// not a Markdown `|---|` line.
    pub(super) fn new(text: &str) -> Tables {
        let mut rows: Vec<TableRow> = Vec::new();
        // The current run: its delimiter, cell count, the end of its last
        // line, and its header.
        let mut run: Option<(char, usize, usize, Option<Range<usize>>)> = None;
        let mut start = 0;
        for line in text.split_inclusive('\n') {
            let end = start + line.trim_end_matches(['\n', '\r']).len();
            let range = start..end;
            let content = text.get(range.clone()).unwrap_or_default();
            let next = start + line.len();
            // One pass over the line: how many of each delimiter.
            let mut counts = [0usize; CELL_DELIMITERS.len()];
            for b in content.bytes() {
                // CELL_DELIMITERS' order.
                let i = match b {
                    b'\t' => 0,
                    b'|' => 1,
                    b';' => 2,
                    b',' => 3,
                    _ => continue,
                };
                if let Some(n) = counts.get_mut(i) {
                    *n += 1;
                }
            }
            let found = CELL_DELIMITERS.into_iter().zip(counts).find(|(_, n)| *n > 0);
            let Some((delimiter, cells)) = found else {
                run = None;
                start = next;
                continue;
            };
            let continues = run.as_ref().is_some_and(|(d, n, last_end, _)| {
                *d == delimiter
                    && *n == cells
                    && text.get(*last_end..start).is_some_and(|gap| gap.trim_matches(['\n', '\r']).is_empty())
            });
            let header = match (&run, continues) {
                (Some((_, _, _, Some(header))), true) => Some(header.clone()),
                _ => None,
            };
            let row_header = header.clone().filter(|h| *h != range);
            // A Markdown `|---|` line is never the header.
            let separator =
                || content.trim().trim_matches('|').chars().all(|c| matches!(c, '-' | ':' | '|' | ' '));
            let header = header.or_else(|| (!separator()).then(|| range.clone()));
            run = Some((delimiter, cells, end, header));
            rows.push(TableRow { line: range, delimiter, header: row_header });
            start = next;
        }
        Tables { rows }
    }

    /// The header of the table column holding byte `pos`, when `pos` sits
    /// in a row under its table's header: the header's cell at the same index.
    pub(super) fn column_header<'t>(&self, text: &'t str, pos: usize) -> Option<&'t str> {
        let at = self.rows.partition_point(|r| r.line.end < pos);
        let row = self.rows.get(at).filter(|r| r.line.start <= pos)?;
        let header = text.get(row.header.clone()?)?;
        let before = text.get(row.line.start..pos)?;
        let index = before.matches(row.delimiter).count();
        header.split(row.delimiter).nth(index).map(str::trim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_respect_char_boundaries() {
        let text = "é1é2é";
        for i in 0..=text.len() + 2 {
            let _ = around(text, &(i..i + 1), 1, 1);
            let _ = line_of(text, i, 2);
            let _ = truncate(text, i);
        }
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(line_of("ab\ncd\nef", 4, 100), 3..5);
        assert_eq!(line_of("abcdefgh", 4, 2), 2..6);
    }

    #[test]
    fn keywords_are_words_unless_marked() {
        assert!(has_keyword("n° siren : ", &["siren"]));
        assert!(!has_keyword("sirene", &["siren"]));
        assert!(has_keyword("immatriculée", &["immatricul*"]));
        assert!(has_keyword("client_secret=", &["*secret"]));
        assert!(!has_keyword("monkey", &["key"]));
    }

    #[test]
    fn entropy_orders_strings() {
        assert!(entropy("aaaaaaaaaaaaaaaa") < 0.1);
        assert!(entropy("Zx8kQ2mP9vL4wR7tYb3N") > 4.0);
    }
}
