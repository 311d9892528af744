//! Large blocks of source code, by a line heuristic: statement endings
//! (`;`, `{`, `}`), keywords at the start of a line, assignments and calls.
//! Prose, logs, JSON and lists rarely look like that for many lines in a
//! row. One finding per block.

use super::{Confidence, DetectorId, Finding};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Blank,
    /// Comments, lone braces, fences, JSON members: neither code nor prose.
    Neutral,
    Code,
    Prose,
}

/// Non-code lines tolerated inside a block before it ends.
const MAX_GAP: usize = 2;

pub(super) fn scan(text: &str, min_lines: usize, out: &mut Vec<Finding>) {
    let min_lines = min_lines.max(2);
    let mut block: Option<(usize, usize)> = None; // (start, end) bytes of code lines
    let mut code = 0usize;
    let mut prose = 0usize;
    let mut gap = 0usize;
    let mut offset = 0usize;
    let mut close = |block: &mut Option<(usize, usize)>, code: &mut usize, prose: &mut usize| {
        if let Some((start, end)) = block.take() {
            // Code must dominate the block, not merely appear in it.
            if *code >= min_lines && *code * 10 >= (*code + *prose) * 6 {
                let confidence = if *code >= 2 * min_lines { Confidence::High } else { Confidence::Medium };
                out.push(Finding { detector: DetectorId::SourceCode, confidence, span: start..end });
            }
        }
        *code = 0;
        *prose = 0;
    };
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        match classify(line) {
            Line::Code => {
                let end = start + line.len();
                block = Some(block.map_or((start, end), |(s, _)| (s, end)));
                code += 1;
                gap = 0;
            }
            Line::Prose if block.is_some() => {
                gap += 1;
                prose += 1;
                if gap > MAX_GAP {
                    prose -= gap;
                    close(&mut block, &mut code, &mut prose);
                    gap = 0;
                }
            }
            Line::Prose | Line::Blank | Line::Neutral => {}
        }
    }
    close(&mut block, &mut code, &mut prose);
}

const KEYWORDS: &[&str] = &[
    "fn",
    "pub",
    "let",
    "const",
    "var",
    "def",
    "class",
    "import",
    "from",
    "return",
    "if",
    "elif",
    "else",
    "for",
    "while",
    "switch",
    "case",
    "try",
    "except",
    "catch",
    "finally",
    "async",
    "await",
    "struct",
    "enum",
    "impl",
    "use",
    "mod",
    "package",
    "func",
    "public",
    "private",
    "protected",
    "static",
    "void",
    "int",
    "char",
    "double",
    "float",
    "bool",
    "string",
    "interface",
    "type",
    "export",
    "function",
    "raise",
    "throw",
    "new",
    "yield",
    "with",
    "match",
    "unsafe",
    "extern",
    "namespace",
    "using",
    "template",
    "typedef",
    "foreach",
    "do",
    "echo",
    "local",
    "begin",
    "end",
    "then",
    "fi",
    "done",
    "lambda",
    "assert",
    "print",
    "println!",
    "println",
    "self",
    "this",
];

/// Keywords that make a line code on their own ("return x", "import os").
const STRONG: &[&str] = &[
    "return",
    "import",
    "def",
    "class",
    "fn",
    "let",
    "const",
    "var",
    "elif",
    "except",
    "raise",
    "yield",
    "struct",
    "impl",
    "pub",
    "func",
    "package",
    "namespace",
    "typedef",
    "using",
    "extern",
    "lambda",
    "async",
    "await",
];

/// SQL keywords in capitals at the start of a line: prose does not do that.
const SQL: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "FROM", "WHERE", "JOIN", "LEFT",
    "RIGHT", "INNER", "OUTER", "GROUP", "ORDER", "HAVING", "LIMIT", "VALUES", "SET", "AND", "UNION", "WITH",
];

/// Shell block words alone on their line.
const BLOCK_WORDS: &[&str] = &["do", "done", "then", "fi", "esac", "else", "end", "begin", "try", "finally"];

