//! Scenario tests of the store on real temporary directories.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use super::*;
use crate::digest::ContentDigest;

fn key(n: u8) -> StepKey {
    StepKey([n; 32])
}

fn info(step: &str) -> ManifestInfo {
    ManifestInfo {
        step: step.into(),
        kind: "tokenize".into(),
        kind_version: 1,
        experiment: "test".into(),
        key_inputs: serde_json::json!({"block_size": 64}),
        metrics: serde_json::json!({"rows": 3}),
        backend: crate::backend::BackendKind::Ndarray,
        precision: crate::backend::Precision::F32,
        started_at: chrono::Utc::now(),
        timing: None,
        outcome: Outcome::Completed,
        earlier_attempts: Vec::new(),
    }
}

fn staging(store: &Store, k: &StepKey) -> Staging {
    match store.try_begin(k).unwrap() {
        TryBegin::Staging(s) => s,
        other => panic!("expected to stage {k:?}, got {other:?}"),
    }
}

/// Publishes an entry with `a.txt` and `sub/b.bin`.
fn publish_sample(store: &Store, k: &StepKey) -> Entry {
    let s = staging(store, k);
    fs::write(s.out_dir().join("a.txt"), b"hello").unwrap();
    fs::create_dir(s.out_dir().join("sub")).unwrap();
    fs::write(s.out_dir().join("sub/b.bin"), [1u8, 2, 3, 4]).unwrap();
    s.publish(info("blocks")).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    list_names(dir).unwrap()
}

#[test]
fn publish_then_lookup_hits_with_right_digests_and_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let store = Store::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("STORE_FORMAT")).unwrap(),
        "1\n"
    );
    let k = key(1);
    assert!(matches!(store.lookup(&k).unwrap(), LookupOutcome::Miss));

    let s = staging(&store, &k);
    fs::write(s.scratch_dir().join("ckpt"), b"state").unwrap();
    fs::write(s.out_dir().join("a.txt"), b"hello").unwrap();
    assert!(
        names(&root.join("entries")).is_empty(),
        "visible before publish"
    );
    assert!(matches!(store.lookup(&k).unwrap(), LookupOutcome::Miss));
    let entry = s.publish(info("blocks")).unwrap();

    assert_eq!(entry.dir, root.join("entries").join(k.to_hex()));
    let a = &entry.manifest.outputs["a.txt"];
    assert_eq!(a.size, 5);
    assert_eq!(a.digest, ContentDigest::of_bytes(b"hello"));
    assert_eq!(fs::read(entry.output_path("a.txt")).unwrap(), b"hello");
    assert_eq!(entry.manifest.step, "blocks");
    assert_eq!(entry.manifest.xp_version, env!("CARGO_PKG_VERSION"));
    assert!(names(&root.join("staging")).is_empty(), "staging dir left");
    assert!(
        !root.join("scratch").join(k.to_hex()).exists(),
        "scratch kept"
    );

    let hit = store.lookup(&k).unwrap().hit().expect("hit");
    assert_eq!(hit, entry);
    // The manifest on disk is the one returned.
    let on_disk: Manifest =
        serde_json::from_slice(&fs::read(entry.dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, entry.manifest);
    // Reopening finds it too.
    let again = Store::open(&root).unwrap();
    assert!(again.lookup(&k).unwrap().hit().is_some());
}

#[test]
fn entries_dir_never_shows_a_half_written_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = key(2);
    let s = staging(&store, &k);
    for i in 0..300 {
        fs::write(s.out_dir().join(format!("f{i}")), vec![i as u8; 4096]).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let entry_dir = dir.path().join("entries").join(k.to_hex());
        let done = done.clone();
        std::thread::spawn(move || {
            let mut complete_sightings = 0;
            while !done.load(Ordering::SeqCst) || complete_sightings == 0 {
                if entry_dir.exists() {
                    // Whenever the entry is visible it is complete.
                    let m: Manifest =
                        serde_json::from_slice(&fs::read(entry_dir.join("manifest.json")).unwrap())
                            .unwrap();
                    assert_eq!(m.outputs.len(), 300);
                    assert_eq!(fs::read_dir(entry_dir.join("out")).unwrap().count(), 300);
                    complete_sightings += 1;
                }
            }
        })
    };
    s.publish(info("many")).unwrap();
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
}

