//! A throwaway PostgreSQL server for tests, started from Debian's
//! `postgresql` package (`scripts/install-test-deps.sh` installs it).
//!
//! Include it with `#[path = "../support/pg.rs"] mod pg;` in any test binary.
//! - [`Cluster::shared`]: one server per test binary, started on first use;
//!   [`Cluster::database`] gives each test a fresh database of its own.
//! - [`Cluster::start`]: a dedicated server that a test may stop, crash and
//!   start again (fault tests).
//!
//! `initdb` refuses to run as root, so as root (CI) the server runs as the
//! `postgres` system user the package creates; its directory (data, socket,
//! log) is a temp dir owned by that user. It listens on a free loopback port
//! only. A watchdog process (its own process group, so a killed test run does
//! not take it along) stops the server and removes the directory once the
//! test process is gone: nothing outlives the test binary.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after a start.
const READY_WITHIN: Duration = Duration::from_secs(60);

pub struct Cluster {
    /// Holds `data/`, `socket/` and `postgres.log`.
    base: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `Some((uid, gid))` when the server runs as another user (we are root).
    owner: Option<(u32, u32)>,
    server: Mutex<Option<Child>>,
    databases: AtomicUsize,
}

/// The newest installed server's `bin/` directory.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server in /usr/lib/postgresql/*/bin: run scripts/install-test-deps.sh"
        )
    })
}

/// The uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .expect("running as root, and no `postgres` user to run the test server as (Debian's postgresql package creates it)")
}

fn am_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// The test binary's shared server, started on first use.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    /// A new server of its own (initdb, then started and accepting).
    pub fn start() -> Cluster {
        let bin = bin_dir();
        let owner = am_root().then(postgres_user);
        let base = tempfile::Builder::new()
            .prefix("stopgate-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        std::fs::create_dir_all(base.join("socket")).expect("socket dir");
        if let Some((uid, gid)) = owner {
            for p in [base.clone(), base.join("socket")] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown the test dir");
            }
        }
        watchdog(&base);
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(base.join("data"))
            .stdin(Stdio::null());
        let out = as_owner(&mut initdb, owner).output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut port = free_port();
        let mut cluster = None;
        // Another process may take the port between our probe and the
        // server's bind: a new port then.
        for _ in 0..5 {
            let c = Cluster {
                base: base.clone(),
                bin: bin.clone(),
                port,
                owner,
                server: Mutex::new(None),
                databases: AtomicUsize::new(0),
            };
            if c.try_start() {
                cluster = Some(c);
                break;
            }
            port = free_port();
        }
        cluster.unwrap_or_else(|| {
            panic!(
                "the test PostgreSQL did not start: {}",
                std::fs::read_to_string(base.join("postgres.log")).unwrap_or_default()
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// A fresh, empty database; returns its URL.
    pub async fn database(&self) -> String {
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::SeqCst)
        );
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = conn.await;
        self.url(&name)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&self) {
        assert!(self.try_start(), "the test PostgreSQL did not start again");
    }

    /// A fast shutdown (SIGINT): sessions are closed, then the server exits.
    pub fn stop(&self) {
        self.signal("INT");
    }

    /// An immediate shutdown (SIGQUIT), as a crash: the next start recovers
    /// from the WAL.
    pub fn crash(&self) {
        self.signal("QUIT");
    }

    fn try_start(&self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base.join("postgres.log"))
            .expect("server log");
        if let Some((uid, gid)) = self.owner {
            let _ = std::os::unix::fs::chown(self.base.join("postgres.log"), Some(uid), Some(gid));
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.base.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.base.join("socket"))
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                // Throwaway data: no fsync, so tests do not wait on the
                // disk. Commits stay synchronous (stopgate requires it).
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=on",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0);
        let child = as_owner(&mut cmd, self.owner)
            .spawn()
            .expect("spawn postgres");
        *self.server.lock().unwrap() = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(status) = self
                .server
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                eprintln!("test postgres exited at start: {status}");
                return false;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn signal(&self, sig: &str) {
        let Some(mut child) = self.server.lock().unwrap().take() else {
            return;
        };
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    cmd
}

/// Once this process is gone: stop the server in `base` (immediate
/// shutdown, then SIGKILL) and remove `base`. Statics are never dropped, so
/// this is what cleans up the shared server.
// Never waited for: it must outlive this process.
#[allow(clippy::zombie_processes)]
fn watchdog(base: &Path) {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ]; then
            kill -QUIT "$pid" 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -rf "$2"
    "#;
    Command::new("sh")
        .args(["-c", script, "stopgate-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(base)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the test server's watchdog");
}

/// A Store config for `url`, with a small pool (many tests share a server).
pub fn storage(url: &str) -> stopgate::config::StorageConfig {
    stopgate::config::StorageConfig {
        kind: stopgate::config::StorageKind::Postgres,
        url: stopgate::config::Secret(url.to_string()),
        pool_size: 4,
        connect_retry_secs: 0,
        ..Default::default()
    }
}
