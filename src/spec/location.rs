//! Where things were written: byte spans in the experiment file (or in a `--set`
//! override) turned into `file:line:col` and a source line with a caret.
//!
//! Everything the parser sees lives in one virtual byte space: the file's text
//! first, then each override's text after it. A span taken from any value, however
//! it travelled (defaults merged into a step, an override merged into a table),
//! therefore still says where that value came from.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where a piece of the experiment was written.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// In the experiment file; line and column are 1-based, the column counts chars.
    File {
        file: PathBuf,
        line: usize,
        col: usize,
    },
    /// In a `--set PATH=VALUE` override; `text` is `PATH=VALUE`, `col` is 1-based in it.
    Override { text: String, col: usize },
}

impl Location {
    /// The start of `file` (for problems that have no better place, like a missing section).
    pub fn file_start(file: &Path) -> Self {
        Location::File {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { file, line, col } => write!(f, "{}:{line}:{col}", file.display()),
            Location::Override { text, .. } => write!(f, "--set {text}"),
        }
    }
}

/// One source line with the offending part marked, as a compiler shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    /// The line number, or empty for an override.
    pub label: String,
    /// The text of the line (for an override: `--set PATH=VALUE`).
    pub text: String,
    /// 1-based char column where the caret starts, in `text`.
    pub caret_col: usize,
    /// How many chars the caret covers (at least 1).
    pub caret_len: usize,
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pad = " ".repeat(self.label.len().max(1));
        writeln!(f, "{pad} |")?;
        let label = if self.label.is_empty() {
            pad.clone()
        } else {
            self.label.clone()
        };
        writeln!(f, "{label} | {}", self.text)?;
        write!(
            f,
            "{pad} | {}{}",
            " ".repeat(self.caret_col.saturating_sub(1)),
            "^".repeat(self.caret_len.max(1))
        )
    }
}

struct OverrideText<'a> {
    base: usize,
    text: &'a str,
}

/// Maps spans of the virtual byte space back to the file or override they came from.
pub(crate) struct SourceMap<'a> {
    file: PathBuf,
    text: &'a str,
    overrides: Vec<OverrideText<'a>>,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(file: &Path, text: &'a str) -> Self {
        SourceMap {
            file: file.to_path_buf(),
            text,
            overrides: Vec::new(),
        }
    }

    /// Registers an override's text; returns the offset of its first byte in the
    /// virtual space (spans inside the text are shifted by it).
    pub(crate) fn add_override(&mut self, text: &'a str) -> usize {
        // One spare byte after each text, so an end-of-text span still maps to it.
        let base = match self.overrides.last() {
            Some(last) => last.base + last.text.len() + 1,
            None => self.text.len() + 1,
        };
        self.overrides.push(OverrideText { base, text });
        base
    }

    /// The text `span` covers, in the file or the override it points into.
    pub(crate) fn text_of(&self, span: &Range<usize>) -> &'a str {
        let (text, base) = match self.overrides.iter().rev().find(|o| span.start >= o.base) {
            Some(o) => (o.text, o.base),
            None => (self.text, 0),
        };
        let start = floor_boundary(text, span.start.saturating_sub(base));
        let end = floor_boundary(text, span.end.saturating_sub(base)).max(start);
        &text[start..end]
    }

    /// The location of the first byte of `span`.
    pub(crate) fn locate(&self, span: &Range<usize>) -> Location {
        self.resolve(span).0
    }

    /// The location of `span` and the line it is on, caret under it.
    pub(crate) fn resolve(&self, span: &Range<usize>) -> (Location, Snippet) {
        if let Some(o) = self.overrides.iter().rev().find(|o| span.start >= o.base) {
            let start = span.start - o.base;
            let end = span.end.saturating_sub(o.base).max(start);
            let col = char_count(o.text, 0, start) + 1;
            let caret_len = char_count(o.text, start, end).max(1);
            let location = Location::Override {
                text: o.text.to_string(),
                col,
            };
            let snippet = Snippet {
                label: String::new(),
                text: format!("--set {}", o.text),
                caret_col: "--set ".len() + col,
                caret_len,
            };
            return (location, snippet);
        }
        let start = floor_boundary(self.text, span.start);
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line = self.text[..line_start].matches('\n').count() + 1;
        let col = char_count(self.text, line_start, start) + 1;
        let end = span.end.clamp(start, line_end);
        let location = Location::File {
            file: self.file.clone(),
            line,
            col,
        };
        let snippet = Snippet {
            label: line.to_string(),
            text: self.text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            caret_col: col,
            caret_len: char_count(self.text, start, end).max(1),
        };
        (location, snippet)
    }
}

/// The largest char boundary of `text` at or before `index` (spans may point past the end).
fn floor_boundary(text: &str, index: usize) -> usize {
    let mut i = index.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Chars in `text[from..to]`, tolerating offsets that are out of range or mid-char.
fn char_count(text: &str, from: usize, to: usize) -> usize {
    let from = floor_boundary(text, from);
    let to = floor_boundary(text, to).max(from);
    text[from..to].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_spans_map_to_one_based_line_and_char_column() {
        let text = "a = 1\nname = \"é\" x\n";
        let map = SourceMap::new(Path::new("x.toml"), text);
        let x = text.find('x').unwrap();
        let (loc, snippet) = map.resolve(&(x..x + 1));
        assert_eq!(loc.to_string(), "x.toml:2:12");
        assert_eq!(snippet.text, "name = \"é\" x");
        assert_eq!(snippet.caret_col, 12);
        // Past the end: clamped, no panic.
        assert_eq!(map.locate(&(999..1000)).to_string(), "x.toml:3:1");
    }

    #[test]
    fn override_spans_map_to_the_override_text() {
        let mut map = SourceMap::new(Path::new("x.toml"), "a = 1\n");
        let first = map.add_override("steps.a.b=1");
        let second = map.add_override("steps.a.c=abc");
        assert!(second > first + "steps.a.b=1".len());
        let loc = map.locate(&(second + 10..second + 13));
        assert_eq!(
            loc,
            Location::Override {
                text: "steps.a.c=abc".into(),
                col: 11
            }
        );
        assert_eq!(loc.to_string(), "--set steps.a.c=abc");
        let (_, snippet) = map.resolve(&(first..first + 5));
        assert_eq!(
            snippet.to_string(),
            "  |\n  | --set steps.a.b=1\n  |       ^^^^^"
        );
    }
}
