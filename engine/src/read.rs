//! Reads: documents, top activations, features at a token, statistics, token effects, labels.

use crate::codec::{decode_feature_block, decode_token_position};
use crate::filter::ActivationFilter;
use crate::formats::vocab::VocabMatrix;
use crate::keys::*;
use crate::progress::{check_cancelled, NoProgress, Progress};
use crate::stats::{top_order, StatsRecord, TOP_KEPT};
use crate::store::Store;
use crate::types::*;
use crate::util::{check_limit, MAX_QUANTILES};
use crate::vector::dot;
use crate::{Error, Result};
use std::sync::Arc;

impl Store {
    /// One document; `UnknownDocument` if absent.
    pub fn document(&self, doc: u32) -> Result<Document> {
        self.stored_document(doc)?
            .map(|d| (*d).clone())
            .ok_or(Error::UnknownDocument {
                doc: u64::from(doc),
            })
    }

    pub(crate) fn stored_document(&self, doc: u32) -> Result<Option<Arc<Document>>> {
        if let Some(d) = self
            .docs
            .lock()
            .map_err(|_| crate::store::poisoned())?
            .get(&doc)
        {
            return Ok(Some(d.clone()));
        }
        let Some(bytes) = self.db.get_cf(self.cf(CF_DOCS), doc_key(doc))? else {
            return Ok(None);
        };
        let d = Arc::new(crate::records::decode_document(&bytes, doc)?);
        let mut cache = self.docs.lock().map_err(|_| crate::store::poisoned())?;
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(doc, d.clone());
        Ok(Some(d))
    }

    /// Validates a feature reference, returning its dictionary.
    pub(crate) fn resolve(&self, f: &FeatureRef) -> Result<DictionaryInfo> {
        let info = self.dictionary(&f.dict)?;
        if f.index >= info.d_sae {
            return Err(Error::FeatureOutOfRange {
                dict: f.dict.clone(),
                index: u64::from(f.index),
                d_sae: info.d_sae,
            });
        }
        Ok(info)
    }

    fn with_token(&self, doc: u32, pos: u32, value: f32) -> Result<TokenActivation> {
        let d = self.stored_document(doc)?;
        let (token, token_id) = match &d {
            Some(d) => (
                d.tokens.get(pos as usize).cloned().unwrap_or_default(),
                d.token_ids.get(pos as usize).copied(),
            ),
            None => (String::new(), None),
        };
        Ok(TokenActivation {
            doc,
            pos,
            value,
            token,
            token_id,
        })
    }

    /// The `k` strongest activations of a feature, strongest first (ties: lower (doc, pos)
    /// first), keeping only those the filter accepts. Unfiltered queries with `k` up to 128 read
    /// the materialised top list; filtered ones scan this feature's activations only.
    pub fn top_activations(
        &self,
        f: &FeatureRef,
        k: usize,
        filter: Option<&ActivationFilter>,
    ) -> Result<Vec<TokenActivation>> {
        self.top_activations_with(f, k, filter, &NoProgress)
    }

    /// [`Store::top_activations`], stopping with [`Error::Cancelled`] when `progress` asks (a
    /// filtered scan of a frequent feature reads all of its activations).
    pub fn top_activations_with(
        &self,
        f: &FeatureRef,
        k: usize,
        filter: Option<&ActivationFilter>,
        progress: &dyn Progress,
    ) -> Result<Vec<TokenActivation>> {
        let filter = filter.map(ActivationFilter::compile).transpose()?;
        self.consistent(|| self.top_activations_now(f, k, filter.as_ref(), progress))
    }

