//! The import rule of ARCHITECTURE.md, checked: every `crate::…` path (and every
//! `super::…` path that climbs out of its top-level module) in `src/**/*.rs` and
//! `crates/ml/src/**/*.rs` (the runner and xp-ml, whose modules the runner re-exports
//! under the same names) must be
//! allowed by the table "Which module may import which" of ARCHITECTURE.md, and the
//! table itself must have no cycle. The table is parsed from the Markdown, so the
//! document and the check cannot drift. Comments and string literals are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The heading of the table in ARCHITECTURE.md.
const TABLE_HEADING: &str = "## Which module may import which";

/// The allowed imports: each top-level module of `src/` and the modules it may use.
type Rule = BTreeMap<String, BTreeSet<String>>;

/// Parses the table under [`TABLE_HEADING`]: rows `` | `module` | role | `a`, `b` | ``
/// (the last cell lists what the module may import; `—` for nothing).
fn parse_rule(markdown: &str) -> Result<Rule, String> {
    let start = markdown
        .find(TABLE_HEADING)
        .ok_or_else(|| format!("ARCHITECTURE.md has no heading `{TABLE_HEADING}`"))?;
    let mut rule = Rule::new();
    let mut in_table = false;
    for line in markdown[start..].lines().skip(1) {
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(module) = ticked(cells[0]).into_iter().next() else {
            continue; // the header and its separator
        };
        let allowed = ticked(cells.last().expect("a row has cells"));
        if rule.insert(module.clone(), allowed).is_some() {
            return Err(format!("ARCHITECTURE.md lists `{module}` twice"));
        }
    }
    if rule.is_empty() {
        return Err("ARCHITECTURE.md's module table has no rows".into());
    }
    for (module, allowed) in &rule {
        for target in allowed {
            if !rule.contains_key(target) {
                return Err(format!(
                    "ARCHITECTURE.md: `{module}` may import `{target}`, which has no row"
                ));
            }
        }
    }
    Ok(rule)
}

/// The words between backticks in a table cell.
fn ticked(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// A cycle among the modules of the rule, if there is one (as `a → b → … → a`).
fn find_cycle(rule: &Rule) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        rule: &Rule,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in rule.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, rule, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    rule.keys()
        .find_map(|m| visit(m, rule, &mut done, &mut Vec::new()))
}

/// The source with comments and the contents of string and char literals blanked
/// out (newlines kept, so line numbers stay right).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while j < chars.len() && !chars[j..].starts_with(&closing) {
                out.push(blank(chars[j]));
                j += 1;
            }
            out.push_str("\"\"");
            i = j + closing.len();
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x' or '\n', '\''); a lifetime has no closing quote.
            let mut j = i + 1;
            if chars.get(j) == Some(&'\\') {
                j += 2;
            } else {
                j += 1;
            }
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// One import of another top-level module: the line and the module.
#[derive(Debug, PartialEq, Eq)]
struct Import {
    line: usize,
    module: String,
}

/// The top-level modules `source` uses, given the module path of the file
/// (`["exec", "slurm", "submit"]` for src/exec/slurm/submit.rs). Inline `mod x { … }`
/// blocks are followed, so `super::` is resolved against the right module.
fn imports_of(source: &str, file_module: &[String]) -> Vec<Import> {
    let code = code_only(source);
    let chars: Vec<char> = code.chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let word_at = |at: usize| -> String {
        chars[at..]
            .iter()
            .take_while(|c| is_ident(**c))
            .collect::<String>()
    };
    let starts_word = |at: usize| at == 0 || !(is_ident(chars[at - 1]) || chars[at - 1] == ':');
    let mut imports = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    // Inline modules: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => line += 1,
            '{' => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
            }
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            ';' => pending_mod = None,
            _ => {}
        }
        if !is_ident(c) || !starts_word(i) {
            i += 1;
            continue;
        }
        let word = word_at(i);
        let after = i + word.len();
        if word == "mod" {
            let rest: String = chars[after..].iter().collect();
            let name = rest.trim_start();
            let name: String = name.chars().take_while(|c| is_ident(*c)).collect();
            pending_mod = Some(name);
            i = after;
            continue;
        }
        let target = match word.as_str() {
            "crate" => Some(after),
            "super" => {
                // Climb: the module path of this point, minus one per `super`.
                let mut module: Vec<String> = file_module.to_vec();
                module.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut at = i;
                let mut climbed = 0;
                while chars[at..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                    climbed += 1;
                    at += "super::".len();
                }
                if climbed > 0 && climbed >= module.len() {
                    Some(at - 2)
                } else {
                    // `pub(super)`, or a path inside the top-level module.
                    i = at.max(after);
                    continue;
                }
            }
            _ => None,
        };
        let Some(at) = target else {
            i = after;
            continue;
        };
        if chars[at..].starts_with(&[':', ':']) {
            let at = at + 2;
            let mut modules = Vec::new();
            if chars.get(at) == Some(&'{') {
                // `crate::{a::X, b}`: every top-level name in the braces.
                let mut nesting = 0;
                let mut j = at;
                let mut expect_name = true;
                while j < chars.len() {
                    match chars[j] {
                        '{' => {
                            nesting += 1;
                            expect_name = nesting == 1;
                        }
                        '}' => {
                            nesting -= 1;
                            if nesting == 0 {
                                break;
                            }
                        }
                        ',' if nesting == 1 => expect_name = true,
                        ch if is_ident(ch) && expect_name && nesting == 1 => {
                            modules.push(word_at(j));
                            expect_name = false;
                            j += word_at(j).len();
                            continue;
                        }
                        ch if !ch.is_whitespace() && nesting == 1 => expect_name = false,
                        _ => {}
                    }
                    j += 1;
                }
            } else {
                modules.push(word_at(at));
            }
            for module in modules.into_iter().filter(|m| !m.is_empty()) {
                imports.push(Import { line, module });
            }
        }
        i = after;
    }
    imports
}

