//! A generator that calls any OpenAI-compatible chat-completions endpoint
//! (vLLM, llama.cpp server, Ollama, hosted APIs behind an HTTP proxy).
//!
//! The prompt numbers the passages `[1]..[n]` and asks for `[n]` citations;
//! the cited numbers are parsed back out of the answer. Streaming
//! (`"stream": true`, server-sent `data:` lines) is asked for when the caller
//! streams; either form of reply is understood.
//! Connection failures, timeouts, 429 and 5xx are retried with backoff, but
//! only before the first byte of an answer; the whole call (each attempt) is
//! bounded by `timeout_ms`. Plain `http://` only: this build has no TLS client.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Citation, Error, Passage, RagEvent, Result, Sink};

/// Settings of the `openai` generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000/v1` (`/chat/completions` is appended).
    pub base_url: String,
    /// Model name sent to the endpoint.
    pub model: String,
    /// Environment variable of the server process holding the API key (sent as a bearer token).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Limit for each attempt, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Further attempts after a connection failure, timeout, 429 or 5xx.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: f32,
    /// Most tokens to generate (the endpoint's default when absent).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn default_retries() -> u32 {
    2
}

const SYSTEM_PROMPT: &str = "You answer questions using only the numbered context passages. \
After each sentence, cite the passages it uses as [n]. \
If the passages do not answer the question, say that you do not know.";

fn bad(m: String) -> Error {
    Error::InvalidArgument(format!("generator: {m}"))
}

impl OpenAiConfig {
    /// Settings for `model` at `base_url`, the rest at their defaults (no key,
    /// 60 s per attempt, 2 retries, temperature 0, the endpoint's token limit).
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            timeout_ms: default_timeout_ms(),
            max_retries: default_retries(),
            temperature: 0.0,
            max_tokens: None,
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        let host = self.base_url.strip_prefix("http://").unwrap_or_default();
        if host.is_empty() || host.starts_with('/') {
            return Err(bad(format!(
                "base_url must be an http:// URL (this build has no TLS client), not {:?}",
                self.base_url
            )));
        }
        if self.model.trim().is_empty() {
            return Err(bad("model is empty".into()));
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(bad(format!("timeout_ms must be between 1 and 600000, not {}", self.timeout_ms)));
        }
        if self.max_retries > 10 {
            return Err(bad(format!("max_retries must be at most 10, not {}", self.max_retries)));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(bad(format!("temperature must be between 0 and 2, not {}", self.temperature)));
        }
        Ok(())
    }

    /// Host (and port) of `base_url`, for allow-lists.
    pub fn host(&self) -> &str {
        let rest = self.base_url.strip_prefix("http://").unwrap_or(&self.base_url);
        let authority = rest.split('/').next().unwrap_or_default();
        authority.rsplit_once('@').map_or(authority, |(_, h)| h)
    }
}

/// The user message: numbered passages, then the question.
fn prompt(question: &str, passages: &[Passage]) -> String {
    let mut s = String::from("Context passages:\n\n");
    for (n, p) in passages.iter().enumerate() {
        s.push_str(&format!("[{}] {}\n\n", n + 1, p.text.trim()));
    }
    s.push_str(&format!("Question: {}", question.trim()));
    s
}

/// Passage numbers cited as `[n]`, `[n, m]` or `[n][m]`, in order of first
/// citation, each once; numbers outside `1..=count` are ignored.
pub(super) fn cited(answer: &str, count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inside = &rest[..close];
        if inside.chars().all(|c| c.is_ascii_digit() || c == ',' || c == ' ') {
            for n in inside.split(',').filter_map(|x| x.trim().parse::<usize>().ok()) {
                if (1..=count).contains(&n) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        rest = &rest[close..];
    }
    out
}

/// Calls the endpoint and returns the answer and the passages it cites.
pub(super) fn answer(
    cfg: &OpenAiConfig,
    question: &str,
    passages: &[Passage],
    stream: bool,
    sink: Sink<'_>,
) -> Result<(String, Vec<Citation>)> {
    let key = match &cfg.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| bad(format!("environment variable {var} is not set")))?),
        None => None,
    };
    let mut body = json!({
        "model": cfg.model,
        "temperature": cfg.temperature,
        "stream": stream,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt(question, passages)},
        ],
    });
    if let Some(m) = cfg.max_tokens {
        body["max_tokens"] = m.into();
    }
    let url = format!("{}/chat/completions", cfg.base_url.trim_end_matches('/'));
    let text = call(cfg, &url, key.as_deref(), &body, sink)?;
    let citations = cited(&text, passages.len())
        .into_iter()
        .map(|n| {
            let p = &passages[n - 1];
            Citation {
                id: p.id.clone(),
                doc_id: p.doc_id.clone(),
                field: p.field.clone(),
                start: p.start,
                end: p.start + p.text.chars().count(),
                text: p.text.clone(),
                score: p.score,
            }
        })
        .collect();
    Ok((text, citations))
}

