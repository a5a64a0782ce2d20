//! Block encodings of activation runs. A block holds many activations under one RocksDB key.
//! Positions and features are deltas in Rice codes, bit-packed; a float16 value is split into its
//! high byte (sign, exponent, two mantissa bits: skewed), coded in a few bits next to its
//! position, and its low byte (near random), stored raw in a plane at the block's end. The code
//! parameters are chosen per block by the encoder. docs/STORAGE.md specifies the bytes.

use crate::{Error, Result};
use half::f16;

/// Largest magnitude a stored activation can have (float16's largest finite value).
pub const MAX_STORED_VALUE: f32 = 65504.0;

/// Rounds a value to what the store keeps, so that every computation uses stored values.
pub fn stored_value(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// A Rice quotient of this size or more is written as an escape: this many zero bits, a one
/// bit, then the value in 32 bits.
const RICE_ESCAPE: u32 = 16;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends bits least significant first: bit `i` of the stream is bit `i % 8` of byte `i / 8`.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Bits in `acc`, always < 32 between calls.
    n: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// Writes `v`, which fits in `width` ≤ 32 bits.
    #[inline(always)]
    fn bits(&mut self, v: u64, width: u32) {
        self.acc |= v << self.n;
        self.n += width;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    #[inline(always)]
    fn rice(&mut self, v: u32, k: u32) {
        let q = v >> k;
        if q < RICE_ESCAPE {
            let low = u64::from(v) & ((1u64 << k) - 1);
            if q + 1 + k <= 32 {
                self.bits((low << (q + 1)) | (1 << q), q + 1 + k);
            } else {
                self.bits(1 << q, q + 1);
                self.bits(low, k);
            }
        } else {
            self.bits(1 << RICE_ESCAPE, RICE_ESCAPE + 1);
            self.bits(u64::from(v), 32);
        }
    }

    /// Pads with zero bits to a byte boundary.
    fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    /// Bytes of `buf` counted in `n`.
    at: usize,
    /// Bits not yet read, from bit 0; above bit `n` it may hold copies of the next bytes.
    acc: u64,
    n: u32,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        BitReader {
            buf,
            at: 0,
            acc: 0,
            n: 0,
        }
    }

    /// Leaves at least 56 bits in `acc`, or all that remain.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.buf.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            self.acc |= word << self.n;
            let take = (63 - self.n) >> 3;
            self.at += take as usize;
            self.n += 8 * take;
        } else {
            while self.n <= 56 {
                let Some(&b) = self.buf.get(self.at) else {
                    return;
                };
                self.acc |= u64::from(b) << self.n;
                self.at += 1;
                self.n += 8;
            }
        }
    }

    /// Reads `width` ≤ 32 bits.
    #[inline(always)]
    fn bits(&mut self, width: u32) -> Result<u32> {
        if self.n < width {
            self.refill();
            if self.n < width {
                return Err(corrupt("bits run past their region"));
            }
        }
        let v = (self.acc & ((1u64 << width) - 1)) as u32;
        self.acc >>= width;
        self.n -= width;
        Ok(v)
    }

    #[inline(always)]
    fn rice(&mut self, k: u32) -> Result<u32> {
        if self.n <= RICE_ESCAPE + 32 {
            self.refill();
        }
        let q = self.acc.trailing_zeros();
        if q > RICE_ESCAPE || q >= self.n {
            return Err(corrupt("bad Rice code"));
        }
        if q == RICE_ESCAPE {
            self.acc >>= q + 1;
            self.n -= q + 1;
            return self.bits(32);
        }
        let width = q + 1 + k;
        if width > self.n {
            return Err(corrupt("bits run past their region"));
        }
        let low = ((self.acc >> (q + 1)) & ((1u64 << k) - 1)) as u32;
        self.acc >>= width;
        self.n -= width;
        Ok((q << k) | low)
    }

    /// Checks that exactly the region was read, but for zero padding bits in its last byte.
    fn finish(&self) -> Result<()> {
        if self.at == self.buf.len() && self.n < 8 && self.acc == 0 {
            Ok(())
        } else {
            Err(corrupt("bit region has trailing bits"))
        }
    }
}

