//! RAG on a labelled known-item set: every question asked over HTTP `/rag`
//! (extractive generator, one request at a time) at each context budget, and
//! scored by whether the answer cites the one record the question is about.
//!
//! The collection is the one [`crate::quality`] measures (the `text` field
//! only, vectors precomputed), so the figures sit beside its retrieval table.
//! In the same run, hybrid search alone (the RAG's first stage, with the
//! question as plain words) gives the reference: a record that retrieval does
//! not return cannot be cited. Latency is client-side wall time for the whole
//! answer, question embedding, retrieval, packing and sentence scoring included.

use std::fmt::Write;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::common::post;
use crate::common::{agent, percentile};
use crate::quality::{load_set, query_all, KnownItemArgs};

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct RagArgs {
    /// Corpus, questions, model.
    pub set: KnownItemArgs,
    /// Context budgets (`max_context_tokens`), one row each.
    pub budgets: Vec<usize>,
    /// Context passages per answer (`limit`).
    pub limit: usize,
}

/// Figures for one context budget.
#[derive(Clone, Debug, PartialEq)]
pub struct RagRow {
    /// `max_context_tokens`.
    pub budget: usize,
    /// Share of questions whose record is among the citations.
    pub cited: f64,
    /// Share of questions whose record is the first citation.
    pub cited_first: f64,
    /// Mean share of an answer's citations that quote the right record.
    pub precision: f64,
    /// Share of questions with a non-empty answer.
    pub answered: f64,
    /// Mean context passages per answer.
    pub contexts: f64,
    /// Context tokens: mean, p50, max.
    pub tokens: (f64, f64, usize),
    /// Answers whose context went over the budget (must be 0).
    pub over_budget: usize,
    /// Latency p50 and p99, ms.
    pub latency: (f64, f64),
}

/// Retrieval alone, for reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieval {
    /// Share of questions whose record is the top hit.
    pub at1: f64,
    /// Share whose record is in the top `limit`.
    pub at_limit: f64,
    /// Latency p50 and p99, ms.
    pub latency: (f64, f64),
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct RagReport {
    /// Records loaded.
    pub docs: usize,
    /// Questions asked.
    pub queries: usize,
    /// Seconds to load the collection.
    pub load_secs: f64,
    /// Hybrid search alone.
    pub retrieval: Retrieval,
    /// One row per budget.
    pub rows: Vec<RagRow>,
}

/// Run the bench.
pub fn run(args: &RagArgs) -> Result<RagReport> {
    if args.budgets.is_empty() {
        bail!("no context budget given");
    }
    let set = load_set(&args.set)?;
    let relevant: Vec<u64> = set.queries.iter().map(|q| q.1).collect();
    let (ranked, mut ms) = query_all(&set.base, &set.queries, args.limit, &json!({"mode": "hybrid"}))?;
    ms.sort_by(f64::total_cmp);
    let share = |hit: &dyn Fn(&[u64], u64) -> bool| {
        ranked.iter().zip(&relevant).filter(|(l, r)| hit(l, **r)).count() as f64 / relevant.len() as f64
    };
    let retrieval = Retrieval {
        at1: share(&|l, r| l.first() == Some(&r)),
        at_limit: share(&|l, r| l.contains(&r)),
        latency: (percentile(&ms, 0.5), percentile(&ms, 0.99)),
    };
    eprintln!("retrieval alone: top-1 {:.4}, top-{} {:.4}", retrieval.at1, args.limit, retrieval.at_limit);
    let mut rows = Vec::with_capacity(args.budgets.len());
    for &budget in &args.budgets {
        let (answers, ms) = ask_all(&set.base, &set.queries, args.limit, budget)?;
        let row = tally(budget, &answers, &relevant, ms)?;
        eprintln!("budget {budget}: cited {:.4}, p50 {:.1} ms", row.cited, row.latency.0);
        rows.push(row);
    }
    Ok(RagReport { docs: set.records.len(), queries: set.queries.len(), load_secs: set.load_secs, retrieval, rows })
}