/// Posts `body` with retries; reads the answer, streamed or whole.
fn call(cfg: &OpenAiConfig, url: &str, key: Option<&str>, body: &Value, sink: Sink<'_>) -> Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(cfg.timeout_ms)))
        .http_status_as_error(false)
        .build()
        .into();
    let payload = body.to_string();
    let mut attempt = 0;
    loop {
        let mut req = agent.post(url).header("Content-Type", "application/json");
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let failure = match req.send(payload.as_str()) {
            Ok(res) if res.status().is_success() => {
                let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let streamed = content_type.starts_with("text/event-stream");
                return read_answer(cfg, url, streamed, res.into_body(), sink);
            }
            Ok(res) => {
                let status = res.status().as_u16();
                let text = res.into_body().read_to_string().unwrap_or_default();
                let excerpt: String = text.chars().take(300).collect();
                let msg = format!("{url} answered {status}: {excerpt}");
                if status != 429 && status < 500 {
                    return Err(Error::Generator(msg));
                }
                msg
            }
            Err(ureq::Error::Timeout(_)) => format!("{url} did not answer within {} ms", cfg.timeout_ms),
            Err(e) => format!("cannot reach {url}: {e}"),
        };
        if attempt >= cfg.max_retries {
            let tries = attempt + 1;
            return Err(Error::Generator(format!(
                "{failure} (after {tries} attempt{})",
                if tries > 1 { "s" } else { "" }
            )));
        }
        tracing::warn!(attempt, %failure, "generator call failed, retrying");
        std::thread::sleep(Duration::from_millis(100 << attempt.min(4)));
        attempt += 1;
    }
}

fn read_answer(cfg: &OpenAiConfig, url: &str, streamed: bool, body: ureq::Body, sink: Sink<'_>) -> Result<String> {
    let failed = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => Error::Generator(format!("{url} did not finish within {} ms", cfg.timeout_ms)),
        e => Error::Generator(format!("reading the answer from {url}: {e}")),
    };
    let io_failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::TimedOut => Error::Generator(format!("{url} did not finish within {} ms", cfg.timeout_ms)),
        _ => Error::Generator(format!("reading the answer from {url}: {e}")),
    };
    if !streamed {
        // Endpoints that ignore `stream` answer with one JSON object.
        let text = body.into_with_config().limit(16 << 20).read_to_string().map_err(failed)?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Generator(format!("{url} answered with malformed JSON: {e}")))?;
        let answer = v["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| Error::Generator(format!("{url} answered without choices[0].message.content")))?
            .to_owned();
        if !answer.is_empty() && !sink(RagEvent::Token(answer.clone())) {
            return Err(Error::Cancelled);
        }
        return Ok(answer);
    }
    let mut answer = String::new();
    for line in BufReader::new(body.into_reader()).lines() {
        let line = line.map_err(io_failed)?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
        if data == "[DONE]" {
            return Ok(answer);
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| Error::Generator(format!("{url} streamed malformed JSON: {e}")))?;
        if let Some(err) = v.get("error") {
            return Err(Error::Generator(format!("{url} streamed an error: {err}")));
        }
        if let Some(piece) = v["choices"][0]["delta"]["content"].as_str().filter(|s| !s.is_empty()) {
            answer.push_str(piece);
            if !sink(RagEvent::Token(piece.to_owned())) {
                return Err(Error::Cancelled);
            }
        }
    }
    Err(Error::Generator(format!("{url} ended the stream without [DONE]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_parsed_in_order_once_and_in_range() {
        assert_eq!(cited("A [2]. B [1, 3][2]. C [9] [x] [ ] [4", 3), vec![2, 1, 3]);
        assert!(cited("no marks", 3).is_empty());
    }

    #[test]
    fn settings_are_checked() {
        let ok = OpenAiConfig {
            base_url: "http://user@127.0.0.1:8000/v1".into(),
            model: "m".into(),
            api_key_env: None,
            timeout_ms: 1000,
            max_retries: 1,
            temperature: 0.0,
            max_tokens: None,
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.host(), "127.0.0.1:8000");
        for bad in [
            OpenAiConfig { base_url: "https://api.example.com/v1".into(), ..ok.clone() },
            OpenAiConfig { base_url: "http:///v1".into(), ..ok.clone() },
            OpenAiConfig { model: " ".into(), ..ok.clone() },
            OpenAiConfig { timeout_ms: 0, ..ok.clone() },
            OpenAiConfig { temperature: 3.0, ..ok.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidArgument(_))), "{bad:?}");
        }
    }
}
