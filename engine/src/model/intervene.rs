//! Edits of the residual stream by one SAE feature, at every position they see:
//!
//! - **clamp** (Templeton et al. 2024): `x → x + (v − f_i(x))·W_dec[i]`, where `f_i(x)` is the
//!   feature's code under the SAE's own encoding. Only the feature's share of the reconstruction
//!   changes; the SAE's error term `x − x̂` is kept. `v = 0` ablates the feature.
//! - **steer** (Neuronpedia's simple additive): `x → x + a·W_dec[i]`.
//!
//! Both act on a `[T, d_model]` block of the stream: prompt positions in the prefill, then each
//! generated position as it is fed back.

use super::{tensor_err, Site};
use crate::encode::Encoder;
use crate::formats::sae::Sae;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::sync::Arc;

enum Edit {
    Clamp { encoder: Arc<Encoder>, value: f32 },
    Steer { alpha: f32 },
}

/// One feature's edit at one site of the stream.
pub struct Intervention {
    site: Site,
    feature: u32,
    /// `W_dec[i]` as `[1, d_model]`.
    direction: Tensor,
    edit: Edit,
}

/// `W_dec[feature]` of `sae`, checked.
fn direction(sae: &Sae, feature: u32) -> Result<Tensor> {
    let i = feature as usize;
    if i >= sae.d_sae {
        return Err(Error::InvalidArgument(format!(
            "feature {feature} is out of range for an SAE of {} features (0..{})",
            sae.d_sae, sae.d_sae
        )));
    }
    let row = &sae.w_dec[i * sae.d_in..(i + 1) * sae.d_in];
    Tensor::from_slice(row, (1, sae.d_in), &Device::Cpu).map_err(tensor_err)
}

impl Intervention {
    /// Clamp `feature` of `sae` to `value` at `site`. `encoder` must be `sae`'s (shared between
    /// interventions on one dictionary).
    pub fn clamp(
        sae: &Sae,
        encoder: Arc<Encoder>,
        site: Site,
        feature: u32,
        value: f32,
    ) -> Result<Intervention> {
        if !value.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "clamp value {value} is not a finite number"
            )));
        }
        Ok(Intervention {
            site,
            feature,
            direction: direction(sae, feature)?,
            edit: Edit::Clamp { encoder, value },
        })
    }

    /// Add `alpha · W_dec[feature]` at `site`.
    pub fn steer(sae: &Sae, site: Site, feature: u32, alpha: f32) -> Result<Intervention> {
        if !alpha.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "steering coefficient {alpha} is not a finite number"
            )));
        }
        Ok(Intervention {
            site,
            feature,
            direction: direction(sae, feature)?,
            edit: Edit::Steer { alpha },
        })
    }

    pub fn site(&self) -> Site {
        self.site
    }

    pub fn feature(&self) -> u32 {
        self.feature
    }

    /// The edited stream (`x`: `[T, d_model]`).
    pub(crate) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match &self.edit {
            Edit::Steer { alpha } => {
                let delta = (&self.direction * f64::from(*alpha)).map_err(tensor_err)?;
                x.broadcast_add(&delta).map_err(tensor_err)
            }
            Edit::Clamp { encoder, value } => {
                let (t, d) = x.dims2().map_err(tensor_err)?;
                if d != encoder.d_in() {
                    return Err(Error::Mismatch(format!(
                        "the SAE reads {} values per token but the model's stream is {d} wide",
                        encoder.d_in()
                    )));
                }
                let rows = super::ops::to_vec_f32(x).map_err(tensor_err)?;
                let codes = encoder.encode(&rows, t)?;
                let coef: Vec<f32> = codes
                    .iter()
                    .map(|row| {
                        let f = row
                            .binary_search_by_key(&self.feature, |&(i, _)| i)
                            .map_or(0.0, |j| row[j].1);
                        value - f
                    })
                    .collect();
                let coef = Tensor::from_vec(coef, (t, 1), &Device::Cpu).map_err(tensor_err)?;
                let delta = coef.broadcast_mul(&self.direction).map_err(tensor_err)?;
                (x + delta).map_err(tensor_err)
            }
        }
    }
}
