//! Bad experiment files fail with exit code 2 and a message naming file:line:col.

use crate::common;

use common::{Project, THREE_LEVELS, stderr};

fn check(p: &Project, text: &str, expect_location: &str, expect_message: &str) {
    p.write("bad.toml", text);
    for command in ["validate", "plan", "run"] {
        let out = p.run(&[command, "bad.toml"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "xp {command}: {err}");
        assert!(
            err.contains(&format!("bad.toml:{expect_location}")),
            "xp {command}: expected bad.toml:{expect_location} in:\n{err}"
        );
        assert!(
            err.contains(expect_message),
            "xp {command}: expected `{expect_message}` in:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn malformed_toml() {
    let p = Project::new(10);
    check(&p, "[experiment]\nname = \"x\"\nseed = = 3\n", "3:", "");
}

#[test]
fn unknown_key_lists_the_valid_ones() {
    let p = Project::new(10);
    let text = THREE_LEVELS.replace(
        "block_size = 16\n\n[steps.blocks_batched]",
        "blok_size = 16\n\n[steps.blocks_batched]",
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("blok_size"))
        .unwrap()
        + 1;
    check(&p, &text, &format!("{line}:1"), "block_size");
}

#[test]
fn wrong_type() {
    let p = Project::new(10);
    let text = THREE_LEVELS.replace("vocab_size = 300", "vocab_size = \"big\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("vocab_size"))
        .unwrap()
        + 1;
    check(&p, &text, &format!("{line}:14"), "");
}

#[test]
fn dangling_reference() {
    let p = Project::new(10);
    let text = THREE_LEVELS.replace("from = \"tok.tokenizer\"", "from = \"tokk.tokenizer\"");
    let line = text.lines().position(|l| l.starts_with("from = ")).unwrap() + 1;
    check(&p, &text, &format!("{line}:8"), "tokk");
}

#[test]
fn cycle_names_its_members() {
    let p = Project::new(10);
    let text = r#"[experiment]
name = "cycle"

[steps.a]
kind = "tokenizer"
from = "b.tokenizer"

[steps.b]
kind = "tokenizer"
from = "a.tokenizer"
"#;
    check(&p, text, "4:8", "a → b → a");
}

#[test]
fn missing_file() {
    let p = Project::new(10);
    let out = p.run(&["plan", "nope.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
}
