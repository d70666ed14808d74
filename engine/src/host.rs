//! Host measurements for the analytics shard, read with sysinfo: CPU use, memory in use, disk and
//! network throughput. Real readings only: a value that cannot be read yet (the first sample of a
//! rate) is absent, never estimated. Blocking (it reads /proc): call it off the reactor.

use std::time::Instant;

use sysinfo::{Disks, Networks, System};

/// One reading of the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSample {
    /// All CPUs, 0..=100.
    pub cpu_pct: f64,
    pub mem_used_bytes: f64,
    /// Read plus written bytes per second over all disks since the previous sample.
    pub disk_bytes_per_s: Option<f64>,
    /// Received plus transmitted bytes per second over all interfaces since the previous sample.
    pub net_bytes_per_s: Option<f64>,
}

/// Keeps the sysinfo handles and the previous totals between samples.
pub struct HostSampler {
    system: System,
    networks: Networks,
    disks: Disks,
    last: Option<(Instant, u64, u64)>,
}

impl std::fmt::Debug for HostSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSampler").finish_non_exhaustive()
    }
}

impl HostSampler {
    /// Opens the sysinfo handles; `None` where the platform offers no readings.
    pub fn new() -> Option<HostSampler> {
        let mut system = System::new().ok()?;
        system.refresh_cpu_usage();
        Some(HostSampler {
            system,
            networks: Networks::new_with_refreshed_list().ok()?,
            disks: Disks::new_with_refreshed_list().ok()?,
            last: None,
        })
    }

    /// Takes a reading. Call at most about once a second (sysinfo's CPU refresh needs a gap).
    pub fn sample(&mut self) -> HostSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        self.networks.refresh(true);
        self.disks.refresh(true);
        let net_total: u64 = self
            .networks
            .values()
            .map(|n| n.total_received() + n.total_transmitted())
            .sum();
        let disk_total: u64 = self
            .disks
            .iter()
            .map(|d| {
                let u = d.usage();
                u.total_read_bytes + u.total_written_bytes
            })
            .sum();
        let now = Instant::now();
        let (disk_rate, net_rate) = match self.last {
            Some((then, net, disk)) => {
                let dt = now.duration_since(then).as_secs_f64().max(1e-3);
                (
                    Some(disk_total.saturating_sub(disk) as f64 / dt),
                    Some(net_total.saturating_sub(net) as f64 / dt),
                )
            }
            None => (None, None),
        };
        self.last = Some((now, net_total, disk_total));
        HostSample {
            cpu_pct: f64::from(self.system.global_cpu_usage()),
            mem_used_bytes: self.system.used_memory() as f64,
            disk_bytes_per_s: disk_rate,
            net_bytes_per_s: net_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_real_and_rates_start_on_the_second_sample() {
        let Some(mut h) = HostSampler::new() else {
            eprintln!("skipped: sysinfo has no readings on this platform");
            return;
        };
        let first = h.sample();
        assert!(first.disk_bytes_per_s.is_none() && first.net_bytes_per_s.is_none());
        assert!(first.mem_used_bytes > 0.0, "a running machine uses memory");
        assert!((0.0..=100.0).contains(&first.cpu_pct));
        let second = h.sample();
        assert!(second.net_bytes_per_s.is_some_and(|r| r >= 0.0));
    }
}
