//! `saedb`: the command-line tool of saedb — ingest, info, query, run, shell, demo, serve and export.

mod cli;
mod commands;
mod demo;
mod editing;
mod interrupt;
mod output;
mod progress;
mod repl;
mod statements;
mod stores;
mod web;

use clap::Parser;
use std::process::ExitCode;

/// Ingest encodes blocks on every core; mimalloc keeps per-thread allocation cheap (see
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version on stdout (exit 0) and usage errors on stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::report_error(&e);
            ExitCode::from(1)
        }
    }
}

/// A panic is a bug, never the user's fault: say so in one line instead of a backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown panic".to_string()
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {}{at} (this is a bug in saedb; please report it)",
            output::one_line(&msg)
        );
    }));
}
