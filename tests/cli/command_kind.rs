//! The `command` kind through the real binary, with real programs (`sh`, and
//! `python3` where present): caching, reruns when a script changes (and only
//! then), failures with the log's tail, declared and undeclared outputs, the
//! clean environment, feeding built-in kinds and being fed by them, `xp plan`,
//! `xp show`, `--rerun`, and the errors a file gets when it is loaded.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Project, events, stderr, stdout, steps_with};
use serde_json::Value;

/// A script that copies its input into its declared output and leaves a file it
/// does not declare.
const COPY_SCRIPT: &str = r#"set -eu
echo "copying $1 to $2 (threshold $XP_PARAM_THRESHOLD)"
tr a-z A-Z < "$1" > "$2"
echo "scratch" > "$XP_OUT/undeclared.txt"
"#;

const COPY: &str = r#"[experiment]
name = "command"

[sources]
text = "notes.txt"

[steps.upper]
kind = "command"
argv = ["sh", "{inputs.script}", "{inputs.text}", "{outputs.upper}"]
inputs = { text = "text", script = "file:scripts/copy.sh" }
params = { threshold = 0.5 }
outputs = { upper = "upper.txt" }
"#;

fn project(experiment: &str) -> Project {
    let p = Project::new(8);
    std::fs::create_dir_all(p.path().join("scripts")).unwrap();
    p.write("scripts/copy.sh", COPY_SCRIPT);
    p.write("scripts/unrelated.sh", "echo unrelated\n");
    p.write("notes.txt", "one line\nanother line\n");
    p.write("x.toml", experiment);
    p
}

/// `xp show x.toml --json`'s row for `step`.
fn show_row(p: &Project, step: &str) -> Value {
    let out = p.run(&["show", "x.toml", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("no row for {step}: {rows}"))
        .clone()
}

/// Where `xp show` says output `name` of `step` is.
fn output_path(p: &Project, step: &str, name: &str) -> PathBuf {
    let row = show_row(p, step);
    let output = row["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {row}"));
    PathBuf::from(output["path"].as_str().expect("published"))
}

/// Relative paths of every file under `dir`, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn python3() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_command_step_runs_once_and_is_cached_after() {
    let p = project(COPY);
    let first = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&first, "step_started"), ["upper"]);
    let upper = output_path(&p, "upper", "upper");
    assert_eq!(
        std::fs::read_to_string(&upper).unwrap(),
        "ONE LINE\nANOTHER LINE\n"
    );

    let second = p.run_ok("x.toml", &[]);
    assert!(steps_with(&second, "step_started").is_empty());
    assert_eq!(steps_with(&second, "step_cached"), ["upper"]);
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(plan.contains("1 steps: 1 cached, 0 will run"), "{plan}");

    // `--rerun` runs it again, to the same key and bytes.
    let forced = p.run_ok("x.toml", &["--rerun", "upper"]);
    assert_eq!(steps_with(&forced, "step_started"), ["upper"]);
    assert_eq!(output_path(&p, "upper", "upper"), upper);
    assert_eq!(
        std::fs::read_to_string(&upper).unwrap(),
        "ONE LINE\nANOTHER LINE\n"
    );
}

#[test]
fn editing_the_script_reruns_the_step_and_plan_says_why() {
    let p = project(COPY);
    p.run_ok("x.toml", &[]);

    // Files it does not declare, and rewriting the script with the same bytes,
    // change nothing.
    p.write("scripts/unrelated.sh", "echo changed\n");
    p.write("scripts/copy.sh", COPY_SCRIPT);
    let events = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&events, "step_cached"), ["upper"]);

    p.write("scripts/copy.sh", &format!("{COPY_SCRIPT}echo edited\n"));
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    let line = plan
        .lines()
        .find(|l| l.contains(" upper "))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(line.contains("run"), "{plan}");
    assert!(
        line.contains("input `inputs.script` (file:scripts/copy.sh) changed: source "),
        "{plan}"
    );
    assert!(plan.contains("1 steps: 0 cached, 1 will run"), "{plan}");
    let events = p.run_ok("x.toml", &[]);
    assert_eq!(steps_with(&events, "step_started"), ["upper"]);
    let log = std::fs::read_to_string(output_path(&p, "upper", "log")).unwrap();
    assert!(log.contains("edited"), "{log}");
}

