//! The store: one RocksDB database in `<dir>/db`, derived HNSW index files in `<dir>/hnsw`.
//!
//! Commit protocol: every ingest gets a fresh ingest id, persisted before any of its data is
//! written; its blocks carry that id in their keys; the ingest becomes visible in one synced write
//! of the catalog that lists it. Readers ignore blocks whose ingest id is not in the catalog, so a
//! crash mid-ingest leaves the store exactly as it was before the ingest.

use crate::cache::Derived;
use crate::catalog::Catalog;
use crate::keys::*;
use crate::progress::{NoProgress, Progress};
use crate::types::*;
use crate::{Error, Result};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, ColumnFamily, ColumnFamilyDescriptor,
    CompactOptions, DBCompressionType, FlushOptions, IngestExternalFileOptions, Options,
    SstFileWriter, WriteBatch, WriteOptions, DB,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The on-disk format this build reads and writes. Bump it on any incompatible change.
/// Version 4: feature-major blocks keyed ingest first, in their own column family.
/// Version 3: statistics records in a compact layout, written by ingests as RocksDB merge
/// operands (which builds that know no merge operator cannot read).
pub const FORMAT_VERSION: u32 = 4;

/// A saedb store. `Send + Sync`: share it between threads behind an `Arc`; reads run
/// concurrently, ingests are serialised.
pub struct Store {
    pub(crate) path: PathBuf,
    pub(crate) db: DB,
    pub(crate) read_only: bool,
    pub(crate) catalog: RwLock<Catalog>,
    /// Held for the whole of an ingest: one writer at a time.
    pub(crate) writer: Mutex<()>,
    /// Derived data the features above the core keep in memory (see `cache.rs`).
    pub(crate) derived: Derived,
    /// Documents read recently (cleared past 100,000).
    pub(crate) docs: Mutex<HashMap<u32, Arc<Document>>>,
    /// Seqlock over commits: odd while a commit is between its RocksDB write and its catalog
    /// swap. Readers retry when it moved, so every call sees one ingest entirely or not at all.
    pub(crate) commit_seq: AtomicU64,
    /// The format version the store is in: [`FORMAT_VERSION`], or an older one that a read-only
    /// open reads as it is (version 2's statistics records are in their old layout).
    pub(crate) format_version: u32,
}

/// How to open a store: the one place that says whether to create it, whether to write, and
/// where an upgrade of an older format reports its progress.
///
/// ```no_run
/// use saedb_engine::{NoProgress, OpenOptions};
/// let store = OpenOptions::new().create(true).open("my.saedb")?;
/// let reader = OpenOptions::new().read_only(true).open("my.saedb")?;
/// # Ok::<(), saedb_engine::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct OpenOptions<'p> {
    create: bool,
    read_only: bool,
    progress: &'p dyn Progress,
}

impl Default for OpenOptions<'static> {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions<'static> {
    /// Open an existing store for writing, reporting nowhere.
    pub fn new() -> Self {
        OpenOptions {
            create: false,
            read_only: false,
            progress: &NoProgress,
        }
    }
}

impl<'p> OpenOptions<'p> {
    /// Create the store if there is none at the path (a missing or empty directory). A
    /// non-empty directory that is not a store is refused, never written into.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Open for reading only: works while another process writes the store, and sees it as it
    /// was when opened. An older format is read as it is, not upgraded.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Where the upgrade of an older store's format (one pass over its feature blocks) reports
    /// its progress.
    pub fn progress<'q>(self, progress: &'q dyn Progress) -> OpenOptions<'q> {
        OpenOptions {
            create: self.create,
            read_only: self.read_only,
            progress,
        }
    }

    /// Opens (or creates) the store at `path`.
    ///
    /// Errors: [`Error::Store`] when `path` is not a store (missing without `create`, a file,
    /// a directory of something else) or one of a format this build cannot read;
    /// [`Error::Locked`] when another handle has it open for writing; [`Error::InvalidArgument`]
    /// for `create` together with `read_only`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        if self.create && self.read_only {
            return Err(Error::InvalidArgument(
                "a store cannot be created read-only".into(),
            ));
        }
        if self.create && (!path.exists() || is_empty_dir(path)) {
            std::fs::create_dir_all(path.join("db")).map_err(|e| Error::io(path, e))?;
            return Store::open_db(path, false, true, self.progress);
        }
        Store::check_is_store(path, self.create)?;
        Store::open_db(path, self.read_only, false, self.progress)
    }
}

