//! xp's own sgemm for the training and evaluation products on AVX-512: operands packed
//! into panels, a 12 × 32 register tile, blocking chosen per shape, the columns split
//! across the thread pool.
//!
//! Every output element is the sum matrixmultiply's FMA kernels compute (and
//! `super::matmul`'s tests spell out in plain Rust): `k` in blocks of [`KC`], each
//! block a chain of fused multiply-adds from zero in `k` order, the blocks added to
//! the output in order. Only the order in which elements are computed differs, so a
//! product gives the same bits here and in matrixmultiply, and a product may go to
//! either (tested below on shapes that cut every block and tile).
//!
//! Why not matrixmultiply's own AVX-512 kernel: its 16 × 16 tile and fixed 64-row
//! blocks re-pack the vocabulary-sized operands and its threads split the work so
//! that two cores run little faster than one; BENCHMARKS.md has the rates per shape.

use std::cell::RefCell;

use ndarray::ArrayView2;
use rayon::prelude::*;

/// The `k` block of the sum order (matrixmultiply's `KC`): fixed, it is part of the
/// numbers.
const KC: usize = 256;
/// Rows of the register tile: 12 rows × 2 vectors = 24 accumulators of the 32 zmm
/// registers, leaving room for the two `b` vectors and the broadcast `a` value.
const MR: usize = 12;
/// Columns of the register tile: two 16-lane vectors.
const NR: usize = 32;
/// Column panels packed together, so that each row of `b` is read as `GROUP · NR`
/// contiguous values.
const GROUP: usize = 8;
/// The packed block of `a` that stays resident while the panels of `b` stream past it:
/// 1.6 MiB, within one core's L2 on current server CPUs (2 MiB on Sapphire and
/// Emerald Rapids; on Zen 4/5's 1 MiB it spills to L3 but is read in order), and
/// enough for a whole `[512, 768]` activation (batch 8 × 64 at OPT-125m's width).
const A_BLOCK_FLOATS: usize = 416 * 1024;

/// A read-only matrix operand: element `(i, j)` at `ptr + i · row_stride + j ·
/// col_stride` (strides in elements).
#[derive(Debug, Clone, Copy)]
pub(super) struct Operand {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

// SAFETY: an operand is only read, and `sgemm`'s caller keeps it alive and unchanged.
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

impl Operand {
    /// `x` as it lies in memory, whatever its strides.
    pub(super) fn of(x: &ArrayView2<'_, f32>) -> Self {
        Operand {
            ptr: x.as_ptr(),
            row_stride: x.strides()[0],
            col_stride: x.strides()[1],
        }
    }

    /// # Safety
    /// `(i, j)` must be inside the operand.
    #[inline(always)]
    unsafe fn at(&self, i: usize, j: usize) -> f32 {
        unsafe {
            *self
                .ptr
                .offset(i as isize * self.row_stride + j as isize * self.col_stride)
        }
    }
}

/// The output's base pointer, shared by the tasks that write disjoint tiles of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: tasks write disjoint column ranges (see `sgemm`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// How a product is cut: `a` in blocks of `mc` rows × `ks` of `k`, each packed once;
/// the panels of `b` packed once per block of `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Blocking {
    mc: usize,
    ks: usize,
}

/// The blocking with the least memory traffic within `a_block_floats` of packed `a`:
/// the output is read and written once per `k` block of `ks` (`⌈k / ks⌉ · m · n · 2`
/// floats) and `b` packed once per row block (`⌈m / mc⌉ · k · n`).
fn blocking(m: usize, k: usize, n: usize, a_block_floats: usize) -> Blocking {
    let m_panels = m.div_ceil(MR);
    let mut best: Option<(usize, Blocking)> = None;
    for blocks in 1..=k.div_ceil(KC) {
        let ks = (blocks * KC).min(k);
        // Row blocks of equal size: a last block of a few rows would pack all of `b`
        // for little work.
        let most_panels = (a_block_floats / (ks * MR)).clamp(1, m_panels);
        let mc = m_panels.div_ceil(m_panels.div_ceil(most_panels)) * MR;
        let cost = k.div_ceil(ks) * m * n * 2 + m.div_ceil(mc) * k * n;
        if best.is_none_or(|(least, _)| cost < least) {
            best = Some((cost, Blocking { mc, ks }));
        }
    }
    best.expect("k ≥ 1 gives one candidate").1
}

