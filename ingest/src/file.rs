//! Streaming row readers for JSONL, CSV, Parquet and Arrow IPC: batches of
//! rows with the position after them, never a whole file in memory. Arrow and
//! Parquet columns of fixed-size lists (or lists) of floats become vectors
//! directly, without going through JSON.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde_json::{Map, Value};

use crate::job::{Checkpoint, FilePos};
use crate::row::{infer, Labeled, Row};
use crate::spec::{Format, Mapping};
use crate::writer::Writer;
use crate::{Error, Result};

/// Rows read, and the position after them.
#[derive(Debug)]
pub struct Batch {
    /// Rows.
    pub rows: Vec<Labeled>,
    /// Position after the last row.
    pub pos: FilePos,
    /// Source bytes these rows took (0 when unknown).
    pub bytes: u64,
}

/// A streaming reader of one file.
pub trait RowReader: Send {
    /// Up to `n` rows; `None` at the end.
    fn next_batch(&mut self, n: usize) -> Result<Option<Batch>>;
    /// (bytes, rows) in all, when known.
    fn totals(&self) -> (Option<u64>, Option<u64>);
}

/// The format a path's source declares or its extension implies.
pub fn format_of(path: &str, given: Option<Format>) -> Result<Format> {
    given
        .or_else(|| Format::of_key(path))
        .ok_or_else(|| Error::Invalid(format!("source.format is required: {path:?} has no known extension")))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Failed(format!("{}: {e}", path.display()))
}

fn arrow_err(e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("cannot read the file: {e}"))
}

/// Open a reader at `pos`.
pub fn open(path: &Path, format: Format, mapping: &Mapping, pos: FilePos) -> Result<Box<dyn RowReader>> {
    let vector = mapping.vector.clone();
    let size = fs_err::metadata(path).map_err(|e| Error::Failed(e.to_string()))?.len();
    Ok(match format {
        Format::Jsonl => {
            let mut f = fs_err::File::open(path).map_err(|e| Error::Failed(e.to_string()))?;
            f.seek(SeekFrom::Start(pos.byte)).map_err(io(path))?;
            Box::new(Jsonl { r: BufReader::with_capacity(1 << 16, f.into_parts().0), pos, size })
        }
        Format::Csv => {
            let f = fs_err::File::open(path).map_err(|e| Error::Failed(e.to_string()))?.into_parts().0;
            let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(f);
            let headers: Vec<String> =
                r.headers().map_err(|e| Error::Failed(format!("CSV header: {e}")))?.iter().map(str::to_owned).collect();
            if pos.byte > 0 {
                let mut p = csv::Position::new();
                p.set_byte(pos.byte).set_line(pos.line).set_record(pos.rows + 1);
                r.seek(p).map_err(|e| Error::Failed(format!("CSV seek: {e}")))?;
            }
            Box::new(Csv { r, headers, pos, size })
        }
        Format::Parquet => {
            let f = fs_err::File::open(path).map_err(|e| Error::Failed(e.to_string()))?.into_parts().0;
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).map_err(arrow_err)?;
            let rows = b.metadata().file_metadata().num_rows().max(0) as u64;
            let wanted = projection(b.schema(), mapping);
            let mask = parquet::arrow::ProjectionMask::roots(b.parquet_schema(), wanted);
            let reader = b
                .with_projection(mask)
                .with_batch_size(8192)
                .with_offset(pos.rows as usize)
                .build()
                .map_err(arrow_err)?;
            let it: Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>> + Send> =
                Box::new(reader);
            Box::new(Batches { it, pending: None, pos, vector, totals: (Some(size), Some(rows)), skip: 0 })
        }
        Format::Arrow => {
            let mut f = fs_err::File::open(path).map_err(|e| Error::Failed(e.to_string()))?.into_parts().0;
            let mut magic = [0u8; 6];
            let is_file = f.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
            f.seek(SeekFrom::Start(0)).map_err(io(path))?;
            let it: Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>> + Send> =
                if is_file {
                    let r = arrow_ipc::reader::FileReader::try_new(f, None).map_err(arrow_err)?;
                    let p = projection(&r.schema(), mapping);
                    let r = arrow_ipc::reader::FileReader::try_new(
                        fs_err::File::open(path).map_err(|e| Error::Failed(e.to_string()))?.into_parts().0,
                        Some(p),
                    )
                    .map_err(arrow_err)?;
                    Box::new(r)
                } else {
                    let r = arrow_ipc::reader::StreamReader::try_new(BufReader::new(f), None).map_err(arrow_err)?;
                    let p = projection(&r.schema(), mapping);
                    let f2 = fs_err::File::open(path).map_err(|e| Error::Failed(e.to_string()))?.into_parts().0;
                    Box::new(arrow_ipc::reader::StreamReader::try_new(BufReader::new(f2), Some(p)).map_err(arrow_err)?)
                };
            Box::new(Batches { it, pending: None, pos, vector, totals: (Some(size), None), skip: pos.rows })
        }
        Format::Documents => return Err(Error::Invalid("documents are an S3 format".into())),
    })
}

