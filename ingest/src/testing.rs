//! Real services for tests in this and other crates (feature `testing`): a
//! Postgres cluster with `wal_level=logical` in a temp directory, and an
//! S3-compatible server (moto) on loopback. `scripts/install-test-services.sh`
//! installs both and `scripts/test.sh` exports where; these helpers panic with
//! that fix when they are missing (the tests never skip).
#![allow(clippy::disallowed_methods)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pg_bin() -> PathBuf {
    let dir = std::env::var_os("NAKSHA_PG_BIN").map(PathBuf::from).or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        found.sort();
        found.pop()
    });
    match dir {
        Some(d) if d.join("initdb").exists() => d,
        _ => panic!(
            "Postgres server binaries are not installed: run scripts/install-test-services.sh (scripts/test.sh does)"
        ),
    }
}

/// A Postgres cluster of its own (`wal_level=logical`, password auth over TCP).
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The superuser's password.
    pub password: String,
}

impl PgCluster {
    /// Create and start a cluster.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("naksha-pg").tempdir().expect("temp dir");
        let root = is_root();
        if root {
            chown_postgres(dir.path());
        }
        let pw_file = dir.path().join("pw");
        std::fs::write(&pw_file, "secret-pw\n").unwrap();
        if root {
            chown_postgres(&pw_file);
        }
        let status = as_postgres(root, &bin.join("initdb"))
            .args(["-D"])
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile"])
            .arg(&pw_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let c = Self { dir, bin, port: free_port(), password: "secret-pw".into() };
        c.pg_ctl("start");
        c
    }

    fn pg_ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=8 -c max_wal_senders=8 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut cmd = as_postgres(is_root(), &self.bin.join("pg_ctl"));
        cmd.args(["-D"]).arg(self.dir.path().join("data")).args(["-l"]).arg(self.dir.path().join("log"));
        if action != "stop" {
            cmd.args(["-o", &opts]);
        }
        cmd.args(["-w", "-m", "fast", action]).stdout(Stdio::null()).stderr(Stdio::null());
        let status = cmd.status().expect("run pg_ctl");
        assert!(status.success(), "pg_ctl {action} failed: {}", self.log());
    }

    /// Restart the server (clients see their connections drop).
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// A connection string with the right password.
    pub fn url(&self) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/postgres", self.password, self.port)
    }

    /// Run SQL through psql over the local socket; returns its output (unaligned, tuples only).
    pub fn sql(&self, sql: &str) -> String {
        // Debian puts psql beside the server binaries; elsewhere it is on the PATH.
        let psql = Some(self.bin.join("psql")).filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("psql"));
        let out = Command::new(psql)
            .args(["-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql failed on {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(is_root(), &self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn chown_postgres(p: &Path) {
    let status = Command::new("chown").args(["-R", "postgres"]).arg(p).status().expect("chown");
    assert!(status.success(), "chown postgres {} failed (is there a postgres user?)", p.display());
}

/// Postgres refuses to run as root: as root, run its tools as the `postgres` user.
fn as_postgres(root: bool, exe: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

/// An S3-compatible server (moto) on loopback; any credentials are accepted.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// Its endpoint URL.
    pub endpoint: String,
}

impl S3Server {
    /// Start one.
    pub fn start() -> Self {
        let exe = std::env::var_os("NAKSHA_S3_SERVER").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/naksha/venv-s3/bin/moto_server")
        });
        assert!(
            exe.exists(),
            "the S3 test server is not installed at {}: run scripts/install-test-services.sh (scripts/test.sh does)",
            exe.display()
        );
        let port = free_port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        wait_port(port, "moto_server");
        Self { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// A client with static test credentials.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "naksha-tests");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(creds)
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Environment for a server process that reads this store (static test credentials).
    pub fn env() -> [(&'static str, &'static str); 3] {
        [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_EC2_METADATA_DISABLED", "true")]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