thread_local! {
    /// Packing buffers kept per thread between calls: a training step makes hundreds
    /// of products, and fresh megabytes each time would be page faults. Each is taken
    /// out for a call and put back after, so that a call nested in another on the same
    /// thread (a rayon worker that steals a task while it waits) packs into a buffer
    /// of its own instead of finding this one borrowed.
    static PACKED_A: RefCell<AlignedBuffer> = const { RefCell::new(AlignedBuffer(Vec::new())) };
    static PACKED_B: RefCell<AlignedBuffer> = const { RefCell::new(AlignedBuffer(Vec::new())) };
}

/// A product's dimensions: `a` `[m, k]` · `b` `[k, n]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

/// `c = a · b` into `c` row-major `[m, n]` with row stride `ldc` (every element
/// written).
///
/// # Safety
/// The CPU must have AVX-512 F (where `super::isa` chooses
/// [`super::isa::Isa::Avx512`]); `a` and `b` must address `m × k` and `k × n` readable
/// elements and `c` `m` rows of `n` writable ones, not overlapping `a` or `b`.
pub(super) unsafe fn sgemm(dims: Dims, a: Operand, b: Operand, c: *mut f32, ldc: usize) {
    unsafe { sgemm_blocked(dims, a, b, c, ldc, A_BLOCK_FLOATS) }
}

/// [`sgemm`] with the packed block of `a` bounded by `a_block_floats` (tests make it
/// small to cut small products into many blocks).
unsafe fn sgemm_blocked(
    Dims { m, k, n }: Dims,
    a: Operand,
    b: Operand,
    c: *mut f32,
    ldc: usize,
    a_block_floats: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            // SAFETY: row `i < m` of `c` has `n` writable values.
            unsafe { std::ptr::write_bytes(c.add(i * ldc), 0, n) };
        }
        return;
    }
    let Blocking { mc, ks } = blocking(m, k, n, a_block_floats);
    let n_panels = n.div_ceil(NR);
    // Contiguous runs of column panels, two per thread so that a thread slowed by
    // something else is helped by the other.
    let run = n_panels.div_ceil(2 * rayon::current_num_threads()).max(1);
    let runs = n_panels.div_ceil(run);
    let out = Out(c);
    let mut buffer_a = PACKED_A.take();
    {
        let packed_a = buffer_a.slice(mc * ks);
        for i0 in (0..m).step_by(mc) {
            let rows = mc.min(m - i0);
            for k0 in (0..k).step_by(ks) {
                let depth = ks.min(k - k0);
                let panels_a = &mut packed_a[..rows.div_ceil(MR) * MR * depth];
                panels_a
                    .par_chunks_mut(MR * depth)
                    .enumerate()
                    .for_each(|(p, panel)| {
                        pack_a(panel, a, i0 + p * MR, MR.min(rows - p * MR), k0, depth)
                    });
                let panels_a = &*panels_a;
                let compute_run = |r: usize| {
                    let panels = r * run..((r + 1) * run).min(n_panels);
                    let mut buffer_b = PACKED_B.take();
                    {
                        let packed_b = buffer_b.slice(GROUP * KC * NR);
                        for g0 in panels.clone().step_by(GROUP) {
                            let group = g0..(g0 + GROUP).min(panels.end);
                            for (block, kb) in (0..depth).step_by(KC).enumerate() {
                                let kc = KC.min(depth - kb);
                                let first = k0 == 0 && block == 0;
                                let j0 = group.start * NR;
                                pack_b(
                                    packed_b,
                                    b,
                                    k0 + kb,
                                    kc,
                                    j0,
                                    (group.len() * NR).min(n - j0),
                                );
                                // Each 12-row panel of `a` (12 KiB) stays in L1 while
                                // the group's panels of `b` stream past it from L2.
                                for (p, panel_a) in panels_a.chunks_exact(MR * depth).enumerate() {
                                    let r0 = p * MR;
                                    for (g, panel) in group.clone().enumerate() {
                                        let j = panel * NR;
                                        // SAFETY: AVX-512 (the caller's guarantee);
                                        // both panels hold `kc` rows from `kb`; the
                                        // tile's rows and columns are inside `c`, in
                                        // columns no other task writes.
                                        unsafe {
                                            tile(
                                                kc,
                                                panel_a.as_ptr().add(kb * MR),
                                                packed_b.as_ptr().add(g * kc * NR),
                                                out.at((i0 + r0) * ldc + j),
                                                ldc,
                                                MR.min(rows - r0),
                                                NR.min(n - j),
                                                first,
                                            )
                                        };
                                    }
                                }
                            }
                        }
                    }
                    PACKED_B.set(buffer_b);
                };
                if runs == 1 {
                    compute_run(0)
                } else {
                    (0..runs).into_par_iter().for_each(compute_run)
                }
            }
        }
    }
    PACKED_A.set(buffer_a);
}

