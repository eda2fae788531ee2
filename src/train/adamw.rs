//! AdamW exactly as `torch.optim.AdamW` (single-tensor path) computes it, over burn tensors:
//!
//! ```text
//! p ← p · (1 − lr·λ)                       decoupled weight decay, on every parameter
//! m ← m + (g − m)·(1 − β1)                 torch's `exp_avg.lerp_(grad, 1 − β1)`
//! v ← v·β2 + g·g·(1 − β2)
//! p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
//! ```
//!
//! burn's own `AdamW` divides `v` by its bias correction before the square root and
//! computes β powers in f32; the results differ in the last bits, and its state is keyed
//! by `ParamId`s that change when a model is reloaded. Here the state is a list in the
//! module's parameter order, so a checkpoint restores it onto a freshly loaded model.
//!
//! Where the update runs: on a GPU as tensor operations (fused by the backend). On the
//! CPU backend the same formula runs as one loop over host memory: burn-ndarray would
//! make each of the dozen tensor operations a separate pass with a fresh allocation
//! (and copies every reshape), which profiling showed to be about a quarter of an
//! OPT-125m training step. Both paths do the same f32 operations in the same order, so
//! they give bitwise the same parameters (tested below).

use crate::backend::into_host_vec;
use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rayon::prelude::*;

/// The optimizer's hyper-parameters (torch's defaults except `lr`, which is per call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// First and second moments of one parameter, flattened to 1-D: as tensors on the
/// device, or as host vectors (the CPU path, and what checkpoints restore).
#[derive(Debug, Clone)]
pub enum Moments<B: Backend> {
    Device { m: Tensor<B, 1>, v: Tensor<B, 1> },
    Host { m: Vec<f32>, v: Vec<f32> },
}

/// Where [`AdamW`] computes its update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOn {
    /// Tensor operations on the parameters' device.
    Device,
    /// One loop over host memory (the CPU backend's parameters already live there).
    Host,
}

impl UpdateOn {
    /// The host loop for burn-ndarray, tensor operations for every other backend.
    pub fn for_backend<B: Backend>() -> UpdateOn {
        if crate::backend::is_ndarray::<B>() {
            UpdateOn::Host
        } else {
            UpdateOn::Device
        }
    }
}

/// AdamW state: the number of steps taken and the moments per parameter, in the
/// order [`Module::visit`] walks the parameters.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    pub steps: u64,
    pub moments: Vec<Option<Moments<B>>>,
    /// `None`: chosen from the backend at the first update.
    pub update_on: Option<UpdateOn>,
}

/// The per-step scalars of the update, in the precision the tensor path applies them
/// (burn converts each f64 scalar to the f32 element type).
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    decay: Option<f32>,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    eps: f32,
    step_size: f32,
}

impl<B: Backend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW {
            config,
            steps: 0,
            moments: Vec::new(),
            update_on: None,
        }
    }

    /// Applies one update with learning rate `lr` and the accumulated gradients
    /// `grads` (one entry per parameter, in visit order; `None` = no gradient, the
    /// parameter is left alone as torch does for `grad is None`).
    pub fn step<AB, M>(&mut self, lr: f64, module: M, grads: Gradients<B>) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        self.steps += 1;
        if self.moments.len() < grads.sums.len() {
            self.moments.resize(grads.sums.len(), None);
        }
        let mut mapper = StepMapper::<B> {
            adamw: self,
            grads: grads.sums,
            lr,
            index: 0,
        };
        module.map(&mut mapper)
    }

    fn coefficients(&self, lr: f64) -> Coefficients {
        let c = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        Coefficients {
            decay: (c.weight_decay != 0.0).then_some((1.0 - lr * c.weight_decay) as f32),
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            bias2_sqrt: (1.0 - c.beta2.powi(t)).sqrt() as f32,
            eps: c.eps as f32,
            step_size: (lr / bias1) as f32,
        }
    }

    fn update<const D: usize>(
        &mut self,
        index: usize,
        lr: f64,
        param: Tensor<B, D>,
        grad: Tensor<B, 1>,
    ) -> Tensor<B, D> {
        let on = *self
            .update_on
            .get_or_insert_with(UpdateOn::for_backend::<B>);
        let k = self.coefficients(lr);
        let moments = self.moments[index].take();
        let (param, moments) = match on {
            UpdateOn::Device => update_tensors(k, param, grad, moments),
            UpdateOn::Host => update_on_host(k, param, grad, moments),
        };
        self.moments[index] = Some(moments);
        param
    }
}

