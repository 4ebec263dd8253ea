//! `rate-limit` with the real tc, and with perfpilot's BPF program on a
//! cgroup the test creates, in network namespaces each test creates (and
//! deletes again), so the host's own interfaces are never touched. Needs
//! root (CI runs as root), hence the root_ names. The cgroup tests need
//! the `cgroup-ratelimit` feature, which `cargo test --workspace` turns on
//! through the perfpilot binary's dependency.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
#[cfg(feature = "cgroup-ratelimit")]
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perfpilot_autopilot::ops::{OpError, Ops, Trigger};
use perfpilot_autopilot::policy::{RateLimit, RateLimitChange, RateLimitTarget};
use perfpilot_autopilot::Operation;

fn require_root() {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "network namespaces and tc need root");
}

/// Runs a command to success and returns its stdout.
fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop with whatever is in it.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("pp-test-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let argv: Vec<&str> = ["ip", "-n", &self.0].iter().chain(args).copied().collect();
        run(&argv)
    }

    /// tc as the operations run it: inside this namespace.
    fn tc(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.0, "tc"]
            .map(String::from)
            .to_vec()
    }

    fn qdiscs(&self, dev: &str) -> String {
        run(&[
            "ip", "netns", "exec", &self.0, "tc", "qdisc", "show", "dev", dev,
        ])
    }

    fn ops(&self) -> Ops {
        Ops {
            tc: self.tc(),
            ..Ops::default()
        }
    }

    /// Runs `f` on a thread that has entered this namespace, so the
    /// sockets it makes are in it.
    fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) on an open namespace file; it changes only
            // this thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn limit(dev: &str, rate: &str, burst: Option<&str>) -> Operation {
    Operation::RateLimit(RateLimit {
        on: RateLimitTarget::Interface(dev.into()),
        change: RateLimitChange::Limit {
            rate: rate.into(),
            burst: burst.map(String::from),
        },
    })
}

#[test]
fn root_rate_limit_installs_replaces_and_clears_a_tbf_qdisc() {
    require_root();
    let ns = Netns::new();
    let ops = ns.ops();
    let t = Trigger::default();

    let op = limit("lo", "10mbit", None);
    let o = ops.run(&op, &t);
    assert!(o.ok, "{o:?}");
    assert!(
        o.output.starts_with("limited lo to 10mbit (burst 32kb)\n"),
        "{}",
        o.output
    );
    let shown = ns.qdiscs("lo");
    assert!(
        shown.contains("qdisc tbf")
            && shown.contains("rate 10Mbit")
            && shown.contains("burst 32Kb"),
        "{shown}"
    );

    // Replacing, not adding: a second limit takes the first one's place.
    let o = ops.run(&limit("lo", "20mbit", Some("64kb")), &t);
    assert!(o.ok, "{o:?}");
    let shown = ns.qdiscs("lo");
    assert!(
        shown.contains("rate 20Mbit") && shown.contains("burst 64Kb"),
        "{shown}"
    );
    assert_eq!(shown.matches("qdisc tbf").count(), 1, "{shown}");

    // The rollback a policy gets without writing one.
    let undo = op.implied_rollback().expect("an interface limit is undone");
    let o = ops.run(&undo, &t);
    assert!(o.ok, "{o:?}");
    assert!(
        o.output.starts_with("cleared the limit on lo\n"),
        "{}",
        o.output
    );
    let shown = ns.qdiscs("lo");
    assert!(!shown.contains("tbf"), "{shown}");

    // Clearing again finds nothing to clear, which is fine.
    let o = ops.run(&undo, &t);
    assert!(o.ok, "{o:?}");
    assert!(
        o.output.starts_with("no limit on lo to clear\n"),
        "{}",
        o.output
    );

    let o = ops.run(&limit("nope0", "1mbit", None), &t);
    assert_eq!(
        o.error,
        Some(OpError::NoSuchInterface("nope0".into())),
        "{o:?}"
    );
    assert!(o.output.contains("Cannot find device"), "{}", o.output);
}

#[test]
fn root_rate_limit_without_cap_net_admin_says_what_it_needs() {
    require_root();
    let ns = Netns::new();
    // Root, but with CAP_NET_ADMIN out of the bounding set: tc gets EPERM
    // from the kernel just as an unprivileged user's would.
    let mut tc: Vec<String> = vec!["setpriv".into(), "--bounding-set=-net_admin".into()];
    tc.extend(ns.tc());
    let ops = Ops {
        tc,
        ..Ops::default()
    };
    let o = ops.run(&limit("lo", "10mbit", None), &Trigger::default());
    assert!(!o.ok);
    let Some(e @ OpError::NetAdminRequired { .. }) = &o.error else {
        panic!("{o:?}");
    };
    assert!(e.to_string().contains("needs root or CAP_NET_ADMIN"), "{e}");
    assert!(o.output.contains("Operation not permitted"), "{}", o.output);
    assert!(!ns.qdiscs("lo").contains("tbf"));
}

