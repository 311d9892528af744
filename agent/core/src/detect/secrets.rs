//! Secrets: provider keys by their documented prefixes (after gitleaks'
//! rules), private keys, JWTs, connection strings with a password, and
//! high-entropy tokens next to a secret-ish keyword.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::text::{self, char_after, char_before, entropy, has_keyword, keyword_near};
use super::{Confidence, DetectorId, Finding};

/// A prefix-anchored provider key: its pattern and a check on the match.
struct Rule {
    id: DetectorId,
    pattern: &'static str,
    check: Check,
}

/// Gets the whole text and the match's span; `None` rejects the match.
type Check = fn(&str, &Range<usize>) -> Option<Confidence>;

const RULES: &[Rule] = &[
    Rule {
        id: DetectorId::OpenaiKey,
        pattern: r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
        check: openai,
    },
    Rule {
        id: DetectorId::AnthropicKey,
        pattern: r"sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_\-]{32,}",
        check: mixed_high,
    },
    Rule { id: DetectorId::HuggingfaceToken, pattern: r"hf_[A-Za-z0-9]{30,40}", check: cased_high },
    Rule {
        id: DetectorId::AwsAccessKey,
        pattern: r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16}",
        check: not_example,
    },
    Rule { id: DetectorId::GithubToken, pattern: r"gh[pousr]_[A-Za-z0-9]{36}", check: mixed_high },
    Rule { id: DetectorId::GithubToken, pattern: r"github_pat_[A-Za-z0-9_]{70,}", check: mixed_high },
    Rule { id: DetectorId::GitlabToken, pattern: r"glpat-[A-Za-z0-9_\-]{20,}", check: mixed_high },
    Rule {
        id: DetectorId::SlackToken,
        pattern: r"xox[abposre]-(?:[0-9]{1,2}-)?[0-9]{6,}-[0-9A-Za-z\-]{8,}",
        check: always_high,
    },
    Rule {
        id: DetectorId::SlackToken,
        pattern: r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}",
        check: always_high,
    },
    Rule { id: DetectorId::GoogleApiKey, pattern: r"AIza[0-9A-Za-z_\-]{35}", check: always_high },
    Rule {
        id: DetectorId::AzureStorageKey,
        pattern: r"(?:AccountKey=[A-Za-z0-9+/]{86}==|SharedAccessKey=[A-Za-z0-9+/]{43}=)",
        check: always_high,
    },
    Rule {
        id: DetectorId::Jwt,
        pattern: r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
        check: jwt,
    },
    Rule {
        id: DetectorId::PrivateKey,
        pattern: r"-----BEGIN[ A-Z0-9]{0,20} PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-[0-9]: ",
        check: always_high,
    },
    Rule {
        id: DetectorId::ConnectionString,
        pattern: r"[A-Za-z][A-Za-z0-9+.\-]{1,30}://[^\s:/@?#'<>]{0,128}:[^\s@/?#'<>]{1,128}@[A-Za-z0-9.\-\[\]_]{1,255}",
        check: url_password,
    },
    Rule {
        id: DetectorId::ConnectionString,
        pattern: r"(?i:password|pwd)[ \t]*=[ \t]*[^;\s'<>]{1,128}",
        check: ado_password,
    },
];

