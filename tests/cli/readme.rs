//! The README's experiment example stays valid (the quick start's experiment
//! is run end to end by tests/cli/mini_e2e.rs).

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
