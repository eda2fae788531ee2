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
//! The update itself is a backend operation (`XpBackend::adamw_update`): tensor
//! operations on a GPU, one loop over host memory on the CPU; both do the same f32
//! operations in the same order, so they give bitwise the same parameters (tested
//! below).

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};

use crate::backend::{AdamWStep, XpBackend};

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

/// First and second moments of one parameter, flattened to 1-D: tensors on the
/// parameters' device, or the host vectors a checkpoint restored (moved to the device
/// at the first update).
#[derive(Debug, Clone)]
pub enum Moments<B: Backend> {
    Device { m: Tensor<B, 1>, v: Tensor<B, 1> },
    Saved { m: Vec<f32>, v: Vec<f32> },
}

/// AdamW state: the number of steps taken and the moments per parameter, in the
/// order [`Module::visit`] walks the parameters.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    pub steps: u64,
    pub moments: Vec<Option<Moments<B>>>,
}

impl<B: XpBackend> AdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW {
            config,
            steps: 0,
            moments: Vec::new(),
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

    /// The per-step scalars, in the precision the update applies them (burn converts
    /// each f64 scalar to the f32 element type).
    fn coefficients(&self, lr: f64) -> AdamWStep {
        let c = self.config;
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        AdamWStep {
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
        let k = self.coefficients(lr);
        let shape = param.dims();
        let device = param.device();
        let moments = match self.moments[index].take() {
            Some(Moments::Device { m, v }) => (m, v),
            Some(Moments::Saved { m, v }) => (host_tensor(m, &device), host_tensor(v, &device)),
            None => (grad.zeros_like(), grad.zeros_like()),
        };
        let flat = B::reshape_in_place(param, [shape.iter().product()]);
        let (param, (m, v)) = B::adamw_update(flat, grad, moments, &k);
        self.moments[index] = Some(Moments::Device { m, v });
        B::reshape_in_place(param, shape)
    }
}

fn host_vec<B: XpBackend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    B::to_host_f32(t)
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
        B: XpBackend,
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

impl<AB: AutodiffBackend<InnerBackend: XpBackend>> ModuleVisitor<AB> for Collect<'_, AB> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
        if self.sums.len() <= self.index {
            self.sums.resize(self.index + 1, None);
        }
        if let Some(grad) = param.val().grad(self.grads) {
            let n = grad.shape().num_elements();
            let grad = AB::InnerBackend::reshape_in_place(grad, [n]); // [n]
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

impl<AB> ModuleMapper<AB> for StepMapper<'_, AB::InnerBackend>
where
    AB: AutodiffBackend<InnerBackend: XpBackend>,
{
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
pub fn export_moments<B: XpBackend>(adamw: &AdamW<B>) -> SavedMoments {
    adamw
        .moments
        .iter()
        .map(|slot| {
            slot.as_ref().map(|moments| match moments {
                Moments::Device { m, v } => (host_vec(m.clone()), host_vec(v.clone())),
                Moments::Saved { m, v } => (m.clone(), v.clone()),
            })
        })
        .collect()
}

/// Rebuilds moments from [`export_moments`]'s vectors. They stay host vectors until the
/// first update, which moves them to the parameters' device.
pub fn import_moments<B: Backend>(saved: SavedMoments) -> Vec<Option<Moments<B>>> {
    saved
        .into_iter()
        .map(|slot| slot.map(|(m, v)| Moments::Saved { m, v }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Distribution;

    use crate::backend::adamw_update_with_tensors;

    type AB = Autodiff<NdArray<f32>>;

    /// Three steps on a small linear layer; returns the weights and the moments as
    /// exported for a checkpoint.
    fn three_steps() -> (Vec<f32>, SavedMoments) {
        let device = Default::default();
        let _rng = crate::backend::seeded_rng_lock();
        <AB as Backend>::seed(&device, 7);
        let mut layer: Linear<AB> = LinearConfig::new(16, 8).init(&device);
        let x = Tensor::<AB, 2>::random([4, 16], Distribution::Normal(0.0, 1.0), &device);
        let mut adamw = AdamW::<NdArray<f32>>::new(AdamWConfig::default());
        for _ in 0..3 {
            let loss = layer.forward(x.clone()).powf_scalar(2.0).mean();
            let mut grads = Gradients::default();
            grads.accumulate::<AB, _>(&layer, &loss.backward());
            layer = adamw.step::<AB, _>(1e-2, layer, grads);
        }
        (host_vec(layer.weight.val().inner()), export_moments(&adamw))
    }

    /// The CPU's host loop and the tensor-op update (what GPUs run) give the same bits.
    #[test]
    fn host_and_tensor_updates_are_bitwise_equal() {
        type B = NdArray<f32>;
        let device = Default::default();
        let _rng = crate::backend::seeded_rng_lock();
        <B as Backend>::seed(&device, 8);
        let n = 1000;
        let random = || Tensor::<B, 1>::random([n], Distribution::Normal(0.0, 1.0), &device);
        let (mut host, mut tensors) = {
            let (p, m, v) = (random(), random(), random().abs());
            ((p.clone(), m.clone(), v.clone()), (p, m, v))
        };
        let adamw = AdamW::<B> {
            config: AdamWConfig::default(),
            steps: 0,
            moments: Vec::new(),
        };
        let bits = |t: &Tensor<B, 1>| {
            host_vec(t.clone())
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        for step in 1..=3 {
            let k = AdamW {
                steps: step,
                ..adamw.clone()
            }
            .coefficients(1e-2);
            let grad = random();
            let (p, (m, v)) = B::adamw_update(host.0, grad.clone(), (host.1, host.2), &k);
            host = (p, m, v);
            let (p, (m, v)) =
                adamw_update_with_tensors(tensors.0, grad, (tensors.1, tensors.2), &k);
            tensors = (p, m, v);
            assert_eq!(bits(&host.0), bits(&tensors.0), "parameters, step {step}");
            assert_eq!(bits(&host.1), bits(&tensors.1), "first moment, step {step}");
            assert_eq!(
                bits(&host.2),
                bits(&tensors.2),
                "second moment, step {step}"
            );
        }
    }

    #[test]
    fn saved_moments_resume_the_same_updates() {
        let (weights, moments) = three_steps();
        assert_eq!(weights.len(), 16 * 8);
        let restored = import_moments::<NdArray<f32>>(moments.clone());
        let adamw = AdamW::<NdArray<f32>> {
            config: AdamWConfig::default(),
            steps: 3,
            moments: restored,
        };
        assert_eq!(export_moments(&adamw), moments);
    }
}
