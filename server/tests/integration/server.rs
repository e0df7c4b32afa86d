//! Starting and stopping the real binary.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use naksha_server::cli::Client;
use serde_json::Value;

pub struct Server {
    child: Child,
    pub url: String,
    pub grpc_url: String,
    pub client: Client,
    logs: mpsc::Receiver<String>,
}

impl Server {
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_with(data_dir, env, |s| s.get("/readyz").0 == 200)
    }

    /// A server with TLS on (`env` names the files), ready once `/readyz`
    /// answers over HTTPS with `ca` trusted (checked with curl).
    pub fn start_tls(data_dir: &Path, env: &[(&str, &str)], ca: &Path) -> Server {
        Self::start_with(data_dir, env, |s| {
            let url = format!("{}/readyz", s.url.replace("http://", "https://"));
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                .arg(ca)
                .arg(url)
                .output()
                .is_ok_and(|o| o.stdout == b"200")
        })
    }

    /// Send a signal (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn start_with(data_dir: &Path, env: &[(&str, &str)], ready: impl Fn(&Server) -> bool) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_naksha"));
        cmd.args(["serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        cmd.env_remove("NAKSHA_API_KEY").env("RUST_LOG", "info").stderr(Stdio::piped()).stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start naksha");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let field =
            |line: &str, key: &str| line.split(key).nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_owned);
        let (addr, grpc) = loop {
            let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("server log");
            if let (Some(h), Some(g)) = (field(&line, "http_addr="), field(&line, "grpc_addr=")) {
                break (h, g);
            }
        };
        let url = format!("http://{addr}");
        let grpc_url = format!("http://{grpc}");
        let key = env.iter().find(|(k, _)| *k == "NAKSHA_API_KEY").map(|(_, v)| v.to_string());
        let server = Server { child, client: Client::new(&url, key), url, grpc_url, logs: rx };
        while !ready(&server) {
            assert!(Instant::now() < deadline, "server never became ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.client.request("GET", path, None).unwrap()
    }

    pub fn send(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.client.request(method, path, Some(("application/json", body.to_owned()))).unwrap()
    }

    pub fn ndjson(&self, path: &str, body: &str) -> (u16, Value) {
        self.client.request("POST", path, Some(("application/x-ndjson", body.to_owned()))).unwrap()
    }

    /// SIGTERM, wait for a clean exit, return the log lines after the signal.
    pub fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "server exited with {exit}");
        // Every line up to the end of stderr: the reader thread may still be
        // forwarding the last ones ("shutdown complete") when the process exits.
        self.logs.iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
