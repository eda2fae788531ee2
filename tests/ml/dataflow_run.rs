//! The data flow between generations and the selection of synthetic data, through the
//! real binary with a tiny OPT: `mix` (accumulate, subsample, fresh real blocks) and
//! `select` (a share by perplexity, importance resampling), and a study switched from
//! replace to accumulate, which reruns only what changed and says why.

use crate::common;

use std::path::PathBuf;

use common::{Project, stderr, stdout, steps_with};
use serde_json::Value;
use xp::artifacts::SelectionFile;
use xp::data::{Blocks, read_blocks};

/// Corpus, tokenizer, 16-token blocks and a tiny model trained for one epoch; the
/// generations continue blocks greedily with 16 new tokens, so every block file has
/// blocks of 16.
fn prelude() -> String {
    format!(
        "{}{}",
        common::tiny_model_prelude("dataflow", 64),
        r#"
[defaults.finetune]
epochs = 1
batch = 16
lr = 1e-3

[defaults.synthesize]
beams = 1
new_tokens = 16
min_new_tokens = 16
batch_size = 32
"#
    )
}

/// Generations 0..2; generation g+1 trains on what generation g wrote.
const REPLACE: &str = r#"
[loop.gen]
count = 3
carry = { data = "blocks.train", prompts = "blocks.train" }
next = { data = "synthesize.blocks", prompts = "synthesize.blocks" }

[loop.gen.steps.finetune]
kind = "finetune"
model = "init.model"
train = "carry.data"
valid = "blocks.validation"

[loop.gen.steps.synthesize]
kind = "synthesize"
model = "finetune.model"
prompts = "carry.prompts"
"#;

/// The same loop, generation g+1 trains on the real data and everything generations
/// 0..=g wrote; the prompts stay the chain of replace.
fn accumulate() -> String {
    REPLACE.replace(
        "next = { data = \"synthesize.blocks\"",
        "next = { data = \"pool.blocks\"",
    ) + r#"
[loop.gen.steps.pool]
kind = "mix"
real = "blocks.train"
synthetic = ["synthesize@earlier.blocks", "synthesize.blocks"]
"#
}

fn show(p: &Project, extra: &[&str]) -> Vec<Value> {
    p.show_json("x.toml", extra)
}

fn row<'a>(rows: &'a [Value], step: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}"))
}

