//! Checkpoint files: bad ones give an error naming the key or file (never a panic), and
//! `save_pretrained` writes a directory that loads back to the same model.
//!
//! Set XP_KEEP_SAVED=<dir> to keep the saved directory (scripts/check_saved_model.py
//! opens it with transformers).

use crate::model_support;

use std::collections::HashMap;
use std::path::Path;

use model_support::{B, Reference, device, fixture_dir, values};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;
use xp::model::{ModelError, Opt, OptConfig, load_pretrained, save_pretrained};

/// Copies fixture `name` into a fresh temp dir.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    tmp
}

/// Rewrites `dir/model.safetensors` after `edit` changes its (key -> (shape, bytes)) map.
fn edit_safetensors(dir: &Path, edit: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let dtype = file.tensors()[0].1.dtype();
    let mut map: HashMap<String, (Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec())))
        .collect();
    edit(&mut map);
    let views: Vec<(String, TensorView)> = map
        .iter()
        .map(|(k, (shape, data))| {
            (
                k.clone(),
                TensorView::new(dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn load_err(dir: &Path) -> ModelError {
    match load_pretrained::<B>(dir, &device()) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_unexpected_and_misshapen_keys_are_listed_by_name_in_one_error() {
    let tmp = copy_fixture("pre_ln"); // fp32, `model.` prefix
    edit_safetensors(tmp.path(), |map| {
        map.remove("model.decoder.layers.1.fc2.bias");
        map.remove("model.decoder.final_layer_norm.weight");
        map.insert(
            "model.decoder.layers.9.fc1.weight".into(),
            (vec![1], vec![0; 4]),
        );
        let (_, data) = map.remove("model.decoder.layers.0.fc1.weight").unwrap(); // [64, 32]
        map.insert(
            "model.decoder.layers.0.fc1.weight".into(),
            (vec![32, 64], data),
        );
    });
    let err = load_err(tmp.path());
    let ModelError::KeyMismatch { path, report } = &err else {
        panic!("expected KeyMismatch, got {err}");
    };
    assert_eq!(path, &tmp.path().join("model.safetensors"));
    assert_eq!(
        report.missing,
        vec![
            "decoder.layers.1.fc2.bias",
            "decoder.final_layer_norm.weight"
        ]
    );
    assert_eq!(report.unexpected, vec!["model.decoder.layers.9.fc1.weight"]);
    assert_eq!(report.wrong_shape.len(), 1);
    assert_eq!(report.wrong_shape[0].key, "decoder.layers.0.fc1.weight");
    assert_eq!(report.wrong_shape[0].expected, vec![64, 32]);
    assert_eq!(report.wrong_shape[0].found, vec![32, 64]);
    let message = err.to_string();
    for needle in [
        "model.safetensors",
        "decoder.layers.1.fc2.bias",
        "decoder.final_layer_norm.weight",
        "model.decoder.layers.9.fc1.weight",
        "decoder.layers.0.fc1.weight is [32, 64]",
    ] {
        assert!(message.contains(needle), "{needle} not in: {message}");
    }
}

#[test]
fn a_tied_lm_head_copy_in_the_file_is_accepted() {
    let tmp = copy_fixture("pre_ln");
    edit_safetensors(tmp.path(), |map| {
        let embed = map["model.decoder.embed_tokens.weight"].clone();
        map.insert("lm_head.weight".into(), embed);
    });
    load_pretrained::<B>(tmp.path(), &device()).unwrap();
}

#[test]
fn truncated_files_name_the_file() {
    for (name, file) in [
        ("pre_ln", "model.safetensors"),
        ("fp16_bin", "pytorch_model.bin"),
    ] {
        let tmp = copy_fixture(name);
        let path = tmp.path().join(file);
        let bytes = std::fs::read(&path).unwrap();
        for keep in [bytes.len() / 2, bytes.len() - 10, 5] {
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let err = load_err(tmp.path());
            assert!(
                matches!(err, ModelError::CorruptWeights { .. }),
                "{file} cut to {keep}: {err}"
            );
            assert!(err.to_string().contains(file), "{err}");
        }
    }
}

#[test]
fn missing_weights_and_bad_config_are_named() {
    let tmp = copy_fixture("no_bias");
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let err = load_err(tmp.path());
    assert!(matches!(err, ModelError::NoWeights { .. }), "{err}");
    assert!(err.to_string().contains("pytorch_model.bin"), "{err}");

    let tmp = copy_fixture("no_bias");
    std::fs::write(tmp.path().join("config.json"), "{\"hidden_size\": 16,").unwrap();
    let err = load_err(tmp.path());
    assert!(matches!(err, ModelError::ConfigParse { .. }), "{err}");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn a_checkpoint_for_another_config_is_a_shape_error() {
    let tmp = copy_fixture("no_bias");
    let mut config = OptConfig::from_hf_json(&tmp.path().join("config.json")).unwrap();
    config.hidden_size = 32;
    std::fs::write(tmp.path().join("config.json"), config.to_hf_json()).unwrap();
    let err = load_err(tmp.path());
    let ModelError::KeyMismatch { report, .. } = err else {
        panic!("expected KeyMismatch");
    };
    assert!(!report.wrong_shape.is_empty());
}

#[test]
fn save_pretrained_round_trips() {
    let (model, config) = load_pretrained::<B>(&fixture_dir("post_ln_proj"), &device()).unwrap();
    let tokenizer = tempfile::tempdir().unwrap();
    std::fs::write(tokenizer.path().join("vocab.json"), "{\"a\": 0}").unwrap();
    std::fs::write(tokenizer.path().join("merges.txt"), "#version: 0.2\n").unwrap();

    let kept = std::env::var_os("XP_KEEP_SAVED");
    let tmp = tempfile::tempdir().unwrap();
    let out = kept.as_deref().map(Path::new).unwrap_or(tmp.path());
    save_pretrained(&model, &config, out, Some(tokenizer.path())).unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
    ] {
        assert!(out.join(file).is_file(), "{file} not written");
    }
    assert!(!out.join("tokenizer.json").exists());

    let (loaded, loaded_config): (Opt<B>, _) = load_pretrained(out, &device()).unwrap();
    assert_eq!(loaded_config, config);
    let reference = Reference::open("post_ln_proj");
    let run = |m: &Opt<B>| {
        values(
            m.forward(
                reference.int2("input_ids"),
                Some(reference.int2("attention_mask")),
                None,
            )
            .unwrap(),
        )
    };
    assert_eq!(run(&model), run(&loaded));

    // HF key names as OPTForCausalLM writes them, and no lm_head.weight (tied).
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let names = SafeTensors::deserialize(&bytes).unwrap().names().len();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert!(file.tensor("model.decoder.project_in.weight").is_ok());
    assert!(
        file.tensor("model.decoder.layers.2.self_attn.q_proj.bias")
            .is_ok()
    );
    assert!(file.tensor("lm_head.weight").is_err());
    assert_eq!(names, 4 + 3 * 16); // embeds, project_in/out, 16 tensors per layer
}

#[test]
fn random_init_follows_hf() {
    let config = OptConfig::tiny(40, 32, 2, 4, 64, 16);
    let model = Opt::<B>::init(&config, &device());
    use burn::module::Module;
    // embeddings + per layer (4 * (d*d + d) + 2 * 2d + d*f + f + f*d + d) + final LN
    let (v, d, f, p) = (40, 32, 64, 18);
    let per_layer = 4 * (d * d + d) + 4 * d + d * f + f + f * d + d;
    assert_eq!(model.num_params(), v * d + p * d + 2 * per_layer + 2 * d);
    let embed = values(model.token_embedding());
    let pad_row = &embed[d..2 * d]; // pad id 1
    assert!(pad_row.iter().all(|&x| x == 0.0));
    let std = (embed.iter().map(|x| x * x).sum::<f64>() / embed.len() as f64).sqrt();
    assert!((std - 0.02).abs() < 0.004, "std {std}");
}
