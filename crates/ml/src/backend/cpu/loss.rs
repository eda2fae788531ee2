//! The next-token NLL of a causal LM and its gradient on the CPU, each one pass.
//!
//! Written with burn's tensor ops, `log_softmax(logits[:, :-1])` then a gather is a
//! dozen passes over `[batch, seq, vocab]` forward and backward (narrow, max, subtract,
//! exp, sum, log, subtract, gather; then their gradients, each a fresh array): at batch
//! 8 × 64 with OPT's 50272 tokens that is 100 MB per pass. Here the forward reads each
//! row of logits twice while it is in cache (its maximum, then `Σ exp(x - max)`), and
//! the backward writes the gradient `(softmax(x) - onehot(target)) · g` in one pass, as
//! PyTorch's fused cross-entropy kernels do.
//!
//! Numerics: per row, `logp[target] = (x[target] - max) - ln(Σ_v exp(x_v - max))`,
//! the sum in vocabulary order; the gradient uses `exp((x_v - max) - ln Σ)`. Rows
//! are independent, so results do not depend on the thread count (bitwise resume
//! holds).

use burn::tensor::{Int, Tensor};
use rayon::prelude::*;

use super::{Cpu, array, host_tensor, standard};
use crate::backend::NllStats;

/// `-log_softmax(logits[:, :-1])[input_ids[:, 1:]]` `[batch, seq - 1]` and the row
/// statistics; `logits` `[batch, seq, vocab]`, `seq ≥ 2`.
pub(super) fn shifted_nll(
    logits: Tensor<Cpu, 3>,
    input_ids: Tensor<Cpu, 2, Int>,
) -> (Tensor<Cpu, 2>, NllStats<Cpu>) {
    let [batch, seq, vocab] = logits.dims();
    let targets = targets(input_ids);
    let logits = standard(array(logits));
    let logits = logits.as_slice().expect("row-major logits");
    let rows: Vec<(f32, f32, f32)> = (0..batch * (seq - 1))
        .into_par_iter()
        .map(|row| {
            let (b, t) = (row / (seq - 1), row % (seq - 1));
            let x = &logits[(b * seq + t) * vocab..(b * seq + t + 1) * vocab];
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = x.iter().map(|&v| (v - max).exp()).sum();
            let ln_sum = sum.ln();
            let logp = (x[targets[row] as usize] - max) - ln_sum;
            (-logp, max, ln_sum)
        })
        .collect();
    let shape = [batch, seq - 1];
    let column = |f: fn(&(f32, f32, f32)) -> f32| host_tensor(rows.iter().map(f).collect(), shape);
    let stats = NllStats {
        max: column(|r| r.1),
        ln_sum: column(|r| r.2),
    };
    (column(|r| r.0), stats)
}

/// The gradient of [`shifted_nll`] for the logits, `[batch, seq, vocab]` (zero at the
/// last position, which predicts nothing).
pub(super) fn shifted_nll_backward(
    logits: Tensor<Cpu, 3>,
    input_ids: Tensor<Cpu, 2, Int>,
    stats: NllStats<Cpu>,
    grad: Tensor<Cpu, 2>,
) -> Tensor<Cpu, 3> {
    let [batch, seq, vocab] = logits.dims();
    let targets = targets(input_ids);
    let (max, ln_sum, grad) = (
        standard(array(stats.max)),
        standard(array(stats.ln_sum)),
        standard(array(grad)),
    );
    let (max, ln_sum, grad) = (
        max.as_slice().expect("row-major"),
        ln_sum.as_slice().expect("row-major"),
        grad.as_slice().expect("row-major"),
    );
    let logits = standard(array(logits));
    let logits = logits.as_slice().expect("row-major logits");
    let mut out = vec![0f32; batch * seq * vocab];
    out.par_chunks_mut(vocab)
        .enumerate()
        .for_each(|(position, out)| {
            let (b, t) = (position / seq, position % seq);
            if t == seq - 1 {
                return; // the last position predicts nothing
            }
            let row = b * (seq - 1) + t;
            let (g, max, ln_sum) = (grad[row], max[row], ln_sum[row]);
            let x = &logits[position * vocab..(position + 1) * vocab];
            for (o, &v) in out.iter_mut().zip(x) {
                *o = ((v - max) - ln_sum).exp() * g;
            }
            out[targets[row] as usize] -= g;
        });
    host_tensor(out, [batch, seq, vocab])
}

