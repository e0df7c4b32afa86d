use proptest::prelude::*;
use serde_json::json;

use super::*;

fn upsert(id: u64) -> WalOp {
    WalOp::Upsert(vec![Point::new(PointId::Num(id), vec![id as f32, 1.0, -2.5], json!({"n": id}))])
}

fn arb_op() -> impl Strategy<Value = WalOp> {
    let id = prop_oneof![any::<u64>().prop_map(PointId::Num), "[a-z0-9#]{0,10}".prop_map(PointId::Str)];
    let point =
        (id.clone(), prop::collection::vec(-10f32..10.0, 0..8), any::<Option<u8>>()).prop_map(|(id, vector, p)| {
            let text = p.map_or(Value::Null, |v| json!({"body": format!("text {v}")}));
            Point::new(id, vector, p.map_or(Value::Null, |v| json!({"v": v}))).with_text(text)
        });
    prop_oneof![
        prop::collection::vec(point, 0..4).prop_map(WalOp::Upsert),
        prop::collection::vec(id, 0..4).prop_map(WalOp::Delete),
    ]
}

use serde_json::Value;

fn write_log(ops: &[WalOp]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    for op in ops {
        let seq = wal.append(op).unwrap();
        wal.sync_through(seq).unwrap();
    }
    let path = dir.path().join(file_name(1));
    (dir, path)
}

#[test]
fn replays_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        assert!(replay.is_empty());
        for i in 1..=10 {
            assert_eq!(wal.append(&upsert(i)).unwrap(), i);
        }
        wal.sync_through(10).unwrap();
    }
    let (wal, replay) = Wal::open(dir.path(), 4, WalOptions::default()).unwrap();
    assert_eq!(replay.iter().map(|r| r.0).collect::<Vec<_>>(), (5..=10).collect::<Vec<_>>());
    assert_eq!(replay[0].1, upsert(5));
    assert_eq!(wal.append(&upsert(11)).unwrap(), 11);
}

/// A crash after a flush made records durable but before `truncate_through`
/// deleted their files: every old file is still there and must not read as a
/// gap (a crash test hit "file starts at seq 410, expected 565").
#[test]
fn files_wholly_below_the_durable_point_are_not_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    for i in 1..=9 {
        wal.append(&upsert(i)).unwrap();
        if i % 3 == 0 {
            wal.rotate().unwrap();
        }
    }
    wal.sync_through(9).unwrap();
    drop(wal);
    for durable in [0, 2, 3, 5, 6, 8, 9] {
        let (_, replay) = Wal::open(dir.path(), durable, WalOptions::default()).unwrap();
        assert_eq!(replay.iter().map(|r| r.0).collect::<Vec<_>>(), (durable + 1..=9).collect::<Vec<_>>());
    }
}

#[test]
fn rotation_and_truncation_keep_unflushed_records() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    for i in 1..=3 {
        wal.append(&upsert(i)).unwrap();
    }
    wal.rotate().unwrap();
    for i in 4..=6 {
        wal.append(&upsert(i)).unwrap();
    }
    wal.rotate().unwrap();
    wal.append(&upsert(7)).unwrap();
    wal.sync_through(7).unwrap();
    assert_eq!(wal.disk_usage().0, 3);
    wal.truncate_through(5).unwrap(); // the first file (1..=3) goes, 4..=6 still needed
    assert_eq!(wal.disk_usage().0, 2);
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 5, WalOptions::default()).unwrap();
    assert_eq!(replay.iter().map(|r| r.0).collect::<Vec<_>>(), vec![6, 7]);
}

#[test]
fn concurrent_writers_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let wal = &wal;
            s.spawn(move || {
                for i in 0..50 {
                    let seq = wal.append(&upsert(t * 1000 + i)).unwrap();
                    wal.sync_through(seq).unwrap();
                }
            });
        }
    });
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(replay.len(), 200);
}

