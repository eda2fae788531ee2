//! `[sweep]` through the real binary on data kinds and `command` steps (no model,
//! so it is quick): 2 × 3 points, the steps that do not depend on an axis run
//! once (counted), names carry the axes a step depends on, `xp plan` counts
//! points and steps, `xp show` has one row per point, `xp diff --point` names the
//! differing axis and metrics, and a bad axis is an error at its place in the file.

use crate::common;

use common::{Project, stderr, stdout, steps_with};

const SWEEP: &str = r#"[experiment]
name = "sweep"

[sources]
corpus = "corpus"

[sweep]
grid = { "steps.tok.vocab_size" = [300, 400], "steps.blocks.block_size" = [8, 16, 32] }

[steps.tok]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "tok.tokenizer"
block_size = 16

[steps.size]
kind = "command"
argv = ["sh", "-c", "wc -c < {inputs.text}/train.txt > {outputs.size}"]
inputs = { text = "corpus" }
outputs = { size = "size.txt" }
"#;

fn project() -> Project {
    let p = Project::new(40);
    p.write("x.toml", SWEEP);
    p
}

#[test]
fn a_two_by_three_sweep_runs_shared_steps_once_and_names_the_others_by_their_axes() {
    let p = project();
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(
        plan.contains(
            "sweep: 6 points (vocab_size: 2 values, block_size: 3 values); 9 steps where the \
             points on their own would have 18"
        ),
        "{plan}"
    );

    let events = p.run_ok("x.toml", &[]);
    let started = steps_with(&events, "step_started");
    // `size` depends on no axis: once. `tok` on one: twice. `blocks` on both: six times.
    assert_eq!(
        started,
        [
            "blocks[vocab_size=300,block_size=16]",
            "blocks[vocab_size=300,block_size=32]",
            "blocks[vocab_size=300,block_size=8]",
            "blocks[vocab_size=400,block_size=16]",
            "blocks[vocab_size=400,block_size=32]",
            "blocks[vocab_size=400,block_size=8]",
            "size",
            "tok[vocab_size=300]",
            "tok[vocab_size=400]",
        ]
    );
    // A second run executes nothing.
    let again = p.run_ok("x.toml", &[]);
    assert!(steps_with(&again, "step_started").is_empty());
    // `--rerun` with the file's name reruns the step at every point (and what
    // depends on it); with a point's name, that one.
    let forced = p.run_ok("x.toml", &["--rerun", "tok"]);
    assert_eq!(steps_with(&forced, "step_started").len(), 8);
    let one = p.run_ok(
        "x.toml",
        &["--rerun", "blocks[vocab_size=400,block_size=8]"],
    );
    assert_eq!(
        steps_with(&one, "step_started"),
        ["blocks[vocab_size=400,block_size=8]"]
    );

    // The point (300, 16) is the file as written: its steps have the keys the file
    // without the sweep gives them.
    let plain = SWEEP.replace(
        "grid = { \"steps.tok.vocab_size\" = [300, 400], \"steps.blocks.block_size\" = [8, 16, 32] }",
        "",
    );
    p.write("plain.toml", &plain);
    let out = p.run(&["plan", "plain.toml"]);
    let plain_plan = stdout(&out);
    assert!(
        plain_plan.contains("3 steps: 3 cached, 0 will run"),
        "{plain_plan}{}",
        stderr(&out)
    );
}

#[test]
fn show_has_a_row_per_point_and_diff_names_the_differing_axis_and_metrics() {
    let p = project();
    p.run_ok("x.toml", &[]);
    let show = stdout(&p.run(&["show", "x.toml"]));
    let table: Vec<&str> = show
        .lines()
        .skip_while(|l| !l.starts_with("blocks by point"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let header = table[0];
    assert!(
        header.contains("point") && header.contains("train_blocks"),
        "{show}"
    );
    let rows: Vec<&str> = table[1..].iter().map(|l| l.trim()).collect();
    assert_eq!(rows.len(), 6, "{show}");
    for (row, point) in rows.iter().zip([
        "[vocab_size=300,block_size=8]",
        "[vocab_size=300,block_size=16]",
        "[vocab_size=300,block_size=32]",
        "[vocab_size=400,block_size=8]",
        "[vocab_size=400,block_size=16]",
        "[vocab_size=400,block_size=32]",
    ]) {
        assert!(row.starts_with(point), "{row} vs {point}\n{show}");
    }
    // Blocks of 8 tokens are more numerous than blocks of 32.
    let blocks_of = |row: &str| -> f64 { row.split_whitespace().nth(1).unwrap().parse().unwrap() };
    assert!(blocks_of(rows[0]) > blocks_of(rows[2]), "{show}");

    let out = p.run(&[
        "diff",
        "x.toml",
        "--point",
        "vocab_size=300,block_size=8",
        "--point",
        "vocab_size=300,block_size=32",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let diff = stdout(&out);
    assert!(
        diff.contains("the points differ in block_size: 8 → 32"),
        "{diff}"
    );
    let changed: Vec<&str> = diff.lines().filter(|l| l.ends_with('*')).collect();
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with("blocks") && l.contains("train_blocks")),
        "{diff}"
    );
    assert!(
        !changed
            .iter()
            .any(|l| l.starts_with("tok") || l.starts_with("size")),
        "{diff}"
    );

    let out = p.run(&[
        "diff",
        "x.toml",
        "--point",
        "lr=1",
        "--point",
        "block_size=8",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no axis `lr` (axes: vocab_size, block_size)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_axis_value_is_an_error_at_its_place_in_the_sweep() {
    let p = project();
    p.write(
        "bad.toml",
        &SWEEP.replace("[8, 16, 32]", "[8, \"sixteen\"]"),
    );
    let out = p.run(&["plan", "bad.toml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("block_size"), "{err}");
    assert!(err.contains("bad.toml:8:"), "{err}");
    assert!(err.contains("\"sixteen\""), "{err}");

    p.write(
        "typo.toml",
        &SWEEP.replace("steps.blocks.block_size", "steps.blocks.blok_size"),
    );
    let err = stderr(&p.run(&["plan", "typo.toml"]));
    assert!(err.contains("unknown field `blok_size`"), "{err}");
    assert!(err.contains("typo.toml:8:"), "{err}");
}
