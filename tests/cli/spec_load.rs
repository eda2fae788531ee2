//! Loading valid experiment files: defaults, overrides, loop expansion.

use std::path::Path;

use xp::backend::{BackendKind, Precision};
use xp::spec::{Experiment, Location, StepDecl, load, load_str};
use xp::steps::StepParams;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spec")
        .join(name)
}

fn load_fixture(name: &str, overrides: &[&str]) -> Experiment {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load(&fixture(name), &overrides).unwrap_or_else(|e| panic!("{name} should load:\n{e}"))
}

fn names(experiment: &Experiment) -> Vec<&str> {
    experiment.steps.iter().map(|s| s.name.as_str()).collect()
}

/// slot -> references, as the planner will see them.
fn refs(step: &StepDecl) -> Vec<(String, Vec<String>)> {
    step.params
        .inputs()
        .into_iter()
        .map(|slot| {
            (
                slot.slot.to_string(),
                slot.refs.iter().map(|r| r.to_string()).collect(),
            )
        })
        .collect()
}

fn slot(step: &StepDecl, slot: &str) -> Vec<String> {
    refs(step)
        .into_iter()
        .find(|(s, _)| s == slot)
        .map(|(_, r)| r)
        .unwrap_or_default()
}

fn params_json(step: &StepDecl) -> serde_json::Value {
    serde_json::to_value(&step.params).unwrap()
}

const MINI: &str = r#"[experiment]
name = "mini"

[sources]
corpus = "data/corpus.txt"
opt = "hf:facebook/opt-125m"

[steps.blocks]
kind = "tokenize"
data = "corpus"
tokenizer = "opt"
"#;

#[test]
fn a_minimal_file_has_defaults_and_no_steps() {
    let experiment = load_fixture("minimal.toml", &[]);
    assert_eq!(experiment.meta.name, "minimal");
    assert_eq!(experiment.meta.seed, 0);
    assert_eq!(experiment.meta.backend, BackendKind::Ndarray);
    assert_eq!(experiment.meta.precision, Precision::F32);
    assert_eq!(experiment.meta.description, None);
    assert!(experiment.sources.is_empty() && experiment.steps.is_empty());
    assert_eq!(experiment.dir, fixture(""));
}

#[test]
fn a_step_gets_its_kind_defaults_and_its_location() {
    let experiment = load_str(MINI, Path::new("exp/mini.toml"), &[]).unwrap();
    assert_eq!(experiment.dir, Path::new("exp"));
    let source = &experiment.sources["opt"];
    assert_eq!(source.value, "hf:facebook/opt-125m");
    assert_eq!(source.location.to_string(), "exp/mini.toml:6:7");
    let [step] = experiment.steps.as_slice() else {
        panic!("one step")
    };
    assert_eq!(step.name, "blocks");
    assert_eq!(step.generation, None);
    assert_eq!(step.location.to_string(), "exp/mini.toml:8:8");
    assert_eq!(
        step.ref_locations["corpus"].to_string(),
        "exp/mini.toml:10:8"
    );
    let StepParams::Tokenize(p) = &step.params else {
        panic!("tokenize")
    };
    assert_eq!(p.block_size, 64);
    assert_eq!(p.splits, ["train", "validation", "test"]);
}

#[test]
fn kind_defaults_sit_under_the_steps_own_keys() {
    let experiment = load_fixture("loop.toml", &[]);
    let block_size = |name: &str| match &experiment.step(name).unwrap().params {
        StepParams::Tokenize(p) => p.block_size,
        other => panic!("{name} is {}", other.kind()),
    };
    assert_eq!(block_size("real"), 64, "the step's own key wins");
    assert_eq!(
        block_size("blocks@0"),
        16,
        "[defaults.tokenize] fills the gap"
    );
    assert_eq!(block_size("last"), 16);
}

