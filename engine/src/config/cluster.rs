//! Cluster settings: gossip seeds, the gossip port and the advertised host (`docs/cluster.md`).
//!
//! A node is in cluster mode when any of them is given; without them it runs alone, exactly as
//! before, with no gossip socket.

use std::net::IpAddr;

use super::ConfigError;

/// Default gossip (SWIM, UDP) port.
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;
/// Most seeds one node may be given (each is tried on join).
pub const SEEDS_MAX: usize = 64;
/// Most metadata controllers (Raft voters); 3 or 5 in practice.
pub const CONTROLLERS_MAX: usize = 7;

/// Resolved cluster settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Gossip addresses (`host:port`) to join through; this node's own address may be listed.
    pub seeds: Vec<String>,
    /// UDP port for gossip; 0 picks a free one.
    pub gossip_port: u16,
    /// Host other nodes use to reach this one; `None` = the bind address.
    pub advertise: Option<String>,
    /// Metadata controllers (Raft voters): node id and client address (`host:port`).
    pub controllers: Vec<(u64, String)>,
    /// How long a registered node may be out of gossip's live set before the controller gives
    /// its replicas to other nodes (file key `node_loss_grace_ms`).
    pub node_loss_grace_ms: u64,
    /// True when any cluster setting was given.
    pub enabled: bool,
}

/// Default of [`ClusterConfig::node_loss_grace_ms`]: well above a restart or a short partition.
pub const NODE_LOSS_GRACE_MS_DEFAULT: u64 = 30_000;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seeds: Vec::new(),
            gossip_port: DEFAULT_GOSSIP_PORT,
            advertise: None,
            controllers: Vec::new(),
            node_loss_grace_ms: NODE_LOSS_GRACE_MS_DEFAULT,
            enabled: false,
        }
    }
}

impl ClusterConfig {
    /// The host peers dial: `--advertise`, else the bind address (validated not to be a wildcard).
    pub fn advertised_host(&self, bind: IpAddr) -> String {
        match &self.advertise {
            Some(h) => h.clone(),
            None => bind.to_string(),
        }
    }

    pub(super) fn set_seeds(&mut self, v: &str, src: &str) -> Result<(), ConfigError> {
        self.seeds = parse_seeds(v, src)?;
        self.enabled = true;
        Ok(())
    }

    pub(super) fn set_seed_list(&mut self, v: &[String], src: &str) -> Result<(), ConfigError> {
        self.set_seeds(&v.join(","), src)
    }

    pub(super) fn set_controllers(&mut self, v: &str, src: &str) -> Result<(), ConfigError> {
        self.controllers = parse_controllers(v, src)?;
        self.enabled = true;
        Ok(())
    }

    pub(super) fn set_controller_list(
        &mut self,
        v: &[String],
        src: &str,
    ) -> Result<(), ConfigError> {
        self.set_controllers(&v.join(","), src)
    }

    /// True when this node is one of the metadata controllers.
    pub fn is_controller(&self, node_id: u32) -> bool {
        self.controllers
            .iter()
            .any(|(id, _)| *id == u64::from(node_id))
    }

    pub(super) fn set_gossip_port(&mut self, port: u16) {
        self.gossip_port = port;
        self.enabled = true;
    }

    pub(super) fn set_advertise(&mut self, v: &str, src: &str) -> Result<(), ConfigError> {
        let host = v.trim();
        check_host(host).map_err(|reason| invalid("advertise", v, src, reason))?;
        self.advertise = Some(host.to_string());
        self.enabled = true;
        Ok(())
    }

    /// Checks the combination with the rest of the node's settings.
    pub(super) fn validate(&self, node_id: u32, bind: IpAddr) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        let resolved = "resolved configuration";
        if node_id == 0 {
            return Err(invalid(
                "node-id",
                "0",
                resolved,
                "a cluster node needs a unique --node-id of 1 or more (0 is the single-node \
                 default)"
                    .into(),
            ));
        }
        if self.advertise.is_some() && self.gossip_port == 0 {
            return Err(invalid(
                "gossip-port",
                "0",
                resolved,
                "--advertise needs a fixed --gossip-port: peers must know the port in advance"
                    .into(),
            ));
        }
        if self.advertise.is_none() && bind.is_unspecified() {
            return Err(invalid(
                "advertise",
                "(not set)",
                resolved,
                format!(
                    "--bind {bind} is a wildcard address peers cannot dial; give --advertise \
                     HOST (this node's address as other nodes see it)"
                ),
            ));
        }
        Ok(())
    }
}

fn invalid(setting: &'static str, value: &str, src: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_string(),
        source_name: src.to_string(),
        reason,
    }
}