/// Byte reader for the varints of the headers.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

/// Why a varint could not be read.
pub(crate) enum VarintError {
    /// The bytes ended inside it.
    Truncated,
    /// More than 10 bytes: not a u64.
    TooLong,
}

/// Reads the LEB128 varint at `*at` (7 bits a byte, low first) and moves `*at` past it.
pub(crate) fn read_varint(buf: &[u8], at: &mut usize) -> std::result::Result<u64, VarintError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or(VarintError::Truncated)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(VarintError::TooLong)
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        read_varint(self.buf, &mut self.at).map_err(|e| match e {
            VarintError::Truncated => corrupt("block ends early"),
            VarintError::TooLong => corrupt("varint longer than 10 bytes"),
        })
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .buf
            .get(self.at)
            .ok_or_else(|| corrupt("block ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn rice_param(&mut self) -> Result<u32> {
        let k = u32::from(self.byte()?);
        if k > 31 {
            return Err(corrupt("Rice parameter above 31"));
        }
        Ok(k)
    }

    fn high_code(&mut self) -> Result<HighCode> {
        let base = self.byte()?;
        let width = u32::from(self.byte()?);
        if width > 8 {
            return Err(corrupt("high-byte width above 8"));
        }
        Ok(HighCode { base, width })
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("activation block: {what}"))
}

/// The Rice parameter that codes `values` in the fewest bits, of the four candidates from two
/// below ⌊log2 mean⌋ (but ≥ 0, ≤ 31) up (ties: the smallest).
fn best_rice(values: &[u32]) -> u8 {
    if values.is_empty() {
        return 0;
    }
    let sum: u64 = values.iter().map(|&v| u64::from(v)).sum();
    let mean = sum / values.len() as u64;
    let guess = 63 - mean.max(1).leading_zeros();
    let first = guess.saturating_sub(2).min(28);
    let n = values.len() as u64;
    let mut best = (u64::MAX, 0u32);
    for k in first..first + 4 {
        let (quotients, escapes) = rice_quotients(values, k);
        let coded = n - escapes;
        let cost = quotients + coded * u64::from(1 + k) + escapes * u64::from(RICE_ESCAPE + 1 + 32);
        if cost < best.0 {
            best = (cost, k);
        }
    }
    best.1 as u8
}

/// The sum of the Rice quotients of `values` with parameter `k` that are coded in unary, and
/// how many are escapes instead. One pass per candidate, branch-free, in 32-bit lanes over
/// chunks small enough not to overflow them, so that it vectorises (costing the four
/// candidates per value in one branchy pass was 5% of an ingest's samples).
fn rice_quotients(values: &[u32], k: u32) -> (u64, u64) {
    const CHUNK: usize = 1 << 16; // 2^16 quotients < 16 each sum to < 2^20
    let (mut quotients, mut escapes) = (0u64, 0u64);
    for chunk in values.chunks(CHUNK) {
        let (mut q_sum, mut esc) = (0u32, 0u32);
        for &v in chunk {
            let q = v >> k;
            let coded = q < RICE_ESCAPE;
            q_sum = q_sum.wrapping_add(if coded { q } else { 0 });
            esc = esc.wrapping_add(u32::from(!coded));
        }
        quotients += u64::from(q_sum);
        escapes += u64::from(esc);
    }
    (quotients, escapes)
}

/// How a block codes the high bytes of its float16 values: a high byte `h` with
/// `0 ≤ h − base < 2^width − 1` is `h − base` in `width` bits; any other is `width` one bits
/// (the escape), then `h` in 8 bits.
#[derive(Clone, Copy)]
struct HighCode {
    base: u8,
    width: u32,
}

