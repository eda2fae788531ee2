//! `command`: runs a program of the user's (a script, a tool) as a step. Its
//! inputs, parameters and outputs are declared, so it is cached, planned and
//! published like any built-in kind, and its outputs can feed them.
//!
//! The program runs with a clean environment (see [`environment`]), in a fresh
//! working directory, and writes into a private directory; only the outputs it
//! declares are published, with its log.

mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::context::{StepContext, StepError, StepOutcome};
use super::{InputRef, KindParams, ParamProblem, ResourceHint};
use template::Piece;

/// The program's output and error streams, together, in the entry.
pub const LOG_FILE: &str = "command.log";
/// The output that names [`LOG_FILE`].
const LOG_OUTPUT: &str = "log";
/// Lines of the log a failure shows.
const TAIL_LINES: usize = 20;

/// Runs a program: `argv` with placeholders for its inputs, outputs and
/// parameters, in a clean environment; publishes the outputs it declares and its log.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The program and its arguments, run directly (a shell only when written:
    /// `["sh", "-c", "..."]`). Placeholders: `{inputs.NAME}` (an input's path),
    /// `{outputs.NAME}` (where to write a declared output), `{out}` (the folder
    /// the outputs go in), `{params}` (a JSON file of `params`), `{seed}`,
    /// `{repo}/PATH` (a repository path inside a `file:` input); `{{` and `}}`
    /// are braces. The program runs from PATH, in a fresh empty folder.
    pub argv: Vec<String>,
    /// Named inputs: other steps' outputs (`"blocks.train"`), sources, or files and
    /// folders of the repository (`"file:scripts/filter.py"`: the git work tree
    /// holding the experiment file, else its folder). Each one's content is in the
    /// key, so editing a script reruns the step.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputRef>,
    /// Parameters for the program: written to the JSON file `{params}` (also
    /// `$XP_PARAMS`), and each one as `$XP_PARAM_NAME` (a string as it is, other
    /// values as JSON).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Environment variables to set (values may hold placeholders). Only PATH and
    /// HOME pass through from xp's environment; see docs/dsl.md.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The outputs the program must write, by name: a path inside `{out}`, or
    /// `{ path = "...", format = "blocks" }` to have xp check a format that other
    /// kinds read (`blocks`, `model`: an HF model folder) before publishing. A
    /// missing output fails the step; files not declared are not published.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputDecl>,
    /// The program's version, as you choose to name it (`"filter 2"`, a git tag):
    /// the program itself is in the key only through `file:` inputs, so change
    /// this when a tool on PATH changes in a way that alters results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One declared output: a path, or a path and a format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OutputDecl {
    /// A path inside the output folder (a file or a folder), in any format.
    Path(String),
    /// A path and the format xp checks before publishing.
    Typed(TypedOutput),
}

/// `{ path = "kept.blocks", format = "blocks" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypedOutput {
    /// A path inside the output folder.
    pub path: String,
    #[serde(default)]
    pub format: OutputFormat,
}

/// Written by hand: serde's untagged enums say only that no variant matched.
impl<'de> Deserialize<'de> for OutputDecl {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OutputDecl;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a path (`\"kept.jsonl\"`) or a table (`{ path = \"kept.blocks\", format = \"blocks\" }`)",
                )
            }

            fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<OutputDecl, E> {
                Ok(OutputDecl::Path(path.to_string()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<OutputDecl, A::Error> {
                let de = serde::de::value::MapAccessDeserializer::new(map);
                TypedOutput::deserialize(de).map(OutputDecl::Typed)
            }
        }
        de.deserialize_any(Visitor)
    }
}

impl OutputDecl {
    pub fn path(&self) -> &str {
        match self {
            OutputDecl::Path(path) | OutputDecl::Typed(TypedOutput { path, .. }) => path,
        }
    }

    fn format(&self) -> OutputFormat {
        match self {
            OutputDecl::Path(_) => OutputFormat::Any,
            OutputDecl::Typed(typed) => typed.format,
        }
    }
}