/// The update as tensor operations.
fn update_tensors<B: Backend, const D: usize>(
    k: Coefficients,
    param: Tensor<B, D>,
    grad: Tensor<B, 1>,
    moments: Option<Moments<B>>,
) -> (Tensor<B, D>, Moments<B>) {
    let shape = param.shape();
    let device = param.device();
    let p = param.reshape([-1]); // [n]
    let p = match k.decay {
        Some(decay) => p.mul_scalar(decay),
        None => p,
    };
    let (m, v) = match moments {
        Some(Moments::Device { m, v }) => (m, v),
        Some(Moments::Host { m, v }) => (host_tensor(m, &device), host_tensor(v, &device)),
        None => (grad.zeros_like(), grad.zeros_like()),
    };
    let m = m.clone() + (grad.clone() - m).mul_scalar(k.one_minus_beta1);
    let v = v.mul_scalar(k.beta2) + (grad.clone() * grad).mul_scalar(k.one_minus_beta2);
    let denom = v.clone().sqrt().div_scalar(k.bias2_sqrt).add_scalar(k.eps);
    let p = p - (m.clone() / denom).mul_scalar(k.step_size);
    (p.reshape(shape), Moments::Device { m, v })
}

/// The same update, element by element over host vectors, in parallel chunks (each
/// element's arithmetic is independent, so the thread count does not change results).
fn update_on_host<B: Backend, const D: usize>(
    k: Coefficients,
    param: Tensor<B, D>,
    grad: Tensor<B, 1>,
    moments: Option<Moments<B>>,
) -> (Tensor<B, D>, Moments<B>) {
    let shape = param.shape();
    let device = param.device();
    let mut p = host_vec(param);
    let g = host_vec(grad);
    let (mut m, mut v) = match moments {
        Some(Moments::Host { m, v }) => (m, v),
        Some(Moments::Device { m, v }) => (host_vec(m), host_vec(v)),
        None => (vec![0.0; g.len()], vec![0.0; g.len()]),
    };
    const CHUNK: usize = 1 << 14;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            // Zipped, not indexed: without bounds checks the loop vectorises (sqrt and
            // division are correctly rounded in vector lanes too: the same bits).
            for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                let decayed = match k.decay {
                    Some(decay) => *p * decay,
                    None => *p,
                };
                *m = *m + (g - *m) * k.one_minus_beta1;
                *v = *v * k.beta2 + (g * g) * k.one_minus_beta2;
                let denom = v.sqrt() / k.bias2_sqrt + k.eps;
                *p = decayed - (*m / denom) * k.step_size;
            }
        });
    let param = Tensor::from_data(TensorData::new(p, shape), &device);
    (param, Moments::Host { m, v })
}

/// A tensor's elements as an f32 vector (one copy on the CPU backend).
fn host_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    into_host_vec(t).expect("f32 data converts to Vec<f32>")
}

fn host_tensor<B: Backend>(x: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let n = x.len();
    Tensor::from_data(TensorData::new(x, [n]), device)
}

/// Gradients summed over micro-batches, flattened, one entry per parameter in visit order.
#[derive(Debug, Clone)]
pub struct Gradients<B: Backend> {
    pub sums: Vec<Option<Tensor<B, 1>>>,
}

impl<B: Backend> Default for Gradients<B> {
    fn default() -> Self {
        Gradients { sums: Vec::new() }
    }
}

impl<B: Backend> Gradients<B> {
    /// Adds the gradients `grads` (from `loss.backward()`) of every parameter of `module`.
    pub fn accumulate<AB, M>(&mut self, module: &M, grads: &AB::Gradients)
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut visitor = Collect::<AB> {
            grads,
            sums: &mut self.sums,
            index: 0,
        };
        module.visit(&mut visitor);
    }

    /// The global L2 norm of all gradients (torch's `clip_grad_norm_` total norm).
    pub fn global_norm(&self) -> f64 {
        self.sums
            .iter()
            .flatten()
            .map(|g| {
                let s: f64 = (g.clone() * g.clone()).sum().into_scalar().elem();
                s
            })
            .sum::<f64>()
            .sqrt()
    }

    /// Scales every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for g in self.sums.iter_mut().flatten() {
            *g = g.clone().mul_scalar(factor);
        }
    }

    /// torch's `clip_grad_norm_(max_norm)`: scales by `max_norm / (norm + 1e-6)` when
    /// that is below 1. Returns the norm before clipping.
    pub fn clip_by_global_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.global_norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.scale(coef);
        }
        norm
    }
}

