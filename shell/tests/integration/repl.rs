//! The shell driven for real: `saedb shell` in a tmux terminal, typed at with send-keys and read
//! back with capture-pane.

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const EXIT_MARK: &str = "saedb exited with status ";

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

    /// Waits for the shell to ask for input, then types a line and Enter. Keys sent while the
    /// shell is still busy can be lost when line editing restarts (seen on a loaded machine), and
    /// a person types at a prompt anyway.
    fn line(&self, text: &str) {
        self.wait_for("a prompt", 60, |s| {
            let last = s.trim_end().lines().last().unwrap_or_default();
            last.ends_with("saedb>") || last.ends_with("...>")
        });
        self.finish_line(text);
    }

    /// Types the rest of a line already begun (after a completion), then Enter.
    fn finish_line(&self, text: &str) {
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

    /// The exit status of saedb once it has ended.
    fn exit_status(&self) -> Option<String> {
        let s = self.screen();
        let i = s.rfind(EXIT_MARK)?;
        let rest = &s[i + EXIT_MARK.len()..];
        let code: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        (!code.is_empty()).then_some(code)
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

/// Starts `saedb ARGS` in a fresh tmux server, in a 200x50 terminal.
fn start(args: &str, history: &Path) -> Tmux {
    let t = Tmux {
        socket: format!(
            "saedb-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], ""),
    };
    // The exit status is printed by the shell around saedb (tmux's own pane_dead can lag behind
    // a child it has not reaped yet); the sleep keeps the pane readable afterwards.
    let cmd = format!(
        "env SAEDB_HISTORY='{}' NO_COLOR=1 TERM=xterm '{}' {args}; echo \"{EXIT_MARK}$?\"; sleep 600",
        history.display(),
        BIN
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
    t
}

/// Waits for the program in the pane to end; returns its exit status.
fn wait_exit(t: &Tmux) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = t.exit_status() {
            return st;
        }
        if Instant::now() > deadline {
            let pid = t.cmd(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
            let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
            let ps = Command::new("ps")
                .args(["-o", "pid,stat,wchan:32,args", "-p", &pid])
                .output();
            let ps = ps
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!("the shell did not quit:\n{}\n{ps}", t.screen());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let t = start(&format!("shell '{}'", store.display()), &history);
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
    t.finish_line(";");
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

    // Shell commands.
    t.line(".dicts");
    t.wait_for("the dictionary list", 10, |s| {
        s.contains("nonzeros") && s.contains("d_sae")
    });
    t.line(".timer on");
    t.line("SHOW DICTIONARIES;");
    t.wait_for("the timer", 30, |s| s.contains("time: "));
    t.line(".timer off");
    t.line(".help");
    t.wait_for("the help", 10, |s| {
        s.contains(".format table|json|csv") && s.contains("History: /")
    });

    // Ctrl-C drops a statement half typed.
    t.line("TOP 5");
    t.wait_for("the continuation prompt", 10, |s| {
        s.trim_end().ends_with("...>")
    });
    t.send(&["C-c"]);
    t.wait_for("a fresh prompt", 10, |s| s.trim_end().ends_with("saedb>"));

    // A label, then completed inside quotes.
    t.line("LABEL L2/3 AS \"Golden Gate Bridge\";");
    t.wait_for("the label", 30, |s| {
        s.contains("labelled L2/3") || s.contains("| Golden Gate Bridge")
    });
    t.type_text("SEARCH LABELS \"gold");
    t.send(&["Tab"]);
    t.wait_for("the completed label", 10, |s| {
        s.contains("SEARCH LABELS \"Golden Gate Bridge\"")
    });
    t.finish_line(";");
    t.wait_for("the search result", 30, |s| {
        s.matches("Golden Gate Bridge").count() >= 4
    });

    // .read a script: its results, then its error with file:line:col.
    let script = store.with_file_name("tour.sdq");
    std::fs::write(&script, "SHOW DICTIONARIES;\nDESCRIBE L7/1;\n").unwrap();
    t.line(&format!(".read {}", script.display()));
    t.wait_for("the script's error", 30, |s| {
        s.contains("tour.sdq:2:10: error")
    });

    // A line that ends inside a string runs at once: no later line can close it.
    t.line("SEARCH LABELS \"never closed");
    t.wait_for("the unterminated string", 10, |s| {
        s.contains("<shell>:1:15: error: unterminated string")
    });

    // Ctrl-C while a statement runs stops it (here between the statements of a long script);
    // the shell stays, on the same store.
    let long = store.with_file_name("long.sdq");
    std::fs::write(&long, "USE L2;\n".repeat(1_000_000)).unwrap();
    t.line(&format!(".read {}", long.display()));
    t.wait_for("the long script to run", 30, |s| {
        s.matches("using dictionary L2").count() > 3
    });
    t.send(&["C-c"]);
    let shown = t.wait_for("the interrupted script", 60, |s| {
        s.contains("cancelled before this statement ran") && s.trim_end().ends_with("saedb>")
    });
    assert!(shown.contains("long.sdq:"), "{shown}");
    t.line("SHOW GRAPHS;");
    t.wait_for("the shell after the interrupt", 30, |s| {
        s.rfind("SHOW GRAPHS;")
            .is_some_and(|i| s[i..].contains("(0 rows)"))
    });

    // .open another store.
    let other = store.with_file_name("other.saedb");
    ok(&[
        "ingest",
        "tokens",
        other.to_str().unwrap(),
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    t.line(&format!(".open {}", other.display()));
    t.wait_for("the other store", 10, |s| {
        s.contains("other.saedb (no dictionaries)")
    });
    t.line(".open /nonexistent/store");
    t.wait_for("the .open error", 10, |s| {
        s.contains("error: /nonexistent/store: no such store")
    });

    t.line(".quit");
    let status = wait_exit(&t);
    assert_eq!(status, "0", "exit status of the shell\n{}", t.screen());
    let screen = t.screen();
    assert!(!screen.contains("panicked"), "{screen}");

    // The history was saved, the multi-line statement as one entry.
    let h = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(h.contains("SHOW DICTIONARIES;"), "history: {h}");
    assert!(h.contains("DESCRIBE"), "history: {h}");
}

#[test]
fn the_demo_ends_in_the_shell() {
    if !tmux_available() {
        eprintln!("skipping the_demo_ends_in_the_shell: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo.saedb");
    let t = start(
        &format!("demo --store '{}'", store.display()),
        &dir.path().join("history"),
    );
    // The tour loads and runs the models when their files are present: give it time.
    t.wait_for("the shell after the tour", 180, |s| {
        s.contains("Now it is your turn") && s.trim_end().ends_with("saedb>")
    });
    t.line("SHOW DICTIONARIES;");
    // L2 and L4, and SmolLM2's L18 when its files are present.
    t.wait_for("the dictionaries", 30, |s| {
        s.rfind("Now it is your turn")
            .is_some_and(|i| s[i..].contains("(2 rows)") || s[i..].contains("(3 rows)"))
    });
    t.line(".quit");
    assert_eq!(wait_exit(&t), "0", "{}", t.screen());
}
