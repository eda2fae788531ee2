//! Where a new model's parameters come from: random init (HF's scheme) or a checkpoint.
//!
//! The model's constructors ask a [`ParamSource`] for every parameter by its HF key
//! and HF shape, so the list of keys a model needs is written once, in the
//! constructors, and both `Opt::init` and the loader follow it.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

/// How a parameter is initialised at random (HF `OPTPreTrainedModel._init_weights`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// normal(0, std): Linear and Embedding weights.
    Normal(f64),
    /// normal(0, std) with one row zeroed: `embed_tokens` with its padding row.
    NormalZeroRow(f64, usize),
    /// zeros: biases, LayerNorm bias.
    Zeros,
    /// ones: LayerNorm gain.
    Ones,
}

/// Supplies parameters by HF key (no `model.` prefix).
pub(crate) trait ParamSource<B: Backend> {
    /// A tensor in HF layout `hf_shape`; `transpose` asks for the 2-D transpose
    /// (torch Linear stores `[out, in]`, burn's Linear `[in, out]`).
    fn tensor<const D: usize>(
        &mut self,
        key: &str,
        hf_shape: [usize; D],
        init: Init,
        transpose: bool,
    ) -> Tensor<B, D>;

    /// The device the tensors are made on.
    fn device(&self) -> B::Device;
}

/// A `Linear(d_in -> d_out)` under `prefix` (`{prefix}.weight` `[out, in]`, `{prefix}.bias`).
pub(crate) fn linear<B: Backend, S: ParamSource<B>>(
    src: &mut S,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    std: f64,
) -> Linear<B> {
    // [d_in, d_out] after the transpose: burn computes x · W.
    let weight = src.tensor(
        &format!("{prefix}.weight"),
        [d_out, d_in],
        Init::Normal(std),
        true,
    );
    let bias = bias.then(|| {
        Param::from_tensor(src.tensor(&format!("{prefix}.bias"), [d_out], Init::Zeros, false))
    });
    Linear {
        weight: Param::from_tensor(weight),
        bias,
    }
}

/// A LayerNorm over `d` features under `prefix` (`.weight` = gain, `.bias`).
pub(crate) fn layer_norm<B: Backend, S: ParamSource<B>>(
    src: &mut S,
    prefix: &str,
    d: usize,
    eps: f64,
) -> LayerNorm<B> {
    let device = src.device();
    // The config init makes lazy (never materialised) params that are replaced here;
    // it is the only way to set burn's private epsilon field.
    let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(&device);
    norm.gamma =
        Param::from_tensor(src.tensor(&format!("{prefix}.weight"), [d], Init::Ones, false));
    norm.beta = Some(Param::from_tensor(src.tensor(
        &format!("{prefix}.bias"),
        [d],
        Init::Zeros,
        false,
    )));
    norm
}

/// An embedding table `[rows, d]` at `key`.
pub(crate) fn embedding<B: Backend, S: ParamSource<B>>(
    src: &mut S,
    key: &str,
    rows: usize,
    d: usize,
    init: Init,
) -> Embedding<B> {
    Embedding {
        weight: Param::from_tensor(src.tensor(key, [rows, d], init, false)),
    }
}

/// Random parameters as HF initialises a fresh OPT (uses the backend's RNG: seed it first).
pub(crate) struct RandomInit<B: Backend> {
    pub device: B::Device,
}

impl<B: Backend> ParamSource<B> for RandomInit<B> {
    fn tensor<const D: usize>(
        &mut self,
        _key: &str,
        hf_shape: [usize; D],
        init: Init,
        transpose: bool,
    ) -> Tensor<B, D> {
        let mut shape = hf_shape;
        if transpose {
            shape.reverse();
        }
        match init {
            Init::Normal(std) => {
                Tensor::random(shape, Distribution::Normal(0.0, std), &self.device)
            }
            Init::NormalZeroRow(std, row) => {
                let t = Tensor::random(shape, Distribution::Normal(0.0, std), &self.device);
                if D == 2 && row < shape[0] {
                    // [rows, width]: zero row `row` (HF zeroes the padding embedding).
                    let width: usize = shape.iter().skip(1).product();
                    let zeros = Tensor::<B, 2>::zeros([1, width], &self.device);
                    let t2: Tensor<B, 2> = t.reshape([shape[0], width]);
                    t2.slice_assign([row..row + 1, 0..width], zeros)
                        .reshape(shape)
                } else {
                    t
                }
            }
            Init::Zeros => Tensor::zeros(shape, &self.device),
            Init::Ones => Tensor::ones(shape, &self.device),
        }
    }

    fn device(&self) -> B::Device {
        self.device.clone()
    }
}

/// A parameter read back from a model for saving: HF key, HF shape, f32 values.
pub(crate) struct NamedTensor {
    pub key: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a tensor's values as f32 (always possible for a float tensor).
fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_default()
}

/// Appends `{prefix}.weight` (transposed back to torch's `[out, in]`) and `{prefix}.bias`.
pub(crate) fn export_linear<B: Backend>(l: &Linear<B>, prefix: &str, out: &mut Vec<NamedTensor>) {
    let w = l.weight.val().transpose(); // [out, in]
    out.push(NamedTensor {
        key: format!("{prefix}.weight"),
        shape: w.dims().to_vec(),
        data: values(w),
    });
    if let Some(b) = &l.bias {
        let b = b.val();
        out.push(NamedTensor {
            key: format!("{prefix}.bias"),
            shape: b.dims().to_vec(),
            data: values(b),
        });
    }
}

/// Appends `{prefix}.weight` (gain) and `{prefix}.bias` of a LayerNorm.
pub(crate) fn export_layer_norm<B: Backend>(
    n: &LayerNorm<B>,
    prefix: &str,
    out: &mut Vec<NamedTensor>,
) {
    let params = [("weight", Some(&n.gamma)), ("bias", n.beta.as_ref())];
    for (name, p) in params {
        if let Some(p) = p {
            let t = p.val();
            out.push(NamedTensor {
                key: format!("{prefix}.{name}"),
                shape: t.dims().to_vec(),
                data: values(t),
            });
        }
    }
}

/// Appends an embedding table under `key`.
pub(crate) fn export_embedding<B: Backend>(
    e: &Embedding<B>,
    key: &str,
    out: &mut Vec<NamedTensor>,
) {
    let t = e.weight.val();
    out.push(NamedTensor {
        key: key.to_string(),
        shape: t.dims().to_vec(),
        data: values(t),
    });
}
