//! Crash safety: a child process upserts, updates and deletes in a loop and is
//! killed with SIGKILL at random moments; after each kill the parent reopens
//! the data and checks every acknowledged write, in the vector and the text index.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use naksha_index::testing::Rng;
use naksha_query::{CollectionConfig, Database, EngineOptions, Metric, Mode, Point, PointId, SearchRequest};
use serde_json::{json, Value};

const DIM: usize = 8;
const BATCH: u64 = 20;
const CHILD_ENV: &str = "NAKSHA_CRASH_CHILD_DIR";

/// The operations of step `j`, fixed by `j` alone so parent and child agree.
enum Op {
    Upsert(Vec<(u64, Vec<f32>, Value)>),
    Delete(Vec<u64>),
}

fn vector(id: u64, version: u64) -> Vec<f32> {
    (0..DIM).map(|d| ((id * 31 + version * 7 + d as u64) % 97) as f32 + 1.0).collect()
}

fn step(j: u64) -> Op {
    if j % 5 == 4 {
        // Delete a few points written earlier.
        return Op::Delete((0..3).map(|k| (j / 2) * BATCH + k * 3).collect());
    }
    if j % 5 == 3 && j > 10 {
        // Rewrite points of an earlier batch.
        let base = (j - 7) * BATCH;
        return Op::Upsert((base..base + 5).map(|id| (id, vector(id, j), json!({"v": j, "id": id}))).collect());
    }
    Op::Upsert((j * BATCH..(j + 1) * BATCH).map(|id| (id, vector(id, 0), json!({"v": 0, "id": id}))).collect())
}

/// The text fields of a point: a token unique to the id and one naming its version.
fn text_of(id: u64, payload: &Value) -> Value {
    json!({"body": format!("w{id} r{}", payload["v"])})
}

fn point(id: u64, v: Vec<f32>, p: Value) -> Point {
    let text = text_of(id, &p);
    Point::new(PointId::Num(id), v, p).with_text(text)
}

fn config() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::L2).with_text_fields(&["body"])
}

fn options() -> EngineOptions {
    // Small thresholds so kills land during flushes and merges too.
    EngineOptions { flush_points: 150, merge_min_segments: 3, ..EngineOptions::default() }
}

fn apply(model: &mut BTreeMap<u64, (Vec<f32>, Value)>, gone: &mut BTreeSet<u64>, op: &Op) {
    match op {
        Op::Upsert(pts) => pts.iter().for_each(|(id, v, p)| {
            model.insert(*id, (v.clone(), p.clone()));
            gone.remove(id);
        }),
        Op::Delete(ids) => ids.iter().for_each(|id| {
            if model.remove(id).is_some() {
                gone.insert(*id);
            }
        }),
    }
}

/// The child: runs steps from `NAKSHA_CRASH_START` until killed, printing `ACK j` after each.
#[test]
#[ignore = "run by crash_safety_under_sigkill as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let start: u64 = std::env::var("NAKSHA_CRASH_START").unwrap().parse().unwrap();
    let db = Database::open_with(&dir, options()).unwrap();
    let c = db.create_collection("c", config()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    for j in start.. {
        match step(j) {
            Op::Upsert(pts) => {
                c.upsert(pts.into_iter().map(|(id, v, p)| point(id, v, p)).collect()).unwrap();
            }
            Op::Delete(ids) => {
                c.delete(ids.into_iter().map(PointId::Num).collect()).unwrap();
            }
        }
        writeln!(out, "ACK {j}").unwrap();
        out.flush().unwrap();
    }
}

fn verify(db: &Database, model: &BTreeMap<u64, (Vec<f32>, Value)>, gone: &BTreeSet<u64>, round: usize) {
    let c = db.collection("c").unwrap();
    assert_eq!(c.len(), model.len(), "round {round}: live point count");
    for (id, (v, p)) in model {
        let r =
            c.get(&PointId::Num(*id)).unwrap().unwrap_or_else(|| panic!("round {round}: acknowledged point {id} lost"));
        assert_eq!((&r.vector, &r.payload, &r.text), (v, p, &text_of(*id, p)), "round {round}: point {id} not intact");
    }
    if let Some((id, (v, _))) = model.iter().next_back() {
        let hits = c.search(&SearchRequest::new(v.clone(), 1)).unwrap();
        assert_eq!(hits[0].score, 0.0, "round {round}: search for point {id}");
    }
    // The text index: every sampled live point is found by its words, deleted ones are not.
    let find = |q: String| -> Vec<PointId> {
        c.search(&SearchRequest::text(q, 3).mode(Mode::Text)).unwrap().into_iter().map(|h| h.id).collect()
    };
    for (id, (_, p)) in model.iter().step_by(7) {
        assert_eq!(find(format!("+w{id} +r{}", p["v"])), vec![PointId::Num(*id)], "round {round}: text of {id}");
    }
    for id in gone.iter().step_by(3) {
        assert_eq!(find(format!("w{id}")), Vec::<PointId>::new(), "round {round}: deleted {id} found by text");
    }
}

