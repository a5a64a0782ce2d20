//! Nearest features by decoder direction: an HNSW index (hnsw_rs, cosine) per dictionary,
//! persisted beside the database in `<store>/hnsw/`, and the exact search it is measured against.
//! hnsw_rs builds and persists the graph; queries run over a flat copy of it ([`flat`]).
//!
//! The index is derived data. It is written after the dictionary commits (to a temporary name,
//! then renamed), and rebuilt from the stored decoder on first use if it is missing or unreadable.

mod flat;
mod half;

use crate::keys::Tensor;
use crate::store::Store;
use crate::types::{DictionaryInfo, FeatureRef, Neighbour};
use crate::util::{check_limit, hash_path};
use crate::vector::dot;
use crate::Progress;
use crate::{Error, Result};
use flat::{FlatGraph, Rows};
use half::{half_bits, HalfCosine, HalfRows};
use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo, NoData, NoDist};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Links per node and construction breadth: with search ef 48, recall@10 is 1.000 at 24,576 and
/// 131,072 synthetic features; M 16 / ef_construction 64 built 3x faster but fell to 0.95 on a real
/// dictionary. On minilm-dev's real 4,096-feature L2, ef_construction 200 / 100 / 64 give recall
/// 0.998 / 0.991 / 0.964 at the default search breadth (docs/BENCHMARKS.md).
const MAX_CONNECTIONS: usize = 24;
const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;

/// A dictionary's HNSW index, ready to search: the graph hnsw_rs built, copied into flat arrays
/// ([`flat`]), walked with a float16 copy of the unit rows ([`half`]: half the memory traffic)
/// and answered with the exact rows of the decoder (shared with the decoder cache). The hnsw_rs
/// object itself is dropped once copied: it held a float32 copy of every vector, behind an `Arc`
/// per point.
pub(crate) struct AnnIndex {
    graph: FlatGraph,
    decoder: Arc<Decoder>,
    walk: HalfRows,
}

/// A dictionary's decoder rows, unit-normalised (zero rows stay zero and are never neighbours).
pub(crate) struct Decoder {
    pub(crate) d_in: usize,
    pub(crate) unit_rows: Vec<f32>,
    pub(crate) raw_rows: Vec<f32>,
    pub(crate) alive: Vec<bool>,
}

impl Decoder {
    pub(crate) fn unit_row(&self, f: usize) -> &[f32] {
        &self.unit_rows[f * self.d_in..(f + 1) * self.d_in]
    }
    pub(crate) fn raw_row(&self, f: usize) -> &[f32] {
        &self.raw_rows[f * self.d_in..(f + 1) * self.d_in]
    }
}

/// Rows inserted per `parallel_insert` call, so that progress can be reported between calls.
const INSERT_CHUNK: usize = 1024;

/// The index as hnsw_rs builds and dumps it: float16 unit rows (bit patterns), cosine distance.
/// (hnsw_rs's own `DistCosine` recomputes both norms in f64 on every call, which made indexing
/// several times slower; `DistDot` asserts on the negative distances rounding can give.)
type HnswIndex = Hnsw<'static, u16, HalfCosine>;

/// Builds hnsw_rs's index over a decoder's live unit rows, in their float16 copy `walk` (data
/// ids are feature indices). The build waits on loading rows; float16 rows, half the bytes,
/// made the build about a sixth faster (docs/BENCHMARKS.md).
/// `Cancelled` when `progress` asks to stop (checked between chunks of inserts).
fn build_hnsw(dec: &Decoder, walk: &HalfRows, progress: &dyn Progress) -> Result<HnswIndex> {
    let n = dec.alive.len();
    let hnsw = Hnsw::new(
        MAX_CONNECTIONS,
        n.max(1),
        MAX_LAYERS,
        EF_CONSTRUCTION,
        HalfCosine,
    );
    let rows: Vec<(&[u16], usize)> = (0..n)
        .filter(|&f| dec.alive[f])
        .map(|f| (walk.row(f as u32), f))
        .collect();
    progress.start("indexing decoder directions", rows.len() as u64);
    for chunk in rows.chunks(INSERT_CHUNK) {
        crate::progress::check_cancelled(progress)?;
        hnsw.parallel_insert_slice(&chunk.to_vec());
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let mut hnsw = hnsw;
    hnsw.set_searching_mode(true);
    Ok(hnsw)
}

fn rows(decoder: &Decoder) -> Rows<'_> {
    Rows {
        values: &decoder.unit_rows,
        dim: decoder.d_in,
    }
}