    fn top_activations_now(
        &self,
        f: &FeatureRef,
        k: usize,
        filter: Option<&crate::filter::Compiled>,
        progress: &dyn Progress,
    ) -> Result<Vec<TokenActivation>> {
        let info = self.resolve(f)?;
        check_limit(k)?;
        if filter.is_none() && k <= TOP_KEPT {
            let rec = self.stats_record(info.id, f.index)?.unwrap_or_default();
            return rec
                .top
                .iter()
                .take(k)
                .map(|&(d, p, v)| self.with_token(d, p, v))
                .collect();
        }
        let mut all = self.feature_entries_with(info.id, f.index, progress)?;
        all.sort_by(top_order);
        let mut out = Vec::with_capacity(k.min(all.len()));
        for (i, (d, p, v)) in all.into_iter().enumerate() {
            if out.len() == k {
                break;
            }
            if i % 4096 == 0 {
                check_cancelled(progress)?;
            }
            let a = self.with_token(d, p, v)?;
            if filter.is_none_or(|keep| keep.accepts(&a)) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Every stored activation of a feature, in (doc, pos) order.
    pub fn activations_of(&self, f: &FeatureRef) -> Result<Vec<TokenActivation>> {
        self.consistent(|| self.activations_of_now(f))
    }

    fn activations_of_now(&self, f: &FeatureRef) -> Result<Vec<TokenActivation>> {
        let info = self.resolve(f)?;
        let mut all = self.feature_entries(info.id, f.index)?;
        all.sort_by_key(|e| (e.0, e.1));
        all.into_iter()
            .map(|(d, p, v)| self.with_token(d, p, v))
            .collect()
    }

    /// `sample.k` activations of a feature picked evenly inside one quantile of its activations
    /// by value (those the filter accepts), strongest first; see [`QuantileSample`].
    ///
    /// Activations are ordered by value ascending, ties by (doc, pos). Quantile `q` of `n`
    /// covers the sorted indices `floor((q-1)·N/n) .. floor(q·N/n)`; of its `m` members, pick `j`
    /// (0-based) is the member at `floor((2j+1)·m / 2k)`, the middle of the j-th of k equal
    /// strata, so picks are deterministic and spread over the quantile. Only the quantile is
    /// sorted (the rest is partitioned around it in linear time), and tokens are looked up only
    /// for the picks unless the filter reads them. Stops with [`Error::Cancelled`] when
    /// `progress` asks.
    pub fn sample_quantile(
        &self,
        f: &FeatureRef,
        sample: QuantileQuery,
        filter: Option<&ActivationFilter>,
        progress: &dyn Progress,
    ) -> Result<QuantileSample> {
        if sample.of == 0 || sample.of > MAX_QUANTILES {
            return Err(Error::InvalidArgument(format!(
                "the number of quantiles must be between 1 and {MAX_QUANTILES}"
            )));
        }
        if sample.quantile == 0 || sample.quantile > sample.of {
            return Err(Error::InvalidArgument(format!(
                "quantile {} does not exist: quantiles are numbered 1 (weakest) to {} (strongest)",
                sample.quantile, sample.of
            )));
        }
        check_limit(sample.k)?;
        let needs_token = filter.is_some_and(ActivationFilter::needs_token);
        let filter = filter.map(ActivationFilter::compile).transpose()?;
        self.consistent(|| {
            let info = self.resolve(f)?;
            let mut entries = self.feature_entries_with(info.id, f.index, progress)?;
            if let Some(keep) = &filter {
                let mut kept = Vec::with_capacity(entries.len());
                for (i, &(d, p, v)) in entries.iter().enumerate() {
                    if i % 4096 == 0 {
                        check_cancelled(progress)?;
                    }
                    let a = if needs_token {
                        self.with_token(d, p, v)?
                    } else {
                        bare(d, p, v)
                    };
                    if keep.accepts(&a) {
                        kept.push((d, p, v));
                    }
                }
                entries = kept;
            }
            check_cancelled(progress)?;
            let picked = pick_quantile(&mut entries, sample);
            let picks = picked
                .picks
                .iter()
                .map(|&(d, p, v)| self.with_token(d, p, v))
                .collect::<Result<Vec<_>>>()?;
            Ok(QuantileSample {
                picks,
                lo: picked.lo,
                hi: picked.hi,
                size: picked.size,
                total: entries.len(),
            })
        })
    }

    /// Raw (doc, pos, value) of a feature, stopping when `progress` asks.
    fn feature_entries_with(
        &self,
        dict: u32,
        feature: u32,
        progress: &dyn Progress,
    ) -> Result<Vec<(u32, u32, f32)>> {
        check_cancelled(progress)?;
        let out = self.feature_entries(dict, feature)?;
        check_cancelled(progress)?;
        Ok(out)
    }

    /// Raw (doc, pos, value) of a feature from its committed feature-major blocks: one seek
    /// per committed ingest into the dictionary (blocks are keyed ingest first), in ingest order.
    pub(crate) fn feature_entries(&self, dict: u32, feature: u32) -> Result<Vec<(u32, u32, f32)>> {
        let mut out = Vec::new();
        // A version 3 store opened read-only has none of this column family yet.
        if let Some(cf) = self.db.cf_handle(CF_FEATURE_MAJOR) {
            let ingests = self.catalog().ingests_into(dict); // not holding the catalog's lock
            let mut it = self.db.raw_iterator_cf(cf);
            for ingest in ingests {
                let prefix = feature_major_prefix(dict, ingest, feature);
                it.seek(prefix);
                while let (Some(k), Some(v)) = (it.key(), it.value()) {
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    decode_feature_block(v, &mut out)?;
                    it.next();
                }
                it.status()?;
            }
        }
        self.feature_entries_v3(dict, feature, &mut out)?;
        Ok(out)
    }

    /// A feature's committed blocks in version 3's column family, while the store has one (a
    /// read-only open of a version 3 store, or one whose upgrade was interrupted).
    fn feature_entries_v3(
        &self,
        dict: u32,
        feature: u32,
        out: &mut Vec<(u32, u32, f32)>,
    ) -> Result<()> {
        let Some(cf) = self.db.cf_handle(CF_FEATURE_MAJOR_V3) else {
            return Ok(());
        };
        let committed = self.catalog().committed_ingests();
        let prefix = pair_prefix(dict, feature);
        for item in self.db.prefix_iterator_cf(cf, prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let ingest = block_ingest_id(CF_FEATURE_MAJOR_V3, &k);
            if ingest.is_some_and(|id| committed.contains(&id)) {
                decode_feature_block(&v, out)?;
            }
        }
        Ok(())
    }

    /// Features active at a token, strongest first; all dictionaries unless one is named.
    pub fn features_at(
        &self,
        doc: u32,
        pos: u32,
        dict: Option<&str>,
    ) -> Result<Vec<ActiveFeature>> {
        self.consistent(|| self.features_at_now(doc, pos, dict))
    }

    fn features_at_now(
        &self,
        doc: u32,
        pos: u32,
        dict: Option<&str>,
    ) -> Result<Vec<ActiveFeature>> {
        let dicts = match dict {
            Some(name) => vec![self.dictionary(name)?],
            None => self.dictionaries(),
        };
        if let Some(d) = self.stored_document(doc)? {
            if pos as usize >= d.tokens.len() {
                return Err(Error::PositionOutOfRange {
                    doc: doc.into(),
                    pos: pos.into(),
                    len: d.tokens.len(),
                });
            }
        } else if self.catalog().documents > 0 {
            return Err(Error::UnknownDocument { doc: doc.into() });
        }
        let committed = self.catalog().committed_ingests();
        let mut out = Vec::new();
        for info in dicts {
            let prefix = pair_prefix(info.id, doc);
            for item in self.db.prefix_iterator_cf(self.cf(CF_TOKEN_MAJOR), prefix) {
                let (k, v) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                if !block_ingest_id(CF_TOKEN_MAJOR, &k).is_some_and(|id| committed.contains(&id)) {
                    continue;
                }
                out.extend(
                    decode_token_position(&v, pos)?
                        .into_iter()
                        .map(|(f, value)| ActiveFeature {
                            feature: FeatureRef::new(&info.name, f),
                            value,
                        }),
                );
            }
        }
        out.sort_by(|a, b| {
            b.value
                .total_cmp(&a.value)
                .then_with(|| a.feature.cmp(&b.feature))
        });
        Ok(out)
    }

    pub(crate) fn stats_record(&self, dict: u32, feature: u32) -> Result<Option<StatsRecord>> {
        match self
            .db
            .get_cf(self.cf(CF_STATS), feature_key(dict, feature))?
        {
            Some(b) if self.format_version == 2 => Ok(Some(crate::stats::decode_v2(&b)?)),
            Some(b) => Ok(Some(StatsRecord::decode(&b)?)),
            None => Ok(None),
        }
    }

    /// Statistics of one feature (all zero for a feature that never fired).
    pub fn feature_stats(&self, f: &FeatureRef) -> Result<FeatureStats> {
        self.consistent(|| self.feature_stats_now(f))
    }

    fn feature_stats_now(&self, f: &FeatureRef) -> Result<FeatureStats> {
        let info = self.resolve(f)?;
        let rec = self
            .stats_record(info.id, f.index)?
            .unwrap_or_else(StatsRecord::new);
        Ok(FeatureStats {
            feature: f.clone(),
            count: rec.count,
            frequency: if info.tokens_encoded == 0 {
                0.0
            } else {
                rec.count as f64 / info.tokens_encoded as f64
            },
            max: rec.max,
            mean: rec.mean(),
            histogram: rec.histogram_bins(),
            label: self.label(f)?,
        })
    }

    /// A feature's decoder row `W_dec[f]`.
    pub fn decoder_row(&self, f: &FeatureRef) -> Result<Vec<f32>> {
        let info = self.resolve(f)?;
        Ok(self.decoder(&info)?.raw_row(f.index as usize).to_vec())
    }

    /// What a feature's decoder direction does to each output token: `W_dec[f] · W_U[:, t]`,
    /// the `k` most positive and `k` most negative.
    pub fn token_effects(&self, f: &FeatureRef, k: usize) -> Result<TokenEffects> {
        let info = self.resolve(f)?;
        check_limit(k)?;
        let vocab = self.vocab_matrix()?;
        if vocab.d_model != info.d_in as usize {
            return Err(Error::Mismatch(format!(
                "the vocabulary matrix has d_model {} but dictionary '{}' has d_in {}",
                vocab.d_model, info.name, info.d_in
            )));
        }
        let dec = self.decoder(&info)?;
        let row = dec.raw_row(f.index as usize);
        let effects: Vec<f32> = vocab
            .matrix
            .chunks_exact(vocab.d_model)
            .map(|e| dot(e, row))
            .collect();
        // Largest first, ties by token id; only the k at each end are sorted (a full sort of a
        // 30k vocabulary took longer than the products).
        let by_effect = |a: &u32, b: &u32| {
            effects[*b as usize]
                .total_cmp(&effects[*a as usize])
                .then(a.cmp(b))
        };
        let ends = |mut order: Vec<u32>, cmp: &dyn Fn(&u32, &u32) -> std::cmp::Ordering| {
            if k < order.len() {
                order.select_nth_unstable_by(k, cmp);
                order.truncate(k);
            }
            order.sort_by(cmp);
            order
        };
        let all: Vec<u32> = (0..effects.len() as u32).collect();
        let top = ends(all.clone(), &by_effect);
        let bottom = ends(all, &|a, b| by_effect(b, a));
        let effect = |t: u32| TokenEffect {
            token: vocab
                .tokens
                .get(t as usize)
                .cloned()
                .unwrap_or_else(|| format!("<id {t}>")),
            token_id: t,
            effect: effects[t as usize],
        };
        let positive = top.into_iter().map(effect).collect();
        let negative = bottom.into_iter().map(effect).collect();
        Ok(TokenEffects { positive, negative })
    }

    pub(crate) fn vocab_matrix(&self) -> Result<Arc<VocabMatrix>> {
        // Two threads may both load it on first use; both get the same matrix.
        if let Some(v) = self.derived.get::<VocabMatrix>(VOCAB_OWNER)? {
            return Ok(v);
        }
        let info = self.catalog().vocabulary.clone().ok_or_else(|| {
            Error::Missing(
                "no vocabulary matrix in this store: ingest one with `saedb ingest vocab`".into(),
            )
        })?;
        let matrix = self.read_tensor(VOCAB_OWNER, Tensor::Vocab)?;
        let tokens: Vec<String> = match self.db.get_cf(self.cf(CF_META), META_VOCAB_TOKENS)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Corrupt(format!("vocabulary: {e}")))?,
            None => Vec::new(),
        };
        if matrix.len() != info.n_vocab as usize * info.d_model as usize {
            return Err(Error::Corrupt(
                "vocabulary matrix has the wrong size".into(),
            ));
        }
        let v = Arc::new(VocabMatrix {
            n_vocab: info.n_vocab as usize,
            d_model: info.d_model as usize,
            matrix,
            tokens,
        });
        self.derived.insert(VOCAB_OWNER, v.clone())?;
        Ok(v)
    }

