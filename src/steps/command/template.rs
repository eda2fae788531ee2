//! The placeholders of a `command` step's arguments and environment values:
//! `{inputs.NAME}`, `{outputs.NAME}`, `{out}`, `{params}`, `{seed}`,
//! `{repo}/PATH`; `{{` and `}}` are literal braces. Parsed when the file is
//! loaded (so a typo is an error at its line) and filled in when the step runs.

use std::fmt;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The path of input `NAME`.
    Input(String),
    /// The path of declared output `NAME`, inside the output directory.
    Output(String),
    /// The directory the program writes its outputs into.
    Out,
    /// The JSON file holding `params`.
    Params,
    /// The experiment's seed.
    Seed,
    /// `{repo}/PATH`: a path of the repository, which must be a declared `file:`
    /// input or lie inside one (so its content is in the key).
    Repo(String),
}

impl fmt::Display for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Piece::Text(text) => f.write_str(text),
            Piece::Input(name) => write!(f, "{{inputs.{name}}}"),
            Piece::Output(name) => write!(f, "{{outputs.{name}}}"),
            Piece::Out => f.write_str("{out}"),
            Piece::Params => f.write_str("{params}"),
            Piece::Seed => f.write_str("{seed}"),
            Piece::Repo(path) => write!(f, "{{repo}}/{path}"),
        }
    }
}

/// The placeholders there are, for messages.
pub const GRAMMAR: &str = "`{inputs.NAME}`, `{outputs.NAME}`, `{out}`, `{params}`, `{seed}` or \
     `{repo}/PATH` (write `{{` and `}}` for literal braces)";

/// Characters that end the PATH of `{repo}/PATH`: those that separate words in a
/// shell command or entries of a path list.
fn ends_repo_path(c: char) -> bool {
    c.is_whitespace() || "'\"{}:;,|&<>()=".contains(c)
}

/// Splits `text` into pieces; the error says what is wrong with which placeholder.
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '}' => {
                return Err(format!(
                    "a `}}` that closes nothing at character {}; write `}}}}` for a literal brace",
                    at + 1
                ));
            }
            '{' => {
                let rest = &text[at + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "`{{` at character {} is not closed; write `{{{{` for a literal brace",
                        at + 1
                    ));
                };
                let name = &rest[..end];
                // Skip the name and its closing brace.
                for _ in 0..name.chars().count() + 1 {
                    chars.next();
                }
                let piece = match name {
                    "out" => Piece::Out,
                    "params" => Piece::Params,
                    "seed" => Piece::Seed,
                    "repo" => {
                        if chars.peek().map(|(_, c)| *c) != Some('/') {
                            return Err(
                                "`{repo}` must be followed by `/PATH`, a file or folder of the \
                                 repository declared as an input (`file:PATH`)"
                                    .to_string(),
                            );
                        }
                        chars.next();
                        let mut path = String::new();
                        while let Some((_, c)) = chars.peek() {
                            if ends_repo_path(*c) {
                                break;
                            }
                            path.push(*c);
                            chars.next();
                        }
                        let path = path.trim_end_matches('/').to_string();
                        if path.is_empty() {
                            return Err("`{repo}/` must be followed by a path".to_string());
                        }
                        Piece::Repo(path)
                    }
                    _ => match name.split_once('.') {
                        Some(("inputs", n)) if !n.is_empty() => Piece::Input(n.to_string()),
                        Some(("outputs", n)) if !n.is_empty() => Piece::Output(n.to_string()),
                        _ => {
                            return Err(format!(
                                "unknown placeholder `{{{name}}}`; the placeholders are {GRAMMAR}"
                            ));
                        }
                    },
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.to_string())
    }

    #[test]
    fn parses_every_placeholder_and_escape() {
        let cases: Vec<(&str, Vec<Piece>)> = vec![
            ("plain", vec![text("plain")]),
            ("", vec![]),
            (
                "--in={inputs.blocks}",
                vec![text("--in="), Piece::Input("blocks".into())],
            ),
            ("{out}/x.jsonl", vec![Piece::Out, text("/x.jsonl")]),
            ("{outputs.kept}", vec![Piece::Output("kept".into())]),
            ("{params}{seed}", vec![Piece::Params, Piece::Seed]),
            (
                "python3 {repo}/scripts/f.py --x",
                vec![
                    text("python3 "),
                    Piece::Repo("scripts/f.py".into()),
                    text(" --x"),
                ],
            ),
            (
                "{repo}/a:{repo}/b/",
                vec![Piece::Repo("a".into()), text(":"), Piece::Repo("b".into())],
            ),
            ("{{json}}", vec![text("{json}")]),
            ("awk '{{print $1}}'", vec![text("awk '{print $1}'")]),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_placeholder() {
        for (input, needle) in [
            ("{input.blocks}", "unknown placeholder `{input.blocks}`"),
            ("{inputs.}", "unknown placeholder"),
            ("{OUT}", "unknown placeholder"),
            ("awk '{print $1}'", "unknown placeholder `{print $1}`"),
            ("{out", "is not closed"),
            ("a}b", "closes nothing"),
            ("{repo}", "must be followed by `/PATH`"),
            ("{repo}/ x", "must be followed by a path"),
        ] {
            let error = parse(input).unwrap_err();
            assert!(error.contains(needle), "{input}: {error}");
        }
    }

    #[test]
    fn display_writes_placeholders_back() {
        let pieces = parse("a {inputs.x} {repo}/s.py {out}").unwrap();
        let back: String = pieces.iter().map(ToString::to_string).collect();
        assert_eq!(back, "a {inputs.x} {repo}/s.py {out}");
    }
}
