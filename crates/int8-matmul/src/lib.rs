//! `y = x · W` with fp32 activations `x` and int8 weights `W`: the matmul that holds over 99% of
//! the multiply-adds of Switchyard's MiniLM encoder.
//!
//! Why a crate of its own: the Worker is built for size (opt-level "s"), and at "s" LLVM neither
//! unrolls nor schedules this loop well: the same source ran 3.2× slower in V8 than at opt-level
//! 3 (a micro-benchmark of the matmuls of one 20-token embedding, 2026-11-28; BENCHMARKS.md).
//! Cargo sets optimisation per crate, so the kernel lives here and the Worker profile builds
//! just this crate at opt-level 3.
//!
//! The algorithm: each row of `x` is quantized to 14-bit integers with its own scale (8 bits fail
//! the encoder's parity; 14 keep the i32 sums of a 2048-long row from overflowing), the weights are
//! stored once, at load, in [`PackedWeights`]' layout, and the products are summed as int16 pairs,
//! which is what wasm's `i32x4.dot_i16x8_s` does: 8 multiply-adds per instruction, where fp32 needs
//! a multiply and an add for 4 (wasm has no fused multiply-add). The weights stay int8 in memory
//! and are widened as they are loaded (`v128.load8x8_s`). A tile of 4 rows × 8 columns keeps its
//! 8 accumulators, 2 weight vectors and the row broadcasts within the 16 SIMD registers of x86-64,
//! so V8 does not spill them. Natively the same arithmetic runs on AVX2 or SSE2 (x86-64, chosen
//! at run time) or as portable code: results are bit-identical everywhere.

use std::fmt;

/// Output columns per panel.
pub const PANEL: usize = 8;
/// Rows of `x` that share one pass over a panel.
const ROWS: usize = 4;
/// Largest quantized activation: 14 bits, so that `k / 2` pair sums of `8191 · 128 · 2` stay
/// within an i32 for `k` up to [`MAX_K`].
const I16_MAX: f32 = 8191.0;
/// Longest inner dimension the i32 sums are safe for.
pub const MAX_K: usize = 2048;

/// A shape that does not fit the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

/// A `[k, n]` int8 weight matrix in panels of [`PANEL`] output columns. Panel `p` holds, for each
/// pair of rows `(2j, 2j+1)`, the 16 bytes `w[2j][c], w[2j+1][c]` for its 8 columns `c`: one
/// 8-byte load widened to int16 is then 4 columns' pairs, in the order the dot product takes them.
/// An odd `k` gets a zero row, a partial last panel zero columns. Same size as the plain matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedWeights {
    data: Vec<i8>,
    k: usize,
    n: usize,
}

impl PackedWeights {
    /// From a row-major `[k, n]` matrix.
    pub fn from_k_by_n(w: &[i8], k: usize, n: usize) -> Result<PackedWeights, ShapeError> {
        if w.len() != k * n || k == 0 || n == 0 {
            return Err(ShapeError(format!("{} weights are not a [{k}, {n}] matrix", w.len())));
        }
        if k > MAX_K {
            return Err(ShapeError(format!("k = {k} exceeds the kernel's {MAX_K}")));
        }
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(PANEL);
        let panel_len = pairs * 2 * PANEL;
        let mut data = vec![0i8; panels * panel_len];
        // Row pair by row pair, so the source is read in order (this runs on 22 MB at every cold
        // start of the Worker).
        let zeros = vec![0i8; n];
        for (j, rows) in w.chunks(2 * n).enumerate() {
            let (first, second) = rows.split_at(n);
            let second = if second.is_empty() { &zeros[..] } else { second };
            for (p, (a, b)) in first.chunks(PANEL).zip(second.chunks(PANEL)).enumerate() {
                let dst = &mut data[p * panel_len + j * 2 * PANEL..][..2 * PANEL];
                for ((pair, &a), &b) in dst.chunks_exact_mut(2).zip(a).zip(b) {
                    pair[0] = a;
                    pair[1] = b;
                }
            }
        }
        Ok(PackedWeights { data, k, n })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    fn panel(&self, p: usize) -> &[i8] {
        let len = self.k.div_ceil(2) * 2 * PANEL;
        &self.data[p * len..(p + 1) * len]
    }
}

/// `out[r, c] = Σ_i x[r, i] · w[i, c]` for `rows` rows of `x` (row-major, `w.k()` wide) into
/// `out` (row-major, `w.n()` wide).
pub fn matmul(x: &[f32], rows: usize, w: &PackedWeights, out: &mut [f32]) -> Result<(), ShapeError> {
    let (k, n) = (w.k, w.n);
    if x.len() != rows * k || out.len() != rows * n {
        return Err(ShapeError(format!(
            "x has {} values and out {}, expected {rows} × {k} and {rows} × {n}",
            x.len(),
            out.len()
        )));
    }
    let (quantized, scales) = quantize_rows(x, rows, k);
    let padded = k.div_ceil(2) * 2;
    for p in 0..n.div_ceil(PANEL) {
        let panel = w.panel(p);
        let first = p * PANEL;
        let cols = PANEL.min(n - first);
        let mut r = 0;
        while r < rows {
            // A short last group gets a tile of its own size: a one-row tile would load each
            // weight for a quarter of the work.
            let take = ROWS.min(rows - r);
            let x_rows = &quantized[r * padded..(r + take) * padded];
            let sums = match take {
                4 => tile::<4>(x_rows, padded, panel),
                3 => widen(tile::<3>(x_rows, padded, panel)),
                2 => widen(tile::<2>(x_rows, padded, panel)),
                _ => widen(tile::<1>(x_rows, padded, panel)),
            };
            for (i, row) in sums.iter().take(take).enumerate() {
                let scale = scales[r + i];
                let dst = &mut out[(r + i) * n + first..(r + i) * n + first + cols];
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = v as f32 * scale;
                }
            }
            r += take;
        }
    }
    Ok(())
}

