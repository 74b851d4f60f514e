//! What every bench needs: deterministic test data, and timing child processes side by side
//! with their peak memory.
#![allow(dead_code)]

pub mod datagen;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where bench data and scratch files go (kept between runs; the data is deterministic).
pub fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    dir
}

/// One finished run of a command.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub max_rss_kib: u64,
    pub success: bool,
}

/// Runs `command` to completion, stdout discarded unless redirected, and measures it.
/// Peak RSS comes from `wait4`, so it is the child's own, not the bench's.
pub fn measure(command: &mut Command) -> Measured {
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, and status/usage point to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed for {command:?}");
    std::mem::forget(child); // Reaped above; Child's drop must not wait again.
    Measured {
        wall,
        max_rss_kib: usage.ru_maxrss as u64,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) <= 1,
    }
}

/// Runs each command `runs` times, interleaved so machine noise hits all alike, and returns
/// the median wall time and the largest peak RSS of each.
pub fn compare(runs: usize, commands: &mut [(&str, &mut dyn FnMut() -> Command)]) -> Vec<Measured> {
    summarize(run_interleaved(runs, commands))
}

/// Each command's runs, in order: run `i` of every command was taken side by side.
pub fn run_interleaved(
    runs: usize,
    commands: &mut [(&str, &mut dyn FnMut() -> Command)],
) -> Vec<Vec<Measured>> {
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); commands.len()];
    for _ in 0..runs {
        for (i, (name, make)) in commands.iter_mut().enumerate() {
            let mut command = make();
            command.stdout(Stdio::null());
            let m = measure(&mut command);
            assert!(m.success, "{name} failed");
            results[i].push(m);
        }
    }
    results
}

/// The ratio of `ours` to `baseline` in each pair of side-by-side runs: its median and range,
/// as `0.52× (0.48-0.57)`. A ratio of one pair cancels most of the machine's noise.
pub fn paired_ratio(baseline: &[Measured], ours: &[Measured]) -> String {
    let mut ratios: Vec<f64> = baseline
        .iter()
        .zip(ours)
        .map(|(b, o)| o.wall.as_secs_f64() / b.wall.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    match (ratios.first(), ratios.last()) {
        (Some(low), Some(high)) => format!("{:.2}× ({low:.2}-{high:.2})", ratios[ratios.len() / 2]),
        _ => "-".to_string(),
    }
}

/// The median wall time and the largest peak RSS of each command's runs.
pub fn summarize(results: Vec<Vec<Measured>>) -> Vec<Measured> {
    results
        .into_iter()
        .map(|mut ms| {
            ms.sort_by_key(|m| m.wall);
            let max_rss_kib = ms.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
            Measured {
                max_rss_kib,
                ..ms[ms.len() / 2]
            }
        })
        .collect()
}

/// The release binary cargo built for this bench.
pub fn dropfolder() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dropfolder"));
    command.env("RUST_LOG", "warn").stderr(Stdio::null());
    command
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
