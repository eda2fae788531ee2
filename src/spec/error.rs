//! Errors in an experiment file, shown as a compiler shows them:
//!
//! ```text
//! error: unknown field `epochz` in step `blocks` (kind tokenize), expected one of `data`, ...
//!  --> experiments/x.toml:12:1
//!    |
//! 12 | epochz = 3
//!    | ^^^^^^
//! ```

use std::fmt;
use std::path::PathBuf;

use super::location::{Location, Snippet};

/// Why an experiment could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("error: cannot read experiment file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file (or an override) is wrong at a known place.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl SpecError {
    /// What is wrong, when the file could be read.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            SpecError::Invalid(d) => Some(&d.problem),
            SpecError::Read { .. } => None,
        }
    }

    /// Where it is wrong, when the file could be read.
    pub fn location(&self) -> Option<&Location> {
        match self {
            SpecError::Invalid(d) => Some(&d.location),
            SpecError::Read { .. } => None,
        }
    }
}

/// A problem, where it is, and the source line that shows it.
#[derive(Debug)]
pub struct Diagnostic {
    pub problem: Problem,
    pub location: Location,
    pub snippet: Option<Snippet>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.problem)?;
        write!(f, " --> {}", self.location)?;
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        Ok(())
    }
}

/// What is wrong. Each variant names the thing and, where there is a fixed set of
/// valid choices, lists them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("invalid TOML: {message}")]
    Toml { message: String },

    #[error("unknown key `{key}` in {table}, expected one of {}", list(expected))]
    UnknownKey {
        key: String,
        table: String,
        expected: Vec<String>,
    },

    #[error("`{what}` must be {expected}, found {found}")]
    WrongType {
        what: String,
        expected: String,
        found: String,
    },

    #[error("missing {what}")]
    Missing { what: String },

    #[error("in [experiment]: {message}")]
    Experiment { message: String },

    #[error("in [cache]: {message}")]
    Cache { message: String },

    #[error(
        "invalid {what} name `{name}`: names start with a letter or `_` and contain only letters, digits, `_` and `-`"
    )]
    BadName { what: String, name: String },

    #[error("the name `{name}` is reserved (inside a loop, `{name}.X` means a carried value)")]
    ReservedName { name: String },

    #[error("unknown kind `{kind}` {context}, expected one of {}", list(expected))]
    UnknownKind {
        kind: String,
        context: String,
        expected: Vec<String>,
    },

    #[error(
        "step `{step}` has no `kind`; add `kind = \"...\"`, one of {}",
        list(expected)
    )]
    MissingKind { step: String, expected: Vec<String> },

    /// serde's complaint about a step's parameters, with the step named in it.
    #[error("{}", params_message(.step, .kind, .key.as_deref(), .message))]
    Params {
        step: String,
        kind: String,
        key: Option<String>,
        message: String,
    },

    #[error("`kind` cannot have a default: it is the table name under [defaults]")]
    KindInDefaults,

    #[error(
        "step `{step}` refers to `{reference}` in `{slot}`, but {why}{}",
        suggest(suggestions)
    )]
    DanglingRef {
        step: String,
        slot: String,
        reference: String,
        why: String,
        suggestions: Vec<String>,
    },

    #[error("{place} refers to `{reference}`, but {why}{}", suggest(suggestions))]
    DanglingLoopRef {
        place: String,
        reference: String,
        why: String,
        suggestions: Vec<String>,
    },

    #[error("invalid reference `{reference}` in {place}: {why}")]
    BadRef {
        place: String,
        reference: String,
        why: String,
    },

    #[error(
        "`{reference}` in {place} names every generation, so it may only appear inside a list: `[\"{reference}\"]`"
    )]
    StarOutsideList { place: String, reference: String },

    #[error("two steps are named `{name}` (the other one is at {first})")]
    DuplicateStep { name: String, first: Location },

    #[error("in loop `{name}`: {why}")]
    BadLoop { name: String, why: String },

    #[error(
        "`carry.{key}` in {place}: loop `{loop_name}` carries no `{key}`; it carries {}",
        carried_list(carried)
    )]
    UnknownCarry {
        place: String,
        loop_name: String,
        key: String,
        carried: Vec<String>,
    },

    #[error("--set {text}: {why}")]
    BadOverride { text: String, why: String },

    #[error("in `{path}`: {message}")]
    Resources { path: String, message: String },

    #[error("in `{path}`: {message}")]
    Retry { path: String, message: String },

    #[error("in [sweep]: {message}")]
    Sweep { message: String },
}

/// `` `a`, `b`, `c` ``
pub(crate) fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn carried_list(carried: &[String]) -> String {
    if carried.is_empty() {
        "nothing (add `carry` and `next` to the loop)".into()
    } else {
        list(carried)
    }
}

fn suggest(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!("; did you mean one of {}?", list(many)),
    }
}

/// Puts the step into serde's message: `invalid type: string "abc" for `block_size`
/// in step `blocks` (kind tokenize), expected usize`.
fn params_message(step: &str, kind: &str, key: Option<&str>, message: &str) -> String {
    let context = format!(" in step `{step}` (kind {kind})");
    let for_key = match key {
        // serde's unknown-field message already names the key.
        Some(key) if !message.starts_with("unknown field") => format!(" for `{key}`"),
        _ => String::new(),
    };
    match message.split_once(", expected ") {
        Some((head, expected)) => format!("{head}{for_key}{context}, expected {expected}"),
        None => format!("{message}{for_key}{context}"),
    }
}

impl super::location::SourceMap<'_> {
    /// The error for `problem` at `span`, with its source line.
    pub(crate) fn error(&self, span: &std::ops::Range<usize>, problem: Problem) -> SpecError {
        let (location, snippet) = self.resolve(span);
        SpecError::Invalid(Box::new(Diagnostic {
            problem,
            location,
            snippet: Some(snippet),
        }))
    }
}
