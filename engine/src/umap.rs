//! A UMAP-style 2-D layout of points from their k-nearest-neighbour graph (McInnes et al. 2018,
//! the algorithm of umap-learn's `simplicial_set_embedding`), written here because the layout
//! must be faithful, deterministic and fast for a few thousand points:
//!
//! 1. **Fuzzy graph.** Each point's kNN distances become memberships
//!    `exp(-(d - ρ) / σ)` (ρ its nearest distance, σ chosen so the memberships sum to
//!    `log2 k`), symmetrised as `a + b - a·b`: close pairs by cosine pull hardest.
//! 2. **Start.** The points' first two principal components (power iteration on the
//!    covariance of their vectors), scaled to `[-10, 10]`: a start that already keeps the
//!    large-scale structure, and the same on every run.
//! 3. **Forces.** Stochastic gradient descent on UMAP's cross-entropy: each edge, sampled in
//!    proportion to its weight, pulls its two ends together (`1 / (1 + a·d^2b)`, min_dist 0.1);
//!    five random points per pull push the point away. A fixed seed makes the result
//!    reproducible; the step shrinks linearly to zero.

use crate::vector::dot;

/// UMAP's curve for `min_dist = 0.1, spread = 1` (umap-learn's `find_ab_params`).
const CURVE_A: f32 = 1.577;
const CURVE_B: f32 = 0.8951;
/// Random points each pull is answered by.
const NEGATIVE_SAMPLES: usize = 5;
/// The start spans `[-INIT_SPAN, INIT_SPAN]` in each axis, as umap-learn's spectral start.
const INIT_SPAN: f32 = 10.0;
/// Largest gradient component per step (umap-learn's clip).
const CLIP: f32 = 4.0;
const SEED: u64 = 0x0005_AEDB;

/// 2-D coordinates in `[0, 1]` (one scale for both axes) of `rows.len()` points, from their
/// vectors `rows` and their kNN lists `knn` (`(point, cosine distance)`, nearest first). Points
/// with no edges stay where the start put them. Fewer than four points are put on a line.
pub(crate) fn layout(rows: &[&[f32]], knn: &[Vec<(u32, f32)>]) -> Vec<(f32, f32)> {
    let n = rows.len();
    debug_assert_eq!(knn.len(), n);
    if n < 4 {
        return (0..n).map(|i| ((i as f32 + 0.5) / n as f32, 0.5)).collect();
    }
    let edges = fuzzy_edges(knn);
    let mut xy = pca_start(rows);
    let epochs = epochs_for(n);
    optimise(&mut xy, &edges, epochs);
    normalise(&xy)
}

/// Rounds of optimisation: umap-learn's 500 up to 10,000 points and 200 above; a neighbourhood
/// of a few dozen points settles in 200 (`small_sets_keep_their_clusters`).
fn epochs_for(n: usize) -> usize {
    if (100..=10_000).contains(&n) {
        500
    } else {
        200
    }
}

/// One undirected edge of the fuzzy graph with its membership in `(0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Edge {
    pub a: u32,
    pub b: u32,
    pub weight: f32,
}

/// The symmetrised fuzzy simplicial set of a kNN graph, as edges sorted by (a, b), a < b.
pub(crate) fn fuzzy_edges(knn: &[Vec<(u32, f32)>]) -> Vec<Edge> {
    let mut directed: Vec<(u32, u32, f32)> = Vec::new();
    for (i, row) in knn.iter().enumerate() {
        let i = i as u32;
        let row: Vec<(u32, f32)> = row
            .iter()
            .filter(|&&(j, d)| j != i && d.is_finite())
            .map(|&(j, d)| (j, d.max(0.0)))
            .collect();
        for (j, w) in memberships(&row) {
            directed.push((i.min(j), i.max(j), w));
        }
    }
    directed.sort_by_key(|x| (x.0, x.1));
    let mut edges: Vec<Edge> = Vec::with_capacity(directed.len());
    for (a, b, w) in directed {
        match edges.last_mut() {
            // Both directions present: the probabilistic union a + b − ab.
            Some(e) if e.a == a && e.b == b => e.weight = e.weight + w - e.weight * w,
            _ => edges.push(Edge { a, b, weight: w }),
        }
    }
    edges.retain(|e| e.weight > 0.0);
    edges
}

