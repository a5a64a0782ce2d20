//! Importing labels made elsewhere (`saedb ingest labels`): all entries are checked first, then
//! written in one synced batch, so a file with one bad line changes nothing.

use crate::formats::labels::{read_label_file, LabelEntry, LabelFormat};
use crate::keys::{feature_key, CF_LABELS};
use crate::store::Store;
use crate::types::FeatureRef;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// The longest label the store keeps, in bytes (the same bound as `Store::set_label`).
pub const MAX_LABEL_BYTES: usize = 4096;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelImportReport {
    pub path: String,
    pub dictionary: String,
    /// Entries read from the file.
    pub entries: u64,
    /// Features that had no label before.
    pub new: u64,
    /// Features whose label changed.
    pub replaced: u64,
    /// Entries that changed nothing: an empty description, a feature given again later in the
    /// file (the first one wins, as Neuronpedia lists a feature's best explanation first), or
    /// the label the feature has already.
    pub skipped: u64,
    pub skipped_empty: u64,
    pub skipped_duplicate: u64,
    pub skipped_unchanged: u64,
}

impl Store {
    /// Imports the labels of `path` (Neuronpedia explanation exports as JSON or JSON lines,
    /// or CSV `feature,label`) into dictionary `dict`, all or nothing: a feature out of range
    /// or a label too long refuses the whole file, naming its line.
    pub fn import_labels(&self, dict: &str, path: &Path) -> Result<LabelImportReport> {
        self.ensure_writable()?;
        let info = self.dictionary(dict)?;
        let (format, entries) = read_label_file(path)?;
        let mut report = LabelImportReport {
            path: path.display().to_string(),
            dictionary: info.name.clone(),
            entries: entries.len() as u64,
            ..Default::default()
        };
        let mut seen = HashSet::new();
        let mut batch = rocksdb::WriteBatch::default();
        for e in &entries {
            let feature = checked_feature(path, format, &info, e)?;
            if e.label.is_empty() {
                report.skipped_empty += 1;
            } else if !seen.insert(feature) {
                report.skipped_duplicate += 1;
            } else {
                match self.label(&FeatureRef::new(&info.name, feature))? {
                    Some(old) if old == e.label => report.skipped_unchanged += 1,
                    Some(_) => report.replaced += 1,
                    None => report.new += 1,
                }
                batch.put_cf(
                    self.cf(CF_LABELS),
                    feature_key(info.id, feature),
                    e.label.as_bytes(),
                );
            }
        }
        report.skipped = report.skipped_empty + report.skipped_duplicate + report.skipped_unchanged;
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(report)
    }
}

fn checked_feature(
    path: &Path,
    format: LabelFormat,
    info: &crate::DictionaryInfo,
    e: &LabelEntry,
) -> Result<u32> {
    let place = match format {
        LabelFormat::JsonArray => "element",
        LabelFormat::JsonLines | LabelFormat::Csv => "line",
    };
    let at =
        |m: String| Error::bad_input(path, format!("{place} {}: {m}; nothing was imported", e.at));
    let feature = u32::try_from(e.feature)
        .ok()
        .filter(|&f| f < info.d_sae)
        .ok_or_else(|| {
            at(format!(
                "feature {} is out of range for dictionary '{}' (it has {} features, 0..{})",
                e.feature, info.name, info.d_sae, info.d_sae
            ))
        })?;
    if e.label.len() > MAX_LABEL_BYTES {
        return Err(at(format!(
            "the label of feature {feature} has {} bytes (at most {MAX_LABEL_BYTES})",
            e.label.len()
        )));
    }
    Ok(feature)
}
