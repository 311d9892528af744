//! Errors in files people write (policy, catalog): each says where, as
//! `file:line:column: what`, like a compiler, so an admin can fix it fast.

use std::fmt;

/// One problem at one place in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path, self.line, self.column, self.message)
    }
}

impl Diagnostic {
    /// A diagnostic at byte `offset` of `text` (1-based line and column, in characters).
    pub fn at(path: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
        Self { path: path.to_owned(), line, column, message: message.into() }
    }

    /// Turns a TOML syntax or shape error into a located diagnostic.
    pub fn from_toml(path: &str, text: &str, error: &toml::de::Error) -> Self {
        let offset = error.span().map_or(0, |span| span.start);
        Self::at(path, text, offset, error.message().trim_end())
    }
}

/// Every problem found in one file; a file with any of them is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Reading a configuration file failed. The message says the cause, so
/// the cause is not also a `source()`: a report of the whole chain
/// (`{:#}` with anyhow) would say it twice.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
    /// Readable, but refused as a whole (a signed bundle that does not verify).
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|error| LoadError::Io { path: path.display().to_string(), error })
}

/// Whether `name` is a plausible lowercase DNS name (labels of letters,
/// digits, hyphens; no empty label; at most 253 characters).
pub(crate) fn is_lowercase_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An error and its causes as one line, as `{:#}` prints them with anyhow.
#[cfg(test)]
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        line.push_str(": ");
        line.push_str(&next.to_string());
        cause = next.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_say_each_cause_once() {
        let missing = read_file(std::path::Path::new("/nonexistent/p.toml")).unwrap_err();
        assert_eq!(chain(&missing), "/nonexistent/p.toml: No such file or directory (os error 2)");
        let invalid = LoadError::from(Diagnostics(vec![Diagnostic::at("f.toml", "a = 1\n", 4, "bad")]));
        assert_eq!(chain(&invalid), "f.toml:1:5: bad");
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let text = "a = 1\nbé = x\n";
        let d = Diagnostic::at("f.toml", text, text.find('x').unwrap(), "bad");
        assert_eq!(d.to_string(), "f.toml:2:6: bad");
    }

    #[test]
    fn hostnames() {
        assert!(is_lowercase_hostname("chat.openai.com"));
        for bad in ["", "Chat.com", "a..b", "-a.com", "a.com.", "a b.com", "x_y.com"] {
            assert!(!is_lowercase_hostname(bad), "{bad}");
        }
    }
}