impl Store {
    /// Opens the store at `path`, creating it if it does not exist:
    /// `OpenOptions::new().create(true).open(path)`.
    pub fn create_or_open(path: impl AsRef<Path>) -> Result<Store> {
        OpenOptions::new().create(true).open(path)
    }

    /// Opens an existing store for writing; fails if there is none at `path`. A store in an
    /// older format (docs/RELIABILITY.md) is upgraded first. `OpenOptions::new().open(path)`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        OpenOptions::new().open(path)
    }

    /// Opens an existing store for reading only: `OpenOptions::new().read_only(true).open(path)`.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        OpenOptions::new().read_only(true).open(path)
    }

    fn check_is_store(path: &Path, may_create: bool) -> Result<()> {
        let refuse = |message: &str| {
            Err(Error::Store {
                path: path.into(),
                message: message.into(),
            })
        };
        if !path.exists() {
            return refuse("no such store (a store is created by the first ingest into it)");
        }
        if !path.is_dir() {
            return refuse("not a store (a store is a directory)");
        }
        if !path.join("db").join("CURRENT").exists() {
            return refuse(if may_create {
                "not a saedb store, and not empty: saedb creates a store only in a new or empty directory"
            } else {
                "not a saedb store (no db/ inside)"
            });
        }
        Ok(())
    }

    fn open_db(
        path: &Path,
        read_only: bool,
        creating: bool,
        progress: &dyn Progress,
    ) -> Result<Store> {
        let mut opts = Options::default();
        opts.create_if_missing(creating);
        opts.create_missing_column_families(!read_only);
        opts.set_max_background_jobs(2);
        let db_path = path.join("db");
        let cfs: Vec<ColumnFamilyDescriptor> = column_families(&opts, &db_path, read_only)
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options(name)))
            .collect();
        let db = if read_only {
            DB::open_cf_descriptors_read_only(&opts, &db_path, cfs, false)
        } else {
            DB::open_cf_descriptors(&opts, &db_path, cfs)
        }
        .map_err(|e| {
            if crate::error::is_lock_held(&e) {
                Error::Locked { path: path.into() }
            } else {
                Error::Store {
                    path: path.into(),
                    message: format!("cannot open: {}", e.into_string()),
                }
            }
        })?;
        let mut store = Store {
            path: path.to_path_buf(),
            db,
            read_only,
            catalog: RwLock::new(Catalog::default()),
            writer: Mutex::new(()),
            derived: Derived::default(),
            docs: Mutex::new(HashMap::new()),
            commit_seq: AtomicU64::new(0),
            format_version: FORMAT_VERSION,
        };
        if !read_only {
            store.remove_ingest_dir();
        }
        if creating {
            store.put_meta(META_FORMAT_VERSION, &FORMAT_VERSION.to_be_bytes(), true)?;
            store.write_catalog_alone(&Catalog::default())?;
        }
        store.check_version(progress)?;
        let catalog = store.read_catalog()?;
        *store.catalog.get_mut().map_err(|_| poisoned())? = catalog;
        Ok(store)
    }

    /// The column families feature-major blocks may be in: [`CF_FEATURE_MAJOR`], and version
    /// 3's while it is open (a read-only open of a version 3 store, or an interrupted upgrade).
    pub(crate) fn feature_major_cfs(&self) -> Vec<(&'static str, &ColumnFamily)> {
        [CF_FEATURE_MAJOR, CF_FEATURE_MAJOR_V3]
            .into_iter()
            .filter_map(|name| self.db.cf_handle(name).map(|cf| (name, cf)))
            .collect()
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // Every column family in ALL_CFS is created or opened in open_db.
        self.db
            .cf_handle(name)
            .expect("column family opened with the store")
    }

    pub(crate) fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    fn read_catalog(&self) -> Result<Catalog> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_META), META_CATALOG)?
            .ok_or_else(|| Error::Store {
                path: self.path.clone(),
                message: "not a saedb store (no catalog)".into(),
            })?;
        crate::records::decode_catalog(&bytes)
    }

    pub(crate) fn put_meta(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.put_cf_opt(self.cf(CF_META), key, value, &wo)?;
        Ok(())
    }

    fn write_catalog_alone(&self, catalog: &Catalog) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.put_catalog(&mut batch, catalog)?;
        self.commit(batch)
    }

    pub(crate) fn put_catalog(&self, batch: &mut WriteBatch, catalog: &Catalog) -> Result<()> {
        let bytes = crate::records::encode_catalog(catalog)?;
        batch.put_cf(self.cf(CF_META), META_CATALOG, bytes);
        Ok(())
    }

    /// Writes a batch durably (synced WAL): the commit point of an ingest.
    pub(crate) fn commit(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Removes the folder table files are built in, with anything a crash left there.
    pub(crate) fn remove_ingest_dir(&self) {
        let _ = std::fs::remove_dir_all(self.path.join(INGEST_DIR));
    }

    /// Writes an ingest's blocks of one column family (in key order, under the ingest's fresh
    /// id) as table files and hands them to RocksDB, ahead of the synced commit that makes them
    /// visible. Through a write batch every block was written three times — log, memtable
    /// flush, then compaction — by one thread; table files are built by one thread per column
    /// family, written once, and RocksDB files them at the lowest level their keys leave free
    /// (for token blocks of new documents, the bottom one: never compacted again). A crash
    /// before the commit leaves orphan blocks, as any interrupted ingest does.
    pub(crate) fn ingest_blocks<'a>(
        &self,
        cf: &str,
        ingest_id: u32,
        blocks: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<()> {
        self.ingest_table_files(cf, ingest_id, |w| {
            blocks
                .into_iter()
                .try_for_each(|(key, block)| w.put(key, block))
        })
    }

    /// [`Store::ingest_blocks`] with the entries produced by `fill` (in key order) as it goes,
    /// so that they need not be in memory at once. An error from `fill` abandons the files.
    pub(crate) fn ingest_table_files(
        &self,
        cf: &str,
        ingest_id: u32,
        fill: impl FnOnce(&mut TableFiles<'_>) -> Result<()>,
    ) -> Result<()> {
        let dir = self.path.join(INGEST_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let opts = cf_options(cf);
        let mut tables = TableFiles {
            dir,
            cf: cf.to_string(),
            ingest_id,
            opts: &opts,
            writer: None,
            files: Vec::new(),
        };
        let written = fill(&mut tables).and_then(|()| tables.finish());
        let files = std::mem::take(&mut tables.files);
        let ingested = written.and_then(|()| {
            if files.is_empty() {
                return Ok(());
            }
            let mut io = IngestExternalFileOptions::default();
            io.set_move_files(true);
            Ok(self
                .db
                .ingest_external_file_cf_opts(self.cf(cf), &io, files.clone())?)
        });
        for f in &files {
            // Moved into the database (hard-linked) or abandoned: the name here is not needed.
            let _ = std::fs::remove_file(f);
        }
        ingested
    }

    /// Allocates an ingest id and makes it durable before any data is written under it, so that
    /// ids of interrupted ingests are never reused.
    pub(crate) fn allocate_ingest_id(&self) -> Result<u32> {
        let key = META_NEXT_INGEST_ID;
        let cur = self
            .db
            .get_cf(self.cf(CF_META), key)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(1);
        self.put_meta(key, &(cur + 1).to_be_bytes(), true)?;
        Ok(cur)
    }

    pub(crate) fn ensure_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::InvalidArgument(format!(
                "{} is open read-only",
                self.path.display()
            )))
        } else {
            Ok(())
        }
    }

    /// Commits `batch` together with the catalog that makes it visible, and publishes that
    /// catalog in memory. Readers running meanwhile retry (see [`Store::consistent`]).
    pub(crate) fn commit_with_catalog(
        &self,
        mut batch: WriteBatch,
        catalog: Catalog,
    ) -> Result<()> {
        self.put_catalog(&mut batch, &catalog)?;
        self.commit_seq.fetch_add(1, Ordering::SeqCst);
        let committed = self.commit(batch);
        if committed.is_ok() {
            *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
        }
        self.commit_seq.fetch_add(1, Ordering::SeqCst);
        committed
    }

    /// Runs a read so that it sees no commit half-published: retried if a commit overlapped it.
    pub(crate) fn consistent<T>(&self, read: impl Fn() -> Result<T>) -> Result<T> {
        loop {
            let before = self.commit_seq.load(Ordering::SeqCst);
            if before % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let out = read()?;
            if self.commit_seq.load(Ordering::SeqCst) == before {
                return Ok(out);
            }
        }
    }

    /// Summary of the whole store.
    pub fn info(&self) -> Result<StoreInfo> {
        let c = self.catalog();
        Ok(StoreInfo {
            path: self.path.display().to_string(),
            format_version: self.format_version,
            documents: c.documents,
            tokens: c.tokens,
            dictionaries: c.dictionaries.clone(),
            vocabulary: c.vocabulary.clone(),
            graphs: c.graphs.iter().map(|g| g.info.name.clone()).collect(),
            labels: self.labels()?.len() as u64,
            bytes_on_disk: self.bytes_on_disk(),
        })
    }

    /// Compacts every column family (after bulk ingests: smaller on disk, faster scans).
    pub fn compact(&self) -> Result<()> {
        self.ensure_writable()?;
        for name in ALL_CFS {
            let mut opts = CompactOptions::default();
            if name == CF_STATS {
                // Files moved to the bottom level without a rewrite still hold merge operands,
                // folded again on every read: rewrite them too, so each record is one value.
                opts.set_bottommost_level_compaction(BottommostLevelCompaction::ForceOptimized);
            }
            self.db
                .compact_range_cf_opt(self.cf(name), None::<&[u8]>, None::<&[u8]>, &opts);
        }
        Ok(())
    }

    /// Bytes the store takes on disk (database and index files).
    pub fn bytes_on_disk(&self) -> u64 {
        dir_size(&self.path)
    }

    /// Bytes of table files per column family (what each part of the store costs on disk).
    pub fn bytes_by_part(&self) -> Vec<(&'static str, u64)> {
        ALL_CFS
            .iter()
            .filter_map(|&name| {
                let cf = self.db.cf_handle(name)?; // a read-only version 3 store lacks one
                Some((name, self.table_bytes(cf)))
            })
            .collect()
    }

    /// Bytes of a column family's table files (0 if RocksDB cannot say).
    pub(crate) fn table_bytes(&self, cf: &ColumnFamily) -> u64 {
        self.db
            .property_int_value_cf(cf, "rocksdb.total-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// All dictionaries, in the order they were ingested.
    pub fn dictionaries(&self) -> Vec<DictionaryInfo> {
        self.catalog().dictionaries.clone()
    }

    /// One dictionary by name; `UnknownDictionary` names the ones that exist.
    pub fn dictionary(&self, name: &str) -> Result<DictionaryInfo> {
        self.catalog().dict(name).cloned()
    }

    /// Number of documents stored.
    pub fn document_count(&self) -> Result<u64> {
        Ok(self.catalog().documents)
    }

    /// Reads every chunk of one stored tensor, concatenated.
    pub(crate) fn read_tensor(&self, owner: u32, tensor: Tensor) -> Result<Vec<f32>> {
        let prefix = weights_prefix(owner, tensor);
        let mut out = Vec::new();
        for item in self.db.prefix_iterator_cf(self.cf(CF_WEIGHTS), prefix) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if v.len() % 4 != 0 {
                return Err(Error::Corrupt(format!(
                    "weights chunk of owner {owner} has {} bytes",
                    v.len()
                )));
            }
            out.extend(
                v.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
        Ok(out)
    }

    /// Puts a tensor as little-endian f32 chunks of whole rows, at most ~1 MiB each.
    pub(crate) fn put_tensor(
        &self,
        batch: &mut WriteBatch,
        owner: u32,
        tensor: Tensor,
        data: &[f32],
        row_len: usize,
    ) {
        for (i, chunk) in data
            .chunks(tensor_rows_per_chunk(row_len) * row_len.max(1))
            .enumerate()
        {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            batch.put_cf(
                self.cf(CF_WEIGHTS),
                weights_key(owner, tensor, i as u32),
                bytes,
            );
        }
    }
}

/// Rows of `row_len` float32 values per stored chunk of a tensor: whole rows, at most ~1 MiB
/// (one row when a row is larger). Readers concatenate chunks in key order, so this only sets
/// the size of the values.
pub(crate) fn tensor_rows_per_chunk(row_len: usize) -> usize {
    ((1 << 20) / (4 * row_len.max(1))).max(1)
}

/// A clean close flushes the memtables, so that the next process to open the store does not
/// replay the write-ahead log into memory: a page-fault profile of a CLI latents ingest put 67%
/// of its faults in RocksDB's log recovery of the previous ingest.
impl Drop for Store {
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|name| self.cf(name)).collect();
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        // Nothing is lost if this fails: the log still holds every write.
        let _ = self.db.flush_cfs_opt(&cfs, &fo);
    }
}

