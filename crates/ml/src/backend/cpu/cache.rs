//! The KV cache in host memory (the CPU backend), and the attention of a decoding
//! step that reads it.
//!
//! Beam search reorders the cache by beam index after every token. Copying the keys
//! and values of every surviving beam (transformers' `index_select`) moves the whole
//! cache per token: 2 × 12 layers × [20 rows, 12 heads, ~100 positions, 64] for the
//! paper's settings at OPT-125m, ~140 MB, more than the attention reads. Here a reorder
//! that keeps the row count only rewrites a table of sources: position `t` of row `r`
//! lives in physical row `sources[r][t]`. The next token of row `r` is written into
//! physical row `r` at its new position, which no other row's table can point at yet,
//! so nothing is ever overwritten while referenced. A reorder that changes the row
//! count (repeating each prompt once per beam) copies once.
//!
//! The decoding step's attention (one query per row) follows the table while it reads
//! keys and values; burn's ops would need the rows gathered into a tensor first.

use burn::tensor::{Bool, Tensor};
use rayon::prelude::*;

use super::{Cpu, host_tensor, values};
use crate::backend::KvStore;

/// One layer's keys and values, `[rows, heads, capacity, head_dim]` each.
#[derive(Clone, Debug)]
struct HostLayer {
    key: Vec<f32>,
    value: Vec<f32>,
    /// Positions filled in this layer (layers fill in turn during a forward).
    len: usize,
}

/// Every layer's keys and values for `rows` sequences; see the module docs.
#[derive(Clone, Debug)]
struct HostCache {
    layers: Vec<HostLayer>,
    /// Per row, per position: the physical row that holds it.
    sources: Vec<Vec<u32>>,
    heads: usize,
    head_dim: usize,
    /// Positions each physical row has room for.
    capacity: usize,
}

/// Dimensions of the keys/values one forward appends: `[rows, heads, new, head_dim]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Appended {
    pub rows: usize,
    pub heads: usize,
    pub new: usize,
    pub head_dim: usize,
}

impl HostCache {
    /// An empty cache for `rows × heads` sequences with room for `capacity` positions.
    pub fn new(rows: usize, heads: usize, head_dim: usize, capacity: usize) -> Self {
        HostCache {
            layers: Vec::new(),
            sources: vec![Vec::with_capacity(capacity); rows],
            heads,
            head_dim,
            capacity,
        }
    }