#[test]
fn undeclared_files_are_not_published_and_the_log_is() {
    let p = project(COPY);
    p.run_ok("x.toml", &[]);
    let upper = output_path(&p, "upper", "upper");
    let out_dir = upper.parent().unwrap();
    assert_eq!(files_under(out_dir), ["command.log", "upper.txt"]);
    let log = std::fs::read_to_string(out_dir.join("command.log")).unwrap();
    assert!(log.contains("copying"), "{log}");
    assert!(log.contains("(threshold 0.5)"), "{log}");

    let row = show_row(&p, "upper");
    assert_eq!(row["kind"], "command");
    assert_eq!(row["status"], "cached");
    assert_eq!(row["metrics"]["exit_code"], 0, "{row}");
    let text = stdout(&p.run(&["show", "x.toml"]));
    assert!(text.contains("upper = "), "{text}");
    assert!(text.contains("log = "), "{text}");
}

#[test]
fn a_failing_program_fails_the_step_with_the_tail_of_its_log() {
    let p = project(
        r#"[experiment]
name = "fails"

[steps.bad]
kind = "command"
argv = ["sh", "-c", "for i in $(seq 1 40); do echo line $i; done; echo 'cannot parse row 7' >&2; exit 3"]
outputs = { x = "x.txt" }
"#,
    );
    let out = p.run(&["run", "x.toml", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ev = events(&out);
    assert_eq!(steps_with(&ev, "step_failed"), ["bad"]);
    let failure = ev.iter().find(|e| e["event"] == "step_failed").unwrap();
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains("exited with status 3"), "{error}");
    assert!(error.contains("cannot parse row 7"), "{error}");
    assert!(error.contains("line 40"), "{error}");
    // The tail, not the whole log; the whole log is kept and named.
    assert!(!error.contains("line 5\n"), "{error}");
    let kept = error
        .lines()
        .find_map(|l| l.strip_prefix("The whole log: "))
        .unwrap_or_else(|| panic!("{error}"));
    assert!(std::fs::read_to_string(kept).unwrap().contains("line 1\n"));
    assert!(p.entries().is_empty());
}

#[test]
fn a_program_that_cannot_start_is_named() {
    let p = project(
        r#"[experiment]
name = "absent"

[steps.absent]
kind = "command"
argv = ["xp-no-such-program", "--flag"]
"#,
    );
    let out = p.run(&["run", "x.toml", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ev = events(&out);
    let failure = ev.iter().find(|e| e["event"] == "step_failed").unwrap();
    let error = failure["error"].as_str().unwrap();
    assert!(
        error.contains("cannot start `xp-no-such-program`"),
        "{error}"
    );
    assert!(error.contains("is it installed and on PATH"), "{error}");
    assert!(p.entries().is_empty());
}

#[test]
fn a_missing_declared_output_fails_the_step_and_publishes_nothing() {
    let p = project(
        r#"[experiment]
name = "missing"

[steps.half]
kind = "command"
argv = ["sh", "-c", "echo a > {outputs.a}; echo other > {out}/other.txt"]
outputs = { a = "a.txt", b = "b.txt" }
"#,
    );
    let out = p.run(&["run", "x.toml", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ev = events(&out);
    let failure = ev.iter().find(|e| e["event"] == "step_failed").unwrap();
    let error = failure["error"].as_str().unwrap();
    assert!(
        error.contains("did not write the declared output(s) `b` (b.txt)"),
        "{error}"
    );
    assert!(error.contains("`a.txt`, `other.txt`"), "{error}");
    assert!(p.entries().is_empty());
    let row = show_row(&p, "half");
    assert_eq!(row["status"], "not run");
}

#[test]
fn the_program_gets_a_clean_declared_environment_and_a_fresh_folder() {
    let p = project(
        r#"[experiment]
name = "env"
seed = 7

[steps.env]
kind = "command"
argv = ["sh", "-c", "env | sort > {outputs.env}; ls -A > {outputs.cwd}; echo {seed} > {outputs.seed}"]
env = { GREETING = "hello {seed}" }
params = { max-len = 3, mode = "fast", list = [1, 2] }
outputs = { env = "env.txt", cwd = "cwd.txt", seed = "seed.txt" }
"#,
    );
    let out = p
        .xp(&["run", "x.toml", "--json"])
        .env("XP_LEAK_TEST", "leaked")
        .env("LEAKY", "leaked")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = std::fs::read_to_string(output_path(&p, "env", "env")).unwrap();
    assert!(!env.contains("leaked"), "{env}");
    for expected in [
        "GREETING=hello 7\n",
        "XP_SEED=7\n",
        "XP_PARAM_MAX_LEN=3\n",
        "XP_PARAM_MODE=fast\n",
        "XP_PARAM_LIST=[1,2]\n",
        "PYTHONHASHSEED=7\n",
        "LC_ALL=C\n",
    ] {
        assert!(env.contains(expected), "{expected} in {env}");
    }
    assert!(env.contains("\nPATH="), "{env}");
    assert_eq!(
        std::fs::read_to_string(output_path(&p, "env", "cwd")).unwrap(),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(output_path(&p, "env", "seed")).unwrap(),
        "7\n"
    );
    // The seed is in the key: another seed is another entry.
    let plan = stdout(&p.run(&["plan", "x.toml", "--set", "experiment.seed=8"]));
    assert!(plan.contains("seed: 7 → 8"), "{plan}");
}

#[test]
fn a_command_in_a_loop_reads_the_previous_generation() {
    let p = project(
        r#"[experiment]
name = "loop"

[steps.start]
kind = "command"
argv = ["sh", "-c", "echo start > {outputs.text}"]
outputs = { text = "text.txt" }

[loop.gen]
count = 3
carry = { text = "start.text" }
next = { text = "grow.text" }

[loop.gen.steps.grow]
kind = "command"
argv = ["sh", "-c", "cat {inputs.previous} > {outputs.text}; echo more >> {outputs.text}"]
inputs = { previous = "carry.text" }
outputs = { text = "text.txt" }
"#,
    );
    let ev = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&ev, "step_started"),
        ["grow@0", "grow@1", "grow@2", "start"]
    );
    assert_eq!(
        std::fs::read_to_string(output_path(&p, "grow@2", "text")).unwrap(),
        "start\nmore\nmore\nmore\n"
    );
}

/// A python filter over a block file: keeps every `every`-th block (the format
/// is documented in docs/dsl.md: a 32-byte header, then the tokens).
const FILTER_PY: &str = r#"import json, os, struct, sys
src, dst = sys.argv[1], sys.argv[2]
every = json.load(open(os.environ["XP_PARAMS"]))["every"]
data = open(src, "rb").read()
magic, version, width, size, count = struct.unpack("<8sIIQQ", data[:32])
row = size * width
kept = [data[32 + i * row:32 + (i + 1) * row] for i in range(count) if i % every == 0]
with open(dst, "wb") as f:
    f.write(struct.pack("<8sIIQQ", magic, version, width, size, len(kept)))
    f.write(b"".join(kept))
print(f"kept {len(kept)} of {count} blocks")
"#;

/// tokenize → a python command (blocks in, blocks out) → evaluate.
const MIXED: &str = r#"[experiment]
name = "mixed"

[sources]
corpus = "corpus"

[steps.tok]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "tok.tokenizer"
block_size = 16

[steps.filter]
kind = "command"
argv = ["python3", "{repo}/scripts/filter.py", "{inputs.blocks}", "{outputs.kept}"]
inputs = { blocks = "blocks.train", script = "file:scripts/filter.py" }
params = { every = 2 }
outputs = { kept = { path = "kept.blocks", format = "blocks" } }
version = "filter 1"

[steps.init]
kind = "init"
tokenizer = "tok.tokenizer"
hidden = 16
layers = 1
heads = 2
ffn = 32
max_positions = 32

[steps.eval]
kind = "evaluate"
model = "init.model"
data = ["filter.kept", "blocks.train"]
batch_size = 4
forward_batch = 8
"#;

#[test]
fn a_python_command_between_tokenize_and_evaluate() {
    if !python3() {
        eprintln!("SKIPPED a_python_command_between_tokenize_and_evaluate: no python3 on PATH");
        return;
    }
    let p = project(MIXED);
    p.write("scripts/filter.py", FILTER_PY);
    let ev = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&ev, "step_started"),
        ["blocks", "eval", "filter", "init", "tok"]
    );
    let metrics = show_row(&p, "eval")["metrics"].clone();
    let all = metrics["blocks.train"]["blocks"].as_u64().unwrap();
    let kept = metrics["filter.kept"]["blocks"].as_u64().unwrap();
    assert!(all >= 4, "{metrics}");
    assert_eq!(kept, all.div_ceil(2), "{metrics}");
    let log = std::fs::read_to_string(output_path(&p, "filter", "log")).unwrap();
    assert_eq!(log.trim(), format!("kept {kept} of {all} blocks"));

    // Changing the filter's parameter reruns it and what reads it, not the rest.
    let set = ["--set", "steps.filter.params.every=3"];
    let plan = stdout(&p.run(&["plan", "x.toml", set[0], set[1]]));
    assert!(plan.contains("params.params.every: 2 → 3"), "{plan}");
    assert!(plan.contains("input `data`: `filter` will run"), "{plan}");
    let ev = p.run_ok("x.toml", &set);
    assert_eq!(steps_with(&ev, "step_started"), ["eval", "filter"]);

    // So does a new version of the tool.
    let set = ["--set", "steps.filter.version=filter 2"];
    let plan = stdout(&p.run(&["plan", "x.toml", set[0], set[1]]));
    assert!(
        plan.contains("params.version: \"filter 1\" → \"filter 2\""),
        "{plan}"
    );
}

#[test]
fn an_output_declared_as_blocks_must_be_a_block_file() {
    let p = project(
        r#"[experiment]
name = "format"

[steps.fake]
kind = "command"
argv = ["sh", "-c", "echo 'not blocks' > {outputs.kept}"]
outputs = { kept = { path = "kept.blocks", format = "blocks" } }
"#,
    );
    let out = p.run(&["run", "x.toml", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ev = events(&out);
    let failure = ev.iter().find(|e| e["event"] == "step_failed").unwrap();
    let error = failure["error"].as_str().unwrap();
    assert!(
        error.contains(
            "output `kept` (kept.blocks) has `format = \"blocks\"` but is not a block file"
        ),
        "{error}"
    );
    assert!(p.entries().is_empty());
}

#[test]
fn block_and_model_outputs_feed_built_in_kinds_without_python() {
    // `sh` and `cp` only: tokenize's blocks through a command into evaluate's
    // `data`, and init's model through another into its `model`.
    let experiment = MIXED
        .replace(
            r#"argv = ["python3", "{repo}/scripts/filter.py", "{inputs.blocks}", "{outputs.kept}"]"#,
            r#"argv = ["sh", "-c", "cp {inputs.blocks} {outputs.kept}"]"#,
        )
        .replace(", script = \"file:scripts/filter.py\"", "")
        // The model too: `init`'s HF folder through a command into `evaluate`.
        .replace("model = \"init.model\"", "model = \"copy.model\"")
        + r#"
[steps.copy]
kind = "command"
argv = ["cp", "-R", "{inputs.model}", "{outputs.model}"]
inputs = { model = "init.model" }
outputs = { model = { path = "model", format = "model" } }
"#;
    let p = project(&experiment);
    let ev = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&ev, "step_started"),
        ["blocks", "copy", "eval", "filter", "init", "tok"]
    );
    let metrics = show_row(&p, "eval")["metrics"].clone();
    assert_eq!(
        metrics["filter.kept"]["blocks"], metrics["blocks.train"]["blocks"],
        "{metrics}"
    );
    let model = output_path(&p, "copy", "model");
    assert!(model.join("config.json").is_file(), "{}", model.display());

    // A folder that is not a model is refused before anything reads it.
    let broken = experiment.replace(
        r#"argv = ["cp", "-R", "{inputs.model}", "{outputs.model}"]"#,
        r#"argv = ["sh", "-c", "mkdir {outputs.model}; cp {inputs.model}/config.json {outputs.model}/"]"#,
    );
    p.write("x.toml", &broken);
    let out = p.run(&["run", "x.toml", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let ev = events(&out);
    let failure = ev.iter().find(|e| e["event"] == "step_failed").unwrap();
    let error = failure["error"].as_str().unwrap();
    assert!(
        error.contains("has `format = \"model\"` but has none of model.safetensors"),
        "{error}"
    );
    assert_eq!(steps_with(&ev, "step_skipped"), ["eval"]);
}

/// `xp validate` on `experiment`: its stderr, asserting it failed.
fn invalid(experiment: &str) -> String {
    let p = project(experiment);
    let out = p.run(&["validate", "x.toml"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    stderr(&out)
}

#[test]
fn mistakes_are_errors_at_their_line_when_the_file_is_loaded() {
    let head = "[experiment]\nname = \"bad\"\n\n[steps.c]\nkind = \"command\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("{head}argv = [\"sh\", \"{{input.x}}\"]\n"),
            "x.toml:6:",
            "argv[1] `{input.x}`: unknown placeholder `{input.x}`",
        ),
        (
            format!(
                "{head}inputs = {{ data = \"file:d.txt\" }}\nargv = [\"cat\", \"{{inputs.dat}}\"]\n"
            ),
            "x.toml:7:",
            "`{inputs.dat}` names no input; the inputs are `data`",
        ),
        (
            format!("{head}argv = [\"python3\", \"{{repo}}/scripts/copy.sh\"]\n"),
            "x.toml:6:",
            "`{repo}/scripts/copy.sh` is not a declared input",
        ),
        (
            format!("{head}argv = [\"sh\", \"{{outputs.y}}\"]\noutputs = {{ x = \"x.txt\" }}\n"),
            "x.toml:6:",
            "`{outputs.y}` names no output; the outputs are `x`",
        ),
        (
            format!("{head}argv = [\"true\"]\noutputs = {{ x = \"../x.txt\" }}\n"),
            "x.toml:7:",
            "must be a path inside the output folder",
        ),
        (
            format!("{head}argv = [\"true\"]\noutputs = {{ log = \"mine.log\" }}\n"),
            "x.toml:7:",
            "output `log` is the program's log",
        ),
        (
            format!("{head}argv = [\"true\"]\ninputs = {{ s = \"file:../outside.sh\" }}\n"),
            "x.toml:7:",
            "`..` would leave the repository",
        ),
        (
            format!("{head}argv = [\"true\"]\nenv = {{ XP_SEED = \"1\" }}\n"),
            "x.toml:7:",
            "names starting with `XP_` are set by xp",
        ),
        (
            format!("{head}argv = [\"true\"]\nparams = {{ max-len = 1, MAX_LEN = 2 }}\n"),
            "x.toml:7:",
            "would both be $XP_PARAM_MAX_LEN",
        ),
        (
            format!("{head}argv = []\n"),
            "x.toml:6:",
            "`argv` needs at least the program",
        ),
        (
            format!(
                "{head}argv = [\"true\"]\noutputs = {{ x = {{ path = \"x\", fromat = \"blocks\" }} }}\n"
            ),
            "x.toml:7:",
            "unknown field `fromat`",
        ),
        (
            format!(
                "{head}argv = [\"true\"]\noutputs = {{ x = {{ path = \"x\", format = \"blocs\" }} }}\n"
            ),
            "x.toml:7:",
            "unknown variant `blocs`",
        ),
        (
            format!("{head}argv = [\"true\"]\noutputs = {{ x = 3 }}\n"),
            "x.toml:7:",
            "expected a path",
        ),
        (
            format!("{head}argv = [\"true\"]\ninputs = {{ s = \"blokcs.train\" }}\n"),
            "x.toml:7:",
            "there is no step `blokcs`",
        ),
    ];
    for (text, place, message) in cases {
        let error = invalid(&text);
        assert!(error.contains(place), "{place} in {error}\n--- for\n{text}");
        assert!(
            error.contains(message),
            "{message} in {error}\n--- for\n{text}"
        );
        assert!(error.contains("step `c`"), "{error}");
    }
    // A `file:` input that does not exist: the plan says which, where.
    let error = invalid(&format!(
        "{head}argv = [\"sh\", \"{{inputs.s}}\"]\ninputs = {{ s = \"file:scripts/nope.sh\" }}\n"
    ));
    assert!(error.contains("file:scripts/nope.sh"), "{error}");
    assert!(error.contains("x.toml:7:"), "{error}");
}

#[test]
fn file_paths_are_relative_to_the_git_work_tree_and_work_in_every_kind() {
    let p = project(COPY);
    // The experiment lives below the repository's root, as experiments/ does here.
    std::fs::create_dir(p.path().join(".git")).unwrap();
    std::fs::create_dir(p.path().join("experiments")).unwrap();
    p.write(
        "experiments/x.toml",
        r#"[experiment]
name = "nested"

[steps.tok]
kind = "tokenizer"
train_on = "file:corpus"
vocab_size = 300

[steps.upper]
kind = "command"
argv = ["sh", "{repo}/scripts/copy.sh", "{repo}/notes.txt", "{outputs.upper}"]
inputs = { scripts = "file:scripts", notes = "file:notes.txt" }
params = { threshold = 1 }
outputs = { upper = "upper.txt" }
"#,
    );
    let ev = p.run_ok("experiments/x.toml", &[]);
    assert_eq!(steps_with(&ev, "step_started"), ["tok", "upper"]);

    // A file of the `file:scripts` folder is in the key; the corpus is `tok`'s.
    p.write("scripts/unrelated.sh", "echo edited\n");
    let plan = stdout(&p.run(&["plan", "experiments/x.toml"]));
    assert!(
        plan.contains("input `inputs.scripts` (file:scripts) changed"),
        "{plan}"
    );
    assert!(plan.contains("2 steps: 1 cached, 1 will run"), "{plan}");
    let train = p.path().join("corpus/train.txt");
    let mut text = std::fs::read_to_string(&train).unwrap();
    text.push_str("one more row\n");
    std::fs::write(&train, text).unwrap();
    let plan = stdout(&p.run(&["plan", "experiments/x.toml"]));
    assert!(
        plan.contains("input `train_on` (file:corpus) changed"),
        "{plan}"
    );
    let ev = p.run_ok("experiments/x.toml", &[]);
    assert_eq!(steps_with(&ev, "step_started"), ["tok", "upper"]);
}
