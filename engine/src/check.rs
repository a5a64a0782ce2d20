//! `check`: the store verifies itself. `repair`: derived data is rebuilt from primary data.
//!
//! Primary data: dictionary weights, documents, token-major and feature-major blocks of committed
//! ingests, labels, graphs. Derived data: per-feature statistics and top lists, HNSW indexes.
//! Blocks of ingests that never committed (a crash mid-ingest) are invisible to readers; `check`
//! counts them and `repair` deletes them.

use crate::codec::{decode_feature_block, decode_token_block};
use crate::keys::*;
use crate::stats::StatsRecord;
use crate::store::{poisoned, Store};
use crate::types::DictionaryInfo;
use crate::Result;
use rocksdb::{IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// What `check` looked at and what it found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub format_version: u32,
    pub dictionaries: usize,
    /// Activations compared between the two orientations.
    pub activations: u64,
    /// Features whose statistics were recomputed and compared.
    pub features: u64,
    pub graphs: usize,
    /// Blocks left by ingests that never committed (harmless: readers skip them).
    pub orphan_blocks: u64,
    /// Everything wrong, one line each. Empty means the store is sound.
    pub problems: Vec<String>,
    /// Things worth knowing that are not wrong (e.g. an index that will be rebuilt on first use).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

type Activations = Vec<(u32, u32, u32, u32)>; // (feature, doc, pos, value bits)
/// A block key and its column family.
type OrphanKey = (&'static str, Box<[u8]>);

impl Store {
    /// Verifies the format version, that every activation appears in both orientations, that
    /// statistics and top lists match the stored activations, that each HNSW index covers every
    /// live feature, and that every graph loads and validates.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport {
            format_version: self.format_version,
            ..Default::default()
        };
        let dicts = self.dictionaries();
        report.dictionaries = dicts.len();
        for info in &dicts {
            self.check_dictionary(info, &mut report)?;
        }
        report.orphan_blocks = self.orphan_keys()?.len() as u64;
        if report.orphan_blocks > 0 {
            report.notes.push(format!(
                "{} blocks of interrupted ingests are invisible to readers (repair deletes them)",
                report.orphan_blocks
            ));
        }
        for g in self.graphs()? {
            report.graphs += 1;
            match self.graph(&g.name) {
                Ok(graph) => {
                    if let Err(e) = graph.validate() {
                        report.problems.push(format!("graph '{}': {e}", g.name));
                    } else if graph.nodes.len() as u64 != g.nodes
                        || graph.edges.len() as u64 != g.edges
                    {
                        report.problems.push(format!(
                            "graph '{}': node/edge counts differ from the catalog",
                            g.name
                        ));
                    }
                }
                Err(e) => report.problems.push(format!("graph '{}': {e}", g.name)),
            }
        }
        Ok(report)
    }

    fn check_dictionary(&self, info: &DictionaryInfo, report: &mut CheckReport) -> Result<()> {
        let d = &info.name;
        let (token_major, tokens) = self.scan_token_major(info.id)?;
        let feature_major = self.scan_feature_major(info.id)?;
        report.activations += feature_major.len() as u64;
        if token_major != feature_major {
            let a: HashSet<_> = token_major.iter().collect();
            let b: HashSet<_> = feature_major.iter().collect();
            report.problems.push(format!(
                "dictionary '{d}': {} activations only token-major, {} only feature-major",
                a.difference(&b).count(),
                b.difference(&a).count()
            ));
        }
        if feature_major.len() as u64 != info.nonzeros {
            report.problems.push(format!(
                "dictionary '{d}': catalog says {} nonzeros, blocks hold {}",
                info.nonzeros,
                feature_major.len()
            ));
        }
        if tokens > info.tokens_encoded {
            report.problems.push(format!(
                "dictionary '{d}': {tokens} tokens have activations but the catalog counts {} encoded",
                info.tokens_encoded
            ));
        }
        let expected = expected_stats(&feature_major);
        for f in 0..info.d_sae {
            let stored = self.stats_record(info.id, f)?;
            report.features += 1;
            match (expected.get(&f), stored) {
                (None, None) => {}
                (None, Some(s)) if s.count == 0 => {}
                (Some(e), Some(s)) if same_stats(e, &s) => {}
                (e, s) => report.problems.push(format!(
                    "feature {d}/{f}: statistics say {} activations, blocks hold {}",
                    s.map_or(0, |s| s.count),
                    e.map_or(0, |e| e.count)
                )),
            }
        }
        if !self.has_ann_file(d)? {
            // A crash between a dictionary's commit and its index dump leaves no file: the index
            // is derived data, rebuilt on first use.
            report.notes.push(format!(
                "dictionary '{d}': no HNSW index file yet (built on first use or by repair)"
            ));
        } else {
            let dec = self.decoder(info)?;
            let alive = dec.alive.iter().filter(|a| **a).count();
            let indexed = self.ann(info)?.len();
            if indexed != alive {
                report.problems.push(format!(
                    "dictionary '{d}': HNSW index holds {indexed} of {alive} live features"
                ));
            }
        }
        Ok(())
    }

    /// All committed token-major activations of a dictionary, sorted, and the number of tokens.
    fn scan_token_major(&self, dict: u32) -> Result<(Activations, u64)> {
        let committed = self.catalog().committed_ingests();
        let prefix = dict.to_be_bytes();
        let mut out = Vec::new();
        let mut tokens = 0u64;
        for item in self.db.prefix_iterator_cf(self.cf(CF_TOKEN_MAJOR), prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if !block_ingest_id(CF_TOKEN_MAJOR, &k).is_some_and(|id| committed.contains(&id)) {
                continue;
            }
            let doc = field(&k, 1).unwrap_or(0);
            for (pos, feats) in decode_token_block(&v)? {
                tokens += 1;
                out.extend(
                    feats
                        .into_iter()
                        .map(|(f, val)| (f, doc, pos, val.to_bits())),
                );
            }
        }
        out.sort_unstable();
        Ok((out, tokens))
    }

    /// All committed feature-major activations of a dictionary (both layouts' column families
    /// while a version 3 one is open), sorted.
    fn scan_feature_major(&self, dict: u32) -> Result<Activations> {
        let committed = self.catalog().committed_ingests();
        let prefix = dict.to_be_bytes();
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for (name, cf) in self.feature_major_cfs() {
            for item in self.db.prefix_iterator_cf(cf, prefix) {
                let (k, v) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                if !block_ingest_id(name, &k).is_some_and(|id| committed.contains(&id)) {
                    continue;
                }
                let f = block_feature(name, &k).unwrap_or(0);
                entries.clear();
                decode_feature_block(&v, &mut entries)?;
                out.extend(
                    entries
                        .iter()
                        .map(|&(doc, pos, val)| (f, doc, pos, val.to_bits())),
                );
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Keys of activation blocks whose ingest never committed.
    fn orphan_keys(&self) -> Result<Vec<OrphanKey>> {
        let committed = self.catalog().committed_ingests();
        let mut out = Vec::new();
        let block_cfs = std::iter::once((CF_TOKEN_MAJOR, self.cf(CF_TOKEN_MAJOR)))
            .chain(self.feature_major_cfs());
        for (name, cf) in block_cfs {
            for item in self.db.iterator_cf(cf, IteratorMode::Start) {
                let (k, _) = item?;
                if !block_ingest_id(name, &k).is_some_and(|id| committed.contains(&id)) {
                    out.push((name, k));
                }
            }
        }
        Ok(out)
    }

    /// Rebuilds derived data from primary data: statistics and top lists from the feature-major
    /// blocks, HNSW indexes from the stored decoders; deletes blocks of uncommitted ingests.
    /// Returns the report of a `check` run afterwards.
    pub fn repair(&self) -> Result<CheckReport> {
        self.ensure_writable()?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let mut batch = WriteBatch::default();
        for (cf, k) in self.orphan_keys()? {
            batch.delete_cf(self.cf(cf), k);
        }
        for info in self.dictionaries() {
            let expected = expected_stats(&self.scan_feature_major(info.id)?);
            for f in 0..info.d_sae {
                let key = feature_key(info.id, f);
                match expected.get(&f) {
                    Some(rec) => batch.put_cf(self.cf(CF_STATS), key, rec.encode()),
                    None => batch.delete_cf(self.cf(CF_STATS), key),
                }
            }
        }
        self.commit(batch)?;
        for info in self.dictionaries() {
            self.build_ann(info.id, &crate::NoProgress)?;
        }
        drop(_writer);
        self.check()
    }
}

fn expected_stats(acts: &Activations) -> BTreeMap<u32, StatsRecord> {
    let mut out: BTreeMap<u32, StatsRecord> = BTreeMap::new();
    for &(f, doc, pos, bits) in acts {
        out.entry(f)
            .or_default()
            .add(doc, pos, f32::from_bits(bits));
    }
    for rec in out.values_mut() {
        rec.truncate_top();
    }
    out
}

/// Sums are compared with a tolerance: ingests add them in a different order than a rescan.
fn same_stats(a: &StatsRecord, b: &StatsRecord) -> bool {
    a.count == b.count
        && a.max == b.max
        && a.histogram == b.histogram
        && a.top == b.top
        && (a.sum - b.sum).abs() <= 1e-9 * a.sum.abs().max(1.0)
}
