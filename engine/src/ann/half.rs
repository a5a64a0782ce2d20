//! The vectors the HNSW search walks with: the decoder's unit rows rounded to float16.
//!
//! The search is bound by memory, not arithmetic: each step reads a whole row that is nowhere
//! near the previous one (3 KiB at d_in 768). Float16 halves those bytes. The walk only uses these
//! scores to steer; the cosines it reports are recomputed from the exact rows (`flat::search`).
//! On the medium benchmark (24,576 × 768) this took the flat search from 1.8× to 3.5× faster than
//! hnsw_rs, with the same recall (docs/BENCHMARKS.md).
//!
//! Like `vector::dot`, the float16 dot sums in 32 lanes with a fixed reduction order, and the
//! AVX2 + F16C copy does the same operations in the same order, so the walk (and so the answer)
//! does not depend on the machine's CPU.

use super::flat::{prefetch_lines, Rows, Vectors};
#[cfg(target_arch = "x86_64")]
use crate::vector::sum_lanes_avx;
use crate::vector::{sum_lanes, LANES};
use half::f16;
use rayon::prelude::*;
use std::sync::OnceLock;

/// `v` rounded to float16, as bit patterns: hnsw_rs's data type, so also its queries'.
pub(crate) fn half_bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|x| f16::from_f32(*x).to_bits()).collect()
}

/// Unit rows as float16 bit patterns: row `f` is `bits[f * dim..(f + 1) * dim]`.
pub(crate) struct HalfRows {
    bits: Vec<u16>,
    dim: usize,
}

impl HalfRows {
    pub(crate) fn new(rows: Rows) -> HalfRows {
        HalfRows {
            bits: rows
                .values
                .par_iter()
                .map(|v| f16::from_f32(*v).to_bits())
                .collect(),
            dim: rows.dim,
        }
    }

    /// Row `f`'s float16 bit patterns.
    #[inline]
    pub(crate) fn row(&self, f: u32) -> &[u16] {
        let start = f as usize * self.dim;
        &self.bits[start..start + self.dim]
    }
}

impl Vectors for HalfRows {
    #[inline]
    fn score(&self, q: &[f32], f: u32) -> f32 {
        dot_f16(q, self.row(f))
    }

    #[inline]
    fn prefetch(&self, f: u32) {
        prefetch_lines(self.row(f));
    }

    fn count(&self) -> usize {
        self.bits.len().checked_div(self.dim).unwrap_or(0)
    }
}

/// `q · r` for a float16 row `r` (bit patterns; float16 → float32 is exact).
#[inline]
fn dot_f16(q: &[f32], r: &[u16]) -> f32 {
    type DotF16 = fn(&[f32], &[u16]) -> f32;
    static PICKED: OnceLock<DotF16> = OnceLock::new();
    (PICKED.get_or_init(pick))(q, r)
}

fn pick() -> fn(&[f32], &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU supports AVX2 and F16C, checked just above.
        return |q, r| unsafe { dot_f16_avx2(q, r) };
    }
    dot_f16_lanes
}

fn dot_f16_lanes(q: &[f32], r: &[u16]) -> f32 {
    let n = q.len().min(r.len());
    let (q, r) = (&q[..n], &r[..n]);
    let mut acc = [0f32; LANES];
    let (mut xs, mut hs) = (q.chunks_exact(LANES), r.chunks_exact(LANES));
    for (x, h) in (&mut xs).zip(&mut hs) {
        for i in 0..LANES {
            acc[i] += x[i] * f16::from_bits(h[i]).to_f32();
        }
    }
    let tail = tail_dot(xs.remainder(), hs.remainder());
    sum_lanes(acc) + tail
}

fn tail_dot(q: &[f32], r: &[u16]) -> f32 {
    let mut tail = 0f32;
    for (x, h) in q.iter().zip(r) {
        tail += x * f16::from_bits(*h).to_f32();
    }
    tail
}

