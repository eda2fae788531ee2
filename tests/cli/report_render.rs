//! The `report` kind through the real binary: an experiment whose report step
//! reads fixture files (tests/fixtures/report/, made by make_fixtures.py in the
//! formats of src/artifacts/) renders every figure and table; editing only the
//! report's parameters reruns only the report; the page, opened in headless
//! Chromium (Debian package `chromium`) at 1400 × 900, fits the window.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Project, stderr, stdout, steps_with};

const FIXTURES: &[&str] = &[
    "scores_synthetic.json",
    "scores_test_g0.json",
    "scores_test_g1.json",
    "scores_test_g2.json",
    "metrics_g0.jsonl",
    "metrics_g1.jsonl",
    "metrics_g2.jsonl",
    "answers_g0.json",
    "answers_g1.json",
    "answers_g2.json",
];

/// A cheap upstream step (`corpus`) beside a report fed by fixture sources.
const EXPERIMENT: &str = r#"[experiment]
name = "report-fixtures"
seed = 0

[sources]
scores_synthetic = "fixtures/scores_synthetic.json"
scores_test_g0 = "fixtures/scores_test_g0.json"
scores_test_g1 = "fixtures/scores_test_g1.json"
scores_test_g2 = "fixtures/scores_test_g2.json"
metrics_g0 = "fixtures/metrics_g0.jsonl"
metrics_g1 = "fixtures/metrics_g1.jsonl"
metrics_g2 = "fixtures/metrics_g2.jsonl"
answers_g0 = "fixtures/answers_g0.json"
answers_g1 = "fixtures/answers_g1.json"
answers_g2 = "fixtures/answers_g2.json"

[steps.corpus]
kind = "corpus"
train_rows = 40
eval_rows = 10

[steps.report]
kind = "report"
title = "Fixture report"
evaluations = ["scores_synthetic", "scores_test_g0", "scores_test_g1", "scores_test_g2"]
training = ["metrics_g0", "metrics_g1", "metrics_g2"]
answers = ["answers_g0", "answers_g1", "answers_g2"]
width = 640
height = 400
"#;

