//! Streamed CSV import of leads into a list.
//!
//! A blocking thread reads and checks rows (encoding, field count, number, zone) and hands
//! batches over a small bounded channel to the async side, which writes each batch in one
//! transaction. Memory stays at a few batches whatever the file size, and parsing on one
//! core overlaps with the database on the other. A bad row is rejected with its line
//! number and reason; the rest imports. Duplicates (same number already in the campaign,
//! in any list, or earlier in this file) are skipped by the database's unique index and
//! counted, and numbers on a DNC list are not imported.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

use serde::Serialize;

use crate::phone::{Normalizer, zone_for_region, zones_of_region};
use crate::store::{Store, StoreError, now_ms, bind_marks};

/// At most this many rejected rows are listed in a report (all are counted).
pub const MAX_REJECTED_LISTED: usize = 10_000;
/// Rows per transaction (six parameters a row stays under SQLite's 32,766).
const BATCH: usize = 1000;

/// Which CSV column feeds which lead field. Unset fields are found by common header names
/// (`phone`, `name`, `time_zone`/`timezone`/`tz`, `postal_code`/`zip`, `alt_phone*`);
/// every other column becomes a custom field named by its header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub phone: Option<String>,
    pub alt_phones: Vec<String>,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub postal_code: Option<String>,
}

impl Mapping {
    /// Add `field=column` pairs separated by commas (`phone=Mobile,alt_phone=Home`).
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, col) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not field=column"))?;
            let col = col.trim().to_string();
            match field.trim() {
                "phone" => self.phone = Some(col),
                "alt_phone" | "alt_phones" => self.alt_phones.push(col),
                "name" => self.name = Some(col),
                "time_zone" => self.time_zone = Some(col),
                "postal_code" => self.postal_code = Some(col),
                other => return Err(format!("{other:?} is not a lead field (phone, alt_phone, name, time_zone, postal_code)")),
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub mapping: Mapping,
    /// For numbers written without a country code.
    pub default_country: String,
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub imported: u64,
    pub duplicates: u64,
    /// Rows whose number is on the system or the campaign's DNC list.
    pub dnc: u64,
    /// The first [`MAX_REJECTED_LISTED`] refused rows, in file order.
    pub rejected: Vec<Rejected>,
    pub rejected_total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be imported at all (no header, no phone column, bad mapping…).
    #[error("{0}")]
    Header(String),
    #[error("reading the file near line {line}: {source}")]
    Read { line: u64, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A row ready for the database.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    /// The number's region when its zone is unknown: the campaign then covers every zone of
    /// that region, so such leads wait until the window is open in all of them.
    region: Option<String>,
    phone: String,
    alt_phones: String,
    name: String,
    time_zone: Option<String>,
    postal_code: Option<String>,
    fields: String,
}

struct Batch {
    rows: Vec<Row>,
    rejected: Vec<Rejected>,
}

/// Column positions resolved from the header.
#[derive(Debug)]
struct Columns {
    width: usize,
    phone: usize,
    alts: Vec<usize>,
    name: Option<usize>,
    time_zone: Option<usize>,
    postal: Option<usize>,
    fields: Vec<(usize, String)>,
}

impl Columns {
    fn resolve(header: &[String], m: &Mapping) -> Result<Columns, String> {
        let find = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name.trim()));
        let mapped = |want: &Option<String>, field: &str, guesses: &[&str]| -> Result<Option<usize>, String> {
            match want {
                Some(c) => find(c).map(Some).ok_or_else(|| format!("{field} is mapped to column {c:?}, which the header does not have")),
                None => Ok(guesses.iter().find_map(|g| find(g))),
            }
        };
        let phone = mapped(&m.phone, "phone", &["phone", "phone_number", "number", "telephone", "mobile"])?
            .ok_or_else(|| "no phone column: name one with --map phone=COLUMN (or a header named phone)".to_string())?;
        let name = mapped(&m.name, "name", &["name", "full_name"])?;
        let time_zone = mapped(&m.time_zone, "time_zone", &["time_zone", "timezone", "tz"])?;
        let postal = mapped(&m.postal_code, "postal_code", &["postal_code", "zip", "zip_code", "postcode"])?;
        let alts: Vec<usize> = if m.alt_phones.is_empty() {
            (0..header.len()).filter(|&i| i != phone && { let h = header[i].to_ascii_lowercase(); h.starts_with("alt_phone") || h.starts_with("alternate_phone") }).collect()
        } else {
            m.alt_phones.iter().map(|c| find(c).ok_or_else(|| format!("alt_phone is mapped to column {c:?}, which the header does not have"))).collect::<Result<_, _>>()?
        };
        let used: HashSet<usize> = [Some(phone), name, time_zone, postal].into_iter().flatten().chain(alts.iter().copied()).collect();
        let fields = header.iter().enumerate().filter(|(i, h)| !used.contains(i) && !h.is_empty()).map(|(i, h)| (i, h.clone())).collect();
        Ok(Columns { width: header.len(), phone, alts, name, time_zone, postal, fields })
    }
}

