//! CPU time and memory of a server process, from Linux `/proc/<pid>/{stat,status}`, so a report
//! can state server CPU-seconds per GB produced and RSS (BENCHMARKING.md asks for both).

/// One reading of a process's counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcSample {
    /// User + system CPU time since the process started, seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`).
    pub rss_peak_bytes: u64,
}

/// Parses `utime + stime` (clock ticks) out of a `/proc/<pid>/stat` line. The command name in
/// parentheses may contain spaces, so fields are counted after the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3 of the line; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` value of `/proc/<pid>/status`, in bytes.
pub fn status_bytes(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Reads the counters of `pid`; `None` when the process is gone or `/proc` is unavailable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_s: cpu_ticks(&stat)? as f64 / ticks_per_second(),
        rss_bytes: status_bytes(&status, "VmRSS").unwrap_or(0),
        rss_peak_bytes: status_bytes(&status, "VmHWM").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "4242 (sprawl shard) S 1 4242 4242 0 -1 4194560 2177 0 0 0 150 37 0 0 20 0 3 0 9999 1 2 3";
        assert_eq!(cpu_ticks(stat), Some(187));
        let status = "Name:\tsprawl\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(10_485_760));
        assert_eq!(status_bytes(status, "VmHWM"), Some(20_971_520));
        assert_eq!(status_bytes(status, "VmSwap"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("/proc is available on Linux");
        assert!(s.rss_bytes > 0 && s.rss_peak_bytes >= s.rss_bytes);
        assert!(s.cpu_s >= 0.0);
    }
}
