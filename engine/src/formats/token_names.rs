//! The strings of token ids, for documents made from a delphi cache's `tokens` matrix: a
//! Hugging Face `tokenizer.json` (read and decoded by the `tokenizers` crate, so a token reads as
//! the model's text, `" the"` rather than `"Ġthe"`) or a `vocab.txt` (one token per line, line
//! number = id, taken as it is).

use super::vocab::read_vocabulary;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How token ids become strings.
pub enum TokenNames {
    Tokenizer {
        path: PathBuf,
        tokenizer: Box<tokenizers::Tokenizer>,
    },
    List {
        path: PathBuf,
        tokens: Vec<String>,
    },
}

impl TokenNames {
    /// A `.json` file is a Hugging Face tokenizer; anything else a `vocab.txt`.
    pub fn open(path: &Path) -> Result<TokenNames> {
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let tokenizer = tokenizers::Tokenizer::from_file(path).map_err(|e| {
                Error::bad_input(path, format!("not a Hugging Face tokenizer.json: {e}"))
            })?;
            Ok(TokenNames::Tokenizer {
                path: path.to_path_buf(),
                tokenizer: Box::new(tokenizer),
            })
        } else {
            Ok(TokenNames::List {
                path: path.to_path_buf(),
                tokens: read_vocabulary(path)?
                    .into_iter()
                    .map(Option::unwrap_or_default)
                    .collect(),
            })
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            TokenNames::Tokenizer { path, .. } | TokenNames::List { path, .. } => path,
        }
    }

    /// Ids `0..len()` have a string.
    pub fn len(&self) -> usize {
        match self {
            TokenNames::Tokenizer { tokenizer, .. } => tokenizer.get_vocab_size(true),
            TokenNames::List { tokens, .. } => tokens.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The string of one token: decoded alone (a byte-level piece of a character reads as
    /// U+FFFD), or the vocabulary line.
    fn token(&self, id: u32) -> Result<String> {
        match self {
            TokenNames::Tokenizer { path, tokenizer } => tokenizer
                .decode(&[id], false)
                .map_err(|e| Error::bad_input(path, format!("decoding token id {id}: {e}"))),
            TokenNames::List { tokens, .. } => Ok(tokens[id as usize].clone()),
        }
    }

    /// The text of a whole sequence (tokenizer.json only: a vocabulary list cannot join pieces).
    pub fn text(&self, ids: &[u32]) -> Result<Option<String>> {
        match self {
            TokenNames::Tokenizer { path, tokenizer } => tokenizer
                .decode(ids, false)
                .map(Some)
                .map_err(|e| Error::bad_input(path, format!("decoding a sequence: {e}"))),
            TokenNames::List { .. } => Ok(None),
        }
    }

    /// The strings of `ids`, each id decoded once; `where_(i)` names position `i` when an id is
    /// outside the vocabulary.
    pub fn tokens(
        &self,
        ids: &[u32],
        cache: &mut HashMap<u32, String>,
        where_: impl Fn(usize) -> String,
    ) -> Result<Vec<String>> {
        let n = self.len();
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                if id as usize >= n {
                    return Err(Error::bad_input(
                        self.path(),
                        format!(
                            "{}: token id {id} is not in this vocabulary of {n} tokens",
                            where_(i)
                        ),
                    ));
                }
                if let Some(s) = cache.get(&id) {
                    return Ok(s.clone());
                }
                let s = self.token(id)?;
                cache.insert(id, s.clone());
                Ok(s)
            })
            .collect()
    }
}