/// Reads `conn` to its end: the bytes, and the seconds from the first
/// byte to the end.
fn receive_all(mut conn: TcpStream) -> (usize, f64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let mut first = None;
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        got += n;
    }
    (got, first.map_or(0.0, |t| t.elapsed().as_secs_f64()))
}

/// Sends `bytes` from namespace `from` to a receiver in `to` (listening
/// on `addr`) and returns the receiver's throughput in bytes per second,
/// from its first byte to the end of the stream.
fn throughput(from: &Netns, to: &Netns, addr: &'static str, bytes: usize) -> f64 {
    let (ready, listening) = mpsc::channel();
    let receiver = to.spawn(move || {
        let listener = TcpListener::bind(addr).unwrap();
        ready.send(()).unwrap();
        let (conn, _) = listener.accept().unwrap();
        receive_all(conn)
    });
    listening.recv_timeout(Duration::from_secs(10)).unwrap();
    let sender = from.spawn(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            conn.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
    });
    sender.join().unwrap();
    let (got, secs) = receiver.join().unwrap();
    assert_eq!(got, bytes);
    got as f64 / secs
}

#[test]
fn root_rate_limit_holds_traffic_to_its_rate() {
    require_root();
    // Two namespaces joined by a veth pair: a's end is limited.
    let (a, b) = (Netns::new(), Netns::new());
    a.ip(&[
        "link", "add", "pp0", "type", "veth", "peer", "name", "pp1", "netns", &b.0,
    ]);
    a.ip(&["addr", "add", "10.99.0.1/24", "dev", "pp0"]);
    b.ip(&["addr", "add", "10.99.0.2/24", "dev", "pp1"]);
    a.ip(&["link", "set", "pp0", "up"]);
    b.ip(&["link", "set", "pp1", "up"]);

    // 8 Mbit/s is 1 MB/s: two seconds of it.
    let rate = 1_000_000.0;
    let op = limit("pp0", "8mbit", None);
    let o = a.ops().run(&op, &Trigger::default());
    assert!(o.ok, "{o:?}");
    let limited = throughput(&a, &b, "10.99.0.2:5001", 2_000_000);
    // tc counts whole frames, so TCP's payload gets a little less.
    assert!(
        (0.8 * rate..=1.05 * rate).contains(&limited),
        "{limited:.0} B/s through an 8mbit limit"
    );

    let undo = op.implied_rollback().expect("an interface limit is undone");
    let o = a.ops().run(&undo, &Trigger::default());
    assert!(o.ok, "{o:?}");
    let free = throughput(&a, &b, "10.99.0.2:5002", 20_000_000);
    assert!(
        free > 5.0 * rate,
        "{free:.0} B/s without the limit, {limited:.0} B/s with it"
    );
    eprintln!("8mbit limit: {limited:.0} B/s; cleared: {free:.0} B/s");
}

/// A cgroup made for one test in the cgroup v2 hierarchy, a pin
/// directory on bpffs for its limits, and a network namespace its traffic
/// is measured in; all removed on drop.
#[cfg(feature = "cgroup-ratelimit")]
struct TestCgroup {
    ns: Netns,
    /// The path given to `rate-limit`, relative to the hierarchy's root.
    name: String,
    dir: std::path::PathBuf,
    pins: std::path::PathBuf,
}

