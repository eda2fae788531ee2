//! experiments/shumailov.toml without network: `xp plan` lists every step of
//! generations 0..3 with its dependencies and names the sources to fetch; raising the
//! generation count adds exactly the new steps; `xp run` stops before any step with a
//! message that says how to provide the sources; on a build without its backend,
//! `xp run` refuses before resolving any source while `xp plan` and `xp validate`
//! warn and succeed. The real-scale studies (shumailov-accumulate.toml,
//! shumailov-select.toml) plan offline too, every arm's data flow as declared.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Project, stderr, stdout};
use serde_json::Value;

const SHUMAILOV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/shumailov.toml");
const ACCUMULATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/experiments/shumailov-accumulate.toml"
);
const SELECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/experiments/shumailov-select.toml"
);

/// `xp ARGS` offline with an empty Hugging Face cache.
fn offline(p: &Project, args: &[&str]) -> std::process::Output {
    p.xp(args)
        .env("HF_HOME", p.path().join("empty-hf-home"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap()
}

/// Step name → its dependencies, from `xp plan --json` of shumailov.toml.
fn plan(p: &Project, extra: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    plan_file(p, SHUMAILOV, extra)
}

/// Step name → its dependencies, from `xp plan --json` of `file`; every step waits for
/// the sources.
fn plan_file(p: &Project, file: &str, extra: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut args = vec!["plan", file, "--json"];
    args.extend_from_slice(extra);
    let out = offline(p, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["status"], "fetch", "{s}");
            let deps = s["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            (s["step"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn generation_steps(generations: std::ops::Range<usize>) -> Vec<String> {
    generations
        .flat_map(|g| ["finetune", "synthesize", "test", "answers"].map(|s| format!("{s}@{g}")))
        .collect()
}

#[test]
fn plan_lists_every_generation_offline_and_names_the_sources_to_fetch() {
    let p = Project::new(1);
    let steps = plan(&p, &[]);
    let mut expected = generation_steps(0..4);
    expected.extend(["blocks", "fig1", "report"].map(String::from));
    expected.sort();
    assert_eq!(steps.keys().cloned().collect::<Vec<_>>(), expected);
    // The chain of generations: g trains on what g-1 wrote, from the same start model.
    let set = |names: &[String]| names.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(steps["finetune@0"], set(&["blocks".into()]));
    for g in 1..4 {
        let (this, prev) = (format!("finetune@{g}"), format!("synthesize@{}", g - 1));
        assert_eq!(steps[&this], set(&["blocks".into(), prev.clone()]));
        let synthesize = format!("synthesize@{g}");
        assert_eq!(steps[&synthesize], set(&[this, prev]));
    }
    // fig1 scores the real data and every generation's text under generation 0.
    let mut fig1 = generation_steps(0..4);
    fig1.retain(|s| s.starts_with("synthesize"));
    fig1.extend(["blocks".into(), "finetune@0".into()]);
    assert_eq!(steps["fig1"], set(&fig1));

    let text = offline(&p, &["plan", SHUMAILOV]);
    let all = stdout(&text) + &stderr(&text);
    assert!(
        all.contains("19 steps: 0 cached, 0 will run, 19 wait for sources to be fetched"),
        "{all}"
    );
    for source in ["opt", "wikitext"] {
        assert!(
            all.contains(&format!("source `{source}` must be fetched")),
            "{all}"
        );
        assert!(all.contains(&format!("--set sources.{source}=")), "{all}");
    }
}

#[test]
fn ten_generations_add_exactly_the_new_steps() {
    let p = Project::new(1);
    let four = plan(&p, &[]);
    let ten = plan(&p, &["--set", "loop.gen.count=10"]);
    assert_eq!(ten.len(), 43);
    let mut added: Vec<String> = ten
        .keys()
        .filter(|s| !four.contains_key(*s))
        .cloned()
        .collect();
    added.sort();
    let mut expected = generation_steps(4..10);
    expected.sort();
    assert_eq!(added, expected);
    // Every step of the 4-generation plan is there with the same inputs, except the
    // two that gather all generations.
    for (step, deps) in &four {
        if step != "fig1" && step != "report" {
            assert_eq!(&ten[step], deps, "{step}");
        }
    }
    assert_eq!(ten["fig1"].len(), 12, "{:?}", ten["fig1"]);
}

#[test]
fn run_without_network_stops_before_any_step_and_says_how_to_provide_sources() {
    let p = Project::new(1);
    // On ndarray, so that the missing sources are what stops it on any build.
    let out = offline(&p, &["run", SHUMAILOV, "--backend", "ndarray"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    for hint in [
        "sources.opt: ",
        "sources.wikitext: ",
        "Hugging Face cache",
        "--set sources.opt=",
        "--set sources.wikitext=",
    ] {
        assert!(err.contains(hint), "missing {hint:?} in\n{err}");
    }
    assert!(
        !p.cache().join("entries").exists()
            || std::fs::read_dir(p.cache().join("entries"))
                .unwrap()
                .next()
                .is_none(),
        "nothing was stored"
    );
}

/// `xp ARGS` with the network reachable in principle but the Hub at a closed local
/// port: anything that tried to resolve an `hf:` source would fail with exit 4.
fn hub_closed(p: &Project, args: &[&str]) -> std::process::Output {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    p.xp(args)
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HOME", p.path().join("hf-home"))
        .env_remove("HF_HUB_CACHE")
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap()
}

/// `xp run` refuses the experiment on a build without `kind` (exit 2, naming the
/// feature) before resolving a source or opening the store; `xp plan` and `xp
/// validate` of the same file succeed with a warning naming it.
fn refused_by_run_planned_anyway(kind: xp::backend::BackendKind, extra: &[&str]) {
    let feature = kind.cargo_feature().unwrap();
    if kind.is_compiled() {
        eprintln!(
            "SKIPPED: this xp is built with `{feature}`; the refusal is tested on builds without it"
        );
        return;
    }
    let p = Project::new(1);
    let mut args = vec!["run", SHUMAILOV];
    args.extend_from_slice(extra);
    let out = hub_closed(&p, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("without the `{feature}` feature")),
        "{err}"
    );
    assert!(err.contains(&format!("--features {feature}")), "{err}");
    assert!(!err.contains("sources."), "no source was resolved: {err}");
    assert!(!p.cache().exists(), "the store was not even created");
    assert!(!p.path().join("hf-home").exists(), "nothing was downloaded");
    assert!(stdout(&out).is_empty(), "no step started: {}", stdout(&out));

    for command in ["plan", "validate"] {
        let mut args = vec![command, SHUMAILOV];
        args.extend_from_slice(extra);
        let out = offline(&p, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "xp {command}: {err}");
        assert!(
            err.contains("warning: ") && err.contains(&format!("`{feature}` feature")),
            "xp {command}: {err}"
        );
    }
}

#[test]
fn run_refuses_cuda_on_a_build_without_it_but_plan_and_validate_warn() {
    refused_by_run_planned_anyway(xp::backend::BackendKind::Cuda, &[]);
}

#[test]
fn run_refuses_wgpu_on_a_build_without_it_but_plan_and_validate_warn() {
    refused_by_run_planned_anyway(xp::backend::BackendKind::Wgpu, &["--backend", "wgpu"]);
}

#[test]
fn the_backend_on_the_command_line_is_checked_by_clap() {
    let p = Project::new(1);
    let out = offline(&p, &["plan", SHUMAILOV, "--backend", "tpu"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ndarray") && err.contains("cuda"), "{err}");
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// `{prefix}finetune@0..count` etc.: a loop's steps, one name per generation.
fn loop_steps(prefix: &str, steps: &[&str], count: usize) -> Vec<String> {
    (0..count)
        .flat_map(|g| steps.iter().map(move |s| format!("{prefix}{s}@{g}")))
        .collect()
}

/// `xp plan` of `file` offline says how many steps wait for the two sources.
fn assert_waits_for_sources(p: &Project, file: &str, steps: usize) {
    let text = offline(p, &["plan", file]);
    let all = stdout(&text) + &stderr(&text);
    let line =
        format!("{steps} steps: 0 cached, 0 will run, {steps} wait for sources to be fetched");
    assert!(all.contains(&line), "{all}");
    for source in ["opt", "wikitext"] {
        assert!(
            all.contains(&format!("source `{source}` must be fetched")),
            "{all}"
        );
    }
}

#[test]
fn the_accumulate_study_plans_offline_with_each_arms_data_flow() {
    let p = Project::new(1);
    let steps = plan_file(&p, ACCUMULATE, &[]);
    let mut expected = loop_steps("", &["finetune", "synthesize", "test"], 6);
    expected.extend(loop_steps(
        "acc_",
        &["finetune", "synthesize", "pool", "test"],
        6,
    ));
    expected.extend(loop_steps(
        "sub_",
        &["finetune", "synthesize", "pool", "test"],
        6,
    ));
    expected.extend(["blocks", "report"].map(String::from));
    expected.sort();
    assert_eq!(steps.keys().cloned().collect::<Vec<_>>(), expected);
    assert_waits_for_sources(&p, ACCUMULATE, 68);

    // Every generation 0 trains on the real data from the pre-trained model (a source).
    for arm in ["", "acc_", "sub_"] {
        assert_eq!(
            steps[&format!("{arm}finetune@0")],
            names(&["blocks"]),
            "{arm}"
        );
    }
    for g in 1..6 {
        let prev = g - 1;
        // Replace: what generation g-1 wrote, and it prompts with that too.
        assert_eq!(
            steps[&format!("finetune@{g}")],
            names(&["blocks", &format!("synthesize@{prev}")])
        );
        for arm in ["acc_", "sub_"] {
            // Accumulate(-subsample): the pool, made of the real data and the text of
            // every generation up to g-1; prompts follow the chain of what was written.
            assert_eq!(
                steps[&format!("{arm}finetune@{g}")],
                names(&["blocks", &format!("{arm}pool@{prev}")]),
                "{arm}{g}"
            );
            assert_eq!(
                steps[&format!("{arm}synthesize@{g}")],
                names(&[
                    &format!("{arm}finetune@{g}"),
                    &format!("{arm}synthesize@{prev}")
                ]),
                "{arm}{g}"
            );
        }
    }
    for g in 0..6 {
        for arm in ["acc_", "sub_"] {
            let mut pool = loop_steps(arm, &["synthesize"], g + 1);
            pool.push("blocks".into());
            let pool: BTreeSet<String> = pool.into_iter().collect();
            assert_eq!(steps[&format!("{arm}pool@{g}")], pool, "{arm}pool@{g}");
        }
    }
    assert_eq!(steps["report"].len(), 36, "{:?}", steps["report"]);

    // The override the file's comment gives for the exact subsample size is accepted
    // and changes no dependency.
    let bigger = plan_file(
        &p,
        ACCUMULATE,
        &["--set", "loop.subsample.steps.sub_pool.blocks=40000"],
    );
    assert_eq!(bigger, steps);
}

#[test]
fn the_selection_study_plans_offline_with_each_arms_selection() {
    let p = Project::new(1);
    let steps = plan_file(&p, SELECT, &[]);
    let mut expected = loop_steps("", &["finetune", "synthesize", "test"], 4);
    for arm in ["hi_", "lo_", "rs_"] {
        expected.extend(loop_steps(
            arm,
            &["finetune", "synthesize", "select", "test"],
            4,
        ));
    }
    expected.extend(["blocks", "kept", "report"].map(String::from));
    expected.sort();
    assert_eq!(steps.keys().cloned().collect::<Vec<_>>(), expected);
    assert_waits_for_sources(&p, SELECT, 63);

    for g in 0..4 {
        // Highest and lowest: scored by the model that wrote the text.
        for arm in ["hi_", "lo_"] {
            assert_eq!(
                steps[&format!("{arm}select@{g}")],
                names(&[
                    &format!("{arm}finetune@{g}"),
                    &format!("{arm}synthesize@{g}")
                ]),
                "{arm}{g}"
            );
        }
        // Resample: scored by generation 0's model, towards the real data.
        assert_eq!(
            steps[&format!("rs_select@{g}")],
            names(&["finetune@0", &format!("rs_synthesize@{g}"), "blocks"]),
            "{g}"
        );
    }
    for g in 1..4 {
        let prev = g - 1;
        for arm in ["hi_", "lo_", "rs_"] {
            // Generation g trains on the selection of g-1's text, prompts with all of it.
            assert_eq!(
                steps[&format!("{arm}finetune@{g}")],
                names(&["blocks", &format!("{arm}select@{prev}")]),
                "{arm}{g}"
            );
            assert_eq!(
                steps[&format!("{arm}synthesize@{g}")],
                names(&[
                    &format!("{arm}finetune@{g}"),
                    &format!("{arm}synthesize@{prev}")
                ]),
                "{arm}{g}"
            );
        }
    }
    // `kept` scores, under generation 0's model, the real data, every generation's text
    // and every selection.
    let mut kept = loop_steps("", &["synthesize"], 4);
    for arm in ["hi_", "lo_", "rs_"] {
        kept.extend(loop_steps(arm, &["select"], 4));
    }
    kept.extend(["blocks".into(), "finetune@0".into()]);
    assert_eq!(steps["kept"], kept.into_iter().collect::<BTreeSet<_>>());
}
