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

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};

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

/// First and second moments of one parameter, flattened to 1-D.
#[derive(Debug, Clone)]
pub struct Moments<B: Backend> {
    pub m: Tensor<B, 1>,
    pub v: Tensor<B, 1>,
}

/// AdamW state: the number of steps taken and the moments per parameter, in the
/// order [`Module::visit`] walks the parameters.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    pub config: AdamWConfig,
    pub steps: u64,
    pub moments: Vec<Option<Moments<B>>>,
}

impl<B: Backend> AdamW<B> {
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

    fn update<const D: usize>(
        &mut self,
        index: usize,
        lr: f64,
        param: Tensor<B, D>,
        grad: Tensor<B, 1>,
    ) -> Tensor<B, D> {
        let c = self.config;
        let shape = param.shape();
        let p = param.reshape([-1]); // [n]
        let p = if c.weight_decay != 0.0 {
            p.mul_scalar(1.0 - lr * c.weight_decay)
        } else {
            p
        };
        let (m, v) = match self.moments[index].take() {
            Some(Moments { m, v }) => (m, v),
            None => (grad.zeros_like(), grad.zeros_like()),
        };
        let m = m.clone() + (grad.clone() - m).mul_scalar(1.0 - c.beta1);
        let v = v.mul_scalar(c.beta2) + (grad.clone() * grad).mul_scalar(1.0 - c.beta2);
        let t = self.steps as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let denom = v.clone().sqrt().div_scalar(bias2_sqrt).add_scalar(c.eps);
        let p = p - (m.clone() / denom).mul_scalar(lr / bias1);
        self.moments[index] = Some(Moments { m, v });
        p.reshape(shape)
    }
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

/// The moments as flat f32 vectors (for checkpoints): `(m, v)` per parameter.
pub fn export_moments<B: Backend>(adamw: &AdamW<B>) -> Vec<Option<(Vec<f32>, Vec<f32>)>> {
    adamw
        .moments
        .iter()
        .map(|slot| {
            slot.as_ref().map(|Moments { m, v }| {
                let read = |t: &Tensor<B, 1>| {
                    t.clone()
                        .into_data()
                        .convert::<f32>()
                        .into_vec::<f32>()
                        .unwrap_or_default()
                };
                (read(m), read(v))
            })
        })
        .collect()
}

/// Rebuilds moments from [`export_moments`]'s vectors on `device`.
pub fn import_moments<B: Backend>(
    saved: Vec<Option<(Vec<f32>, Vec<f32>)>>,
    device: &B::Device,
) -> Vec<Option<Moments<B>>> {
    saved
        .into_iter()
        .map(|slot| {
            slot.map(|(m, v)| {
                let make = |x: Vec<f32>| {
                    let n = x.len();
                    Tensor::<B, 1>::from_data(TensorData::new(x, [n]), device)
                };
                Moments {
                    m: make(m),
                    v: make(v),
                }
            })
        })
        .collect()
}