    pub fn rows(&self) -> usize {
        self.sources.len()
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Filled positions (of the first layer: the cache's length between forwards).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len)
    }

    /// Filled positions of `layer` (0 before its first append).
    pub fn layer_len(&self, layer: usize) -> usize {
        self.layers.get(layer).map_or(0, |l| l.len)
    }

    /// Offset of `[row, head, position, 0]` in a layer's buffers.
    fn at(&self, row: usize, head: usize, position: usize) -> usize {
        ((row * self.heads + head) * self.capacity + position) * self.head_dim
    }

    /// Writes `key`/`value` (`[rows, heads, new, head_dim]`, row-major) after the
    /// filled positions of `layer` (created when it is the next layer).
    pub fn append(&mut self, layer: usize, dims: Appended, key: &[f32], value: &[f32]) {
        debug_assert_eq!(
            (dims.rows, dims.heads, dims.head_dim),
            (self.rows(), self.heads, self.head_dim)
        );
        let start = self.layer_len(layer);
        self.reserve(start + dims.new);
        if layer == self.layers.len() {
            let size = self.rows() * self.heads * self.capacity * self.head_dim;
            self.layers.push(HostLayer {
                key: vec![0.0; size],
                value: vec![0.0; size],
                len: 0,
            });
        }
        if layer == 0 {
            // New positions of row r live in physical row r.
            for (r, sources) in self.sources.iter_mut().enumerate() {
                sources.resize(start + dims.new, r as u32);
            }
        }
        let hd = self.head_dim;
        for r in 0..dims.rows {
            for h in 0..dims.heads {
                let from = ((r * dims.heads + h) * dims.new) * hd;
                let to = self.at(r, h, start);
                let span = dims.new * hd;
                let l = &mut self.layers[layer];
                l.key[to..to + span].copy_from_slice(&key[from..from + span]);
                l.value[to..to + span].copy_from_slice(&value[from..from + span]);
            }
        }
        self.layers[layer].len = start + dims.new;
    }

    /// Room for `needed` positions per row, keeping the filled ones.
    fn reserve(&mut self, needed: usize) {
        if needed <= self.capacity {
            return;
        }
        let capacity = needed.max(2 * self.capacity);
        let rows_heads = self.rows() * self.heads;
        let old = self.capacity * self.head_dim;
        let new = capacity * self.head_dim;
        for layer in &mut self.layers {
            let filled = layer.len * self.head_dim;
            for buffer in [&mut layer.key, &mut layer.value] {
                let mut grown = vec![0.0; rows_heads * new];
                for (dst, src) in grown.chunks_exact_mut(new).zip(buffer.chunks_exact(old)) {
                    dst[..filled].copy_from_slice(&src[..filled]);
                }
                *buffer = grown;
            }
        }
        self.capacity = capacity;
    }

    /// Row `i` becomes old row `indices[i]` (indices already checked to be in range).
    pub fn reorder(&mut self, indices: &[usize]) {
        if indices.len() == self.rows() {
            self.sources = indices.iter().map(|&i| self.sources[i].clone()).collect();
            return;
        }
        // A new row count: gather into new physical rows, each its own source.
        let len = self.len();
        let mut gathered = HostCache::new(indices.len(), self.heads, self.head_dim, self.capacity);
        for (l, layer) in self.layers.iter().enumerate() {
            let (key, value) = self.gather(l, indices, layer.len);
            let dims = Appended {
                rows: indices.len(),
                heads: self.heads,
                new: layer.len,
                head_dim: self.head_dim,
            };
            gathered.append(l, dims, &key, &value);
        }
        debug_assert_eq!(gathered.len(), len);
        *self = gathered;
    }

    /// Keys and values of the first `positions` positions of `layer` for the rows
    /// `rows` (indices into the current rows), `[rows.len(), heads, positions, head_dim]`.
    pub fn gather(&self, layer: usize, rows: &[usize], positions: usize) -> (Vec<f32>, Vec<f32>) {
        let hd = self.head_dim;
        let size = rows.len() * self.heads * positions * hd;
        let (mut key, mut value) = (Vec::with_capacity(size), Vec::with_capacity(size));
        let l = &self.layers[layer];
        for &r in rows {
            for h in 0..self.heads {
                for t in 0..positions {
                    let at = self.at(self.sources[r][t] as usize, h, t);
                    key.extend_from_slice(&l.key[at..at + hd]);
                    value.extend_from_slice(&l.value[at..at + hd]);
                }
            }
        }
        (key, value)
    }

    /// Every row, in order (for [`HostCache::gather`]).
    pub fn all_rows(&self) -> Vec<usize> {
        (0..self.rows()).collect()
    }

    /// Keeps the first `len` positions.
    pub fn truncate(&mut self, len: usize) {
        for layer in &mut self.layers {
            layer.len = layer.len.min(len);
        }
        for sources in &mut self.sources {
            sources.truncate(len);
        }
    }

    /// Attention of one query per row over `layer`'s filled positions (this step's
    /// key/value already appended): `query` `[rows, heads, head_dim]` (scaled),
    /// `blocked` `[rows, positions]` (true = masked). Returns `[rows, heads, head_dim]`.
    ///
    /// Per row and head: scores `q · k_t` (eight partial sums over `head_dim`, added
    /// in a fixed order), blocked scores set to `f32::MIN` (as HF adds `finfo.min`),
    /// softmax in f32 (max, `exp(s - max)`, sum in position order, divide), then
    /// `Σ_t p_t v_t` in position order. Each row's result depends only on its own
    /// sequence, so batching does not change it.
    pub fn attend(&self, layer: usize, query: &[f32], blocked: &[bool]) -> Vec<f32> {
        let (heads, hd) = (self.heads, self.head_dim);
        let l = &self.layers[layer];
        let positions = l.len;
        debug_assert_eq!(blocked.len(), self.rows() * positions);
        let mut out = vec![0f32; self.rows() * heads * hd];
        out.par_chunks_mut(hd)
            .enumerate()
            .for_each(|(row_head, out)| {
                let (r, h) = (row_head / heads, row_head % heads);
                let q = &query[row_head * hd..(row_head + 1) * hd];
                let blocked = &blocked[r * positions..(r + 1) * positions];
                let sources = &self.sources[r];
                let mut scores: Vec<f32> = (0..positions)
                    .map(|t| {
                        if blocked[t] {
                            return f32::MIN;
                        }
                        let at = self.at(sources[t] as usize, h, t);
                        dot(q, &l.key[at..at + hd])
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for s in &mut scores {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                for (t, &e) in scores.iter().enumerate() {
                    let p = e / sum;
                    let at = self.at(sources[t] as usize, h, t);
                    for (o, v) in out.iter_mut().zip(&l.value[at..at + hd]) {
                        *o += p * *v;
                    }
                }
            });
        out
    }
}

/// `Σ a_i b_i` as eight interleaved partial sums combined in a fixed order (vectorises;
/// the same bits for any row, batch or thread count).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let pairs = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// [`KvStore`] of the CPU backend: a [`HostCache`], made at the first append (which
/// brings its rows, heads and head size).
#[derive(Clone, Debug)]
pub struct HostKv {
    cache: Option<HostCache>,
    /// Positions to make room for at the first append.
    reserve: usize,
}

impl HostKv {
    fn cache(&mut self, rows: usize, heads: usize, head_dim: usize) -> &mut HostCache {
        let capacity = self.reserve.max(1);
        self.cache
            .get_or_insert_with(|| HostCache::new(rows, heads, head_dim, capacity))
    }

    /// A decoding step's attention (see `XpBackend::decode_attention`): appends this
    /// step's `key` and `value` `[rows, heads × head_dim]` to `layer` and attends with
    /// `query` over every filled position. Returns `[rows, heads × head_dim]`.
    pub(super) fn attend_step(
        &mut self,
        layer: usize,
        heads: usize,
        query: Tensor<Cpu, 2>,
        key: Tensor<Cpu, 2>,
        value: Tensor<Cpu, 2>,
        blocked: Tensor<Cpu, 4, Bool>,
    ) -> Tensor<Cpu, 2> {
        let [rows, hidden] = query.dims();
        let head_dim = hidden / heads;
        let cache = self.cache(rows, heads, head_dim);
        let dims = Appended {
            rows,
            heads,
            new: 1,
            head_dim,
        };
        cache.append(layer, dims, &values(key), &values(value));
        let blocked: Vec<bool> = blocked.into_data().into_vec().expect("a boolean mask");
        let out = cache.attend(layer, &values(query), &blocked);
        host_tensor(out, [rows, hidden])
    }
}

impl KvStore<Cpu> for HostKv {
    fn with_capacity(positions: usize) -> Self {
        HostKv {
            cache: None,
            reserve: positions,
        }
    }

    fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, HostCache::len)
    }

    fn rows(&self) -> Option<usize> {
        self.cache.as_ref().map(HostCache::rows)
    }

    fn num_layers(&self) -> usize {
        self.cache.as_ref().map_or(0, HostCache::num_layers)
    }

    fn reorder(&mut self, indices: &[usize]) {
        if let Some(cache) = &mut self.cache {
            cache.reorder(indices);
        }
    }

    fn truncate(&mut self, len: usize) {
        if let Some(cache) = &mut self.cache {
            cache.truncate(len);
        }
    }

    /// The first positions come back as given; later multi-position steps get the
    /// sequences gathered into new tensors.
    fn append(
        &mut self,
        layer: usize,
        key: Tensor<Cpu, 4>,
        value: Tensor<Cpu, 4>,
    ) -> (Tensor<Cpu, 4>, Tensor<Cpu, 4>) {
        let [rows, heads, new, head_dim] = key.dims();
        let (key_values, value_values) = (values(key.clone()), values(value.clone()));
        let cache = self.cache(rows, heads, head_dim);
        let dims = Appended {
            rows,
            heads,
            new,
            head_dim,
        };
        let past = cache.layer_len(layer);
        cache.append(layer, dims, &key_values, &value_values);
        if past == 0 {
            return (key, value);
        }
        let total = past + new;
        let (k, v) = cache.gather(layer, &cache.all_rows(), total);
        let shape = [rows, heads, total, head_dim];
        (host_tensor(k, shape), host_tensor(v, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                    / (1u32 << 24) as f32
                    - 0.5
            })
            .collect()
    }

    /// Attention of one query over explicit keys/values `[positions, head_dim]`, in f64.
    fn reference(q: &[f32], keys: &[f32], vals: &[f32], blocked: &[bool], hd: usize) -> Vec<f64> {
        let scores: Vec<f64> = keys
            .chunks(hd)
            .zip(blocked)
            .map(|(k, &b)| {
                if b {
                    f64::NEG_INFINITY
                } else {
                    q.iter().zip(k).map(|(a, b)| *a as f64 * *b as f64).sum()
                }
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let mut out = vec![0f64; hd];
        for (p, v) in e.iter().zip(vals.chunks(hd)) {
            for (o, x) in out.iter_mut().zip(v) {
                *o += p / sum * *x as f64;
            }
        }
        out
    }

    #[test]
    fn attention_follows_the_sources_after_reorders() {
        let (rows, heads, hd) = (3, 2, 12);
        let dims = |new| Appended {
            rows,
            heads,
            new,
            head_dim: hd,
        };
        let mut cache = HostCache::new(rows, heads, hd, 2); // grows on the first append
        let prompt = rows * heads * 3 * hd;
        cache.append(0, dims(3), &values(prompt, 1), &values(prompt, 2));
        cache.reorder(&[2, 2, 0]);
        let step = rows * heads * hd;
        cache.append(0, dims(1), &values(step, 3), &values(step, 4));
        cache.reorder(&[1, 0, 0]);
        cache.append(0, dims(1), &values(step, 5), &values(step, 6));
        assert_eq!(cache.len(), 5);

        // Row 0 is now: prompt of old row 2, then step 1 of row 1, then its own step 2.
        let (keys, vals) = cache.gather(0, &cache.all_rows(), 5);
        let at = |data: &[f32], r: usize, h: usize, t: usize| {
            let o = ((r * heads + h) * 5 + t) * hd;
            data[o..o + hd].to_vec()
        };
        let prompt_keys = values(prompt, 1);
        let step1_keys = values(step, 3);
        assert_eq!(
            at(&keys, 0, 1, 2),
            prompt_keys[((2 * heads + 1) * 3 + 2) * hd..][..hd]
        );
        assert_eq!(at(&keys, 0, 1, 3), step1_keys[(heads + 1) * hd..][..hd]);

        let query = values(step, 7);
        let blocked: Vec<bool> = (0..rows * 5).map(|i| i == 1).collect(); // row 0, position 1
        let out = cache.attend(0, &query, &blocked);
        for r in 0..rows {
            for h in 0..heads {
                let rh = r * heads + h;
                let ks: Vec<f32> = (0..5).flat_map(|t| at(&keys, r, h, t)).collect();
                let vs: Vec<f32> = (0..5).flat_map(|t| at(&vals, r, h, t)).collect();
                let want = reference(
                    &query[rh * hd..][..hd],
                    &ks,
                    &vs,
                    &blocked[r * 5..][..5],
                    hd,
                );
                for (g, w) in out[rh * hd..][..hd].iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
                }
            }
        }

        // A row alone gives the bits it gets among the others.
        let mut alone = HostCache::new(1, heads, hd, 8);
        let (k0, v0) = cache.gather(0, &[0], 5);
        alone.append(
            0,
            Appended {
                rows: 1,
                heads,
                new: 5,
                head_dim: hd,
            },
            &k0,
            &v0,
        );
        let single = alone.attend(0, &query[..heads * hd], &blocked[..5]);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&single), bits(&out[..heads * hd]));
    }
}
