//! Per-feature statistics and materialised top activations, maintained at ingest so that reading
//! them never scans the corpus. Records of separate ingests merge exactly: counts and sums add,
//! histograms use fixed log-spaced bins, top lists merge and truncate.

use crate::codec::{put_varint, read_varint, VarintError};
use crate::types::{HistogramBin, HISTOGRAM_BINS};
use crate::{Error, Result};
use half::f16;
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

    /// Adds `other`'s count, sum, max and histogram (not its top list).
    fn absorb_counters(&mut self, other: &StatsRecord) {
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
    }

    /// Merges encoded records: `existing`, if any, with every operand — RocksDB's merge operator
    /// on the statistics column family, so that an ingest writes its own records as operands
    /// instead of reading, merging and rewriting every record it touches. Any order of the same
    /// records gives the same record (up to the rounding of `sum`).
    ///
    /// Stored top lists are sorted, so they are merged in one linear pass each, stopping at
    /// [`TOP_KEPT`]: RocksDB calls this on every flush and compaction of the column family, and
    /// concatenating, selecting and sorting was a third of its work there.
    pub fn merge_encoded<'a>(
        existing: Option<&[u8]>,
        operands: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Vec<u8>> {
        let mut acc = match existing {
            Some(bytes) => StatsRecord::decode(bytes)?,
            None => StatsRecord::new(),
        };
        acc.sort_top_if_needed();
        for op in operands {
            let mut other = StatsRecord::decode(op)?;
            other.sort_top_if_needed();
            let top = merge_sorted_tops(&acc.top, &other.top);
            acc.absorb_counters(&other);
            acc.top = top;
        }
        Ok(acc.encode())
    }

    /// Records this build wrote hold sorted top lists of at most [`TOP_KEPT`]; anything else
    /// (from a damaged or foreign record) is put in that shape first.
    fn sort_top_if_needed(&mut self) {
        let sorted = self
            .top
            .windows(2)
            .all(|w| top_order(&w[0], &w[1]) != Ordering::Greater);
        if !sorted || self.top.len() > TOP_KEPT {
            self.truncate_top();
        }
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

    /// Bytes (format version 3; docs/STORAGE.md): `varint count | sum f64 LE | max f32 LE |
    /// n_bins u8 | (bin u8, varint count)* | varint n_top | kind u8 | per top entry, in top
    /// order: varint zigzag(bits − previous bits), varint doc, varint pos`. `kind` 0: values are
    /// float16 bits (every stored activation is), 1: float32 bits. Top entries come by falling
    /// value, so the value steps are small; about 5 bytes an entry instead of 12.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 6 * self.top.len());
        put_varint(&mut out, self.count);
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        let bins = self.histogram.iter().filter(|c| **c > 0).count();
        out.push(bins as u8);
        for (bin, &count) in self.histogram.iter().enumerate().filter(|(_, c)| **c > 0) {
            out.push(bin as u8);
            put_varint(&mut out, count);
        }
        put_varint(&mut out, self.top.len() as u64);
        let half = self
            .top
            .iter()
            .all(|t| f16::from_f32(t.2).to_f32().to_bits() == t.2.to_bits());
        out.push(if half { VALUES_F16 } else { VALUES_F32 });
        let mut prev = 0i64;
        for &(doc, pos, v) in &self.top {
            let bits = if half {
                i64::from(f16::from_f32(v).to_bits())
            } else {
                i64::from(v.to_bits())
            };
            put_varint(&mut out, zigzag(bits - prev));
            prev = bits;
            put_varint(&mut out, u64::from(doc));
            put_varint(&mut out, u64::from(pos));
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<StatsRecord> {
        let mut r = RecordReader { buf, at: 0 };
        let count = r.varint()?;
        let sum = f64::from_le_bytes(r.array()?);
        let max = f32::from_le_bytes(r.array()?);
        let histogram = r.histogram(RecordReader::varint)?;
        let n_top = r.varint()?;
        if n_top > TOP_KEPT as u64 {
            return Err(corrupt("top list longer than kept"));
        }
        let half = match r.byte()? {
            VALUES_F16 => true,
            VALUES_F32 => false,
            _ => return Err(corrupt("unknown value kind")),
        };
        let mut top = Vec::with_capacity(n_top as usize);
        let mut prev = 0i64;
        for _ in 0..n_top {
            let bits = prev + unzigzag(r.varint()?);
            prev = bits;
            let value = if half {
                f16::from_bits(u16::try_from(bits).map_err(|_| corrupt("value out of range"))?)
                    .to_f32()
            } else {
                f32::from_bits(u32::try_from(bits).map_err(|_| corrupt("value out of range"))?)
            };
            let doc = u32::try_from(r.varint()?).map_err(|_| corrupt("doc out of range"))?;
            let pos = u32::try_from(r.varint()?).map_err(|_| corrupt("pos out of range"))?;
            top.push((doc, pos, value));
        }
        r.finish()?;
        Ok(StatsRecord {
            count,
            sum,
            max,
            histogram,
            top,
        })
    }
}

/// The first [`TOP_KEPT`] of two top lists sorted in [`top_order`], in that order (entries
/// equal under it, which distinct activations never are, both kept).
fn merge_sorted_tops(a: &[(u32, u32, f32)], b: &[(u32, u32, f32)]) -> Vec<(u32, u32, f32)> {
    let n = (a.len() + b.len()).min(TOP_KEPT);
    let mut out = Vec::with_capacity(n);
    let (mut i, mut j) = (0, 0);
    while out.len() < n {
        let take_a = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => top_order(x, y) != Ordering::Greater,
            (Some(_), None) => true,
            _ => false,
        };
        if take_a {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out
}

/// The `kind` byte of a stats record: how its top values are stored.
const VALUES_F16: u8 = 0;
const VALUES_F32: u8 = 1;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("stats record: {what}"))
}