/// Indices of the mapped columns present in `schema`.
fn projection(schema: &arrow_schema::Schema, mapping: &Mapping) -> Vec<usize> {
    let mut idx: Vec<usize> = mapping.fields().iter().filter_map(|(_, f)| schema.index_of(f).ok()).collect();
    idx.sort_unstable();
    idx
}

/// The field names of a file (`None` for JSONL without a readable first line).
pub fn columns(path: &Path, format: Format) -> Result<Option<Vec<String>>> {
    let open = || fs_err::File::open(path).map(|f| f.into_parts().0).map_err(|e| Error::Failed(e.to_string()));
    Ok(match format {
        Format::Jsonl => {
            let mut line = Vec::new();
            let mut r = BufReader::new(open()?);
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).map_err(io(path))? == 0 {
                    return Ok(None);
                }
                if !line.iter().all(u8::is_ascii_whitespace) {
                    break;
                }
            }
            match serde_json::from_slice::<Map<String, Value>>(&line) {
                Ok(m) => Some(m.keys().cloned().collect()),
                Err(_) => None,
            }
        }
        Format::Csv => {
            let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(open()?);
            Some(
                r.headers()
                    .map_err(|e| Error::Invalid(format!("CSV header: {e}")))?
                    .iter()
                    .map(str::to_owned)
                    .collect(),
            )
        }
        Format::Parquet => {
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open()?)
                .map_err(|e| Error::Invalid(format!("not a Parquet file: {e}")))?;
            Some(b.schema().fields().iter().map(|f| f.name().clone()).collect())
        }
        Format::Arrow => {
            let mut f = open()?;
            let mut magic = [0u8; 6];
            let is_file = f.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
            let f = open()?;
            let schema = if is_file {
                arrow_ipc::reader::FileReader::try_new(f, None).map(|r| r.schema())
            } else {
                arrow_ipc::reader::StreamReader::try_new(BufReader::new(f), None).map(|r| r.schema())
            }
            .map_err(|e| Error::Invalid(format!("not an Arrow IPC file: {e}")))?;
            Some(schema.fields().iter().map(|f| f.name().clone()).collect())
        }
        Format::Documents => None,
    })
}

/// Run a file job: batches from a reader thread, written in order.
pub async fn run(w: &mut Writer, path: PathBuf, format: Format) -> Result<()> {
    let pos = match w.checkpoint() {
        Checkpoint::File { pos } => pos,
        _ => FilePos::default(),
    };
    let mapping = w.job.record().spec.mapping.clone();
    let reader = open(&path, format, &mapping, pos)?;
    let totals = reader.totals();
    w.totals(totals.0, totals.1);
    stream(w, reader, None, |pos| Checkpoint::File { pos }).await
}

/// Write every batch of `reader` (read on a blocking thread, one batch ahead).
pub async fn stream(
    w: &mut Writer,
    mut reader: Box<dyn RowReader>,
    extra: Option<Arc<Map<String, Value>>>,
    cp: impl Fn(FilePos) -> Checkpoint,
) -> Result<()> {
    let n = w.batch_size();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Batch>>(2);
    let producer = tokio::task::spawn_blocking(move || loop {
        let next = reader.next_batch(n);
        let end = !matches!(next, Ok(Some(_)));
        let sent = match next {
            Ok(Some(b)) => tx.blocking_send(Ok(b)),
            Ok(None) => break,
            Err(e) => tx.blocking_send(Err(e)),
        };
        if end || sent.is_err() {
            break;
        }
    });
    while let Some(batch) = rx.recv().await {
        let b = batch?;
        w.write(b.rows, extra.clone(), b.bytes, cp(b.pos)).await?;
    }
    drop(rx);
    producer.await.map_err(|e| Error::Failed(format!("reader failed: {e}")))?;
    Ok(())
}

