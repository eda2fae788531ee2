//! Weight matrices laid out for decoding steps on the CPU, and the kernel that streams
//! them.
//!
//! A decoding step multiplies a handful of rows (prompts × beams, one position each)
//! by every weight matrix of the model. A general matrix product packs the whole
//! weight into panels on every call, which for 20 rows costs more than the arithmetic;
//! reading the row-major weight directly strides across it (one cache line per row per
//! 16 columns, a new page per row for the LM head), which the hardware prefetcher does
//! not follow. So each weight is packed once, when a model is prepared for decoding
//! (`crate::model::DecodeWeights`), into [`Panels`]:
//! `PANEL` columns at a time, every `k` row of a panel contiguous. The kernel then
//! keeps a tile of rows × `PANEL` sums in registers while the panel streams past: on
//! AVX-512 up to 24 rows, so a beam search's rows read each weight once per step.
//!
//! Numerics: every output element is `Σ_k x[r, k] · w[k, j]` summed in `k` order, a
//! multiply then an add per term (never fused), on every instruction set, for any row
//! count, tile or thread count: a sequence's tokens do not depend on how many others
//! share its batch (tested bitwise against the plain loop, row alone vs in a batch).

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::isa::{Isa, isa};

/// Columns of one panel: two AVX2 vectors, one AVX-512 vector.
const PANEL: usize = 16;
/// Panels per parallel task.
const PANELS_PER_TASK: usize = 4;
/// How far ahead of the kernel (in `k` rows of a panel, one 64-byte line each) the
/// weight stream is prefetched: the 20-row tile spends about 20 cycles per line, too
/// few for the hardware prefetcher to keep enough lines coming from memory, and far
/// enough ahead that two threads together stream at the memory's bandwidth
/// (BENCHMARKS.md, "Synthesis").
const PREFETCH_ROWS: usize = 32;

/// Rows of an AVX-512 register tile: one accumulator per row of its 32 registers, so
/// a beam search's 20 rows (4 prompts × 5 beams) share one pass over each panel.
const WIDE_TILE_ROWS: usize = 24;
/// Rows of an AVX2 (or portable) tile: two accumulators per row of its 16 registers.
const NARROW_TILE_ROWS: usize = 6;

/// The most rows one register tile holds on the path of `isa`.
fn tile_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => WIDE_TILE_ROWS,
        _ => NARROW_TILE_ROWS,
    }
}

/// A `[k, n]` weight matrix as `ceil(n / PANEL)` panels of `[k, PANEL]`, row-major
/// within a panel; columns past `n` in the last panel are zero.
pub struct Panels {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl std::fmt::Debug for Panels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Panels({} x {})", self.k, self.n)
    }
}

impl Panels {
    /// Packs `w` `[k, n]` (any strides: the transposed embedding table works).
    pub(crate) fn pack(w: &ArrayView2<'_, f32>) -> Self {
        let (k, n) = w.dim();
        let mut data = vec![0f32; k * n.div_ceil(PANEL) * PANEL];
        data.par_chunks_mut(k * PANEL)
            .enumerate()
            .for_each(|(panel, dst)| {
                let j0 = panel * PANEL;
                let width = PANEL.min(n - j0);
                // Column by column: a transposed view reads each column contiguously.
                for c in 0..width {
                    let column = w.column(j0 + c);
                    for (kk, &v) in column.iter().enumerate() {
                        dst[kk * PANEL + c] = v;
                    }
                }
            });
        Panels { data, k, n }
    }

    /// `x` `[m, k]` · the packed weight -> `[m, n]`.
    pub(crate) fn product(&self, x: &ArrayView2<'_, f32>) -> Array2<f32> {
        self.product_on(isa(), x)
    }

    /// [`Panels::product`] on the kernel path of `isa`.
    fn product_on(&self, isa: Isa, x: &ArrayView2<'_, f32>) -> Array2<f32> {
        let (m, k) = x.dim();
        assert_eq!(k, self.k, "inner dimensions of the streamed product");
        // `[k, m]`: a tile's row values for one `k` are adjacent, read in order.
        let columns = x.t().as_standard_layout().into_owned();
        let columns = columns.as_slice().expect("standard layout");
        let n = self.n;
        let mut out = Array2::<f32>::zeros((m, n));
        let out_rows = SharedRows(out.as_mut_ptr());
        let panels = n.div_ceil(PANEL);
        // Tiles of equal height: 20 rows go as one tile of 20, never 18 + 2.
        let tiles = m.div_ceil(tile_rows(isa)).max(1);
        let height = m.div_ceil(tiles).max(1);
        (0..panels.div_ceil(PANELS_PER_TASK))
            .into_par_iter()
            .for_each(|task| {
                let mut tile = [[0f32; PANEL]; WIDE_TILE_ROWS];
                for panel in task * PANELS_PER_TASK..((task + 1) * PANELS_PER_TASK).min(panels) {
                    let j0 = panel * PANEL;
                    let width = PANEL.min(n - j0);
                    let weights = &self.data[panel * k * PANEL..(panel + 1) * k * PANEL];
                    for r0 in (0..m).step_by(height) {
                        let rows = height.min(m - r0);
                        let tile = &mut tile[..rows];
                        tile_product(isa, &columns[r0..], m, k, weights, tile);
                        for (r, sums) in tile.iter().enumerate() {
                            // SAFETY: tasks own disjoint column ranges of `out`
                            // (`j0..j0 + width` of each row), which outlives the scope.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    sums.as_ptr(),
                                    out_rows.at((r0 + r) * n + j0),
                                    width,
                                );
                            }
                        }
                    }
                }
            });
        out
    }
}

