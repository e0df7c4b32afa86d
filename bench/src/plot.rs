//! PNG plots of reports, drawn by matplotlib (`bench/peers/plot_*.py`) in
//! `bench/.venv-plot`, made from the pinned `peers/requirements-plot.txt` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::common::{bench_dir, ensure_named_venv, run_command};

/// Plot the ANN report `json` (from `naksha-bench ann --out`) as a PNG beside it; returns its path.
pub fn ann(json: &Path) -> Result<PathBuf> {
    let python = ensure_named_venv(".venv-plot", "requirements-plot.txt")?;
    let png = json.with_extension("png");
    run_command(Command::new(python).arg(bench_dir().join("peers/plot_ann.py")).arg(json).arg(&png))?;
    Ok(png)
}

/// Plot the soak report `json` (from `naksha-bench soak --out`) as a PNG beside it; returns its path.
pub fn soak(json: &Path) -> Result<PathBuf> {
    let python = ensure_named_venv(".venv-plot", "requirements-plot.txt")?;
    let png = json.with_extension("png");
    run_command(Command::new(python).arg(bench_dir().join("peers/plot_soak.py")).arg(json).arg(&png))?;
    Ok(png)
}
