//! Long work off the GIL, with progress and cancellation.
//!
//! The engine's work runs on a scoped worker thread; the calling thread (the one that holds the
//! GIL, normally Python's main thread) wakes every 100 ms to hand the progress to the `progress=`
//! callback and to let Python see signals. A Ctrl-C (KeyboardInterrupt) or an exception raised by
//! the callback sets the engine's cancellation flag: the engine stops with `Error::Cancelled`
//! before its commit, so the store stays as it was, and the Python exception is raised.

use crate::errors::engine_error;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use saedb_engine::{Error as EngineError, Progress};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How often the calling thread wakes to report progress and check for Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

/// The engine's view of the Python side: counters it updates, a flag it reads.
#[derive(Default)]
pub struct Reporter {
    phase: Mutex<(String, u64)>,
    done: AtomicU64,
    cancelled: AtomicBool,
    finished: Mutex<bool>,
    wake: Condvar,
}

impl Reporter {
    fn snapshot(&self) -> (String, u64, u64) {
        let (phase, total) = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        (phase, self.done.load(Ordering::Relaxed), total)
    }

    fn mark_finished(&self) {
        if let Ok(mut f) = self.finished.lock() {
            *f = true;
        }
        self.wake.notify_all();
    }

    fn is_finished(&self) -> bool {
        self.finished.lock().map(|f| *f).unwrap_or(true)
    }

    /// Waits until the work is finished or `POLL` has passed.
    fn wait(&self) {
        if let Ok(f) = self.finished.lock() {
            let _ = self.wake.wait_timeout_while(f, POLL, |done| !*done);
        }
    }
}

impl Progress for Reporter {
    fn start(&self, phase: &str, total: u64) {
        if let Ok(mut p) = self.phase.lock() {
            *p = (phase.to_string(), total);
        }
        self.done.store(0, Ordering::Relaxed);
    }

    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn finish(&self) {}

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// What the caller passed as `progress=`: nothing, or a callable `(phase, done, total)`.
pub fn resolve_callback<'py>(
    py: Python<'py>,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match progress {
        // The default: a tqdm bar when tqdm is installed (saedb/_progress.py), else nothing.
        None => {
            let made = py.import("saedb._progress")?.call_method0("default")?;
            Ok((!made.is_none()).then_some(made))
        }
        Some(p) if p.is_instance_of::<pyo3::types::PyBool>() => {
            if p.is_truthy()? {
                let made = py.import("saedb._progress")?.call_method0("default")?;
                Ok((!made.is_none()).then_some(made))
            } else {
                Ok(None)
            }
        }
        Some(p) if p.is_callable() => Ok(Some(p)),
        Some(p) => Err(crate::errors::InputError::new_err(format!(
            "progress= takes a callable (phase, done, total), True, False or None, not {}",
            p.get_type().name()?
        ))),
    }
}

/// Runs `job` on a worker thread with the GIL released, reporting to `callback` and cancelling on
/// Ctrl-C or on an exception from the callback.
pub fn run<T: Send>(
    py: Python<'_>,
    callback: Option<Bound<'_, PyAny>>,
    job: impl FnOnce(&Reporter) -> saedb_engine::Result<T> + Send,
) -> PyResult<T> {
    let reporter = Reporter::default();
    let mut pending: Option<PyErr> = None;
    let mut last: Option<(String, u64, u64)> = None;
    let joined = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let r = job(&reporter);
            reporter.mark_finished();
            r
        });
        loop {
            py.detach(|| reporter.wait());
            let finished = reporter.is_finished();
            let snap = reporter.snapshot();
            if let Some(cb) = &callback {
                if pending.is_none() && last.as_ref() != Some(&snap) && !snap.0.is_empty() {
                    if let Err(e) = cb.call1((snap.0.as_str(), snap.1, snap.2)) {
                        pending = Some(e);
                    }
                    last = Some(snap);
                }
            }
            if pending.is_none() {
                if let Err(e) = py.check_signals() {
                    pending = Some(e);
                }
            }
            if pending.is_some() {
                reporter.cancelled.store(true, Ordering::Relaxed);
            }
            if finished {
                break py.detach(|| worker.join());
            }
        }
    });
    if let Some(cb) = &callback {
        if cb.hasattr("close")? {
            cb.call_method0("close")?;
        }
    }
    let result = joined.map_err(panic_error)?;
    match (result, pending) {
        (Err(EngineError::Cancelled), Some(e)) => Err(e),
        (Err(e), _) => Err(engine_error(py, e)),
        (Ok(v), None) => Ok(v),
        // The interrupt came after the engine's last check: the work is committed. Say so
        // rather than let the caller believe it was undone.
        (Ok(_), Some(e)) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
            Err(PyKeyboardInterrupt::new_err(
                "interrupted after the ingest had committed: its data is in the store",
            ))
        }
        (Ok(_), Some(e)) => Err(e),
    }
}

/// Runs `job` on a worker thread with the GIL released, for work whose cancellation is not a
/// [`Reporter`] (a query session's own flag). The calling thread wakes every `POLL` to let Python
/// see signals; on Ctrl-C it calls `cancel` once, waits for the job to stop at its next check,
/// and returns the job's outcome with the `KeyboardInterrupt` to raise.
pub fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: impl Fn() + Sync,
    job: impl FnOnce() -> T + Send,
) -> PyResult<(T, Option<PyErr>)> {
    let done = Reporter::default();
    let mut interrupt: Option<PyErr> = None;
    let joined = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let out = job();
            done.mark_finished();
            out
        });
        loop {
            py.detach(|| done.wait());
            if interrupt.is_none() {
                if let Err(e) = py.check_signals() {
                    cancel();
                    interrupt = Some(e);
                }
            }
            // The job's own flag, not `is_finished`: the thread may not have exited yet, and
            // spinning until it does costs a time slice on a loaded machine.
            if done.is_finished() {
                break py.detach(|| worker.join());
            }
        }
    });
    let out = joined.map_err(panic_error)?;
    Ok((out, interrupt))
}

/// A panic of the worker thread as the Python error to raise.
fn panic_error(panic: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    crate::errors::Error::new_err(format!("internal error in saedb (a bug): {what}"))
}
