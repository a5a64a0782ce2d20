//! Hook names of SAE libraries, resolved to [`Site`]s of a model's residual stream.
//!
//! | hook | site |
//! |---|---|
//! | `blocks.L.hook_resid_pre` (SAELens / TransformerLens) | `L` (stream entering block L) |
//! | `blocks.L.hook_resid_post` (SAELens / TransformerLens) | `L + 1` (stream leaving block L) |
//! | `layers.L` (EleutherAI sparsify) | `L + 1` |
//! | `layer_L/…` (Gemma Scope residual SAEs) | `L + 1` |
//! | `model.layers.L`, `encoder.layer.L.output`, `transformer.h.L` (HF module outputs) | `L + 1` |
//! | `hook_embed`, `embeddings` | `0` |
//!
//! Hooks inside a block (`hook_resid_mid`, `hook_mlp_out`, `hook_attn_out`, `hook_z`, MLP or
//! attention sub-modules) are refused with a message: the runtime reads the stream between
//! blocks only.

use super::{ModelConfig, Site};
use crate::{Error, Result};

/// Where `hook` reads in a model shaped like `config`.
pub fn resolve(hook: &str, config: &ModelConfig) -> Result<Site> {
    let (layer, after) = parse(hook)?;
    let site = match layer {
        None => Site(0),
        Some(l) => {
            if l >= config.n_layers {
                return Err(Error::InvalidArgument(format!(
                    "hook '{hook}' names block {l}, but the model has {} blocks (0..{})",
                    config.n_layers,
                    config.n_layers.saturating_sub(1)
                )));
            }
            Site(if after { l + 1 } else { l })
        }
    };
    Ok(site)
}

/// `(layer, after)`: `None` for the embeddings; `after` when the hook reads a block's output.
fn parse(hook: &str) -> Result<(Option<usize>, bool)> {
    let inside = || {
        Error::NotAvailable(format!(
            "hook '{hook}' reads inside a block; saedb's model runtime reads the residual stream \
             between blocks only (blocks.L.hook_resid_pre / hook_resid_post, sparsify layers.L, \
             Gemma Scope layer_L, HF layer outputs)"
        ))
    };
    let unknown = || {
        Error::InvalidArgument(format!(
            "unknown hook '{hook}': expected blocks.L.hook_resid_post (or _pre), sparsify's \
             layers.L, Gemma Scope's layer_L/…, or a HF layer output such as model.layers.L"
        ))
    };
    if matches!(hook, "hook_embed" | "embeddings" | "embed_tokens") {
        return Ok((None, true));
    }
    let number = |s: &str| s.parse::<usize>().map_err(|_| unknown());
    if let Some(rest) = hook.strip_prefix("blocks.") {
        let (l, what) = rest.split_once('.').ok_or_else(unknown)?;
        let l = number(l)?;
        return match what {
            "hook_resid_post" => Ok((Some(l), true)),
            "hook_resid_pre" => Ok((Some(l), false)),
            w if w.starts_with("hook_") || w.starts_with("attn") || w.starts_with("mlp") => {
                Err(inside())
            }
            _ => Err(unknown()),
        };
    }
    if let Some(rest) = hook.strip_prefix("layer_") {
        let l = rest.split('/').next().unwrap_or_default();
        return Ok((Some(number(l)?), true));
    }
    for prefix in [
        "layers.",
        "model.layers.",
        "transformer.h.",
        "h.",
        "encoder.layer.",
    ] {
        if let Some(rest) = hook.strip_prefix(prefix) {
            return match rest.split_once('.') {
                None => Ok((Some(number(rest)?), true)),
                Some((l, "output")) if prefix == "encoder.layer." => Ok((Some(number(l)?), true)),
                Some((l, _)) => {
                    number(l)?;
                    Err(inside())
                }
            };
        }
    }
    Err(unknown())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelArchitecture;

    fn config(n_layers: usize) -> ModelConfig {
        ModelConfig {
            architecture: ModelArchitecture::Llama,
            n_layers,
            d_model: 8,
            d_mlp: 16,
            n_heads: 2,
            n_kv_heads: 2,
            head_dim: 4,
            vocab_size: 10,
            max_positions: 32,
            norm_eps: 1e-5,
            rope_theta: Some(10_000.0),
            tied_embeddings: true,
            attn_softcap: None,
            final_softcap: None,
            sliding_window: None,
            query_pre_attn_scalar: None,
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    #[test]
    fn every_library_names_the_same_stream() {
        let c = config(30);
        for (hook, site) in [
            ("blocks.9.hook_resid_post", 10),
            ("blocks.9.hook_resid_pre", 9),
            ("blocks.0.hook_resid_pre", 0),
            ("layers.9", 10),
            ("layer_9/width_16k/average_l0_71", 10),
            ("model.layers.9", 10),
            ("encoder.layer.1.output", 2),
            ("transformer.h.3", 4),
            ("hook_embed", 0),
            ("blocks.29.hook_resid_post", 30),
        ] {
            assert_eq!(resolve(hook, &c).unwrap(), Site(site), "{hook}");
        }
    }

    #[test]
    fn hooks_outside_the_model_or_inside_a_block_are_refused_by_name() {
        let c = config(30);
        let e = resolve("blocks.30.hook_resid_post", &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("blocks.30.hook_resid_post") && e.contains("30 blocks"),
            "{e}"
        );
        let e = resolve("blocks.3.hook_mlp_out", &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("inside a block"), "{e}");
        let e = resolve("layers.3.mlp", &c).unwrap_err().to_string();
        assert!(e.contains("inside a block"), "{e}");
        let e = resolve("resid", &c).unwrap_err().to_string();
        assert!(e.contains("unknown hook 'resid'"), "{e}");
    }
}
