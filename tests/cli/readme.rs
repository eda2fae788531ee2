//! The README's experiment example stays valid (the quick start's experiment
//! is run end to end by tests/cli/mini_e2e.rs), and its kind table lists every kind.

use crate::common;

use common::{Project, stderr};

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
fn the_readme_kind_table_lists_every_kind() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("| kind | inputs | outputs |")
        .expect("the kind table");
    let rows: Vec<&str> = readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    for kind in xp::steps::KIND_NAMES {
        assert!(
            rows.contains(kind),
            "README.md's kind table has no row for `{kind}`"
        );
    }
    for row in &rows {
        assert!(
            xp::steps::KIND_NAMES.contains(row),
            "README.md's kind table lists `{row}`, which is not a kind"
        );
    }
}