/// Every question, one at a time: the answers and their latency in ms.
fn ask_all(base: &str, queries: &[(String, u64)], limit: usize, budget: usize) -> Result<(Vec<Value>, Vec<f64>)> {
    let a = agent();
    let url = format!("{base}/v1/collections/debian/rag");
    let body = |q: &str| json!({"question": q, "limit": limit, "max_context_tokens": budget}).to_string();
    post(&a, &url, "application/json", body(&queries[0].0))?; // warm-up
    let bar = crate::common::progress(queries.len(), format!("rag, budget {budget}"));
    let (mut answers, mut ms) = (Vec::with_capacity(queries.len()), Vec::with_capacity(queries.len()));
    for (q, _) in queries {
        let t = Instant::now();
        answers.push(post(&a, &url, "application/json", body(q))?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((answers, ms))
}

/// Scores `answers` (the `/rag` replies, in question order) against the
/// relevant record of each question.
pub fn tally(budget: usize, answers: &[Value], relevant: &[u64], mut ms: Vec<f64>) -> Result<RagRow> {
    if answers.len() != relevant.len() || answers.is_empty() {
        bail!("{} answers for {} questions", answers.len(), relevant.len());
    }
    let n = answers.len() as f64;
    let (mut cited, mut first, mut precision, mut answered, mut contexts) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut tokens = Vec::with_capacity(answers.len());
    for (a, want) in answers.iter().zip(relevant) {
        let ids: Vec<Option<u64>> = a["citations"]
            .as_array()
            .context("an answer without citations")?
            .iter()
            .map(|c| c["id"].as_u64())
            .collect();
        let right = ids.iter().filter(|id| **id == Some(*want)).count();
        cited += f64::from(right > 0);
        first += f64::from(ids.first() == Some(&Some(*want)));
        if !ids.is_empty() {
            precision += right as f64 / ids.len() as f64;
        }
        answered += f64::from(!a["answer"].as_str().unwrap_or_default().is_empty());
        contexts += a["contexts"].as_u64().unwrap_or_default() as f64;
        tokens.push(a["context_tokens"].as_u64().context("an answer without context_tokens")? as usize);
    }
    let over_budget = tokens.iter().filter(|&&t| t > budget).count();
    let max = tokens.iter().copied().max().unwrap_or_default();
    let mut sorted: Vec<f64> = tokens.iter().map(|&t| t as f64).collect();
    sorted.sort_by(f64::total_cmp);
    ms.sort_by(f64::total_cmp);
    Ok(RagRow {
        budget,
        cited: cited / n,
        cited_first: first / n,
        precision: precision / n,
        answered: answered / n,
        contexts: contexts / n,
        tokens: (sorted.iter().sum::<f64>() / n, percentile(&sorted, 0.5), max),
        over_budget,
        latency: (percentile(&ms, 0.5), percentile(&ms, 0.99)),
    })
}

/// The report as markdown.
pub fn markdown(r: &RagReport, args: &RagArgs, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# RAG: grounded answers on the Debian known-item questions\n");
    let _ = writeln!(s, "- Machine: {}", crate::common::machine());
    let _ = writeln!(
        s,
        "- Data: {} records of {} (the `text` field only, loaded in {:.1} s), {} questions of {} \
         (each a package synopsis; the right answer cites its record)",
        r.docs,
        args.set.corpus.display(),
        r.load_secs,
        r.queries,
        args.set.eval_dir.display()
    );
    let _ = writeln!(
        s,
        "- Naksha: HTTP `/rag` on loopback, `extractive` generator (3 sentences), `limit` {}, model {}; \
         one request at a time; latency is client-side wall time for the whole answer",
        args.limit, args.set.model
    );
    let _ = writeln!(s, "- Command: `{command}`\n");
    let _ = writeln!(
        s,
        "| budget (tokens) | cited | cited first | citation precision | answered | contexts | \
         context tokens mean / p50 / max | over budget | p50 ms | p99 ms |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {:.0} / {:.0} / {} | {} | {:.1} | {:.1} |",
            row.budget,
            row.cited,
            row.cited_first,
            row.precision,
            row.answered,
            row.contexts,
            row.tokens.0,
            row.tokens.1,
            row.tokens.2,
            row.over_budget,
            row.latency.0,
            row.latency.1
        );
    }
    let t = &r.retrieval;
    let _ = writeln!(
        s,
        "\nFor reference, hybrid search alone (RRF, the question as plain words, same run): the record is the \
         top hit for {:.4} of the questions and in the top {} for {:.4} (p50 {:.1} ms, p99 {:.1} ms). \
         \"cited\": the record is among the answer's citations; \"citation precision\": the share of citations \
         that quote it (other records may answer too: a synopsis rarely names one package only).",
        t.at1, args.limit, t.at_limit, t.latency.0, t.latency.1
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_by_hand() {
        let answer = |ids: &[u64], tokens: u64| {
            let citations: Vec<Value> = ids.iter().map(|i| json!({"id": i})).collect();
            let text = if ids.is_empty() { "" } else { "an answer [1]" };
            json!({"answer": text, "citations": citations, "contexts": 2, "context_tokens": tokens})
        };
        let answers = [answer(&[7, 1, 7], 90), answer(&[1, 7], 100), answer(&[], 0), answer(&[2], 120)];
        let row = tally(100, &answers, &[7, 7, 7, 7], vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(row.cited, 0.5);
        assert_eq!(row.cited_first, 0.25);
        assert!((row.precision - (2.0 / 3.0 + 0.5) / 4.0).abs() < 1e-12);
        assert_eq!((row.answered, row.contexts, row.over_budget), (0.75, 2.0, 1));
        assert_eq!(row.tokens.2, 120);
        assert!((row.tokens.0 - 77.5).abs() < 1e-12);
        assert!(row.latency.1 >= row.latency.0 && row.latency.0 >= 1.0);
        assert!(tally(100, &answers[..1], &[7, 7], vec![1.0]).is_err());
        assert!(tally(100, &[json!({"answer": ""})], &[7], vec![1.0]).is_err(), "a reply that is not an answer");
    }
}
