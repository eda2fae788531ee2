//! The remote cache against a real S3 server (SeaweedFS: `scripts/s3/start.sh`,
//! then `. /tmp/xp-s3/env`, which sets `XP_S3_TESTS=s3://BUCKET` and the AWS
//! variables). Without it every test here says SKIPPED and passes. Each test
//! uses a prefix of its own under the bucket.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use crate::common;

use common::{Project, stderr, steps_with, tiny_model_prelude};

/// A fresh remote under the test bucket, or `None` (SKIPPED) without a server.
fn remote(test: &str) -> Option<String> {
    match std::env::var("XP_S3_TESTS") {
        Ok(bucket) if !bucket.is_empty() => {
            let unique = format!("{:x}", rand_suffix());
            Some(format!("{bucket}/{test}-{unique}"))
        }
        _ => {
            eprintln!(
                "SKIPPED remote_cache::{test}: no S3 server (run scripts/s3/start.sh, then `. /tmp/xp-s3/env`)"
            );
            None
        }
    }
}

fn rand_suffix() -> u128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    now ^ ((std::process::id() as u128) << 64)
}

const MINI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/mini.toml");
/// mini.toml in two generations of one epoch each.
const MINI_SHORT: [&str; 4] = [
    "--set",
    "loop.gen.count=2",
    "--set",
    "loop.gen.steps.finetune.epochs=1",
];

