//! A long-running `dropfolder` under test (`watch`, or a `run` to interrupt): its log lines
//! and stdout collected as they come, the address `watch` serves on (it binds `127.0.0.1:0`
//! and logs the port), GETs against it, SIGTERM, and a kill on drop so a failed test leaves
//! nothing running.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    pub addr: String,
}

/// Collects what `from` prints, line by line, on a thread of its own.
fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line);
            }
        }
    });
    lines
}

impl Daemon {
    /// Starts `dropfolder --config CONFIG ARGS...`.
    pub fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dropfolder"));
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start dropfolder");
        let lines = collect(child.stderr.take().expect("piped stderr"));
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        Daemon {
            child,
            lines,
            stdout,
            addr: String::new(),
        }
    }

    /// Starts `dropfolder --config CONFIG watch` and waits until it serves.
    pub fn watch(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon::start(config, &["watch"], env);
        let line = daemon.wait_for_line("watching", Duration::from_secs(60));
        daemon.addr = line
            .split("listen=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no listen= in {line:?}"))
            .to_string();
        daemon
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .map(|l| l.iter().map(|l| format!("{l}\n")).collect())
            .unwrap_or_default()
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits for the `n`th log line containing `needle`, panicking with the log on timeout.
    pub fn wait_for_count(&mut self, needle: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(line) = log.iter().filter(|l| l.contains(needle)).nth(n - 1) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "watch exited ({status}) before {needle:?}:\n{}",
                    log.join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {timeout:?}:\n{}",
                log.join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_count(needle, 1, timeout)
    }

    /// GET `path` from the daemon's endpoint: status code and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = response.status().as_u16();
        (code, response.text().await.unwrap_or_default())
    }

    /// `/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// Sends SIGHUP (`watch` reloads its config).
    pub fn hangup(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Lets the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "watch did not exit within {timeout:?} of SIGTERM:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