/// The output buffer, written by parallel tasks at disjoint columns.
struct SharedRows(*mut f32);
// SAFETY: see the write in `Panels::product`: no two tasks touch the same element.
unsafe impl Sync for SharedRows {}

impl SharedRows {
    /// Element `offset` of the buffer.
    ///
    /// # Safety
    /// `offset` is within the buffer.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY: the caller keeps `offset` in bounds.
        unsafe { self.0.add(offset) }
    }
}

/// `tile[r] = x[r] · panel` for up to [`tile_rows`] rows on the path of `isa`: row
/// `r`'s value at `kk` is `columns[kk * stride + r]` (the product's `x` transposed,
/// from the tile's first row on).
fn tile_product(
    isa: Isa,
    columns: &[f32],
    stride: usize,
    k: usize,
    panel: &[f32],
    tile: &mut [[f32; PANEL]],
) {
    let rows = tile.len();
    assert!(
        rows <= tile_rows(isa) && rows <= stride,
        "{rows} rows in one tile"
    );
    assert!(k == 0 || columns.len() >= (k - 1) * stride + rows);
    assert!(panel.len() >= k * PANEL);
    macro_rules! rows {
        ($kernel:ident, $($r:literal)*) => {
            match rows {
                $($r => $kernel::tile::<$r>(columns, stride, k, panel, tile),)*
                _ => unreachable!("{rows} rows"),
            }
        };
    }
    match isa {
        // SAFETY (both arms): `isa` is one this CPU runs (`Isa::available`, checked
        // when it was chosen); the asserts above bound the kernels' reads and writes.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe {
            rows!(avx512, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24)
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { rows!(avx2, 1 2 3 4 5 6) },
        _ => tile_portable(columns, stride, k, panel, tile),
    }
}

