//! OPT (Zhang et al., 2022) on burn: config from HF `config.json`, the decoder with a
//! tied LM head, HF checkpoint loading and saving, a caller-owned KV cache, scoring.
//!
//! Numbers and conventions follow transformers' `modeling_opt.py`; see PARITY.md.
//! Parity with transformers is tested on fixtures made by `scripts/make_fixtures.py`.

mod attention;
mod cache;
mod config;
mod decode;
mod error;
mod layer;
mod load;
mod opt;
mod params;
mod save;
pub mod score;

pub use attention::OptAttention;
pub use cache::KvCache;
pub use config::{Activation, HfOptConfig, OptConfig, POSITION_OFFSET};
pub use decode::DecodeWeights;
pub use error::{KeyReport, ModelError, ShapeMismatch};
pub use layer::OptDecoderLayer;
pub use load::{WEIGHT_FILES, load_pretrained, load_weights};
pub use opt::Opt;
pub use save::{TOKENIZER_FILES, save_pretrained};
