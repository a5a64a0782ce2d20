//! Block encodings of activation runs. A block holds many activations under one RocksDB key:
//! positions as LEB128 varints of deltas, values as a column of little-endian float16 at the end
//! (so that the column compresses well). docs/ARCHITECTURE.md specifies the bytes.

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
        Ok(bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
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

fn put_values(out: &mut Vec<u8>, values: impl Iterator<Item = f32>) {
    for v in values {
        out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
    }
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

/// Encodes one document's tokens: `n_positions`, then per position `pos delta` and `n_features`,
/// then per feature `feature delta`; then all values as float16.
pub fn encode_token_block(rows: &[TokenRow]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, rows.len() as u64);
    let mut prev_pos = 0u32;
    for (i, (pos, feats)) in rows.iter().enumerate() {
        put_varint(
            &mut out,
            u64::from(if i == 0 { *pos } else { pos - prev_pos }),
        );
        prev_pos = *pos;
        put_varint(&mut out, feats.len() as u64);
        let mut prev_f = 0u32;
        for (j, &(f, _)) in feats.iter().enumerate() {
            put_varint(&mut out, u64::from(if j == 0 { f } else { f - prev_f }));
            prev_f = f;
        }
    }
    put_values(
        &mut out,
        rows.iter().flat_map(|(_, feats)| feats.iter().map(|x| x.1)),
    );
    out
}

/// Decodes [`encode_token_block`].
pub fn decode_token_block(buf: &[u8]) -> Result<Vec<TokenRow>> {
    let mut r = Reader { buf, at: 0 };
    let n = r.varint()? as usize;
    if n > buf.len() {
        return Err(corrupt("position count exceeds block size"));
    }
    let mut rows: Vec<(u32, Vec<u32>)> = Vec::with_capacity(n);
    let mut pos = 0u32;
    let mut total = 0usize;
    for i in 0..n {
        let d = r.u32_varint()?;
        pos = if i == 0 {
            d
        } else {
            pos.checked_add(d).ok_or_else(|| corrupt("pos overflows"))?
        };
        let m = r.varint()? as usize;
        if m > buf.len() {
            return Err(corrupt("feature count exceeds block size"));
        }
        let mut feats = Vec::with_capacity(m);
        let mut f = 0u32;
        for j in 0..m {
            let d = r.u32_varint()?;
            f = if j == 0 {
                d
            } else {
                f.checked_add(d)
                    .ok_or_else(|| corrupt("feature overflows"))?
            };
            feats.push(f);
        }
        total += m;
        rows.push((pos, feats));
    }
    let values = r.f16_column(total)?;
    r.finish()?;
    let mut values = values.into_iter();
    Ok(rows
        .into_iter()
        .map(|(p, feats)| {
            (
                p,
                feats
                    .into_iter()
                    .map(|f| (f, values.next().unwrap_or(0.0)))
                    .collect(),
            )
        })
        .collect())
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
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            let _ = decode_feature_block(&bytes, &mut out);
            let _ = decode_token_block(&bytes);
        }
    }
}
