//! Network namespaces for partition tests: each part of the system on a
//! "machine" of its own, so a test can cut the network between two parts
//! while both keep running — what kill -9 and SIGSTOP cannot show (a
//! primary cut off from the Sentinels but still reachable by core, say).
//!
//! A [`Network`] is a private bridge in a namespace of its own and one
//! namespace per host, each joined to the bridge by a veth pair and given an
//! address on a private /24 in 198.18.0.0/15 (the range set aside for
//! network tests, RFC 2544). The test process itself reaches the bridge
//! through one veth (host [`TESTER`]), so its HTTP and Redis clients need no
//! namespace; nothing else touches the machine's network, and the traffic
//! stays inside the namespaces (and each namespace's own loopback).
//! [`Network::command`] runs a program inside a host's namespace (`ip netns
//! exec`).
//!
//! Links are cut in two ways: nftables rules on the bridge (`drop` between
//! given hosts, one way or both: TCP connections stall, as on a real
//! partition) with [`Network::cut`] / [`Network::cut_one_way`] /
//! [`Network::restore`], or a host's veth set down with
//! [`Network::link_down`]. [`Network::heal`] undoes everything.
//!
//! Tests run in parallel (nextest runs each in a process of its own), so
//! every name and subnet comes from a *slot* (0–511) that the process holds
//! by an exclusive lock on `/run/crowdgate-netns/slot-<n>.lock` while the
//! network exists: namespaces `cgpt<n>-<host>`, the test's veth `cgpt<n>`,
//! subnet 198.(18 + n / 256).(n % 256).0/24. A process killed mid-test
//! leaves its namespaces behind but loses its lock; the next process to
//! take the slot deletes them first. Drop deletes everything. When a
//! namespace cannot be created (not root, no `ip`), [`Network::new`] panics
//! saying so: a partition test that cannot partition must fail, never pass.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;

/// The name of the test process's own end of the network.
pub const TESTER: &str = "tester";

/// Where the slot locks live.
const LOCK_DIR: &str = "/run/crowdgate-netns";

/// How many slots there are: /24s in 198.18.0.0/15.
const SLOTS: u16 = 512;

/// The bridge inside the bridge's namespace.
const BRIDGE: &str = "br0";

/// One machine on the network.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its name in the test (`"core"`, `"redis-0"`, …).
    pub name: String,
    /// Its namespace; `None` for [`TESTER`], which is the test process's own.
    pub netns: Option<String>,
    /// Its address on the bridge's subnet.
    pub ip: Ipv4Addr,
    /// Its veth's bridge-side end, in the bridge's namespace.
    port: String,
}

/// A bridge, a namespace per host and the cuts in force. Drop deletes them.
pub struct Network {
    slot: u16,
    /// The namespace holding the bridge (and the nftables rules).
    bridge_netns: String,
    /// The hosts, [`TESTER`] last.
    hosts: Vec<Host>,
    /// Directed cuts in force: packets from the first host to the second
    /// are dropped.
    cuts: BTreeSet<(usize, usize)>,
    /// Held while the network exists: the slot is ours.
    _lock: File,
}

