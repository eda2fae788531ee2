//! What `xp run --executor slurm` hands to `sbatch`, checked with stand-in
//! `sbatch`/`squeue` scripts on PATH (no cluster needed), the resources
//! table's place outside the key, and retries: a job Slurm stops is submitted
//! again, and the jobs that waited for it after it.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Project, stderr, stdout};

const FILE: &str = r#"[experiment]
name = "fake"

[sources]
text = "corpus"

[defaults.tokenize.resources]
mem = "3G"
time = "0:30:00"

[steps.tok]
kind = "tokenizer"
train_on = "text"
vocab_size = 300
resources = { cpus = 4, partition = "cpu", sbatch_args = ["--qos=low"] }

[steps.blocks]
kind = "tokenize"
data = "text"
tokenizer = "tok.tokenizer"
block_size = 16
"#;

/// A `bin/` with an `sbatch` that records its arguments and script under
/// `calls/` and answers job ids 101, 102...; and an empty `squeue`.
fn fake_slurm(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    let calls = dir.join("calls");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&calls).unwrap();
    let sbatch = format!(
        "#!/bin/sh\nn=$(ls '{calls}' | wc -l)\nid=$((101 + n / 2))\n\
         printf '%s\\n' \"$@\" > '{calls}'/$id.args\ncat > '{calls}'/$id.script\necho $id\n",
        calls = calls.display()
    );
    for (name, text) in [
        ("sbatch", sbatch.as_str()),
        ("squeue", "#!/bin/sh\nexit 0\n"),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[test]
fn each_step_becomes_an_sbatch_job_with_its_resources_and_parents() {
    let p = Project::new(40);
    p.write("x.toml", FILE);
    let bin = fake_slurm(p.path());
    let out = p
        .xp(&["run", "x.toml", "--executor", "slurm", "--detach"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 jobs submitted"),
        "{}",
        stderr(&out)
    );
    let calls = p.path().join("calls");
    let args = |id: u32| std::fs::read_to_string(calls.join(format!("{id}.args"))).unwrap();
    let (tok, blocks) = (args(101), args(102));
    for expected in [
        "--job-name=fake:tok",
        "--kill-on-invalid-dep=yes",
        "--cpus-per-task=4",
        "--mem=2G",
        "--partition=cpu",
        "--qos=low",
    ] {
        assert!(tok.lines().any(|l| l == expected), "{expected} in\n{tok}");
    }
    assert!(!tok.contains("--dependency"), "{tok}");
    for expected in [
        "--job-name=fake:blocks",
        "--dependency=afterok:101",
        "--cpus-per-task=1",
        "--mem=3G",
        "--time=0:30:00",
    ] {
        assert!(
            blocks.lines().any(|l| l == expected),
            "{expected} in\n{blocks}"
        );
    }
    let cache = p.cache();
    assert!(
        blocks.contains(&format!("--output={}/slurm/fake/blocks.", cache.display())),
        "{blocks}"
    );
    // The job runs this xp, on the absolute file, against the absolute store.
    let script = std::fs::read_to_string(calls.join("102.script")).unwrap();
    let file = p.path().join("x.toml");
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(
        script.contains(&format!(
            "exec {} exec-step {} --step blocks --expect-key ",
            sh_word(env!("CARGO_BIN_EXE_xp")),
            sh_word(&file.display().to_string())
        )),
        "{script}"
    );
    assert!(
        script.contains(&format!(
            "--cache-dir {}",
            sh_word(&cache.display().to_string())
        )),
        "{script}"
    );

    // Slurm writes the log where `--output` says (`%j`: the job id), and
    // `xp log` finds it there.
    let output = blocks
        .lines()
        .find_map(|l| l.strip_prefix("--output="))
        .unwrap()
        .replace("%j", "102");
    std::fs::write(&output, "line 1\nline 2\nline 3\n").unwrap();
    let out = p.run(&["log", "x.toml", "blocks", "--path"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), output);
    let out = p.run(&["log", "x.toml", "blocks", "--tail", "2"]);
    assert_eq!(stdout(&out), "line 2\nline 3\n");
}

#[test]
fn resources_do_not_change_keys() {
    let p = Project::new(40);
    p.write("x.toml", FILE);
    let keys = |extra: &[&str]| {
        let mut args = vec!["plan", "x.toml", "--json"];
        args.extend_from_slice(extra);
        let out = p.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let before = keys(&[]);
    let after = keys(&[
        "--set",
        "steps.tok.resources.cpus=16",
        "--set",
        "steps.blocks.resources={ gpus = 1, mem = \"64G\" }",
        "--set",
        "steps.tok.retry.max=3",
    ]);
    assert_eq!(before, after);
}

#[test]
fn detach_needs_slurm_and_a_missing_slurm_is_named() {
    let p = Project::new(20);
    p.write("x.toml", FILE);
    let out = p.run(&["log", "x.toml", "tok"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no Slurm job log"),
        "{}",
        stderr(&out)
    );

    let out = p.run(&["run", "x.toml", "--detach"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--detach needs --executor slurm"));

    let empty = p.path().join("no-slurm");
    std::fs::create_dir(&empty).unwrap();
    let out = p
        .xp(&["run", "x.toml", "--executor", "slurm"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is Slurm installed and on PATH"),
        "{}",
        stderr(&out)
    );
}

/// A word as the job script writes it: bare when every character is plain,
/// otherwise single-quoted.
fn sh_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=./:".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A `bin/` standing in for a cluster that runs every job at once: `sbatch`
/// records the job under `calls/`, then ends it (`states/<id>` holds
/// `STATE|REASON`, which `squeue` reports): `CANCELLED` when a parent of
/// `--dependency=afterok:` did not complete, the state `$END_<id>` when set
/// (`END_101=PREEMPTED`), else by running its script here.
fn fake_cluster(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    for sub in ["bin", "calls", "states"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let sbatch = format!(
        r#"#!/bin/sh
d='{dir}'
id=$((101 + $(ls "$d/states" | wc -l)))
printf '%s\n' "$@" > "$d/calls/$id.args"
cat > "$d/calls/$id.script"
end() {{ echo "$1" > "$d/states/$id"; echo $id; exit 0; }}
for parent in $(printf '%s\n' "$@" | sed -n 's/^--dependency=afterok://p' | tr ':' ' '); do
  grep -q '^COMPLETED' "$d/states/$parent" || end 'CANCELLED|DependencyNeverSatisfied'
done
eval "forced=\${{END_$id:-}}"
[ -n "$forced" ] && end "$forced|None"
if sh "$d/calls/$id.script" > "$d/calls/$id.log" 2>&1; then end 'COMPLETED|None'; fi
end 'FAILED|NonZeroExitCode'
"#,
        dir = dir.display()
    );
    let squeue = format!(
        r#"#!/bin/sh
d='{dir}'
case "$*" in *--me*) exit 0 ;; esac
for id in $(printf '%s\n' "$@" | grep -A1 '^-j$' | tail -n 1 | tr ',' ' '); do
  echo "$id|$(cat "$d/states/$id")"
done
"#,
        dir = dir.display()
    );
    for (name, text) in [("sbatch", sbatch), ("squeue", squeue)] {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// `xp run x.toml --executor slurm` on the fake cluster, `END_<id>=STATE` set.
fn run_on_fake_cluster(p: &Project, ends: &[(&str, &str)]) -> std::process::Output {
    let bin = fake_cluster(p.path());
    let mut command = p.xp(&["run", "x.toml", "--executor", "slurm", "--json"]);
    command
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("XP_SLURM_POLL_MS", "20");
    for (id, state) in ends {
        command.env(format!("END_{id}"), state);
    }
    command.output().unwrap()
}

#[test]
fn stopped_jobs_are_submitted_again_and_failed_ones_are_not() {
    let calls = |p: &Project, id: u32| {
        std::fs::read_to_string(p.path().join(format!("calls/{id}.args"))).unwrap_or_default()
    };
    let retrying = |out: &std::process::Output| -> Vec<serde_json::Value> {
        common::events(out)
            .into_iter()
            .filter(|e| e["event"] == "step_retrying")
            .collect()
    };
    let file = FILE.replace(
        "vocab_size = 300\n",
        "vocab_size = 300\nretry = { max = 1 }\n",
    );

    // 101 (tok) is preempted; Slurm cancels 102 (blocks, after 101). tok is
    // submitted again as 103, then blocks as 104 after it; both publish.
    for (state, time) in [
        ("PREEMPTED", "--time=1:00:00"),
        ("TIMEOUT", "--time=0-02:00:00"),
    ] {
        let p = Project::new(40);
        p.write(
            "x.toml",
            &file.replace(
                "partition = \"cpu\"",
                "partition = \"cpu\", time = \"1:00:00\"",
            ),
        );
        let out = run_on_fake_cluster(&p, &[("101", state)]);
        assert!(
            out.status.success(),
            "{state}: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        let retries = retrying(&out);
        assert_eq!(retries.len(), 1, "{state}: {retries:?}");
        assert_eq!(retries[0]["step"], "tok");
        assert_eq!(retries[0]["attempt"], 2);
        let why = retries[0]["why"].as_str().unwrap();
        assert!(
            why.starts_with(&format!("Slurm job 101 ended {state}")),
            "{why}"
        );
        // The new job's time limit: the same after a preemption, doubled after a timeout.
        let again = calls(&p, 103);
        assert!(again.contains("--job-name=fake:tok"), "{again}");
        assert!(again.lines().any(|l| l == time), "{state}: {again}");
        assert!(!again.contains("--dependency"), "{again}");
        assert!(
            calls(&p, 104).contains("--dependency=afterok:103"),
            "{}",
            calls(&p, 104)
        );
        assert!(calls(&p, 105).is_empty(), "no fifth job");
        // tok's manifest lists the stopped job, then the published attempt.
        let entries = p.entries();
        assert_eq!(entries.len(), 2, "{entries:?}");
        let outcomes: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let path = p.cache().join("entries").join(e).join("manifest.json");
                let m: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                m["attempts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["outcome"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        let expected = vec![
            format!("Slurm job 101 ended {state}"),
            "completed".to_string(),
        ];
        assert!(outcomes.contains(&expected), "{outcomes:?}");
        assert!(
            outcomes.contains(&vec!["completed".to_string()]),
            "{outcomes:?}"
        );
    }

    // A job that failed on its own is not submitted again: tok fails, blocks is skipped.
    let p = Project::new(40);
    p.write("x.toml", &file);
    let out = run_on_fake_cluster(&p, &[("101", "FAILED")]);
    assert!(!out.status.success());
    assert!(retrying(&out).is_empty());
    assert!(calls(&p, 103).is_empty(), "{}", calls(&p, 103));

    // Retries run out: the second job is preempted too.
    let p = Project::new(40);
    p.write("x.toml", &file);
    let out = run_on_fake_cluster(&p, &[("101", "PREEMPTED"), ("103", "NODE_FAIL")]);
    assert!(!out.status.success());
    let failed = common::events(&out)
        .into_iter()
        .find(|e| e["event"] == "step_failed" && e["step"] == "tok")
        .expect("tok failed");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "gave up after 2 attempts (`retry = { max = 1 }`); the last: Slurm job 103 ended NODE_FAIL"
        ),
        "{error}"
    );
}