/// What an output must be for the kinds that read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Anything (not checked).
    #[default]
    Any,
    /// A block file, as `tokenize` and `synthesize` write and `finetune`,
    /// `evaluate` and `synthesize` read.
    Blocks,
    /// A model folder in HF layout (`config.json` of an OPT model and
    /// `model.safetensors` or `pytorch_model.bin`), as `finetune` writes.
    Model,
}

impl OutputFormat {
    fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Any => "any",
            OutputFormat::Blocks => "blocks",
            OutputFormat::Model => "model",
        }
    }
}

impl KindParams for Params {
    const KIND: &'static str = "command";
    const VERSION: u32 = 1;
    // The program gets the seed ($XP_SEED, {seed}), so its results may depend on it.
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = false;
    const RESOURCES: ResourceHint = ResourceHint::DATA;
    input_slots!(inputs);

    fn outputs(&self) -> Vec<(String, String)> {
        let mut outputs: Vec<(String, String)> = self
            .outputs
            .iter()
            .map(|(name, decl)| (name.clone(), decl.path().to_string()))
            .collect();
        outputs.push((LOG_OUTPUT.into(), LOG_FILE.into()));
        outputs
    }

    fn check(&self) -> Result<(), ParamProblem> {
        let problem = |key: &'static str, message: String| ParamProblem { key, message };
        if self.argv.first().is_none_or(|p| p.trim().is_empty()) {
            let message = "`argv` needs at least the program: `argv = [\"python3\", \"{repo}/scripts/x.py\"]`";
            return Err(problem("argv", message.into()));
        }
        let groups = [
            ("inputs", "input", "XP_INPUT_", names(self.inputs.keys())),
            (
                "params",
                "parameter",
                "XP_PARAM_",
                names(self.params.keys()),
            ),
            (
                "outputs",
                "output",
                "XP_OUTPUT_",
                names(self.outputs.keys()),
            ),
        ];
        for (key, what, prefix, names) in groups {
            // Each name becomes a variable: two that differ only in case or in
            // `-` against `_` would be one.
            let mut variables = BTreeMap::new();
            for name in names {
                check_name(name, what).map_err(|m| problem(key, m))?;
                let variable = format!("{prefix}{}", variable_part(name));
                if let Some(other) = variables.insert(variable.clone(), name) {
                    let message = format!(
                        "{what}s `{other}` and `{name}` would both be ${variable}; rename one"
                    );
                    return Err(problem(key, message));
                }
            }
        }
        self.check_outputs().map_err(|m| problem("outputs", m))?;
        for (name, value) in &self.env {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                let message = format!(
                    "`{name}` is not an environment variable name (letters, digits and `_`)"
                );
                return Err(problem("env", message));
            }
            if name.starts_with("XP_") {
                let message =
                    format!("`{name}`: names starting with `XP_` are set by xp (docs/dsl.md)");
                return Err(problem("env", message));
            }
            self.check_template(value)
                .map_err(|m| problem("env", format!("`{name}`: {m}")))?;
        }
        for (i, arg) in self.argv.iter().enumerate() {
            self.check_template(arg)
                .map_err(|m| problem("argv", format!("argv[{i}] `{arg}`: {m}")))?;
        }
        Ok(())
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    keys.map(String::as_str).collect()
}

/// Input, output and parameter names go into placeholders and variable names.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}` may only hold letters, digits, `_` and `-`"
        ))
    }
}

/// `$XP_PARAM_NAME` of parameter `name`.
fn param_variable(name: &str) -> String {
    format!("XP_PARAM_{}", variable_part(name))
}