/// The same sums in plain Rust (the reference of the numerics contract).
fn tile_portable(
    columns: &[f32],
    stride: usize,
    k: usize,
    panel: &[f32],
    tile: &mut [[f32; PANEL]],
) {
    for (r, sums) in tile.iter_mut().enumerate() {
        *sums = [0f32; PANEL];
        for (kk, w) in panel.chunks_exact(PANEL).take(k).enumerate() {
            let a = columns[kk * stride + r];
            for (s, w) in sums.iter_mut().zip(w) {
                *s += a * *w;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PANEL, PREFETCH_ROWS};
    use std::arch::x86_64::*;

    /// `R` rows × 16 columns of sums in registers; per `k`: two weight vectors, one
    /// broadcast per row, a multiply then an add (`_mm256_mul_ps` + `_mm256_add_ps`,
    /// never an FMA) per accumulator.
    ///
    /// # Safety
    /// AVX2 runs here; `tile_product`'s asserts hold for `R` rows.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile<const R: usize>(
        columns: &[f32],
        stride: usize,
        k: usize,
        panel: &[f32],
        tile: &mut [[f32; PANEL]],
    ) {
        // SAFETY: the caller's bounds cover every pointer below.
        unsafe {
            let mut lo = [_mm256_setzero_ps(); R];
            let mut hi = [_mm256_setzero_ps(); R];
            let (xp, wp) = (columns.as_ptr(), panel.as_ptr());
            for kk in 0..k {
                // A hint only: past the panel it reads the task's next one, and past
                // the buffer nothing (a prefetch never faults).
                let ahead = wp.wrapping_add((kk + PREFETCH_ROWS) * PANEL);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                let w_lo = _mm256_loadu_ps(wp.add(kk * PANEL));
                let w_hi = _mm256_loadu_ps(wp.add(kk * PANEL + 8));
                let x = xp.add(kk * stride);
                for r in 0..R {
                    let a = _mm256_broadcast_ss(&*x.add(r));
                    lo[r] = _mm256_add_ps(lo[r], _mm256_mul_ps(a, w_lo));
                    hi[r] = _mm256_add_ps(hi[r], _mm256_mul_ps(a, w_hi));
                }
            }
            for r in 0..R {
                _mm256_storeu_ps(tile[r].as_mut_ptr(), lo[r]);
                _mm256_storeu_ps(tile[r].as_mut_ptr().add(8), hi[r]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PANEL, PREFETCH_ROWS};
    use std::arch::x86_64::*;

    /// `R` rows × 16 columns of sums, one AVX-512 register per row; per `k`: one
    /// weight vector, one broadcast per row, a multiply then an add
    /// (`_mm512_mul_ps` + `_mm512_add_ps`, never an FMA) per accumulator: lane for lane
    /// the AVX2 and portable sums.
    ///
    /// # Safety
    /// AVX-512 F runs here; `tile_product`'s asserts hold for `R` rows.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile<const R: usize>(
        columns: &[f32],
        stride: usize,
        k: usize,
        panel: &[f32],
        tile: &mut [[f32; PANEL]],
    ) {
        // SAFETY: the caller's bounds cover every pointer below.
        unsafe {
            let mut sums = [_mm512_setzero_ps(); R];
            let (xp, wp) = (columns.as_ptr(), panel.as_ptr());
            for kk in 0..k {
                // A hint only, as on AVX2.
                let ahead = wp.wrapping_add((kk + PREFETCH_ROWS) * PANEL);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                let w = _mm512_loadu_ps(wp.add(kk * PANEL));
                let x = xp.add(kk * stride);
                for (r, sum) in sums.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*x.add(r));
                    *sum = _mm512_add_ps(*sum, _mm512_mul_ps(a, w));
                }
            }
            for (row, sum) in tile.iter_mut().zip(sums) {
                _mm512_storeu_ps(row.as_mut_ptr(), sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array2::from_shape_fn((rows, cols), |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
    }

    /// The numerics contract: the sequential f32 sum, mul then add.
    fn sequential(x: &Array2<f32>, w: &ArrayView2<'_, f32>) -> Vec<u32> {
        let (m, k) = x.dim();
        let n = w.ncols();
        let mut out = vec![0f32; m * n];
        for r in 0..m {
            for kk in 0..k {
                for j in 0..n {
                    out[r * n + j] += x[[r, kk]] * w[[kk, j]];
                }
            }
        }
        out.iter().map(|v| v.to_bits()).collect()
    }

    fn bits(a: &Array2<f32>) -> Vec<u32> {
        a.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn the_product_is_the_sequential_sum_for_any_row_count_and_width() {
        // Row counts around both tile heights (6, 24) and their splits, widths around
        // the panel (16) and the task.
        for (m, k, n) in [
            (1, 64, 300),
            (20, 96, 513),
            (3, 7, 16),
            (13, 33, 17),
            (7, 5, 200),
            (25, 9, 40),
            (49, 12, 33),
        ] {
            let x = random(m, k, 1);
            let w = random(k, n, 2);
            let panels = Panels::pack(&w.view());
            let got = panels.product(&x.view());
            assert_eq!(bits(&got), sequential(&x, &w.view()), "{m}x{k}x{n}");
            // Each row alone gives the bits it gets in the batch.
            for r in [0, m - 1] {
                let alone = panels.product(&x.slice(ndarray::s![r..r + 1, ..]));
                assert_eq!(bits(&alone)[..], bits(&got)[r * n..(r + 1) * n]);
            }
        }
    }

    #[test]
    fn every_vector_tile_this_cpu_runs_gives_the_portable_bits() {
        let k = 37;
        let w = random(k, PANEL, 4);
        let panels = Panels::pack(&w.view());
        let flat =
            |t: &Vec<[f32; PANEL]>| t.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        for rows in 1..=WIDE_TILE_ROWS {
            // A tile from row 1 of a wider batch, so the stride is not its height.
            let x = random(rows + 2, k, 3);
            let columns = x.t().as_standard_layout().into_owned();
            let columns = &columns.as_slice().unwrap()[1..];
            let expected = &sequential(&x, &w.view())[PANEL..(rows + 1) * PANEL];
            let mut portable = vec![[0f32; PANEL]; rows];
            tile_portable(columns, rows + 2, k, &panels.data, &mut portable);
            assert_eq!(flat(&portable), expected);
            for isa in Isa::available()
                .into_iter()
                .filter(|&isa| rows <= tile_rows(isa))
            {
                let mut vector = vec![[0f32; PANEL]; rows];
                tile_product(isa, columns, rows + 2, k, &panels.data, &mut vector);
                assert_eq!(flat(&vector), expected, "{isa:?}, {rows} rows");
            }
        }
    }

    #[test]
    fn the_product_on_every_path_this_cpu_runs_gives_the_portable_bits() {
        for m in [20, 31] {
            let (x, w) = (random(m, 96, 7), random(96, 513, 8));
            let panels = Panels::pack(&w.view());
            let portable = bits(&panels.product_on(Isa::Portable, &x.view()));
            assert_eq!(portable, sequential(&x, &w.view()));
            for isa in Isa::available() {
                assert_eq!(
                    bits(&panels.product_on(isa, &x.view())),
                    portable,
                    "{isa:?}, {m} rows"
                );
            }
        }
    }

    #[test]
    fn a_transposed_view_packs_like_its_row_major_copy() {
        let table = random(40, 24, 5); // [vocab, e]
        let head = table.t(); // [e, vocab], strided
        let copy = head.as_standard_layout().to_owned();
        let x = random(4, 24, 6);
        assert_eq!(
            bits(&Panels::pack(&head).product(&x.view())),
            bits(&Panels::pack(&copy.view()).product(&x.view()))
        );
    }
}
