//! Progress reporting and cancellation of long work, without any terminal code: the shell draws
//! the bars, and sets the flag on Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Receives progress of a long operation, and may ask it to stop. Implementations must be cheap:
/// `advance` and `is_cancelled` are called often.
pub trait Progress: Sync {
    /// A new phase begins; `total` is in the phase's own unit (rows, bytes, nonzeros), 0 if unknown.
    fn start(&self, phase: &str, total: u64);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is over.
    fn finish(&self);
    /// Whether the caller wants the operation to stop. An ingest or a long read that sees `true`
    /// stops with [`crate::Error::Cancelled`] and leaves the store as it was: an ingest checks
    /// before its commit, never after, so it is either wholly visible or not at all.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Progress that goes nowhere and never cancels, for tests and embedders that do not care.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

/// A cancellation flag to share between the thread running an operation and the one that wants
/// it stopped (a Ctrl-C handler, a web request that went away). Clones share one flag.
///
/// It is itself a [`Progress`] that reports nothing; [`Cancel::with`] wraps another progress
/// so that its bars are drawn and this flag is consulted.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every operation watching this flag to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Clears the flag, for the next operation.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called since the last reset.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `inner`'s progress reporting, cancelled by this flag (or by `inner` itself).
    pub fn with<'a>(&'a self, inner: &'a dyn Progress) -> impl Progress + 'a {
        Cancellable {
            inner,
            cancel: self,
        }
    }
}

impl Progress for Cancel {
    fn start(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
    fn is_cancelled(&self) -> bool {
        self.is_set()
    }
}

struct Cancellable<'a> {
    inner: &'a dyn Progress,
    cancel: &'a Cancel,
}

impl Progress for Cancellable<'_> {
    fn start(&self, phase: &str, total: u64) {
        self.inner.start(phase, total)
    }
    fn advance(&self, n: u64) {
        self.inner.advance(n)
    }
    fn finish(&self) {
        self.inner.finish()
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.is_set() || self.inner.is_cancelled()
    }
}

/// `Err(Cancelled)` once `progress` asks to stop: the check every long loop makes.
pub(crate) fn check_cancelled(progress: &dyn Progress) -> crate::Result<()> {
    if progress.is_cancelled() {
        Err(crate::Error::Cancelled)
    } else {
        Ok(())
    }
}