/// How a child's run ends.
enum End {
    /// SIGKILL after this long.
    Kill(Duration),
    /// The child aborts itself at an armed fault point (`NAKSHA_FAULTS`).
    Fault(&'static str),
}

/// The reference model of what was acknowledged.
#[derive(Default)]
struct Model {
    points: BTreeMap<u64, (Vec<f32>, Value)>,
    gone: BTreeSet<u64>,
    next: u64,
}

/// One child run from `model.next` on, ended by `end`; then the data is
/// reopened and checked against every acknowledged step. Returns whether the
/// child acknowledged anything.
fn round(dir: &std::path::Path, model: &mut Model, end: End, round: usize) -> bool {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(&exe);
    cmd.args(["--exact", "crash::crash_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env("NAKSHA_CRASH_START", model.next.to_string())
        .env_remove("NAKSHA_FAULTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let End::Fault(spec) = end {
        cmd.env("NAKSHA_FAULTS", spec);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(j) = line.strip_prefix("ACK ") {
                acked = Some(j.parse::<u64>().unwrap());
            }
        }
        acked
    });
    match end {
        End::Kill(after) => {
            std::thread::sleep(after);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        End::Fault(spec) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("{spec}: the child never reached the fault point");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(!status.success(), "{spec}: the child exited cleanly ({status})");
        }
    }
    let Some(last) = reader.join().unwrap() else { return false };
    for j in model.next..=last {
        apply(&mut model.points, &mut model.gone, &step(j));
    }
    // The step in flight at the crash may or may not have landed: learn which.
    let db = Database::open_with(dir, EngineOptions { background: false, ..options() }).unwrap();
    let c = db.collection("c").unwrap();
    let in_flight = step(last + 1);
    let landed = match &in_flight {
        Op::Upsert(pts) => {
            let (id, v, p) = &pts[0];
            c.get(&PointId::Num(*id)).unwrap().is_some_and(|r| (&r.vector, &r.payload) == (v, p))
        }
        Op::Delete(ids) => {
            ids.iter().any(|id| model.points.contains_key(id) && c.get(&PointId::Num(*id)).unwrap().is_none())
        }
    };
    if landed {
        apply(&mut model.points, &mut model.gone, &in_flight);
    }
    model.next = last + 2;
    drop(c);
    verify(&db, &model.points, &model.gone, round);
    true
}

#[test]
fn crash_safety_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(42);
    let mut model = Model::default();
    let started = Instant::now();
    for r in 0..12 {
        round(dir.path(), &mut model, End::Kill(Duration::from_millis(100 + rng.below(600))), r);
    }
    assert!(model.points.len() > 500, "the child made progress: {} points", model.points.len());
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// A crash at every step of WAL rotation, flush, merge and manifest swap (the
/// child aborts itself at the armed fault point): after each, every
/// acknowledged write is present and nothing unacknowledged appeared.
#[test]
fn crash_at_every_step_of_rotation_flush_merge_and_manifest_swap() {
    let faults = [
        "merge.before_manifest=crash",
        "merge.after_manifest=crash",
        "wal.rotate.after_create=crash@1",
        "section.write=crash@3",
        "flush.before_manifest=crash@1",
        "atomic.before_rename=crash@2",
        "atomic.after_rename=crash@2",
        "flush.after_manifest=crash@1",
        "wal.truncate=crash@1",
        "wal.create=crash@1",
        "wal.write=crash@40",
        "wal.fsync=crash@40",
    ];
    // A fresh directory per fault keeps each run short; a second crash at the
    // same point then lands on the state the first one left.
    for (r, spec) in faults.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::default();
        for again in 0..2 {
            assert!(round(dir.path(), &mut model, End::Fault(spec), 2 * r + again), "{spec}: nothing was acknowledged");
        }
        assert!(!model.points.is_empty(), "{spec}: the child made progress");
    }
}