fn project() -> Project {
    let p = Project::new(4);
    let dir = p.path().join("fixtures");
    std::fs::create_dir(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report");
    for name in FIXTURES {
        std::fs::copy(src.join(name), dir.join(name)).unwrap();
    }
    p.write("report.toml", EXPERIMENT);
    p
}

/// `xp report FILE --json`: the report's directory once built.
fn report_dir(p: &Project, extra: &[&str]) -> PathBuf {
    let mut args = vec!["report", "report.toml", "--json"];
    args.extend_from_slice(extra);
    let out = p.run(&args);
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let row: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(row["step"], "report");
    assert_eq!(row["built"], true);
    PathBuf::from(row["dir"].as_str().unwrap())
}

#[test]
fn the_report_holds_every_figure_and_table() {
    let p = project();
    let before = p.run(&["report", "report.toml"]);
    assert_eq!(before.status.code(), Some(1), "{}", stdout(&before));
    assert!(
        stdout(&before).contains("not built yet") && stdout(&before).contains("xp run report.toml"),
        "{}",
        stdout(&before)
    );

    p.run_ok("report.toml", &[]);
    let dir = report_dir(&p, &[]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    // XP_KEEP_REPORT=DIR keeps a copy to look at.
    if let Ok(keep) = std::env::var("XP_KEEP_REPORT") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep.join("figures")).unwrap();
        for entry in std::fs::read_dir(dir.join("figures")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), keep.join("figures").join(entry.file_name())).unwrap();
        }
        std::fs::copy(dir.join("report.html"), keep.join("report.html")).unwrap();
        std::fs::copy(dir.join("report.md"), keep.join("report.md")).unwrap();
    }

    assert!(html.contains("<h1>Fixture report</h1>"));
    for figure in ["density", "perplexity", "collapse", "training"] {
        assert!(
            html.contains(&format!("<figure id=\"fig-{figure}\">\n<svg")),
            "figure {figure} missing from the HTML, or its SVG not inline"
        );
        let png = std::fs::read(dir.join(format!("figures/{figure}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{figure}.png");
        assert!(png.len() > 5_000, "{figure}.png is suspiciously small");
        let svg = std::fs::read_to_string(dir.join(format!("figures/{figure}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{figure}.svg");
        assert!(md.contains(&format!("![{figure}](figures/{figure}.png)")));
    }
    assert_eq!(html.matches("<svg").count(), 4, "one inline SVG per figure");
    for table in [
        "perplexity",
        "collapse",
        "training",
        "prompts",
        "provenance",
        "sets",
    ] {
        assert!(
            html.contains(&format!("<table id=\"table-{table}\">")),
            "table {table} missing"
        );
    }
    // Self-contained: nothing fetched from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    // Density legend: one curve per generation of the synthetic sets; the test
    // split scored by each generation's model is its own group.
    let density = std::fs::read_to_string(dir.join("figures/density.svg")).unwrap();
    for g in ["gen 0", "gen 1", "gen 2"] {
        assert!(density.contains(g), "density legend lacks {g}");
    }
    assert!(density.contains("synthesize@*.blocks scored by finetune@0.model"));
    assert!(density.contains("blocks.test scored by finetune@*.model"));

    // The prompt table: rows = prompts, columns = generations, text escaped.
    assert!(html.contains("<th>gen 0 (finetune@0.model)</th><th>gen 1 (finetune@1.model)</th><th>gen 2 (finetune@2.model)</th>"));
    assert!(html.contains("a &lt;secret&gt; &amp; its keeper."));
    assert!(md.contains("The river flows \\| through the old town"));

    // Provenance: every input names its source; every set and scorer its key.
    for name in FIXTURES {
        let label = name.split('.').next().unwrap();
        assert!(
            html.contains(&format!("<td>{label}</td>")),
            "provenance lacks {label}"
        );
    }
    let scores: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("fixtures/scores_synthetic.json")).unwrap(),
    )
    .unwrap();
    for set in scores["sets"].as_array().unwrap() {
        assert!(html.contains(set["key"].as_str().unwrap()));
    }
    assert!(html.contains(scores["model_key"].as_str().unwrap()));
    // Numbers come from the inputs: the first set's corpus perplexity, as printed.
    let first = scores["sets"][0]["corpus_perplexity"].as_f64().unwrap();
    assert!(
        html.contains(&format!("{first:.3}")),
        "corpus perplexity {first} not shown"
    );
}

#[test]
fn editing_only_report_parameters_reruns_only_the_report() {
    let p = project();
    let first = p.run_ok("report.toml", &[]);
    assert_eq!(steps_with(&first, "step_started"), ["corpus", "report"]);

    let second = p.run_ok(
        "report.toml",
        &["--set", "steps.report.title=Another title"],
    );
    assert_eq!(steps_with(&second, "step_started"), ["report"]);
    assert_eq!(steps_with(&second, "step_cached"), ["corpus"]);
    let dir = report_dir(&p, &["--set", "steps.report.title=Another title"]);
    assert!(
        std::fs::read_to_string(dir.join("report.html"))
            .unwrap()
            .contains("<h1>Another title</h1>")
    );

    let third = p.run_ok(
        "report.toml",
        &["--set", "steps.report.figures=[\"density\"]"],
    );
    assert_eq!(steps_with(&third, "step_started"), ["report"]);
    let dir = report_dir(&p, &["--set", "steps.report.figures=[\"density\"]"]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 1);
    assert!(!dir.join("figures/training.png").exists());
}

#[test]
fn a_broken_input_fails_the_step_naming_the_file() {
    let p = project();
    std::fs::write(
        p.path().join("fixtures/metrics_g1.jsonl"),
        "{\"type\":\"train\",\"epoch\":1}\n",
    )
    .unwrap();
    let out = p.run(&["run", "report.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("metrics_g1.jsonl") && all.contains("line 1"),
        "{all}"
    );
}

#[test]
fn xp_report_refuses_an_experiment_without_a_report_step() {
    let p = project();
    p.write("plain.toml", "[experiment]\nname = \"plain\"\n\n[steps.corpus]\nkind = \"corpus\"\ntrain_rows = 10\neval_rows = 5\n");
    let out = p.run(&["report", "plain.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no step of kind `report`"),
        "{}",
        stderr(&out)
    );
}

/// Debian's `chromium` package installs it here.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs Chromium headless on `url` with `extra` flags, a fresh profile under
/// `scratch`, killed after two minutes; returns its stdout.
fn chromium(scratch: &Path, extra: &[String], url: &str) -> String {
    let profile = tempfile::tempdir_in(scratch).unwrap();
    let stdout_path = profile.path().join("stdout");
    let stderr_path = profile.path().join("stderr");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        // Files, not pipes: a dumped DOM is larger than a pipe's buffer.
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            child.kill().ok();
            panic!("chromium did not finish within 2 minutes on {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "chromium failed on {url}: {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    String::from_utf8_lossy(&std::fs::read(&stdout_path).unwrap()).into_owned()
}

/// The report as a reader sees it: Chromium opens `report.html` in a 1400 × 900
/// window; the page must not scroll sideways (its scroll width is at most the
/// window's), and a screenshot is kept beside it (`report-1400x900.png` in the
/// test's directory; set XP_KEEP_REPORT=DIR to keep a copy). Skipped, saying
/// so, where Chromium is not installed.
#[test]
fn the_page_fits_a_1400_pixel_window_in_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED the_page_fits_a_1400_pixel_window_in_chromium: {CHROMIUM} not found \
             (Debian: apt-get install chromium)"
        );
        return;
    }
    let p = project();
    p.run_ok("report.toml", &[]);
    let dir = report_dir(&p, &[]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();

    // A copy that writes the page's widths into the DOM once laid out.
    let probe = html.replace(
        "</body>",
        "<script>document.body.setAttribute('data-xp-widths', [\
         document.documentElement.scrollWidth, document.documentElement.clientWidth, \
         window.innerWidth].join(' '));</script>\n</body>",
    );
    let probe_path = p.path().join("probe.html");
    std::fs::write(&probe_path, probe).unwrap();
    let dom = chromium(
        p.path(),
        &["--dump-dom".into()],
        &format!("file://{}", probe_path.display()),
    );
    let widths: Vec<u32> = dom
        .split("data-xp-widths=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no widths in the dumped DOM:\n{dom}"))
        .split(' ')
        .map(|w| w.parse().unwrap())
        .collect();
    let (scroll, client, window) = (widths[0], widths[1], widths[2]);
    assert_eq!(
        window, 1400,
        "the window is not 1400 pixels wide: {widths:?}"
    );
    assert!(
        scroll <= client,
        "the page scrolls sideways: {scroll} px of content in a {client} px window"
    );

    let shot = p.path().join("report-1400x900.png");
    chromium(
        p.path(),
        &[format!("--screenshot={}", shot.display())],
        &format!("file://{}", dir.join("report.html").display()),
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1400, 900), "screenshot size");
    if let Ok(keep) = std::env::var("XP_KEEP_REPORT") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&shot, Path::new(&keep).join("report-1400x900.png")).unwrap();
    }
    eprintln!(
        "chromium: page {scroll} px wide in a {client} px window; screenshot {}",
        shot.display()
    );
}