/// The module path of a file under `src/`: src/exec/slurm/mod.rs → exec, slurm.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("src/ is readable").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import the rule forbids, as `file:line: a → b (message)`; and the modules of
/// `src` (a crate's source folder) that have no row.
fn violations(src: &Path, rule: &Rule) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    let mut modules = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src/");
        let path = module_path(relative);
        // lib.rs declares the modules and main.rs is the binary: neither is a module.
        let Some(top) = path
            .first()
            .filter(|t| !matches!(t.as_str(), "lib" | "main"))
        else {
            continue;
        };
        modules.insert(top.clone());
        let source = fs::read_to_string(&file).expect("source is UTF-8");
        for import in imports_of(&source, &path) {
            if &import.module == top {
                continue;
            }
            let allowed = rule.get(top).is_some_and(|a| a.contains(&import.module));
            if !allowed {
                found.push(format!(
                    "{}:{}: `{top}` imports `{}`, which ARCHITECTURE.md's table does not allow",
                    file.display(),
                    import.line,
                    import.module
                ));
            }
        }
    }
    for module in modules {
        if !rule.contains_key(&module) {
            found.push(format!(
                "{}: a top-level module with no row in ARCHITECTURE.md's table",
                src.join(&module).display()
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn the_rule() -> Rule {
        let text = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
        parse_rule(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The source folders of the two crates: the runner's and xp-ml's.
    fn sources() -> [PathBuf; 2] {
        [root().join("src"), root().join("crates/ml/src")]
    }

    #[test]
    fn every_import_is_allowed_by_architecture_md() {
        let rule = the_rule();
        let found: Vec<String> = sources()
            .iter()
            .flat_map(|src| violations(src, &rule))
            .collect();
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    /// The runner compiles no backend-generic code: it calls xp-ml's `work` functions,
    /// which pick the backend and return values that do not name it. A backend type
    /// parameter here would compile the model code again, in this crate.
    #[test]
    fn the_runner_leaves_backend_generic_work_to_xp_ml() {
        let mut files = Vec::new();
        rust_files(&root().join("src"), &mut files);
        let this_file = root().join("src/architecture.rs");
        let generic = [
            "XpBackend",
            "XpAutodiffBackend",
            "BackendTask",
            "dispatch(",
            "burn::",
        ];
        let mut found = Vec::new();
        for file in files.iter().filter(|f| **f != this_file) {
            let code = code_only(&fs::read_to_string(file).expect("source is UTF-8"));
            for (n, line) in code.lines().enumerate() {
                if let Some(word) = generic.iter().find(|w| line.contains(*w)) {
                    found.push(format!("{}:{}: {word}", file.display(), n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "backend-generic code in the runner (move it behind crates/ml/src/work.rs):\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_module_graph_has_no_cycle() {
        if let Some(cycle) = find_cycle(&the_rule()) {
            panic!(
                "ARCHITECTURE.md allows a cycle between top-level modules: {}",
                cycle.join(" → ")
            );
        }
    }

    #[test]
    fn a_forbidden_import_is_caught() {
        let rule = parse_rule(
            "## Which module may import which\n\n| Module | Role | May import |\n|---|---|---|\n\
             | `steps` | kinds | `model` |\n| `model` | OPT | — |\n| `exec` | runs | `steps` |\n",
        )
        .unwrap();
        assert!(find_cycle(&rule).is_none());
        let source = "use crate::model::Opt;\nuse crate::exec::events::RunEvent;\n";
        let imports = imports_of(source, &["steps".into(), "context".into()]);
        let modules: Vec<_> = imports
            .iter()
            .map(|i| (i.line, i.module.as_str()))
            .collect();
        assert_eq!(modules, [(1, "model"), (2, "exec")]);
        assert!(!rule["steps"].contains("exec"));
    }

    #[test]
    fn a_cycle_in_the_table_is_caught() {
        let rule = parse_rule(
            "## Which module may import which\n\n| Module | Role | May import |\n|---|---|---|\n\
             | `spec` | s | `steps` |\n| `steps` | k | `exec` |\n| `exec` | e | `spec` |\n",
        )
        .unwrap();
        assert_eq!(
            find_cycle(&rule).unwrap(),
            ["exec", "spec", "steps", "exec"]
        );
    }

    #[test]
    fn paths_are_read_from_code_not_from_comments_or_strings() {
        let source = r##"
//! See [`crate::exec`].
/* crate::plan */
fn f() -> &'static str { let _c = '"'; "crate::store" }
const R: &str = r#"crate::cli"#;
use crate::{data::Blocks, tokenizer};
mod tests {
    use super::*;
    use super::super::model::Opt;
}
pub(super) fn g() { super::eval::x(); $crate::digest::y(); }
"##;
        let imports = imports_of(source, &["steps".into()]);
        let modules: Vec<_> = imports.iter().map(|i| i.module.as_str()).collect();
        // `super::*` in `steps::tests` is `steps`; `super::super::model` is `crate::model`;
        // `super::eval` from `steps` is `crate::eval`.
        assert_eq!(modules, ["data", "tokenizer", "model", "eval", "digest"]);
        assert_eq!(imports[2].line, 9);
    }

    #[test]
    fn module_paths_follow_the_file_tree() {
        assert_eq!(
            module_path(Path::new("exec/slurm/mod.rs")),
            ["exec", "slurm"]
        );
        assert_eq!(module_path(Path::new("digest.rs")), ["digest"]);
    }
}
