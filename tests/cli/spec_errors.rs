//! Invalid experiment files: every error says what is wrong and exactly where.

use std::path::Path;

use xp::spec::{Location, SpecError, load_str};

/// Lines 1..=12 of a valid file; cases edit it.
const BASE: &str = r#"[experiment]
name = "mini"

[sources]
corpus = "data/corpus.txt"
opt = "hf:facebook/opt-125m"

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "opt"
block_size = 32
"#;

/// A loop whose steps tokenize what the previous generation tokenized.
const LOOP: &str = r#"
[loop.gen]
count = 3
carry = { data = "blocks.train" }
next = { data = "again.train" }

[loop.gen.steps.tok]
kind = "tokenizer"
train_on = "carry.data"

[loop.gen.steps.again]
kind = "tokenize"
data = "carry.data"
tokenizer = "tok.tokenizer"
"#;

fn error_of(text: &str, overrides: &[&str]) -> SpecError {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    match load_str(text, Path::new("x.toml"), &overrides) {
        Ok(_) => panic!("expected an error for:\n{text}\nwith {overrides:?}"),
        Err(e) => e,
    }
}

struct Case {
    name: &'static str,
    text: String,
    overrides: &'static [&'static str],
    /// A fragment of the first line of the message.
    message: &'static str,
    /// `x.toml:LINE:COL`, or `--set ...` for an override.
    at: &'static str,
    /// For overrides: the column in the override's text.
    override_col: Option<usize>,
}

fn case(name: &'static str, text: String, message: &'static str, at: &'static str) -> Case {
    Case {
        name,
        text,
        overrides: &[],
        message,
        at,
        override_col: None,
    }
}