/// Reads a stats record's bytes front to back; running past the end is corruption.
struct RecordReader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl RecordReader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.at).ok_or_else(|| corrupt("truncated"))?;
        self.at += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self
            .buf
            .get(self.at..self.at + N)
            .ok_or_else(|| corrupt("truncated"))?;
        self.at += N;
        Ok(bytes.try_into().unwrap_or([0; N]))
    }

    /// The histogram: `n_bins u8 | (bin u8, count)*`, each count read by `count`.
    fn histogram(&mut self, count: impl Fn(&mut Self) -> Result<u64>) -> Result<Vec<u64>> {
        let mut histogram = vec![0u64; HISTOGRAM_BINS];
        for _ in 0..self.byte()? {
            let bin = usize::from(self.byte()?);
            let c = count(self)?;
            *histogram
                .get_mut(bin)
                .ok_or_else(|| corrupt("histogram bin out of range"))? = c;
        }
        Ok(histogram)
    }

    /// Every byte must have been read.
    fn finish(&self) -> Result<()> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes"))
        }
    }

    fn varint(&mut self) -> Result<u64> {
        read_varint(self.buf, &mut self.at).map_err(|e| match e {
            VarintError::Truncated => corrupt("truncated"),
            VarintError::TooLong => corrupt("varint longer than 10 bytes"),
        })
    }
}