fn output(rows: &[Value], step: &str, name: &str) -> PathBuf {
    let o = row(rows, step)["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("{step} has no output {name}"));
    PathBuf::from(o["path"].as_str().unwrap())
}

fn blocks(rows: &[Value], step: &str, name: &str) -> Blocks {
    read_blocks(&output(rows, step, name)).unwrap()
}

fn concat(parts: &[&Blocks]) -> Vec<Vec<u32>> {
    parts
        .iter()
        .flat_map(|b| b.iter().map(<[u32]>::to_vec))
        .collect()
}

fn rows_of(b: &Blocks) -> Vec<Vec<u32>> {
    b.iter().map(<[u32]>::to_vec).collect()
}

#[test]
fn switching_replace_to_accumulate_reruns_only_what_changed_and_says_why() {
    let p = Project::new(40);
    p.write("x.toml", &format!("{}{REPLACE}", prelude()));
    p.run_ok("x.toml", &[]);

    p.write("x.toml", &format!("{}{}", prelude(), accumulate()));
    let out = p.run(&["plan", "x.toml", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let status = |step: &str| -> (String, Vec<String>) {
        let s = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .unwrap_or_else(|| panic!("no step {step} in the plan"));
        let why = s["why"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
        (s["status"].as_str().unwrap().to_string(), why)
    };
    // Generation 0 and everything before it keep their keys.
    for step in ["tok", "blocks", "init", "finetune@0", "synthesize@0"] {
        assert_eq!(status(step).0, "cached", "{step}: {:?}", status(step));
    }
    for g in 0..3 {
        let (state, why) = status(&format!("pool@{g}"));
        assert_eq!(
            (state.as_str(), why),
            ("run", vec!["never run".to_string()])
        );
    }
    // Generation 1 trains on pool@0 instead of synthesize@0, and says so.
    let (state, why) = status("finetune@1");
    assert_eq!(state, "run");
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(
        why[0].contains("input `train`: `pool@0` will run"),
        "{why:?}"
    );
    // Its text comes from another model; the prompts (synthesize@0) are unchanged.
    let (_, why) = status("synthesize@1");
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(
        why[0].contains("input `model`: `finetune@1` will run"),
        "{why:?}"
    );
    let (_, why) = status("synthesize@2");
    assert!(
        why.iter()
            .any(|w| w.contains("input `prompts`: `synthesize@1` will run")),
        "{why:?}"
    );

    // The text plan says the same, one reason a line, and counts.
    let text = stdout(&p.run(&["plan", "x.toml"]));
    assert!(text.contains("12 steps: 5 cached, 7 will run"), "{text}");
    let line = text.lines().find(|l| l.contains(" finetune@1 ")).unwrap();
    assert!(line.contains("input `train`: `pool@0` will run"), "{text}");

    let events = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&events, "step_started"),
        [
            "finetune@1",
            "finetune@2",
            "pool@0",
            "pool@1",
            "pool@2",
            "synthesize@1",
            "synthesize@2"
        ]
    );
    // pool@g is the real blocks, then what generations 0..=g wrote, in order.
    let rows = show(&p, &[]);
    let real = blocks(&rows, "blocks", "train");
    let synthetic: Vec<Blocks> = (0..3)
        .map(|g| blocks(&rows, &format!("synthesize@{g}"), "blocks"))
        .collect();
    for g in 0..3 {
        let pool = blocks(&rows, &format!("pool@{g}"), "blocks");
        let mut parts = vec![&real];
        parts.extend(&synthetic[..=g]);
        assert_eq!(rows_of(&pool), concat(&parts), "pool@{g}");
        let m = &row(&rows, &format!("pool@{g}"))["metrics"];
        assert_eq!(m["pool"], real.len() + (g + 1) * synthetic[0].len(), "{m}");
        assert_eq!(m["real_unused"], 0, "{m}");
        // The real data is not drawn from, so nothing is left unused.
        assert!(blocks(&rows, &format!("pool@{g}"), "unused").is_empty());
    }
    // The accumulated pool is the next generation's training data.
    for g in 1..3 {
        let step = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == format!("finetune@{g}"))
            .unwrap();
        let deps: Vec<&str> = step["depends_on"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        let pool = format!("pool@{}", g - 1);
        assert!(deps.contains(&pool.as_str()), "{deps:?}");
        assert!(
            !deps.iter().any(|d| d.starts_with("synthesize")),
            "{deps:?}"
        );
    }

    // Back to replace: everything is in the store already.
    p.write("x.toml", &format!("{}{REPLACE}", prelude()));
    let plan = stdout(&p.run(&["plan", "x.toml"]));
    assert!(plan.contains("9 steps: 9 cached, 0 will run"), "{plan}");
}

/// One generation's text, then selections and mixes of it.
const SELECT: &str = r#"
[steps.ft]
kind = "finetune"
model = "init.model"
train = "blocks.train"
valid = "blocks.validation"

[steps.syn]
kind = "synthesize"
model = "ft.model"
prompts = "blocks.train"

[steps.lowest]
kind = "select"
model = "init.model"
data = "syn.blocks"
keep = { lowest = 0.5 }

[steps.above]
kind = "select"
model = "ft.model"
data = "syn.blocks"
keep = { above = 1.0 }

[steps.resampled]
kind = "select"
model = "ft.model"
data = "syn.blocks"
reference = "blocks.train"
keep = "resample"
bins = 4
blocks = 50

[steps.fresh]
kind = "mix"
real = "blocks.train"
synthetic = ["syn.blocks"]
real_blocks = 5
blocks = 12
"#;

#[test]
fn select_keeps_a_share_by_perplexity_and_resamples_towards_the_real_scores() {
    let p = Project::new(40);
    p.write("x.toml", &format!("{}{SELECT}", prelude()));
    p.run_ok("x.toml", &[]);
    let rows = show(&p, &[]);
    let syn = blocks(&rows, "syn", "blocks");
    let n = syn.len();
    assert!(n >= 8, "the test wants a few blocks, got {n}");

    // The lowest half by perplexity under the scoring model, in input order.
    let sel = SelectionFile::read(&output(&rows, "lowest", "selection")).unwrap();
    assert_eq!(sel.blocks.len(), n);
    assert_eq!(sel.model, "init.model");
    assert_eq!(sel.data, "syn.blocks");
    let want = ((0.5 * n as f64).round()) as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        sel.blocks[a]
            .perplexity
            .total_cmp(&sel.blocks[b].perplexity)
    });
    let mut kept: Vec<usize> = order[..want].to_vec();
    kept.sort_unstable();
    let copies: Vec<usize> = sel.blocks.iter().map(|b| b.copies).collect();
    for (i, c) in copies.iter().enumerate() {
        assert_eq!(*c, usize::from(kept.contains(&i)), "block {i}: {copies:?}");
    }
    let out = blocks(&rows, "lowest", "blocks");
    let expected: Vec<Vec<u32>> = kept.iter().map(|&i| syn.block(i).to_vec()).collect();
    assert_eq!(rows_of(&out), expected);
    let m = &row(&rows, "lowest")["metrics"];
    assert_eq!(m["output_blocks"], want, "{m}");
    assert!((m["kept_share"].as_f64().unwrap() - want as f64 / n as f64).abs() < 1e-12);
    assert!(m["after"]["p90"].as_f64().unwrap() <= m["before"]["p50"].as_f64().unwrap() + 1e-9);
    // Perplexities are those `evaluate` computes (exp of a mean NLL: at least 1).
    assert!(sel.blocks.iter().all(|b| b.perplexity >= 1.0));

    // A threshold every perplexity passes keeps everything.
    let above = SelectionFile::read(&output(&rows, "above", "selection")).unwrap();
    assert!(above.blocks.iter().all(|b| b.copies == 1));
    assert_eq!(rows_of(&blocks(&rows, "above", "blocks")), rows_of(&syn));

    // Resampling: the weights are the ratio of the two histograms of log-perplexity.
    let res = SelectionFile::read(&output(&rows, "resampled", "selection")).unwrap();
    let reference = res.reference_perplexity.clone().expect("reference scores");
    assert_eq!(reference.len(), blocks(&rows, "blocks", "train").len());
    let ln = |v: &[f64]| v.iter().map(|x| x.ln()).collect::<Vec<f64>>();
    let data: Vec<f64> = res.blocks.iter().map(|b| b.perplexity).collect();
    let (r, d) = (ln(&reference), ln(&data));
    let lo = r.iter().chain(&d).copied().fold(f64::INFINITY, f64::min);
    let hi = r
        .iter()
        .chain(&d)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let bin = |x: f64| (((x - lo) / (hi - lo) * 4.0) as usize).min(3);
    for (i, b) in res.blocks.iter().enumerate() {
        let share =
            |v: &[f64]| v.iter().filter(|&&x| bin(x) == bin(d[i])).count() as f64 / v.len() as f64;
        let w = share(&r) / share(&d);
        assert!((b.weight.unwrap() - w).abs() < 1e-12, "block {i}");
        if w == 0.0 {
            assert_eq!(b.copies, 0, "block {i} has weight 0");
        }
    }
    assert_eq!(res.blocks.iter().map(|b| b.copies).sum::<usize>(), 50);
    assert_eq!(blocks(&rows, "resampled", "blocks").len(), 50);
    let m = &row(&rows, "resampled")["metrics"];
    assert!(m["reference"]["p50"].as_f64().is_some(), "{m}");
    assert!(m["effective_share"].as_f64().unwrap() <= 1.0 + 1e-12, "{m}");

    // A mix drawing 5 fresh real blocks and 12 of the pool: sizes, and the unused
    // real blocks are exactly the others.
    let real = blocks(&rows, "blocks", "train");
    let fresh = blocks(&rows, "fresh", "blocks");
    let unused = blocks(&rows, "fresh", "unused");
    assert_eq!(fresh.len(), 12);
    assert_eq!(unused.len(), real.len() - 5);
    let m = &row(&rows, "fresh")["metrics"];
    assert_eq!(m["pool"], 5 + n, "{m}");
    assert_eq!(
        (m["real_in_pool"].clone(), m["real_unused"].clone()),
        (5.into(), (real.len() - 5).into()),
        "{m}"
    );
    // `unused` is the real data less the 5 drawn, in order; every mixed block comes
    // from the real or the synthetic blocks.
    let real_rows = rows_of(&real);
    let mut rest = real_rows.iter();
    for b in rows_of(&unused) {
        assert!(
            rest.any(|r| *r == b),
            "unused is not a subsequence of the real data"
        );
    }
    let syn_rows = rows_of(&syn);
    for b in rows_of(&fresh) {
        assert!(real_rows.contains(&b) || syn_rows.contains(&b));
    }

    // Seeded: running the drawing steps again gives the same bytes.
    let before: Vec<Vec<u8>> = [
        ("resampled", "blocks"),
        ("fresh", "blocks"),
        ("fresh", "unused"),
    ]
    .iter()
    .map(|(s, o)| std::fs::read(output(&rows, s, o)).unwrap())
    .collect();
    let events = p.run_ok("x.toml", &["--rerun", "resampled", "--rerun", "fresh"]);
    assert_eq!(steps_with(&events, "step_started"), ["fresh", "resampled"]);
    let rows = show(&p, &[]);
    let after: Vec<Vec<u8>> = [
        ("resampled", "blocks"),
        ("fresh", "blocks"),
        ("fresh", "unused"),
    ]
    .iter()
    .map(|(s, o)| std::fs::read(output(&rows, s, o)).unwrap())
    .collect();
    assert_eq!(before, after);
}