/// A tile of fewer rows as a full one (the missing rows zero).
fn widen<const R: usize>(some: [[i32; PANEL]; R]) -> [[i32; PANEL]; ROWS] {
    let mut all = [[0; PANEL]; ROWS];
    all[..R].copy_from_slice(&some);
    all
}

/// Each row of `x` as 14-bit integers (`k` padded to even with a zero) and its scale.
fn quantize_rows(x: &[f32], rows: usize, k: usize) -> (Vec<i16>, Vec<f32>) {
    let padded = k.div_ceil(2) * 2;
    let mut quantized = vec![0i16; rows * padded];
    let mut scales = vec![1f32; rows];
    for ((row, q), scale) in x.chunks_exact(k).zip(quantized.chunks_exact_mut(padded)).zip(&mut scales) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if !(max > 0.0 && max.is_finite()) {
            // All zeros (or not finite: the sums would be meaningless anyway) stay zero.
            continue;
        }
        *scale = max / I16_MAX;
        let inverse = I16_MAX / max;
        for (q, &v) in q.iter_mut().zip(row) {
            // round_ties_even is one wasm instruction (f32.nearest); round() is a libm call.
            *q = (v * inverse).round_ties_even().clamp(-I16_MAX, I16_MAX) as i16;
        }
    }
    (quantized, scales)
}

/// `R` quantized rows (each `padded` long) times one panel: `R × PANEL` i32 sums.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn tile<const R: usize>(x: &[i16], padded: usize, panel: &[i8]) -> [[i32; PANEL]; R] {
    use core::arch::wasm32::*;
    let pairs = padded / 2;
    assert!(x.len() >= R * padded && panel.len() >= pairs * 2 * PANEL);
    let mut low = [i32x4_splat(0); R];
    let mut high = [i32x4_splat(0); R];
    let (xp, wp) = (x.as_ptr(), panel.as_ptr());
    for j in 0..pairs {
        // SAFETY: the assert above bounds every offset: pair j of row i is x[i·padded + 2j ..+2]
        // and panel bytes 16j ..+16. wasm loads need no alignment.
        unsafe {
            let w_low = i16x8_load_extend_i8x8(wp.add(16 * j));
            let w_high = i16x8_load_extend_i8x8(wp.add(16 * j + 8));
            for i in 0..R {
                let pair = v128_load32_splat(xp.add(i * padded + 2 * j).cast());
                low[i] = i32x4_add(low[i], i32x4_dot_i16x8(pair, w_low));
                high[i] = i32x4_add(high[i], i32x4_dot_i16x8(pair, w_high));
            }
        }
    }
    let mut sums = [[0i32; PANEL]; R];
    for (i, row) in sums.iter_mut().enumerate() {
        // SAFETY: `row` is 8 i32s; each store writes 4.
        unsafe {
            v128_store(row.as_mut_ptr().cast(), low[i]);
            v128_store(row.as_mut_ptr().add(4).cast(), high[i]);
        }
    }
    sums
}

