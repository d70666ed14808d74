//! [`GossipConfig`]: everything the driver needs to start, with defaults.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::GossipError;
use crate::member::ADDR_BYTES_MAX;
use crate::membership::Membership;

/// Default gossip UDP port (ARCHITECTURE.md "Defaults").
pub const GOSSIP_PORT_DEFAULT: u16 = 7946;

/// Configuration of one node's gossip driver.
///
/// Build it with [`GossipConfig::new`] and override fields; [`GossipConfig::validate`]
/// (called by `GossipDriver::start`) rejects out-of-range values with the field name.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// Cluster-unique node id (not `SEED_NODE_ID`).
    pub node_id: u32,
    /// Incarnation of this process; must grow on every restart. Defaults to the
    /// boot time in seconds since the Unix epoch.
    pub incarnation: u32,
    /// Local address the UDP socket binds (`0.0.0.0:7946`; port 0 = any free port).
    pub bind_addr: SocketAddr,
    /// `host:port` peers send gossip to. `None`: the bound address, which then
    /// must not be a wildcard. Seeds must name a node by exactly this string or
    /// by an IP:port it resolves to (see `GossipDriver`).
    pub advertise_addr: Option<String>,
    /// Advertised client-protocol address (metadata only).
    pub client_addr: String,
    /// Advertised HTTP/stats address (metadata only).
    pub http_addr: String,
    /// Shards (cores) this node runs (metadata only).
    pub shard_count: u16,
    /// Initial load summary, messages per second (finite, >= 0).
    pub load_msgs_per_s: f32,
    /// `host:port` of nodes to join through; empty for the first node. Our own
    /// address may be listed (it is skipped), so every node can get the same list.
    pub seeds: Vec<String>,
    /// SWIM timings; see [`Membership::recommended_config`] for why the defaults.
    pub membership: foca::Config,
    /// Seed of foca's probe-target choice (any value; differ per node).
    pub rng_seed: u64,
    /// First delay between join attempts while no seed has answered.
    pub join_retry_initial_ms: u64,
    /// Cap of the doubling delay between join attempts.
    pub join_retry_max_ms: u64,
    /// Minimum interval between two load re-announcements (each one renames
    /// this node's identity cluster-wide, so they are rate limited; the latest
    /// value wins).
    pub load_announce_interval_ms_min: u64,
    /// Bound of the timer queue. foca keeps O(members) timers alive (one
    /// suspicion per suspect member plus a handful of periodic ones).
    pub timers_max: usize,
    /// Bound of the [`ChangeEvent`](super::ChangeEvent) queue; when the consumer
    /// lags, new events are dropped and counted (`members()` stays exact).
    pub changes_capacity: usize,
    /// Received datagrams waiting for the driver loop; beyond this the kernel
    /// socket buffer holds them, then drops them (UDP semantics).
    pub inbound_queue_datagrams_max: usize,
    /// How many times the leave datagrams are sent (spaced by
    /// `leave_resend_interval_ms`): foca sends a leave once to 3 members, and a
    /// duplicate is harmless, so a repeat makes a loss of all copies unlikely.
    pub leave_send_count: u8,
    /// Interval between leave repeats.
    pub leave_resend_interval_ms: u64,
    /// Write a line to stderr for joins, leaves, members going up/down and
    /// resolution failures.
    pub log_to_stderr: bool,
}

impl GossipConfig {
    /// Defaults for node `node_id` gossiping on `bind_addr`: recommended SWIM
    /// timings, join retry 1 s doubling to 30 s, load re-announced at most every 5 s.
    pub fn new(node_id: u32, bind_addr: SocketAddr) -> Self {
        let boot_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        Self {
            node_id,
            incarnation: u32::try_from(boot_s).unwrap_or(u32::MAX / 2),
            bind_addr,
            advertise_addr: None,
            client_addr: String::new(),
            http_addr: String::new(),
            shard_count: 1,
            load_msgs_per_s: 0.0,
            seeds: Vec::new(),
            membership: Membership::recommended_config(),
            rng_seed: u64::from(node_id) ^ boot_s.rotate_left(32),
            join_retry_initial_ms: 1_000,
            join_retry_max_ms: 30_000,
            load_announce_interval_ms_min: 5_000,
            timers_max: 4_096,
            changes_capacity: 1_024,
            inbound_queue_datagrams_max: 256,
            leave_send_count: 2,
            leave_resend_interval_ms: 50,
            log_to_stderr: true,
        }
    }