#[test]
fn dropping_a_staging_leaves_no_entry_and_no_staging_dir_but_keeps_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = key(3);
    let s = staging(&store, &k);
    fs::write(s.out_dir().join("partial"), b"half").unwrap();
    fs::write(s.scratch_dir().join("ckpt"), b"epoch 2").unwrap();
    drop(s);
    assert!(names(&dir.path().join("entries")).is_empty());
    assert!(names(&dir.path().join("staging")).is_empty());
    assert!(matches!(store.lookup(&k).unwrap(), LookupOutcome::Miss));
    // The next attempt resumes from the checkpoint.
    let s = staging(&store, &k);
    assert_eq!(fs::read(s.scratch_dir().join("ckpt")).unwrap(), b"epoch 2");
    assert!(
        fs::read_dir(s.out_dir()).unwrap().next().is_none(),
        "out dir not empty"
    );
    s.reset_scratch().unwrap();
    assert!(fs::read_dir(s.scratch_dir()).unwrap().next().is_none());
}

#[test]
fn a_modified_file_with_a_new_mtime_is_quarantined_on_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = key(4);
    let entry = publish_sample(&store, &k);
    let path = entry.output_path("a.txt");

    // Touching without changing content is not corruption.
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(file);
    assert!(store.lookup(&k).unwrap().hit().is_some());

    // Same size, different content, new mtime.
    fs::write(&path, b"jello").unwrap();
    let corruption = match store.lookup(&k).unwrap() {
        LookupOutcome::Corrupt(c) => c,
        other => panic!("expected corruption, got {other:?}"),
    };
    assert_eq!(corruption.key, k);
    assert_eq!(corruption.problems.len(), 1);
    assert_eq!(corruption.problems[0].path, Path::new("out/a.txt"));
    assert_eq!(
        corruption.problems[0].kind,
        ProblemKind::ContentChanged {
            recorded: ContentDigest::of_bytes(b"hello"),
            found: ContentDigest::of_bytes(b"jello"),
        }
    );
    let moved = corruption.quarantined_to.clone().expect("quarantined");
    assert!(moved.starts_with(dir.path().join("quarantine")));
    assert_eq!(fs::read(moved.join("out/a.txt")).unwrap(), b"jello");
    assert!(corruption.to_string().contains("out/a.txt has content"));
    assert!(matches!(store.lookup(&k).unwrap(), LookupOutcome::Miss));
    assert!(matches!(store.try_begin(&k).unwrap(), TryBegin::Staging(_)));
}

#[test]
fn a_size_change_is_found_by_lookup_and_begin_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = key(5);
    let entry = publish_sample(&store, &k);
    fs::write(entry.output_path("sub/b.bin"), b"longer content").unwrap();
    // While someone holds the key, lookup reports but does not move it.
    let held = super::lock::KeyLock::try_acquire(&store.layout, &k, "h")
        .unwrap()
        .unwrap();
    let LookupOutcome::Corrupt(c) = store.lookup(&k).unwrap() else {
        panic!("expected corruption");
    };
    assert!(c.quarantined_to.is_none());
    assert!(matches!(
        c.problems[0].kind,
        ProblemKind::SizeChanged {
            recorded: 4,
            found: 14
        }
    ));
    drop(held);
    // The next claimant finds it, quarantines it and recomputes.
    let s = staging(&store, &k);
    let found = s.found_corrupt().expect("corruption reported");
    assert!(found.quarantined_to.as_ref().unwrap().exists());
}

#[test]
fn verify_finds_a_flipped_byte_with_the_mtime_restored_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (flipped, missing, clean) = (key(6), key(7), key(8));
    let entry = publish_sample(&store, &flipped);
    publish_sample(&store, &missing);
    publish_sample(&store, &clean);

    let path = entry.output_path("a.txt");
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // The cheap check trusts size + mtime by design; verify does not.
    assert!(store.lookup(&flipped).unwrap().hit().is_some());

    let missing_dir = dir.path().join("entries").join(missing.to_hex());
    fs::remove_file(missing_dir.join("out/sub/b.bin")).unwrap();
    fs::write(missing_dir.join("out/extra"), b"x").unwrap();

    let report = store.verify(VerifyOptions::default()).unwrap();
    assert_eq!(report.entries, 3);
    assert!(!report.is_clean());
    assert_eq!(report.corrupt.len(), 2);
    let by_key = |k: StepKey| report.corrupt.iter().find(|c| c.key == k).unwrap();
    assert!(matches!(
        by_key(flipped).problems[..],
        [Problem {
            kind: ProblemKind::ContentChanged { .. },
            ..
        }]
    ));
    let kinds: Vec<_> = by_key(missing)
        .problems
        .iter()
        .map(|p| (p.path.clone(), p.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("out/sub/b.bin".into(), ProblemKind::Missing),
            ("out/extra".into(), ProblemKind::Unexpected)
        ]
    );
    assert!(report.corrupt.iter().all(|c| c.quarantined_to.is_none()));
    assert!(report.bytes_hashed >= 5 + 4 + 5 + 4 + 5);

    let report = store.verify(VerifyOptions { quarantine: true }).unwrap();
    assert!(report.corrupt.iter().all(|c| c.quarantined_to.is_some()));
    assert!(matches!(
        store.lookup(&flipped).unwrap(),
        LookupOutcome::Miss
    ));
    assert!(store.lookup(&clean).unwrap().hit().is_some());
    assert!(store.verify(VerifyOptions::default()).unwrap().is_clean());
}

