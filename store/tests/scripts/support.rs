//! A redis-server of the test's own (loopback, free port, temp dir, no
//! persistence: these tests are about the scripts, not durability), and a
//! seeded round on it.

use crowdgate_protocol::RoomPhase;
use crowdgate_protocol::api::IdentityMode;
use crowdgate_store::{RoundSettings, RoundStore, Settlement};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fixed clock every test starts from: 2026-12-01T10:00:00Z.
pub const T0: u64 = 1_796_119_200_000;

pub const ROUND: &str = "t";

/// The randomness every test round's draw secret is made from.
pub const DRAW_RANDOM: [u8; 32] = [7; 32];

pub struct Redis {
    child: Child,
    pub url: String,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// [`Redis::start`] with extra redis-server flags (`--replicaof …`).
    pub fn start_with(flags: &[&str]) -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(flags)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Redis {
            child,
            port,
            url: format!("redis://127.0.0.1:{port}/"),
            _dir: dir,
        }
    }

    /// The store's own connection (single node, no replicas to wait for).
    pub async fn manager(&self) -> crowdgate_store::Redis {
        let config = crowdgate_store::RedisConfig::single(&self.url);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match crowdgate_store::Redis::connect(&config).await {
                Ok(manager) => return manager,
                Err(err) => {
                    assert!(Instant::now() < deadline, "cannot connect: {err}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Round settings for a test: open, cap £100, £10..£2,000 each, £1 shares,
/// 600 people a minute in 1 s batches (10 a batch), 1,000 active, 60 s claim
/// window, 600 s passes, no times; an anonymous room, so the queue's own
/// tests join by ticket ([`crate::join`]). `identity.rs` tests the rounds
/// that need a signed-in investor (the production default).
pub fn settings() -> RoundSettings {
    RoundSettings {
        name: "Test".into(),
        identity: IdentityMode::Anonymous,
        cap_pence: 10_000,
        min_investment_pence: 1_000,
        max_investment_pence: 200_000,
        share_price_pence: 100,
        initial_phase: RoomPhase::Open,
        rate_per_minute: 600,
        batch_interval_ms: 1_000,
        max_active: 1_000,
        pass_ttl_seconds: 600,
        claim_window_seconds: 60,
        opens_at_ms: 0,
        closes_at_ms: 0,
    }
}

/// A redis-server with round [`ROUND`] seeded with `settings`.
pub struct Fixture {
    pub _redis: Redis,
    pub store: RoundStore,
    pub settlement: Settlement,
    pub conn: crowdgate_store::Redis,
}

impl Fixture {
    pub async fn new(settings: RoundSettings) -> Fixture {
        let redis = Redis::start();
        let conn = redis.manager().await;
        let store = RoundStore::new(ROUND, conn.clone());
        assert!(store.seed(&settings, &DRAW_RANDOM).await.unwrap());
        Fixture {
            _redis: redis,
            store,
            settlement: Settlement::new(ROUND),
            conn,
        }
    }

    pub async fn round(&self) -> crowdgate_store::RoundRecord {
        self.store.round_record().await.unwrap().unwrap().0
    }

    pub async fn phase(&self) -> RoomPhase {
        self.round().await.phase
    }
}
