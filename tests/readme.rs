//! The README's examples stay true: its experiment example validates and
//! `experiments/mini.toml` (the quick start's experiment) runs end to end,
//! the second time from the cache.

mod common;

use common::{Project, stderr, stdout, steps_with};

#[test]
fn the_readme_example_validates() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## The experiment file").expect("section");
    let body = &readme[start..];
    let open = body.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let close = open + body[open..].find("```").expect("closed block");
    let p = Project::new(10);
    p.write("readme.toml", &body[open..close]);
    let out = p.run(&["validate", "readme.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_mini_experiment_runs_then_is_cached() {
    let p = Project::new(10);
    let mini = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/mini.toml");
    let first = p.run_ok(mini, &[]);
    assert!(!steps_with(&first, "step_started").is_empty());
    assert!(steps_with(&first, "step_failed").is_empty());
    let second = p.run_ok(mini, &[]);
    assert!(steps_with(&second, "step_started").is_empty(), "{second:?}");
    let show = stdout(&p.run(&["show", mini]));
    assert!(show.contains("train.blocks"), "{show}");
}