#[test]
fn overrides_of_every_shape_apply() {
    // (override, check on the loaded experiment)
    type Check = fn(&Experiment) -> bool;
    let cases: &[(&[&str], Check)] = &[
        (
            &["steps.real.block_size=32"],
            |e| matches!(&e.step("real").unwrap().params, StepParams::Tokenize(p) if p.block_size == 32),
        ),
        (&["experiment.backend=cuda"], |e| {
            e.meta.backend == BackendKind::Cuda
        }),
        (&["experiment.backend=\"cuda\""], |e| {
            e.meta.backend == BackendKind::Cuda
        }),
        (&["experiment.precision=tf32"], |e| {
            e.meta.precision == Precision::Tf32
        }),
        (&["experiment.seed=7"], |e| e.meta.seed == 7),
        (&["experiment.description=\"two words\""], |e| {
            e.meta.description.as_deref() == Some("two words")
        }),
        (&["loop.gen.count=5"], |e| e.steps.len() == 3 + 2 * 5),
        (
            &["loop.gen.steps.tok.vocab_size=100"],
            |e| matches!(&e.step("tok@2").unwrap().params, StepParams::Tokenizer(p) if p.vocab_size == 100),
        ),
        (&["sources.opt=/local/dir/opt-125m"], |e| {
            e.sources["opt"].value == "/local/dir/opt-125m"
        }),
        (
            &["defaults.tokenize.block_size=8"],
            |e| matches!(&e.step("blocks@1").unwrap().params, StepParams::Tokenize(p) if p.block_size == 8),
        ),
        (&["steps.real.splits=[\"train\", \"test\"]"], |e| {
            e.step("real").unwrap().params.outputs().len() == 3
        }),
        // A later override wins over an earlier one.
        (&["experiment.seed=1", "experiment.seed=2"], |e| {
            e.meta.seed == 2
        }),
        // New keys and even new steps can be set.
        (
            &["steps.extra.kind=tokenizer", "steps.extra.from=opt"],
            |e| e.step("extra").is_some(),
        ),
    ];
    for (overrides, check) in cases {
        let experiment = load_fixture("loop.toml", overrides);
        assert!(check(&experiment), "override {overrides:?} did not apply");
    }
    // The override's location is its own text.
    let e = load_fixture("loop.toml", &["sources.opt=/local"]);
    assert_eq!(
        e.sources["opt"].location,
        Location::Override {
            text: "sources.opt=/local".into(),
            col: 13
        }
    );
}

#[test]
fn loops_expand_in_file_order_generation_by_generation() {
    let experiment = load_fixture("loop.toml", &[]);
    assert_eq!(
        names(&experiment),
        [
            "base", "real", "tok@0", "blocks@0", "tok@1", "blocks@1", "tok@2", "blocks@2", "last"
        ]
    );
    let tok1 = experiment.step("tok@1").unwrap();
    assert_eq!(tok1.generation, Some(("gen".to_string(), 1)));
    assert!(
        tok1.location.to_string().ends_with("loop.toml:32:17"),
        "{}",
        tok1.location
    );
}

#[test]
fn carry_chains_across_generations() {
    let experiment = load_fixture("loop.toml", &[]);
    let step = |name| experiment.step(name).unwrap();
    // Generation 0 gets `carry`, generation g+1 gets `next` resolved in generation g.
    assert_eq!(slot(step("tok@0"), "train_on"), ["real.train"]);
    assert_eq!(slot(step("blocks@0"), "data"), ["real.train"]);
    assert_eq!(slot(step("tok@1"), "train_on"), ["blocks@0.train"]);
    assert_eq!(slot(step("blocks@2"), "data"), ["blocks@1.train"]);
    // A bare loop-step name means the same generation's step.
    assert_eq!(slot(step("blocks@2"), "tokenizer"), ["tok@2.tokenizer"]);
    // Outside the loop: `@last` and `@g`.
    assert_eq!(slot(step("last"), "data"), ["blocks@2.train"]);
    assert_eq!(slot(step("last"), "tokenizer"), ["tok@0.tokenizer"]);
    // `carry.data` in generation 1 was written at line 39 col 8 of the file.
    let loc = &step("blocks@1").ref_locations["blocks@0.train"];
    assert!(loc.to_string().ends_with("loop.toml:39:8"), "{loc}");
}

#[test]
fn raising_count_adds_steps_and_keeps_the_others_identical() {
    let three = load_fixture("loop.toml", &[]);
    let nine = load_fixture("loop.toml", &["loop.gen.count=9"]);
    assert_eq!(nine.steps.len(), three.steps.len() + 2 * 6);
    for step in &three.steps {
        if step.name == "last" {
            // `@last` moves with the count, as asked.
            assert_eq!(slot(nine.step("last").unwrap(), "data"), ["blocks@8.train"]);
            continue;
        }
        let same = nine
            .step(&step.name)
            .unwrap_or_else(|| panic!("{} kept", step.name));
        assert_eq!(
            params_json(step),
            params_json(same),
            "{} unchanged",
            step.name
        );
    }
}