/// `,` or `;`, whichever appears more often outside quotes in the header line.
fn detect_delimiter(line: &[u8]) -> u8 {
    let (mut commas, mut semis, mut quoted) = (0, 0, false);
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semis += 1,
            _ => {}
        }
    }
    if semis > commas { b';' } else { b',' }
}

struct RowParser {
    cols: Columns,
    numbers: Normalizer,
}

impl RowParser {
    fn parse(&self, rec: &csv::ByteRecord) -> Result<Row, String> {
        if rec.len() != self.cols.width {
            return Err(format!("expected {} fields, found {}", self.cols.width, rec.len()));
        }
        let text = |i: usize| -> Result<&str, String> {
            let t = std::str::from_utf8(&rec[i]).map(str::trim).map_err(|_| format!("field {} is not UTF-8", i + 1))?;
            // PostgreSQL text cannot hold NUL: refuse the row here rather than fail the batch.
            if t.contains('\0') {
                return Err(format!("field {} contains a NUL character", i + 1));
            }
            Ok(t)
        };
        let primary = self.numbers.normalize(text(self.cols.phone)?)?;
        let mut alts = Vec::new();
        for &i in &self.cols.alts {
            let raw = text(i)?;
            if !raw.is_empty() {
                alts.push(self.numbers.normalize(raw).map_err(|e| format!("alternate phone: {e}"))?.e164);
            }
        }
        let time_zone = match self.cols.time_zone.map(text).transpose()?.filter(|s| !s.is_empty()) {
            Some(z) => Some(z.parse::<chrono_tz::Tz>().map_err(|_| format!("{z:?} is not an IANA time zone"))?.name().to_string()),
            None => primary.region.as_deref().and_then(zone_for_region).map(|z| z.name().to_string()),
        };
        let opt = |c: Option<usize>| -> Result<Option<String>, String> { Ok(c.map(text).transpose()?.filter(|s| !s.is_empty()).map(str::to_string)) };
        let mut fields = serde_json::Map::new();
        for (i, h) in &self.cols.fields {
            fields.insert(h.clone(), serde_json::Value::String(text(*i)?.to_string()));
        }
        let region = if time_zone.is_none() { primary.region.clone() } else { None };
        Ok(Row {
            region,
            phone: primary.e164,
            alt_phones: serde_json::to_string(&alts).expect("json"),
            name: opt(self.cols.name)?.unwrap_or_default(),
            time_zone,
            postal_code: opt(self.cols.postal)?,
            fields: serde_json::Value::Object(fields).to_string(),
        })
    }
}

/// Raw records of one batch, in file order, before their fields are checked.
struct Chunk {
    seq: u64,
    /// (line, record) or (line, why the CSV reader refused it).
    items: Vec<(u64, Result<csv::ByteRecord, String>)>,
}

type BatchTx = tokio::sync::mpsc::Sender<Result<(u64, Batch), ImportError>>;

type CsvReader<R> = csv::Reader<std::io::Chain<std::io::Chain<std::io::Cursor<Vec<u8>>, BufReader<R>>, &'static [u8]>>;

