//! SAMPLE … FROM QUANTILE q OF n: the engine picks (`Store::sample_quantile`), this renders.

use super::{Exec, MAX_QUANTILES, R};
use crate::ast::*;
use crate::error::ErrorKind;
use crate::result::{ResultKind, ResultSet, Value};
use saedb_engine::QuantileQuery;

impl Exec<'_> {
    pub(super) fn sample(
        &self,
        k: &Spanned<u64>,
        feature: &FeatureArg,
        quantile: &Spanned<u64>,
        of: &Spanned<u64>,
        options: &ActivationOptions,
    ) -> R<ResultSet> {
        let n = self.count(k, "SAMPLE")?;
        if of.value == 0 || of.value > MAX_QUANTILES {
            return Err(self.err(
                of.span,
                ErrorKind::Invalid,
                format!("the number of quantiles must be between 1 and {MAX_QUANTILES}"),
            ));
        }
        if quantile.value == 0 || quantile.value > of.value {
            return Err(self
                .err(
                    quantile.span,
                    ErrorKind::Invalid,
                    format!("quantile {} does not exist", quantile.value),
                )
                .with_hint(format!(
                    "quantiles are numbered 1 (weakest) to {} (strongest)",
                    of.value
                )));
        }
        let context = self.context_len(options)?;
        let f = self.feature(feature)?;
        let filter = self.activation_filter(options)?;
        let query = QuantileQuery {
            k: n,
            quantile: quantile.value as usize,
            of: of.value as usize,
        };
        let sample = self
            .store
            .sample_quantile(&f, query, filter.as_ref(), self.cancel)
            .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = self.activation_rows(ResultKind::Sample, &sample.picks, context)?;
        rs.title = Some(self.title_for(
            format!(
                "SAMPLE {n} ACTIVATIONS OF {f} FROM QUANTILE {} OF {}",
                quantile.value, of.value
            ),
            &f,
        ));
        rs.note = Some(if sample.size == 0 {
            format!(
                "quantile {} of {} is empty ({} activations in all)",
                quantile.value, of.value, sample.total
            )
        } else {
            let shown =
                |v: f32| crate::render::format_float(Value::from_f32(v).as_f64().unwrap_or(0.0));
            format!(
                "quantile {} of {}: {} of {} activations, values {} to {}; {} picked evenly",
                quantile.value,
                of.value,
                sample.size,
                sample.total,
                shown(sample.lo),
                shown(sample.hi),
                sample.picks.len()
            )
        });
        self.order(&mut rs, &options.order)?;
        Ok(rs)
    }
}
