//! OPT configuration: a serde mirror of HF `config.json` ([`HfOptConfig`]) and the
//! validated internal config ([`OptConfig`]) the model is built from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// The activation between `fc1` and `fc2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `relu`: every released OPT checkpoint.
    Relu,
    /// `gelu`: the exact (erf) GELU, as torch's `nn.GELU()`.
    Gelu,
}

impl Activation {
    fn from_hf(name: &str) -> Option<Self> {
        match name {
            "relu" => Some(Activation::Relu),
            "gelu" => Some(Activation::Gelu),
            _ => None,
        }
    }

    fn hf_name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
        }
    }
}

fn default_true() -> bool {
    true
}

/// Field-for-field mirror of transformers' `OPTConfig` as written in `config.json`.
///
/// Defaults are transformers' `OPTConfig.__init__` defaults, so a sparse file reads
/// as transformers reads it. Unknown fields (`architectures`, `torch_dtype`, ...)
/// are kept in `extra` and written back by [`OptConfig::to_hf_json`]'s caller if wanted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfOptConfig {
    /// Rows of `embed_tokens` (50272 for opt-125m; the tokenizer has 50265).
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Width of the residual stream.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// Number of decoder layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Inner width of the feed-forward block.
    #[serde(default = "d_ffn")]
    pub ffn_dim: usize,
    /// Learned positions; the table has `max_position_embeddings + 2` rows (offset 2).
    #[serde(default = "d_max_pos")]
    pub max_position_embeddings: usize,
    /// Pre-LayerNorm (true: opt-125m and most sizes) or post-LayerNorm (opt-350m).
    #[serde(default = "default_true")]
    pub do_layer_norm_before: bool,
    /// Old checkpoints without the decoder's final LayerNorm set this.
    #[serde(default)]
    pub _remove_final_layer_norm: bool,
    /// Width of the token embedding; when it differs from `hidden_size` the decoder
    /// has `project_in` / `project_out` (opt-350m: 512 vs 1024). `null` = hidden_size.
    #[serde(default)]
    pub word_embed_proj_dim: Option<usize>,
    /// Dropout on attention output and FFN output (training only).
    #[serde(default = "d_dropout")]
    pub dropout: f64,
    /// Dropout on attention probabilities (training only).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Number of attention heads.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// `relu` for every released checkpoint.
    #[serde(default = "d_act")]
    pub activation_function: String,
    /// LayerDrop probability (training only); xp supports 0 only.
    #[serde(default)]
    pub layerdrop: f64,
    /// Std of the normal init of Linear and Embedding weights.
    #[serde(default = "d_init_std")]
    pub init_std: f64,
    /// Whether generation uses a KV cache (informational).
    #[serde(default = "default_true")]
    pub use_cache: bool,
    /// `<pad>` id (1).
    #[serde(default = "d_pad")]
    pub pad_token_id: Option<u32>,
    /// `</s>` doubles as BOS (2).
    #[serde(default = "d_bos_eos")]
    pub bos_token_id: Option<u32>,
    /// `</s>` (2).
    #[serde(default = "d_bos_eos")]
    pub eos_token_id: Option<u32>,
    /// Biases on q/k/v/out projections and fc1/fc2.
    #[serde(default = "default_true")]
    pub enable_bias: bool,
    /// LayerNorms with learned gain and bias; xp supports `true` only.
    #[serde(default = "default_true")]
    pub layer_norm_elementwise_affine: bool,
    /// Must be `opt` when present.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Every other field of the file, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn d_vocab() -> usize {
    50272
}
fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_ffn() -> usize {
    3072
}
fn d_max_pos() -> usize {
    2048
}
fn d_dropout() -> f64 {
    0.1
}
fn d_heads() -> usize {
    12
}
fn d_act() -> String {
    "relu".to_string()
}
fn d_init_std() -> f64 {
    0.02
}
fn d_pad() -> Option<u32> {
    Some(1)
}
fn d_bos_eos() -> Option<u32> {
    Some(2)
}

