//! Embedded quickstart: open a data directory, create a collection, load the
//! bundled sample (CSS named colours as RGB vectors, one point per line in the
//! same JSONL shape `naksha import` takes), and answer queries.
//!
//! `cargo run --release -p naksha --example quickstart -- [DATA_DIR]`

use anyhow::{Context, Result};
use naksha::{CollectionConfig, Database, FieldType, Filter, Metric, Point, SearchRequest};
use serde_json::json;

const SAMPLE: &str = include_str!("data/colors.jsonl");

fn rgb(hex: &str) -> Result<Vec<f32>> {
    let h = hex.trim_start_matches('#');
    (0..3).map(|i| Ok(u8::from_str_radix(h.get(2 * i..2 * i + 2).context("short hex")?, 16)? as f32 / 255.0)).collect()
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "naksha-data".into());
    let db = Database::open(&dir)?;
    let colors = db.create_collection(
        "colors",
        CollectionConfig::new(3, Metric::L2).with_payload_index("tone", FieldType::Keyword),
    )?;
    let points = SAMPLE.lines().map(|line| Ok(serde_json::from_str::<Point>(line)?)).collect::<Result<Vec<_>>>()?;
    let seq = colors.upsert(points)?;
    println!("data directory {dir}: collection \"colors\" holds {} points (write #{seq} is durable)", colors.len());

    let query = "#ff8800";
    println!("\nnearest colours to {query}:");
    for hit in colors.search(&SearchRequest::new(rgb(query)?, 5))? {
        println!(
            "  {:<14} {}  distance {:.3}",
            hit.id.to_string().trim_matches('"'),
            hit.payload.as_ref().map_or("", |p| p["hex"].as_str().unwrap_or("")),
            hit.score
        );
    }
    let cool = Filter::from_json(json!({"must": [{"key": "tone", "match": "cool"}]}))?;
    println!("\nnearest *cool* colours to {query}:");
    for hit in colors.search(&SearchRequest::new(rgb(query)?, 3).filter(cool))? {
        println!(
            "  {:<14} {}  distance {:.3}",
            hit.id.to_string().trim_matches('"'),
            hit.payload.as_ref().map_or("", |p| p["hex"].as_str().unwrap_or("")),
            hit.score
        );
    }
    colors.flush()?;
    let info = colors.info();
    println!(
        "\nflushed to {} segment(s), {} bytes on disk; run again to see the data survive a restart",
        info.segments, info.disk_bytes
    );
    Ok(())
}