struct Jsonl {
    r: BufReader<std::fs::File>,
    pos: FilePos,
    size: u64,
}

impl RowReader for Jsonl {
    fn next_batch(&mut self, n: usize) -> Result<Option<Batch>> {
        let (mut rows, start) = (Vec::with_capacity(n), self.pos.byte);
        let mut line = Vec::new();
        while rows.len() < n {
            line.clear();
            let k = self.r.read_until(b'\n', &mut line).map_err(|e| Error::Failed(format!("read: {e}")))?;
            if k == 0 {
                break;
            }
            self.pos.byte += k as u64;
            self.pos.line += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.pos.rows += 1;
            let row = serde_json::from_slice::<Map<String, Value>>(&line)
                .map(|fields| Row { fields, vector: None })
                .map_err(|e| format!("not a JSON object: {e}"));
            rows.push(Labeled { label: format!("line {}", self.pos.line), row });
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch { rows, pos: self.pos, bytes: self.pos.byte - start }))
    }

    fn totals(&self) -> (Option<u64>, Option<u64>) {
        (Some(self.size), None)
    }
}

struct Csv {
    r: csv::Reader<std::fs::File>,
    headers: Vec<String>,
    pos: FilePos,
    size: u64,
}

impl RowReader for Csv {
    fn next_batch(&mut self, n: usize) -> Result<Option<Batch>> {
        let (mut rows, start) = (Vec::with_capacity(n), self.pos.byte);
        let mut rec = csv::StringRecord::new();
        while rows.len() < n {
            let res = self.r.read_record(&mut rec);
            let p = self.r.position().clone();
            let label = format!("record {}", self.pos.rows + 1);
            match res {
                Ok(false) => break,
                Ok(true) => {
                    let fields = self.headers.iter().zip(rec.iter()).map(|(h, c)| (h.clone(), infer(c))).collect();
                    rows.push(Labeled { label, row: Ok(Row { fields, vector: None }) });
                }
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(Error::Failed(format!("read: {e}"))),
                Err(e) => rows.push(Labeled { label, row: Err(format!("bad CSV record: {e}")) }),
            }
            self.pos = FilePos { rows: self.pos.rows + 1, byte: p.byte(), line: p.line() };
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch { rows, pos: self.pos, bytes: self.pos.byte - start }))
    }

    fn totals(&self) -> (Option<u64>, Option<u64>) {
        (Some(self.size), None)
    }
}

type BatchIter = Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>> + Send>;

/// Parquet and Arrow IPC: record batches cut into rows.
struct Batches {
    it: BatchIter,
    pending: Option<RecordBatch>,
    pos: FilePos,
    vector: Option<String>,
    totals: (Option<u64>, Option<u64>),
    /// Rows still to skip to reach the checkpoint (Arrow IPC has no offset).
    skip: u64,
}

impl RowReader for Batches {
    fn next_batch(&mut self, n: usize) -> Result<Option<Batch>> {
        let mut rows = Vec::with_capacity(n);
        while rows.len() < n {
            let batch = match self.pending.take() {
                Some(b) => b,
                None => match self.it.next() {
                    None => break,
                    Some(b) => b.map_err(arrow_err)?,
                },
            };
            let mut batch = batch;
            if self.skip > 0 {
                let k = (self.skip as usize).min(batch.num_rows());
                self.skip -= k as u64;
                batch = batch.slice(k, batch.num_rows() - k);
            }
            let take = (n - rows.len()).min(batch.num_rows());
            if take < batch.num_rows() {
                self.pending = Some(batch.slice(take, batch.num_rows() - take));
            }
            rows.extend(rows_of(&batch.slice(0, take), self.vector.as_deref(), self.pos.rows));
            self.pos.rows += take as u64;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch { rows, pos: self.pos, bytes: 0 }))
    }

    fn totals(&self) -> (Option<u64>, Option<u64>) {
        (None, self.totals.1)
    }
}