/// The same sums natively on x86-64: with AVX2 where the CPU has it (checked once, then cached
/// by std), else SSE2, which every x86-64 has. Both add the same integers in the same order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile<const R: usize>(x: &[i16], padded: usize, panel: &[i8]) -> [[i32; PANEL]; R] {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { tile_avx2::<R>(x, padded, panel) }
    } else {
        tile_sse2::<R>(x, padded, panel)
    }
}

/// AVX2: a pair's 16 weights (8 columns) widened by one instruction, and one `_mm256_madd_epi16`
/// per row gives the row's 8 column sums, where SSE2 needs two of each and two shifts.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2<const R: usize>(x: &[i16], padded: usize, panel: &[i8]) -> [[i32; PANEL]; R] {
    use core::arch::x86_64::*;
    let pairs = padded / 2;
    assert!(x.len() >= R * padded && panel.len() >= pairs * 2 * PANEL);
    let (xp, wp) = (x.as_ptr(), panel.as_ptr());
    let mut sums = [[0i32; PANEL]; R];
    // SAFETY: the caller checked AVX2; the assert above bounds every offset (pair j of row i is
    // x[i·padded + 2j ..+2], panel bytes 16j ..+16); the loads and stores are unaligned ones.
    unsafe {
        let mut acc = [_mm256_setzero_si256(); R];
        for j in 0..pairs {
            let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(16 * j).cast()));
            for (i, acc) in acc.iter_mut().enumerate() {
                let pair = _mm256_set1_epi32(xp.add(i * padded + 2 * j).cast::<i32>().read_unaligned());
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pair, w));
            }
        }
        for (i, row) in sums.iter_mut().enumerate() {
            _mm256_storeu_si256(row.as_mut_ptr().cast(), acc[i]);
        }
    }
    sums
}

/// SSE2: `_mm_madd_epi16` is the instruction that wasm's `i32x4.dot_i16x8_s` becomes on x86.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile_sse2<const R: usize>(x: &[i16], padded: usize, panel: &[i8]) -> [[i32; PANEL]; R] {
    use core::arch::x86_64::*;
    let pairs = padded / 2;
    assert!(x.len() >= R * padded && panel.len() >= pairs * 2 * PANEL);
    let (xp, wp) = (x.as_ptr(), panel.as_ptr());
    let mut sums = [[0i32; PANEL]; R];
    // SAFETY: SSE2 is part of x86-64; the assert above bounds every offset (pair j of row i is
    // x[i·padded + 2j ..+2], panel bytes 16j ..+16); the loads and stores are unaligned ones.
    unsafe {
        let mut low = [_mm_setzero_si128(); R];
        let mut high = [_mm_setzero_si128(); R];
        for j in 0..pairs {
            let w = _mm_loadu_si128(wp.add(16 * j).cast());
            // Sign-extend the 16 bytes to int16: each byte into the high half, then shift down.
            let w_low = _mm_srai_epi16::<8>(_mm_unpacklo_epi8(w, w));
            let w_high = _mm_srai_epi16::<8>(_mm_unpackhi_epi8(w, w));
            for i in 0..R {
                let pair = _mm_set1_epi32(xp.add(i * padded + 2 * j).cast::<i32>().read_unaligned());
                low[i] = _mm_add_epi32(low[i], _mm_madd_epi16(pair, w_low));
                high[i] = _mm_add_epi32(high[i], _mm_madd_epi16(pair, w_high));
            }
        }
        for (i, row) in sums.iter_mut().enumerate() {
            _mm_storeu_si128(row.as_mut_ptr().cast(), low[i]);
            _mm_storeu_si128(row.as_mut_ptr().add(4).cast(), high[i]);
        }
    }
    sums
}

/// The same sums in portable code, for other targets (and as the reference in tests).
#[cfg_attr(any(target_arch = "wasm32", target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn tile_portable<const R: usize>(x: &[i16], padded: usize, panel: &[i8]) -> [[i32; PANEL]; R] {
    let mut sums = [[0i32; PANEL]; R];
    for (j, w) in panel.chunks_exact(2 * PANEL).enumerate().take(padded / 2) {
        for (i, acc) in sums.iter_mut().enumerate() {
            let (a, b) = (i32::from(x[i * padded + 2 * j]), i32::from(x[i * padded + 2 * j + 1]));
            for c in 0..PANEL {
                acc[c] += a * i32::from(w[2 * c]) + b * i32::from(w[2 * c + 1]);
            }
        }
    }
    sums
}