#[test]
fn a_second_try_begin_is_busy_while_the_first_holds_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let other = Store::open(dir.path()).unwrap();
    let k = key(9);
    let s = staging(&store, &k);
    let TryBegin::Busy(wait) = other.try_begin(&k).unwrap() else {
        panic!("second claimant got in");
    };
    assert_eq!(wait.holder.unwrap().pid, std::process::id());
    assert!(matches!(other.remove(&k), Err(StoreError::Busy { .. })));
    drop(s);
    assert!(matches!(other.try_begin(&k).unwrap(), TryBegin::Staging(_)));
}

/// Not a test on its own: the body of the child process in
/// `a_killed_holder_releases_its_lock`, which runs it with the env var set.
#[test]
#[ignore = "helper process for a_killed_holder_releases_its_lock"]
fn lock_holder_child() {
    let Ok(root) = std::env::var("XP_STORE_TEST_HOLD") else {
        return;
    };
    let store = Store::open(Path::new(&root)).unwrap();
    let _staging = staging(&store, &key(10));
    println!("locked");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_killed_holder_releases_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::lock_holder_child",
            "--ignored",
            "--nocapture",
        ])
        .env("XP_STORE_TEST_HOLD", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let saw_locked = stdout.lines().any(|line| line.unwrap().trim() == "locked");
    assert!(saw_locked, "child never took the lock");

    let TryBegin::Busy(wait) = store.try_begin(&key(10)).unwrap() else {
        panic!("the child's lock was not held");
    };
    assert_eq!(wait.holder.as_ref().unwrap().pid, child.id());
    assert!(
        wait.to_string()
            .contains(&format!("held by pid {}", child.id()))
    );

    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(matches!(
        store.try_begin(&key(10)).unwrap(),
        TryBegin::Staging(_)
    ));
    // Its staging dir is swept by the next open, ours is gone after drop.
    Store::open(dir.path()).unwrap();
    assert!(names(&dir.path().join("staging")).is_empty());
}

#[test]
fn threads_racing_begin_get_one_staging_and_then_the_published_entry() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(11);
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let store = Store::open(dir.path()).unwrap();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut waited = false;
                match store.begin(&k, |_| waited = true).unwrap() {
                    Begin::Staging(s) => {
                        std::thread::sleep(Duration::from_millis(200));
                        fs::write(s.out_dir().join("x"), b"once").unwrap();
                        s.publish(info("race")).unwrap();
                        ("staging", waited)
                    }
                    Begin::Published(e) => {
                        assert_eq!(fs::read(e.output_path("x")).unwrap(), b"once");
                        ("published", waited)
                    }
                }
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let staged = results.iter().filter(|(r, _)| *r == "staging").count();
    assert_eq!(staged, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(r, _)| *r == "published")
            .all(|(_, w)| *w)
    );
}