/// [`dot_f16_lanes`] with the 32 lanes in four AVX registers: lane `i` of register `r` is lane
/// `8r + i` there, and the reduction halves the lanes in the same pairs (as `vector::dot_avx2`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn dot_f16_avx2(q: &[f32], r: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = q.len().min(r.len());
    let (q, r) = (&q[..n], &r[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let (mut xs, mut hs) = (q.chunks_exact(LANES), r.chunks_exact(LANES));
    for (x, h) in (&mut xs).zip(&mut hs) {
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: x and h hold LANES = 32 values, so 8i..8i+8 is in bounds for i < 4.
            let (vx, vh) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(8 * i)),
                    _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().add(8 * i).cast())),
                )
            };
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(vx, vh));
        }
    }
    let tail = tail_dot(xs.remainder(), hs.remainder());
    sum_lanes_avx(acc) + tail
}

/// `a · b` of two float16 rows (bit patterns), summed in float32 with fused multiply-adds: the
/// distance the index is built with ([`HalfCosine`]), half of a build's time. Each of 32 lanes
/// accumulates `fma(a_i, b_i, acc)` in order and the lanes are summed as [`sum_lanes`] does, so
/// the AVX-512 and AVX2 copies agree bit for bit with the portable one (whose `mul_add` is
/// exact in software too).
#[inline]
pub(crate) fn dot_f16_pair(a: &[u16], b: &[u16]) -> f32 {
    type DotPair = fn(&[u16], &[u16]) -> f32;
    static PICKED: OnceLock<DotPair> = OnceLock::new();
    (PICKED.get_or_init(pick_pair))(a, b)
}

fn pick_pair() -> fn(&[u16], &[u16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        let has =
            |f: bool| f && is_x86_feature_detected!("f16c") && is_x86_feature_detected!("fma");
        if has(is_x86_feature_detected!("avx512f")) {
            // SAFETY: the CPU supports AVX-512F, F16C and FMA, checked just above.
            return |a, b| unsafe { dot_f16_pair_avx512(a, b) };
        }
        if has(is_x86_feature_detected!("avx2")) {
            // SAFETY: the CPU supports AVX2, F16C and FMA, checked just above.
            return |a, b| unsafe { dot_f16_pair_avx2(a, b) };
        }
    }
    dot_f16_pair_lanes
}

fn dot_f16_pair_lanes(a: &[u16], b: &[u16]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let to_f32 = |h: u16| f16::from_bits(h).to_f32();
    let mut acc = [0f32; LANES];
    let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut xs).zip(&mut ys) {
        for i in 0..LANES {
            acc[i] = to_f32(x[i]).mul_add(to_f32(y[i]), acc[i]);
        }
    }
    let tail = pair_tail_dot(xs.remainder(), ys.remainder());
    sum_lanes(acc) + tail
}

fn pair_tail_dot(a: &[u16], b: &[u16]) -> f32 {
    let mut tail = 0f32;
    for (x, y) in a.iter().zip(b) {
        tail = f16::from_bits(*x)
            .to_f32()
            .mul_add(f16::from_bits(*y).to_f32(), tail);
    }
    tail
}

/// [`dot_f16_pair_lanes`] in four AVX registers, lanes laid out as in [`dot_f16_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c,fma")]
fn dot_f16_pair_avx2(a: &[u16], b: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm256_setzero_ps(); 4];
    let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut xs).zip(&mut ys) {
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: x and y hold LANES = 32 values, so 8i..8i+8 is in bounds for i < 4.
            let (vx, vy) = unsafe {
                (
                    _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().add(8 * i).cast())),
                    _mm256_cvtph_ps(_mm_loadu_si128(y.as_ptr().add(8 * i).cast())),
                )
            };
            *acc = _mm256_fmadd_ps(vx, vy, *acc);
        }
    }
    let tail = pair_tail_dot(xs.remainder(), ys.remainder());
    sum_lanes_avx(acc) + tail
}