/// The validated configuration an [`super::Opt`] is built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptConfig {
    /// Rows of the token embedding (and columns of the logits).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Number of attention heads; `hidden_size` must be a multiple of it.
    pub num_heads: usize,
    /// Inner width of the feed-forward block.
    pub ffn_dim: usize,
    /// Longest sequence (past + current); the position table has 2 more rows.
    pub max_position_embeddings: usize,
    /// Token-embedding width; differs from `hidden_size` iff project_in/out exist.
    pub word_embed_proj_dim: usize,
    /// Pre-LayerNorm (true) or post-LayerNorm (false).
    pub do_layer_norm_before: bool,
    /// Whether the decoder has a final LayerNorm (pre-LN models without `_remove_final_layer_norm`).
    pub final_layer_norm: bool,
    /// Biases on attention projections and fc1/fc2.
    pub enable_bias: bool,
    /// Dropout on attention output and FFN output (training only).
    pub dropout: f64,
    /// Dropout on attention probabilities (training only).
    pub attention_dropout: f64,
    /// FFN activation.
    pub activation: Activation,
    /// Std of the normal init of weights.
    pub init_std: f64,
    /// LayerNorm epsilon (torch's default 1e-5; OPT does not change it).
    pub layer_norm_eps: f64,
    /// `<pad>` id; its embedding row is zero at init, as in HF.
    pub pad_token_id: Option<u32>,
    /// BOS id.
    pub bos_token_id: Option<u32>,
    /// EOS id.
    pub eos_token_id: Option<u32>,
}

/// Rows the learned position table has beyond `max_position_embeddings` (HF's offset 2).
pub const POSITION_OFFSET: usize = 2;

impl OptConfig {
    /// Reads and validates an HF `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of an HF `config.json`.
    pub fn from_hf_str(text: &str) -> Result<Self, ModelError> {
        Self::parse(text, Path::new("<string>"))
    }

    fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let hf: HfOptConfig =
            serde_json::from_str(text).map_err(|source| ModelError::ConfigParse {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_hf(&hf, path)
    }

    /// Converts the serde mirror into the internal config, rejecting what xp cannot build.
    pub fn from_hf(hf: &HfOptConfig, path: &Path) -> Result<Self, ModelError> {
        let unsupported = |reason: String| ModelError::UnsupportedConfig {
            path: PathBuf::from(path),
            reason,
        };
        if let Some(kind) = &hf.model_type
            && kind != "opt"
        {
            return Err(unsupported(format!(
                "model_type is {kind:?}, expected \"opt\""
            )));
        }
        let activation = Activation::from_hf(&hf.activation_function).ok_or_else(|| {
            unsupported(format!(
                "activation_function {:?} (supported: relu, gelu)",
                hf.activation_function
            ))
        })?;
        if !hf.layer_norm_elementwise_affine {
            return Err(unsupported(
                "layer_norm_elementwise_affine = false (no released OPT uses it)".into(),
            ));
        }
        if hf.layerdrop != 0.0 {
            return Err(unsupported(format!(
                "layerdrop = {} (only 0 is implemented)",
                hf.layerdrop
            )));
        }
        let config = OptConfig {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            ffn_dim: hf.ffn_dim,
            max_position_embeddings: hf.max_position_embeddings,
            word_embed_proj_dim: hf.word_embed_proj_dim.unwrap_or(hf.hidden_size),
            do_layer_norm_before: hf.do_layer_norm_before,
            // HF: a final LayerNorm exists only for pre-LN models that did not remove it.
            final_layer_norm: hf.do_layer_norm_before && !hf._remove_final_layer_norm,
            enable_bias: hf.enable_bias,
            dropout: hf.dropout,
            attention_dropout: hf.attention_dropout,
            activation,
            init_std: hf.init_std,
            layer_norm_eps: 1e-5,
            pad_token_id: hf.pad_token_id,
            bos_token_id: hf.bos_token_id,
            eos_token_id: hf.eos_token_id,
        };
        config.validate().map_err(unsupported)?;
        Ok(config)
    }

    /// Checks the sizes fit together; the message says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("ffn_dim", self.ffn_dim),
            ("max_position_embeddings", self.max_position_embeddings),
            ("word_embed_proj_dim", self.word_embed_proj_dim),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} = {p} is outside [0, 1)"));
            }
        }
        Ok(())
    }

    /// A small pre-LayerNorm OPT for experiments trained from scratch (and tests):
    /// opt-125m's defaults with the given sizes; no project_in/out.
    pub fn tiny(
        vocab_size: usize,
        hidden_size: usize,
        num_layers: usize,
        num_heads: usize,
        ffn_dim: usize,
        max_position_embeddings: usize,
    ) -> Self {
        OptConfig {
            vocab_size,
            hidden_size,
            num_layers,
            num_heads,
            ffn_dim,
            max_position_embeddings,
            word_embed_proj_dim: hidden_size,
            ..Self::opt_125m()
        }
    }

    /// facebook/opt-125m's configuration.
    pub fn opt_125m() -> Self {
        OptConfig {
            vocab_size: 50272,
            hidden_size: 768,
            num_layers: 12,
            num_heads: 12,
            ffn_dim: 3072,
            max_position_embeddings: 2048,
            word_embed_proj_dim: 768,
            do_layer_norm_before: true,
            final_layer_norm: true,
            enable_bias: true,
            dropout: 0.1,
            attention_dropout: 0.0,
            activation: Activation::Relu,
            init_std: 0.02,
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(2),
            eos_token_id: Some(2),
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Whether the decoder has `project_in` / `project_out` (opt-350m).
    pub fn has_projections(&self) -> bool {
        self.word_embed_proj_dim != self.hidden_size
    }

    /// The HF mirror of this config (what `config.json` holds).
    pub fn to_hf(&self) -> HfOptConfig {
        let mut extra = serde_json::Map::new();
        extra.insert(
            "architectures".into(),
            serde_json::json!(["OPTForCausalLM"]),
        );
        extra.insert("torch_dtype".into(), serde_json::json!("float32"));
        HfOptConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_layers,
            ffn_dim: self.ffn_dim,
            max_position_embeddings: self.max_position_embeddings,
            do_layer_norm_before: self.do_layer_norm_before,
            // Post-LN models never have the final LayerNorm; the flag only matters for pre-LN.
            _remove_final_layer_norm: self.do_layer_norm_before && !self.final_layer_norm,
            word_embed_proj_dim: Some(self.word_embed_proj_dim),
            dropout: self.dropout,
            attention_dropout: self.attention_dropout,
            num_attention_heads: self.num_heads,
            activation_function: self.activation.hf_name().to_string(),
            layerdrop: 0.0,
            init_std: self.init_std,
            use_cache: true,
            pad_token_id: self.pad_token_id,
            bos_token_id: self.bos_token_id,
            eos_token_id: self.eos_token_id,
            enable_bias: self.enable_bias,
            layer_norm_elementwise_affine: true,
            model_type: Some("opt".into()),
            extra,
        }
    }

    /// `config.json` text that transformers' `OPTConfig.from_pretrained` reads back.
    pub fn to_hf_json(&self) -> String {
        // Serialising a struct of plain numbers, strings and a JSON map cannot fail.
        serde_json::to_string_pretty(&self.to_hf()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_125m_config_json_reads_with_hub_fields() {
        let text = r#"{"_name_or_path":"facebook/opt-125m","activation_dropout":0.0,
            "activation_function":"relu","architectures":["OPTForCausalLM"],
            "attention_dropout":0.0,"bos_token_id":2,"do_layer_norm_before":true,
            "dropout":0.1,"eos_token_id":2,"ffn_dim":3072,"hidden_size":768,
            "init_std":0.02,"layerdrop":0.0,"max_position_embeddings":2048,
            "model_type":"opt","num_attention_heads":12,"num_hidden_layers":12,
            "pad_token_id":1,"prefix":"</s>","torch_dtype":"float16",
            "transformers_version":"4.21.0.dev0","use_cache":true,"vocab_size":50272,
            "word_embed_proj_dim":768}"#;
        let config = OptConfig::from_hf_str(text).unwrap();
        assert_eq!(config, OptConfig::opt_125m());
    }

    #[test]
    fn round_trip_through_hf_json() {
        let mut config = OptConfig::tiny(100, 32, 2, 4, 64, 16);
        config.word_embed_proj_dim = 16;
        config.do_layer_norm_before = false;
        config.final_layer_norm = false;
        let back = OptConfig::from_hf_str(&config.to_hf_json()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn rejects_what_cannot_be_built() {
        let cases = [
            (
                r#"{"hidden_size": 30, "num_attention_heads": 4}"#,
                "multiple",
            ),
            (r#"{"activation_function": "silu"}"#, "silu"),
            (r#"{"model_type": "gpt2"}"#, "gpt2"),
            (r#"{"layerdrop": 0.1}"#, "layerdrop"),
        ];
        for (text, needle) in cases {
            let err = OptConfig::from_hf_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let err = OptConfig::from_hf_str("{\"hidden_size\": \"x\"}").unwrap_err();
        assert!(matches!(err, ModelError::ConfigParse { .. }));
    }
}