/// Rows `i0 .. i0 + live` and columns `k0 .. k0 + depth` of `a` into one panel: `depth`
/// groups of `MR` values (`k` outer), rows past `live` zero. Each group is written
/// whole, from `MR` rows read in step (row-major `a`) or one contiguous run
/// (transposed `a`, a gradient's `xᵀ`).
fn pack_a(panel: &mut [f32], a: Operand, i0: usize, live: usize, k0: usize, depth: usize) {
    for (kk, group) in panel.chunks_exact_mut(MR).take(depth).enumerate() {
        for (i, value) in group.iter_mut().enumerate() {
            // SAFETY: row `i0 + i < m` (`i < live`), column `k0 + kk < k`.
            *value = if i < live {
                unsafe { a.at(i0 + i, k0 + kk) }
            } else {
                0.0
            };
        }
    }
}

/// Rows `k0 .. k0 + depth` and columns `j0 .. j0 + cols` of `b` as consecutive panels
/// of `depth` rows of `NR` values, columns past `cols` zero.
fn pack_b(packed: &mut [f32], b: Operand, k0: usize, depth: usize, j0: usize, cols: usize) {
    for p in 0..cols.div_ceil(NR) {
        let live = NR.min(cols - p * NR);
        let panel = &mut packed[p * depth * NR..(p + 1) * depth * NR];
        for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
            if b.col_stride == 1 {
                // Row-major: one contiguous read per panel row.
                // SAFETY: row `k0 + kk`, columns `j0 + p·NR ..` + `live` are in `b`.
                let src = unsafe {
                    std::slice::from_raw_parts(
                        b.ptr
                            .offset((k0 + kk) as isize * b.row_stride + (j0 + p * NR) as isize),
                        live,
                    )
                };
                row[..live].copy_from_slice(src);
                row[live..].fill(0.0);
            } else {
                // Transposed (the tied LM head's `Eᵀ`, a weight's `Wᵀ`): the row is
                // gathered from `NR` columns read in step, each column's cache line
                // serving 16 rows.
                for (j, value) in row.iter_mut().enumerate() {
                    // SAFETY: row `k0 + kk < k`, column `j0 + p·NR + j < n`.
                    *value = if j < live {
                        unsafe { b.at(k0 + kk, j0 + p * NR + j) }
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// One `MR × NR` tile over `kc ≤ KC` of `k`: per element a chain of fused
/// multiply-adds from zero in `k` order, then stored (`first`) or added to the
/// element; only `rows × cols` of the tile are touched.
///
/// # Safety
/// AVX-512 F; `a` holds `kc · MR` and `b` `kc · NR` values; `c` addresses `rows` rows
/// of `cols` writable values `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    first: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 2 * MR];
    for kk in 0..kc {
        // SAFETY: `kk < kc`, inside both panels.
        unsafe {
            let (a, b) = (a.add(kk * MR), b.add(kk * NR));
            let (b0, b1) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)));
            // Unrolled with constant indices so that the accumulators stay in registers.
            macro_rules! row {
                ($($i:literal)*) => {$(
                    let ai = _mm512_set1_ps(*a.add($i));
                    acc[2 * $i] = _mm512_fmadd_ps(ai, b0, acc[2 * $i]);
                    acc[2 * $i + 1] = _mm512_fmadd_ps(ai, b1, acc[2 * $i + 1]);
                )*};
            }
            row!(0 1 2 3 4 5 6 7 8 9 10 11);
        }
    }
    let mask = |from: usize| -> __mmask16 {
        match cols.saturating_sub(from) {
            0 => 0,
            live if live >= 16 => 0xffff,
            live => (1u16 << live) - 1,
        }
    };
    let (low, high) = (mask(0), mask(16));
    macro_rules! store {
        ($($i:literal)*) => {$(
            if $i < rows {
                // SAFETY: row `$i < rows` of `c`; the masks keep to its `cols` values.
                unsafe {
                    let row = c.add($i * ldc);
                    let upper = row.wrapping_add(16);
                    let (v0, v1) = if first {
                        (acc[2 * $i], acc[2 * $i + 1])
                    } else {
                        (
                            _mm512_add_ps(_mm512_maskz_loadu_ps(low, row), acc[2 * $i]),
                            _mm512_add_ps(_mm512_maskz_loadu_ps(high, upper), acc[2 * $i + 1]),
                        )
                    };
                    _mm512_mask_storeu_ps(row, low, v0);
                    _mm512_mask_storeu_ps(upper, high, v1);
                }
            }
        )*};
    }
    store!(0 1 2 3 4 5 6 7 8 9 10 11);
}

/// Never called: off x86-64 `super::isa` never chooses AVX-512.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    _: usize,
    _: *const f32,
    _: *const f32,
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
) {
    unreachable!("xp's sgemm runs on AVX-512 only")
}

