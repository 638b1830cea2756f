//! A redis-server of our own, configured so that an acknowledged write
//! survives kill -9: `appendonly yes`, `appendfsync always`, and
//! `aof-load-truncated no` (a torn AOF tail stops startup with a clear
//! message instead of silently dropping a write; see the brief).
//!
//! Used by `crowdgate up` and by the end-to-end tests, which each start one on
//! a free loopback port (port 0) with a temp dir. [`crate::local_ha`] starts
//! its data nodes and Sentinels through it too ([`RedisOptions`]), so there
//! is one place that spawns redis-server, picks ports and reads its log.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server child.
pub struct LocalRedis {
    pub port: u16,
    pub dir: PathBuf,
    options: RedisOptions,
    child: Option<Child>,
}

/// How to start a redis-server beyond its port and directory; the default
/// is the durable standalone server `crowdgate up` runs.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// A config file to load (`redis-server <file> ...`). Our flags come
    /// after it and so override it, except where it says something they do
    /// not (e.g. `replicaof`). Needed wherever CONFIG REWRITE must work:
    /// Sentinel persists a role change that way, and a server started from
    /// flags alone answers it with "running without a config file".
    pub config_file: Option<PathBuf>,
    /// Run as a Sentinel (`--sentinel`): it keeps no data, so none of the
    /// durability flags, and it says it is ready differently.
    pub sentinel: bool,
    /// Flags after ours, e.g. `["--min-replicas-to-write", "1"]`.
    pub extra_args: Vec<String>,
}

impl LocalRedis {
    /// Starts redis-server on 127.0.0.1:`port` with data in `dir` and waits
    /// until it answers PING. A `port` that is taken is an error.
    ///
    /// Port 0 means any free port, as for a bind: redis-server cannot bind
    /// port 0 and report the port (`--port 0` turns TCP off), so one is
    /// chosen here, and if another process takes it before redis-server binds
    /// it, another is tried. The port it got is [`LocalRedis::port`].
    ///
    /// `dir` is made absolute first: redis-server changes into `--dir` before
    /// it opens `--logfile`, so a relative log path would be resolved twice
    /// and fail (`Can't open the log file`).
    pub fn start(port: u16, dir: &Path) -> anyhow::Result<LocalRedis> {
        LocalRedis::start_with(port, dir, RedisOptions::default())
    }