/// Fresh real data as a fold (docs/dsl.md): generation 0 trains on 20 real blocks,
/// each later generation on the selected half of the previous generation's text and
/// 4 real blocks no earlier generation was given.
const FRESH: &str = r#"
[steps.start]
kind = "mix"
real = "blocks.train"
real_blocks = 20

[loop.gen]
count = 3
carry = { data = "start.blocks", fresh = "start.unused" }
next = { data = "pool.blocks", fresh = "pool.unused" }

[loop.gen.steps.finetune]
kind = "finetune"
model = "init.model"
train = "carry.data"
valid = "blocks.validation"

[loop.gen.steps.synthesize]
kind = "synthesize"
model = "finetune.model"
prompts = "carry.data"

[loop.gen.steps.filter]
kind = "select"
model = "finetune@0.model"
data = "synthesize.blocks"
keep = { lowest = 0.5 }

[loop.gen.steps.pool]
kind = "mix"
real = "carry.fresh"
real_blocks = 4
synthetic = ["filter.blocks"]
"#;

#[test]
fn fresh_real_blocks_are_new_to_every_generation() {
    let p = Project::new(40);
    p.write("x.toml", &format!("{}{FRESH}", prelude()));
    p.run_ok("x.toml", &[]);
    let rows = show(&p, &[]);
    let real = blocks(&rows, "blocks", "train");
    let start = blocks(&rows, "start", "blocks");
    assert_eq!(start.len(), 20);
    // Every real block is in exactly one place: generation 0's data, one
    // generation's fresh draw, or the last generation's unused rest.
    let dag = stdout(&p.run(&["dag", "x.toml"]));
    let mut placed = rows_of(&start);
    let mut left = real.len() - 20;
    for g in 0..3 {
        let pool = blocks(&rows, &format!("pool@{g}"), "blocks");
        let filtered = blocks(&rows, &format!("filter@{g}"), "blocks");
        let m = &row(&rows, &format!("pool@{g}"))["metrics"];
        assert_eq!(m["real_available"], left, "{m}");
        assert_eq!(m["real_in_pool"], 4, "{m}");
        assert_eq!(pool.len(), 4 + filtered.len());
        // The pool: the 4 fresh real blocks, then the selected text.
        let pool_rows = rows_of(&pool);
        assert_eq!(pool_rows[4..], rows_of(&filtered)[..]);
        placed.extend(pool_rows[..4].iter().cloned());
        left -= 4;
        // The next generation trains on it and draws from what it left.
        if g < 2 {
            let next = dag
                .split(&format!("finetune@{} (finetune)\n", g + 1))
                .nth(1)
                .and_then(|rest| rest.split("\n\n").next().map(str::to_string))
                .unwrap_or_default();
            let section: String = next
                .lines()
                .take_while(|l| l.starts_with("  "))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                section.contains(&format!("train ← pool@{g}.blocks")),
                "{dag}"
            );
            assert!(dag.contains(&format!("real ← pool@{g}.unused")), "{dag}");
        }
    }
    let rest = blocks(&rows, "pool@2", "unused");
    assert_eq!(rest.len(), left);
    placed.extend(rows_of(&rest));
    let mut all = rows_of(&real);
    all.sort();
    placed.sort();
    assert_eq!(placed, all);
    // Selected text: half of what each generation wrote.
    for g in 0..3 {
        let written = blocks(&rows, &format!("synthesize@{g}"), "blocks").len();
        let kept = blocks(&rows, &format!("filter@{g}"), "blocks").len();
        assert_eq!(kept, ((written as f64) * 0.5).round() as usize);
    }
}