/// Parses `ID@host:port,...` (ids unique, >= 1).
fn parse_controllers(v: &str, src: &str) -> Result<Vec<(u64, String)>, ConfigError> {
    let bad = |reason: String| invalid("controllers", v, src, reason);
    let mut out: Vec<(u64, String)> = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| bad(format!("{part:?} is not ID@HOST:PORT (e.g. 1@node1:7070)")))?;
        let id: u64 = match id.trim().parse() {
            Ok(n) if n >= 1 && n <= u64::from(u32::MAX) => n,
            _ => {
                return Err(bad(format!(
                    "{part:?}: the id must be a node id of 1 or more"
                )))
            }
        };
        let addr = parse_seeds(addr, src)
            .map_err(|_| bad(format!("{part:?}: the address is not HOST:PORT")))?
            .remove(0);
        if out.iter().any(|(i, _)| *i == id) {
            return Err(bad(format!("node id {id} is listed twice")));
        }
        out.push((id, addr));
    }
    if out.len() > CONTROLLERS_MAX {
        return Err(bad(format!(
            "at most {CONTROLLERS_MAX} controllers (3 or 5 are usual)"
        )));
    }
    Ok(out)
}

/// Parses `host:port,host:port`; empty entries are refused, not skipped, so a typo is noticed.
fn parse_seeds(v: &str, src: &str) -> Result<Vec<String>, ConfigError> {
    let mut seeds = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        let bad = |reason: String| invalid("seeds", v, src, reason);
        let (host, port) = part
            .rsplit_once(':')
            .ok_or_else(|| bad(format!("{part:?} is not HOST:PORT (e.g. node1:7946)")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        check_host(host).map_err(|r| bad(format!("{part:?}: {r}")))?;
        match port.parse::<u16>() {
            Ok(p) if p != 0 => {}
            _ => return Err(bad(format!("{part:?}: port must be 1-65535"))),
        }
        if !seeds.iter().any(|s| s == part) {
            seeds.push(part.to_string());
        }
    }
    if seeds.len() > SEEDS_MAX {
        return Err(invalid(
            "seeds",
            v,
            src,
            format!("at most {SEEDS_MAX} seeds; a few per cluster are enough"),
        ));
    }
    Ok(seeds)
}

/// A host is an IP address or a DNS name (letters, digits, '-', '.'), at most 253 bytes.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is neither an IP address nor a host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_and_dedupe() {
        let s = parse_seeds(
            " a.example:7946, 192.0.2.1:7000,[2001:db8::1]:7946,a.example:7946",
            "t",
        )
        .unwrap();
        assert_eq!(
            s,
            ["a.example:7946", "192.0.2.1:7000", "[2001:db8::1]:7946"]
        );
    }

    #[test]
    fn bad_seeds_say_what_is_wrong() {
        for (bad, expect) in [
            ("", "not HOST:PORT"),
            ("a:1,,b:2", "not HOST:PORT"),
            ("host", "not HOST:PORT"),
            ("host:0", "port must be"),
            ("host:99999", "port must be"),
            ("bad_host!:7946", "neither an IP"),
            (":7946", "host is empty"),
        ] {
            let err = parse_seeds(bad, "--seeds").unwrap_err().to_string();
            assert!(
                err.contains(expect) && err.contains("seeds"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn controllers_parse_and_bad_ones_are_named() {
        let c = parse_controllers(
            "1@a.example:7070, 2@192.0.2.2:7070,3@[2001:db8::3]:7070",
            "t",
        )
        .unwrap();
        assert_eq!(c[0], (1, "a.example:7070".to_string()));
        assert_eq!(c[2], (3, "[2001:db8::3]:7070".to_string()));
        for (bad, expect) in [
            ("a.example:7070", "ID@HOST:PORT"),
            ("0@a:1", "1 or more"),
            ("x@a:1", "1 or more"),
            ("1@a", "HOST:PORT"),
            ("1@a:1,1@b:2", "twice"),
        ] {
            let err = parse_controllers(bad, "--controllers")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expect) && err.contains("controllers"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cluster_mode_needs_a_node_id_and_a_dialable_address() {
        let mut c = ClusterConfig::default();
        let local = IpAddr::from([127, 0, 0, 1]);
        let any = IpAddr::from([0, 0, 0, 0]);
        c.validate(0, any).unwrap();
        c.set_gossip_port(0);
        let err = c.validate(0, local).unwrap_err().to_string();
        assert!(err.contains("node-id"), "{err}");
        c.validate(1, local).unwrap();
        let err = c.validate(1, any).unwrap_err().to_string();
        assert!(err.contains("advertise"), "{err}");
        c.set_advertise("node1.example", "--advertise").unwrap();
        let err = c.validate(1, any).unwrap_err().to_string();
        assert!(err.contains("gossip-port"), "{err}");
        c.set_gossip_port(7946);
        c.validate(1, any).unwrap();
        assert_eq!(c.advertised_host(any), "node1.example");
    }
}