struct Compiled {
    rules: Vec<(DetectorId, Regex, Check)>,
    token: Option<Regex>,
    ado_context: Option<Regex>,
    public_block: Option<Regex>,
    assignment: Option<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    rules: RULES.iter().filter_map(|r| Some((r.id, text::regex(r.pattern)?, r.check))).collect(),
    // Token chars of keys and base64; `=` only as trailing padding so that
    // `AccountKey=…` splits into a name and a value.
    token: text::regex(r"[A-Za-z0-9+/_\-]{16,}={0,2}"),
    // Public keys, certificates and signatures are base64 but not secret.
    // RFC 4716's `---- BEGIN SSH2 PUBLIC KEY ----` (PuTTYgen) too.
    public_block: text::regex(
        r"-----BEGIN (?:[A-Z0-9]+ )*(?:PUBLIC KEY(?: BLOCK)?|CERTIFICATE|SIGNATURE)-----|---- BEGIN SSH2 PUBLIC KEY ----",
    ),
    // `NAME = "value"`, `name: value`, `"name": "value"`, `-H "Name: value"`:
    // a value of any printable chars (passwords have `^~!*%`).
    assignment: text::regex(
        // The name must hold a secret-ish word, so that the (slower) capture
        // runs only where one is.
        r#"(?-u:\b)([A-Za-z0-9_.\-]{0,40}(?i:pass|secret|token|key|pwd|mdp|credential)[A-Za-z0-9_.\-]{0,40})["']?[ \t]*(?:=>|:=|=|:)[ \t]*["'`]?([^\s"'`,;<>]{8,128})"#,
    ),
    ado_context: text::regex(
        r"(?i:server|data source|host|uid|user id|initial catalog|database|driver|dsn|provider)[ \t]*=|://",
    ),
});

#[cfg(test)]
pub(super) fn patterns_compiled() -> bool {
    COMPILED.rules.len() == RULES.len()
        && COMPILED.token.is_some()
        && COMPILED.ado_context.is_some()
        && COMPILED.public_block.is_some()
        && COMPILED.assignment.is_some()
}

/// Chars that would glue a key to what precedes it (`task-…`, a longer
/// random string). Not `/`: keys often follow `https://`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+')
}

pub(super) fn scan(text: &str, out: &mut Vec<Finding>) {
    let first = out.len();
    let mut next_end = None;
    for (id, re, check) in &COMPILED.rules {
        for m in re.find_iter(text) {
            let mut span = m.range();
            // A key glued to more key-like chars is something else
            // (`task-…`, a longer random string).
            let glued_before = char_before(text, span.start).is_some_and(is_token_char);
            let glued_after = char_after(text, span.end).is_some_and(|c| c.is_ascii_alphanumeric());
            let wants_bounds = !matches!(id, DetectorId::ConnectionString | DetectorId::PrivateKey);
            if wants_bounds && (glued_before || glued_after) {
                continue;
            }
            if wants_bounds && is_filler(matched(text, &span)) {
                continue;
            }
            let Some(confidence) = check(text, &span) else { continue };
            if *id == DetectorId::PrivateKey {
                span = private_key_block(text, span, &mut next_end);
            }
            out.push(Finding { detector: *id, confidence, span });
        }
    }
    let mut taken: Vec<Range<usize>> =
        out.get(first..).unwrap_or_default().iter().map(|f| f.span.clone()).collect();
    if let Some(re) = COMPILED.public_block.as_ref() {
        // From the header to its END line (within 16 KiB), or that far.
        taken.extend(re.find_iter(text).map(|m| {
            let limit = text::floor_boundary(text, m.end().saturating_add(16 * 1024));
            let body = text.get(m.end()..limit).unwrap_or_default();
            let end_marker = if m.as_str().starts_with("---- ") { "---- END" } else { "-----END" };
            let end = body.find(end_marker).map_or(limit, |at| {
                let after = m.end() + at + end_marker.len();
                text.get(after..limit)
                    .and_then(|rest| rest.find("-----"))
                    .map_or(limit, |close| after + close + 5)
            });
            m.start()..end
        }));
    }
    taken.sort_by_key(|r| r.start);
    let before_generic = out.len();
    generic(text, &taken, out);
    taken.extend(out.get(before_generic..).unwrap_or_default().iter().map(|f| f.span.clone()));
    taken.sort_by_key(|r| r.start);
    assigned_values(text, &taken, out);
}

fn always_high(_: &str, _: &Range<usize>) -> Option<Confidence> {
    Some(Confidence::High)
}

/// AWS's documentation keys (`AKIAIOSFODNN7EXAMPLE`, `…EXAMPLEKEY`).
fn not_example(text: &str, span: &Range<usize>) -> Option<Confidence> {
    (!matched(text, span).contains("EXAMPLE")).then_some(Confidence::High)
}