#[cfg(feature = "cgroup-ratelimit")]
impl TestCgroup {
    fn new(tag: &str) -> TestCgroup {
        let root = perfpilot_ratelimit::cgroup2_mount()
            .expect("a cgroup v2 hierarchy (cgroup rate limits attach to one)");
        let name = format!("perfpilot-test-{tag}-{}", std::process::id());
        let dir = root.join(&name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let pins = std::path::PathBuf::from(format!(
            "/sys/fs/bpf/perfpilot-test-{tag}-{}",
            std::process::id()
        ));
        TestCgroup {
            ns: Netns::new(),
            name,
            dir,
            pins,
        }
    }

    fn ops(&self) -> Ops {
        Ops {
            bpf_pin_dir: self.pins.clone(),
            ..Ops::default()
        }
    }

    fn limit(&self, rate: &str) -> Operation {
        Operation::RateLimit(RateLimit {
            on: RateLimitTarget::Cgroup(self.name.clone()),
            change: RateLimitChange::Limit {
                rate: rate.into(),
                burst: None,
            },
        })
    }

    fn pins(&self) -> usize {
        std::fs::read_dir(&self.pins).map_or(0, |d| d.count())
    }

    /// Sends `bytes` from a process in this cgroup to a receiver outside
    /// it, over the namespace's loopback, and returns the receiver's bytes
    /// per second.
    fn throughput(&self, bytes: usize) -> f64 {
        let (ready, listening) = mpsc::channel();
        let receiver = self.ns.spawn(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            ready.send(listener.local_addr().unwrap().port()).unwrap();
            let (conn, _) = listener.accept().unwrap();
            receive_all(conn)
        });
        let port = listening.recv_timeout(Duration::from_secs(10)).unwrap();
        // bash joins the cgroup, opens the connection, and hands it to
        // head as its stdout. It enters the namespace by setns alone:
        // `ip netns exec` would also remount /sys, hiding the cgroups.
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec head -c {bytes} /dev/zero > /dev/tcp/127.0.0.1/{port}",
            self.dir.display()
        );
        let ns = File::open(format!("/var/run/netns/{}", self.ns.0)).unwrap();
        let ns_fd = ns.as_raw_fd();
        let mut sender = Command::new("bash");
        sender.args(["-c", &script]);
        // SAFETY: setns(2) is async-signal-safe, and `ns` outlives spawn.
        unsafe {
            sender.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        // The sender ends once everything is read, or at once on failure,
        // which must not leave the receiver waiting.
        let status = sender.status().unwrap();
        assert!(status.success(), "the sender: {status}");
        let (got, secs) = receiver.join().unwrap();
        drop(ns);
        assert_eq!(got, bytes);
        got as f64 / secs
    }
}

#[cfg(feature = "cgroup-ratelimit")]
impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pins);
        // Empty by now: each sender has exited.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(feature = "cgroup-ratelimit")]