/// [`dot_f16_pair_lanes`] in two AVX-512 registers (lane `i` of register `r` is lane `16r + i`),
/// summed by [`sum_lanes`] itself.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,f16c,fma")]
fn dot_f16_pair_avx512(a: &[u16], b: &[u16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [_mm512_setzero_ps(); 2];
    let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut xs).zip(&mut ys) {
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: x and y hold LANES = 32 values, so 16i..16i+16 is in bounds for i < 2.
            let (vx, vy) = unsafe {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(x.as_ptr().add(16 * i).cast())),
                    _mm512_cvtph_ps(_mm256_loadu_si256(y.as_ptr().add(16 * i).cast())),
                )
            };
            *acc = _mm512_fmadd_ps(vx, vy, *acc);
        }
    }
    let mut lanes = [0f32; LANES];
    for (i, acc) in acc.iter().enumerate() {
        // SAFETY: lanes holds 32 floats, so 16i..16i+16 is in bounds for i < 2.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr().add(16 * i), *acc) };
    }
    let tail = pair_tail_dot(xs.remainder(), ys.remainder());
    sum_lanes(lanes) + tail
}

/// Cosine distance between float16 unit rows, `1 − a·b` clamped at 0: what hnsw_rs builds the
/// graph with. A build is bound by reading rows (`dot` was over half of its samples, waiting on
/// loads), and float16 rows are half the bytes; the graph only steers searches, whose answers
/// are ranked by the exact float32 cosine.
#[derive(Default, Clone, Copy)]
pub(crate) struct HalfCosine;

impl hnsw_rs::anndists::dist::Distance<u16> for HalfCosine {
    fn eval(&self, a: &[u16], b: &[u16]) -> f32 {
        (1.0 - dot_f16_pair(a, b)).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dot_f16_is_the_dot_with_the_rounded_row(pairs in proptest::collection::vec((-1f32..1.0, -1f32..1.0), 0..900)) {
            let (q, r): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let bits = half_bits(&r);
            let want: f64 = q.iter().zip(&r).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let scale: f64 = q.iter().zip(&r).map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs()).sum();
            // float16 keeps 11 significant bits: each product is off by at most 2^-11 of itself.
            prop_assert!((f64::from(dot_f16(&q, &bits)) - want).abs() <= 1e-3 * scale + 1e-5);
        }

        #[test]
        fn dot_f16_pair_is_the_dot_of_the_rounded_rows(pairs in proptest::collection::vec((-1f32..1.0, -1f32..1.0), 0..900)) {
            let (a, b): (Vec<u16>, Vec<u16>) = pairs
                .iter()
                .map(|(x, y)| (f16::from_f32(*x).to_bits(), f16::from_f32(*y).to_bits()))
                .unzip();
            let wide = |h: &u16| f64::from(f16::from_bits(*h).to_f32());
            let want: f64 = a.iter().zip(&b).map(|(x, y)| wide(x) * wide(y)).sum();
            let scale: f64 = a.iter().zip(&b).map(|(x, y)| (wide(x) * wide(y)).abs()).sum();
            // Products of float16s are exact in float32; only the float32 sums round.
            prop_assert!((f64::from(dot_f16_pair(&a, &b)) - want).abs() <= 1e-5 * scale + 1e-6);
            prop_assert_eq!(dot_f16_pair(&a, &b).to_bits(), dot_f16_pair_lanes(&a, &b).to_bits());
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") && is_x86_feature_detected!("fma") {
                // SAFETY: the features were just checked.
                let avx2 = unsafe { dot_f16_pair_avx2(&a, &b) };
                prop_assert_eq!(avx2.to_bits(), dot_f16_pair_lanes(&a, &b).to_bits());
            }
        }

        #[test]
        fn every_dispatch_gives_the_same_bits(pairs in proptest::collection::vec((-1f32..1.0, -1f32..1.0), 0..900)) {
            let (q, r): (Vec<f32>, Vec<u16>) = pairs
                .into_iter()
                .map(|(x, y)| (x, f16::from_f32(y).to_bits()))
                .unzip();
            prop_assert_eq!(dot_f16(&q, &r).to_bits(), dot_f16_lanes(&q, &r).to_bits());
        }
    }
}
