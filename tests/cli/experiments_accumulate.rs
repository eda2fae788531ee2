//! experiments/mini-accumulate.toml offline: it validates and plans; its three arms
//! share generation 0; the replace arm is mini.toml's loop with the settings mini.toml
//! had before its collapse study (the same keys); the
//! accumulate arms' pools hold the real data and every generation's text so far, and
//! are what the next generation trains on.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Project, stderr, stdout};
use serde_json::Value;

const ACCUMULATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/experiments/mini-accumulate.toml"
);
const MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/mini.toml");

struct Planned {
    key: String,
    deps: BTreeSet<String>,
}

fn plan(p: &Project, file: &str) -> BTreeMap<String, Planned> {
    plan_with(p, file, &[])
}

fn plan_with(p: &Project, file: &str, sets: &[&str]) -> BTreeMap<String, Planned> {
    let mut args = vec!["plan", file, "--json"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = p.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let deps = s["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            let planned = Planned {
                key: s["key"].as_str().unwrap().to_string(),
                deps,
            };
            (s["step"].as_str().unwrap().to_string(), planned)
        })
        .collect()
}

#[test]
fn mini_accumulate_validates_and_plans_its_three_arms() {
    let p = Project::new(1);
    let out = p.run(&["validate", ACCUMULATE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("has 71 steps"), "{}", stdout(&out));

    let steps = plan(&p, ACCUMULATE);
    assert_eq!(steps.len(), 71);
    // Generation 0 is the same in every arm: one key, run once.
    for (replace, acc, sub) in [
        ("finetune@0", "acc_finetune@0", "sub_finetune@0"),
        ("synthesize@0", "acc_synthesize@0", "sub_synthesize@0"),
        ("test@0", "acc_test@0", "sub_test@0"),
    ] {
        assert_eq!(steps[replace].key, steps[acc].key, "{acc}");
        assert_eq!(steps[replace].key, steps[sub].key, "{sub}");
    }
    // After it the arms differ.
    assert_ne!(steps["finetune@1"].key, steps["acc_finetune@1"].key);
    assert_ne!(steps["acc_finetune@1"].key, steps["sub_finetune@1"].key);

    // The replace arm is mini.toml's loop as it was before docs/mini-collapse.md moved
    // mini.toml to the paper's settings: its generations 0..3 have those keys.
    let mini = plan_with(
        &p,
        MINI,
        &[
            "steps.blocks.block_size=32",
            "steps.init.max_positions=64",
            "loop.gen.steps.finetune.epochs=4",
            "loop.gen.steps.synthesize.beams=3",
            "loop.gen.steps.synthesize.new_tokens=32",
            "loop.gen.steps.synthesize.min_new_tokens=32",
            "loop.gen.steps.synthesize.repetition_penalty=2.0",
        ],
    );
    for g in 0..4 {
        for step in ["finetune", "synthesize", "test"] {
            let name = format!("{step}@{g}");
            assert_eq!(steps[&name].key, mini[&name].key, "{name}");
        }
    }

    let set = |names: Vec<String>| names.into_iter().collect::<BTreeSet<_>>();
    for arm in ["acc", "sub"] {
        for g in 0..6 {
            // The pool: the real data and the text of generations 0..=g.
            let mut expected: Vec<String> =
                (0..=g).map(|h| format!("{arm}_synthesize@{h}")).collect();
            expected.push("blocks".into());
            assert_eq!(
                steps[&format!("{arm}_pool@{g}")].deps,
                set(expected),
                "{arm}_pool@{g}"
            );
        }
        for g in 1..6 {
            // Generation g trains on pool g-1 and is prompted with generation g-1's text.
            let finetune = &steps[&format!("{arm}_finetune@{g}")].deps;
            assert!(
                finetune.contains(&format!("{arm}_pool@{}", g - 1)),
                "{finetune:?}"
            );
            assert!(
                !finetune.iter().any(|d| d.contains("synthesize")),
                "{finetune:?}"
            );
            let synthesize = &steps[&format!("{arm}_synthesize@{g}")].deps;
            assert_eq!(
                synthesize,
                &set(vec![
                    format!("{arm}_finetune@{g}"),
                    format!("{arm}_synthesize@{}", g - 1)
                ])
            );
        }
    }
    // The subsample arm's pools differ from the accumulate arm's only by `blocks`.
    assert_ne!(steps["acc_pool@0"].key, steps["sub_pool@0"].key);
}
