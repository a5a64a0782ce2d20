//! The shell driven for real: `saedb shell` in a tmux terminal, typed at with send-keys and read
//! back with capture-pane.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        let o = self.cmd(&args);
        assert!(
            o.status.success(),
            "send-keys: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Types text literally. tmux takes an argument ending in `;` for a command separator, so
    /// a final `;` is escaped.
    fn type_text(&self, text: &str) {
        let escaped = match text.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => text.to_string(),
        };
        self.send(&["-l", &escaped]);
    }

    /// Types a line, then Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.send(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .cmd(&["capture-pane", "-p", "-J", "-S", "-2000", "-t", "t"])
                .stdout,
        )
        .into_owned()
    }

    /// Waits until the screen satisfies `pred`; panics with the screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text after the last occurrence of `marker` on screen.
    fn after(&self, marker: &str) -> String {
        let s = self.screen();
        s.rfind(marker)
            .map(|i| s[i..].to_string())
            .unwrap_or_default()
    }

    fn pane_dead(&self) -> Option<String> {
        let o = self.cmd(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{pane_dead} #{pane_dead_status}",
        ]);
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        s.strip_prefix("1 ").map(str::to_string)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn start(store: &Path, history: &Path) -> Tmux {
    let t = Tmux {
        socket: format!(
            "saedb-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], ""),
    };
    let cmd = format!(
        "env SAEDB_HISTORY='{}' NO_COLOR=1 TERM=xterm '{}' shell '{}'",
        history.display(),
        BIN,
        store.display()
    );
    let o = t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "200",
        "-y",
        "50",
        &cmd,
    ]);
    assert!(
        o.status.success(),
        "tmux new-session: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = t.cmd(&["set-option", "-t", "t", "remain-on-exit", "on"]);
    t
}

#[test]
fn the_shell_in_a_real_terminal() {
    if !tmux_available() {
        eprintln!("skipping the_shell_in_a_real_terminal: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("repl.saedb");
    build_store(&store);
    let history = dir.path().join("history");
    let t = start(&store, &history);
    t.wait_for("the prompt", 30, |s| s.contains("saedb> "));

    // A statement, its result on screen.
    t.line("SHOW DICTIONARIES;");
    t.wait_for("the dictionaries", 30, |s| s.contains("(2 rows)"));
    let shown = t.after("SHOW DICTIONARIES;");
    assert!(shown.contains("L2") && shown.contains("L4"), "{shown}");

    // A statement over two lines: the continuation prompt, then the DESCRIBE with its chart.
    t.line("DESCRIBE");
    t.wait_for("the continuation prompt", 10, |s| s.contains("   ...> "));
    t.line("  L2/3;");
    t.wait_for("the describe", 30, |s| {
        s.contains("activation histogram") || s.contains("error")
    });
    let shown = t.after("DESCRIBE");
    assert!(
        shown.contains("count") && shown.contains("frequency"),
        "{shown}"
    );

    // Tab completion of a keyword.
    t.type_text("show dictio");
    t.send(&["Tab"]);
    t.wait_for("the completed keyword", 10, |s| {
        s.contains("show dictionaries")
    });
    t.line(";");
    t.wait_for("the second listing", 30, |s| {
        s.matches("(2 rows)").count() >= 2
    });

    // JSON output.
    t.line(".format json");
    t.line("NEIGHBOURS OF L2/3 LIMIT 2;");
    t.wait_for("json rows", 30, |s| s.contains("\"cosine\""));
    let shown = t.after("NEIGHBOURS OF L2/3");
    assert!(shown.contains("\"dict\":\"L2\""), "{shown}");
    t.line(".format table");

    // A syntax error: a caret diagnostic, and the shell carries on.
    t.line("TOP 5 ACTIVATONS OF L2/3;");
    t.wait_for("the diagnostic", 10, |s| s.contains("<shell>:1:7: error"));
    let shown = t.after("<shell>:1:7");
    assert!(shown.contains("^^^"), "{shown}");
    t.line("SEARCH LABELS \"zzz-no-such-label\";");
    t.wait_for("the shell to carry on", 30, |s| s.contains("(0 rows)"));

    // Unknown dot-command.
    t.line(".frobnicate");
    t.wait_for("the dot-command error", 10, |s| {
        s.contains("unknown command '.frobnicate'")
    });

    t.line(".quit");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = t.pane_dead() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the shell did not quit:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, "0", "exit status of the shell\n{}", t.screen());
    let screen = t.screen();
    assert!(!screen.contains("panicked"), "{screen}");

    // The history was saved, the multi-line statement as one entry.
    let h = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(h.contains("SHOW DICTIONARIES;"), "history: {h}");
    assert!(h.contains("DESCRIBE"), "history: {h}");
}
