//! Helpers every benchmark shares: where results and virtual environments
//! live, running peers' commands, the machine line of a report, progress bars,
//! HTTP calls to a server and latency percentiles. Depends on no other module.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// `bench/` of this checkout.
pub(crate) fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ANN peers' venv (`bench/.venv`), created from `peers/requirements.txt` if needed.
pub fn ensure_venv() -> Result<PathBuf> {
    ensure_named_venv(".venv", "requirements.txt")
}

/// The Python of venv `bench/{name}`, (re)created from the pinned
/// `bench/peers/{requirements}` when missing or stale.
pub fn ensure_named_venv(name: &str, requirements: &str) -> Result<PathBuf> {
    let venv = bench_dir().join(name);
    let python = venv.join("bin/python");
    let stamp = venv.join(".requirements");
    let reqs = bench_dir().join("peers").join(requirements);
    let wanted = fs_err::read_to_string(&reqs)?;
    if python.exists() && fs_err::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    eprintln!("creating {} from {} ...", venv.display(), reqs.display());
    run_command(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run_command(Command::new(&python).args(["-m", "pip", "install", "--quiet", "-r"]).arg(&reqs))?;
    fs_err::write(&stamp, wanted)?;
    Ok(python)
}

pub(crate) fn run_command(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// CPU model and core count of this machine.
pub fn machine() -> String {
    let cpu = fs_err::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, kernels: {}", naksha_index::distance::active().name)
}

/// A progress bar for `len` steps of long bench work (hidden when stderr is not a terminal).
pub fn progress(len: usize, msg: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64).with_message(msg);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Resident set size of process `pid` (`self` for this one), bytes.
pub fn rss_of(pid: &str) -> u64 {
    fs_err::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Open file descriptors of process `pid` (`self` for this one).
pub fn open_files_of(pid: &str) -> u64 {
    fs_err::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = fs_err::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: String) -> Result<Value> {
    let res = agent.post(url).header("Content-Type", content_type).send(body)?;
    let status = res.status().as_u16();
    let v: Value = serde_json::from_str(&res.into_body().read_to_string()?)?;
    if status != 200 && status != 201 {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

/// `PUT /v1/collections/{name}` with `config`; anything but 201 is an error.
pub(crate) fn create_collection(agent: &ureq::Agent, base: &str, name: &str, config: &Value) -> Result<()> {
    let res = agent.put(format!("{base}/v1/collections/{name}")).header("Content-Type", "application/json");
    let status = res.send(config.to_string())?.status().as_u16();
    if status != 201 {
        bail!("creating the collection {name}: {status}");
    }
    Ok(())
}
