//! Dense vector kernels shared by neighbours (HNSW distances, exact search) and token effects.
//!
//! `dot` is the hot loop of HNSW indexing: building a 24,576 × 768 index evaluates it some
//! 10⁸ times. It sums in 32 independent lanes so that the compiler can vectorise it without
//! fast-math, and is compiled twice — for the baseline x86-64 target (SSE2) and for AVX2, picked
//! at run time. Both copies perform the same operations in the same order (no FMA), so the
//! result is bit-identical whichever runs: answers do not depend on the machine's CPU.

use std::sync::OnceLock;

/// Independent sums a dot kernel keeps (also `ann::half`'s).
pub(crate) const LANES: usize = 32;

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut xs).zip(&mut ys) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in xs.remainder().iter().zip(ys.remainder()) {
        tail += x * y;
    }
    sum_lanes(acc) + tail
}

/// The sum of 32 lanes in a fixed pairwise order, 32 → 16 → … → 1: every dot kernel's last
/// step (here and in `ann::half`), so that their portable and AVX2 copies agree bit for bit.
#[inline(always)]
pub(crate) fn sum_lanes(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// [`sum_lanes`] of 32 lanes held in four AVX registers (lane `i` of register `r` is lane
/// `8r + i`): the same additions in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) fn sum_lanes_avx(acc: [std::arch::x86_64::__m256; 4]) -> f32 {
    use std::arch::x86_64::*;
    let half = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    let four = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let one = _mm_add_ss(two, _mm_shuffle_ps(two, two, 1));
    _mm_cvtss_f32(one)
}

/// [`dot_lanes`] with the 32 lanes held in four AVX registers (the compiler's own vectorisation
/// of it stays at 128 bits). Same operations, same order: lane `i` of register `r` is lane
/// `8r + i` there, and the reduction halves the lanes in the same pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut xs, mut ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut acc = [_mm256_setzero_ps(); 4];
    for (x, y) in (&mut xs).zip(&mut ys) {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: x and y hold LANES = 32 floats, so 8r..8r+8 is in bounds for r < 4.
            let (vx, vy) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(8 * r)),
                    _mm256_loadu_ps(y.as_ptr().add(8 * r)),
                )
            };
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(vx, vy));
        }
    }
    let mut tail = 0f32;
    for (x, y) in xs.remainder().iter().zip(ys.remainder()) {
        tail += x * y;
    }
    sum_lanes_avx(acc) + tail
}

type DotFn = fn(&[f32], &[f32]) -> f32;

fn pick_dot() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return |a, b| unsafe { dot_avx2(a, b) };
    }
    dot_lanes
}

/// Inner product of the common prefix of `a` and `b` (callers pass equal lengths).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    static DOT: OnceLock<DotFn> = OnceLock::new();
    (DOT.get_or_init(pick_dot))(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn dot_matches_f64_reference(pairs in proptest::collection::vec((-10f32..10.0, -10f32..10.0), 0..900)) {
            let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let scale: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs()).sum();
            prop_assert!((f64::from(dot(&a, &b)) - want).abs() <= 1e-5 * (1.0 + scale));
        }

        #[test]
        fn every_dispatch_gives_the_same_bits(pairs in proptest::collection::vec((-10f32..10.0, -10f32..10.0), 0..900)) {
            let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            prop_assert_eq!(dot(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits());
        }
    }
}