impl HighCode {
    /// The code that takes the fewest bits for these high bytes (ties: the narrowest width,
    /// then the highest base).
    fn choose(highs: impl Iterator<Item = u8>) -> HighCode {
        let mut below = [0u64; 257]; // below[i]: how many high bytes are < i
        for h in highs {
            below[h as usize + 1] += 1;
        }
        for i in 1..257 {
            below[i] += below[i - 1];
        }
        let n = below[256];
        // Windows that miss every high byte hold none of them and never win once one that holds
        // some is seen, so with data only bases from `lowest + 1 − span` to `highest` are tried
        // (the same choice, ties included, as trying all; 11% of ingest instructions before).
        let lowest = below.iter().position(|&c| c > 0).map_or(0, |i| i - 1);
        let highest = below
            .iter()
            .position(|&c| c == n)
            .map_or(256, |i| i.saturating_sub(1));
        let mut best = (u64::MAX, HighCode { base: 0, width: 8 });
        for width in 0..=8u32 {
            let span = (1usize << width) - 1;
            let (mut inside, mut base) = (0u64, 0usize);
            let bases = if n == 0 {
                0..=256 - span
            } else if span == 0 {
                256..=256 // an empty window: the full scan ends on base 256
            } else {
                (lowest + 1).saturating_sub(span)..=highest.min(256 - span)
            };
            for b in bases {
                let c = below[b + span] - below[b];
                if c >= inside {
                    (inside, base) = (c, b);
                }
            }
            let cost = n * u64::from(width) + 8 * (n - inside);
            if cost < best.0 {
                let base = base.min(255) as u8;
                best = (cost, HighCode { base, width });
            }
        }
        best.1
    }

    #[inline(always)]
    fn put(self, w: &mut BitWriter, h: u8) {
        let escape = (1u32 << self.width) - 1;
        let d = u32::from(h.wrapping_sub(self.base));
        if h >= self.base && d < escape {
            w.bits(u64::from(d), self.width);
        } else {
            w.bits(
                u64::from(escape) | (u64::from(h) << self.width),
                self.width + 8,
            );
        }
    }

    #[inline(always)]
    fn get(self, r: &mut BitReader) -> Result<u8> {
        let escape = (1u32 << self.width) - 1;
        let d = r.bits(self.width)?;
        if d == escape {
            Ok(r.bits(8)? as u8)
        } else {
            // d < 2^width − 1 ≤ 254, and base + d may not pass 255.
            u8::try_from(u32::from(self.base) + d).map_err(|_| corrupt("high byte overflows"))
        }
    }
}

/// A value's float16 bits (`f16::from_f32(v).to_bits()`). Stored values are exact normal
/// float16s, whose bits are the float32's with the exponent rebiased and the 13 low mantissa
/// bits dropped: that case is done inline, the rest by `half` (whose per-call CPU feature
/// dispatch was 3% of an ingest's samples).
#[inline(always)]
fn half_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let exponent = (bits >> 23) & 0xff;
    // float16's normal exponents, 1..=30, are float32's 113..=142.
    if (113..=142).contains(&exponent) && bits & 0x1fff == 0 {
        let sign = (bits >> 16) & 0x8000;
        (sign | ((exponent - 112) << 10) | ((bits >> 13) & 0x3ff)) as u16
    } else {
        f16::from_f32(v).to_bits()
    }
}

#[inline(always)]
fn value_of(low: u8, high: u8) -> f32 {
    f16::from_le_bytes([low, high]).to_f32()
}

