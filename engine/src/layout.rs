//! Feature maps: features laid out in two dimensions so that features whose decoder directions
//! are close sit close (the "feature neighbourhood" pictures of the SAE papers).
//!
//! The layout is UMAP-style (`umap.rs`: fuzzy kNN graph, PCA start, attraction along edges and
//! negative-sampling repulsion, fixed seed) over a k-nearest-neighbour graph by decoder cosine
//! distance (1 − cos): the dictionary's HNSW index gives that graph when the whole dictionary is
//! laid out; above [`MAP_MAX_POINTS`] live features an evenly spaced sample of them is laid out,
//! with its exact kNN graph inside the sample (the HNSW neighbours of a sampled feature are mostly
//! not sampled). A dictionary's map is cached in the store's `meta` column family, keyed by the
//! dictionary's id and the content hash of its weights, so it is recomputed only when the
//! dictionary under that name changes.

use crate::keys::CF_META;
use crate::progress::Progress;
use crate::store::Store;
use crate::types::{DictionaryInfo, FeatureRef};
use crate::vector::dot;
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The most features a dictionary map lays out; above, an evenly spaced sample of this many.
pub const MAP_MAX_POINTS: usize = 4_096;
/// Neighbours per feature in the graph UMAP lays out.
pub const MAP_NEIGHBOURS: usize = 15;
/// Bumped when the layout computation changes, so older cached maps are recomputed.
const LAYOUT_VERSION: u32 = 2;

/// One feature's place on a map; `x` and `y` lie in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapPoint {
    pub feature: u32,
    pub x: f32,
    pub y: f32,
}

/// A laid-out dictionary (or a feature's neighbourhood).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMap {
    pub dict: String,
    pub d_sae: u32,
    /// Features with a non-zero decoder row (dead ones are never laid out).
    pub alive: u32,
    /// Whether `points` is a sample of the live features rather than all of them.
    pub sampled: bool,
    pub neighbours: usize,
    pub points: Vec<MapPoint>,
    /// Seconds the layout took when it was computed.
    pub seconds: f64,
    /// Whether this answer was computed earlier (read from the store's cache, or from memory).
    #[serde(default)]
    pub from_cache: bool,
}

#[derive(Serialize, Deserialize)]
struct CachedMap {
    version: u32,
    fingerprint: String,
    map: FeatureMap,
}

impl Store {
    /// The map of a whole dictionary: read from the store's cache when it is there and still
    /// describes this dictionary, else computed (seconds for thousands of features) and, on a
    /// writable store, cached.
    pub fn dictionary_map(&self, dict: &str, progress: &dyn Progress) -> Result<FeatureMap> {
        let info = self.dictionary(dict)?;
        let key = cache_key(info.id);
        let fingerprint = self.map_fingerprint(&info);
        if let Some(c) = self.derived.get::<CachedMap>(info.id)? {
            if c.version == LAYOUT_VERSION && c.fingerprint == fingerprint {
                return Ok(c.map.clone());
            }
        }
        if let Some(bytes) = self.db.get_cf(self.cf(CF_META), &key)? {
            if let Ok(c) = serde_json::from_slice::<CachedMap>(&bytes) {
                if c.version == LAYOUT_VERSION && c.fingerprint == fingerprint {
                    let map = FeatureMap {
                        from_cache: true,
                        ..c.map
                    };
                    self.remember_map(&info, fingerprint, &map)?;
                    return Ok(map);
                }
            }
        }
        let map = self.compute_dictionary_map(&info, progress)?;
        if !self.read_only {
            let cached = CachedMap {
                version: LAYOUT_VERSION,
                fingerprint: fingerprint.clone(),
                map: map.clone(),
            };
            let bytes = serde_json::to_vec(&cached)
                .map_err(|e| Error::Corrupt(format!("map of '{dict}': {e}")))?;
            self.db.put_cf(self.cf(CF_META), &key, bytes)?;
        }
        self.remember_map(&info, fingerprint, &map)?;
        Ok(map)
    }

    /// Keeps a map in memory too (a read-only store cannot cache it on disk), as read from the
    /// store's cache from then on.
    fn remember_map(
        &self,
        info: &DictionaryInfo,
        fingerprint: String,
        map: &FeatureMap,
    ) -> Result<()> {
        let cached = CachedMap {
            version: LAYOUT_VERSION,
            fingerprint,
            map: FeatureMap {
                from_cache: true,
                ..map.clone()
            },
        };
        self.derived.insert(info.id, Arc::new(cached))
    }

    /// Whether a current map of `dict` is cached (then [`Store::dictionary_map`] is instant).
    pub fn has_cached_map(&self, dict: &str) -> Result<bool> {
        let info = self.dictionary(dict)?;
        let Some(bytes) = self.db.get_cf(self.cf(CF_META), cache_key(info.id))? else {
            return Ok(false);
        };
        Ok(serde_json::from_slice::<CachedMap>(&bytes).is_ok_and(|c| {
            c.version == LAYOUT_VERSION && c.fingerprint == self.map_fingerprint(&info)
        }))
    }

