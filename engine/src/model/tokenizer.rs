//! Text ↔ token ids with a HF `tokenizer.json` (the `tokenizers` crate): the tokenizer's own
//! normaliser, pre-tokeniser, model and post-processor, so ids are exactly those the model was
//! trained and referenced with (BERT's `[CLS] … [SEP]`, no BOS for SmolLM2).

use crate::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A loaded `tokenizer.json`.
pub struct TextTokenizer {
    path: PathBuf,
    inner: tokenizers::Tokenizer,
    /// Ids of the added tokens marked `special`.
    special_ids: HashSet<u32>,
}

/// One text as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Per token: whether it is a special token the post-processor added or the text spelled
    /// (`[CLS]`, `<|im_start|>` …), so readers can exclude them.
    pub special: Vec<bool>,
}

impl TextTokenizer {
    pub fn from_file(path: &Path) -> Result<TextTokenizer> {
        if !path.is_file() {
            return Err(Error::bad_input(path, "no such tokenizer file"));
        }
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            Error::bad_input(
                path,
                format!("not a tokenizer.json the tokenizers crate reads: {e}"),
            )
        })?;
        // A tokenizer.json may pad every text to a fixed length and cut longer ones (MiniLM's
        // pads to 128 with [PAD] and cuts there): the model must see exactly the text's tokens,
        // and a text longer than its context is refused by name, never cut.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::bad_input(path, format!("cannot turn truncation off: {e}")))?;
        let special_ids = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        Ok(TextTokenizer {
            path: path.to_path_buf(),
            inner,
            special_ids,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids of `text`, with the tokenizer's special tokens added as its post-processor says.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::bad_input(&self.path, format!("tokenizing failed: {e}")))?;
        let ids = enc.get_ids().to_vec();
        let added: Vec<bool> = enc
            .get_special_tokens_mask()
            .iter()
            .map(|&m| m == 1)
            .collect();
        let special = ids
            .iter()
            .zip(added)
            .map(|(&id, added)| added || self.is_special(id))
            .collect();
        Ok(Encoded { ids, special })
    }

    /// Tokens in the vocabulary, added tokens included: every id it gives is below this.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Whether `id` is one of the tokenizer's special (added, `special: true`) tokens.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// The text of `ids` (special tokens kept, so nothing the model saw is hidden).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| Error::bad_input(&self.path, format!("decoding failed: {e}")))
    }

    /// One token decoded on its own (TransformerLens's `to_str_tokens`).
    pub fn token_text(&self, id: u32) -> Result<String> {
        self.decode(&[id])
    }
}