fn matched<'t>(text: &'t str, span: &Range<usize>) -> &'t str {
    text.get(span.clone()).unwrap_or_default()
}

/// Real keys are random: upper, lower and digits all appear.
fn mixed_classes(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && s.bytes().any(|b| b.is_ascii_digit())
}

/// Letters-only tokens (Hugging Face): both cases appear.
fn cased_high(text: &str, span: &Range<usize>) -> Option<Confidence> {
    let s = matched(text, span);
    (s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase()))
        .then_some(Confidence::High)
}

fn mixed_high(text: &str, span: &Range<usize>) -> Option<Confidence> {
    mixed_classes(matched(text, span)).then_some(Confidence::High)
}

fn openai(text: &str, span: &Range<usize>) -> Option<Confidence> {
    // `sk-ant-` is Anthropic's and has its own rule.
    let body = matched(text, span).strip_prefix("sk-")?;
    if body.starts_with("ant-") || !mixed_classes(body) {
        return None;
    }
    // "T3BlbkFJ" is base64 of "OpenAI", embedded in every issued key.
    let scoped = ["proj-", "svcacct-", "admin-"].iter().any(|p| body.starts_with(p));
    if body.contains("T3BlbkFJ") || (scoped && body.len() >= 40) {
        Some(Confidence::High)
    } else if body.len() >= 32 {
        Some(Confidence::Medium)
    } else {
        None
    }
}

/// A JWT's header decodes to a JSON object with an `alg` member.
fn jwt(text: &str, span: &Range<usize>) -> Option<Confidence> {
    let header = matched(text, span).split('.').next()?;
    let bytes = base64url_decode(header)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?;
    Some(Confidence::High)
}

/// Decodes unpadded base64url (or standard base64); `None` on any bad char.
pub(super) fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// A key's random part made of one repeated char, or of a handful
/// (`AKIAXXXXXXXXXXXXXXXX`, `AIzaXXXX…`): a placeholder in documentation.
fn is_filler(key: &str) -> bool {
    let body = key.get(4..).unwrap_or_default().as_bytes();
    let longest_run = body.chunk_by(|a, b| a == b).map(<[u8]>::len).max().unwrap_or(0);
    let mut distinct: Vec<u8> = body.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    longest_run >= 8 || (body.len() >= 12 && distinct.len() < 6)
}

/// The key types of OpenSSH public keys (RFC 4253 §6.6, RFC 5656, RFC 8709,
/// OpenSSH's PROTOCOL.u2f), as written before the key and inside its blob.
const SSH_KEY_TYPES: &[&str] =
    &["ssh-rsa", "ssh-dss", "ssh-ed25519", "ssh-ed448", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"];

/// An OpenSSH public key blob (`AAAAC3NzaC1lZDI1NTE5…`): base64 of a
/// length-prefixed key type. Public, not a secret.
fn is_ssh_public_key(token: &str) -> bool {
    // The length and type fit in the first 32 base64 chars.
    let Some(head) = token.get(..32.min(token.len() - token.len() % 4)) else { return false };
    let Some(bytes) = base64url_decode(head) else { return false };
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else { return false };
    let len = u32::from_be_bytes(*len) as usize;
    let name = rest.get(..len.min(rest.len())).unwrap_or_default();
    (7..=40).contains(&len) && SSH_KEY_TYPES.iter().any(|t| name.starts_with(t.as_bytes()))
}

/// `SHA256:7Xw+3pq…` as ssh prints a host key's fingerprint.
fn after_fingerprint_label(text: &str, span: &Range<usize>) -> bool {
    let (before, _) = text::around(text, span, 8, 0);
    ["SHA256:", "SHA1:", "SHA512:", "MD5:"].iter().any(|label| before.ends_with(label))
}

/// Documentation placeholders are not secrets.
fn is_placeholder(password: &str) -> bool {
    let p = password.trim_matches(|c| c == '"' || c == '\'');
    let lower = p.to_ascii_lowercase();
    p.is_empty()
        || p.starts_with(['$', '<', '{', '%', '['])
        || p.chars().all(|c| c == '*' || c == 'x' || c == 'X' || c == '.' || c == '•')
        || ["password", "pass", "passwd", "pwd", "secret", "changeme", "motdepasse", "mot_de_passe"]
            .contains(&lower.as_str())
}

fn url_password(text: &str, span: &Range<usize>) -> Option<Confidence> {
    let (_, rest) = matched(text, span).split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!is_placeholder(password)).then_some(Confidence::High)
}

