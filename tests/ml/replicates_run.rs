//! Replicate seeds through the real binary with a tiny OPT: `seeds = [0, 1, 2]`
//! runs the data steps once and every seeded step per seed, each replicate's steps
//! keyed exactly as the file run with that seed alone; one report gathers the
//! seeds, with the mean and the 95 % Student-t interval per generation (checked
//! against the replicates' own scores) and the interval drawn as a band.

use crate::common;

use std::path::PathBuf;

use common::{Project, stdout, steps_with};
use serde_json::Value;

fn experiment(seeds: &str) -> String {
    format!(
        "{}{seeds}{}",
        common::tiny_model_prelude("replicates", 64),
        r#"
[defaults.finetune]
epochs = 1
batch = 16
lr = 1e-3

[loop.gen]
count = 2
carry = { data = "blocks.train" }
next = { data = "synthesize.blocks" }

[loop.gen.steps.finetune]
kind = "finetune"
model = "init.model"
train = "carry.data"
valid = "blocks.validation"

[loop.gen.steps.synthesize]
kind = "synthesize"
model = "finetune.model"
prompts = "carry.data"
beams = 1
new_tokens = 16
min_new_tokens = 16
batch_size = 32

[loop.gen.steps.test]
kind = "evaluate"
model = "finetune.model"
data = ["blocks.test"]
reference = "blocks.train"

[steps.report]
kind = "report"
evaluations = ["test@*.scores"]
training = ["finetune@*.metrics"]
"#
    )
}

/// `[experiment] seeds = [...]`, appended to the prelude's `[experiment]` table.
const SEEDS: &str = "seeds = [0, 1, 2]\n";

fn row<'a>(rows: &'a [Value], step: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}"))
}

#[test]
fn three_seeds_share_the_data_steps_and_one_report_gives_mean_and_interval() {
    let p = Project::new(60);
    // The prelude's `[experiment]` table ends before `[sources]`: seeds go in it.
    let text = experiment("").replacen("[sources]", &format!("{SEEDS}\n[sources]"), 1);
    p.write("x.toml", &text);

    let events = p.run_ok("x.toml", &[]);
    let started = steps_with(&events, "step_started");
    let per_seed =
        |base: &str| -> Vec<String> { (0..3).map(|s| format!("{base}[seed={s}]")).collect() };
    let mut expected: Vec<String> = vec!["blocks".into(), "report".into(), "tok".into()];
    for base in [
        "init",
        "finetune@0",
        "finetune@1",
        "synthesize@0",
        "synthesize@1",
        "test@0",
        "test@1",
    ] {
        expected.extend(per_seed(base));
    }
    expected.sort();
    assert_eq!(started, expected);

    // Each replicate is the file run with that seed alone: same keys, so a run of
    // `seed = 2` without `seeds` finds everything but its own report cached.
    let rows = p.show_json("x.toml", &[]);
    p.write("one.toml", &experiment(""));
    let single = p.show_json("one.toml", &["--set", "experiment.seed=2"]);
    for step in [
        "tok",
        "blocks",
        "init",
        "finetune@1",
        "synthesize@1",
        "test@1",
    ] {
        let replicated = rows
            .iter()
            .find(|r| r["step"] == step || r["step"] == format!("{step}[seed=2]"))
            .unwrap();
        assert_eq!(row(&single, step)["key"], replicated["key"], "{step}");
        assert_eq!(row(&single, step)["status"], "cached", "{step}");
    }

    // The report's interval is the replicates' mean ± t(0.975, 2) · s / √3.
    let perplexities: Vec<f64> = (0..3)
        .map(|s| {
            row(&rows, &format!("test@1[seed={s}]"))["metrics"]["blocks.test"]["corpus_perplexity"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let mean = perplexities.iter().sum::<f64>() / 3.0;
    let sd = (perplexities.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let half = 4.302_653 * sd / 3f64.sqrt();
    let report = report_dir(&rows);
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("## Over seeds"), "{md}");
    let line = md
        .lines()
        .find(|l| l.starts_with("| 1 | blocks.test | finetune@1.model | corpus ppl | 3 |"))
        .unwrap_or_else(|| panic!("no generation-1 row over seeds:\n{md}"));
    let cells: Vec<f64> = line
        .split('|')
        .map(str::trim)
        .filter_map(|c| c.parse().ok())
        .collect();
    // gen, seeds, mean, low, high
    let (got_mean, lo, hi) = (cells[2], cells[3], cells[4]);
    let close = |a: f64, b: f64| (a - b).abs() <= 5e-3 * b.abs().max(1.0);
    assert!(close(got_mean, mean), "{line} vs mean {mean}");
    assert!(
        close(lo, mean - half) && close(hi, mean + half),
        "{line} vs ± {half}"
    );
    // Every seed's row is in the perplexity table too.
    for s in 0..3 {
        assert!(md.contains(&format!("test@1[seed={s}].scores")), "{md}");
    }
    // The interval is drawn as a band under the mean's line.
    let svg = std::fs::read_to_string(report.join("figures/perplexity.svg")).unwrap();
    assert!(svg.contains("<polygon"), "no band in the perplexity figure");

    // `xp show` pools the seeds per generation.
    let text = stdout(&p.run(&["show", "x.toml"]));
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("test@1 by point"))
        .take(3)
        .collect();
    assert!(table[0].contains("over seeds"), "{text}");
    assert!(
        table[2].trim_start().starts_with("over seeds") && table[2].contains("(3)"),
        "{text}"
    );
}

fn report_dir(rows: &[Value]) -> PathBuf {
    let report = row(rows, "report");
    let path = report["outputs"][0]["path"]
        .as_str()
        .expect("report published");
    PathBuf::from(path)
}