impl AnnIndex {
    /// Copies an hnsw_rs graph over `decoder`'s rows (`walk`: their float16 copy); `Err` says
    /// why the graph does not fit them.
    fn from_hnsw<T, D>(
        hnsw: &Hnsw<'_, T, D>,
        decoder: Arc<Decoder>,
        walk: HalfRows,
    ) -> std::result::Result<AnnIndex, String>
    where
        T: Clone + Send + Sync,
        D: Distance<T> + Send + Sync,
    {
        let graph = FlatGraph::from_hnsw(hnsw, &decoder.alive)?;
        Ok(AnnIndex {
            graph,
            decoder,
            walk,
        })
    }

    /// Number of indexed features.
    pub(crate) fn len(&self) -> usize {
        self.graph.len()
    }

    /// The `k` features nearest to the unit vector `q`, as (feature, cosine), most similar first.
    fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<(usize, f32)> {
        self.graph.search(&self.walk, rows(&self.decoder), q, k, ef)
    }
}

impl Store {
    fn ann_dir(&self) -> PathBuf {
        self.path.join("hnsw")
    }

    fn ann_basename(dict: u32) -> String {
        format!("dict{dict}")
    }

    /// Builds and persists a dictionary's index (called at ingest and by repairs).
    pub(crate) fn build_ann(&self, dict: u32, progress: &dyn Progress) -> Result<Arc<AnnIndex>> {
        let info = self
            .catalog()
            .dictionaries
            .iter()
            .find(|d| d.id == dict)
            .cloned()
            .ok_or_else(|| Error::Corrupt(format!("dictionary id {dict} is not in the catalog")))?;
        let decoder = self.decoder(&info)?;
        let walk = HalfRows::new(rows(&decoder));
        let hnsw = build_hnsw(&decoder, &walk, progress)?;
        if !self.read_only {
            self.dump_ann(dict, &hnsw)?;
        }
        let index = AnnIndex::from_hnsw(&hnsw, decoder, walk).map_err(|e| {
            Error::storage(format!("copying the HNSW graph of dictionary {dict}: {e}"))
        })?;
        let index = Arc::new(index);
        self.derived.insert(dict, index.clone())?;
        Ok(index)
    }

    fn dump_ann(&self, dict: u32, hnsw: &HnswIndex) -> Result<()> {
        let dir = self.ann_dir();
        let tmp = dir.join(format!("tmp-{}", Self::ann_basename(dict)));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let base = Self::ann_basename(dict);
        hnsw.file_dump(&tmp, &base)
            .map_err(|e| Error::storage(format!("writing HNSW index of dictionary {dict}: {e}")))?;
        let sum = hash_path(&graph_path(&tmp, &base))?;
        let sum_path = graph_sum_path(&tmp, &base);
        std::fs::write(&sum_path, sum).map_err(|e| Error::io(&sum_path, e))?;
        let done = dir.join(&base);
        if done.exists() {
            std::fs::remove_dir_all(&done).map_err(|e| Error::io(&done, e))?;
        }
        std::fs::rename(&tmp, &done).map_err(|e| Error::io(&done, e))?;
        Ok(())
    }