/// `Password=` counts in an ADO/ODBC/JDBC string: a server, database or
/// user key (or a URL) on the same line.
fn ado_password(text: &str, span: &Range<usize>) -> Option<Confidence> {
    let value = matched(text, span).split_once('=')?.1.trim();
    if is_placeholder(value) {
        return None;
    }
    let line = text.get(text::line_of(text, span.start, 256))?;
    let context = COMPILED.ado_context.as_ref()?;
    (context.is_match(line) && line.contains(';') || line.contains("://")).then_some(Confidence::High)
}

/// Extends a PEM header to its END line when one follows within 16 KiB.
/// `next_end` remembers where the next END marker is (or that there is
/// none), so that many BEGIN lines do not each search the rest of the text.
fn private_key_block(text: &str, span: Range<usize>, next_end: &mut Option<usize>) -> Range<usize> {
    if !matched(text, &span).starts_with("-----BEGIN") {
        // PuTTY's header line names the key; the whole line is the finding.
        return span.start..text::line_of(text, span.start, 256).end.max(span.end);
    }
    let stale = next_end.is_some_and(|at| at < span.end);
    if next_end.is_none() || stale {
        *next_end =
            Some(text.get(span.end..).and_then(|r| r.find("-----END")).map_or(usize::MAX, |i| span.end + i));
    }
    let Some(end_marker) = *next_end else { return span };
    if end_marker == usize::MAX || end_marker - span.end > 16 * 1024 {
        return span;
    }
    let limit = text::floor_boundary(text, end_marker.saturating_add(64));
    let close = text
        .get(end_marker + 8..limit)
        .and_then(|r| r.find("-----"))
        .map_or(end_marker + 8, |i| end_marker + 8 + i + 5);
    span.start..close
}

/// Words that make a random-looking token a credential.
const SECRET_WORDS: &[&str] = &[
    "*token*",
    "*secret*",
    "*passw*",
    "*credential*",
    "*apikey*",
    "*api_key*",
    "*api-key*",
    "*auth*",
    "bearer",
    "key*",
    "*_key",
    "*private*",
    "pwd",
    "mdp",
    "mot de passe",
    "clé",
    "cle",
    "jeton",
];

/// Names a value of any chars is a secret under: narrower than
/// [`SECRET_WORDS`] (not `author`, `authDomain`, `keyboard`).
const SECRET_NAMES: &[&str] = &[
    "*token*",
    "*secret*",
    "*passw*",
    "*credential*",
    "*apikey*",
    "*api_key*",
    "*api-key*",
    "*private_key*",
    "*access_key*",
    "key",
    "*_key",
    "*-key",
    "pwd",
    "*_pwd",
    "mdp",
];

