//! Opening a store of an older format version: a read-only open reads it as it is; a writable
//! open upgrades it in resumable steps (docs/STORAGE.md, "Version history").

use crate::keys::*;
use crate::progress::Progress;
use crate::store::{Store, FORMAT_VERSION};
use crate::{Error, Result};
use rocksdb::{IteratorMode, WriteBatch};

/// The older versions this build opens. Version 3 keeps feature-major blocks feature first in
/// another column family ([`CF_FEATURE_MAJOR_V3`]); version 2 also has the statistics records'
/// older layout. A read-only open reads them as they are; a writable open upgrades the store
/// in steps that each record their version (so an interrupted upgrade resumes on the next
/// open): version 2's records are re-encoded with version 3 in one synced batch, then the
/// blocks move to the current column family and version 4 is recorded.
const UPGRADABLE_VERSIONS: [u32; 2] = [2, 3];

impl Store {
    /// Reads the recorded format version; upgrades an older one on a writable open.
    pub(crate) fn check_version(&mut self, progress: &dyn Progress) -> Result<()> {
        let v = self.db.get_cf(self.cf(CF_META), META_FORMAT_VERSION)?;
        let bytes: [u8; 4] = v
            .as_deref()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Store {
                path: self.path.clone(),
                message: "not a saedb store (no format version recorded)".into(),
            })?;
        let found = u32::from_be_bytes(bytes);
        if UPGRADABLE_VERSIONS.contains(&found) {
            if self.read_only {
                self.format_version = found;
                return Ok(());
            }
            if found == 2 {
                self.upgrade_stats_records()?;
            }
            return self.move_feature_blocks(progress);
        }
        if found == FORMAT_VERSION && !self.read_only {
            // Version 4 was recorded, but the process stopped before the emptied column family
            // of version 3 was dropped.
            self.drop_feature_major_v3()?;
        }
        if found != FORMAT_VERSION {
            return Err(Error::Store {
                path: self.path.clone(),
                message: format!(
                    "store format version {found}, but this saedb reads version {FORMAT_VERSION}; \
                     use the saedb release that wrote it, or re-ingest into a new store"
                ),
            });
        }
        Ok(())
    }

    /// Format version 2 → 3: every statistics record re-encoded in the compact layout, with
    /// version 3, in one synced batch (a crash leaves the store at version 2, intact).
    fn upgrade_stats_records(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(self.cf(CF_STATS), IteratorMode::Start) {
            let (key, value) = item?;
            let record = crate::stats::decode_v2(&value)?;
            batch.put_cf(self.cf(CF_STATS), key, record.encode());
        }
        batch.put_cf(self.cf(CF_META), META_FORMAT_VERSION, 3u32.to_be_bytes());
        self.commit(batch)
    }

    /// Format version 3 → 4: every feature-major block moves to [`CF_FEATURE_MAJOR`] under its
    /// ingest-first key (the block's bytes unchanged), in batches that each move their blocks
    /// atomically; then version 4 is recorded (synced, which syncs the batches before it) and
    /// the emptied column family dropped. Interrupted, the store stays at version 3 with each
    /// block in one of the two column families, which reads use both of; the next writable
    /// open moves the rest. Costs one pass over the blocks.
    fn move_feature_blocks(&mut self, progress: &dyn Progress) -> Result<()> {
        const BATCH_BYTES: usize = 64 << 20;
        if let Some(old) = self.db.cf_handle(CF_FEATURE_MAJOR_V3) {
            progress.start("upgrading the store to format 4", self.table_bytes(old));
            let new = self.cf(CF_FEATURE_MAJOR);
            let mut batch = WriteBatch::default();
            for item in self.db.iterator_cf(old, IteratorMode::Start) {
                let (key, block) = item?;
                batch.put_cf(new, key_v3_to_v4(&key)?, &block);
                batch.delete_cf(old, key);
                progress.advance(block.len() as u64);
                if batch.size_in_bytes() >= BATCH_BYTES {
                    self.db.write(std::mem::take(&mut batch))?;
                }
            }
            self.db.write(batch)?;
            progress.finish();
        }
        self.put_meta(META_FORMAT_VERSION, &FORMAT_VERSION.to_be_bytes(), true)?;
        self.drop_feature_major_v3()
    }

    fn drop_feature_major_v3(&mut self) -> Result<()> {
        if self.db.cf_handle(CF_FEATURE_MAJOR_V3).is_some() {
            self.db.drop_cf(CF_FEATURE_MAJOR_V3)?;
        }
        Ok(())
    }
}

/// A version 3 feature-major key, `dict | feature | ingest | chunk`, in version 4's order.
fn key_v3_to_v4(key: &[u8]) -> Result<[u8; 16]> {
    let fields = (
        field(key, 0),
        block_feature(CF_FEATURE_MAJOR_V3, key),
        block_ingest_id(CF_FEATURE_MAJOR_V3, key),
        field(key, 3),
    );
    match fields {
        (Some(dict), Some(feature), Some(ingest), Some(chunk)) if key.len() == 16 => {
            Ok(feature_major_key(dict, ingest, feature, chunk))
        }
        _ => Err(Error::Corrupt(format!(
            "a feature-major key of {} bytes (16 expected)",
            key.len()
        ))),
    }
}
