//! experiments/mini.toml end to end through the real binary, as the README's
//! quick start runs it: every step executes, the report shows collapse, and a
//! second run executes nothing.

mod common;

use common::{Project, stdout, steps_with};

#[test]
fn mini_runs_end_to_end_and_shows_collapse() {
    let p = Project::new(10);
    let mini = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/mini.toml");
    let first = p.run_ok(mini, &[]);
    assert!(steps_with(&first, "step_failed").is_empty(), "{first:?}");
    assert_eq!(steps_with(&first, "step_started").len(), 22);

    let show: serde_json::Value =
        serde_json::from_str(&stdout(&p.run(&["show", mini, "--json"]))).unwrap();
    let steps = show.as_array().unwrap();
    let test_perplexity = |g: usize| {
        let step = steps
            .iter()
            .find(|s| s["step"] == format!("test@{g}"))
            .unwrap();
        step["metrics"]["blocks.test"]["corpus_perplexity"]
            .as_f64()
            .unwrap()
    };
    // Model collapse: every generation is worse on held-out real text than the one before.
    let perplexities: Vec<f64> = (0..4).map(test_perplexity).collect();
    for g in 1..4 {
        assert!(
            perplexities[g] > perplexities[g - 1],
            "test perplexity by generation: {perplexities:?}"
        );
    }
    assert!(perplexities[3] > 2.0 * perplexities[0], "{perplexities:?}");

    // Every report artifact is there.
    let report = steps.iter().find(|s| s["step"] == "report").unwrap();
    let dir = std::path::PathBuf::from(report["outputs"][0]["path"].as_str().unwrap());
    for file in ["report.md", "report.html"] {
        assert!(
            dir.join(file).is_file(),
            "missing {file} in {}",
            dir.display()
        );
    }
    let figures: Vec<_> = std::fs::read_dir(dir.join("figures"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(
        figures
            .iter()
            .any(|f| f.path().extension().is_some_and(|e| e == "png"))
    );
    assert!(
        figures
            .iter()
            .any(|f| f.path().extension().is_some_and(|e| e == "svg"))
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 4,
        "the four figures are inline"
    );

    let second = p.run_ok(mini, &[]);
    assert!(steps_with(&second, "step_started").is_empty(), "{second:?}");
    assert_eq!(steps_with(&second, "step_cached").len(), 22);
}