/// Generic high-entropy tokens. Without a keyword nearby a token stays Low;
/// after `NAME=` / `"name":` / `Bearer` with a secret-ish name it is High.
fn generic(text: &str, taken: &[Range<usize>], out: &mut Vec<Finding>) {
    let Some(re) = COMPILED.token.as_ref() else { return };
    for m in re.find_iter(text) {
        let span = m.range();
        let token = m.as_str();
        // Overlaps a provider key or connection string already reported.
        if overlaps(taken, &span) {
            continue;
        }
        if token.len() > 256 || char_before(text, span.start).is_some_and(|c| c.is_alphanumeric() || c == '.')
        {
            continue;
        }
        if token.contains("EXAMPLE") || looks_like_path(text, &span) {
            continue;
        }
        let key_type = SSH_KEY_TYPES.iter().any(|t| token.starts_with(t));
        if key_type || is_ssh_public_key(token) || after_fingerprint_label(text, &span) {
            continue;
        }
        // A 40-char base64 string near "aws" is an AWS secret access key.
        if token.len() == 40
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            && mixed_classes(token)
            && keyword_near(
                text,
                &span,
                256,
                0,
                &["*aws*", "akia*", "*secretaccesskey*", "*secret_access_key*"],
            )
        {
            out.push(Finding { detector: DetectorId::AwsSecretKey, confidence: Confidence::High, span });
            continue;
        }
        let assigned = assigned_to_secret(text, span.start);
        let Some(confidence) = token_confidence(token, assigned) else { continue };
        let confidence = if assigned {
            confidence
        } else if keyword_near(text, &span, 48, 0, SECRET_WORDS) && !in_url_or_path(text, &span) {
            confidence.min(Confidence::Medium)
        } else {
            Confidence::Low
        };
        out.push(Finding { detector: DetectorId::GenericSecret, confidence, span });
    }
}

/// Whether `span` overlaps one of the sorted ranges in `taken`.
fn overlaps(taken: &[Range<usize>], span: &Range<usize>) -> bool {
    let i = taken.partition_point(|r| r.start < span.end);
    taken.get(..i).unwrap_or_default().iter().rev().take(64).any(|r| r.end > span.start)
}

/// `exports/2022-03-01/dPvj….csv.gz`: an object key or a file, not a secret.
fn looks_like_path(text: &str, span: &Range<usize>) -> bool {
    let token = matched(text, span);
    let Some((head, _)) = token.split_once('/') else { return false };
    let extension = text.get(span.end..).is_some_and(|rest| {
        rest.strip_prefix('.').is_some_and(|ext| {
            let n = ext.bytes().take_while(u8::is_ascii_alphanumeric).count();
            (1..=5).contains(&n)
        })
    });
    extension || (head.len() >= 4 && head.bytes().all(|b| b.is_ascii_lowercase()))
}

/// Values assigned to a secret-ish name, of any printable chars: the
/// passwords and keys that the token pattern (base64 chars only) misses.
/// Checked like a password: long enough, three kinds of chars (or two and
/// long), not a placeholder, a reference or a word.
fn assigned_values(text: &str, taken: &[Range<usize>], out: &mut Vec<Finding>) {
    let Some(re) = COMPILED.assignment.as_ref() else { return };
    for caps in re.captures_iter(text) {
        let (Some(name), Some(value)) = (caps.get(1), caps.get(2)) else { continue };
        let span = value.range();
        if overlaps(taken, &span) || !has_keyword(&name.as_str().to_lowercase(), SECRET_NAMES) {
            continue;
        }
        let cut_short = char_after(text, span.end).is_some_and(|c| c == '<' || c == '>');
        if !cut_short && password_like(value.as_str()) && !looks_like_path(text, &span) {
            out.push(Finding { detector: DetectorId::GenericSecret, confidence: Confidence::High, span });
        }
    }
}

