//! Which `cfg.json` settings saedb reads, and which are known not to change what an SAE's
//! `encode` computes. Any other setting is refused with its name and value: a setting saedb
//! does not know might change the codes (as SAELens's `rescale_acts_by_decoder_norm` and
//! sparsify's `activation` did), and a silently wrong code is worse than a refusal.
//! docs/FORMATS.md lists both sets; keep them in step.

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// SAELens settings the loader reads (and refuses values of that it does not implement).
pub(crate) const SAELENS_READ: &[&str] = &[
    "architecture",
    "activation_fn",
    "activation_fn_str",
    "activation_fn_kwargs",
    "k",
    "d_in",
    "d_sae",
    "apply_b_dec_to_input",
    "normalize_activations",
    "rescale_acts_by_decoder_norm",
    "reshape_activations",
    "finetuning_scaling_factor",
    "metadata",
    "hook_name",
    "hook_point",
    "hook_layer",
    "hook_point_layer",
    "model_name",
];

/// SAELens settings that do not change `encode` as SAELens 6.54.12 computes it: where the
/// model, hook, dataset and run came from (`LLM_METADATA_KEYS` and the runner's fields), the
/// training-only coefficients of each architecture, and the dtype and device SAELens computes
/// in (saedb computes in float32 from the stored weights, which equals SAELens loaded with
/// `dtype="float32"`).
pub(crate) const SAELENS_HARMLESS: &[&str] = &[
    // where the SAE reads from and what it was trained on
    "model_class_name",
    "hook_head_index",
    "hook_point_head_index",
    "hook_name_out",
    "hook_head_index_out",
    "hf_hook_name",
    "hf_hook_name_out",
    "hf_hook_point",
    "hook_eval",
    "model_from_pretrained_kwargs",
    "model_kwargs",
    "prepend_bos",
    "exclude_special_tokens",
    "neuronpedia_id",
    "context_size",
    "seqpos_slice",
    "dataset_path",
    "dataset_trust_remote_code",
    "is_dataset_tokenized",
    "streaming",
    "use_chat_formatting",
    "disable_concat_sequences",
    "sequence_separator_token",
    "sae_lens_version",
    "sae_lens_training_version",
    "dtype",
    "device",
    "llm_device",
    "act_store_device",
    "seed",
    "training_tokens",
    "total_training_tokens",
    "total_training_steps",
    // training-only coefficients and choices (the loss, not the encoder)
    "decoder_init_norm",
    "use_sparse_activations",
    "aux_loss_coefficient",
    "l1_coefficient",
    "lp_norm",
    "l1_warm_up_steps",
    "l0_coefficient",
    "l0_warm_up_steps",
    "jumprelu_init_threshold",
    "jumprelu_bandwidth",
    "jumprelu_sparsity_loss_mode",
    "jumprelu_tanh_scale",
    "jumprelu_ste_to_input",
    "pre_act_loss_coefficient",
    "target_l0",
    "expansion_factor",
    "b_dec_init_method",
    "lr",
    "lr_end",
    "lr_scheduler_name",
    "lr_warm_up_steps",
    "lr_decay_steps",
    "n_restart_cycles",
    "adam_beta1",
    "adam_beta2",
    "train_batch_size_tokens",
    "store_batch_size_prompts",
    "n_batches_in_buffer",
    "dead_feature_window",
    "feature_sampling_window",
    "dead_feature_threshold",
    "use_ghost_grads",
    "mse_loss_normalization",
    "scale_sparsity_penalty_by_decoder_norm",
    "normalize_sae_decoder",
    "decoder_heuristic_init",
    "decoder_orthogonal_init",
    "init_encoder_as_decoder_transpose",
    "noise_scale",
    "n_checkpoints",
    "checkpoint_path",
    "save_final_checkpoint",
    "output_path",
    "resume_from_checkpoint",
    "verbose",
    "log_to_wandb",
    "wandb_project",
    "wandb_entity",
    "wandb_id",
    "wandb_log_frequency",
    "run_name",
    "autocast",
    "autocast_lm",
    "compile_llm",
    "compile_sae",
    "n_eval_batches",
    "eval_batch_size_prompts",
    "n_batches_for_norm_estimate",
];

/// sparsify (`SparseCoderConfig` and `d_in`) settings the loader reads.
pub(crate) const SPARSIFY_READ: &[&str] = &[
    "activation",
    "k",
    "num_latents",
    "expansion_factor",
    "d_in",
    "transcode",
    "model",
];

/// sparsify settings that do not change `encode` in eai-sparsify 1.3.3: `normalize_decoder`
/// and `multi_topk` act in training only; `skip_connection` adds `x @ W_skip` to the decoder's
/// output, after the code.
pub(crate) const SPARSIFY_HARMLESS: &[&str] =
    &["normalize_decoder", "multi_topk", "skip_connection"];

/// Refuses the first setting of `cfg` that is in neither list, naming it and its value.
pub(crate) fn refuse_unknown(
    cfg_path: &Path,
    cfg: &Map<String, Value>,
    library: &str,
    read: &[&str],
    harmless: &[&str],
) -> Result<()> {
    let unknown = cfg
        .iter()
        .find(|(key, _)| !read.contains(&key.as_str()) && !harmless.contains(&key.as_str()));
    match unknown {
        None => Ok(()),
        Some((key, value)) => Err(Error::bad_input(
            cfg_path,
            format!(
                "unknown {library} setting '{key}' = {}: saedb does not know whether it changes \
                 what the SAE's encode computes, so it refuses the SAE rather than risk wrong \
                 codes (docs/FORMATS.md lists the settings read and those known to be harmless)",
                short(value)
            ),
        )),
    }
}

/// A JSON value as an error message shows it: at most 80 characters.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 80 {
        s
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}