/// A packing buffer on 64-byte boundaries (a cache line, a zmm register): the tile's
/// vector loads never straddle two lines.
#[derive(Default)]
struct AlignedBuffer(Vec<Line>);

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl AlignedBuffer {
    /// The first `floats` values, growing the buffer if it is smaller.
    fn slice(&mut self, floats: usize) -> &mut [f32] {
        if self.0.len() * 16 < floats {
            self.0 = vec![Line([0.0; 16]); floats.div_ceil(16)];
        }
        // SAFETY: `Line` is 16 f32s without padding, so the lines are
        // `16 · len` contiguous f32s.
        let all = unsafe {
            std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<f32>(), self.0.len() * 16)
        };
        &mut all[..floats]
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, ShapeBuilder, linalg::general_mat_mul};

    use super::*;
    use crate::backend::cpu::isa::Isa;

    /// `rows × cols` values in [-1, 1) from a fixed hash, row-major or column-major.
    fn matrix(rows: usize, cols: usize, seed: u64, column_major: bool) -> Array2<f32> {
        let values = (0..rows * cols)
            .map(|i| {
                let mut x = (i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                x ^= x >> 29;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let shape = (rows, cols);
        if column_major {
            Array2::from_shape_vec(shape.f(), values).unwrap()
        } else {
            Array2::from_shape_vec(shape, values).unwrap()
        }
    }

    /// Asserts that xp's sgemm (in `pool`, `a` blocked by `budget`) gives
    /// matrixmultiply's bits for `a · b`.
    fn assert_matrixmultiplys_bits(
        pool: &rayon::ThreadPool,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        budget: usize,
        case: &str,
    ) {
        let ((m, k), n) = (a.dim(), b.ncols());
        let mut expected = Array2::<f32>::zeros((m, n));
        general_mat_mul(1.0, &a, &b, 0.0, &mut expected);
        let mut out = vec![f32::NAN; m * n];
        let dims = Dims { m, k, n };
        pool.install(|| unsafe {
            sgemm_blocked(
                dims,
                Operand::of(&a),
                Operand::of(&b),
                out.as_mut_ptr(),
                n,
                budget,
            )
        });
        assert_eq!(
            bits(&out),
            bits(expected.as_slice().unwrap()),
            "{case}: {m}x{k}x{n}, a strides {:?}, b strides {:?}, budget {budget}",
            a.strides(),
            b.strides()
        );
    }

    /// True, saying so, where this CPU cannot run the kernel.
    fn skipped(test: &str) -> bool {
        if Isa::available().contains(&Isa::Avx512) {
            return false;
        }
        eprintln!("SKIPPED {test}: no AVX-512 on this CPU");
        true
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn own_sgemm_gives_matrixmultiplys_bits_on_every_cut() {
        if skipped("own_sgemm_gives_matrixmultiplys_bits_on_every_cut") {
            return;
        }
        // Partial tiles in both directions, exact tiles, `k` across one and several
        // blocks (and a partial last block), an empty `k`.
        let shapes = [
            (1, 1, 1),
            (12, 256, 32),
            (13, 257, 33),
            (25, 600, 70),
            (37, 513, 300),
            (100, 1030, 65),
            (5, 0, 7),
        ];
        // The default block of `a`, and one so small that every product above is cut
        // into several row blocks and `k` blocks.
        let budgets = [A_BLOCK_FLOATS, MR * KC];
        for threads in [1, 2] {
            let pool = pool(threads);
            for (m, k, n) in shapes {
                for (a_columns, b_columns) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let a = matrix(m, k, 1, a_columns);
                    let b = matrix(k, n, 2, b_columns);
                    for budget in budgets {
                        let case = format!("{threads} threads");
                        assert_matrixmultiplys_bits(&pool, a.view(), b.view(), budget, &case);
                    }
                }
            }
        }
    }

    #[test]
    fn own_sgemm_gives_matrixmultiplys_bits_on_random_shapes_and_strided_views() {
        if skipped("own_sgemm_gives_matrixmultiplys_bits_on_random_shapes_and_strided_views") {
            return;
        }
        use ndarray::s;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
        let pool = pool(2);
        for case in 0..60 {
            let (m, k, n) = (
                rng.random_range(1..90),
                rng.random_range(1..700),
                rng.random_range(1..120),
            );
            // Views that take every `step`-th row or column of a larger matrix, in
            // either memory order: strides other than 1 on both axes.
            let view = |rows: usize, cols: usize, seed: u64, rng: &mut rand_chacha::ChaCha8Rng| {
                let (row_step, col_step) = (rng.random_range(1..3), rng.random_range(1..3));
                let full = matrix(rows * row_step, cols * col_step, seed, rng.random());
                (full, row_step, col_step)
            };
            let (a_full, a_rows, a_cols) = view(m, k, case, &mut rng);
            let (b_full, b_rows, b_cols) = view(k, n, case + 100, &mut rng);
            let a = a_full.slice(s![..;a_rows, ..;a_cols]);
            let b = b_full.slice(s![..;b_rows, ..;b_cols]);
            let budget = [A_BLOCK_FLOATS, MR * KC, 3 * MR * KC][case as usize % 3];
            assert_matrixmultiplys_bits(&pool, a, b, budget, &format!("case {case}"));
        }
    }

    #[test]
    fn products_started_from_inside_the_pool_run_nested_and_give_the_same_bits() {
        if skipped("products_started_from_inside_the_pool_run_nested_and_give_the_same_bits") {
            return;
        }
        // Eight products started from the pool's own tasks: a worker waiting for its
        // product's panels may run another task's product on the same thread.
        let (a, b) = (matrix(70, 900, 5, false), matrix(900, 150, 6, true));
        let mut expected = Array2::<f32>::zeros((70, 150));
        general_mat_mul(1.0, &a, &b, 0.0, &mut expected);
        let pool = pool(2);
        let outs: Vec<Vec<f32>> = pool.install(|| {
            (0..8)
                .into_par_iter()
                .map(|_| {
                    let mut out = vec![f32::NAN; 70 * 150];
                    let dims = Dims {
                        m: 70,
                        k: 900,
                        n: 150,
                    };
                    let (a, b) = (Operand::of(&a.view()), Operand::of(&b.view()));
                    unsafe { sgemm_blocked(dims, a, b, out.as_mut_ptr(), 150, MR * KC) };
                    out
                })
                .collect()
        });
        for out in outs {
            assert_eq!(bits(&out), bits(expected.as_slice().unwrap()));
        }
    }

    #[test]
    fn the_output_row_stride_leaves_the_gap_alone() {
        if skipped("the_output_row_stride_leaves_the_gap_alone") {
            return;
        }
        let (m, k, n, ldc) = (14, 300, 35, 40);
        let (a, b) = (matrix(m, k, 3, false), matrix(k, n, 4, false));
        let mut out = vec![7.0f32; m * ldc];
        unsafe {
            sgemm(
                Dims { m, k, n },
                Operand::of(&a.view()),
                Operand::of(&b.view()),
                out.as_mut_ptr(),
                ldc,
            )
        };
        let mut expected = Array2::<f32>::zeros((m, n));
        general_mat_mul(1.0, &a, &b, 0.0, &mut expected);
        for i in 0..m {
            assert_eq!(
                bits(&out[i * ldc..i * ldc + n]),
                bits(expected.row(i).as_slice().unwrap())
            );
            assert!(
                out[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 7.0),
                "row {i}"
            );
        }
    }

    #[test]
    fn blocking_keeps_the_vocabulary_sized_operand_in_one_pass() {
        // The LM head (h · Eᵀ): all of `k` in one block, so the [512, 50272] output is
        // written once.
        let head = blocking(512, 768, 50272, A_BLOCK_FLOATS);
        assert_eq!(head, Blocking { mc: 516, ks: 768 });
        // Its gradient in E's layout (dlogitsᵀ · h): all of `k`, row blocks of `a`
        // within the budget.
        let table_grad = blocking(50272, 512, 768, A_BLOCK_FLOATS);
        assert_eq!(table_grad.ks, 512);
        assert!(table_grad.mc * table_grad.ks <= A_BLOCK_FLOATS);
        // Every blocking stays within the budget (or one tile row × one `k` block).
        for (m, k, n) in [(512, 50272, 768), (3, 5000, 9), (700, 700, 700)] {
            let Blocking { mc, ks } = blocking(m, k, n, A_BLOCK_FLOATS);
            assert!(mc % MR == 0 && ks <= k && (mc * ks <= A_BLOCK_FLOATS || mc == MR));
        }
    }
}