fn password_like(value: &str) -> bool {
    if is_placeholder(value) || value.contains("EXAMPLE") || value.contains("://") {
        return false;
    }
    // `ssh_key: ssh-ed25519 AAAA…`: the type of a public key.
    if SSH_KEY_TYPES.iter().any(|t| value.starts_with(t)) {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    // Examples and references: `sk-ant-api03-...`, `xoxb-your-bot-token`,
    // `<votre-clé>`, a file (`/run/secrets/db_password`), an e-mail.
    if ["...", "…", "your", "votre", "xxxx", "changeme", "example", "placeholder", "dummy"]
        .iter()
        .any(|p| lower.contains(p))
        || value.starts_with(['/', '~', '.', '<', '@'])
        || (value.contains('@') && value.rsplit('@').next().is_some_and(|d| d.contains('.')))
    {
        return false;
    }
    if ["true", "false", "null", "none", "undefined"].contains(&lower.as_str())
        || value.starts_with("process.env")
        || value.starts_with("os.environ")
        || value.contains("${")
        || value.contains("{{")
    {
        return false;
    }
    let upper = value.bytes().any(|b| b.is_ascii_uppercase());
    let lower_case = value.bytes().any(|b| b.is_ascii_lowercase());
    let digit = value.bytes().any(|b| b.is_ascii_digit());
    let symbol = value.bytes().any(|b| b.is_ascii_punctuation());
    let kinds = [upper, lower_case, digit, symbol].iter().filter(|k| **k).count();
    // Code identifiers and references (`self.config.password`,
    // `get_password()`, `X-Signature`, `user:20443`,
    // `refresh_token_expiry_2024_05`): words or numbers joined by dots,
    // dashes, underscores, colons or brackets.
    let parts = || value.split(['.', '_', '-', ':', '(', ')', '[', ']']).filter(|w| !w.is_empty());
    let words_only = parts().all(|w| w.bytes().all(|b| b.is_ascii_alphabetic()));
    let words_or_numbers = !upper
        && parts()
            .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()) || w.bytes().all(|b| b.is_ascii_digit()));
    let identifier = words_only || words_or_numbers;
    !identifier
        && value.len() >= 10
        && (kinds >= 3 || (kinds == 2 && value.len() >= 16))
        && entropy(value) >= 3.0
}

/// `API_KEY=`, `"client_secret": "`, `token: `, `Authorization: Bearer `
/// right before the token.
fn assigned_to_secret(text: &str, start: usize) -> bool {
    let (before, _) = text::around(text, &(start..start), 64, 0);
    let before = before.rsplit('\n').next().unwrap_or_default();
    let trimmed = before.trim_end_matches(|c: char| c == '"' || c == '\'' || c == '`' || c.is_whitespace());
    let lower = trimmed.to_lowercase();
    if lower.ends_with("bearer") || lower.ends_with("token") {
        return true;
    }
    let Some(name) = lower
        .strip_suffix("=>")
        .or_else(|| lower.strip_suffix(":="))
        .or_else(|| lower.strip_suffix('='))
        .or_else(|| lower.strip_suffix(':'))
    else {
        return false;
    };
    let name = name.trim_end_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace());
    let ident_start = name
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let ident = name.get(ident_start..).unwrap_or_default();
    !ident.is_empty() && has_keyword(ident, SECRET_WORDS)
}

/// A token inside a URL or a file path is an identifier, not a credential.
fn in_url_or_path(text: &str, span: &Range<usize>) -> bool {
    let (before, _) = text::around(text, span, 256, 0);
    let word = before.rsplit(char::is_whitespace).next().unwrap_or_default();
    word.contains("://") || word.ends_with('/')
}

