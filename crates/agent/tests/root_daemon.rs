//! The agent as a service: the daemon samples on one thread and ships on
//! another. Every profile it cuts reaches the spool while the server is
//! away, and a server that never answers holds up shipping, not sampling.
//! Needs root (CI runs as root).

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use perfpilot_agent::ship::ShipperConfig;
use perfpilot_agent::{Daemon, DaemonConfig, DaemonEvent, DaemonStats, Scope, SessionConfig};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test loads BPF programs and must run as root (CI runs it as root)"
    );
}

fn config(server: &str, spool: &Path, interval: Duration, timeout: Duration) -> DaemonConfig {
    DaemonConfig::new(
        SessionConfig {
            scope: Scope::Pids(vec![std::process::id()]),
            ..SessionConfig::default()
        },
        ShipperConfig {
            server: server.into(),
            token: None,
            token_file: None,
            spool_dir: spool.to_path_buf(),
            spool_max_bytes: 64 << 20,
            timeout,
        },
        interval,
    )
}

fn spooled_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pb.zst"))
        .count()
}

/// Runs `config` for `run`, then stops it and waits for it.
fn run_for(config: DaemonConfig, run: Duration) -> (DaemonStats, Vec<DaemonEvent>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let daemon = Daemon::spawn(config, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let end = Instant::now() + run;
    while Instant::now() < end {
        assert!(!daemon.is_finished(), "the daemon ended by itself");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.stop();
    let stats = daemon.join().unwrap();
    (stats, rx.try_iter().collect())
}

#[test]
fn root_daemon_spools_every_profile_while_the_server_is_away() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Nothing listens on port 9 of localhost.
    let (stats, events) = run_for(
        config(
            "http://127.0.0.1:9",
            &spool,
            Duration::from_millis(200),
            Duration::from_secs(5),
        ),
        Duration::from_millis(1500),
    );
    // About seven intervals and the last profile, cut at the stop.
    assert!(stats.profiles >= 3, "{stats:?}");
    assert_eq!(stats.deferred, 0, "{stats:?}");
    assert_eq!(stats.ship.sent, 0, "{stats:?}");
    assert_eq!(stats.ship.spooled, stats.profiles, "{stats:?}");
    assert_eq!(stats.spooled as u64, stats.profiles, "{stats:?}");
    assert_eq!(spooled_files(&spool) as u64, stats.profiles);
    // The reason is reported once, and a status after each profile.
    let notices = events
        .iter()
        .filter(|e| matches!(e, DaemonEvent::Notice(_)))
        .count();
    let shipped = events
        .iter()
        .filter(|e| matches!(e, DaemonEvent::Shipped(_)))
        .count();
    assert_eq!(notices, 1, "{events:?}");
    assert_eq!(shipped as u64, stats.profiles, "{events:?}");
}

#[test]
fn root_a_server_that_never_answers_holds_up_shipping_not_sampling() {
    require_root();
    // Connections complete in the kernel's backlog; no answer ever comes,
    // so each send waits its whole timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", silent.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let timeout = Duration::from_secs(3);
    let mut cfg = config(&server, &spool, Duration::from_millis(100), timeout);
    cfg.queue = 1;
    let (stats, _) = run_for(cfg, Duration::from_secs(4));
    // The sampling loop went on while the shipper waited on the server:
    // intervals were folded into later profiles instead of waiting.
    assert!(stats.deferred > 0, "{stats:?}");
    assert!(stats.longest_iteration < timeout, "{stats:?}");
    // Nothing was lost: every profile cut is in the spool.
    assert_eq!(stats.ship.spooled, stats.profiles, "{stats:?}");
    assert_eq!(spooled_files(&spool) as u64, stats.profiles);
    drop(silent);
}