    /// The persisted index of a dictionary, or `None` if it is missing, unreadable or does not fit
    /// the decoder (then it is rebuilt).
    fn load_ann(&self, info: &DictionaryInfo) -> Result<Option<AnnIndex>> {
        let base = Self::ann_basename(info.id);
        let dir = self.ann_dir().join(&base);
        let graph = graph_path(&dir, &base);
        if !graph.exists() {
            return Ok(None);
        }
        // hnsw_rs's loader unwraps its reads, so a damaged file would panic inside it: a dump
        // carries the checksum of its graph file, and one that does not match is rebuilt.
        // (Dumps written before the checksum have none; the panic guard below covers them.)
        let sum_path = graph_sum_path(&dir, &base);
        let sum = hash_path(&graph).ok();
        let recorded = std::fs::read_to_string(&sum_path).ok();
        if recorded
            .as_ref()
            .is_some_and(|want| sum.as_deref() != Some(want.trim()))
        {
            return Ok(None);
        }
        // Only the links are needed: the search reads the decoder's rows.
        let mut io = HnswIo::new(&dir, &base);
        let Some(hnsw) = load_links(&mut io) else {
            return Ok(None);
        };
        let decoder = self.decoder(info)?;
        let walk = HalfRows::new(rows(&decoder));
        let index = AnnIndex::from_hnsw(&hnsw, decoder, walk).ok();
        // An older dump that loads and fits gets its checksum now, so later damage is caught.
        if let (None, Some(sum), Some(_), false) = (&recorded, &sum, &index, self.read_only) {
            let _ = std::fs::write(&sum_path, sum);
        }
        Ok(index)
    }

    pub(crate) fn ann(&self, info: &DictionaryInfo) -> Result<Arc<AnnIndex>> {
        if let Some(a) = self.derived.get::<AnnIndex>(info.id)? {
            return Ok(a);
        }
        if let Some(a) = self.load_ann(info)? {
            let a = Arc::new(a);
            self.derived.insert(info.id, a.clone())?;
            return Ok(a);
        }
        self.build_ann(info.id, &crate::NoProgress)
    }

    /// Builds a dictionary's neighbour index now, unless it is built already (in memory or on
    /// disk): what `IndexBuild::OnFirstUse` leaves to the first search, done ahead of it with
    /// `progress` (a bar, a cancel).
    pub fn build_index(&self, dict: &str, progress: &dyn Progress) -> Result<()> {
        let info = self.dictionary(dict)?;
        if self.derived.get::<AnnIndex>(info.id)?.is_some() {
            return Ok(());
        }
        if let Some(a) = self.load_ann(&info)? {
            self.derived.insert(info.id, Arc::new(a))?;
            return Ok(());
        }
        self.build_ann(info.id, progress).map(|_| ())
    }

    /// Whether a dictionary's index file exists (for `check`).
    pub fn has_ann_file(&self, dict: &str) -> Result<bool> {
        let info = self.dictionary(dict)?;
        let base = Self::ann_basename(info.id);
        Ok(graph_path(&self.ann_dir().join(&base), &base).exists())
    }