fn classify(line: &str) -> Line {
    let t = line.trim();
    if t.is_empty() {
        return Line::Blank;
    }
    if t.starts_with("//")
        || t.starts_with("/*")
        || t.starts_with("*/")
        || t.starts_with("* ")
        || t == "*"
        || t.starts_with("```")
        || t.starts_with('"')
        || t.chars().all(|c| "{}[]();,".contains(c))
    {
        return Line::Neutral;
    }
    if t.starts_with("#include") || t.starts_with("#define") || t.starts_with("#!") || t.starts_with('@') {
        return Line::Code;
    }
    if BLOCK_WORDS.contains(&t) {
        return Line::Neutral;
    }
    if t.starts_with('#') {
        // A shell or Python comment, or a Markdown heading.
        return Line::Neutral;
    }
    let first =
        t.split(|c: char| c.is_whitespace() || c == '(' || c == ':' || c == '<').next().unwrap_or_default();
    let keyword = KEYWORDS.contains(&first) || SQL.contains(&first);
    let has_code_punct =
        t.contains(['(', '=', '[']) || ["->", "::", "$(", "${", "\"$"].iter().any(|p| t.contains(p));
    let last = t.chars().next_back();
    let ends = match last {
        // A French list item ends with " ;" (space before), code does not.
        Some(';') => !t.ends_with(" ;") && (has_code_punct || keyword),
        Some('{') => true,
        Some(':') => keyword,
        Some(')') | Some(',') => call_or_keyword(t, keyword),
        _ => false,
    };
    let strong = (STRONG.contains(&first) || SQL.contains(&first)) && t.len() > first.len();
    let mut words = t.split_whitespace();
    let (w1, w2) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    // "public static class Calendar": modifiers in a row.
    let modifiers = KEYWORDS.contains(&w1) && KEYWORDS.contains(&w2);
    // ".Select(x => …)", "&& d.Day != …": a chained call, a continued condition.
    let continued = (t.starts_with('.') && t.contains('(')) || t.starts_with("&&") || t.starts_with("||");
    // "created_at  TIMESTAMPTZ NOT NULL,": a column of a CREATE TABLE.
    let column = w1.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && w2.len() >= 3
        && w2.trim_end_matches(|c: char| "(),0123456789".contains(c)).bytes().all(|b| b.is_ascii_uppercase())
        && matches!(last, Some(',') | Some(')'));
    if ends
        || strong
        || modifiers
        || continued
        || column
        || t.starts_with('}')
        || (keyword && has_code_punct)
        || assignment(t)
        || shell_assignment(t)
    {
        Line::Code
    } else if last == Some(',') {
        // Object members and argument lists ("id: body.id,") inside code;
        // a wrapped sentence ending with a comma is harmless here.
        Line::Neutral
    } else {
        Line::Prose
    }
}

/// `foo.bar(baz)`, `print(x)`, or a keyword line ending with `)`.
fn call_or_keyword(t: &str, keyword: bool) -> bool {
    if keyword {
        return true;
    }
    let head = t.split('(').next().unwrap_or_default();
    t.contains('(')
        && !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | ':' | '!' | '&' | '*'))
}

/// `NAME=value` alone on a line (shell, .env); logfmt lines hold several.
fn shell_assignment(t: &str) -> bool {
    let Some((name, value)) = t.split_once('=') else { return false };
    !name.is_empty()
        && !value.is_empty()
        && !t.contains(' ')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// `name = value`, `obj.field += 1`, `let`-less assignments with spaces
/// around the operator (log lines write `key=value`).
fn assignment(t: &str) -> bool {
    let ops = [" = ", " += ", " -= ", " *= ", " /= ", " |= ", " &= ", " := "];
    let Some((lhs, rhs)) = ops.iter().find_map(|op| t.split_once(op)) else {
        return false;
    };
    let lhs = lhs.trim();
    !lhs.is_empty()
        && !rhs.trim().is_empty()
        && lhs.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '.' | '[' | ']' | '$' | '\'' | '"' | ' ' | ':' | '<' | '>' | ',')
        })
        && lhs.split_whitespace().count() <= 3
        && lhs.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_lines() {
        assert_eq!(classify("    let x = foo(1);"), Line::Code);
        assert_eq!(classify("fn main() {"), Line::Code);
        assert_eq!(classify("def handler(event, context):"), Line::Code);
        assert_eq!(classify("    return x"), Line::Code);
        assert_eq!(classify("If you want, we can meet (tomorrow)"), Line::Prose);
        assert_eq!(classify("    return x;"), Line::Code);
        assert_eq!(classify("result = compute(a, b)"), Line::Code);
        assert_eq!(classify("- la confidentialité des données ;"), Line::Prose);
        assert_eq!(classify("2024-05-01 12:00:00 INFO started port=8080"), Line::Prose);
        assert_eq!(classify("Bonjour, voici le compte rendu de la réunion."), Line::Prose);
        assert_eq!(classify("}"), Line::Neutral);
    }
}
