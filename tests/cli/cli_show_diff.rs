//! `xp show` (metrics table) and `xp diff` (two runs side by side), through the
//! real binary on cheap `corpus` steps.

use crate::common;

use common::{Project, stderr, stdout};
use serde_json::Value;

fn experiment(train_rows: usize) -> String {
    format!(
        "[experiment]\nname = \"d\"\nseed = 0\n\n\
         [steps.corpus]\nkind = \"corpus\"\ntrain_rows = {train_rows}\neval_rows = 10\n\n\
         [steps.fixed]\nkind = \"corpus\"\ntrain_rows = 20\neval_rows = 5\n"
    )
}

fn setup() -> Project {
    let p = Project::new(4);
    p.write("a.toml", &experiment(40));
    p.write("b.toml", &experiment(50));
    p
}

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn show_prints_an_aligned_metrics_table() {
    let p = setup();
    let before = stdout(&p.run(&["show", "a.toml"]));
    assert!(
        before.contains("corpus") && before.contains("not run"),
        "{before}"
    );
    p.run_ok("a.toml", &[]);
    let out = p.run(&["show", "a.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("cached (corpus, "), "{text}");
    // Names padded to one column: `train_rows` and `eval_rows` values line up.
    let col = |name: &str| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        line.find(|c: char| c.is_ascii_digit()).unwrap()
    };
    assert_eq!(col("train_rows"), col("eval_rows"), "{text}");
    let rows: Value = serde_json::from_str(&stdout(&p.run(&["show", "a.toml", "--json"]))).unwrap();
    assert_eq!(rows[0]["metrics"]["train_rows"], 40);
}

#[test]
fn diff_of_two_files_marks_the_changed_metrics() {
    let p = setup();
    p.run_ok("a.toml", &[]);
    p.run_ok("b.toml", &[]);
    let out = p.run(&["diff", "a.toml", "b.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |step: &str, metric: &str| {
        text.lines()
            .find(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.len() >= 2 && cells[0] == step && cells[1] == metric
            })
            .unwrap_or_else(|| panic!("no row {step} {metric} in\n{text}"))
            .to_string()
    };
    let changed = line("corpus", "train_rows");
    assert!(
        changed.contains("40") && changed.contains("50") && changed.ends_with('*'),
        "{changed}"
    );
    assert!(!line("corpus", "eval_rows").ends_with('*'));
    assert!(!line("fixed", "train_rows").ends_with('*'));
    assert!(text.contains("1 of "), "{text}");

    let rows = json_lines(&p.run(&["diff", "a.toml", "b.toml", "--json"]));
    let changed: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r["changed"] == true)
        .map(|r| (r["step"].as_str().unwrap(), r["metric"].as_str().unwrap()))
        .collect();
    assert_eq!(changed, [("corpus", "train_rows")]);
}

#[test]
fn diff_of_two_keys_compares_single_entries() {
    let p = setup();
    p.run_ok("a.toml", &[]);
    p.run_ok("b.toml", &[]);
    let key = |file: &str| -> String {
        let rows: Value = serde_json::from_str(&stdout(&p.run(&["show", file, "--json"]))).unwrap();
        rows[0]["key"].as_str().unwrap()[..10].to_string()
    };
    let (a, b) = (key("a.toml"), key("b.toml"));
    let rows = json_lines(&p.run(&["diff", &a, &b, "--json"]));
    assert!(rows.iter().all(|r| r["step"] == "corpus"));
    let train = rows.iter().find(|r| r["metric"] == "train_rows").unwrap();
    assert_eq!(
        (train["a"].clone(), train["b"].clone()),
        (40.into(), 50.into())
    );
    assert_eq!(train["changed"], true);

    // Not a file and not a key: a usage error naming it.
    let out = p.run(&["diff", "nope.toml", &b]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
    let out = p.run(&["diff", "abcdef0123", &b]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no store entry"), "{}", stderr(&out));
}