/// Rows of a record batch; `vector` is decoded straight into [`Row::vector`].
pub fn rows_of(batch: &RecordBatch, vector: Option<&str>, first: u64) -> Vec<Labeled> {
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    (0..batch.num_rows())
        .map(|i| {
            let mut row = Row::default();
            let mut err = None;
            for (c, name) in names.iter().enumerate() {
                let col = batch.column(c);
                if Some(*name) == vector {
                    match vector_cell(col.as_ref(), i) {
                        Ok(v) => row.vector = Some(v),
                        Err(e) => err = Some(format!("vector field {name:?}: {e}")),
                    }
                } else {
                    row.fields.insert((*name).to_owned(), cell(col.as_ref(), i));
                }
            }
            let label = format!("row {}", first + i as u64 + 1);
            Labeled {
                label,
                row: match err {
                    Some(e) => Err(e),
                    None => Ok(row),
                },
            }
        })
        .collect()
}

fn floats(a: &dyn Array) -> std::result::Result<Vec<f32>, String> {
    match a.data_type() {
        DataType::Float32 => Ok(a.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => Ok(a.as_primitive::<Float64Type>().values().iter().map(|x| *x as f32).collect()),
        t => Err(format!("a list of {t}, not of floats")),
    }
}

/// A vector cell: a fixed-size list or list of floats.
fn vector_cell(a: &dyn Array, i: usize) -> std::result::Result<Vec<f32>, String> {
    if a.is_null(i) {
        return Err("is null".into());
    }
    let v = match a.data_type() {
        DataType::FixedSizeList(_, _) => a.as_fixed_size_list().value(i),
        DataType::List(_) => a.as_list::<i32>().value(i),
        DataType::LargeList(_) => a.as_list::<i64>().value(i),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            return crate::row::vector_of(&cell(a, i));
        }
        t => return Err(format!("column of type {t} is not a list of floats")),
    };
    if v.null_count() > 0 {
        return Err("has null elements".into());
    }
    floats(v.as_ref())
}

/// One cell as JSON.
fn cell(a: &dyn Array, i: usize) -> Value {
    use arrow_array::types::*;
    if a.is_null(i) {
        return Value::Null;
    }
    macro_rules! prim {
        ($t:ty) => {
            Value::from(a.as_primitive::<$t>().value(i))
        };
    }
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => finite(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => finite(a.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_owned()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_owned()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_owned()),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            let inner = match a.data_type() {
                DataType::List(_) => a.as_list::<i32>().value(i),
                DataType::LargeList(_) => a.as_list::<i64>().value(i),
                _ => a.as_fixed_size_list().value(i),
            };
            Value::Array((0..inner.len()).map(|j| cell(inner.as_ref(), j)).collect())
        }
        _ => {
            let opts = arrow_cast::display::FormatOptions::default();
            match arrow_cast::display::ArrayFormatter::try_new(a, &opts) {
                Ok(f) => Value::String(f.value(i).to_string()),
                Err(_) => Value::Null,
            }
        }
    }
}