/// How random `token` looks: `None` for UUIDs, hex digests, identifiers,
/// paths and base64 of plain text.
fn token_confidence(token: &str, assigned: bool) -> Option<Confidence> {
    let body = token.trim_end_matches('=');
    let len = body.len();
    if len < if assigned { 16 } else { 20 } {
        return None;
    }
    if is_uuid(body) {
        return None;
    }
    let hex = body.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        // Digests (md5, sha1, sha256, git ids) are hex; a hex secret only
        // counts when it is assigned to a secret-ish name.
        return (assigned && len >= 32).then_some(Confidence::Medium);
    }
    let upper = body.bytes().filter(u8::is_ascii_uppercase).count();
    let lower = body.bytes().filter(u8::is_ascii_lowercase).count();
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    let slashes = body.bytes().filter(|&b| b == b'/').count();
    if digits < 2 || upper + lower < 4 || (upper == 0 && lower == 0) {
        return None;
    }
    if slashes >= 3 && !body.contains('+') {
        return None;
    }
    // Identifiers in snake or kebab case: long words joined by `_`/`-`.
    let words = body.split(['_', '-']).filter(|w| w.len() >= 4 && w.bytes().all(|b| b.is_ascii_alphabetic()));
    if words.count() >= 2 {
        return None;
    }
    if upper == 0 || lower == 0 {
        // One letter case: only long tokens are random enough.
        if len < 32 {
            return assigned.then_some(Confidence::Medium);
        }
    }
    if entropy(body) < 3.5 {
        return None;
    }
    if decodes_to_text(body) {
        return None;
    }
    Some(if assigned { Confidence::High } else { Confidence::Medium })
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Base64 of readable text ("Hello, this is …") has high char entropy but
/// carries no secret.
fn decodes_to_text(s: &str) -> bool {
    let Some(bytes) = base64url_decode(s) else { return false };
    bytes.len() >= 12
        && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\n')
        && bytes.iter().filter(|b| b.is_ascii_alphabetic() || **b == b' ').count() * 10 >= bytes.len() * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes() {
        assert_eq!(base64url_decode("eyJhbGciOiJIUzI1NiJ9").as_deref(), Some(&b"{\"alg\":\"HS256\"}"[..]));
        assert!(base64url_decode("a*b").is_none());
    }

    #[test]
    fn token_guards() {
        assert!(token_confidence("550e8400-e29b-41d4-a716-446655440000", true).is_none());
        assert!(token_confidence("d41d8cd98f00b204e9800998ecf8427e", false).is_none());
        assert!(token_confidence("AbstractSingletonProxyFactoryBean", false).is_none());
        assert!(token_confidence("SGVsbG8sIHRoaXMgaXMgYSBwbGFpbiB0ZXh0", false).is_none());
        assert_eq!(token_confidence("q8Vd2LzX0pR7sNwK4mYbT1cH", false), Some(Confidence::Medium));
        assert_eq!(token_confidence("q8Vd2LzX0pR7sNwK4mYbT1cH", true), Some(Confidence::High));
    }

    #[test]
    fn assignment_context() {
        let t = "export API_KEY=q8Vd2LzX0pR7sNwK4mYbT1cH";
        assert!(assigned_to_secret(t, t.find("q8").unwrap()));
        let t = "\"client_secret\": \"q8Vd2LzX0pR7sNwK4mYbT1cH\"";
        assert!(assigned_to_secret(t, t.find("q8").unwrap()));
        let t = "Authorization: Bearer q8Vd2LzX0pR7sNwK4mYbT1cH";
        assert!(assigned_to_secret(t, t.find("q8").unwrap()));
        let t = "commit = q8Vd2LzX0pR7sNwK4mYbT1cH";
        assert!(!assigned_to_secret(t, t.find("q8").unwrap()));
    }

    #[test]
    fn public_keys_and_fillers_are_not_secrets() {
        assert!(is_ssh_public_key("AAAAC3NzaC1lZDI1NTE5AAAAIEJLZWrPkugijYF3I0BdtmP7XNbN9uUaqTCX+qtplgNV"));
        assert!(is_ssh_public_key("AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNiO1boJWDR4L"));
        assert!(is_ssh_public_key("AAAAB3NzaC1yc2EAAAADAQABAAACAQDN20G3Z74HjTS3"));
        assert!(!is_ssh_public_key("q8Vd2LzX0pR7sNwK4mYbT1cHq8Vd2LzX0pR7sNwK4mYbT1cH"));
        assert!(!is_ssh_public_key("AAAA"));
        assert!(is_filler("AKIAXXXXXXXXXXXXXXXX") && is_filler("AIzaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"));
        assert!(!is_filler("AKIA2E0A8F3B244C9986") && !is_filler("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"));
    }

    #[test]
    fn placeholders() {
        for p in ["password", "${DB_PASS}", "<password>", "****", "xxxx", "{pwd}"] {
            assert!(is_placeholder(p), "{p}");
        }
        assert!(!is_placeholder("Tr0ub4dor&3"));
    }
}