/// Open `input` (CSV, UTF-8 with or without BOM, `,` or `;`): read the header and resolve
/// the columns.
fn open_csv<R: Read>(input: R, opts: &ImportOptions) -> Result<(CsvReader<R>, std::sync::Arc<RowParser>), ImportError> {
    let numbers = Normalizer::new(&opts.default_country).map_err(ImportError::Header)?;
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut first = Vec::new();
    input.read_until(b'\n', &mut first).map_err(|source| ImportError::Read { line: 1, source })?;
    if first.starts_with(b"\xEF\xBB\xBF") {
        first.drain(..3);
    }
    if first.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ImportError::Header("the file is empty: a header line is needed".into()));
    }
    let delimiter = detect_delimiter(&first);
    let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true)
        // A final newline makes every record end with a terminator, which the line
        // arithmetic below relies on (an extra blank line is skipped by the parser).
        .from_reader(std::io::Cursor::new(first).chain(input).chain(&b"\n"[..]));
    let header: Vec<String> = csv
        .byte_headers()
        .map_err(|e| ImportError::Header(format!("header: {e}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let parser = std::sync::Arc::new(RowParser { cols: Columns::resolve(&header, &opts.mapping).map_err(ImportError::Header)?, numbers });
    Ok((csv, parser))
}

/// Read the records and hand chunks of them to the parser threads. `tickets` bounds the
/// chunks in flight (read but not yet written), which is what keeps memory flat.
fn read_records<R: Read>(csv: &mut CsvReader<R>, work: &std::sync::mpsc::SyncSender<Chunk>, tickets: &std::sync::mpsc::Receiver<()>) -> Result<(), ImportError> {
    let mut seq = 0;
    let mut items = Vec::with_capacity(BATCH);
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = csv.position().line();
        let done = match csv.read_byte_record(&mut rec) {
            Ok(false) => true,
            Ok(true) => {
                // The record's own start position counts skipped blank lines before it, so
                // count back from where the parser stands now: one terminator plus any
                // newlines inside quoted fields.
                let inner: usize = rec.iter().map(|f| f.iter().filter(|&&b| b == b'\n').count()).sum();
                let line = csv.position().line().saturating_sub(1 + inner as u64).max(line);
                items.push((line, Ok(rec.clone())));
                false
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => {
                    let csv::ErrorKind::Io(source) = e.into_kind() else { unreachable!() };
                    return Err(ImportError::Read { line, source });
                }
                _ => {
                    items.push((e.position().map_or(line, |p| p.line()), Err(e.to_string())));
                    false
                }
            },
        };
        if items.len() >= BATCH || (done && !items.is_empty()) {
            // Wait for room: a chunk written frees a ticket. No ticket means the writer stopped.
            if tickets.recv().is_err() {
                return Ok(());
            }
            let chunk = Chunk { seq, items: std::mem::replace(&mut items, Vec::with_capacity(BATCH)) };
            seq += 1;
            if work.send(chunk).is_err() {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// A parser thread: checks the fields of each chunk's records (number, zone, encoding).
fn parse_chunks(parser: &RowParser, work: &std::sync::Mutex<std::sync::mpsc::Receiver<Chunk>>, out: &BatchTx) {
    loop {
        let next = work.lock().map(|rx| rx.recv());
        let Ok(Ok(chunk)) = next else { return };
        let mut batch = Batch { rows: Vec::with_capacity(chunk.items.len()), rejected: Vec::new() };
        for (line, item) in chunk.items {
            match item.and_then(|rec| parser.parse(&rec)) {
                Ok(row) => batch.rows.push(row),
                Err(reason) => batch.rejected.push(Rejected { line, reason }),
            }
        }
        if out.blocking_send(Ok((chunk.seq, batch))).is_err() {
            return;
        }
    }
}

/// Import a CSV stream into `list_id`. Only whole-file problems are errors; row problems
/// are in the report. Rows written before a fatal error stay imported.
///
/// One thread reads records, a few threads (one per core, at most four) check them, and
/// this task writes batches in file order, one transaction each.
pub async fn import_csv<R: Read + Send + 'static>(store: &Store, list_id: i64, input: R, opts: ImportOptions) -> Result<ImportReport, ImportError> {
    let list = store.list(list_id).await?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let in_flight = 2 * workers + 2;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(u64, Batch), ImportError>>(in_flight);
    let (ticket_tx, ticket_rx) = std::sync::mpsc::sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = ticket_tx.try_send(());
    }
    let (work_tx, work_rx) = std::sync::mpsc::sync_channel::<Chunk>(workers);
    let runtime = tokio::runtime::Handle::current();
    let reader = {
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            let (mut csv, parser) = match open_csv(input, &opts) {
                Ok(x) => x,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            // The checkers come from Tokio's blocking pool, which keeps idle threads for
            // a while: many small imports (API uploads) reuse threads instead of creating
            // new ones each. They end when the chunks do, and their last batch closes the
            // channel that the writer below waits on.
            let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
            for _ in 0..workers {
                let (parser, work_rx, tx) = (parser.clone(), work_rx.clone(), tx.clone());
                runtime.spawn_blocking(move || parse_chunks(&parser, &work_rx, &tx));
            }
            drop(work_rx);
            if let Err(e) = read_records(&mut csv, &work_tx, &ticket_rx) {
                let _ = tx.blocking_send(Err(e));
            }
        })
    };
    drop(tx);
    let mut report = ImportReport::default();
    let mut zones: HashSet<String> = HashSet::new();
    let started = now_ms();
    let mut waiting: std::collections::BTreeMap<u64, Batch> = Default::default();
    let mut next = 0;
    let result = async {
        while let Some(item) = rx.recv().await {
            let (seq, batch) = item?;
            waiting.insert(seq, batch);
            while let Some(batch) = waiting.remove(&next) {
                next += 1;
                report.rejected_total += batch.rejected.len() as u64;
                let room = MAX_REJECTED_LISTED.saturating_sub(report.rejected.len());
                report.rejected.extend(batch.rejected.into_iter().take(room));
                write_batch(store, list.campaign_id, list_id, started, batch.rows, &mut report, &mut zones).await?;
                let _ = ticket_tx.try_send(());
            }
        }
        Ok::<_, ImportError>(())
    }
    .await;
    drop(rx);
    drop(ticket_tx);
    let _ = reader.await;
    if report.imported >= ANALYZE_AFTER {
        refresh_statistics(store).await;
    }
    result.map(|_| report)
}

/// Rows after which an import refreshes the planner's statistics (PostgreSQL).
const ANALYZE_AFTER: u64 = 1000;

/// A large import changes what the leads table holds (thousands of new leads where the
/// statistics may say there are none, after an earlier list was dialled through). Until
/// autovacuum notices, PostgreSQL can plan the hopper's claim of new leads as "read them
/// all and sort": measured, 14 ms per claim instead of 0.1 ms, a third of the claim rate.
/// `ANALYZE` samples the table (a fraction of a second on a million leads). A failure only
/// costs speed, so it is logged, not returned.
async fn refresh_statistics(store: &Store) {
    if store.backend() != crate::store::Backend::Postgres {
        return;
    }
    if let Err(e) = sqlx::query("ANALYZE leads").execute(store.pool()).await {
        tracing::warn!(error = %e, "ANALYZE after the import failed; claims may be slow until autovacuum runs");
    }
}

/// `now` is the import's start, the same for every batch: the statement's text (which holds
/// it) then stays the same, and its prepared form is reused.
async fn write_batch(store: &Store, campaign_id: i64, list_id: i64, now: i64, rows: Vec<Row>, report: &mut ImportReport, zones: &mut HashSet<String>) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = store.begin_write().await?;
    let backend = store.backend();
    // The ids and the time are integers written into the statement, so every parameter
    // is a row's value (see `bind_marks`).
    let sql = format!("SELECT phone FROM dnc WHERE campaign_id IN (0, {campaign_id}) AND phone IN ({})", bind_marks(backend, 1, rows.len()));
    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for r in &rows {
        q = q.bind(r.phone.clone());
    }
    let blocked: HashSet<String> = q.fetch_all(&mut *tx).await?.into_iter().collect();
    let rows: Vec<Row> = if blocked.is_empty() {
        rows
    } else {
        let before = rows.len();
        let kept: Vec<Row> = rows.into_iter().filter(|r| !blocked.contains(&r.phone)).collect();
        report.dnc += (before - kept.len()) as u64;
        kept
    };
    if !rows.is_empty() {
        let mut sql = String::from(
            "INSERT INTO leads (list_id, campaign_id, phone, alt_phones, name, time_zone, postal_code, fields, created_at, updated_at) VALUES ",
        );
        // Six parameters a row: a batch of 1000 uses 6,000.
        for i in 0..rows.len() {
            if i > 0 {
                sql.push(',');
            }
            sql += &format!("({list_id},{campaign_id},{},{now},{now})", bind_marks(backend, i * 6 + 1, 6));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql + " ON CONFLICT DO NOTHING"));
        for r in &rows {
            q = q.bind(r.phone.clone()).bind(r.alt_phones.clone()).bind(r.name.clone()).bind(r.time_zone.clone()).bind(r.postal_code.clone()).bind(r.fields.clone());
        }
        let inserted = q.execute(&mut *tx).await?.rows_affected();
        report.imported += inserted;
        report.duplicates += rows.len() as u64 - inserted;
        let region_zones = rows.iter().filter_map(|r| r.region.as_deref()).filter(|r| zones.insert(format!("region:{r}"))).flat_map(zones_of_region).map(|z| z.name().to_string());
        let region_zones: Vec<String> = region_zones.collect();
        for z in rows.iter().filter_map(|r| r.time_zone.as_ref()).chain(region_zones.iter()) {
            if zones.insert(z.clone()) {
                sqlx::query("INSERT INTO campaign_zones (campaign_id, time_zone) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(campaign_id)
                    .bind(z)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(header: &[&str], m: &Mapping) -> RowParser {
        let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        RowParser { cols: Columns::resolve(&h, m).unwrap(), numbers: Normalizer::new("US").unwrap() }
    }

    #[test]
    fn delimiter_is_detected_outside_quotes() {
        assert_eq!(detect_delimiter(b"phone,name,zip\n"), b',');
        assert_eq!(detect_delimiter(b"phone;name;\"a,b,c\"\n"), b';');
    }

    #[test]
    fn columns_map_by_name_or_mapping() {
        let p = parser(&["Mobile", "Name", "TZ", "balance", "alt_phone_1"], &Mapping { phone: Some("mobile".into()), ..Default::default() });
        let rec = csv::ByteRecord::from(vec!["415 555 2671", " Ann ", "America/Chicago", "12.5", "+44 20 7946 0958"]);
        let row = p.parse(&rec).unwrap();
        assert_eq!(row.phone, "+14155552671");
        assert_eq!(row.name, "Ann");
        assert_eq!(row.time_zone.as_deref(), Some("America/Chicago"));
        assert_eq!(row.alt_phones, r#"["+442079460958"]"#);
        assert_eq!(row.fields, r#"{"balance":"12.5"}"#);
        let bad = csv::ByteRecord::from(vec!["415 555 2671", "A", "Mars/Base", "1", ""]);
        assert!(p.parse(&bad).unwrap_err().contains("Mars/Base"));
        let short = csv::ByteRecord::from(vec!["415 555 2671"]);
        assert_eq!(p.parse(&short).unwrap_err(), "expected 5 fields, found 1");
    }

    #[test]
    fn mapping_errors_are_clear() {
        let mut m = Mapping::default();
        assert!(m.add("phone=Mobile, alt_phone=Home,alt_phone=Work").is_ok());
        assert_eq!(m.alt_phones, ["Home", "Work"]);
        assert!(m.add("email=x").unwrap_err().contains("email"));
        let h = vec!["a".to_string()];
        assert!(Columns::resolve(&h, &Mapping::default()).unwrap_err().contains("no phone column"));
        assert!(Columns::resolve(&h, &m).unwrap_err().contains("Mobile"));
    }
}