    /// [`LocalRedis::start`] with [`RedisOptions`] (a config file, Sentinel
    /// mode, more flags), which [`LocalRedis::restart`] uses again.
    pub fn start_with(port: u16, dir: &Path, options: RedisOptions) -> anyhow::Result<LocalRedis> {
        which_redis()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = std::path::absolute(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let mut redis = LocalRedis {
            port,
            dir,
            options,
            child: None,
        };
        if port != 0 {
            redis.spawn()?;
            return Ok(redis);
        }
        for _ in 0..FREE_PORT_ATTEMPTS {
            redis.port = free_port();
            match redis.spawn() {
                Err(err) if err.is::<PortTaken>() => continue,
                started => return started.map(|()| redis),
            }
        }
        bail!("redis-server found every port it tried taken ({FREE_PORT_ATTEMPTS} tries)")
    }

    /// Starts it again after [`LocalRedis::kill`], on the same port and data
    /// (its clients keep its URL). While the port is still taken (the kernel
    /// may not have released it yet) it tries again, for up to 5 s.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("redis-server on port {} is still running", self.port);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn() {
                Err(err) if err.is::<PortTaken>() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                started => return started,
            }
        }
    }

    /// One start on `self.port`; [`PortTaken`] if another process has it.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = self.log_file();
        // redis-server appends to its log file: only what this start writes
        // says how this start went.
        let log_from = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let logged = || {
            let bytes = std::fs::read(&log).unwrap_or_default();
            String::from_utf8_lossy(bytes.get(log_from..).unwrap_or_default()).into_owned()
        };
        // What redis-server says before its log file is open (a bad flag, an
        // unwritable directory) goes to stderr: keep it to show on failure.
        let stderr_path = self.dir.join("redis.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .with_context(|| format!("cannot create {}", stderr_path.display()))?;
        let mut command = Command::new("redis-server");
        // The config file must be the first argument.
        if let Some(config) = &self.options.config_file {
            command.arg(config);
        }
        if self.options.sentinel {
            command.arg("--sentinel");
        }
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--protected-mode", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .arg("--pidfile")
            .arg(self.pid_file())
            .args(["--daemonize", "no"]);
        if !self.options.sentinel {
            command
                .args(["--appendonly", "yes"])
                .args(["--appendfsync", "always"])
                .args(["--aof-load-truncated", "no"])
                .args(["--save", ""]);
        }
        command
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        crate::supervisor::die_with_parent(&mut command);
        let mut child = command.spawn().context("cannot start redis-server")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                let mut said = logged();
                if said.contains("Address already in use") {
                    return Err(PortTaken(self.port).into());
                }
                said.push_str(&std::fs::read_to_string(&stderr_path).unwrap_or_default());
                let tail: Vec<&str> = said
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .rev()
                    .take(8)
                    .collect();
                let hint = if tail
                    .iter()
                    .any(|l| l.contains("truncated") || l.contains("Bad file format"))
                {
                    format!(
                        "\nThe append-only file has a torn tail from a crash. Inspect it, then repair with:\n  redis-check-aof --fix {}/appendonlydir/*.incr.aof",
                        self.dir.display()
                    )
                } else {
                    String::new()
                };
                bail!(
                    "redis-server exited ({status}) on port {}; last log lines:\n{}{hint}",
                    self.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            // Ours must say it is ready first: while it fails to bind a taken
            // port, whoever holds that port may well answer PING. A Sentinel
            // never logs "Ready to accept connections"; it names itself once
            // it listens and has its config.
            let ready = if self.options.sentinel {
                "Sentinel ID is"
            } else {
                "Ready to accept connections"
            };
            if logged().contains(ready) && ping(self.port) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "redis-server on port {} did not answer within 15 s (log: {})",
                    self.port,
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id while it runs (also in [`LocalRedis::pid_file`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where redis-server writes its pid (`<dir>/redis.pid`), for a shell:
    /// `kill -9 $(cat <dir>/redis.pid)`. Left behind by kill -9.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    /// Its log file (`<dir>/redis.log`), appended to by every start.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Whether the process is alive: started and not exited (a SIGSTOPped
    /// one is alive). An exit it finds is reaped, so [`LocalRedis::restart`]
    /// can follow.
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        if matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        self.child = None;
        false
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the process if it runs.
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: a signal to our own child, which we have not reaped
            // (so its pid is not someone else's).
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// SIGKILL: the crash the durability promises are about.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: Redis flushes and exits cleanly.
    pub fn stop(&mut self) {
        // A SIGSTOPped server would only act on SIGTERM once continued.
        self.signal(libc::SIGCONT);
        if let Some(mut child) = self.child.take() {
            crate::supervisor::terminate(&mut child, Duration::from_secs(10));
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether redis-server is on PATH; the error says how to install it.
pub fn which_redis() -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("redis-server").is_file()))
        .unwrap_or(false);
    if !found {
        bail!(
            "redis-server is not installed. Install it with `sudo apt-get install -y redis-server`, or run `./dev up`, which installs it"
        );
    }
    Ok(())
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// How many free ports [`LocalRedis::start`] tries before giving up.
const FREE_PORT_ATTEMPTS: usize = 20;

/// redis-server could not bind its port: another process has it.
#[derive(Debug)]
pub struct PortTaken(pub u16);

impl std::fmt::Display for PortTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redis-server cannot listen on 127.0.0.1:{}: another process is using that port",
            self.0
        )
    }
}

impl std::error::Error for PortTaken {}

/// A loopback TCP port that was free a moment ago (bound, then released).
///
/// Racy by nature: another process can take it before whoever it is for
/// binds it. A server that can should bind port 0 and report the port it
/// got instead; one that cannot (redis-server) must retry when the port
/// turns out to be taken, as [`LocalRedis::start`] does.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback has free ports")
}