/// Encodes a feature's activations, sorted by (doc, pos) without duplicates: `n`, the code
/// parameters, then per entry the doc delta, the position (or the gap to the previous position
/// within the same doc) and the value's high byte, bit-packed; then the `n` low bytes.
pub fn encode_feature_block(entries: &[(u32, u32, f32)]) -> Vec<u8> {
    let halves: Vec<u16> = entries.iter().map(|e| half_bits(e.2)).collect();
    let (mut doc_deltas, mut gaps, mut new_doc_pos) = (Vec::new(), Vec::new(), Vec::new());
    doc_deltas.reserve(entries.len());
    gaps.reserve(entries.len());
    let mut prev = (0u32, 0u32);
    for (i, &(doc, pos, _)) in entries.iter().enumerate() {
        doc_deltas.push(doc - prev.0);
        if i > 0 && doc == prev.0 {
            gaps.push(pos - prev.1 - 1);
        } else {
            new_doc_pos.push(pos);
        }
        prev = (doc, pos);
    }
    let (k_doc, k_gap, k_pos) = (
        best_rice(&doc_deltas),
        best_rice(&gaps),
        best_rice(&new_doc_pos),
    );
    let high = HighCode::choose(halves.iter().map(|&h| (h >> 8) as u8));
    let mut out = Vec::with_capacity(entries.len() * 3 + 8);
    put_varint(&mut out, entries.len() as u64);
    out.extend_from_slice(&[k_doc, k_gap, k_pos, high.base, high.width as u8]);
    let mut w = BitWriter::new(&mut out);
    let (mut gaps, mut new_doc_pos) = (gaps.into_iter(), new_doc_pos.into_iter());
    for (i, (&doc_delta, &h)) in doc_deltas.iter().zip(&halves).enumerate() {
        w.rice(doc_delta, u32::from(k_doc));
        if i > 0 && doc_delta == 0 {
            w.rice(gaps.next().unwrap_or(0), u32::from(k_gap));
        } else {
            w.rice(new_doc_pos.next().unwrap_or(0), u32::from(k_pos));
        }
        high.put(&mut w, (h >> 8) as u8);
    }
    w.finish();
    out.extend(halves.iter().map(|&h| h as u8));
    out
}

/// Decodes [`encode_feature_block`], appending `(doc, pos, value)` to `out`.
pub fn decode_feature_block(buf: &[u8], out: &mut Vec<(u32, u32, f32)>) -> Result<()> {
    let mut r = Reader { buf, at: 0 };
    let n = r.varint()? as usize;
    let (k_doc, k_gap, k_pos) = (r.rice_param()?, r.rice_param()?, r.rice_param()?);
    let high = r.high_code()?;
    let lows_at = buf
        .len()
        .checked_sub(n)
        .filter(|&at| at >= r.at)
        .ok_or_else(|| corrupt("entry count exceeds block size"))?;
    let mut bits = BitReader::new(&buf[r.at..lows_at]);
    out.reserve(n);
    let (mut doc, mut pos) = (0u32, 0u32);
    for (i, &low) in buf[lows_at..].iter().enumerate() {
        let doc_delta = bits.rice(k_doc)?;
        doc = doc
            .checked_add(doc_delta)
            .ok_or_else(|| corrupt("doc overflows"))?;
        pos = if i > 0 && doc_delta == 0 {
            let gap = bits.rice(k_gap)?;
            pos.checked_add(gap)
                .and_then(|p| p.checked_add(1))
                .ok_or_else(|| corrupt("pos overflows"))?
        } else {
            bits.rice(k_pos)?
        };
        out.push((doc, pos, value_of(low, high.get(&mut bits)?)));
    }
    bits.finish()
}

/// One token's active features, sorted by feature.
pub type TokenRow = (u32, Vec<(u32, f32)>);

/// Encodes one document's tokens, given as `(pos, features)` rows (ingest passes slices of its
/// sorted entries, without building a vector per token). A header first — `n_positions`, the
/// code parameters, then per position `pos` (the first absolute, then deltas), `n_features` and
/// `run_bytes` (the byte length of its run) — so that one position can be read without decoding
/// the others; then the runs: per position its features (the first absolute, then gaps) and the
/// high bytes of their values, bit-packed; then the low bytes of all values, in position order.
pub fn encode_token_rows<R, F>(rows: R) -> Vec<u8>
where
    R: IntoIterator<Item = (u32, F)>,
    F: IntoIterator<Item = (u32, f32)>,
{
    let (mut codes, mut halves, mut positions) = (Vec::new(), Vec::new(), Vec::new());
    for (pos, feats) in rows {
        let before = codes.len();
        let mut prev = None::<u32>;
        for (f, v) in feats {
            codes.push(prev.map_or(f, |p| f - p - 1));
            prev = Some(f);
            halves.push(half_bits(v));
        }
        positions.push((pos, codes.len() - before));
    }
    let total = codes.len();
    let k = best_rice(&codes);
    let high = HighCode::choose(halves.iter().map(|&h| (h >> 8) as u8));
    let mut header = Vec::with_capacity(4 + 4 * positions.len());
    put_varint(&mut header, positions.len() as u64);
    header.extend_from_slice(&[k, high.base, high.width as u8]);
    let mut runs = Vec::with_capacity(2 * total);
    let (mut at, mut prev_pos) = (0usize, 0u32);
    for (i, &(pos, n_features)) in positions.iter().enumerate() {
        let run_start = runs.len();
        let mut w = BitWriter::new(&mut runs);
        let end = at + n_features;
        for (&code, &h) in codes[at..end].iter().zip(&halves[at..end]) {
            w.rice(code, u32::from(k));
            high.put(&mut w, (h >> 8) as u8);
        }
        w.finish();
        at = end;
        put_varint(
            &mut header,
            u64::from(if i == 0 { pos } else { pos - prev_pos }),
        );
        prev_pos = pos;
        put_varint(&mut header, n_features as u64);
        put_varint(&mut header, (runs.len() - run_start) as u64);
    }
    let mut out = header;
    out.reserve(runs.len() + total);
    out.extend_from_slice(&runs);
    out.extend(halves.iter().map(|&h| h as u8));
    out
}