/// Every kind, as the error lists them (the list grows as kinds are added).
fn kinds() -> String {
    xp::steps::KIND_NAMES
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn with_base(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn errors_name_the_problem_and_the_place() {
    let cases = vec![
        case(
            "malformed TOML",
            BASE.replace("block_size = 32", "block_size = "),
            "invalid TOML: ",
            "x.toml:12:14",
        ),
        case(
            "unknown top-level key",
            with_base("\n[stepz.other]\nkind = \"tokenize\"\n"),
            "unknown key `stepz` in the top level of the file, expected one of `experiment`, `sources`, `defaults`, `steps`, `loop`, `cache`, `sweep`",
            "x.toml:14:2",
        ),
        case(
            "unknown key in a step, with the valid ones",
            with_base("epochz = 3\n"),
            "unknown field `epochz` in step `blocks` (kind tokenize), expected one of `data`, `tokenizer`, `block_size`, `splits`, `grouping`, `rows_per_batch`, `text_field`",
            "x.toml:13:1",
        ),
        case(
            "unknown key in [experiment]",
            BASE.replace("name = \"mini\"", "name = \"mini\"\nseeed = 1"),
            "in [experiment]: unknown field `seeed`, expected one of `name`, `seed`, `seeds`, `backend`, `precision`, `description`",
            "x.toml:3:1",
        ),
        case(
            "wrong type, at the value",
            BASE.replace("block_size = 32", "block_size = \"big\""),
            "invalid type: string \"big\" for `block_size` in step `blocks` (kind tokenize), expected usize",
            "x.toml:12:14",
        ),
        case(
            "a source that is not a string",
            BASE.replace("opt = \"hf:facebook/opt-125m\"", "opt = 3"),
            "`sources.opt` must be a string, found an integer",
            "x.toml:6:7",
        ),
        case(
            "unknown backend",
            BASE.replace("name = \"mini\"", "name = \"mini\"\nbackend = \"tpu\""),
            "in [experiment]: unknown variant `tpu`, expected one of `ndarray`, `cuda`, `wgpu`",
            "x.toml:3:11",
        ),
        case(
            "unknown kind, with the valid ones",
            BASE.replace("kind = \"tokenize\"", "kind = \"tokenise\""),
            leak(format!(
                "unknown kind `tokenise` for step `blocks`, expected one of {}",
                kinds()
            )),
            "x.toml:9:8",
        ),
        case(
            "missing kind",
            BASE.replace("kind = \"tokenize\"\n", ""),
            "step `blocks` has no `kind`",
            "x.toml:8:8",
        ),
        case(
            "missing required parameter",
            BASE.replace("tokenizer = \"opt\"\n", ""),
            "missing field `tokenizer` in step `blocks` (kind tokenize)",
            "x.toml:8:8",
        ),
        case(
            "missing [experiment]",
            BASE.replace("[experiment]\nname = \"mini\"\n", ""),
            "missing [experiment] table",
            "x.toml:1:1",
        ),
        case(
            "dangling source reference, with a suggestion",
            BASE.replace("data = \"corpus\"", "data = \"corpsu\""),
            "step `blocks` refers to `corpsu` in `data`, but there is no source `corpsu` under [sources]; did you mean `corpus`?",
            "x.toml:10:8",
        ),
        case(
            "dangling output, listing the outputs",
            with_base(
                "\n[steps.more]\nkind = \"tokenize\"\ndata = \"corpus\"\ntokenizer = \"blocks.trian\"\n",
            ),
            "step `more` refers to `blocks.trian` in `tokenizer`, but step `blocks` (kind tokenize) has no output `trian`; its outputs are `train`, `validation`, `test`, `stats`; did you mean `blocks.train`?",
            "x.toml:17:13",
        ),
        case(
            "dangling step",
            with_base(
                "\n[steps.more]\nkind = \"tokenize\"\ndata = \"blokcs.train\"\ntokenizer = \"opt\"\n",
            ),
            "there is no step `blokcs`; did you mean `blocks.train`?",
            "x.toml:16:8",
        ),
        case(
            "invalid step name",
            with_base("\n[steps.\"bad name\"]\nkind = \"tokenize\"\n"),
            "invalid step name `bad name`",
            "x.toml:14:8",
        ),
        case(
            "duplicate step: a loop step named like a top-level step",
            with_base(
                &LOOP
                    .replace("[loop.gen.steps.again]", "[loop.gen.steps.blocks]")
                    .replace("again.train", "blocks.train"),
            ),
            "two steps are named `blocks` (the other one is at x.toml:8:8)",
            "x.toml:23:17",
        ),
        case(
            "`@*` outside a list",
            with_base(&format!(
                "{LOOP}\n[steps.after]\nkind = \"tokenize\"\ndata = \"again@*.train\"\ntokenizer = \"opt\"\n"
            )),
            "`again@*.train` in `data` of step `after` names every generation, so it may only appear inside a list",
            "x.toml:30:8",
        ),
        case(
            "a selection share outside (0, 1]",
            with_base(
                "\n[steps.sel]\nkind = \"select\"\nmodel = \"opt\"\ndata = \"blocks.train\"\nkeep = { lowest = 1.5 }\n",
            ),
            "a share of the blocks must be in (0, 1], got 1.5 for `keep` in step `sel` (kind select)",
            "x.toml:18:8",
        ),
        case(
            "an unknown selection rule",
            with_base(
                "\n[steps.sel]\nkind = \"select\"\nmodel = \"opt\"\ndata = \"blocks.train\"\nkeep = \"median\"\n",
            ),
            "unknown variant `median` for `keep` in step `sel` (kind select), expected one of `lowest`, `highest`, `below`, `above`, `resample`",
            "x.toml:18:8",
        ),
        case(
            "`@earlier` outside a list",
            with_base(&LOOP.replace(
                "data = \"carry.data\"\ntokenizer = \"tok.tokenizer\"",
                "data = \"again@earlier.train\"\ntokenizer = \"tok.tokenizer\"",
            )),
            "invalid reference `again@earlier.train` in `data` of step `again@0`: `@earlier` names every generation before this one (none in generation 0), so it may only appear inside a list",
            "x.toml:25:8",
        ),
        case(
            "`@earlier` outside its loop",
            with_base(&format!(
                "{LOOP}\n[steps.after]\nkind = \"tokenize\"\ndata = \"again@earlier.train\"\ntokenizer = \"opt\"\n"
            )),
            "invalid reference `again@earlier.train` in `data` of step `after`: `@earlier` (the generations before the current one) only has a meaning in the steps of loop `gen`, the loop of `again`",
            "x.toml:30:8",
        ),
        case(
            "a loop step named without a generation outside its loop",
            with_base(&format!(
                "{LOOP}\n[steps.after]\nkind = \"tokenize\"\ndata = \"again.train\"\ntokenizer = \"opt\"\n"
            )),
            "invalid reference `again.train` in `data` of step `after`: `again` is a step of loop `gen`: name one generation (`again@0.train`",
            "x.toml:30:8",
        ),
        case(
            "a generation out of range",
            with_base(&format!(
                "{LOOP}\n[steps.after]\nkind = \"tokenize\"\ndata = \"again@3.train\"\ntokenizer = \"opt\"\n"
            )),
            "loop `gen` has generations 0 to 2",
            "x.toml:30:8",
        ),
        case(
            "loop count not a positive integer",
            with_base(&LOOP.replace("count = 3", "count = 0")),
            "in loop `gen`: `count` must be a positive integer (at most 1000), found `0`",
            "x.toml:15:9",
        ),
        case(
            "carry and next with different keys",
            with_base(&LOOP.replace("next = { data", "next = { dta")),
            "in loop `gen`: `carry.data` has no `next.data`",
            "x.toml:16:11",
        ),
        case(
            "carry.X with no such X",
            with_base(&LOOP.replace("train_on = \"carry.data\"", "train_on = \"carry.dat\"")),
            "`carry.dat` in `train_on` of step `tok@0`: loop `gen` carries no `dat`; it carries `data`",
            "x.toml:21:12",
        ),
        case(
            "a dangling `next`, even when no step uses it yet (count = 1)",
            with_base(
                &LOOP
                    .replace("count = 3", "count = 1")
                    .replace("again.train", "again.trian"),
            ),
            "`next.data` of loop `gen` refers to `again@0.trian`, but step `again@0` (kind tokenize) has no output `trian`; its outputs are `train`, `validation`, `test`, `stats`; did you mean `again@0.train`?",
            "x.toml:17:17",
        ),
        case(
            "unknown key in a loop",
            with_base(&LOOP.replace("count = 3", "count = 3\ncounts = 4")),
            "unknown key `counts` in loop `gen`, expected one of `count`, `carry`, `next`, `steps`",
            "x.toml:16:1",
        ),
        case(
            "unknown kind under [defaults]",
            with_base("\n[defaults.finetun]\nepochs = 1\n"),
            leak(format!(
                "unknown kind `finetun` under [defaults], expected one of {}",
                kinds()
            )),
            "x.toml:14:11",
        ),
        case(
            "unknown key under [defaults.KIND], even with no step of that kind",
            with_base("\n[defaults.tokenizer]\nvocab_sise = 10\n"),
            "unknown key `vocab_sise` in [defaults.tokenizer], expected one of `from`, `train_on`, `vocab_size`, `min_frequency`, `text_field`",
            "x.toml:15:1",
        ),
        case(
            "a default with the wrong type points at the default",
            BASE.replace(
                "[steps.blocks]",
                "[defaults.tokenize]\ngrouping = \"sometimes\"\n\n[steps.blocks]",
            ),
            "unknown variant `sometimes` for `grouping` in step `blocks` (kind tokenize), expected `global` or `batched`",
            "x.toml:9:12",
        ),
    ];
    let override_cases = vec![
        Case {
            name: "override with a value of the wrong type",
            text: BASE.to_string(),
            overrides: &["steps.blocks.block_size=abc"],
            message: "invalid type: string \"abc\" for `block_size` in step `blocks` (kind tokenize), expected usize",
            at: "--set steps.blocks.block_size=abc",
            override_col: Some(25),
        },
        Case {
            name: "override without =",
            text: BASE.to_string(),
            overrides: &["steps.blocks.block_size"],
            message: "--set steps.blocks.block_size: expected PATH=VALUE",
            at: "--set steps.blocks.block_size",
            override_col: Some(1),
        },
        Case {
            name: "override through a value that is not a table",
            text: BASE.to_string(),
            overrides: &["experiment.name.first=1"],
            message: "--set experiment.name.first=1: `experiment.name` is a string, not a table",
            at: "--set experiment.name.first=1",
            override_col: Some(12),
        },
        Case {
            name: "override of an unknown key",
            text: BASE.to_string(),
            overrides: &["steps.blocks.epochz=1"],
            message: "unknown field `epochz` in step `blocks` (kind tokenize)",
            at: "--set steps.blocks.epochz=1",
            override_col: Some(14),
        },
        Case {
            name: "override with an empty path segment",
            text: BASE.to_string(),
            overrides: &["steps..block_size=1"],
            message: "--set steps..block_size=1: empty key in `steps..block_size`",
            at: "--set steps..block_size=1",
            override_col: Some(7),
        },
    ];
    let mut failures = Vec::new();
    for case in cases.into_iter().chain(override_cases) {
        let error = error_of(&case.text, case.overrides);
        let shown = error.to_string();
        let first_line = shown.lines().next().unwrap_or_default();
        let location = error
            .location()
            .map(ToString::to_string)
            .unwrap_or_default();
        if !first_line.starts_with("error: ")
            || !first_line.contains(case.message)
            || location != case.at
        {
            failures.push(format!(
                "{}:\n  expected `{}` at {}\n  got:\n{shown}\n  at {location}",
                case.name, case.message, case.at
            ));
        }
        if !shown.contains(&format!(" --> {}", case.at)) {
            failures.push(format!(
                "{}: no ` --> {}` line in\n{shown}",
                case.name, case.at
            ));
        }
        if let Some(col) = case.override_col {
            match error.location() {
                Some(Location::Override { col: got, .. }) if *got == col => {}
                other => failures.push(format!(
                    "{}: expected override column {col}, got {other:?}",
                    case.name
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_message_shows_the_line_with_a_caret() {
    let error = error_of(
        &BASE.replace("block_size = 32", "block_size = \"big\""),
        &[],
    );
    let expected = "error: invalid type: string \"big\" for `block_size` in step `blocks` (kind tokenize), expected usize
 --> x.toml:12:14
   |
12 | block_size = \"big\"
   |              ^^^^^";
    assert_eq!(error.to_string(), expected);
}

#[test]
fn an_unreadable_file_is_a_read_error() {
    let missing = Path::new("/nonexistent/xp/experiment.toml");
    let error = xp::spec::load(missing, &[]).unwrap_err();
    assert!(matches!(error, SpecError::Read { .. }));
    assert!(
        error
            .to_string()
            .contains("/nonexistent/xp/experiment.toml"),
        "{error}"
    );
}

/// `prompts` and `synthesize` take their decoding parameters as one flattened group:
/// an unknown key is still placed on its line and the kind's keys are listed.
#[test]
fn an_unknown_key_next_to_flattened_parameters_is_placed_and_explained() {
    let text = format!("{BASE}\n[steps.answers]\nkind = \"prompts\"\nmodel = \"opt\"\nbeamz = 2\n");
    let err = error_of(&text, &[]);
    let rendered = err.to_string();
    assert!(rendered.contains("unknown field `beamz`"), "{rendered}");
    assert!(rendered.contains("expected one of"), "{rendered}");
    assert!(rendered.contains("`beams`"), "{rendered}");
    assert!(rendered.contains("x.toml:17:1"), "{rendered}");
}
