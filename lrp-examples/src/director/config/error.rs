//! The errors of a configuration ([`ConfigError`], [`ConfigErrors`]) and how they find
//! their place: byte offsets to lines and columns ([`Positions`]), and spans to key paths
//! ([`path_at`]).

use std::fmt::{self, Write as _};
use std::ops::Range;

/// One problem in a configuration file, at its place.
///
/// Prints as `file:line:column: path: message`, e.g.
/// `director.toml:14:8: service[0].server[1]: server 10.0.0.12:80 appears twice (first
/// at line 10)`. The place is left out when there is none (the file could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given to [`Config::load`](super::Config::load) or
    /// [`Config::from_toml`](super::Config::from_toml).
    pub file: String,
    /// 1-based line, or 0 when the error has no place in the text.
    pub line: usize,
    /// 1-based column in characters, or 0 when the error has no place in the text.
    pub column: usize,
    /// The key, e.g. `service[1].server[0].port` (empty for the whole document).
    pub path: String,
    /// What is wrong, and where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The problems found in a configuration file: at least one, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The errors, never empty.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The first error (in file order).
    pub fn first(&self) -> Option<&ConfigError> {
        self.errors.first()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Byte offsets to (line, column), both 1-based, the column counted in characters.
pub(super) struct Positions<'t> {
    pub(super) text: &'t str,
}

impl Positions<'_> {
    pub(super) fn at(&self, offset: usize) -> (usize, usize) {
        let bytes = self.text.as_bytes();
        let offset = offset.min(bytes.len());
        let before = &bytes[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        // Count characters, not bytes: continuation bytes are 0b10xx_xxxx.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count()
            + 1;
        (line, column)
    }
}

/// The path (`service[1].server[0].port`) of what `span` points at in `text`: the
/// deepest key or value whose span is exactly `span` (serde's "missing field" points at
/// the whole table that lacks it; the root table has the empty path), or else the
/// deepest one whose span holds its start. Empty for a syntax error: the tree that
/// `toml` recovers from broken text does not say reliably where a key belongs.
pub(super) fn path_at(text: &str, span: &Range<usize>) -> String {
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() || doc.span() == *span {
        return String::new();
    }
    let mut walk = Walk {
        span: span.clone(),
        here: Vec::new(),
        exact: None,
        holding: Vec::new(),
    };
    walk.table(doc.get_ref());
    render_path(walk.exact.as_deref().unwrap_or(&walk.holding))
}

#[derive(Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The search of [`path_at`].
struct Walk {
    span: Range<usize>,
    here: Vec<Segment>,
    exact: Option<Vec<Segment>>,
    holding: Vec<Segment>,
}

impl Walk {
    fn consider(&mut self, span: Range<usize>) {
        let depth = self.here.len();
        if span == self.span && self.exact.as_ref().is_none_or(|e| depth > e.len()) {
            self.exact = Some(self.here.clone());
        }
        let start = self.span.start;
        let holds = span.contains(&start) || (span.is_empty() && span.start == start);
        if holds && depth > self.holding.len() {
            self.holding.clone_from(&self.here);
        }
    }

    fn table(&mut self, table: &toml::de::DeTable<'_>) {
        for (key, value) in table {
            self.here.push(Segment::Key(key.get_ref().to_string()));
            self.consider(key.span());
            self.consider(value.span());
            self.value(value.get_ref());
            self.here.pop();
        }
    }

    fn value(&mut self, value: &toml::de::DeValue<'_>) {
        match value {
            toml::de::DeValue::Table(t) => self.table(t),
            toml::de::DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.here.push(Segment::Index(i));
                    self.consider(item.span());
                    self.value(item.get_ref());
                    self.here.pop();
                }
            }
            _ => {}
        }
    }
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(k);
                } else {
                    let _ = write!(out, "{k:?}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let p = Positions { text: "ab\n€x\n" };
        assert_eq!(p.at(0), (1, 1));
        assert_eq!(p.at(3), (2, 1));
        assert_eq!(p.at(6), (2, 2)); // after the 3-byte euro sign
        assert_eq!(p.at(999), (3, 1));
    }

    #[test]
    fn display_is_file_line_column_path_message() {
        let e = ConfigError {
            file: "d.toml".into(),
            line: 3,
            column: 7,
            path: "service[0].port".into(),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "d.toml:3:7: service[0].port: bad");
        let e = ConfigError {
            line: 0,
            column: 0,
            path: String::new(),
            ..e
        };
        assert_eq!(e.to_string(), "d.toml: bad");
    }

    #[test]
    fn path_rendering_quotes_odd_keys() {
        let p = [
            Segment::Key("service".into()),
            Segment::Index(2),
            Segment::Key("a b".into()),
        ];
        assert_eq!(render_path(&p), "service[2].\"a b\"");
    }
}