/// `input_ids[:, 1:]`, row-major.
fn targets(input_ids: Tensor<Cpu, 2, Int>) -> Vec<u32> {
    let seq = input_ids.dims()[1];
    input_ids
        .narrow(1, 1, seq - 1)
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .expect("integer ids")
        .into_iter()
        .map(|t| t as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::backend::Backend;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};

    use crate::backend::{XpBackend, shifted_nll_with_tensors};

    type Ad = Autodiff<super::Cpu>;

    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    /// The fused op (host kernels under autodiff), the generic op (burn's tensor ops
    /// under the same autodiff wrapper) and burn's own autodiff of log_softmax + gather
    /// give the same NLL and logits gradient.
    #[test]
    fn the_fused_loss_and_its_gradient_equal_the_tensor_ops() {
        let device = Default::default();
        let _rng = crate::backend::seeded_rng_lock();
        <Ad as Backend>::seed(&device, 9);
        let (batch, seq, vocab) = (3, 5, 37);
        let logits =
            Tensor::<Ad, 3>::random([batch, seq, vocab], Distribution::Normal(0.0, 3.0), &device)
                .require_grad();
        let ids: Vec<i64> = (0..batch * seq).map(|i| (i * 7 % vocab) as i64).collect();
        let ids = Tensor::<Ad, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
        // Unequal weights per position, so the gradient reaching the op is not uniform.
        let weights =
            Tensor::<Ad, 2>::random([batch, seq - 1], Distribution::Uniform(0.0, 1.0), &device);

        let (fused, _) = Ad::shifted_nll(logits.clone(), ids.clone());
        let (generic, _) = shifted_nll_with_tensors(logits.clone(), ids.clone());
        let reference = log_softmax(logits.clone().narrow(1, 0, seq - 1), 2)
            .gather(2, ids.clone().narrow(1, 1, seq - 1).unsqueeze_dim::<3>(2))
            .reshape([batch, seq - 1])
            .neg();
        let vec2 = |t: &Tensor<Ad, 2>| t.clone().inner().into_data().into_vec::<f32>().unwrap();
        close(vec2(&fused), vec2(&reference), 1e-6);
        close(vec2(&generic), vec2(&reference), 1e-6);
        let grad_of = |nll: Tensor<Ad, 2>| {
            let grads = (nll * weights.clone()).sum().backward();
            logits
                .grad(&grads)
                .unwrap()
                .into_data()
                .into_vec::<f32>()
                .unwrap()
        };
        let reference_grad = grad_of(reference);
        close(grad_of(fused), reference_grad.clone(), 1e-6);
        close(grad_of(generic), reference_grad, 1e-6);
    }

    /// The trait's generic backward (what GPU backends run) equals the host kernel's.
    #[test]
    fn the_generic_backward_equals_the_host_backward() {
        let device = Default::default();
        let _rng = crate::backend::seeded_rng_lock();
        <super::Cpu as Backend>::seed(&device, 10);
        let (batch, seq, vocab) = (2, 4, 29);
        let logits = Tensor::<super::Cpu, 3>::random(
            [batch, seq, vocab],
            Distribution::Normal(0.0, 2.0),
            &device,
        );
        let ids: Vec<i64> = (0..batch * seq).map(|i| (i * 5 % vocab) as i64).collect();
        let ids =
            Tensor::<super::Cpu, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);
        let grad = Tensor::<super::Cpu, 2>::random(
            [batch, seq - 1],
            Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let (_, stats) = super::shifted_nll(logits.clone(), ids.clone());
        let host =
            super::shifted_nll_backward(logits.clone(), ids.clone(), stats.clone(), grad.clone());
        let generic = crate::backend::shifted_nll_backward_with_tensors(logits, ids, stats, grad);
        close(
            host.into_data().into_vec().unwrap(),
            generic.into_data().into_vec().unwrap(),
            1e-6,
        );
    }
}
