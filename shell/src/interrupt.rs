//! Ctrl-C while a statement runs: the statement stops and the shell stays.
//!
//! The handler cancels the flag of the session whose statement is running
//! (`Session::cancel_handle`, the engine's cancellation flag): the engine and the executor stop
//! at their next check with a "cancelled" error, having written nothing half-way. While a line is
//! being typed the terminal is in raw mode, so Ctrl-C reaches the line editor as a key instead
//! (it drops the line) and never comes here.

use saedb_engine::Cancel;
use std::sync::Mutex;

/// The flag Ctrl-C sets: the running session's.
static WATCHED: Mutex<Option<Cancel>> = Mutex::new(None);

/// Exit status after an interrupt (128 + SIGINT), as shells report it.
const INTERRUPTED_STATUS: i32 = 130;

/// Routes Ctrl-C to [`watch`]ed flags from now on (once per process; later calls do nothing).
/// Returns false when the handler cannot be installed: Ctrl-C then ends the process as usual.
pub fn install() -> bool {
    static INSTALLED: Mutex<Option<bool>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    *installed.get_or_insert_with(|| ctrlc::set_handler(on_interrupt).is_ok())
}

/// Makes Ctrl-C cancel `cancel` (the session about to run a statement).
pub fn watch(cancel: Cancel) {
    *WATCHED.lock().unwrap_or_else(|e| e.into_inner()) = Some(cancel);
}

/// A first Ctrl-C asks the running statement to stop; a second one, while the first is not yet
/// honoured (a statement that does not check the flag), ends the process.
fn on_interrupt() {
    let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    match watched.as_ref() {
        Some(cancel) if !cancel.is_set() => cancel.cancel(),
        _ => {
            eprintln!("\ninterrupted again: leaving");
            std::process::exit(INTERRUPTED_STATUS);
        }
    }
}
