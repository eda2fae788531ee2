//! The Hub path against a fake Hub on 127.0.0.1 (tiny_http), serving what
//! hf-hub 0.4's blocking API asks for:
//! - `GET /api/<models|datasets>/<repo>/revision/<rev>` → `{"sha", "siblings"}`;
//! - `GET /<datasets/>?<repo>/resolve/<rev>/<file>` with a `Range` header →
//!   206 with `etag`, `x-repo-commit` and `Content-Range: bytes a-b/len`
//!   (hf-hub reads the size from Content-Range after a `bytes=0-0` probe,
//!   then downloads with `bytes=0-`).
//!
//! The server thread stops when the test drops it, or after 120 s at most.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::data::read_rows;
use crate::data::test_support::write_string_parquet;
use crate::source::{ResolveOptions, plan_status, resolve};

const MODEL_SHA: &str = "1111111111111111111111111111111111111111";
const DATASET_SHA: &str = "2222222222222222222222222222222222222222";

struct FakeRepo {
    /// `models/acme/tiny-opt` or `datasets/acme/wiki`
    api_path: String,
    /// `acme/tiny-opt` or `datasets/acme/wiki`
    url_path: String,
    sha: String,
    files: Vec<(String, Vec<u8>)>,
}

struct FakeHub {
    url: String,
    /// Every request path served, in order.
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FakeHub {
    fn start(repos: Vec<FakeRepo>) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !halt.load(Ordering::SeqCst) && Instant::now() < deadline {
                match server.recv_timeout(Duration::from_millis(20)) {
                    Ok(Some(request)) => {
                        log.lock().unwrap().push(request.url().to_string());
                        serve(&repos, request);
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        });
        Self {
            url,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self, part: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(part))
            .count()
    }

    fn total(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn serve(repos: &[FakeRepo], request: tiny_http::Request) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let not_found = || tiny_http::Response::from_string("not found").with_status_code(404);
    // Repo info.
    if let Some(rest) = path.strip_prefix("/api/") {
        for repo in repos {
            if let Some(_rev) = rest.strip_prefix(&format!("{}/revision/", repo.api_path)) {
                let siblings: Vec<serde_json::Value> = repo
                    .files
                    .iter()
                    .map(|(name, _)| serde_json::json!({ "rfilename": name }))
                    .collect();
                let body = serde_json::json!({ "sha": repo.sha, "siblings": siblings });
                let response = tiny_http::Response::from_string(body.to_string())
                    .with_header(header("Content-Type", "application/json"));
                let _ = request.respond(response);
                return;
            }
        }
        let _ = request.respond(not_found());
        return;
    }
    // File download: /<url_path>/resolve/<rev with / as %2F>/<file>.
    for repo in repos {
        let Some(rest) = path.strip_prefix(&format!("/{}/resolve/", repo.url_path)) else {
            continue;
        };
        let Some((_rev, file)) = rest.split_once('/') else {
            break;
        };
        let Some((_, content)) = repo.files.iter().find(|(n, _)| n == file) else {
            break;
        };
        let range = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Range"))
            .map(|h| h.value.as_str().to_string())
            .unwrap_or_else(|| "bytes=0-".to_string());
        let spec = range.trim_start_matches("bytes=");
        let (start, end) = spec.split_once('-').unwrap();
        let start: usize = start.parse().unwrap();
        let end: usize = if end.is_empty() {
            content.len() - 1
        } else {
            end.parse().unwrap()
        };
        let body = content[start..=end.min(content.len() - 1)].to_vec();
        let etag = format!("\"{}\"", blake3::hash(content).to_hex());
        let response = tiny_http::Response::from_data(body)
            .with_status_code(206)
            .with_header(header("ETag", &etag))
            .with_header(header("X-Repo-Commit", &repo.sha))
            .with_header(header(
                "Content-Range",
                &format!("bytes {start}-{end}/{}", content.len()),
            ));
        let _ = request.respond(response);
        return;
    }
    let _ = request.respond(not_found());
}

fn fixture_file(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/opt-mini");
    std::fs::read(dir.join(name)).unwrap()
}

fn model_repo() -> FakeRepo {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("README.md".into(), b"# tiny".to_vec()),
        ("config.json".into(), br#"{"model_type": "opt"}"#.to_vec()),
        ("model.safetensors".into(), vec![7u8; 3000]),
        ("pytorch_model.bin".into(), vec![8u8; 100]),
    ];
    for f in [
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        files.push((f.to_string(), fixture_file(f)));
    }
    FakeRepo {
        api_path: "models/acme/tiny-opt".into(),
        url_path: "acme/tiny-opt".into(),
        sha: MODEL_SHA.into(),
        files,
    }
}

fn parquet_bytes(rows: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    let values: Vec<Option<&str>> = rows.iter().map(|r| Some(*r)).collect();
    write_string_parquet(&path, "text", &values, 2);
    std::fs::read(path).unwrap()
}

fn dataset_repo() -> FakeRepo {
    FakeRepo {
        api_path: "datasets/acme/wiki".into(),
        url_path: "datasets/acme/wiki".into(),
        sha: DATASET_SHA.into(),
        files: vec![
            ("README.md".into(), b"# wiki".to_vec()),
            (
                "mini/train-00000-of-00001.parquet".into(),
                parquet_bytes(&["", " = Valkyria = \n", " text \n"]),
            ),
            (
                "mini/validation-00000-of-00001.parquet".into(),
                parquet_bytes(&["v\n"]),
            ),
            (
                "other/train-00000-of-00001.parquet".into(),
                parquet_bytes(&["o\n"]),
            ),
            ("conv/test/0000.parquet".into(), parquet_bytes(&["t0\n"])),
            ("conv/test/0001.parquet".into(), parquet_bytes(&["t1\n"])),
        ],
    }
}

/// `cache` plays HF_HOME; the hub cache is its `hub/` folder (so hf-hub looks
/// for a token file in the empty temporary HF_HOME only).
fn options(cache: &Path, endpoint: &str, offline: bool) -> ResolveOptions {
    ResolveOptions {
        base_dir: PathBuf::from("/"),
        hub: HubOptions {
            cache_dir: cache.join("hub"),
            endpoint: endpoint.to_string(),
            offline,
            token: None,
            progress: false,
        },
    }
}

fn spec(text: &str) -> SourceSpec {
    SourceSpec::parse(text).unwrap()
}

#[test]
fn model_downloads_then_reuses_the_cache_then_works_offline() {
    let hub = FakeHub::start(vec![model_repo()]);
    let cache = tempfile::tempdir().unwrap();
    let online = options(cache.path(), &hub.url, false);
    let offline = options(cache.path(), "http://127.0.0.1:1", true);
    let model = spec("hf:acme/tiny-opt");

    // Nothing cached yet: plan says it must be fetched, offline resolve fails clearly.
    match plan_status(&model, &online).unwrap() {
        PlanStatus::MustFetch {
            what,
            blocked_offline,
        } => {
            assert!(
                what.contains("hf:acme/tiny-opt: revision `main` was never fetched"),
                "{what}"
            );
            assert!(!blocked_offline);
        }
        other => panic!("{other:?}"),
    }
    let msg = resolve(&model, &offline).unwrap_err().to_string();
    assert!(
        msg.contains("not in the Hugging Face cache") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
    assert!(msg.contains("--set sources.NAME="), "{msg}");
    assert_eq!(hub.total(), 0);

    let r = resolve(&model, &online).unwrap();
    let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "merges.txt",
            "model.safetensors",
            "special_tokens_map.json",
            "tokenizer_config.json",
            "vocab.json"
        ]
    );
    let repo = model_repo();
    for f in &r.files {
        let content = &repo.files.iter().find(|(n, _)| *n == f.name).unwrap().1;
        assert_eq!(f.digest, ContentDigest::of_bytes(content), "{}", f.name);
        assert_eq!(std::fs::read(&f.path).unwrap(), *content);
    }
    let snapshot = cache
        .path()
        .join("hub/models--acme--tiny-opt/snapshots")
        .join(MODEL_SHA);
    assert_eq!(r.root, snapshot);
    assert!(r.offline_fallback.is_none() && r.splits.is_empty());
    let SourceIdentity::Hub {
        commit,
        files,
        repo_type,
        ..
    } = &r.identity
    else {
        panic!("{:?}", r.identity)
    };
    assert_eq!(
        (commit.as_str(), *repo_type, files.len()),
        (MODEL_SHA, RepoType::Model, 6)
    );
    assert_eq!(
        hub.count("/resolve/"),
        12,
        "a range probe and a download per file"
    );
    assert_eq!(hub.count("pytorch_model.bin") + hub.count("README.md"), 0);

    // The snapshot is a model directory the tokenizer loader understands.
    let tok = crate::tokenizer::load_tokenizer(&r.root).unwrap();
    assert_eq!(
        tok.encode("I like you.", true).unwrap().get_ids(),
        [2, 100, 101, 47, 4]
    );

    // Second time: only the listing is asked for, nothing is downloaded.
    let again = resolve(&model, &online).unwrap();
    assert_eq!(again.identity, r.identity);
    assert_eq!(hub.count("/resolve/"), 12);
    assert_eq!(hub.count("/api/models/acme/tiny-opt/revision/main"), 2);

    // Offline: the cache alone gives the same answer, without a request.
    let before = hub.total();
    let off = resolve(&model, &offline).unwrap();
    assert_eq!(off.identity, r.identity);
    assert_eq!(off.files, r.files);
    assert_eq!(hub.total(), before);
    assert_eq!(
        plan_status(&model, &offline).unwrap(),
        PlanStatus::Available {
            location: snapshot.clone(),
            commit: Some(MODEL_SHA.into())
        }
    );

    // The commit as revision works offline too; an unknown revision does not.
    assert_eq!(
        resolve(&spec(&format!("hf:acme/tiny-opt@{MODEL_SHA}")), &offline)
            .unwrap()
            .identity,
        r.identity
    );
    let msg = resolve(&spec("hf:acme/tiny-opt@v2"), &offline)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("revision `v2` was never fetched"), "{msg}");

