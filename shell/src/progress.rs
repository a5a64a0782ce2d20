//! Progress bars for long ingests: an adapter from the engine's [`Progress`] trait to indicatif.
//!
//! Bars are drawn on stderr, and only when stderr is a terminal, so that scripts and pipes see
//! nothing but the one-line summary on stdout.

use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use saedb_engine::Progress;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Draws one indicatif bar per phase of a long operation.
pub struct Bars {
    enabled: bool,
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    /// Bars that draw when stderr is a terminal, and stay silent otherwise.
    pub fn for_stderr() -> Bars {
        Bars::new(std::io::stderr().is_terminal())
    }

    pub fn new(enabled: bool) -> Bars {
        Bars {
            enabled,
            current: Mutex::new(None),
        }
    }

    fn bar(&self) -> Option<ProgressBar> {
        self.current.lock().ok().and_then(|g| g.clone())
    }

    /// Clears whatever bar is still drawn (on error, before the error line).
    pub fn abandon(&self) {
        if let Ok(mut g) = self.current.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.abandon();
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let pb = if total > 0 {
            let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner:.green} {msg:<28} [{bar:32.cyan/blue}] {human_pos}/{human_len} {elapsed:>4}{eta_if_known}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("eta_if_known", eta_if_known)
                .progress_chars("=> "),
            );
            pb
        } else {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{spinner:.green} {msg:<28} {human_pos} {elapsed:>4}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            pb
        };
        pb.set_message(phase.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut g) = self.current.lock() {
            if let Some(old) = g.replace(pb) {
                old.finish_and_clear();
            }
        }
    }

    fn advance(&self, n: u64) {
        if let Some(pb) = self.bar() {
            pb.inc(n);
        }
    }

    fn finish(&self) {
        if let Ok(mut g) = self.current.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }
}

/// `, eta 12s` once some progress was made (an ETA from no progress is a guess, so none).
fn eta_if_known(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    if state.pos() > 0 && state.pos() < state.len().unwrap_or(0) {
        let _ = write!(w, ", eta {}", HumanDuration(state.eta()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_bars_accept_every_call() {
        let b = Bars::new(false);
        b.start("phase", 10);
        b.advance(3);
        b.finish();
        b.advance(1);
        b.finish();
    }

    #[test]
    fn enabled_bars_survive_out_of_order_calls() {
        let b = Bars::new(true);
        b.advance(1);
        b.finish();
        b.start("a", 0);
        b.advance(5);
        b.start("b", 3);
        b.advance(5);
        b.finish();
    }
}