/// One position's entry in a token block's header.
struct PositionEntry {
    pos: u32,
    n_features: usize,
    run_bytes: usize,
}

/// A token block's header, checked against the block's length.
struct TokenHeader {
    k: u32,
    high: HighCode,
    entries: Vec<PositionEntry>,
    /// Where the runs start.
    runs_at: usize,
    /// Where the low bytes start.
    lows_at: usize,
}

fn read_token_header(buf: &[u8]) -> Result<TokenHeader> {
    let mut r = Reader { buf, at: 0 };
    let n = r.varint()? as usize;
    if n > buf.len() {
        return Err(corrupt("position count exceeds block size"));
    }
    let k = r.rice_param()?;
    let high = r.high_code()?;
    let mut entries = Vec::with_capacity(n);
    let (mut pos, mut total, mut run_total) = (0u32, 0usize, 0usize);
    for i in 0..n {
        let d = r.u32_varint()?;
        pos = if i == 0 {
            d
        } else if d == 0 {
            return Err(corrupt("positions not increasing"));
        } else {
            pos.checked_add(d).ok_or_else(|| corrupt("pos overflows"))?
        };
        let n_features = r.varint()? as usize;
        let run_bytes = r.varint()? as usize;
        if n_features > buf.len() || run_bytes > buf.len() {
            return Err(corrupt("feature run exceeds block size"));
        }
        total += n_features;
        run_total += run_bytes;
        entries.push(PositionEntry {
            pos,
            n_features,
            run_bytes,
        });
    }
    if r.at + run_total + total != buf.len() {
        return Err(corrupt("header does not match block length"));
    }
    Ok(TokenHeader {
        k,
        high,
        entries,
        runs_at: r.at,
        lows_at: r.at + run_total,
    })
}

impl Reader<'_> {
    fn u32_varint(&mut self) -> Result<u32> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("varint exceeds u32"))
    }
}

/// Decodes one run of `lows.len()` features spanning exactly `run`, pairing each with its value.
fn read_run(h: &TokenHeader, run: &[u8], lows: &[u8], out: &mut Vec<(u32, f32)>) -> Result<()> {
    let mut bits = BitReader::new(run);
    out.reserve(lows.len());
    let mut f = 0u32;
    for (j, &low) in lows.iter().enumerate() {
        let code = bits.rice(h.k)?;
        f = if j == 0 {
            code
        } else {
            f.checked_add(code)
                .and_then(|f| f.checked_add(1))
                .ok_or_else(|| corrupt("feature overflows"))?
        };
        out.push((f, value_of(low, h.high.get(&mut bits)?)));
    }
    bits.finish()
}