    /// What a cached map must match: the dictionary's id and its weights' content hash.
    fn map_fingerprint(&self, info: &DictionaryInfo) -> String {
        let hash = self
            .catalog()
            .ingests
            .iter()
            .find(|r| r.kind == "dictionary" && r.target.as_deref() == Some(&info.name))
            .map(|r| r.content_hash.clone())
            .unwrap_or_default();
        format!("{}:{}:{hash}", info.id, info.d_sae)
    }

    fn compute_dictionary_map(
        &self,
        info: &DictionaryInfo,
        progress: &dyn Progress,
    ) -> Result<FeatureMap> {
        let started = std::time::Instant::now();
        let dec = self.decoder(info)?;
        let alive: Vec<u32> = (0..info.d_sae).filter(|&f| dec.alive[f as usize]).collect();
        let sampled = alive.len() > MAP_MAX_POINTS;
        let features: Vec<u32> = if sampled {
            (0..MAP_MAX_POINTS)
                .map(|i| alive[i * alive.len() / MAP_MAX_POINTS])
                .collect()
        } else {
            alive.clone()
        };
        // Two steps: the neighbour graph, then the layout.
        progress.start(&format!("map of {}", info.name), 2);
        let knn = if sampled {
            let rows: Vec<&[f32]> = features.iter().map(|&f| dec.unit_row(f as usize)).collect();
            exact_knn(&rows, MAP_NEIGHBOURS)
        } else {
            self.hnsw_knn(info, &features)?
        };
        progress.advance(1);
        let rows: Vec<&[f32]> = features.iter().map(|&f| dec.unit_row(f as usize)).collect();
        let xy = crate::umap::layout(&rows, &knn);
        progress.advance(1);
        progress.finish();
        Ok(FeatureMap {
            dict: info.name.clone(),
            d_sae: info.d_sae,
            alive: alive.len() as u32,
            sampled,
            neighbours: MAP_NEIGHBOURS,
            points: points(&features, &xy),
            seconds: started.elapsed().as_secs_f64(),
            from_cache: false,
        })
    }

    /// Each feature's HNSW neighbours among `features` (all the live features of the dictionary),
    /// as (row, cosine distance) lists.
    fn hnsw_knn(&self, info: &DictionaryInfo, features: &[u32]) -> Result<Vec<Vec<(u32, f32)>>> {
        let row_of: HashMap<u32, u32> = features
            .iter()
            .enumerate()
            .map(|(i, &f)| (f, i as u32))
            .collect();
        let knn = features
            .par_iter()
            .map(|&f| {
                let hits =
                    self.neighbours(&FeatureRef::new(&info.name, f), None, MAP_NEIGHBOURS)?;
                Ok(hits
                    .into_iter()
                    .filter_map(|n| row_of.get(&n.feature.index).map(|&r| (r, 1.0 - n.cosine)))
                    .collect())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(knn)
    }

    /// A feature and its `k` nearest neighbours in its own dictionary, laid out alone: the
    /// feature page's neighbourhood map. The kNN graph among these points is exact.
    pub fn neighbourhood_map(&self, f: &FeatureRef, k: usize) -> Result<FeatureMap> {
        let started = std::time::Instant::now();
        let info = self.resolve(f)?;
        let dec = self.decoder(&info)?;
        let mut features = vec![f.index];
        features.extend(
            self.neighbours(f, None, k)?
                .into_iter()
                .map(|n| n.feature.index),
        );
        let rows: Vec<&[f32]> = features.iter().map(|&g| dec.unit_row(g as usize)).collect();
        let local_k = (features.len().saturating_sub(1)).min(8);
        let xy = crate::umap::layout(&rows, &exact_knn(&rows, local_k));
        Ok(FeatureMap {
            dict: info.name.clone(),
            d_sae: info.d_sae,
            alive: dec.alive.iter().filter(|a| **a).count() as u32,
            sampled: true,
            neighbours: local_k,
            points: points(&features, &xy),
            seconds: started.elapsed().as_secs_f64(),
            from_cache: false,
        })
    }
}

fn cache_key(dict: u32) -> Vec<u8> {
    let mut k = b"map_layout/".to_vec();
    k.extend_from_slice(&dict.to_be_bytes());
    k
}

/// Exact k nearest rows of each row by cosine distance (rows are unit vectors; zero rows have
/// no neighbours), as (row, distance) lists nearest first.
pub(crate) fn exact_knn(rows: &[&[f32]], k: usize) -> Vec<Vec<(u32, f32)>> {
    // A neighbourhood of a few dozen rows is done before threads would wake up.
    let min_len = if rows.len() < 256 { rows.len() } else { 1 };
    (0..rows.len())
        .into_par_iter()
        .with_min_len(min_len.max(1))
        .map(|i| {
            let mut d: Vec<(u32, f32)> = (0..rows.len())
                .filter(|&j| j != i)
                .map(|j| (j as u32, 1.0 - dot(rows[i], rows[j])))
                .collect();
            let k = k.min(d.len());
            if k > 0 && k < d.len() {
                d.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
            }
            d.truncate(k);
            d.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            d
        })
        .collect()
}

fn points(features: &[u32], xy: &[(f32, f32)]) -> Vec<MapPoint> {
    features
        .iter()
        .zip(xy)
        .map(|(&feature, &(x, y))| MapPoint { feature, x, y })
        .collect()
}
