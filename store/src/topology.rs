//! Where the round's Redis is, and what "acknowledged" means there: the
//! configuration every process that touches a round shares (core, the
//! settlement worker, reconcile, accounts import), parsed and checked here
//! once so they cannot disagree.
//!
//! Two topologies:
//! - [`Topology::Single`]: one Redis at a URL (what `crowdgate up` runs).
//!   An acknowledged write is on that Redis's disk (`appendfsync always`).
//! - [`Topology::Sentinel`]: a primary and its replicas watched by Redis
//!   Sentinel. The primary is whatever the sentinels say it is now, so a
//!   failover needs no configuration change.
//!
//! [`Replication`] says how many replicas must hold a write before a client
//! is told about it (`WAIT`); 0 in single-node mode by default, 1 with
//! Sentinel.

use std::fmt;
use std::time::Duration;

/// How long `WAIT` waits for replicas by default before the write is
/// reported as not acknowledged (503).
pub const DEFAULT_REPLICA_TIMEOUT: Duration = Duration::from_millis(1000);

/// The master name Sentinel monitors by default.
pub const DEFAULT_MASTER_NAME: &str = "crowdgate";

/// Where the round's Redis is.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One Redis at this URL.
    Single { url: String },
    /// A primary under Sentinel.
    Sentinel {
        /// Each sentinel as a `redis://host:port` URL.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the primary under.
        master: String,
        /// The data nodes' password (`requirepass`), if any.
        password: Option<String>,
    },
}

impl Topology {
    /// Sentinel mode from a comma-separated list of `host:port` (or
    /// `redis://…` URLs) and the master's name. Every address is checked
    /// here, so a typo is an error naming it, not a failover that never
    /// finds a sentinel.
    pub fn sentinel(
        sentinels: &str,
        master: &str,
        password: Option<String>,
    ) -> Result<Topology, String> {
        let sentinels: Vec<String> = sentinels
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(sentinel_url)
            .collect::<Result<_, _>>()?;
        if sentinels.is_empty() {
            return Err("name at least one sentinel, as host:port".into());
        }
        let master = master.trim();
        if master.is_empty() || master.contains(char::is_whitespace) {
            return Err(format!(
                "the master name {master:?} must be one word (the name in `sentinel monitor <name> …`)"
            ));
        }
        Ok(Topology::Sentinel {
            sentinels,
            master: master.to_string(),
            password: password.filter(|p| !p.is_empty()),
        })
    }

    /// Replication a topology implies when nothing is configured: Sentinel
    /// mode runs a replica so that losing the primary loses nothing, so its
    /// writes wait for one; a single node waits for none.
    pub fn default_replicas(&self) -> u32 {
        match self {
            Topology::Single { .. } => 0,
            Topology::Sentinel { .. } => 1,
        }
    }
}

impl fmt::Display for Topology {
    /// For logs and status: never the password (a URL's is redacted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Single { url } => write!(f, "{}", redact(url)),
            Topology::Sentinel {
                sentinels, master, ..
            } => {
                let sentinels: Vec<String> = sentinels.iter().map(|s| redact(s)).collect();
                write!(f, "master {master:?} via sentinels {}", sentinels.join(","))
            }
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How many replicas must confirm a write before a client hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Replicas that must hold the write (0: none; the write is acknowledged
    /// once it is on the primary's disk).
    pub replicas: u32,
    /// How long to wait for them; past it the write is not acknowledged.
    pub timeout: Duration,
}

impl Replication {
    /// `replicas` within `timeout_ms`; a zero timeout is refused, because
    /// `WAIT n 0` would block forever.
    pub fn new(replicas: u32, timeout_ms: u64) -> Result<Replication, String> {
        if replicas > 0 && !(1..=60_000).contains(&timeout_ms) {
            return Err(format!(
                "the replica timeout must be 1–60000 ms (got {timeout_ms}); 0 would wait forever"
            ));
        }
        Ok(Replication {
            replicas,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// Everything needed to reach the round's Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub topology: Topology,
    pub replication: Replication,
}

impl RedisConfig {
    /// `topology` with the replication it implies: its
    /// [`Topology::default_replicas`] within [`DEFAULT_REPLICA_TIMEOUT`].
    pub fn with_defaults(topology: Topology) -> RedisConfig {
        RedisConfig {
            replication: Replication {
                replicas: topology.default_replicas(),
                timeout: DEFAULT_REPLICA_TIMEOUT,
            },
            topology,
        }
    }

    /// One Redis at `url`, acknowledging on its disk alone: today's default.
    pub fn single(url: &str) -> RedisConfig {
        RedisConfig::with_defaults(Topology::Single {
            url: url.to_string(),
        })
    }
}

/// `host:port` or a `redis://` URL, as the URL the sentinel client takes.
fn sentinel_url(address: &str) -> Result<String, String> {
    if address.contains(|c: char| c.is_whitespace() || c == ';') {
        return Err(format!(
            "sentinel {address:?}: separate sentinels with commas (host:port,host:port)"
        ));
    }
    if address.starts_with("redis://") || address.starts_with("rediss://") {
        return Ok(address.to_string());
    }
    if address.contains("://") {
        return Err(format!(
            "sentinel {address:?}: give host:port (or a redis:// URL)"
        ));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("sentinel {address:?} is not host:port"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("sentinel {address:?} is not host:port"));
    }
    Ok(format!("redis://{address}"))
}

/// A Redis URL with its password (if any) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The last `@`: a password may hold one unencoded.
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_are_host_port_lists() {
        let topology = Topology::sentinel(" 10.0.0.1:26379, s2:26379 ", "crowdgate", None).unwrap();
        assert_eq!(
            topology,
            Topology::Sentinel {
                sentinels: vec!["redis://10.0.0.1:26379".into(), "redis://s2:26379".into()],
                master: "crowdgate".into(),
                password: None,
            }
        );
        assert_eq!(topology.default_replicas(), 1);
        for bad in [
            "", " , ", "s1", "s1:", ":26379", "s1:0", "s1:port", "s1:70000",
        ] {
            assert!(Topology::sentinel(bad, "m", None).is_err(), "{bad:?}");
        }
        assert!(Topology::sentinel("s1:26379", "", None).is_err());
        assert!(Topology::sentinel("s1:26379", "two words", None).is_err());
        assert!(Topology::sentinel("redis://:pw@s1:26379", "m", None).is_ok());
    }

    #[test]
    fn passwords_never_show() {
        let single = Topology::Single {
            url: "redis://:hunter2@db:6379/".into(),
        };
        assert_eq!(single.to_string(), "redis://:***@db:6379/");
        let at_in_password = Topology::Single {
            url: "redis://u:p@ss@db:6379/".into(),
        };
        assert_eq!(at_in_password.to_string(), "redis://u:***@db:6379/");
        let sentinel =
            Topology::sentinel("redis://u:hunter2@s1:26379", "m", Some("hunter2".into())).unwrap();
        assert!(!format!("{sentinel} {sentinel:?}").contains("hunter2"));
    }

    #[test]
    fn a_wait_never_blocks_forever() {
        assert!(Replication::new(1, 0).is_err());
        assert!(Replication::new(1, 60_001).is_err());
        assert_eq!(Replication::new(0, 0).unwrap().replicas, 0);
        assert_eq!(
            Replication::new(2, 250).unwrap().timeout,
            Duration::from_millis(250)
        );
    }
}
