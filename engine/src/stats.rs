//! Per-feature statistics and materialised top activations, maintained at ingest so that reading
//! them never scans the corpus. Records of separate ingests merge exactly: counts and sums add,
//! histograms use fixed log-spaced bins, top lists merge and truncate.

use crate::types::{HistogramBin, HISTOGRAM_BINS};
use crate::{Error, Result};
use std::cmp::Ordering;

/// How many top activations are materialised per feature.
pub const TOP_KEPT: usize = 128;

/// Histogram bin of a value: quarter-octaves, bin 64 starts at 1.0 (⌊4·log2 v⌋ + 64, clamped).
///
/// Computed from the float's bits, exactly: the binary exponent gives the octave and the
/// mantissa, compared with those of 2^¼, 2^½ and 2^¾, the quarter. (A `log2` call per value
/// was 3.5% of a latents ingest.)
pub fn histogram_bin(v: f32) -> usize {
    // NaN and non-positive values go to the first bin.
    if v.is_nan() || v <= 0.0 {
        return 0;
    }
    let bits = v.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i64 - 127;
    let mantissa = bits & 0x7f_ffff;
    let quarter = QUARTER_MANTISSAS.iter().filter(|&&m| mantissa >= m).count() as i64;
    // Subnormals (biased exponent 0) land far below bin 0 and are clamped there.
    let b = 4 * exponent + quarter + 64;
    b.clamp(0, HISTOGRAM_BINS as i64 - 1) as usize
}

/// The smallest 23-bit mantissas `m` with `1 + m / 2^23 ≥ 2^(i/4)`, for i = 1, 2, 3.
const QUARTER_MANTISSAS: [u32; 3] = [0x18_37f1, 0x35_04f4, 0x57_44fd];

/// Lower and upper edge of a histogram bin.
pub fn bin_edges(bin: usize) -> (f32, f32) {
    let lo = 2f32.powf((bin as f32 - 64.0) / 4.0);
    let hi = 2f32.powf((bin as f32 - 63.0) / 4.0);
    (if bin == 0 { 0.0 } else { lo }, hi)
}

/// Order of top activations: larger value first, then lower (doc, pos).
pub fn top_order(a: &(u32, u32, f32), b: &(u32, u32, f32)) -> Ordering {
    b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1)))
}

/// Everything stored about one feature's activations.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRecord {
    pub count: u64,
    pub sum: f64,
    pub max: f32,
    pub histogram: Vec<u64>,
    /// The strongest activations, in [`top_order`], at most [`TOP_KEPT`].
    pub top: Vec<(u32, u32, f32)>,
}

impl Default for StatsRecord {
    fn default() -> Self {
        StatsRecord {
            count: 0,
            sum: 0.0,
            max: 0.0,
            histogram: vec![0; HISTOGRAM_BINS],
            top: Vec::new(),
        }
    }
}

impl StatsRecord {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a value in everything but the top list.
    fn tally(&mut self, v: f32) {
        if self.count == 0 || v > self.max {
            self.max = v;
        }
        self.count += 1;
        self.sum += f64::from(v);
        self.histogram[histogram_bin(v)] += 1;
    }

    pub fn add(&mut self, doc: u32, pos: u32, v: f32) {
        self.tally(v);
        self.top.push((doc, pos, v));
        if self.top.len() >= 4 * TOP_KEPT {
            self.cut_top();
        }
    }

    /// [`StatsRecord::add`] of every activation, with the same result, faster: once the top list
    /// has been cut to [`TOP_KEPT`], values below its last one cannot enter it and are not
    /// pushed (so long runs are not sorted over and over).
    pub fn add_all(&mut self, acts: impl IntoIterator<Item = (u32, u32, f32)>) {
        let mut floor = f32::NEG_INFINITY;
        for (doc, pos, v) in acts {
            self.tally(v);
            if v < floor {
                continue; // TOP_KEPT kept values are all larger
            }
            self.top.push((doc, pos, v));
            if self.top.len() >= 4 * TOP_KEPT {
                self.cut_top();
                floor = self.top[TOP_KEPT - 1].2;
            }
        }
    }

