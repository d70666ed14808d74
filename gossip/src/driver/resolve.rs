//! `host:port` to socket address, with a bounded cache.
//!
//! Members are addressed by the string they advertise. IP literals are parsed
//! in place; names go through the system resolver on glommio's blocking pool
//! (never on the reactor thread), and the answer (or the failure) is cached so
//! a gossip round does not wait on DNS.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// How long a resolved name is reused.
const RESOLVED_TTL: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered before it is tried again.
const FAILED_TTL: Duration = Duration::from_secs(5);
/// Addresses kept per name.
const ADDRS_PER_NAME_MAX: usize = 8;

#[derive(Debug, Clone)]
enum Entry {
    Resolved {
        addrs: Vec<SocketAddr>,
        expires_at: Duration,
    },
    Failed {
        reason: String,
        expires_at: Duration,
    },
}

impl Entry {
    fn expires_at(&self) -> Duration {
        match self {
            Entry::Resolved { expires_at, .. } | Entry::Failed { expires_at, .. } => *expires_at,
        }
    }
}

/// Resolves and caches at most `entries_max` names.
#[derive(Debug)]
pub(crate) struct Resolver {
    cache: HashMap<String, Entry>,
    entries_max: usize,
}

impl Resolver {
    pub(crate) fn new(entries_max: usize) -> Self {
        Self {
            cache: HashMap::new(),
            entries_max,
        }
    }

    /// Addresses of `host_port` (at least one), or why there are none.
    ///
    /// `now` is the driver's monotonic clock. Must run on a glommio executor
    /// when `host_port` is not an IP literal.
    pub(crate) async fn resolve(
        &mut self,
        host_port: &str,
        now: Duration,
    ) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = host_port.parse::<SocketAddr>() {
            return Ok(vec![addr]);
        }
        if let Some(entry) = self.cache.get(host_port) {
            if entry.expires_at() > now {
                return match entry {
                    Entry::Resolved { addrs, .. } => Ok(addrs.clone()),
                    Entry::Failed { reason, .. } => Err(reason.clone()),
                };
            }
        }
        let name = host_port.to_owned();
        let looked_up = glommio::executor()
            .spawn_blocking(move || {
                name.to_socket_addrs()
                    .map(|addrs| addrs.take(ADDRS_PER_NAME_MAX).collect::<Vec<_>>())
            })
            .await;
        let entry = match looked_up {
            Ok(addrs) if !addrs.is_empty() => Entry::Resolved {
                addrs,
                expires_at: now.saturating_add(RESOLVED_TTL),
            },
            Ok(_) => Entry::Failed {
                reason: "no addresses".to_owned(),
                expires_at: now.saturating_add(FAILED_TTL),
            },
            Err(err) => Entry::Failed {
                reason: err.to_string(),
                expires_at: now.saturating_add(FAILED_TTL),
            },
        };
        self.insert(host_port, entry.clone(), now);
        match entry {
            Entry::Resolved { addrs, .. } => Ok(addrs),
            Entry::Failed { reason, .. } => Err(reason),
        }
    }

    fn insert(&mut self, host_port: &str, entry: Entry, now: Duration) {
        if self.cache.len() >= self.entries_max && !self.cache.contains_key(host_port) {
            self.cache.retain(|_, e| e.expires_at() > now);
            if self.cache.len() >= self.entries_max {
                // Still full of live entries: start over rather than grow.
                self.cache.clear();
            }
        }
        self.cache.insert(host_port.to_owned(), entry);
    }
}

/// The strings to announce to for one seed: the seed as given plus the
/// `ip:port` of each address it resolves to, without duplicates.
///
/// foca accepts an announce only if its destination string equals the
/// receiver's advertised address, and a seed may be written differently from
/// how that node advertises itself (`node1:7946` vs `10.0.0.1:7946`). Trying
/// both spellings covers a name seed for an IP-advertising node, an IP seed for
/// an IP-advertising node, and a name seed for a node advertising that name.
pub(crate) fn seed_candidates(seed: &str, resolved: &[SocketAddr]) -> Vec<String> {
    let mut out = vec![seed.to_owned()];
    for addr in resolved {
        let text = addr.to_string();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_both_spellings_once() {
        let v4: SocketAddr = "10.0.0.1:7946".parse().expect("addr");
        let v6: SocketAddr = "[::1]:7946".parse().expect("addr");
        assert_eq!(
            seed_candidates("node1:7946", &[v4, v6, v4]),
            vec!["node1:7946", "10.0.0.1:7946", "[::1]:7946"]
        );
        assert_eq!(
            seed_candidates("10.0.0.1:7946", &[v4]),
            vec!["10.0.0.1:7946"]
        );
    }

    #[test]
    fn cache_is_bounded() {
        let mut resolver = Resolver::new(2);
        let now = Duration::from_secs(1);
        for name in ["a:1", "b:1", "c:1"] {
            resolver.insert(
                name,
                Entry::Failed {
                    reason: "test".to_owned(),
                    expires_at: now + FAILED_TTL,
                },
                now,
            );
            assert!(resolver.cache.len() <= 2);
        }
        assert!(resolver.cache.contains_key("c:1"));
    }
}
