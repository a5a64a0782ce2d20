//! Progress reporting for long work, without any terminal code: the shell draws the bars.

/// Receives progress of a long operation. Implementations must be cheap: `advance` is called often.
pub trait Progress: Sync {
    /// A new phase begins; `total` is in the phase's own unit (rows, bytes, nonzeros), 0 if unknown.
    fn start(&self, phase: &str, total: u64);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is over.
    fn finish(&self);
}

/// Progress that goes nowhere, for tests and embedders that do not care.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