impl Network {
    /// A network of `hosts` (plus [`TESTER`]), each in a namespace of its
    /// own on a private bridge, every link up and nothing cut. Panics, saying
    /// why, if it cannot be built.
    pub fn new(hosts: &[&str]) -> Network {
        assert!(hosts.len() < 250, "a /24 holds at most 250 hosts here");
        let (slot, lock) = take_slot();
        let prefix = format!("cgpt{slot}");
        remove_leftovers(&prefix);
        let subnet =
            |host: u8| Ipv4Addr::new(198, 18 + (slot / 256) as u8, (slot % 256) as u8, host);
        let mut network = Network {
            slot,
            bridge_netns: format!("{prefix}-bridge"),
            hosts: Vec::new(),
            cuts: BTreeSet::new(),
            _lock: lock,
        };
        let br = network.bridge_netns.clone();
        add_netns(&br);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        ip(&["-n", &br, "link", "add", BRIDGE, "type", "bridge"]);
        ip(&["-n", &br, "link", "set", BRIDGE, "up"]);
        for (i, name) in hosts.iter().enumerate() {
            assert!(*name != TESTER, "{TESTER} is the test process's own host");
            let netns = format!("{prefix}-{name}");
            let port = format!("p{i}");
            let ip_addr = subnet(i as u8 + 1);
            add_netns(&netns);
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &netns,
            ]);
            ip(&["-n", &netns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &netns, "link", "set", "eth0", "up"]);
            network.attach(&port);
            network.hosts.push(Host {
                name: name.to_string(),
                netns: Some(netns),
                ip: ip_addr,
                port,
            });
        }
        // The test process's end: a veth from this namespace to the bridge.
        let port = format!("p{}", hosts.len());
        let tester_ip = subnet(254);
        ip(&[
            "link", "add", &prefix, "type", "veth", "peer", "name", &port, "netns", &br,
        ]);
        ip(&["addr", "add", &format!("{tester_ip}/24"), "dev", &prefix]);
        ip(&["link", "set", &prefix, "up"]);
        network.attach(&port);
        network.hosts.push(Host {
            name: TESTER.to_string(),
            netns: None,
            ip: tester_ip,
            port,
        });
        network
    }

    /// Puts the bridge-side end `port` on the bridge and up.
    fn attach(&self, port: &str) {
        let br = &self.bridge_netns;
        ip(&["-n", br, "link", "set", port, "master", BRIDGE]);
        ip(&["-n", br, "link", "set", port, "up"]);
    }

    /// The slot this network holds (its names and subnet derive from it).
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// Every host, [`TESTER`] last.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host called `name`; panics if there is none.
    pub fn host(&self, name: &str) -> &Host {
        &self.hosts[self.index(name)]
    }

    /// The address of the host called `name`.
    pub fn ip(&self, name: &str) -> Ipv4Addr {
        self.host(name).ip
    }

    fn index(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name:?} on this network"))
    }

    /// A command running `program` inside `host`'s namespace (`ip netns
    /// exec`, which execs it: its pid is the program's), killed if the test
    /// process dies.
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = match &self.host(host).netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(program);
                command
            }
            None => Command::new(program),
        };
        crowdgate::supervisor::die_with_parent(&mut command);
        command
    }

    /// Drops every packet between each of `a` and each of `b`, both ways.
    pub fn cut(&mut self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.cuts.insert((self.index(x), self.index(y)));
                self.cuts.insert((self.index(y), self.index(x)));
            }
        }
        self.apply_cuts();
    }

    /// Drops every packet from each of `from` to each of `to` (replies the
    /// other way still pass, but a TCP connection stalls all the same).
    pub fn cut_one_way(&mut self, from: &[&str], to: &[&str]) {
        for x in from {
            for y in to {
                self.cuts.insert((self.index(x), self.index(y)));
            }
        }
        self.apply_cuts();
    }

    /// Cuts `host` off from every other host (the test process included),
    /// both ways, by rules on the bridge: its own loopback still works.
    pub fn isolate(&mut self, host: &str) {
        let others: Vec<String> = self
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .filter(|n| n != host)
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        self.cut(&[host], &others);
    }

    /// Lifts the cuts between each of `a` and each of `b`, both ways.
    pub fn restore(&mut self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.cuts.remove(&(self.index(x), self.index(y)));
                self.cuts.remove(&(self.index(y), self.index(x)));
            }
        }
        self.apply_cuts();
    }

    /// Sets `host`'s veth down on the bridge side: it is off the network
    /// altogether, as with a pulled cable.
    pub fn link_down(&self, host: &str) {
        self.set_link(host, "down");
    }

    /// Sets `host`'s veth up again after [`Network::link_down`].
    pub fn link_up(&self, host: &str) {
        self.set_link(host, "up");
    }

    fn set_link(&self, host: &str, state: &str) {
        let port = &self.host(host).port;
        ip(&["-n", &self.bridge_netns, "link", "set", port, state]);
    }

    /// Every link up and every cut lifted.
    pub fn heal(&mut self) {
        self.cuts.clear();
        self.apply_cuts();
        for host in &self.hosts {
            self.link_up(&host.name);
        }
    }

    /// The cuts in force, as `from -> to` host names (for messages).
    pub fn describe_cuts(&self) -> Vec<String> {
        self.cuts
            .iter()
            .map(|&(from, to)| format!("{} -> {}", self.hosts[from].name, self.hosts[to].name))
            .collect()
    }

    /// Replaces the bridge's rules with [`Network::cuts`], in one nftables
    /// transaction (so no packet sees half of a change).
    fn apply_cuts(&self) {
        let mut script = String::from(
            "table bridge cuts {\n  chain forward { type filter hook forward priority 0; policy accept; }\n}\n\
             flush chain bridge cuts forward\n",
        );
        for &(from, to) in &self.cuts {
            script.push_str(&format!(
                "add rule bridge cuts forward ip saddr {} ip daddr {} drop\n",
                self.hosts[from].ip, self.hosts[to].ip
            ));
        }
        let mut nft = Command::new("ip");
        nft.args(["netns", "exec", &self.bridge_netns, "nft", "-f", "-"]);
        run_with_input(&mut nft, &script);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and a veth's
        // peer with it: the bridge's namespace takes the tester's veth along.
        for host in &self.hosts {
            if let Some(netns) = &host.netns {
                let _ = quiet(&["netns", "del", netns]);
            }
        }
        let _ = quiet(&["netns", "del", &self.bridge_netns]);
    }
}