    /// Checks every bounded field and the seed syntax.
    pub fn validate(&self) -> Result<(), GossipError> {
        let positive = |field: &'static str, value: u64| {
            if value == 0 {
                Err(GossipError::InvalidConfig {
                    field,
                    reason: "must be > 0",
                })
            } else {
                Ok(())
            }
        };
        positive("join_retry_initial_ms", self.join_retry_initial_ms)?;
        positive("timers_max", self.timers_max as u64)?;
        positive("changes_capacity", self.changes_capacity as u64)?;
        positive(
            "inbound_queue_datagrams_max",
            self.inbound_queue_datagrams_max as u64,
        )?;
        positive("leave_send_count", u64::from(self.leave_send_count))?;
        if self.join_retry_max_ms < self.join_retry_initial_ms {
            return Err(GossipError::InvalidConfig {
                field: "join_retry_max_ms",
                reason: "must be >= join_retry_initial_ms",
            });
        }
        for seed in &self.seeds {
            check_host_port(seed)?;
        }
        if let Some(addr) = &self.advertise_addr {
            check_host_port(addr).map_err(|_| GossipError::InvalidConfig {
                field: "advertise_addr",
                reason: "must be host:port with a port in 1..=65535, at most 64 bytes",
            })?;
        }
        Ok(())
    }
}

/// Splits a `--seeds` / `SPRAWL_CLUSTER_SEEDS` value (`host:port,host:port`,
/// spaces and empty entries ignored) and checks every entry.
pub fn parse_seed_list(text: &str) -> Result<Vec<String>, GossipError> {
    text.split(',')
        .map(str::trim)
        .filter(|seed| !seed.is_empty())
        .map(|seed| check_host_port(seed).map(|()| seed.to_owned()))
        .collect()
}

/// Accepts `host:port` and `[v6]:port` with a non-zero port and a bounded length.
pub(crate) fn check_host_port(text: &str) -> Result<(), GossipError> {
    let invalid = |reason| GossipError::InvalidSeed {
        seed: text.to_owned(),
        reason,
    };
    if text.len() > ADDR_BYTES_MAX {
        return Err(invalid("longer than 64 bytes"));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(invalid("expected host:port"));
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid("port must be in 1..=65535")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_checked() {
        assert!(check_host_port("10.0.0.1:7946").is_ok());
        assert!(check_host_port("node-1.sprawl:7946").is_ok());
        assert!(check_host_port("[::1]:7946").is_ok());
        for bad in ["10.0.0.1", ":7946", "h:0", "h:70000", "h:x"] {
            assert!(
                matches!(check_host_port(bad), Err(GossipError::InvalidSeed { .. })),
                "{bad}"
            );
        }
        let long = format!("{}:1", "a".repeat(ADDR_BYTES_MAX));
        assert!(check_host_port(&long).is_err());
    }

    #[test]
    fn seed_lists_split_on_commas() {
        assert_eq!(
            parse_seed_list(" a:1, ,[::1]:2,").expect("valid list"),
            vec!["a:1", "[::1]:2"]
        );
        assert_eq!(
            parse_seed_list("").expect("empty list"),
            Vec::<String>::new()
        );
        assert!(matches!(
            parse_seed_list("a:1,b"),
            Err(GossipError::InvalidSeed { seed, .. }) if seed == "b"
        ));
    }

    #[test]
    fn defaults_validate_and_bad_values_name_the_field() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut config = GossipConfig::new(1, addr);
        assert!(config.validate().is_ok());
        config.join_retry_max_ms = 10;
        match config.validate() {
            Err(GossipError::InvalidConfig { field, .. }) => {
                assert_eq!(field, "join_retry_max_ms")
            }
            other => panic!("unexpected {other:?}"),
        }
        config.join_retry_max_ms = 30_000;
        config.timers_max = 0;
        assert!(matches!(
            config.validate(),
            Err(GossipError::InvalidConfig {
                field: "timers_max",
                ..
            })
        ));
    }
}