    /// A dictionary's decoder rows, loaded once.
    pub(crate) fn decoder(&self, info: &DictionaryInfo) -> Result<Arc<Decoder>> {
        if let Some(d) = self.derived.get::<Decoder>(info.id)? {
            return Ok(d);
        }
        let raw_rows = self.read_tensor(info.id, Tensor::WDec)?;
        let d_in = info.d_in as usize;
        if raw_rows.len() != d_in * info.d_sae as usize {
            return Err(Error::Corrupt(format!(
                "decoder of '{}' has {} values",
                info.name,
                raw_rows.len()
            )));
        }
        let mut unit_rows = raw_rows.clone();
        let mut alive = Vec::with_capacity(info.d_sae as usize);
        for row in unit_rows.chunks_exact_mut(d_in) {
            let norm = dot(row, row).sqrt();
            alive.push(norm > 0.0);
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        let dec = Arc::new(Decoder {
            d_in,
            unit_rows,
            raw_rows,
            alive,
        });
        self.derived.insert(info.id, dec.clone())?;
        Ok(dec)
    }

    fn neighbour_setup(
        &self,
        f: &FeatureRef,
        in_dict: Option<&str>,
        k: usize,
    ) -> Result<(Vec<f32>, DictionaryInfo)> {
        let src = self.resolve(f)?;
        check_limit(k)?;
        let dst = match in_dict {
            Some(name) => self.dictionary(name)?,
            None => src.clone(),
        };
        if dst.d_in != src.d_in {
            return Err(Error::Mismatch(format!(
                "dictionaries '{}' (d_in {}) and '{}' (d_in {}) live in different spaces",
                src.name, src.d_in, dst.name, dst.d_in
            )));
        }
        let q = self.decoder(&src)?.unit_row(f.index as usize).to_vec();
        Ok((q, dst))
    }

    /// Approximate (HNSW) nearest features by decoder cosine, in `in_dict` (default: the same
    /// dictionary, the feature itself excluded), most similar first.
    pub fn neighbours(
        &self,
        f: &FeatureRef,
        in_dict: Option<&str>,
        k: usize,
    ) -> Result<Vec<Neighbour>> {
        self.neighbours_with_breadth(f, in_dict, k, default_search_breadth(k))
    }

    /// [`Store::neighbours`] with an explicit HNSW search breadth (`ef`, raised to at least the
    /// number of results): larger is slower and finds more of the exact neighbours.
    pub fn neighbours_with_breadth(
        &self,
        f: &FeatureRef,
        in_dict: Option<&str>,
        k: usize,
        breadth: usize,
    ) -> Result<Vec<Neighbour>> {
        let (q, dst) = self.neighbour_setup(f, in_dict, k)?;
        if k == 0 || q.iter().all(|v| *v == 0.0) {
            return Ok(vec![]);
        }
        let same = dst.name == f.dict;
        let wanted = k + usize::from(same);
        let hits = self.ann(&dst)?.search(&q, wanted, breadth.max(wanted));
        Ok(finish(hits, &dst, same.then_some(f.index as usize), k))
    }

    /// Exact nearest features by brute force: the reference HNSW recall is measured against.
    pub fn neighbours_exact(
        &self,
        f: &FeatureRef,
        in_dict: Option<&str>,
        k: usize,
    ) -> Result<Vec<Neighbour>> {
        let (q, dst) = self.neighbour_setup(f, in_dict, k)?;
        if k == 0 || q.iter().all(|v| *v == 0.0) {
            return Ok(vec![]);
        }
        let dec = self.decoder(&dst)?;
        let hits: Vec<(usize, f32)> = (0..dst.d_sae as usize)
            .filter(|&g| dec.alive[g])
            .map(|g| (g, dot(&q, dec.unit_row(g))))
            .collect();
        let same = dst.name == f.dict;
        Ok(finish(hits, &dst, same.then_some(f.index as usize), k))
    }
}

/// hnsw_rs's own search and the flat search timed on the same queries and the same graph
/// ([`Store::compare_ann_searches`], for the benchmark).
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct AnnComparison {
    /// Per query, microseconds of hnsw_rs's `search`.
    pub hnsw_rs_us: Vec<f64>,
    /// Per query, microseconds of the flat search.
    pub flat_us: Vec<f64>,
    /// Per query, the features hnsw_rs found (the query feature left out), best first.
    pub hnsw_rs_found: Vec<Vec<u32>>,
    /// Per query, the features the flat search found (the query feature left out), best first.
    pub flat_found: Vec<Vec<u32>>,
}

impl Store {
    /// For the benchmark only: reloads a dictionary's persisted hnsw_rs index with its vectors and
    /// times its `search` against the flat search, each over all `features` (the `k` nearest
    /// of each feature's own direction, breadth `ef`), after one untimed pass of both.
    #[doc(hidden)]
    pub fn compare_ann_searches(
        &self,
        dict: &str,
        features: &[u32],
        k: usize,
        ef: usize,
    ) -> Result<AnnComparison> {
        let info = self.dictionary(dict)?;
        let index = self.ann(&info)?;
        let base = Self::ann_basename(info.id);
        let mut io = HnswIo::new(&self.ann_dir().join(&base), &base);
        let mut hnsw: Hnsw<u16, HalfCosine> = io
            .load_hnsw()
            .map_err(|e| Error::storage(format!("reloading the HNSW index of '{dict}': {e}")))?;
        hnsw.set_searching_mode(true);
        let queries: Vec<(u32, &[f32])> = features
            .iter()
            .map(|&f| (f, index.decoder.unit_row(f as usize)))
            .collect();
        // hnsw_rs searches with a query of its data type: the float16 copy of the query row.
        let by_hnsw_rs = |q: &[f32]| -> Vec<(usize, f32)> {
            let found = hnsw.search(&half_bits(q), k + 1, ef.max(k + 1));
            found.iter().map(|n| (n.d_id, 1.0 - n.distance)).collect()
        };
        let by_flat = |q: &[f32]| index.search(q, k + 1, ef.max(k + 1));
        let mut out = AnnComparison::default();
        timed_searches(&queries, k, by_hnsw_rs);
        (out.hnsw_rs_us, out.hnsw_rs_found) = timed_searches(&queries, k, by_hnsw_rs);
        timed_searches(&queries, k, by_flat);
        (out.flat_us, out.flat_found) = timed_searches(&queries, k, by_flat);
        Ok(out)
    }
}

/// Runs `search` on each (feature, direction) query: microseconds and the `k` best other features.
fn timed_searches(
    queries: &[(u32, &[f32])],
    k: usize,
    search: impl Fn(&[f32]) -> Vec<(usize, f32)>,
) -> (Vec<f64>, Vec<Vec<u32>>) {
    let mut micros = Vec::with_capacity(queries.len());
    let mut found = Vec::with_capacity(queries.len());
    for &(f, q) in queries {
        let start = std::time::Instant::now();
        let hits = search(q);
        micros.push(start.elapsed().as_secs_f64() * 1e6);
        let others = hits.into_iter().map(|h| h.0 as u32).filter(|&g| g != f);
        found.push(others.take(k).collect());
    }
    (micros, found)
}

/// The search breadth `neighbours` uses for `k` results. Chosen for real dictionaries: on the
/// fixtures' (real MiniLM SAEs) recall@10 is 0.997 at 48, 0.989 at 32 and 0.973 at 24. Synthetic
/// 131,072-feature dictionaries would allow 24 (recall 1.000, 22.9x faster than exact; 12.0x at
/// 48) — callers who want that trade use `neighbours_with_breadth` (docs/BENCHMARKS.md).
pub fn default_search_breadth(k: usize) -> usize {
    (4 * k).max(48)
}

/// hnsw_rs's reload of the links alone, with a panic inside it (it unwraps its reads) turned
/// into `None`, like any other failure: the index is then rebuilt.
fn load_links(io: &mut HnswIo) -> Option<Hnsw<'_, NoData, NoDist>> {
    let io = std::panic::AssertUnwindSafe(io);
    std::panic::catch_unwind(move || {
        let whole = io; // the wrapper, not its field (closures capture fields)
        whole.0.load_hnsw::<NoData, NoDist>().ok()
    })
    .ok()
    .flatten()
}

/// The graph file of a dump: all that a reload reads.
fn graph_path(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.hnsw.graph"))
}

/// The checksum of the graph file, written beside it (`hash_path`'s xxh3-128, in hex).
fn graph_sum_path(dir: &Path, base: &str) -> PathBuf {
    dir.join(format!("{base}.hnsw.graph.xxh3"))
}

/// Drops the query feature itself, orders by cosine (then index), keeps `k`.
fn finish(
    mut hits: Vec<(usize, f32)>,
    dst: &DictionaryInfo,
    skip: Option<usize>,
    k: usize,
) -> Vec<Neighbour> {
    hits.retain(|h| Some(h.0) != skip);
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    // Exact search hands in every feature: select the k best before sorting them.
    if k > 0 && hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
    }
    hits.truncate(k);
    hits.sort_by(order);
    hits.into_iter()
        .map(|(g, cosine)| Neighbour {
            feature: FeatureRef::new(&dst.name, g as u32),
            cosine,
        })
        .collect()
}
