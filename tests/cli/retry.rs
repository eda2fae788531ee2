//! `retry = { max = N }` through the real binary, with a `command` step whose
//! script kills its own `xp exec-step` process (`kill -9 $PPID`) on its first
//! attempts: a killed step is started again and its manifest lists every attempt;
//! a step failing with its own error is not; retries run out with a message that
//! says how many attempts were made; and `retry` is not part of the key.

use crate::common;

use common::{Project, events, stderr, stdout, steps_with};
use serde_json::Value;

/// Appends a line to `$MARKS/attempts` (outside the store, so it survives the
/// kill), then kills the step's process while there are no more than `$KILLS`
/// lines, else writes its output. `$FAIL` makes it fail on its own instead.
const EXPERIMENT: &str = r#"[experiment]
name = "retry"

[steps.flaky]
kind = "command"
argv = ["sh", "-c", """
echo attempt >> "$MARKS/attempts"
if [ -n "$FAIL" ]; then echo 'bad input' >&2; exit 3; fi
if [ "$(wc -l < "$MARKS/attempts")" -le "$KILLS" ]; then kill -9 $PPID; exit 1; fi
echo ok > "$XP_OUTPUT_DONE"
"""]
env = { MARKS = "MARKS_DIR", KILLS = "1", FAIL = "" }
outputs = { done = "done.txt" }
retry = { max = 2 }
"#;

fn project() -> Project {
    let p = Project::new(4);
    let marks = p.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    p.write(
        "x.toml",
        &EXPERIMENT.replace("MARKS_DIR", &marks.display().to_string()),
    );
    p
}

/// How many times the script started.
fn started(p: &Project) -> usize {
    std::fs::read_to_string(p.path().join("marks/attempts"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The manifest of the store's only entry.
fn manifest(p: &Project) -> Value {
    let entries = p.entries();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let path = p
        .cache()
        .join("entries")
        .join(&entries[0])
        .join("manifest.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn run(p: &Project, extra: &[&str]) -> (std::process::Output, Vec<Value>) {
    let mut args = vec!["run", "x.toml", "--json"];
    args.extend_from_slice(extra);
    let out = p.run(&args);
    let events = events(&out);
    (out, events)
}

#[test]
fn a_step_killed_once_succeeds_on_its_second_attempt_and_lists_both() {
    // One job (the local executor, which runs a step with `retry` as a child)
    // and two (the parallel one).
    for jobs in ["1", "2"] {
        let p = project();
        let (out, events) = run(&p, &["--jobs", jobs]);
        assert!(out.status.success(), "--jobs {jobs}: {}", stderr(&out));
        assert_eq!(started(&p), 2, "--jobs {jobs}");
        assert_eq!(steps_with(&events, "step_retrying"), ["flaky"]);
        let retrying = events
            .iter()
            .find(|e| e["event"] == "step_retrying")
            .unwrap();
        assert_eq!(retrying["attempt"], 2);
        assert_eq!(retrying["max_attempts"], 3);
        assert_eq!(retrying["why"], "killed by signal 9");
        assert_eq!(steps_with(&events, "step_finished"), ["flaky"]);
        assert!(steps_with(&events, "step_failed").is_empty(), "{events:?}");

        let manifest = manifest(&p);
        let attempts = manifest["attempts"].as_array().unwrap();
        let outcomes: Vec<(u64, &str)> = attempts
            .iter()
            .map(|a| {
                (
                    a["attempt"].as_u64().unwrap(),
                    a["outcome"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(outcomes, [(1, "killed by signal 9"), (2, "completed")]);
        // Attempts are in time order, the published one last, and the manifest's
        // start is that of the published attempt.
        let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        assert!(time(&attempts[0]["ended_at"]) <= time(&attempts[1]["started_at"]));
        assert_eq!(attempts[1]["started_at"], manifest["started_at"]);
    }
}

#[test]
fn a_step_failing_with_its_own_error_is_not_retried() {
    let p = project();
    let (out, events) = run(&p, &["--set", "steps.flaky.env.FAIL=\"yes\""]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(started(&p), 1);
    assert!(
        steps_with(&events, "step_retrying").is_empty(),
        "{events:?}"
    );
    assert_eq!(steps_with(&events, "step_failed"), ["flaky"]);
    assert!(p.entries().is_empty());
}

#[test]
fn a_step_killed_more_often_than_its_retries_fails_saying_how_many_attempts() {
    let p = project();
    let (out, events) = run(&p, &["--set", "steps.flaky.env.KILLS=\"9\""]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(started(&p), 3);
    assert_eq!(
        steps_with(&events, "step_retrying"),
        ["flaky", "flaky"],
        "{events:?}"
    );
    let failed = events
        .iter()
        .find(|e| e["event"] == "step_failed")
        .expect("a step_failed event");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with("gave up after 3 attempts (`retry = { max = 2 }`); the last: its process was killed by signal 9"),
        "{error}"
    );
    assert!(p.entries().is_empty());

    // Without `retry`, a killed step is not started again (and needs no child).
    let p = project();
    let (out, events) = run(&p, &["--set", "steps.flaky.retry.max=0", "--jobs", "2"]);
    assert!(!out.status.success());
    assert_eq!(started(&p), 1);
    assert!(steps_with(&events, "step_retrying").is_empty());
    let failed = events.iter().find(|e| e["event"] == "step_failed").unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("its process was killed by signal 9"),
        "{failed}"
    );
}

#[test]
fn retry_is_not_part_of_the_key() {
    let p = project();
    // Without `retry`: not killed (KILLS = 0), published.
    p.run_ok(
        "x.toml",
        &[
            "--set",
            "steps.flaky.env.KILLS=\"0\"",
            "--set",
            "steps.flaky.retry.max=0",
        ],
    );
    assert_eq!(started(&p), 1);
    // Any `retry` finds the same entry.
    for max in ["0", "1", "5"] {
        let set = format!("steps.flaky.retry.max={max}");
        let events = p.run_ok(
            "x.toml",
            &["--set", "steps.flaky.env.KILLS=\"0\"", "--set", &set],
        );
        assert_eq!(steps_with(&events, "step_cached"), ["flaky"], "max = {max}");
    }
    assert_eq!(started(&p), 1);
}