#[test]
fn corrupt_older_file_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    wal.append(&upsert(1)).unwrap();
    wal.append(&upsert(2)).unwrap();
    wal.rotate().unwrap();
    wal.append(&upsert(3)).unwrap();
    wal.sync_through(3).unwrap();
    drop(wal);
    let first = dir.path().join(file_name(1));
    let mut bytes = fs_err::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    fs_err::write(&first, bytes).unwrap();
    let err = Wal::open(dir.path(), 0, WalOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn op_round_trips(op in arb_op()) {
        prop_assert_eq!(WalOp::decode(&op.encode(), FORMAT_VERSION).unwrap(), op);
    }

    #[test]
    fn op_decoding_rejects_truncation(op in arb_op(), cut in any::<prop::sample::Index>()) {
        let bytes = op.encode();
        let cut = cut.index(bytes.len());
        prop_assert!(WalOp::decode(&bytes[..cut], FORMAT_VERSION).is_err());
    }

    /// Cutting the log anywhere yields exactly the records that were complete.
    #[test]
    fn torn_tail_is_cut_to_a_prefix(ops in prop::collection::vec(arb_op(), 1..6), cut in any::<prop::sample::Index>()) {
        let (dir, path) = write_log(&ops);
        let bytes = fs_err::read(&path).unwrap();
        let cut = FILE_HEADER + cut.index(bytes.len() - FILE_HEADER + 1);
        fs_err::write(&path, &bytes[..cut]).unwrap();
        let (wal, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        prop_assert!(replay.len() <= ops.len());
        for (i, (seq, op)) in replay.iter().enumerate() {
            prop_assert_eq!(*seq, i as u64 + 1);
            prop_assert_eq!(op, &ops[i]);
        }
        // Appending after repair continues the sequence and survives a reopen.
        let seq = wal.append(&ops[0]).unwrap();
        prop_assert_eq!(seq, replay.len() as u64 + 1);
        wal.sync_through(seq).unwrap();
        drop(wal);
        let (_, again) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
        prop_assert_eq!(again.len(), replay.len() + 1);
    }

    /// A flipped bit is detected: replay returns a prefix of what was written, never a misread record.
    #[test]
    fn bit_flips_never_misread(ops in prop::collection::vec(arb_op(), 1..6), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (_dir, path) = write_log(&ops);
        let mut bytes = fs_err::read(&path).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        match scan(&bytes, None) {
            Err(_) => {}
            Ok(s) => {
                for (j, (_, op)) in s.records.iter().enumerate() {
                    prop_assert_eq!(op, &ops[j]);
                }
                if i >= FILE_HEADER {
                    prop_assert!(s.records.len() < ops.len() || s.damage.is_none());
                }
            }
        }
    }
}

/// A file written by WAL format 1 (points without text) still replays, and the
/// next record goes to a new file of the current version.
#[test]
fn version_1_files_replay_and_are_not_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let p = Point::new(PointId::Num(7), vec![1.0, 2.0], json!({"a": 1}));
    let mut body = Encoder::default();
    body.u8(1);
    body.u32(1);
    body.id(&p.id);
    body.vector(&p.vector);
    body.payload(&p.payload);
    let mut file = Vec::new();
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&1u64.to_le_bytes());
    let mut checked = 1u64.to_le_bytes().to_vec();
    checked.extend_from_slice(&body.buf);
    file.extend_from_slice(&(body.buf.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32c::crc32c(&checked).to_le_bytes());
    file.extend_from_slice(&checked);
    fs_err::write(dir.path().join(file_name(1)), &file).unwrap();

    let (wal, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(replay, vec![(1, WalOp::Upsert(vec![p.clone()]))]);
    let text_point = Point::new(PointId::Num(8), vec![0.5], Value::Null).with_text(json!({"t": "hello"}));
    let seq = wal.append(&WalOp::Upsert(vec![text_point.clone()])).unwrap();
    wal.sync_through(seq).unwrap();
    drop(wal);
    assert!(dir.path().join(file_name(2)).exists(), "a v2 record went into the v1 file");
    let (_wal, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(replay, vec![(1, WalOp::Upsert(vec![p])), (2, WalOp::Upsert(vec![text_point]))]);
}

fn seqs(replay: &Replayed) -> Vec<u64> {
    replay.iter().map(|r| r.0).collect()
}

/// Disk full while rotating (#17): the new file's header could not be written.
/// Before, the empty file stayed behind, every later rotation failed with
/// "File exists", and the next open refused the directory ("file header
/// truncated (0 bytes)"). Now the failed file is removed, the log keeps taking
/// records, and a rotation succeeds as soon as space returns.
#[test]
fn a_failed_rotation_changes_nothing_and_the_next_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    for i in 1..=3 {
        wal.append(&upsert(i)).unwrap();
    }
    fault::set(dir.path(), "wal.create", "enospc*1");
    assert!(wal.rotate().unwrap_err().is_no_space());
    assert!(!dir.path().join(file_name(4)).exists(), "the failed file is left behind");
    fault::set(dir.path(), "wal.write", "short*1"); // the header itself is cut short
    assert!(wal.rotate().is_err());
    assert_eq!(wal.append(&upsert(4)).unwrap(), 4);
    wal.rotate().unwrap();
    wal.append(&upsert(5)).unwrap();
    wal.sync_through(5).unwrap();
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(seqs(&replay), vec![1, 2, 3, 4, 5]);
}

/// Files that a crashed or failed creation left without a complete header hold
/// nothing acknowledged: they are removed at open wherever they sort (before,
/// only the newest file was forgiven).
#[test]
fn header_less_files_are_removed_at_open_wherever_they_sort() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    for i in 1..=4 {
        wal.append(&upsert(i)).unwrap();
        if i == 2 {
            wal.rotate().unwrap();
        }
    }
    wal.sync_through(4).unwrap();
    drop(wal);
    fs_err::write(dir.path().join(file_name(2)), b"").unwrap(); // sorts between the two files
    fs_err::write(dir.path().join(file_name(9)), &MAGIC[..5]).unwrap(); // the newest
    let (wal, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(seqs(&replay), vec![1, 2, 3, 4]);
    assert!(!dir.path().join(file_name(2)).exists() && !dir.path().join(file_name(9)).exists());
    assert_eq!(wal.append(&upsert(5)).unwrap(), 5);
}

/// A write that fails part-way (disk full) is cut off: the batch changes
/// nothing, later records land after the last good one, all replay.
#[test]
fn a_failed_append_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    wal.append(&upsert(1)).unwrap();
    for spec in ["short*1", "enospc*1", "eio*1"] {
        fault::set(dir.path(), "wal.write", spec);
        assert!(wal.append(&upsert(99)).is_err(), "{spec}");
    }
    assert_eq!(wal.append(&upsert(2)).unwrap(), 2);
    wal.sync_through(2).unwrap();
    assert!(wal.poisoned().is_none());
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(replay, vec![(1, upsert(1)), (2, upsert(2))]);
}

