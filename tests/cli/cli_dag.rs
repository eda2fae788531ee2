//! Loop expansion as `xp dag` and `xp plan` show it, and raising the number
//! of generations adds exactly the new steps.

use crate::common;

use common::{Project, stdout, steps_with};

const LOOP: &str = r#"[experiment]
name = "generations"

[sources]
corpus = "corpus"

[steps.tok0]
kind = "tokenizer"
train_on = "corpus"
vocab_size = 300

[loop.gen]
count = 3
carry = { tok = "tok0.tokenizer" }
next = { tok = "retok.tokenizer" }

[loop.gen.steps.retok]
kind = "tokenizer"
from = "carry.tok"

[loop.gen.steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "retok.tokenizer"
block_size = 8
"#;

#[test]
fn dag_shows_every_generation_chained() {
    let p = Project::new(50);
    p.write("loop.toml", LOOP);
    let text = stdout(&p.run(&["dag", "loop.toml"]));
    for expected in [
        "retok@0 (tokenizer)\n  from ← tok0.tokenizer",
        "retok@1 (tokenizer)\n  from ← retok@0.tokenizer",
        "retok@2 (tokenizer)\n  from ← retok@1.tokenizer",
        "blocks@2 (tokenize)\n  data ← source corpus\n  tokenizer ← retok@2.tokenizer",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let dot = stdout(&p.run(&["dag", "loop.toml", "--format", "dot"]));
    assert!(dot.starts_with("digraph \"generations\""), "{dot}");
    assert!(
        dot.contains("\"retok@0\" -> \"retok@1\" [label=\"tokenizer → from\"]"),
        "{dot}"
    );
    assert_eq!(dot.matches(" -> ").count(), 6, "{dot}");
    let mermaid = stdout(&p.run(&["dag", "loop.toml", "--format", "mermaid"]));
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert!(
        mermaid.contains("[\"retok@1<br/>(tokenizer)\"]"),
        "{mermaid}"
    );
}

#[test]
fn raising_the_generation_count_adds_only_new_steps() {
    let p = Project::new(50);
    p.write("loop.toml", LOOP);
    let first = p.run_ok("loop.toml", &[]);
    assert_eq!(steps_with(&first, "step_started").len(), 7);

    let set = ["--set", "loop.gen.count=5"];
    let plan = stdout(&p.run(&["plan", "loop.toml", set[0], set[1]]));
    assert!(plan.contains("11 steps: 7 cached, 4 will run"), "{plan}");
    let events = p.run_ok("loop.toml", &set);
    assert_eq!(
        steps_with(&events, "step_started"),
        ["blocks@3", "blocks@4", "retok@3", "retok@4"]
    );
}

#[test]
fn plan_json_lists_dependencies() {
    let p = Project::new(50);
    p.write("loop.toml", LOOP);
    let plan: serde_json::Value =
        serde_json::from_str(&stdout(&p.run(&["plan", "loop.toml", "--json"]))).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 7);
    let blocks1 = steps.iter().find(|s| s["step"] == "blocks@1").unwrap();
    assert_eq!(blocks1["depends_on"], serde_json::json!(["retok@1"]));
    assert_eq!(blocks1["status"], "run");
    assert_eq!(blocks1["why"], serde_json::json!(["never run"]));
}
