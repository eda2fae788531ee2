//! What `xp run --executor slurm` hands to `sbatch`, checked with stand-in
//! `sbatch`/`squeue` scripts on PATH (no cluster needed), and the resources
//! table's place outside the key.

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