/// A failed fsync is never retried into a false success: the log refuses every
/// further append, sync and rotation, and says why.
#[test]
fn a_failed_fsync_makes_the_log_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    let seq = wal.append(&upsert(1)).unwrap();
    wal.sync_through(seq).unwrap();
    let seq = wal.append(&upsert(2)).unwrap();
    fault::set(dir.path(), "wal.fsync", "eio*1");
    assert!(matches!(wal.sync_through(seq), Err(Error::SyncFailed(_))));
    assert!(wal.poisoned().unwrap().contains("fsync"));
    assert!(matches!(wal.sync_through(seq), Err(Error::WalPoisoned(_))), "a retried fsync must not succeed");
    assert!(matches!(wal.append(&upsert(3)), Err(Error::WalPoisoned(_))));
    assert!(matches!(wal.rotate(), Err(Error::WalPoisoned(_))));
    drop(wal);
    // Reopening reads what is on disk: the acknowledged record is there.
    let (_, replay) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    assert_eq!(replay[0], (1, upsert(1)));
}

/// A snapshot's copy of the log holds exactly the records up to the cut,
/// across rotated files, and opens as a log that continues after it.
#[test]
fn copy_through_cuts_the_log_at_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), 0, WalOptions::default()).unwrap();
    for i in 1..=10 {
        wal.append(&upsert(i)).unwrap();
        if i % 4 == 0 {
            wal.rotate().unwrap();
        }
    }
    wal.sync_through(10).unwrap();
    for cut in [0, 3, 4, 5, 8, 10] {
        let dest = tempfile::tempdir().unwrap();
        wal.copy_through(cut, &dest.path().join("wal")).unwrap();
        let (copy, replay) = Wal::open(&dest.path().join("wal"), 0, WalOptions::default()).unwrap();
        assert_eq!(replay.iter().map(|r| r.0).collect::<Vec<_>>(), (1..=cut).collect::<Vec<_>>(), "cut {cut}");
        assert_eq!(replay.last().map(|r| &r.1), (cut > 0).then(|| upsert(cut)).as_ref());
        assert_eq!(copy.append(&upsert(99)).unwrap(), cut + 1, "cut {cut}");
    }
    // A damaged record below the cut is reported, not copied.
    let path = dir.path().join(file_name(1));
    let mut bytes = fs_err::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs_err::write(&path, &bytes).unwrap();
    let dest = tempfile::tempdir().unwrap();
    assert!(matches!(wal.copy_through(10, dest.path()), Err(Error::Corrupt { .. })));
}