/// Decodes [`encode_token_rows`].
pub fn decode_token_block(buf: &[u8]) -> Result<Vec<TokenRow>> {
    let h = read_token_header(buf)?;
    let (mut run_at, mut low_at) = (h.runs_at, h.lows_at);
    let mut rows = Vec::with_capacity(h.entries.len());
    for e in &h.entries {
        let mut feats = Vec::new();
        let run = &buf[run_at..run_at + e.run_bytes];
        read_run(&h, run, &buf[low_at..low_at + e.n_features], &mut feats)?;
        rows.push((e.pos, feats));
        run_at += e.run_bytes;
        low_at += e.n_features;
    }
    Ok(rows)
}

/// The active features of one position in a token block (none if the position is absent),
/// decoding only the header and that position's run.
pub fn decode_token_position(buf: &[u8], pos: u32) -> Result<Vec<(u32, f32)>> {
    let h = read_token_header(buf)?;
    let (mut run_at, mut low_at) = (h.runs_at, h.lows_at);
    for e in &h.entries {
        if e.pos == pos {
            let mut feats = Vec::new();
            let run = &buf[run_at..run_at + e.run_bytes];
            read_run(&h, run, &buf[low_at..low_at + e.n_features], &mut feats)?;
            return Ok(feats);
        }
        if e.pos > pos {
            break;
        }
        run_at += e.run_bytes;
        low_at += e.n_features;
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`encode_token_rows`] over owned rows, the way the tests build them.
    fn encode_token_block(rows: &[TokenRow]) -> Vec<u8> {
        encode_token_rows(
            rows.iter()
                .map(|(pos, feats)| (*pos, feats.iter().copied())),
        )
    }

    /// `HighCode::choose` as first written: every base tried at every width.
    fn choose_by_full_scan(highs: &[u8]) -> (u8, u32) {
        let mut below = [0u64; 257];
        for &h in highs {
            below[h as usize + 1] += 1;
        }
        for i in 1..257 {
            below[i] += below[i - 1];
        }
        let n = below[256];
        let mut best = (u64::MAX, (0u8, 8u32));
        for width in 0..=8u32 {
            let span = (1usize << width) - 1;
            let (mut inside, mut base) = (0u64, 0usize);
            for b in 0..=256 - span {
                let c = below[b + span] - below[b];
                if c >= inside {
                    (inside, base) = (c, b);
                }
            }
            let cost = n * u64::from(width) + 8 * (n - inside);
            if cost < best.0 {
                best = (cost, (base.min(255) as u8, width));
            }
        }
        best.1
    }

    /// Every float16, through float32 and back, and float32s at random: the inline conversion
    /// gives `half`'s bits.
    #[test]
    fn half_bits_agree_with_half_on_every_float16() {
        for h in 0..=u16::MAX {
            let v = f16::from_bits(h).to_f32();
            assert_eq!(
                half_bits(v),
                f16::from_f32(v).to_bits(),
                "float16 bits {h:#06x}"
            );
        }
    }

    /// The Rice parameter's cost, counted the slow way: the bits a `BitWriter` actually writes.
    fn rice_bits(values: &[u32], k: u32) -> usize {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        for &v in values {
            w.rice(v, k);
        }
        let pending = w.n as usize;
        out.len() * 8 + pending
    }

    proptest! {
        #[test]
        fn half_bits_agree_with_half(bits in any::<u32>()) {
            let v = f32::from_bits(bits);
            prop_assert_eq!(half_bits(v), f16::from_f32(v).to_bits());
        }

        #[test]
        fn best_rice_writes_the_fewest_bits_of_its_candidates(
            small in proptest::collection::vec(0u32..64, 1..300),
            wide in proptest::collection::vec(any::<u32>(), 1..50),
            skewed in proptest::collection::vec((0u32..8, 0u32..30), 1..300),
        ) {
            let skewed: Vec<u32> = skewed.iter().map(|&(a, s)| a << s).collect();
            for values in [&small, &wide, &skewed] {
                let k = u32::from(best_rice(values));
                let mean = values.iter().map(|&v| u64::from(v)).sum::<u64>() / values.len() as u64;
                let first = (63 - mean.max(1).leading_zeros()).saturating_sub(2).min(28);
                let costs: Vec<usize> = (first..first + 4).map(|c| rice_bits(values, c)).collect();
                let fewest = *costs.iter().min().unwrap();
                let want = first + costs.iter().position(|&c| c == fewest).unwrap() as u32;
                prop_assert_eq!(k, want);
            }
        }
    }

    proptest! {
        #[test]
        fn high_code_choice_equals_the_full_scan(
            highs in proptest::collection::vec(any::<u8>(), 0..300),
            narrow in proptest::collection::vec(60u8..68, 0..300),
        ) {
            for case in [&highs, &narrow] {
                let code = HighCode::choose(case.iter().copied());
                prop_assert_eq!((code.base, code.width), choose_by_full_scan(case));
            }
        }
    }
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn feature_block_round_trips(mut raw in proptest::collection::btree_set((0u32..5000, 0u32..300), 0..200),
                                     vals in proptest::collection::vec(0f32..1000.0, 200)) {
            let entries: Vec<(u32, u32, f32)> = std::mem::take(&mut raw).into_iter().zip(vals.iter())
                .map(|((d, p), v)| (d, p, stored_value(*v))).collect();
            let mut back = Vec::new();
            decode_feature_block(&encode_feature_block(&entries), &mut back).unwrap();
            prop_assert_eq!(back, entries);
        }

        #[test]
        fn token_block_round_trips(positions in proptest::collection::btree_map(0u32..500,
                                       proptest::collection::btree_set(0u32..100_000, 1..40), 0..30)) {
            let rows: Vec<TokenRow> = positions.into_iter()
                .map(|(p, fs)| (p, fs.into_iter().map(|f| (f, stored_value(f as f32 / 7.0))).collect()))
                .collect();
            prop_assert_eq!(decode_token_block(&encode_token_block(&rows)).unwrap(), rows);
        }

        #[test]
        fn one_position_decodes_like_the_whole_block(positions in proptest::collection::btree_map(0u32..500,
                                       proptest::collection::btree_set(0u32..100_000, 1..40), 0..30),
                                       probe in 0u32..500) {
            let rows: Vec<TokenRow> = positions.into_iter()
                .map(|(p, fs)| (p, fs.into_iter().map(|f| (f, stored_value(f as f32 / 3.0))).collect()))
                .collect();
            let block = encode_token_block(&rows);
            for (pos, feats) in &rows {
                prop_assert_eq!(&decode_token_position(&block, *pos).unwrap(), feats);
            }
            let want = rows.iter().find(|r| r.0 == probe).map(|r| r.1.clone()).unwrap_or_default();
            prop_assert_eq!(decode_token_position(&block, probe).unwrap(), want);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            let _ = decode_feature_block(&bytes, &mut out);
            let _ = decode_token_block(&bytes);
            let _ = decode_token_position(&bytes, 3);
        }
    }

    proptest! {
        #[test]
        fn damaged_blocks_never_panic(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..4),
                                      cut in 0usize..400) {
            let rows: Vec<TokenRow> = (0..6u32)
                .map(|p| (p * 3, (0..9u32).map(|j| (j * 97 + p, stored_value(j as f32 - 3.5))).collect()))
                .collect();
            let entries: Vec<(u32, u32, f32)> =
                (0..40u32).map(|i| (i / 5 * 7, i % 5 * 11, stored_value(i as f32 * 0.3))).collect();
            for mut block in [encode_token_block(&rows), encode_feature_block(&entries)] {
                for &(at, x) in &flips {
                    let len = block.len();
                    block[at % len] ^= x;
                }
                block.truncate(cut.max(block.len() / 2));
                let mut out = Vec::new();
                let _ = decode_feature_block(&block, &mut out);
                let _ = decode_token_block(&block);
                let _ = decode_token_position(&block, 3);
            }
        }
    }

    #[test]
    fn extremes_round_trip() {
        let max = MAX_STORED_VALUE;
        let rows: Vec<TokenRow> = vec![
            (0, vec![(0, -max), (1, 0.0), (u32::MAX - 1, max)]),
            (u32::MAX, vec![(u32::MAX, -0.0)]),
        ];
        assert_eq!(
            decode_token_block(&encode_token_block(&rows)).unwrap(),
            rows
        );
        assert_eq!(
            decode_token_position(&encode_token_block(&rows), u32::MAX).unwrap(),
            rows[1].1
        );
        assert_eq!(
            decode_token_block(&encode_token_block(&[])).unwrap(),
            vec![]
        );
        let entries = vec![
            (0, u32::MAX, max),
            (u32::MAX, 0, 1e-7),
            (u32::MAX, u32::MAX, -1.5),
        ];
        let entries: Vec<_> = entries
            .into_iter()
            .map(|(d, p, v)| (d, p, stored_value(v)))
            .collect();
        let mut back = Vec::new();
        decode_feature_block(&encode_feature_block(&entries), &mut back).unwrap();
        assert_eq!(back, entries);
        back.clear();
        decode_feature_block(&encode_feature_block(&[]), &mut back).unwrap();
        assert!(back.is_empty());
    }

    // The bytes of format version 2, worked out by hand from docs/STORAGE.md (which walks
    // through both): a change to either encoding must fail here (and bump FORMAT_VERSION).
    #[test]
    fn token_block_bytes_are_pinned() {
        let rows: Vec<TokenRow> = vec![(3, vec![(5, 1.0), (300, 2.0)]), (7, vec![(1, 0.5)])];
        // Feature codes 5, 300 - 5 - 1 = 294, 1 (mean 100): k = 4..7 cost 59, 27, 25, 26 bits,
        // so k = 6. High bytes 3C 40 38 fit a 15-byte window: width 4 (12 bits; width 3 needs
        // 17), highest such base 38.
        #[rustfmt::skip]
        let want = [
            0x02, // positions
            0x06, 0x38, 0x04, // k 6, high base 0x38, high width 4
            0x03, 0x02, 0x04, // pos 3, 2 features, 4 run bytes
            0x04, 0x01, 0x02, // pos 3 + 4, 1 feature, 2 run bytes
            // bits in stream order (each field lowest bit first; a byte takes 8 bits from its
            // lowest bit: 1101 0000 -> 0x0B): 1 101000 (5: q 0, then 6 low bits) 0010 (3C - 38),
            // 00001 011001 (294: q 4, then 294 & 63 = 38) 0001 (40 - 38), padding
            0x0B, 0x82, 0x26, 0x02,
            // 1 100000 (1: q 0, then 6 low bits) 0000 (38 - 38), padding
            0x03, 0x00,
            0x00, 0x00, 0x00, // low bytes of f16 1.0, 2.0, 0.5 (3C00, 4000, 3800)
        ];
        assert_eq!(encode_token_block(&rows), want);
        assert_eq!(decode_token_block(&want).unwrap(), rows);
    }

    #[test]
    fn feature_block_bytes_are_pinned() {
        let entries = vec![(0, 5, 1.0), (0, 9, 2.0), (2, 1, 0.5)];
        // Doc deltas 0 0 2 (mean 0): k 0..3 cost 5, 7, 9, 12 bits: k 0. Gaps within a doc:
        // 9 - 5 - 1 = 3: k 0..3 cost 4, 3, 3, 4 bits, the first smallest wins: k 1. Positions in
        // a new doc 5, 1: k 0..3 cost 8, 6, 7, 8 bits: k 1. High bytes as in the token block.
        #[rustfmt::skip]
        let want = [
            0x03, // entries
            0x00, 0x01, 0x01, 0x38, 0x04, // k_doc 0, k_gap 1, k_pos 1, high base 38, width 4
            // bits in stream order: 1 (doc +0) 001 1 (pos 5: q 2, low bit 1) 0010 (high 3C - 38),
            // 1 (doc +0) 01 1 (gap 3: q 1, low bit 1) 0001 (40 - 38),
            // 001 (doc +2) 1 1 (pos 1: q 0, low bit 1) 0000 (38 - 38), padding
            0x99, 0x1A, 0x39, 0x00,
            0x00, 0x00, 0x00, // low bytes of f16 1.0, 2.0, 0.5
        ];
        assert_eq!(encode_feature_block(&entries), want);
        let mut back = Vec::new();
        decode_feature_block(&want, &mut back).unwrap();
        assert_eq!(back, entries);
    }
}