struct Collect<'a, AB: AutodiffBackend> {
    grads: &'a AB::Gradients,
    sums: &'a mut Vec<Option<Tensor<AB::InnerBackend, 1>>>,
    index: usize,
}

impl<AB: AutodiffBackend> ModuleVisitor<AB> for Collect<'_, AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if self.sums.len() <= self.index {
            self.sums.resize(self.index + 1, None);
        }
        if let Some(grad) = param.val().grad(self.grads) {
            let grad = grad.reshape([-1]); // [n]
            let slot = &mut self.sums[self.index];
            *slot = Some(match slot.take() {
                Some(sum) => sum + grad,
                None => grad,
            });
        }
        self.index += 1;
    }
}

struct StepMapper<'a, B: Backend> {
    adamw: &'a mut AdamW<B>,
    grads: Vec<Option<Tensor<B, 1>>>,
    lr: f64,
    index: usize,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for StepMapper<'_, AB::InnerBackend> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let index = self.index;
        self.index += 1;
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.get_mut(index).and_then(Option::take) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let updated = self.adamw.update(index, self.lr, tensor.inner(), grad);
        Param::from_mapped_value(id, Tensor::from_inner(updated).require_grad(), mapper)
    }
}

/// Every parameter's moments as flat f32 vectors `(m, v)`, as checkpoints store them.
pub type SavedMoments = Vec<Option<(Vec<f32>, Vec<f32>)>>;

/// The moments as flat f32 vectors (for checkpoints): `(m, v)` per parameter.
pub fn export_moments<B: Backend>(adamw: &AdamW<B>) -> SavedMoments {
    adamw
        .moments
        .iter()
        .map(|slot| {
            slot.as_ref().map(|moments| match moments {
                Moments::Device { m, v } => (host_vec(m.clone()), host_vec(v.clone())),
                Moments::Host { m, v } => (m.clone(), v.clone()),
            })
        })
        .collect()
}

/// Rebuilds moments from [`export_moments`]'s vectors. They stay host vectors until the
/// first update, which moves them to where it runs.
pub fn import_moments<B: Backend>(saved: SavedMoments) -> Vec<Option<Moments<B>>> {
    saved
        .into_iter()
        .map(|slot| slot.map(|(m, v)| Moments::Host { m, v }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Distribution;

    type AB = Autodiff<NdArray<f32>>;

    /// Three steps on a small linear layer with the given update path; returns the
    /// weights and the moments as exported for a checkpoint.
    fn three_steps(on: UpdateOn) -> (Vec<f32>, SavedMoments) {
        let device = Default::default();
        <AB as Backend>::seed(&device, 7);
        let mut layer: Linear<AB> = LinearConfig::new(16, 8).init(&device);
        let x = Tensor::<AB, 2>::random([4, 16], Distribution::Normal(0.0, 1.0), &device);
        let mut adamw = AdamW::<NdArray<f32>>::new(AdamWConfig::default());
        adamw.update_on = Some(on);
        for _ in 0..3 {
            let loss = layer.forward(x.clone()).powf_scalar(2.0).mean();
            let mut grads = Gradients::default();
            grads.accumulate::<AB, _>(&layer, &loss.backward());
            layer = adamw.step::<AB, _>(1e-2, layer, grads);
        }
        (host_vec(layer.weight.val().inner()), export_moments(&adamw))
    }

    #[test]
    fn host_and_tensor_updates_are_bitwise_equal() {
        let (w_device, m_device) = three_steps(UpdateOn::Device);
        let (w_host, m_host) = three_steps(UpdateOn::Host);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&w_device), bits(&w_host));
        assert_eq!(m_device.len(), m_host.len());
        for (a, b) in m_device.iter().zip(&m_host) {
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!(bits(&a.0), bits(&b.0));
            assert_eq!(bits(&a.1), bits(&b.1));
        }
    }

    #[test]
    fn ndarray_updates_on_the_host_by_default() {
        assert_eq!(UpdateOn::for_backend::<NdArray<f32>>(), UpdateOn::Host);
    }
}