#[test]
fn gc_keeps_what_is_asked_and_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (kept, dropped, busy) = (key(12), key(13), key(14));
    publish_sample(&store, &kept);
    publish_sample(&store, &dropped);
    publish_sample(&store, &busy);
    // Leftovers: a scratch dir of a dropped key, a dead process's staging dir.
    let orphan = key(15);
    fs::create_dir_all(dir.path().join("scratch").join(orphan.to_hex())).unwrap();
    fs::write(
        dir.path().join("scratch").join(orphan.to_hex()).join("c"),
        b"123",
    )
    .unwrap();
    let stale = dir
        .path()
        .join("staging")
        .join(format!("{}.999999.0", orphan.to_hex()));
    fs::create_dir_all(&stale).unwrap();
    let held = super::lock::KeyLock::try_acquire(&store.layout, &busy, "h")
        .unwrap()
        .unwrap();

    let keep: HashSet<StepKey> = [kept].into();
    let dry = store.gc(&keep, true).unwrap();
    assert_eq!(dry.removed_entries.len(), 1);
    assert!(
        store.lookup(&dropped).unwrap().hit().is_some(),
        "dry run removed"
    );
    assert!(stale.exists());

    let report = store.gc(&keep, false).unwrap();
    let [(removed, entry_bytes)] = report.removed_entries[..] else {
        panic!("expected one removed entry: {report:?}");
    };
    assert_eq!(removed, dropped);
    assert!(entry_bytes > 9, "outputs plus manifest");
    assert_eq!(report.skipped_locked, vec![busy]);
    assert_eq!(report.removed_scratch, vec![(orphan, 3)]);
    assert_eq!(report.removed_staging, vec![(stale.clone(), 0)]);
    assert_eq!(report.bytes_freed, entry_bytes + 3);
    assert!(report.removed_locks >= 1);
    assert!(!stale.exists());
    assert!(store.lookup(&kept).unwrap().hit().is_some());
    assert!(matches!(
        store.lookup(&dropped).unwrap(),
        LookupOutcome::Miss
    ));
    drop(held);
    assert!(store.lookup(&busy).unwrap().hit().is_some());
}

#[test]
fn open_refuses_a_newer_format_and_a_garbled_one() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("STORE_FORMAT"), "2\n").unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(
        err,
        StoreError::NewerFormat {
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert!(err.to_string().contains("use a newer xp"));
    fs::write(dir.path().join("STORE_FORMAT"), "banana").unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::BadFormatFile { .. })
    ));
}

#[test]
fn open_sweeps_only_staging_dirs_whose_key_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let live = staging(&store, &key(16));
    fs::write(live.out_dir().join("f"), b"in progress").unwrap();
    let dead = dir
        .path()
        .join("staging")
        .join(format!("{}.1.2", key(17).to_hex()));
    fs::create_dir_all(dead.join("out")).unwrap();
    Store::open(dir.path()).unwrap();
    assert!(!dead.exists());
    assert!(live.out_dir().join("f").exists());
    live.publish(info("live")).unwrap();
}

#[test]
fn rerun_replaces_the_entry_and_lookups_hit_the_old_one_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = key(18);
    publish_sample(&store, &k);
    let s = store.begin_rerun(&k, |_| {}).unwrap();
    fs::write(s.out_dir().join("new.txt"), b"again").unwrap();
    let old = store.lookup(&k).unwrap().hit().unwrap();
    assert!(old.manifest.outputs.contains_key("a.txt"));
    let new = s.publish(info("rerun")).unwrap();
    assert_eq!(new.manifest.outputs.keys().collect::<Vec<_>>(), ["new.txt"]);
    assert_eq!(store.lookup(&k).unwrap().hit().unwrap(), new);
    assert!(names(&dir.path().join("staging")).is_empty());
    assert!(store.remove(&k).unwrap());
    assert!(!store.remove(&k).unwrap());
    assert!(matches!(store.lookup(&k).unwrap(), LookupOutcome::Miss));
}

#[test]
fn entries_lists_manifests_and_reports_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    publish_sample(&store, &key(19));
    let broken = publish_sample(&store, &key(20));
    fs::write(broken.dir.join("manifest.json"), b"{ not json").unwrap();
    fs::create_dir(dir.path().join("entries/not-a-key")).unwrap();
    let listing = store.entries().unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].manifest.step, "blocks");
    assert_eq!(listing.broken.len(), 2);
    // A lookup treats the broken manifest as corruption.
    let LookupOutcome::Corrupt(c) = store.lookup(&key(20)).unwrap() else {
        panic!("expected corruption");
    };
    assert!(matches!(
        c.problems[0].kind,
        ProblemKind::BadManifest { .. }
    ));
}

#[test]
fn a_symlink_in_the_outputs_is_refused_and_nothing_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = key(21);
    let s = staging(&store, &k);
    std::os::unix::fs::symlink("/etc/passwd", s.out_dir().join("link")).unwrap();
    let err = s.publish(info("bad")).unwrap_err();
    assert!(matches!(
        err,
        StoreError::UnsupportedOutput {
            what: "symbolic link",
            ..
        }
    ));
    assert!(err.to_string().contains("the entry was not published"));
    assert!(matches!(store.lookup(&k).unwrap(), LookupOutcome::Miss));
    assert!(names(&dir.path().join("staging")).is_empty());
}