fn variable_part(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Whether a relative path has only plain names (no `.`, `..`, root).
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.ends_with('/')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Whether repository path `inner` is `outer` or lies inside it.
fn path_within(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Params {
    fn check_outputs(&self) -> Result<(), String> {
        for (name, decl) in &self.outputs {
            if name == LOG_OUTPUT {
                return Err(format!(
                    "output `{LOG_OUTPUT}` is the program's log ({LOG_FILE}); name yours differently"
                ));
            }
            let path = decl.path();
            if !is_plain_relative(path) {
                return Err(format!(
                    "output `{name}`: `{path}` must be a path inside the output folder, like \
                     `kept.jsonl` or `model/` without the slash (no `.`, `..` or leading `/`)"
                ));
            }
            if path_within(path, LOG_FILE) {
                return Err(format!(
                    "output `{name}`: `{LOG_FILE}` is where xp writes the program's log"
                ));
            }
        }
        for (a, da) in &self.outputs {
            for (b, db) in &self.outputs {
                if a < b && (path_within(da.path(), db.path()) || path_within(db.path(), da.path()))
                {
                    return Err(format!(
                        "outputs `{a}` ({}) and `{b}` ({}) overlap; give each its own path",
                        da.path(),
                        db.path()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every placeholder of `text` names something declared.
    fn check_template(&self, text: &str) -> Result<(), String> {
        let files: Vec<&str> = self
            .inputs
            .values()
            .filter_map(InputRef::file_path)
            .collect();
        for piece in template::parse(text)? {
            match piece {
                Piece::Input(name) if !self.inputs.contains_key(&name) => {
                    return Err(format!(
                        "`{{inputs.{name}}}` names no input; the inputs are {}",
                        names_of(self.inputs.keys())
                    ));
                }
                Piece::Output(name) if !self.outputs.contains_key(&name) => {
                    return Err(format!(
                        "`{{outputs.{name}}}` names no output; the outputs are {}",
                        names_of(self.outputs.keys())
                    ));
                }
                Piece::Repo(path) if !files.iter().any(|f| path_within(&path, f)) => {
                    return Err(format!(
                        "`{{repo}}/{path}` is not a declared input, so its content would not be \
                         in the key (editing it would not rerun the step); declare it, e.g. \
                         `inputs = {{ script = \"file:{path}\" }}` (a folder holding it also \
                         does), and write `{{inputs.script}}` or keep `{{repo}}/{path}`"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn names_of<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The folders a run uses, under the step's scratch directory (never published).
struct Folders {
    /// The working directory: fresh and empty.
    work: PathBuf,
    /// `{out}`: what the program writes; only declared outputs move on.
    out: PathBuf,
    tmp: PathBuf,
    params: PathBuf,
}

impl Folders {
    fn fresh(scratch: &Path) -> Result<Folders, StepError> {
        // The program runs elsewhere: every path it is given must be absolute.
        let scratch = std::path::absolute(scratch).map_err(StepError::io(scratch))?;
        let folders = Folders {
            work: scratch.join("work"),
            out: scratch.join("out"),
            tmp: scratch.join("tmp"),
            params: scratch.join("params.json"),
        };
        // A failed attempt leaves its files in scratch; a new one starts clean.
        for dir in [&folders.work, &folders.out, &folders.tmp] {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(StepError::io(dir))?;
            }
            fs::create_dir_all(dir).map_err(StepError::io(dir))?;
        }
        Ok(folders)
    }
}

/// What the placeholders stand for in this run.
struct Bindings<'a> {
    inputs: BTreeMap<&'a str, PathBuf>,
    outputs: BTreeMap<&'a str, PathBuf>,
    repo: Option<PathBuf>,
    folders: &'a Folders,
    seed: u64,
}

impl Bindings<'_> {
    fn fill(&self, text: &str) -> Result<String, StepError> {
        let pieces = template::parse(text).map_err(StepError::Invalid)?;
        let mut out = String::new();
        for piece in pieces {
            let path = |p: &Path| p.display().to_string();
            let value = match &piece {
                Piece::Text(text) => Some(text.clone()),
                Piece::Input(name) => self.inputs.get(name.as_str()).map(|p| path(p)),
                Piece::Output(name) => self.outputs.get(name.as_str()).map(|p| path(p)),
                Piece::Out => Some(path(&self.folders.out)),
                Piece::Params => Some(path(&self.folders.params)),
                Piece::Seed => Some(self.seed.to_string()),
                Piece::Repo(rel) => self.repo.as_ref().map(|r| path(&r.join(rel))),
            }
            .ok_or_else(|| {
                // The file was checked when loaded; reaching this is a bug.
                StepError::Invalid(format!("placeholder `{piece}` has no value"))
            })?;
            out.push_str(&value);
        }
        Ok(out)
    }
}

/// The program's environment: nothing of xp's but PATH (to find programs) and
/// HOME (which many tools need to start); the rest is declared, so two runs of
/// the same key see the same variables.
fn environment(p: &Params, b: &Bindings<'_>) -> Result<BTreeMap<String, String>, StepError> {
    let mut env = BTreeMap::new();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            env.insert(name.to_string(), value.to_string_lossy().into_owned());
        }
    }
    let path = |p: &Path| p.display().to_string();
    // A fixed locale: sort orders and number formats do not follow the caller's.
    env.insert("LC_ALL".into(), "C".into());
    env.insert("TMPDIR".into(), path(&b.folders.tmp));
    // Python: a fixed hash seed (set iteration order) and no `__pycache__` written
    // into a `file:` folder, which would change its digest.
    env.insert("PYTHONHASHSEED".into(), (b.seed % (1 << 32)).to_string());
    env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    for (name, value) in &p.env {
        env.insert(name.clone(), b.fill(value)?);
    }
    env.insert("XP_SEED".into(), b.seed.to_string());
    env.insert("XP_OUT".into(), path(&b.folders.out));
    env.insert("XP_PARAMS".into(), path(&b.folders.params));
    for (name, input) in &b.inputs {
        env.insert(format!("XP_INPUT_{}", variable_part(name)), path(input));
    }
    for (name, output) in &b.outputs {
        env.insert(format!("XP_OUTPUT_{}", variable_part(name)), path(output));
    }
    for (name, value) in &p.params {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.insert(param_variable(name), text);
    }
    Ok(env)
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let folders = Folders::fresh(ctx.scratch_dir)?;
    let locations = ctx.input_list("inputs");
    if locations.len() != p.inputs.len() {
        return Err(StepError::Invalid(format!(
            "step `{}`: {} inputs declared but {} given (a bug in xp)",
            ctx.step,
            p.inputs.len(),
            locations.len()
        )));
    }
    let mut inputs = BTreeMap::new();
    let mut repo = None;
    for ((name, reference), location) in p.inputs.iter().zip(locations) {
        // Sources are relative to xp's working directory; the program's is another.
        let path = std::path::absolute(&location.path).map_err(StepError::io(&location.path))?;
        if let Some(rel) = reference.file_path() {
            // `file:a/b` is `<repo>/a/b`: the repository is that many folders up.
            let depth = Path::new(rel).components().count();
            repo = path.ancestors().nth(depth).map(Path::to_path_buf);
        }
        inputs.insert(name.as_str(), path);
    }
    let outputs: BTreeMap<&str, PathBuf> = p
        .outputs
        .iter()
        .map(|(name, decl)| (name.as_str(), folders.out.join(decl.path())))
        .collect();
    for path in outputs.values() {
        // So `{outputs.x}` at `a/b/x.jsonl` can be written without making `a/b`.
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(StepError::io(parent))?;
        }
    }
    let bindings = Bindings {
        inputs,
        outputs,
        repo,
        folders: &folders,
        seed: ctx.seed,
    };
    let params_text = serde_json::to_string_pretty(&p.params).expect("JSON values serialise");
    fs::write(&folders.params, params_text).map_err(StepError::io(&folders.params))?;
    let argv: Vec<String> = p
        .argv
        .iter()
        .map(|a| bindings.fill(a))
        .collect::<Result<_, _>>()?;
    let env = environment(p, &bindings)?;

    let log_path = ctx.out_path(LOG_FILE);
    let log = File::create(&log_path).map_err(StepError::io(&log_path))?;
    let log_err = log.try_clone().map_err(StepError::io(&log_path))?;
    let program = &argv[0];
    let mut child = Command::new(program)
        .args(&argv[1..])
        .env_clear()
        .envs(&env)
        .current_dir(&folders.work)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .map_err(|e| {
            StepError::Invalid(format!(
                "step `{}`: cannot start `{program}`: {e}; is it installed and on PATH ({})?",
                ctx.step,
                env.get("PATH").map(String::as_str).unwrap_or("unset")
            ))
        })?;
    let status = child.wait().map_err(StepError::io(program))?;
    if !status.success() {
        let kept = keep_log(&log_path, ctx.scratch_dir);
        return Err(StepError::Invalid(format!(
            "step `{}`: `{}` {}; the last lines of its output:\n{}{kept}",
            ctx.step,
            argv.join(" "),
            describe_status(&status),
            tail(&log_path)
        )));
    }

    let missing: Vec<String> = p
        .outputs
        .iter()
        .filter(|(name, _)| fs::symlink_metadata(&bindings.outputs[name.as_str()]).is_err())
        .map(|(name, decl)| format!("`{name}` ({})", decl.path()))
        .collect();
    if !missing.is_empty() {
        let kept = keep_log(&log_path, ctx.scratch_dir);
        return Err(StepError::Invalid(format!(
            "step `{}`: `{program}` exited with 0 but did not write the declared output(s) {} \
             into {{out}}; it wrote {}. Nothing was published.{kept}",
            ctx.step,
            missing.join(", "),
            written(&folders.out)
        )));
    }
    for (name, decl) in &p.outputs {
        let from = &bindings.outputs[name.as_str()];
        check_format(decl.format(), from).map_err(|why| {
            StepError::Invalid(format!(
                "step `{}`: output `{name}` ({}) has `format = \"{}\"` but {why}",
                ctx.step,
                decl.path(),
                decl.format().as_str()
            ))
        })?;
        let to = ctx.out_path(decl.path());
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(StepError::io(parent))?;
        }
        fs::rename(from, &to).map_err(StepError::io(from))?;
    }
    Ok(StepOutcome {
        metrics: serde_json::json!({ "exit_code": 0, "outputs": p.outputs.len() }),
    })
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    "ended abnormally".to_string()
}

/// The staging folder (and the log in it) goes when a step fails: a copy stays in
/// the step's scratch folder, which survives failures. Says where, for the message.
fn keep_log(log: &Path, scratch: &Path) -> String {
    let kept = scratch.join(LOG_FILE);
    match fs::copy(log, &kept) {
        Ok(_) => format!("\nThe whole log: {}", kept.display()),
        Err(_) => String::new(),
    }
}

/// The last lines of the log, indented.
fn tail(log: &Path) -> String {
    let text = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "    (nothing)".to_string();
    }
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the program wrote into `{out}`, for a message (at most a few names).
fn written(out: &Path) -> String {
    let mut names = BTreeSet::new();
    if let Ok(entries) = fs::read_dir(out) {
        for entry in entries.flatten() {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if names.is_empty() {
        return "nothing there".to_string();
    }
    let shown: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(8);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Why `path` is not in `format`, if it is not.
fn check_format(format: OutputFormat, path: &Path) -> Result<(), String> {
    match format {
        OutputFormat::Any => Ok(()),
        OutputFormat::Blocks => crate::data::read_blocks(path)
            .map(|_| ())
            .map_err(|e| format!("is not a block file: {e}")),
        OutputFormat::Model => {
            crate::model::OptConfig::from_hf_json(&path.join("config.json"))
                .map_err(|e| format!("has no usable config.json: {e}"))?;
            if crate::model::WEIGHT_FILES
                .iter()
                .any(|f| path.join(f).is_file())
            {
                Ok(())
            } else {
                Err(format!(
                    "has none of {} beside its config.json",
                    crate::model::WEIGHT_FILES.join(", ")
                ))
            }
        }
    }
}