#[test]
fn root_rate_limit_holds_a_cgroups_traffic_to_its_rate_and_clears() {
    require_root();
    let cg = TestCgroup::new("cg");
    // The cgroup as a path in the hierarchy, under its mount, or as
    // /sys/fs/cgroup/NAME whichever way the host mounts cgroup v2.
    for name in [
        cg.name.clone(),
        format!("/{}", cg.name),
        cg.dir.display().to_string(),
        format!("/sys/fs/cgroup/{}", cg.name),
    ] {
        assert_eq!(
            perfpilot_ratelimit::cgroup_dir(&name).unwrap(),
            cg.dir,
            "{name}"
        );
    }
    // 8 Mbit/s is 1 MB/s: three seconds of it.
    let rate = 1_000_000.0;
    let op = cg.limit("8mbit");
    let o = cg.ops().run(&op, &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert!(
        o.output.starts_with(&format!(
            "limited cgroup {} to 8mbit (burst 131072 bytes); the BPF program is pinned at {}/cgroup-",
            cg.dir.display(),
            cg.pins.display()
        )),
        "{}",
        o.output
    );
    assert_eq!(cg.pins(), 1);
    let limited = cg.throughput(3_000_000);
    // Dropping (rather than queueing) costs TCP some of the rate.
    assert!(
        (0.5 * rate..=1.1 * rate).contains(&limited),
        "{limited:.0} B/s from a cgroup limited to 8mbit"
    );

    // A new limit replaces the old one rather than stacking on it.
    let o = cg.ops().run(&cg.limit("80mbit"), &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert_eq!(cg.pins(), 1);
    let raised = cg.throughput(15_000_000);
    assert!(
        raised > 3.0 * limited && raised < 11.0 * rate,
        "{raised:.0} B/s with 80mbit, {limited:.0} B/s with 8mbit"
    );

    let undo = op.implied_rollback().expect("a cgroup limit is undone");
    let o = cg.ops().run(&undo, &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert_eq!(
        o.output,
        format!("cleared the limit on cgroup {}\n", cg.dir.display())
    );
    assert_eq!(cg.pins(), 0);
    let free = cg.throughput(100_000_000);
    assert!(
        free > 20.0 * rate,
        "{free:.0} B/s without the limit, {limited:.0} B/s with it"
    );
    // Clearing again finds nothing to clear, and says so.
    let o = cg.ops().run(&undo, &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert!(o.output.starts_with("no limit on cgroup"), "{}", o.output);
    eprintln!("cgroup 8mbit: {limited:.0} B/s; 80mbit: {raised:.0} B/s; cleared: {free:.0} B/s");
}

#[cfg(feature = "cgroup-ratelimit")]
#[test]
fn root_rate_limit_on_a_cgroup_needs_bpffs_for_its_pin() {
    require_root();
    let cg = TestCgroup::new("nobpffs");
    let tmp = std::env::temp_dir().join(format!("perfpilot-not-bpffs-{}", std::process::id()));
    let ops = Ops {
        bpf_pin_dir: tmp.clone(),
        ..Ops::default()
    };
    let o = ops.run(&cg.limit("8mbit"), &Trigger::default());
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(!o.ok);
    let message = o.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("is not on a BPF filesystem")
            && message.contains("mount -t bpf bpf /sys/fs/bpf"),
        "{message}"
    );
    // Without its pin the program was detached: nothing limits the cgroup.
    let free = cg.throughput(50_000_000);
    assert!(free > 20e6, "{free:.0} B/s");

    // A pin directory that cannot be made on a filesystem that is not
    // bpffs (sysfs refuses mkdir with EPERM, as /sys/fs/bpf does with
    // nothing mounted on it) is the same missing bpffs, not a missing
    // permission.
    let on_sysfs = std::path::PathBuf::from(format!(
        "/sys/fs/perfpilot-test-nobpffs-{}/ratelimit",
        std::process::id()
    ));
    let ops = Ops {
        bpf_pin_dir: on_sysfs.clone(),
        ..Ops::default()
    };
    let o = ops.run(&cg.limit("8mbit"), &Trigger::default());
    assert!(!o.ok);
    let message = o.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&format!(
            "{} is not on a BPF filesystem",
            on_sysfs.display()
        )),
        "{message}"
    );
}

#[cfg(feature = "cgroup-ratelimit")]
#[test]
fn root_clearing_a_cgroup_limit_also_clears_an_unfinished_replacement() {
    require_root();
    let cg = TestCgroup::new("unfinished");
    let op = cg.limit("8mbit");
    let o = cg.ops().run(&op, &Trigger::default());
    assert!(o.ok, "{o:?}");
    // As if a replacement had been pinned and its process ended before
    // renaming it over the pin (here there is no pin left to rename over).
    let pin = std::fs::read_dir(&cg.pins)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut unfinished = pin.file_name().unwrap().to_os_string();
    unfinished.push("-new-1-0");
    std::fs::rename(&pin, pin.with_file_name(unfinished)).unwrap();
    let limited = cg.throughput(1_000_000);
    assert!(limited < 2e6, "{limited:.0} B/s");

    let undo = op.implied_rollback().expect("a cgroup limit is undone");
    let o = cg.ops().run(&undo, &Trigger::default());
    assert!(o.ok, "{o:?}");
    assert!(o.output.starts_with("cleared the limit"), "{}", o.output);
    assert_eq!(cg.pins(), 0);
    let free = cg.throughput(50_000_000);
    assert!(free > 20e6, "{free:.0} B/s");
}

#[cfg(feature = "cgroup-ratelimit")]
#[test]
fn root_rate_limit_on_a_cgroup_checks_its_rate_and_burst_first() {
    require_root();
    let cg = TestCgroup::new("bad");
    let ops = cg.ops();
    let run = |rate: &str, burst: Option<&str>| {
        let op = Operation::RateLimit(RateLimit {
            on: RateLimitTarget::Cgroup(cg.name.clone()),
            change: RateLimitChange::Limit {
                rate: rate.into(),
                burst: burst.map(String::from),
            },
        });
        let o = ops.run(&op, &Trigger::default());
        assert!(!o.ok, "{o:?}");
        o.error.map(|e| e.to_string()).unwrap_or_default()
    };
    let message = run("4bit", None);
    assert!(
        message.contains("cannot limit a cgroup to 0 bytes/s: the rate must be at least 1 byte per second (8bit)"),
        "{message}"
    );
    let message = run("100tbit", None);
    assert!(
        message.contains("the rate can be at most 10000000000000 bytes per second (80tbit)"),
        "{message}"
    );
    let message = run("8mbit", Some("16kb"));
    assert!(
        message.contains("a burst of 16384 bytes: the burst must be at least 32768 bytes (32kb)")
            && message.contains("64 KiB GSO packet"),
        "{message}"
    );
    let message = run("8mbit", Some("9000000000gb"));
    assert!(
        message.contains("the burst can be at most 9223372036854775807 bytes"),
        "{message}"
    );
    // Refused before anything was made or attached.
    assert!(!cg.pins.exists());
    let free = cg.throughput(50_000_000);
    assert!(free > 20e6, "{free:.0} B/s");
}