#[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
#[inline(always)]
fn tile<const R: usize>(x: &[i16], padded: usize, panel: &[i8]) -> [[i32; PANEL]; R] {
    tile_portable::<R>(x, padded, panel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], rows: usize, w: &[i8], k: usize, n: usize) -> Vec<f32> {
        (0..rows * n).map(|i| (0..k).map(|j| x[i / n * k + j] * f32::from(w[j * n + i % n])).sum()).collect()
    }

    #[test]
    fn matches_an_fp32_matmul_within_activation_quantization() {
        // Odd k, partial row groups of 3, 2 and 1, and a partial panel.
        for (rows, k, n) in [(7, 19, 21), (4, 16, 8), (1, 3, 1), (6, 10, 16), (9, 384, 40)] {
            let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let w: Vec<i8> = (0..k * n).map(|i| ((i * 11 % 256) as i32 - 128) as i8).collect();
            let packed = PackedWeights::from_k_by_n(&w, k, n).unwrap();
            let mut out = vec![0f32; rows * n];
            matmul(&x, rows, &packed, &mut out).unwrap();
            for (i, (got, want)) in out.iter().zip(reference(&x, rows, &w, k, n)).enumerate() {
                // Each activation is off by at most half a step of its row's scale.
                let row = &x[i / n * k..(i / n + 1) * k];
                let step = row.iter().fold(0f32, |m, v| m.max(v.abs())) / I16_MAX;
                let bound: f32 = (0..k).map(|j| f32::from(w[j * n + i % n]).abs() * step / 2.0).sum();
                assert!((got - want).abs() <= bound + 1e-4 * want.abs(), "{got} vs {want} (bound {bound})");
            }
        }
    }

    #[test]
    fn the_simd_tile_sums_exactly_what_the_portable_one_does() {
        let (k, n) = (38, 8);
        let x: Vec<i16> = (0..4 * k).map(|i| ((i * 1237 % 16383) as i32 - 8191) as i16).collect();
        let w: Vec<i8> = (0..k * n).map(|i| ((i * 11 % 256) as i32 - 128) as i8).collect();
        let packed = PackedWeights::from_k_by_n(&w, k, n).unwrap();
        assert_eq!(tile::<4>(&x, k, packed.panel(0)), tile_portable::<4>(&x, k, packed.panel(0)));
        assert_eq!(tile::<1>(&x, k, packed.panel(0)), tile_portable::<1>(&x, k, packed.panel(0)));
        // Natively both x86 paths, whichever this CPU would pick.
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(tile_sse2::<3>(&x, k, packed.panel(0)), tile_portable::<3>(&x, k, packed.panel(0)));
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: checked just above.
                let avx2 = unsafe { tile_avx2::<3>(&x, k, packed.panel(0)) };
                assert_eq!(avx2, tile_portable::<3>(&x, k, packed.panel(0)));
            }
        }
    }

    #[test]
    fn the_widest_row_at_full_scale_does_not_overflow() {
        let (k, n) = (MAX_K, 8);
        let x = vec![-3.5f32; k];
        let w = vec![-128i8; k * n];
        let packed = PackedWeights::from_k_by_n(&w, k, n).unwrap();
        let mut out = vec![0f32; n];
        matmul(&x, 1, &packed, &mut out).unwrap();
        let expected = 3.5 * 128.0 * k as f32;
        assert!(out.iter().all(|&v| ((v - expected) / expected).abs() < 1e-4), "{out:?}");
    }

    #[test]
    fn zero_and_non_finite_rows_give_zero_not_nan() {
        let w = vec![1i8; 4 * 8];
        let packed = PackedWeights::from_k_by_n(&w, 4, 8).unwrap();
        let x = [0.0, 0.0, 0.0, 0.0, f32::INFINITY, 1.0, 0.0, 0.0];
        let mut out = vec![7f32; 16];
        matmul(&x, 2, &packed, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0), "{out:?}");
    }

    #[test]
    fn refuses_shapes_that_do_not_fit() {
        assert!(PackedWeights::from_k_by_n(&[0; 6], 2, 2).is_err());
        assert!(PackedWeights::from_k_by_n(&vec![0; (MAX_K + 1) * 8], MAX_K + 1, 8).is_err());
        let packed = PackedWeights::from_k_by_n(&[1; 6], 2, 3).unwrap();
        assert!(matmul(&[1.0; 3], 1, &packed, &mut [0.0; 3]).is_err());
        assert!(matmul(&[1.0; 4], 2, &packed, &mut [0.0; 3]).is_err());
    }
}