    /// Sets (or replaces) a feature's label.
    pub fn set_label(&self, f: &FeatureRef, label: &str) -> Result<()> {
        self.ensure_writable()?;
        let info = self.resolve(f)?;
        let label = label.trim();
        if label.is_empty() || label.len() > 4096 {
            return Err(Error::InvalidArgument(
                "a label must have 1 to 4096 bytes of text".into(),
            ));
        }
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.put_cf_opt(
            self.cf(CF_LABELS),
            feature_key(info.id, f.index),
            label.as_bytes(),
            &wo,
        )?;
        Ok(())
    }

    /// A feature's label, if it has one.
    pub fn label(&self, f: &FeatureRef) -> Result<Option<String>> {
        let info = self.resolve(f)?;
        Ok(self
            .db
            .get_cf(self.cf(CF_LABELS), feature_key(info.id, f.index))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Every label, in (dictionary id, feature) order.
    pub fn labels(&self) -> Result<Vec<(FeatureRef, String)>> {
        let dicts = self.dictionaries();
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_LABELS), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item?;
            let (Some(id), Some(f)) = (field(&k, 0), field(&k, 1)) else {
                continue;
            };
            if let Some(d) = dicts.iter().find(|d| d.id == id) {
                out.push((
                    FeatureRef::new(&d.name, f),
                    String::from_utf8_lossy(&v).into_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// Labels containing `text`, case-insensitively: exact matches first, then labels starting
    /// with it, then the rest; shorter labels before longer; then by feature.
    pub fn search_labels(&self, text: &str, limit: usize) -> Result<Vec<(FeatureRef, String)>> {
        check_limit(limit)?;
        let needle = text.to_lowercase();
        let mut hits: Vec<(u8, usize, FeatureRef, String)> = self
            .labels()?
            .into_iter()
            .filter_map(|(f, l)| {
                let low = l.to_lowercase();
                let at = low.find(&needle)?;
                let rank = if low == needle {
                    0
                } else if at == 0 {
                    1
                } else {
                    2
                };
                Some((rank, l.len(), f, l))
            })
            .collect();
        hits.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        Ok(hits.into_iter().take(limit).map(|h| (h.2, h.3)).collect())
    }

    /// Documents ids that are stored, in order (for `check` and tools).
    pub fn document_ids(&self) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_DOCS), rocksdb::IteratorMode::Start)
        {
            let (k, _) = item?;
            if let Some(d) = field(&k, 0) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// An activation without its token (for filters that do not read it).
fn bare(doc: u32, pos: u32, value: f32) -> TokenActivation {
    TokenActivation {
        doc,
        pos,
        value,
        token: String::new(),
        token_id: None,
    }
}

/// The picks of [`Store::sample_quantile`] before tokens are attached.
struct Picked {
    picks: Vec<(u32, u32, f32)>,
    lo: f32,
    hi: f32,
    size: usize,
}

/// Quantile selection over raw entries (reordered in place): the quantile's range is found by
/// two linear-time partitions, and only its members are sorted.
fn pick_quantile(entries: &mut [(u32, u32, f32)], q: QuantileQuery) -> Picked {
    let ascending = |a: &(u32, u32, f32), b: &(u32, u32, f32)| {
        a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
    };
    let total = entries.len();
    let lo = (q.quantile - 1) * total / q.of;
    let hi = q.quantile * total / q.of;
    if lo == hi {
        return Picked {
            picks: Vec::new(),
            lo: 0.0,
            hi: 0.0,
            size: 0,
        };
    }
    if hi < total {
        entries.select_nth_unstable_by(hi, ascending);
    }
    let head = &mut entries[..hi];
    if lo > 0 {
        head.select_nth_unstable_by(lo, ascending);
    }
    let bucket = &mut head[lo..];
    bucket.sort_unstable_by(ascending);
    let m = bucket.len();
    let mut picks: Vec<(u32, u32, f32)> = if q.k >= m {
        bucket.to_vec()
    } else {
        (0..q.k)
            .map(|j| bucket[(2 * j + 1) * m / (2 * q.k)])
            .collect()
    };
    picks.sort_by(top_order);
    Picked {
        lo: bucket[0].2,
        hi: bucket[m - 1].2,
        size: m,
        picks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(values: &[f32], q: QuantileQuery) -> (Vec<f32>, f32, f32, usize) {
        let mut entries: Vec<(u32, u32, f32)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, 0, v))
            .collect();
        let p = pick_quantile(&mut entries, q);
        (p.picks.iter().map(|e| e.2).collect(), p.lo, p.hi, p.size)
    }

    /// Against the definition, worked by hand: 0..100 in 10 quantiles, the third is 20..=29;
    /// two picks sit at the middles of its halves, indices 2 and 7 (values 22 and 27).
    #[test]
    fn quantile_picks() {
        let mut values: Vec<f32> = (0..100).map(|i| i as f32).collect();
        values.reverse(); // the input order does not matter
        let q = |k, quantile, of| QuantileQuery { k, quantile, of };
        assert_eq!(
            picks(&values, q(2, 3, 10)),
            (vec![27.0, 22.0], 20.0, 29.0, 10)
        );
        let (p, _, _, m) = picks(&values, q(50, 10, 10));
        assert_eq!((p.len(), m), (10, 10));
        assert_eq!(picks(&values[..3], q(5, 1, 10)).3, 0);
    }

    /// Partitioning and sorting only the quantile picks what sorting everything picks.
    #[test]
    fn quantile_picks_equal_a_full_sort() {
        let values: Vec<f32> = (0..997u32)
            .map(|i| ((i * 7919) % 211) as f32 / 8.0)
            .collect();
        for of in [1usize, 3, 10, 64] {
            for quantile in 1..=of {
                for k in [1usize, 4, 1000] {
                    let q = QuantileQuery { k, quantile, of };
                    let mut sorted: Vec<(u32, u32, f32)> = values
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (i as u32, 0, v))
                        .collect();
                    sorted.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)));
                    let (lo, hi) = ((quantile - 1) * 997 / of, quantile * 997 / of);
                    let bucket = &sorted[lo..hi];
                    let m = bucket.len();
                    let mut want: Vec<(u32, u32, f32)> = if k >= m {
                        bucket.to_vec()
                    } else {
                        (0..k).map(|j| bucket[(2 * j + 1) * m / (2 * k)]).collect()
                    };
                    want.sort_by(top_order);
                    let mut entries = values
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (i as u32, 0, v))
                        .collect::<Vec<_>>();
                    assert_eq!(pick_quantile(&mut entries, q).picks, want, "{q:?}");
                }
            }
        }
    }
}
