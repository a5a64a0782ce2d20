//! Block encodings of activation runs. A block holds many activations under one RocksDB key:
//! positions as LEB128 varints of deltas, values as float16 at the end in two byte planes — all
//! low bytes, then all high bytes — so that the compressor sees the skewed sign/exponent bytes
//! apart from the near-random mantissa bytes. docs/ARCHITECTURE.md specifies the bytes.

use crate::{Error, Result};
use half::f16;

/// Largest magnitude a stored activation can have (float16's largest finite value).
pub const MAX_STORED_VALUE: f32 = 65504.0;

/// Rounds a value to what the store keeps, so that every computation uses stored values.
pub fn stored_value(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.at)
                .ok_or_else(|| corrupt("varint runs past block end"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint longer than 10 bytes"))
    }

    fn u32_varint(&mut self) -> Result<u32> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("varint exceeds u32"))
    }

    fn f16_column(&mut self, n: usize) -> Result<Vec<f32>> {
        let bytes = self
            .buf
            .get(self.at..self.at + 2 * n)
            .ok_or_else(|| corrupt("value column runs past block end"))?;
        self.at += 2 * n;
        let (low, high) = bytes.split_at(n);
        Ok(low
            .iter()
            .zip(high)
            .map(|(&l, &h)| f16_from_planes(l, h))
            .collect())
    }

    fn finish(&self) -> Result<()> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes after block"))
        }
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("activation block: {what}"))
}

fn f16_from_planes(low: u8, high: u8) -> f32 {
    f16::from_le_bytes([low, high]).to_f32()
}

/// Appends the values as float16 in two planes: every low byte, then every high byte.
fn put_values(out: &mut Vec<u8>, values: impl Iterator<Item = f32> + Clone) {
    let start = out.len();
    out.extend(values.clone().map(|v| f16::from_f32(v).to_le_bytes()[0]));
    let n = out.len() - start;
    out.extend(values.map(|v| f16::from_f32(v).to_le_bytes()[1]));
    debug_assert_eq!(out.len() - start, 2 * n);
}