fn ok(out: &Output) {
    assert!(out.status.success(), "xp failed: {}", stderr(out));
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn a_pushed_mini_is_downloaded_elsewhere_not_executed() {
    let Some(url) = remote("mini") else { return };
    // Machine A: one store, runs and pushes.
    let a = Project::new(4);
    let first = a.run_ok(MINI, &MINI_SHORT);
    let executed = steps_with(&first, "step_started");
    assert!(!executed.is_empty());
    let mut push = vec!["push", MINI, "--remote", &url];
    push.extend(MINI_SHORT);
    ok(&a.run(&push));

    // A plan on an empty store says the steps are in the remote.
    let b = Project::new(4);
    let mut plan = vec!["plan", MINI, "--remote", &url];
    plan.extend(MINI_SHORT);
    let planned = b.run(&plan);
    let text = common::stdout(&planned);
    let pulls = text
        .lines()
        .filter(|l| l.trim_start().starts_with("pull "))
        .count();
    assert_eq!(pulls, executed.len(), "{text}");

    // Machine B: an empty store, runs with the remote: downloads only.
    let mut extra = vec!["--remote", url.as_str()];
    extra.extend(MINI_SHORT);
    let second = b.run_ok(MINI, &extra);
    assert!(steps_with(&second, "step_started").is_empty(), "{second:?}");
    assert_eq!(steps_with(&second, "step_pulled"), executed);
    assert_eq!(steps_with(&second, "step_cached"), executed);
    // Every entry byte for byte, the report's files and the manifests included.
    let (ta, tb) = (
        tree(&a.cache().join("entries")),
        tree(&b.cache().join("entries")),
    );
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    assert!(
        ta.keys().any(|k| k.ends_with("report.md")),
        "{:?}",
        ta.keys()
    );
    for (rel, bytes) in &ta {
        assert!(tb[rel] == *bytes, "{rel} differs");
    }
    ok(&b.run(&["verify"]));
}

/// A small experiment (tokenizer, blocks, a tiny model) run in a store of its own.
fn small(name: &str) -> Project {
    let p = Project::new(40);
    p.write("x.toml", &tiny_model_prelude(name, 32));
    let events = p.run_ok("x.toml", &[]);
    assert_eq!(
        steps_with(&events, "step_started"),
        ["blocks", "init", "tok"]
    );
    p
}

/// The manifest of the step `step` in `p`'s store, and its key.
fn manifest_of(p: &Project, step: &str) -> (String, serde_json::Value) {
    for key in p.entries() {
        let path = p.cache().join("entries").join(&key).join("manifest.json");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        if manifest["step"] == step {
            return (key, manifest);
        }
    }
    panic!("no entry of {step}");
}

fn connect(url: &str, endpoint: Option<String>) -> xp::remote::Remote {
    let settings = xp::remote::RemoteSettings {
        url: url.parse().unwrap(),
        endpoint,
        region: None,
    };
    xp::remote::Remote::connect(
        &settings,
        &xp::remote::AwsConfig::from_environment().unwrap(),
    )
    .unwrap()
}

#[test]
fn a_corrupt_remote_object_is_detected_and_the_step_recomputed() {
    let Some(url) = remote("corrupt") else { return };
    let a = small("corrupt");
    ok(&a.run(&["push", "x.toml", "--remote", &url]));
    // The model's object loses its second half, the tokenizer's gets other bytes.
    let remote = connect(&url, None);
    for (step, damage) in [("init", "truncate"), ("tok", "replace")] {
        let (_, manifest) = manifest_of(&a, step);
        let (rel, file) = manifest["outputs"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        let object = format!("objects/{}", file["digest"].as_str().unwrap());
        let good = std::fs::read(
            a.cache()
                .join("entries")
                .join(manifest["key"].as_str().unwrap())
                .join("out")
                .join(rel),
        )
        .unwrap();
        let bad = match damage {
            "truncate" => good[..good.len() / 2].to_vec(),
            _ => good.iter().map(|b| b ^ 0x55).collect(),
        };
        remote.put_bytes(&object, &bad).unwrap();
    }

    let b = Project::new(40);
    b.write("x.toml", &tiny_model_prelude("corrupt", 32));
    let events = b.run_ok("x.toml", &["--remote", &url]);
    // `blocks` is sound remotely; the other two are refused and computed here.
    assert_eq!(steps_with(&events, "step_pulled"), ["blocks"]);
    assert_eq!(steps_with(&events, "remote_problem"), ["init", "tok"]);
    assert_eq!(steps_with(&events, "step_started"), ["init", "tok"]);
    let problems: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "remote_problem")
        .map(|e| e["problem"].as_str().unwrap())
        .collect();
    assert!(
        problems.iter().all(|p| p.contains("digest")),
        "{problems:?}"
    );
    // What was computed is what A computed.
    assert_eq!(
        tree(&a.cache().join("entries")).len(),
        tree(&b.cache().join("entries")).len()
    );
    for step in ["init", "tok"] {
        assert_eq!(manifest_of(&a, step).0, manifest_of(&b, step).0);
        assert_eq!(
            manifest_of(&a, step).1["outputs"]
                .as_object()
                .unwrap()
                .values()
                .map(|f| f["digest"].clone())
                .collect::<Vec<_>>(),
            manifest_of(&b, step).1["outputs"]
                .as_object()
                .unwrap()
                .values()
                .map(|f| f["digest"].clone())
                .collect::<Vec<_>>()
        );
    }
    // `xp pull` of a refused entry says so (exit code 7) and keeps nothing.
    let c = Project::new(40);
    let key = manifest_of(&a, "tok").0;
    let out = c.run(&["pull", "--key", &key, "--remote", &url]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("REJECTED"), "{}", stderr(&out));
    assert!(c.entries().is_empty());
    // `xp push --overwrite` from a sound store repairs the remote.
    ok(&b.run(&["push", "x.toml", "--overwrite", "--remote", &url]));
    ok(&c.run(&["pull", "--key", &key, "--remote", &url]));
    assert_eq!(c.entries(), [key]);
}

/// A TCP proxy to `upstream` that passes each connection's first `budget`
/// bytes from the server, then cuts the connection: a transfer interrupted.
fn cutting_proxy(upstream: String, budget: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut client_in, mut server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_in, &mut server_out);
                let _ = server_out.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let mut left = budget;
                let mut buf = [0u8; 4096];
                while left > 0 {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(left),
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    format!("http://{address}")
}

#[test]
fn an_interrupted_download_leaves_no_entry() {
    let Some(url) = remote("interrupted") else {
        return;
    };
    let a = small("interrupted");
    ok(&a.run(&["push", "x.toml", "--remote", &url]));
    let (key, manifest) = manifest_of(&a, "init");
    let size: u64 = manifest["outputs"]
        .as_object()
        .unwrap()
        .values()
        .map(|f| f["size"].as_u64().unwrap())
        .sum();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("scripts/s3/start.sh sets it");
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    // Enough for the manifest, not for the model.
    let proxy = cutting_proxy(upstream, (size / 2) as usize);

    let b = Project::new(40);
    let out = b
        .xp(&["pull", "--key", &key, "--remote", &url])
        .env("AWS_ENDPOINT_URL", &proxy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(b.entries().is_empty(), "{:?}", b.entries());
    let staging: Vec<_> = std::fs::read_dir(b.cache().join("staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    // The remote is intact: the same pull without the cut succeeds.
    ok(&b.run(&["pull", "--key", &key, "--remote", &url]));
    assert_eq!(b.entries(), [key]);
    ok(&b.run(&["verify"]));
}

#[test]
fn concurrent_pushes_of_one_key_stay_valid() {
    let Some(url) = remote("concurrent") else {
        return;
    };
    let (a1, a2) = (small("concurrent"), small("concurrent"));
    assert_eq!(a1.entries(), a2.entries());
    for round in 0..3 {
        let prefix = format!("{url}/round{round}");
        let pushes: Vec<_> = [&a1, &a2]
            .iter()
            .map(|p| {
                p.xp(&["push", "x.toml", "--remote", &prefix])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for push in pushes {
            ok(&push.wait_with_output().unwrap());
        }
        let c = Project::new(40);
        c.write("x.toml", &tiny_model_prelude("concurrent", 32));
        ok(&c.run(&["pull", "x.toml", "--remote", &prefix]));
        assert_eq!(c.entries(), a1.entries());
        ok(&c.run(&["verify"]));
    }
}