/// One point's memberships `exp(-(d − ρ)/σ)`: ρ the nearest distance, σ by bisection so the
/// memberships sum to `log2(k)` (umap-learn's `smooth_knn_dist`).
fn memberships(row: &[(u32, f32)]) -> Vec<(u32, f32)> {
    if row.is_empty() {
        return Vec::new();
    }
    let rho = row.iter().map(|e| e.1).fold(f32::INFINITY, f32::min);
    let target = (row.len() as f32).log2().max(1e-3);
    let sum = |sigma: f32| -> f32 {
        row.iter()
            .map(|&(_, d)| (-((d - rho).max(0.0)) / sigma).exp())
            .sum()
    };
    let (mut lo, mut hi, mut sigma) = (0.0f32, f32::INFINITY, 1.0f32);
    for _ in 0..64 {
        let s = sum(sigma);
        if (s - target).abs() < 1e-5 {
            break;
        }
        if s > target {
            hi = sigma;
            sigma = (lo + hi) / 2.0;
        } else {
            lo = sigma;
            sigma = if hi.is_finite() {
                (lo + hi) / 2.0
            } else {
                sigma * 2.0
            };
        }
    }
    // umap-learn's floor on σ, relative to the mean distance.
    let mean = row.iter().map(|e| e.1).sum::<f32>() / row.len() as f32;
    let sigma = sigma.max(1e-3 * mean).max(1e-12);
    row.iter()
        .map(|&(j, d)| (j, (-((d - rho).max(0.0)) / sigma).exp()))
        .collect()
}

/// The points' projections on the first two principal components of `rows`, scaled so the
/// largest coordinate is `INIT_SPAN`, with a tiny deterministic jitter that separates equal rows.
pub(crate) fn pca_start(rows: &[&[f32]]) -> Vec<[f32; 2]> {
    let n = rows.len();
    let dim = rows.first().map_or(0, |r| r.len());
    let mut mean = vec![0.0f32; dim];
    for r in rows {
        for (m, v) in mean.iter_mut().zip(r.iter()) {
            *m += v / n as f32;
        }
    }
    let centred: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect())
        .collect();
    let first = principal_axis(&centred, &[]);
    let second = principal_axis(&centred, std::slice::from_ref(&first));
    let mut xy: Vec<[f32; 2]> = centred
        .iter()
        .map(|c| [dot(c, &first), dot(c, &second)])
        .collect();
    let span = xy
        .iter()
        .flat_map(|p| [p[0].abs(), p[1].abs()])
        .fold(0.0f32, f32::max);
    let scale = if span > 0.0 { INIT_SPAN / span } else { 0.0 };
    let mut rng = SplitMix(SEED ^ 0xC0FFEE);
    for p in &mut xy {
        p[0] = p[0] * scale + (rng.unit() - 0.5) * 1e-2;
        p[1] = p[1] * scale + (rng.unit() - 0.5) * 1e-2;
    }
    xy
}

/// The unit direction of largest variance of `centred` orthogonal to `previous` (power
/// iteration on XᵀX from a fixed start; 64 rounds are plenty for a starting picture).
fn principal_axis(centred: &[Vec<f32>], previous: &[Vec<f32>]) -> Vec<f32> {
    let dim = centred.first().map_or(0, Vec::len);
    let mut v: Vec<f32> = (0..dim).map(|i| 1.0 + (i as f32 * 0.618).fract()).collect();
    for _ in 0..64 {
        orthogonalise(&mut v, previous);
        if !normalise_vec(&mut v) {
            break;
        }
        let mut next = vec![0.0f32; dim];
        for c in centred {
            let s = dot(c, &v);
            for (x, ci) in next.iter_mut().zip(c) {
                *x += s * ci;
            }
        }
        v = next;
    }
    orthogonalise(&mut v, previous);
    if !normalise_vec(&mut v) {
        v = vec![0.0; dim]; // no variance left: every point projects to 0
    }
    v
}

fn orthogonalise(v: &mut [f32], against: &[Vec<f32>]) {
    for u in against {
        let s = dot(v, u);
        for (x, ui) in v.iter_mut().zip(u) {
            *x -= s * ui;
        }
    }
}