/// Decodes a record in format version 2's layout — `count u64 | sum f64 | max f32 | n_bins u8 |
/// (bin u8, count u64)* | n_top u16 | (doc u32, pos u32, value f32)*`, all LE — for the upgrade
/// of a version 2 store ([`crate::Store`] re-encodes every record when it opens one).
pub(crate) fn decode_v2(buf: &[u8]) -> Result<StatsRecord> {
    let mut r = RecordReader { buf, at: 0 };
    let count = u64::from_le_bytes(r.array()?);
    let sum = f64::from_le_bytes(r.array()?);
    let max = f32::from_le_bytes(r.array()?);
    let histogram = r.histogram(|r| Ok(u64::from_le_bytes(r.array()?)))?;
    let n_top = u16::from_le_bytes(r.array()?);
    let mut top = Vec::with_capacity(usize::from(n_top));
    for _ in 0..n_top {
        let doc = u32::from_le_bytes(r.array()?);
        let pos = u32::from_le_bytes(r.array()?);
        top.push((doc, pos, f32::from_le_bytes(r.array()?)));
    }
    r.finish()?;
    Ok(StatsRecord {
        count,
        sum,
        max,
        histogram,
        top,
    })
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

    proptest::proptest! {
        /// Merging the encoded records of any split of the activations, as RocksDB does (a
        /// stored record and operands), gives the record of all of them at once: the linear
        /// merge of top lists against adding everything to one record and sorting.
        #[test]
        fn merging_records_of_a_split_equals_one_record_of_everything(
            vals in proptest::collection::vec((0u8..12, 0usize..5), 0..2000),
            with_existing in proptest::bool::ANY,
        ) {
            let mut one = StatsRecord::new();
            let mut parts = vec![StatsRecord::new(); 5];
            for (i, &(v, part)) in vals.iter().enumerate() {
                let (doc, pos, v) = (i as u32 / 16, i as u32 % 16, f32::from(v) / 4.0);
                one.add(doc, pos, v);
                parts[part].add(doc, pos, v);
            }
            one.truncate_top();
            let encoded: Vec<Vec<u8>> = parts
                .iter_mut()
                .map(|p| {
                    p.truncate_top();
                    p.encode()
                })
                .collect();
            let (existing, operands) = if with_existing {
                (Some(encoded[0].as_slice()), &encoded[1..])
            } else {
                (None, &encoded[..])
            };
            let merged = StatsRecord::decode(
                &StatsRecord::merge_encoded(existing, operands.iter().map(Vec::as_slice)).unwrap(),
            )
            .unwrap();
            proptest::prop_assert_eq!(&merged.top, &one.top);
            proptest::prop_assert_eq!(merged.count, one.count);
            proptest::prop_assert_eq!(&merged.histogram, &one.histogram);
            proptest::prop_assert_eq!(merged.max, one.max);
            proptest::prop_assert!((merged.sum - one.sum).abs() < 1e-6);
        }
    }

    /// The bytes of format version 3, worked out by hand from docs/STORAGE.md: a change to
    /// the layout must fail here (and bump FORMAT_VERSION).
    #[test]
    fn record_bytes_are_pinned() {
        let mut rec = StatsRecord::new();
        for (doc, pos, v) in [(0, 300, 1.0), (7, 1, 2.0), (2, 5, 0.5)] {
            rec.add(doc, pos, v);
        }
        rec.truncate_top();
        #[rustfmt::skip]
        let want = [
            0x03, // count
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x40, // sum 3.5
            0x00, 0x00, 0x00, 0x40, // max 2.0
            0x03, 0x3C, 0x01, 0x40, 0x01, 0x44, 0x01, // bins 60 (0.5), 64 (1.0), 68 (2.0): 1 each
            0x03, 0x00, // 3 top entries, float16 values
            // 2.0 = 4000: zigzag(0x4000 - 0) = 32768 -> 80 80 02; doc 7, pos 1
            0x80, 0x80, 0x02, 0x07, 0x01,
            // 1.0 = 3C00: zigzag(-1024) = 2047 -> FF 0F; doc 0, pos 300 -> AC 02
            0xFF, 0x0F, 0x00, 0xAC, 0x02,
            // 0.5 = 3800: zigzag(-1024) again; doc 2, pos 5
            0xFF, 0x0F, 0x02, 0x05,
        ];
        assert_eq!(rec.encode(), want);
        assert_eq!(StatsRecord::decode(&want).unwrap(), rec);
    }

    proptest::proptest! {
        /// Any record comes back from its bytes exactly: float16 values (kind 0), and any
        /// other float32 (kind 1), negative ones and large docs and positions included.
        #[test]
        fn records_round_trip(
            acts in proptest::collection::vec((proptest::prelude::any::<u32>(), proptest::prelude::any::<u32>(), -65_000f32..65_000f32), 0..400),
            halves in proptest::prelude::any::<bool>(),
        ) {
            let mut rec = StatsRecord::new();
            for &(d, p, v) in &acts {
                let v = if halves { f16::from_f32(v).to_f32() } else { v };
                rec.add(d, p, v);
            }
            rec.truncate_top();
            let bytes = rec.encode();
            proptest::prop_assert_eq!(StatsRecord::decode(&bytes).unwrap(), rec);
        }

        /// Damaged bytes are an error, never a panic.
        #[test]
        fn damaged_records_do_not_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = StatsRecord::decode(&bytes);
            let _ = decode_v2(&bytes);
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
