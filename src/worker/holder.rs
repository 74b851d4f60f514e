//! Who holds a lease: `host:pid:start:random`. On the same host a holder whose process is
//! gone (or is another process with the same pid, told apart by its start time) is known to
//! be dead, and its lease can be taken over at once; on another host only expiry tells.

/// This process as a lease holder.
pub fn me() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}:{:08x}",
        host(),
        start_time(pid).unwrap_or_default(),
        fastrand::u32(..)
    )
}

/// Whether `holder` was a process of this host that no longer runs.
pub fn died_here(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host_name), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if host_name != host() {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) => start_time(pid).as_deref() != Some(start),
        Err(_) => false,
    }
}

/// `$HOSTNAME` when set (Kubernetes sets it to the pod name), else the kernel's.
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().replace(':', "-"))
        .unwrap_or_default()
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`), or
/// `None` when there is no such process.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_vanished_one_is_not() {
        let me = me();
        assert!(!died_here(&me), "{me}");
        let host = host();
        assert!(
            died_here(&format!("{host}:4194303:1:deadbeef")),
            "no such pid"
        );
        let pid = std::process::id();
        assert!(
            died_here(&format!("{host}:{pid}:0:deadbeef")),
            "same pid, another start time"
        );
        assert!(
            !died_here(&format!("another-host:{pid}:1:deadbeef")),
            "only expiry tells across hosts"
        );
    }
}