    /// Keeps the [`TOP_KEPT`] best of the top list, unsorted but with the worst of them last:
    /// a selection, cheaper than the sort [`StatsRecord::truncate_top`] does once at the end.
    fn cut_top(&mut self) {
        if self.top.len() > TOP_KEPT {
            self.top.select_nth_unstable_by(TOP_KEPT - 1, top_order);
            self.top.truncate(TOP_KEPT);
        }
    }

    /// Truncates and sorts the top list (call before storing): a selection drops all but the
    /// kept entries, then only those are sorted. `top_order` is total on distinct entries, so
    /// the unstable sort gives the one order a stable sort would.
    pub fn truncate_top(&mut self) {
        self.cut_top();
        self.top.sort_unstable_by(top_order);
    }

    /// Adds `other`'s counters and its top entries, leaving the top list to be cut.
    fn absorb(&mut self, other: &StatsRecord) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 || other.max > self.max {
            self.max = other.max;
        }
        self.count += other.count;
        self.sum += other.sum;
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            *a += b;
        }
        self.top.extend_from_slice(&other.top);
        if self.top.len() >= 4 * TOP_KEPT {
            self.cut_top();
        }
    }

    /// Merges encoded records: `existing`, if any, with every operand — RocksDB's merge operator
    /// on the statistics column family, so that an ingest writes its own records as operands
    /// instead of reading, merging and rewriting every record it touches. Any order of the same
    /// records gives the same record (up to the rounding of `sum`).
    pub fn merge_encoded<'a>(
        existing: Option<&[u8]>,
        operands: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<u8>> {
        let mut acc = match existing {
            Some(bytes) => StatsRecord::decode(bytes)?,
            None => StatsRecord::new(),
        };
        for op in operands {
            acc.absorb(&StatsRecord::decode(op)?);
        }
        acc.truncate_top();
        Ok(acc.encode())
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    pub fn histogram_bins(&self) -> Vec<HistogramBin> {
        self.histogram
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &count)| {
                let (lo, hi) = bin_edges(i);
                HistogramBin { lo, hi, count }
            })
            .collect()
    }

    /// Bytes: `count u64 LE | sum f64 LE | max f32 LE | n_bins u8 | (bin u8, count u64 LE)* |
    /// n_top u16 LE | (doc u32 LE, pos u32 LE, value f32 LE)*`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 12 * self.top.len());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        let bins: Vec<(usize, u64)> = self
            .histogram
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, c)| *c > 0)
            .collect();
        out.push(bins.len() as u8);
        for (b, c) in bins {
            out.push(b as u8);
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(&(self.top.len() as u16).to_le_bytes());
        for &(d, p, v) in &self.top {
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<StatsRecord> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = buf
                .get(at..at + n)
                .ok_or_else(|| Error::Corrupt("stats record truncated".into()))?;
            at += n;
            Ok(s)
        };
        let count = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
        let sum = f64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
        let max = f32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
        let mut histogram = vec![0u64; HISTOGRAM_BINS];
        let n_bins = take(1)?[0] as usize;
        for _ in 0..n_bins {
            let b = take(1)?[0] as usize;
            let c = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
            *histogram
                .get_mut(b)
                .ok_or_else(|| Error::Corrupt("stats histogram bin out of range".into()))? = c;
        }
        let n_top = u16::from_le_bytes(take(2)?.try_into().unwrap_or_default()) as usize;
        let mut top = Vec::with_capacity(n_top);
        for _ in 0..n_top {
            let e = take(12)?;
            let u = |i: usize| [e[i], e[i + 1], e[i + 2], e[i + 3]];
            top.push((
                u32::from_le_bytes(u(0)),
                u32::from_le_bytes(u(4)),
                f32::from_le_bytes(u(8)),
            ));
        }
        if at != buf.len() {
            return Err(Error::Corrupt("stats record has trailing bytes".into()));
        }
        Ok(StatsRecord {
            count,
            sum,
            max,
            histogram,
            top,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_their_values() {
        for &v in &[0.001f32, 0.3, 1.0, 1.1, 2.5, 17.0, 900.0] {
            let (lo, hi) = bin_edges(histogram_bin(v));
            assert!(lo <= v && v < hi, "{v} not in [{lo}, {hi})");
        }
    }

    /// The bit-level bin against ⌊4·log2 v⌋ + 64 in f64 on every float16 value (all that
    /// statistics ever see) and on quarter-octave edges, where a rounding error would show.
    #[test]
    fn histogram_bin_is_floor_of_four_log2() {
        let reference = |v: f32| -> usize {
            if v.is_nan() || v <= 0.0 {
                return 0;
            }
            let b = ((4.0 * f64::from(v).log2()).floor() as i64).saturating_add(64);
            b.clamp(0, HISTOGRAM_BINS as i64 - 1) as usize
        };
        for bits in 0..=u16::MAX {
            let v = half::f16::from_bits(bits).to_f32();
            assert_eq!(histogram_bin(v), reference(v), "float16 {v} ({bits:#06x})");
            // Stores written by earlier builds binned with f32 `log2`: the same bins.
            if v > 0.0 && v.is_finite() {
                let before = ((4.0 * v.log2()).floor() as i64 + 64).clamp(0, 127) as usize;
                assert_eq!(histogram_bin(v), before, "float16 {v}: as earlier builds");
            }
        }
        for q in -80i32..=80 {
            let edge = 2f64.powf(f64::from(q) / 4.0) as f32;
            for v in [
                edge,
                f32::from_bits(edge.to_bits() - 1),
                f32::from_bits(edge.to_bits() + 1),
            ] {
                assert_eq!(histogram_bin(v), reference(v), "{v} near 2^({q}/4)");
            }
        }
        assert_eq!(histogram_bin(1.0), 64);
        assert_eq!(histogram_bin(f32::INFINITY), HISTOGRAM_BINS - 1);
        assert_eq!(histogram_bin(f32::from_bits(1)), 0);
    }

    proptest::proptest! {
        /// The skipping `add_all` against sort-everything: the same top list and counters.
        #[test]
        fn add_all_keeps_what_sorting_everything_keeps(
            vals in proptest::collection::vec((0u32..50, 0u32..20, 0u8..12), 0..3000)
        ) {
            let acts: Vec<(u32, u32, f32)> = vals.iter()
                .map(|&(d, p, v)| (d, p, f32::from(v) / 4.0))
                .collect();
            let mut fast = StatsRecord::new();
            fast.add_all(acts.iter().copied());
            fast.truncate_top();
            let mut want = acts.clone();
            want.sort_by(top_order);
            want.truncate(TOP_KEPT);
            proptest::prop_assert_eq!(&fast.top, &want);
            let mut slow = StatsRecord::new();
            for &(d, p, v) in &acts {
                slow.add(d, p, v);
            }
            slow.truncate_top();
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn merge_equals_adding_everything_to_one_record() {
        let vals: Vec<(u32, u32, f32)> = (0..1000)
            .map(|i| (i / 7, i % 7, ((i * 37) % 101) as f32 / 9.0))
            .collect();
        let mut one = StatsRecord::new();
        let (mut a, mut b) = (StatsRecord::new(), StatsRecord::new());
        for (i, &(d, p, v)) in vals.iter().enumerate() {
            one.add(d, p, v);
            if i % 3 == 0 {
                a.add(d, p, v)
            } else {
                b.add(d, p, v)
            }
        }
        one.truncate_top();
        a.truncate_top();
        b.truncate_top();
        let a = StatsRecord::decode(
            &StatsRecord::merge_encoded(Some(&a.encode()), [b.encode().as_slice()]).unwrap(),
        )
        .unwrap();
        assert_eq!(a.count, one.count);
        assert_eq!(a.histogram, one.histogram);
        assert_eq!(a.top, one.top);
        assert_eq!(a.max, one.max);
        assert!((a.sum - one.sum).abs() < 1e-6);
        assert_eq!(StatsRecord::decode(&a.encode()).unwrap(), a);
    }
}
