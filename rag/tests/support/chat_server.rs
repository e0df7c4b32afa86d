//! A small HTTP/1.1 server on loopback that speaks the chat-completions
//! protocol from a script of replies, and records what it was sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole JSON completion with this content.
    Answer(&'static str),
    /// A streamed completion (`text/event-stream`, chunked), one delta per piece.
    Stream(Vec<&'static str>),
    /// A streamed completion with this many milliseconds between pieces.
    Drip(Vec<&'static str>, u64),
    /// A stream that stops without `[DONE]`.
    Truncated(Vec<&'static str>),
    /// An error status with a JSON body.
    Status(u16),
    /// Nothing for this long, then an answer.
    Slow(u64),
}

/// A recorded request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct ChatServer {
    pub base_url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Streams cut short because the client closed the connection.
    pub hang_ups: Arc<AtomicUsize>,
}

impl ChatServer {
    /// Serves `script` in order (the last reply repeats), each on its own connection.
    pub fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hang_ups = Arc::new(AtomicUsize::new(0));
        let (log, cut) = (Arc::clone(&seen), Arc::clone(&hang_ups));
        thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(conn) = conn else { return };
                let reply = script.get(n).or(script.last()).cloned().unwrap();
                let (log, cut) = (Arc::clone(&log), Arc::clone(&cut));
                thread::spawn(move || serve(conn, reply, &log, &cut));
            }
        });
        Self { base_url, seen, hang_ups }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, reply: Reply, log: &Mutex<Vec<Seen>>, hang_ups: &AtomicUsize) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let (mut length, mut authorization) = (0, None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap(),
                "authorization" => authorization = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    log.lock().unwrap().push(Seen { authorization, body });
    let mut out = conn;
    let whole = |status: u16, body: Value| {
        let text = body.to_string();
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
    };
    let answer =
        |content: &str| json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]});
    let done = matches!(reply, Reply::Stream(_) | Reply::Drip(..));
    let gap = if let Reply::Drip(_, ms) = reply { ms } else { 5 };
    match reply {
        Reply::Answer(content) => {
            let _ = out.write_all(whole(200, answer(content)).as_bytes());
        }
        Reply::Status(status) => {
            let _ = out.write_all(whole(status, json!({"error": {"message": "scripted failure"}})).as_bytes());
        }
        Reply::Slow(ms) => {
            thread::sleep(Duration::from_millis(ms));
            let _ = out.write_all(whole(200, answer("late [1]")).as_bytes());
        }
        Reply::Stream(pieces) | Reply::Truncated(pieces) | Reply::Drip(pieces, _) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut events: Vec<String> = pieces
                .iter()
                .map(|p| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": p}}]})))
                .collect();
            if done {
                events.push("data: [DONE]\n\n".into());
            }
            for e in events {
                if out.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes()).and_then(|_| out.flush()).is_err() {
                    hang_ups.fetch_add(1, Ordering::SeqCst);
                    return; // the client hung up
                }
                thread::sleep(Duration::from_millis(gap));
            }
            let _ = out.write_all(b"0\r\n\r\n");
        }
    }
}