/// Encodes a feature's activations, sorted by (doc, pos) without duplicates:
/// `n`, then per entry `doc − prev_doc`, then `pos` (or `pos − prev_pos` within the same doc), then
/// `n` float16 values.
pub fn encode_feature_block(entries: &[(u32, u32, f32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 5 + 4);
    put_varint(&mut out, entries.len() as u64);
    let (mut prev_doc, mut prev_pos) = (0u32, 0u32);
    for (i, &(doc, pos, _)) in entries.iter().enumerate() {
        let doc_delta = doc - prev_doc;
        put_varint(&mut out, u64::from(doc_delta));
        let same_doc = i > 0 && doc_delta == 0;
        put_varint(
            &mut out,
            u64::from(if same_doc { pos - prev_pos } else { pos }),
        );
        (prev_doc, prev_pos) = (doc, pos);
    }
    put_values(&mut out, entries.iter().map(|e| e.2));
    out
}

/// Decodes [`encode_feature_block`], appending `(doc, pos, value)` to `out`.
pub fn decode_feature_block(buf: &[u8], out: &mut Vec<(u32, u32, f32)>) -> Result<()> {
    let mut r = Reader { buf, at: 0 };
    let n = r.varint()? as usize;
    if n > buf.len() {
        return Err(corrupt("entry count exceeds block size"));
    }
    let mut coords = Vec::with_capacity(n);
    let (mut doc, mut pos) = (0u32, 0u32);
    for i in 0..n {
        let doc_delta = r.u32_varint()?;
        let p = r.u32_varint()?;
        doc = doc
            .checked_add(doc_delta)
            .ok_or_else(|| corrupt("doc overflows"))?;
        pos = if i > 0 && doc_delta == 0 {
            pos.checked_add(p).ok_or_else(|| corrupt("pos overflows"))?
        } else {
            p
        };
        coords.push((doc, pos));
    }
    let values = r.f16_column(n)?;
    r.finish()?;
    out.extend(coords.into_iter().zip(values).map(|((d, p), v)| (d, p, v)));
    Ok(())
}

/// One token's active features, sorted by feature.
pub type TokenRow = (u32, Vec<(u32, f32)>);

/// Encodes one document's tokens. A header first — `n_positions`, then per position
/// `pos` (the first absolute, then deltas), `n_features` and `run_bytes` (the byte length of its
/// feature run) — so that one position can be read without decoding the others; then the
/// feature runs (per position, the first feature absolute, then deltas); then all values as
/// float16 planes, in position order.
pub fn encode_token_block(rows: &[TokenRow]) -> Vec<u8> {
    let mut runs = Vec::new();
    let mut header = Vec::new();
    put_varint(&mut header, rows.len() as u64);
    let mut prev_pos = 0u32;
    for (i, (pos, feats)) in rows.iter().enumerate() {
        let run_start = runs.len();
        let mut prev_f = 0u32;
        for (j, &(f, _)) in feats.iter().enumerate() {
            put_varint(&mut runs, u64::from(if j == 0 { f } else { f - prev_f }));
            prev_f = f;
        }
        put_varint(
            &mut header,
            u64::from(if i == 0 { *pos } else { pos - prev_pos }),
        );
        prev_pos = *pos;
        put_varint(&mut header, feats.len() as u64);
        put_varint(&mut header, (runs.len() - run_start) as u64);
    }
    let mut out = header;
    out.extend_from_slice(&runs);
    put_values(
        &mut out,
        rows.iter().flat_map(|(_, feats)| feats.iter().map(|x| x.1)),
    );
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
    entries: Vec<PositionEntry>,
    /// Where the feature runs start.
    runs_at: usize,
    /// Values in the block (the sum of `n_features`).
    total: usize,
}

fn read_token_header(buf: &[u8]) -> Result<TokenHeader> {
    let mut r = Reader { buf, at: 0 };
    let n = r.varint()? as usize;
    if n > buf.len() {
        return Err(corrupt("position count exceeds block size"));
    }
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
    if r.at + run_total + 2 * total != buf.len() {
        return Err(corrupt("header does not match block length"));
    }
    Ok(TokenHeader {
        entries,
        runs_at: r.at,
        total,
    })
}

/// Decodes one feature run of `n` features spanning exactly `bytes`.
fn read_feature_run(bytes: &[u8], n: usize) -> Result<Vec<u32>> {
    let mut r = Reader { buf: bytes, at: 0 };
    let mut feats = Vec::with_capacity(n);
    let mut f = 0u32;
    for j in 0..n {
        let d = r.u32_varint()?;
        f = if j == 0 {
            d
        } else {
            f.checked_add(d)
                .ok_or_else(|| corrupt("feature overflows"))?
        };
        feats.push(f);
    }
    r.finish()?;
    Ok(feats)
}

/// Decodes [`encode_token_block`].
pub fn decode_token_block(buf: &[u8]) -> Result<Vec<TokenRow>> {
    let h = read_token_header(buf)?;
    let values_at = buf.len() - 2 * h.total;
    let (mut run_at, mut value_at) = (h.runs_at, 0usize);
    let mut rows = Vec::with_capacity(h.entries.len());
    for e in &h.entries {
        let feats = read_feature_run(&buf[run_at..run_at + e.run_bytes], e.n_features)?;
        rows.push((e.pos, with_values(buf, values_at, h.total, value_at, feats)));
        run_at += e.run_bytes;
        value_at += e.n_features;
    }
    Ok(rows)
}

/// The active features of one position in a token block (none if the position is absent),
/// decoding only the header and that position's run and values.
pub fn decode_token_position(buf: &[u8], pos: u32) -> Result<Vec<(u32, f32)>> {
    let h = read_token_header(buf)?;
    let (mut run_at, mut value_at) = (h.runs_at, 0usize);
    for e in &h.entries {
        if e.pos == pos {
            let feats = read_feature_run(&buf[run_at..run_at + e.run_bytes], e.n_features)?;
            return Ok(with_values(
                buf,
                buf.len() - 2 * h.total,
                h.total,
                value_at,
                feats,
            ));
        }
        if e.pos > pos {
            break;
        }
        run_at += e.run_bytes;
        value_at += e.n_features;
    }
    Ok(Vec::new())
}

/// Pairs features with their values, which start at value index `first` of the `total` values
/// whose planes begin at `values_at` (lengths were checked with the header).
fn with_values(
    buf: &[u8],
    values_at: usize,
    total: usize,
    first: usize,
    feats: Vec<u32>,
) -> Vec<(u32, f32)> {
    let low = &buf[values_at + first..];
    let high = &buf[values_at + total + first..];
    feats
        .into_iter()
        .enumerate()
        .map(|(i, f)| (f, f16_from_planes(low[i], high[i])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
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

    // The bytes of format version 2, worked out by hand from docs/ARCHITECTURE.md: a change to
    // either encoding must fail here (and bump FORMAT_VERSION).
    #[test]
    fn token_block_bytes_are_pinned() {
        let rows: Vec<TokenRow> = vec![(3, vec![(5, 1.0), (300, 2.0)]), (7, vec![(1, 0.5)])];
        let want = [
            0x02, // positions
            0x03, 0x02, 0x03, // pos 3, 2 features, 3 run bytes
            0x04, 0x01, 0x01, // pos 3 + 4, 1 feature, 1 run byte
            0x05, 0xA7, 0x02, // features 5, +295
            0x01, // feature 1
            0x00, 0x00, 0x00, // low bytes of f16 1.0, 2.0, 0.5
            0x3C, 0x40, 0x38, // high bytes
        ];
        assert_eq!(encode_token_block(&rows), want);
        assert_eq!(decode_token_block(&want).unwrap(), rows);
    }

    #[test]
    fn feature_block_bytes_are_pinned() {
        let entries = vec![(0, 5, 1.0), (0, 9, 2.0), (2, 1, 0.5)];
        let want = [
            0x03, // entries
            0x00, 0x05, // doc 0, pos 5
            0x00, 0x04, // same doc, pos 5 + 4
            0x02, 0x01, // doc 0 + 2, pos 1
            0x00, 0x00, 0x00, // low bytes of f16 1.0, 2.0, 0.5
            0x3C, 0x40, 0x38, // high bytes
        ];
        assert_eq!(encode_feature_block(&entries), want);
        let mut back = Vec::new();
        decode_feature_block(&want, &mut back).unwrap();
        assert_eq!(back, entries);
    }
}