fn normalise_vec(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm.is_nan() || norm <= 1e-20 {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// UMAP's optimisation: per epoch, each edge whose turn it is (edges are visited every
/// `max weight / weight` epochs) pulls its ends together and is followed by repulsions from
/// random points (also scheduled per edge, as umap-learn does).
pub(crate) fn optimise(xy: &mut [[f32; 2]], edges: &[Edge], epochs: usize) {
    let n = xy.len() as u64;
    let max_w = edges.iter().map(|e| e.weight).fold(0.0f32, f32::max);
    if edges.is_empty() || max_w <= 0.0 || n < 2 {
        return;
    }
    let every: Vec<f32> = edges.iter().map(|e| max_w / e.weight).collect();
    let every_negative: Vec<f32> = every.iter().map(|e| e / NEGATIVE_SAMPLES as f32).collect();
    let mut next = every.clone();
    let mut next_negative = every_negative.clone();
    let mut rng = SplitMix(SEED);
    for epoch in 0..epochs {
        let step = 1.0 - epoch as f32 / epochs as f32;
        let now = (epoch + 1) as f32;
        for (i, e) in edges.iter().enumerate() {
            if next[i] > now {
                continue;
            }
            let (a, b) = (e.a as usize, e.b as usize);
            pull(xy, a, b, step);
            next[i] += every[i];
            let negatives = ((now - next_negative[i]) / every_negative[i]) as usize;
            for _ in 0..negatives {
                let c = (rng.next() % n) as usize;
                if c != a {
                    push(xy, a, c, step);
                }
            }
            next_negative[i] += negatives as f32 * every_negative[i];
        }
    }
}

/// The attraction along an edge, applied to both ends.
fn pull(xy: &mut [[f32; 2]], a: usize, b: usize, step: f32) {
    let (dx, dy) = (xy[a][0] - xy[b][0], xy[a][1] - xy[b][1]);
    let d2 = dx * dx + dy * dy;
    if d2 <= 0.0 {
        return;
    }
    let pb = d2.powf(CURVE_B); // d2^(b-1) is pb / d2: one powf per step
    let coeff = -2.0 * CURVE_A * CURVE_B * (pb / d2) / (CURVE_A * pb + 1.0);
    let gx = (coeff * dx).clamp(-CLIP, CLIP) * step;
    let gy = (coeff * dy).clamp(-CLIP, CLIP) * step;
    xy[a][0] += gx;
    xy[a][1] += gy;
    xy[b][0] -= gx;
    xy[b][1] -= gy;
}

/// The repulsion of a random point `c` on `a` (only `a` moves, as in umap-learn).
fn push(xy: &mut [[f32; 2]], a: usize, c: usize, step: f32) {
    let (dx, dy) = (xy[a][0] - xy[c][0], xy[a][1] - xy[c][1]);
    let d2 = dx * dx + dy * dy;
    let (gx, gy) = if d2 > 0.0 {
        let coeff = 2.0 * CURVE_B / ((0.001 + d2) * (CURVE_A * d2.powf(CURVE_B) + 1.0));
        (
            (coeff * dx).clamp(-CLIP, CLIP),
            (coeff * dy).clamp(-CLIP, CLIP),
        )
    } else {
        (CLIP, CLIP) // coincident points: push apart along a fixed direction
    };
    xy[a][0] += gx * step;
    xy[a][1] += gy * step;
}

/// Scales points into `[0, 1]²` with one factor for both axes, centred.
fn normalise(xy: &[[f32; 2]]) -> Vec<(f32, f32)> {
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in xy {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    let span = (x1 - x0).max(y1 - y0);
    if !(span.is_finite() && span > 0.0) {
        return xy.iter().map(|_| (0.5, 0.5)).collect();
    }
    let (cx, cy) = (
        (1.0 - (x1 - x0) / span) / 2.0,
        (1.0 - (y1 - y0) / span) / 2.0,
    );
    xy.iter()
        .map(|p| (cx + (p[0] - x0) / span, cy + (p[1] - y0) / span))
        .collect()
}

/// splitmix64: small, fast and the same everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::exact_knn;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let norm = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    fn map_distance(xy: &[(f32, f32)], i: usize, j: usize) -> f32 {
        (xy[i].0 - xy[j].0).powi(2) + (xy[i].1 - xy[j].1).powi(2)
    }

    /// The `k` nearest points of `i` on the map.
    fn map_knn(xy: &[(f32, f32)], i: usize, k: usize) -> Vec<usize> {
        let mut d: Vec<usize> = (0..xy.len()).filter(|&j| j != i).collect();
        d.sort_by(|&a, &b| map_distance(xy, i, a).total_cmp(&map_distance(xy, i, b)));
        d.truncate(k);
        d
    }

    /// Two circles in far-apart planes of 8-D space: each point's 5 nearest on the map are
    /// mostly among its 10 nearest in 8-D (chance: 10/199 = 0.05), and the circles stay apart.
    #[test]
    fn keeps_neighbourhoods_and_separates_circles() {
        let n = 200;
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                let t = (i % 100) as f32 / 100.0 * std::f32::consts::TAU;
                let mut v = vec![0.0f32; 8];
                let (a, b) = if i < 100 { (0, 1) } else { (4, 5) };
                v[a] = t.cos();
                v[b] = t.sin();
                v[7] = 0.3;
                unit(v)
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let knn = exact_knn(&refs, 10);
        let xy = layout(&refs, &knn);
        assert!(xy
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.0) && (0.0..=1.0).contains(&p.1)));
        let mut kept = 0;
        for (i, row) in knn.iter().enumerate() {
            let true_nn: Vec<usize> = row.iter().map(|e| e.0 as usize).collect();
            kept += map_knn(&xy, i, 5)
                .iter()
                .filter(|j| true_nn.contains(j))
                .count();
        }
        let rate = kept as f64 / (5 * n) as f64;
        assert!(rate > 0.6, "neighbourhood preservation {rate}");
        let mixed = (0..n)
            .filter(|&i| (i < 100) != (map_knn(&xy, i, 1)[0] < 100))
            .count();
        assert_eq!(
            mixed, 0,
            "points whose map neighbour is on the other circle"
        );
    }

    /// A feature page's neighbourhood (a few dozen points, 200 rounds): three clusters of 8
    /// stay apart on the map.
    #[test]
    fn small_sets_keep_their_clusters() {
        let rows: Vec<Vec<f32>> = (0..24)
            .map(|i| {
                let mut v = vec![0.05f32; 12];
                v[(i / 8) * 4] = 1.0;
                v[(i / 8) * 4 + 1 + i % 3] = 0.3 + 0.05 * (i % 8) as f32;
                unit(v)
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let xy = layout(&refs, &exact_knn(&refs, 8));
        for i in 0..24 {
            let near = map_knn(&xy, i, 5);
            assert!(
                near.iter().all(|&j| j / 8 == i / 8),
                "point {i}: map neighbours {near:?}"
            );
        }
    }

    /// The same input gives the same layout (a fixed seed, no threads).
    #[test]
    fn is_deterministic() {
        let rows: Vec<Vec<f32>> = (0..60)
            .map(|i| {
                unit(
                    (0..6)
                        .map(|d| ((i * 7 + d * 3) % 11) as f32 + 0.5)
                        .collect(),
                )
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let knn = exact_knn(&refs, 6);
        assert_eq!(layout(&refs, &knn), layout(&refs, &knn));
    }

    /// Memberships: the nearest neighbour weighs 1, weights fall with distance, and a pair
    /// listed both ways is joined by the probabilistic union.
    #[test]
    fn fuzzy_graph_weights() {
        let knn = vec![
            vec![(1, 0.1), (2, 0.5), (3, 0.9)],
            vec![(0, 0.1), (2, 0.2), (3, 0.8)],
            vec![(1, 0.2), (0, 0.5), (3, 0.6)],
            vec![(2, 0.6), (1, 0.8), (0, 0.9)],
        ];
        let edges = fuzzy_edges(&knn);
        let w = |a, b| edges.iter().find(|e| e.a == a && e.b == b).unwrap().weight;
        assert!((w(0, 1) - 1.0).abs() < 1e-6);
        assert!(w(0, 2) < w(0, 1) && w(0, 3) < w(0, 2));
        let one_way = memberships(&knn[0].clone())[1].1;
        let other_way = memberships(&knn[2].clone())[1].1;
        let union = one_way + other_way - one_way * other_way;
        assert!((w(0, 2) - union).abs() < 1e-6);
        // Each point's memberships sum to log2(k).
        let s: f32 = memberships(&knn[3]).iter().map(|e| e.1).sum();
        assert!((s - 3f32.log2()).abs() < 1e-3, "{s}");
    }

    #[test]
    fn tiny_sets_are_put_on_a_line() {
        assert_eq!(layout(&[], &[]), vec![]);
        let rows = [[1.0f32, 0.0], [0.0, 1.0]];
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let xy = layout(&refs, &[vec![(1, 0.1)], vec![(0, 0.1)]]);
        assert_eq!(xy.len(), 2);
    }
}
