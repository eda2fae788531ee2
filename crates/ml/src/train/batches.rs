//! Which blocks form each batch: a seeded shuffle per epoch (as the authors' shuffled
//! DataLoader, `drop_last = False`) and the id tensors of a batch.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Blocks;

/// A seed for epoch `epoch` derived from the experiment seed (splitmix64 of both), so
/// every epoch's shuffle and dropout masks can be recreated on resume.
pub fn epoch_seed(seed: u64, epoch: usize, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order in which epoch `epoch` visits the `n` blocks: a permutation seeded by
/// `(seed, epoch)` when `shuffle`, else `0..n`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(epoch_seed(seed, epoch, 1));
        order.shuffle(&mut rng);
    }
    order
}

/// Optimizer steps per epoch: `ceil(n / batch_size)` (the last batch may be smaller).
pub fn steps_per_epoch(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size.max(1))
}

/// The ids of `blocks` at `indices`, `[indices.len(), block_size]`.
pub fn batch_ids<B: Backend>(
    blocks: &Blocks,
    indices: &[usize],
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let size = blocks.block_size();
    let ids: Vec<i64> = indices
        .iter()
        .flat_map(|&i| blocks.block(i).iter().map(|&t| t as i64))
        .collect();
    Tensor::from_data(TensorData::new(ids, [indices.len(), size]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_seeded_permutations() {
        let a = epoch_order(100, 0, 0, true);
        assert_eq!(a, epoch_order(100, 0, 0, true));
        assert_ne!(a, epoch_order(100, 0, 1, true), "epochs differ");
        assert_ne!(a, epoch_order(100, 1, 0, true), "seeds differ");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(epoch_order(5, 0, 0, false), vec![0, 1, 2, 3, 4]);
        assert_eq!(steps_per_epoch(2000, 128), 16);
        assert_eq!(steps_per_epoch(128, 128), 1);
    }
}