/// The column families to open: all of [`ALL_CFS`] (a writable open creates those missing), and
/// version 3's feature-major one where it exists. A read-only open can create nothing, so it
/// opens only those that exist.
fn column_families(opts: &Options, db_path: &Path, read_only: bool) -> Vec<&'static str> {
    let existing = DB::list_cf(opts, db_path).unwrap_or_default();
    let exists = |name: &str| existing.iter().any(|e| e == name);
    ALL_CFS
        .into_iter()
        .filter(|name| !read_only || exists(name))
        .chain(exists(CF_FEATURE_MAJOR_V3).then_some(CF_FEATURE_MAJOR_V3))
        .collect()
}

fn cf_options(name: &str) -> Options {
    let mut o = Options::default();
    if name == CF_TOKEN_MAJOR
        || name == CF_FEATURE_MAJOR
        || name == CF_FEATURE_MAJOR_V3
        || name == CF_WEIGHTS
    {
        // Blocks are Rice-coded already: LZ4 on every flush found little to take (2% of a
        // latents ingest's instructions, mostly wasted). zstd at the bottom level found nothing:
        // the table properties of a compacted medium store show data blocks as large as the
        // raw blocks (RocksDB keeps a block raw when compression saves under 12.5%), while
        // compressing them was 19% of a latents ingest's CPU samples. Weights (float32) keep it.
        o.set_compression_type(DBCompressionType::None);
        let bottom = if name == CF_WEIGHTS {
            DBCompressionType::Zstd
        } else {
            DBCompressionType::None
        };
        o.set_bottommost_compression_type(bottom);
        let mut b = BlockBasedOptions::default();
        b.set_block_size(32 * 1024);
        o.set_block_based_table_factory(&b);
    }
    if name == CF_STATS {
        // Ingests write their statistics as merge operands; RocksDB folds them into the stored
        // record on reads and compactions. A record that does not decode fails the merge, and
        // RocksDB reports the key as corrupt.
        o.set_merge_operator_associative(STATS_MERGE_OPERATOR, |_key, existing, operands| {
            crate::stats::StatsRecord::merge_encoded(existing, operands).ok()
        });
    }
    o
}

