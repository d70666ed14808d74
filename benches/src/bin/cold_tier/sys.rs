//! What the machine was doing: CPU time of this process and of the S3 server (from
//! `/proc/<pid>/stat`), load average and pressure, and the quiet gate run before each repetition.

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux we run).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// User + system CPU seconds of process `pid` (all its threads); `None` if unreadable.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_S)
}

/// CPU seconds of this process and of the server, sampled together.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    wall: Instant,
    client_s: f64,
    server_s: Option<f64>,
}

/// Wall time and CPU time spent between two samples.
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    pub wall_s: f64,
    pub client_cpu_s: f64,
    pub server_cpu_s: Option<f64>,
}

impl CpuSample {
    pub fn now(server_pid: Option<u32>) -> CpuSample {
        CpuSample {
            wall: Instant::now(),
            client_s: cpu_seconds(std::process::id()).unwrap_or(f64::NAN),
            server_s: server_pid.and_then(cpu_seconds),
        }
    }

    pub fn since(&self, server_pid: Option<u32>) -> Spent {
        let end = CpuSample::now(server_pid);
        Spent {
            wall_s: end.wall.duration_since(self.wall).as_secs_f64(),
            client_cpu_s: end.client_s - self.client_s,
            server_cpu_s: match (self.server_s, end.server_s) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
        }
    }
}

pub fn load_average_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// The `avg10` of the "some" line of a pressure file, e.g. `/proc/pressure/cpu`.
pub fn pressure_some_avg10(resource: &str) -> f64 {
    let text = read_trimmed(&format!("/proc/pressure/{resource}"));
    text.lines()
        .find(|l| l.starts_with("some"))
        .and_then(|l| l.split_whitespace().find(|f| f.starts_with("avg10=")))
        .and_then(|f| f["avg10=".len()..].parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits (at most `wait_max`) until the 1-minute load average is below `load_max`; returns the
/// load seen last and how long it waited.
pub fn quiet_gate(load_max: f64, wait_max: Duration) -> (f64, f64) {
    let start = Instant::now();
    loop {
        let load = load_average_1m();
        if load < load_max || start.elapsed() >= wait_max {
            return (load, start.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Machine facts for the report.
pub fn machine_facts() -> serde_json::Value {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let memory_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model,
        "memory_bytes": memory_kib * 1024,
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "load_average": read_trimmed("/proc/loadavg"),
        "pressure_cpu": read_trimmed("/proc/pressure/cpu"),
        "pressure_io": read_trimmed("/proc/pressure/io"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_and_it_grows_with_work() {
        // Spin until 50 ms of CPU time are accounted (bounded in wall time: on a busy shared
        // machine 50 ms of CPU can take several times as long).
        let me = std::process::id();
        let before = cpu_seconds(me).expect("own /proc stat");
        let t = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.05 && t.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(7));
            }
            after = cpu_seconds(me).unwrap();
        }
        std::hint::black_box(x);
        assert!(after - before >= 0.05, "{before} -> {after}");
        assert!(cpu_seconds(u32::MAX).is_none());
    }
}
