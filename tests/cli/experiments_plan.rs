//! experiments/shumailov.toml without network: `xp plan` lists every step of
//! generations 0..3 with its dependencies and names the sources to fetch; raising the
//! generation count adds exactly the new steps; `xp run` stops before any step with a
//! message that says how to provide the sources; on a build without its backend,
//! `xp run` refuses before resolving any source while `xp plan` and `xp validate`
//! warn and succeed.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Project, stderr, stdout};
use serde_json::Value;

const SHUMAILOV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/shumailov.toml");

/// `xp ARGS` offline with an empty Hugging Face cache.
fn offline(p: &Project, args: &[&str]) -> std::process::Output {
    p.xp(args)
        .env("HF_HOME", p.path().join("empty-hf-home"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap()
}

/// Step name → its dependencies, from `xp plan --json`.
fn plan(p: &Project, extra: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut args = vec!["plan", SHUMAILOV, "--json"];
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