    // A file gone from the cache is named.
    std::fs::remove_file(snapshot.join("config.json")).unwrap();
    let msg = resolve(&model, &offline).unwrap_err().to_string();
    assert!(msg.contains("lacks files: no `config.json`"), "{msg}");
    // Online, the missing file is fetched again.
    resolve(&model, &online).unwrap();
    assert_eq!(hub.count("/resolve/"), 14);
}

#[test]
fn dataset_config_files_grouped_by_split() {
    let hub = FakeHub::start(vec![dataset_repo()]);
    let cache = tempfile::tempdir().unwrap();
    let online = options(cache.path(), &hub.url, false);
    let offline = options(cache.path(), &hub.url, true);

    let r = resolve(&spec("hf:datasets/acme/wiki/mini"), &online).unwrap();
    assert_eq!(r.splits.keys().collect::<Vec<_>>(), ["train", "validation"]);
    assert_eq!(r.files.len(), 2);
    let train = r.split("train").unwrap();
    assert_eq!(
        read_rows(&train[0], "text").unwrap(),
        ["", " = Valkyria = \n", " text \n"]
    );
    assert_eq!(
        read_rows(&r.split("validation").unwrap()[0], "text").unwrap(),
        ["v\n"]
    );
    assert_eq!(hub.count("other/") + hub.count("README"), 0);

    // The refs/convert/parquet layout: <config>/<split>/NNNN.parquet, in order;
    // a revision with slashes is cached under refs/refs/convert/parquet.
    let conv = spec("hf:datasets/acme/wiki/conv@refs/convert/parquet");
    let r = resolve(&conv, &online).unwrap();
    let tests = r.read_split("test", &Default::default()).unwrap();
    assert_eq!(tests, ["t0\n", "t1\n"]);
    let msg = r
        .read_split("train", &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no split `train` (splits found: test)"),
        "{msg}"
    );
    assert!(
        cache
            .path()
            .join("hub/datasets--acme--wiki/refs/refs/convert/parquet")
            .is_file()
    );
    assert_eq!(resolve(&conv, &offline).unwrap().identity, r.identity);

    // Offline, a config never downloaded is a clear error; online it is fetched.
    let other = spec("hf:datasets/acme/wiki/other");
    let msg = resolve(&other, &offline).unwrap_err().to_string();
    assert!(msg.contains("no data files under `other/`"), "{msg}");
    assert!(matches!(
        plan_status(&other, &offline).unwrap(),
        PlanStatus::MustFetch {
            blocked_offline: true,
            ..
        }
    ));
    let before = hub.total();
    assert!(resolve(&other, &offline).is_err());
    assert_eq!(hub.total(), before, "offline never touches the network");
    assert_eq!(resolve(&other, &online).unwrap().splits.len(), 1);

    // A config the repo does not have lists those it has.
    let msg = resolve(&spec("hf:datasets/acme/wiki/nope"), &online)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("configs: conv, mini, other"), "{msg}");
}

#[test]
fn unreachable_hub_falls_back_to_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    {
        let hub = FakeHub::start(vec![model_repo()]);
        resolve(
            &spec("hf:acme/tiny-opt"),
            &options(cache.path(), &hub.url, false),
        )
        .unwrap();
    }
    // A port nothing listens on any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let r = resolve(
        &spec("hf:acme/tiny-opt"),
        &options(cache.path(), &closed, false),
    )
    .unwrap();
    let note = r.offline_fallback.expect("fallback is reported");
    assert!(note.contains(&closed), "{note}");

    let msg = resolve(
        &spec("hf:acme/never"),
        &options(cache.path(), &closed, false),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("not in the Hugging Face cache") && msg.contains("failed"),
        "{msg}"
    );
}

#[test]
fn missing_repo_files_are_listed() {
    let mut repo = model_repo();
    repo.files
        .retain(|(n, _)| n != "model.safetensors" && n != "pytorch_model.bin");
    let hub = FakeHub::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let msg = resolve(
        &spec("hf:acme/tiny-opt"),
        &options(cache.path(), &hub.url, false),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("no weights") && msg.contains("README.md, config.json"),
        "{msg}"
    );
}