/// The name RocksDB records for the statistics merge operator (format version 3 on).
const STATS_MERGE_OPERATOR: &str = "saedb.stats.v1";

/// Where an ingest builds its table files (`<store>/ingest`), emptied when a store opens for
/// writing: files left there by a crash were never part of the database.
const INGEST_DIR: &str = "ingest";
/// A table file of blocks is closed and another begun past this size, so that compactions of
/// one large ingest's blocks work on bounded files.
const TABLE_FILE_BYTES: u64 = 128 << 20;

/// Table files being written for one column family: entries in key order, a new file begun
/// past [`TABLE_FILE_BYTES`]. Each file's path is recorded as it is created, so that even a
/// half-written one is removed.
pub(crate) struct TableFiles<'a> {
    dir: PathBuf,
    cf: String,
    ingest_id: u32,
    opts: &'a Options,
    writer: Option<SstFileWriter<'a>>,
    files: Vec<PathBuf>,
}

impl TableFiles<'_> {
    /// Appends an entry; keys must come in increasing order.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let full = self
            .writer
            .as_ref()
            .is_some_and(|w| w.file_size() >= TABLE_FILE_BYTES);
        if full {
            self.finish()?;
        }
        let w = match &mut self.writer {
            Some(w) => w,
            None => {
                let path = self.dir.join(format!(
                    "{}-{}-{}.sst",
                    self.ingest_id,
                    self.cf,
                    self.files.len()
                ));
                let w = SstFileWriter::create(self.opts);
                self.files.push(path.clone());
                w.open(&path)?;
                self.writer.insert(w)
            }
        };
        w.put(key, value)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.finish()?;
        }
        Ok(())
    }
}

fn is_empty_dir(path: &Path) -> bool {
    path.is_dir()
        && std::fs::read_dir(path)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub(crate) fn poisoned() -> Error {
    Error::Poisoned
}