fn finite(f: f64) -> Value {
    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{FixedSizeListArray, Float32Array, StringArray, UInt64Array};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn batch(ids: std::ops::Range<u64>) -> RecordBatch {
        let n = (ids.end - ids.start) as usize;
        let values = Float32Array::from_iter_values(ids.clone().flat_map(|i| [i as f32, 1.0, 2.0, 3.0]));
        let item = Arc::new(Field::new("item", DataType::Float32, true));
        let emb = FixedSizeListArray::try_new(item, 4, Arc::new(values), None).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("title", DataType::Utf8, false),
            Field::new("emb", emb.data_type().clone(), false),
            Field::new("unused", DataType::Utf8, false),
        ]));
        let titles = StringArray::from_iter_values(ids.clone().map(|i| format!("t{i}")));
        let unused = StringArray::from_iter_values((0..n).map(|_| "x"));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(UInt64Array::from_iter_values(ids)), Arc::new(titles), Arc::new(emb), Arc::new(unused)],
        )
        .unwrap()
    }

    fn mapping() -> Mapping {
        Mapping { id: "id".into(), payload: vec!["title".into()], vector: Some("emb".into()), ..Mapping::default() }
    }

    /// Read everything from `pos`, returning the ids and the position after each batch.
    fn read_all(path: &Path, format: Format, pos: FilePos) -> (Vec<u64>, Vec<FilePos>) {
        let mut r = open(path, format, &mapping(), pos).unwrap();
        let (mut ids, mut positions) = (Vec::new(), Vec::new());
        while let Some(b) = r.next_batch(7).unwrap() {
            for l in b.rows {
                let row = l.row.unwrap();
                assert!(!row.fields.contains_key("unused"), "only mapped columns are read");
                if let Some(v) = &row.vector {
                    assert_eq!(v.len(), 4);
                }
                ids.push(row.fields["id"].as_u64().unwrap());
            }
            positions.push(b.pos);
        }
        (ids, positions)
    }

    fn write_files(dir: &Path) -> Vec<(PathBuf, Format)> {
        let b = [batch(0..10), batch(10..25)];
        let mut jsonl = String::from("\n");
        let mut csv = String::from("id,title,emb\n");
        for i in 0..25u64 {
            jsonl.push_str(&format!("{{\"id\": {i}, \"title\": \"t{i}\", \"emb\": [{i}, 1, 2, 3]}}\n"));
            csv.push_str(&format!("{i},t{i},\"[{i}, 1, 2, 3]\"\n"));
        }
        let paths = [
            (dir.join("a.jsonl"), Format::Jsonl),
            (dir.join("a.csv"), Format::Csv),
            (dir.join("a.parquet"), Format::Parquet),
            (dir.join("a.arrow"), Format::Arrow),
            (dir.join("a.arrows"), Format::Arrow),
        ];
        fs_err::write(&paths[0].0, jsonl).unwrap();
        fs_err::write(&paths[1].0, csv).unwrap();
        let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(6)).build();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            fs_err::File::create(&paths[2].0).unwrap(),
            b[0].schema(),
            Some(props),
        )
        .unwrap();
        for x in &b {
            w.write(x).unwrap();
        }
        w.close().unwrap();
        let mut w =
            arrow_ipc::writer::FileWriter::try_new(fs_err::File::create(&paths[3].0).unwrap(), &b[0].schema()).unwrap();
        for x in &b {
            w.write(x).unwrap();
        }
        w.finish().unwrap();
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(fs_err::File::create(&paths[4].0).unwrap(), &b[0].schema())
                .unwrap();
        for x in &b {
            w.write(x).unwrap();
        }
        w.finish().unwrap();
        paths.to_vec()
    }

    #[test]
    fn every_format_reads_and_resumes_from_any_batch() {
        let dir = tempfile::tempdir().unwrap();
        for (path, format) in write_files(dir.path()) {
            let (ids, positions) = read_all(&path, format, FilePos::default());
            assert_eq!(ids, (0..25).collect::<Vec<_>>(), "{}", path.display());
            // Resuming from each checkpoint yields exactly the rest, no gap, no repeat.
            for (k, pos) in positions.iter().enumerate() {
                let (rest, _) = read_all(&path, format, *pos);
                let want: Vec<u64> = (((k as u64 + 1) * 7).min(25)..25).collect();
                assert_eq!(rest, want, "{} from {pos:?}", path.display());
            }
            let cols = columns(&path, format).unwrap().unwrap();
            assert!(cols.contains(&"emb".to_owned()) && cols.contains(&"id".to_owned()), "{cols:?}");
        }
    }

    #[test]
    fn vectors_of_arrow_lists_skip_json() {
        let b = batch(0..3);
        let rows = rows_of(&b, Some("emb"), 0);
        let row = rows[2].row.clone().unwrap();
        assert_eq!(row.vector, Some(vec![2.0, 1.0, 2.0, 3.0]));
        assert!(!row.fields.contains_key("emb"));
        assert_eq!(rows[2].label, "row 3");
    }
}