/// Takes the first free slot from one derived from our pid (so parallel
/// processes seldom contend), and returns it with its lock held.
fn take_slot() -> (u16, File) {
    std::fs::create_dir_all(LOCK_DIR)
        .unwrap_or_else(|e| panic!("cannot create {LOCK_DIR} for the network slots: {e}"));
    let start = (std::process::id() % u32::from(SLOTS)) as u16;
    for i in 0..SLOTS {
        let slot = (start + i) % SLOTS;
        let path = format!("{LOCK_DIR}/slot-{slot}.lock");
        let file = File::create(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        if file.try_lock().is_ok() {
            return (slot, file);
        }
    }
    panic!("all {SLOTS} network slots are taken by running tests");
}

/// Deletes what a killed earlier holder of this slot left: its namespaces
/// (`<prefix>-…`) and the test's veth (`<prefix>`).
fn remove_leftovers(prefix: &str) {
    let listed = quiet(&["netns", "list"]).unwrap_or_default();
    let mine = format!("{prefix}-");
    for line in listed.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if name.starts_with(&mine) {
            let _ = quiet(&["netns", "del", name]);
        }
    }
    if quiet(&["link", "show", prefix]).is_ok() {
        let _ = quiet(&["link", "del", prefix]);
    }
}

/// Creates namespace `name`, or panics saying that partition tests need it.
fn add_netns(name: &str) {
    if let Err(err) = quiet(&["netns", "add", name]) {
        panic!(
            "cannot create the network namespace {name}: {err}\n\
             The partition tests put each process in a network namespace of its own; \
             they need root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip`."
        );
    }
}

/// `ip args`; panics with its stderr if it fails.
fn ip(args: &[&str]) {
    if let Err(err) = quiet(args) {
        panic!("`ip {}` failed: {err}", args.join(" "));
    }
}

/// `ip args` → its stdout, or its stderr as the error.
fn quiet(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// Runs `command` with `input` on its stdin; panics with its stderr if it
/// fails (an nftables script refused, or nft not installed).
fn run_with_input(command: &mut Command, input: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("nft reads its script");
    let output = child.wait_with_output().expect("nft exits");
    assert!(
        output.status.success(),
        "{command:?} refused:\n{input}\n{}\n(nftables missing? `apt-get install -y nftables`)",
        String::from_utf8_lossy(&output.stderr)
    );
}
