//! [`FileSource`]: a bounded source reading a file, or the files of a directory, line
//! by line; each line is one record decoded by a [`Format`].
//!
//! ```text
//!  create_splits: path is a file -> [that file]
//!                 path is a dir  -> its files, sorted by name (not recursive; names
//!                                   starting with `.` or `_` skipped) -> one split each
//!  poll_next(max): open (first poll), seek to position, read up to `max` lines and
//!                  about 1 MiB -> decode -> Records ; end of file -> End
//!  position(): byte offset of the next line ; restore(pos): the next open seeks there
//! ```
//!
//! Reading uses blocking `std::fs` calls inside `poll_next`, in bounded chunks: a
//! poll reads at most `max` lines and stops after about [`POLL_BYTES`] (a single
//! line may be longer, up to the line limit), so the runtime thread is held for one
//! short read of a local file, usually from the page cache. A split polls
//! synchronously (it never returns `Pending`), so moving reads to `tokio::fs` or a
//! reader thread would add a wake-up per chunk and, with one reader per split, one
//! thread and one open file per file of the directory. Files on slow network
//! storage are the case this trade-off serves badly.
//!
//! Open files are bounded: the splits of one source keep at most
//! [`MAX_OPEN_FILES`] files open between polls; a split beyond that reopens its file
//! and seeks at each poll.
//!
//! A line's length is checked while it is read: a line longer than the limit
//! ([`DEFAULT_MAX_LINE_BYTES`] unless set) is an error, and the buffer never grows
//! past the limit. Lines end at `\n`; a `\r` before it is dropped; the last line
//! needs no `\n`. Empty lines are records too (a format that refuses them makes
//! them bad records). Records carry no event timestamp ([`NO_TIMESTAMP`]): the
//! pipeline's watermark strategy assigns event time. A record's offset is the byte
//! offset of its line.
//!
//! Positions are byte offsets per split, and splits are numbered by their file's
//! place in the sorted listing: a restored job must see the same files (adding
//! files that sort after the existing ones is fine). A restored position beyond the
//! end of its file is refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use engine::{
    EngineError, ErrorClass, NO_TIMESTAMP, Position, Record, Source, SourceSplit, SplitEvent,
};

use super::{io_error, is_hidden};
use crate::format::{Format, FormatError, Utf8};

/// The longest line a source accepts unless set with [`FileSource::max_line_bytes`]: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Bytes a poll reads before it returns what it has (it always finishes the line).
const POLL_BYTES: u64 = 1024 * 1024;

/// Files the splits of one source keep open between polls.
const MAX_OPEN_FILES: usize = 16;

/// Buffer size of a split's reader.
const READ_BUFFER: usize = 64 * 1024;

/// A line buffer larger than this is given back after the poll that needed it.
const KEEP_LINE_BUFFER: usize = 1024 * 1024;

/// What happens to a line that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadLinePolicy {
    /// Fail the job (the default) with an error naming the file, the line number and
    /// the format's error.
    #[default]
    Fail,
    /// Skip the line, count it (`strom_file_source_bad_records_total`) and log it at
    /// warn level.
    Skip,
}

/// A bounded source over a file or the files of a directory, one record per line.
///
/// ```no_run
/// use connectors::file::{BadLinePolicy, FileSource};
/// use connectors::format::Json;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Click { url: String }
/// // Every file of `clicks/`, one JSON document per line.
/// let clicks = FileSource::new("clicks/")
///     .format(Json::<Click>::new())
///     .on_bad_line(BadLinePolicy::Skip);
/// // A CSV file read as text, without its header line.
/// let rows = FileSource::new("orders.csv").skip_header_lines(1);
/// # let _ = (clicks, rows);
/// ```
pub struct FileSource<T> {
    path: PathBuf,
    format: Arc<dyn Format<T>>,
    header_lines: u64,
    policy: BadLinePolicy,
    max_line_bytes: usize,
    name: String,
}

impl FileSource<String> {
    /// Reads `path` (a file, or a directory of files) as UTF-8 text lines; pick
    /// another format with [`FileSource::format`].
    pub fn new(path: impl Into<PathBuf>) -> FileSource<String> {
        let path = path.into();
        FileSource {
            name: format!("file:{}", path.display()),
            path,
            format: Arc::new(Utf8),
            header_lines: 0,
            policy: BadLinePolicy::Fail,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl<T: Send + 'static> FileSource<T> {
    /// Decodes every line with `format`.
    pub fn format<U: Send + 'static>(self, format: impl Format<U>) -> FileSource<U> {
        FileSource {
            path: self.path,
            format: Arc::new(format),
            header_lines: self.header_lines,
            policy: self.policy,
            max_line_bytes: self.max_line_bytes,
            name: self.name,
        }
    }

    /// Skips the first `n` lines of every file (a CSV header); none by default.
    pub fn skip_header_lines(self, n: u64) -> Self {
        FileSource {
            header_lines: n,
            ..self
        }
    }

    /// What to do with lines that do not decode ([`BadLinePolicy::Fail`] by default).
    pub fn on_bad_line(self, policy: BadLinePolicy) -> Self {
        FileSource { policy, ..self }
    }

    /// The longest line accepted, in bytes without its line end
    /// ([`DEFAULT_MAX_LINE_BYTES`] by default); a longer line fails the job.
    pub fn max_line_bytes(self, n: usize) -> Self {
        FileSource {
            max_line_bytes: n,
            ..self
        }
    }

    /// Sets the name used in metrics and errors (`file:{path}` by default).
    pub fn named(self, name: impl Into<String>) -> Self {
        FileSource {
            name: name.into(),
            ..self
        }
    }

    /// The files to read, in split order.
    fn files(&self) -> engine::Result<Vec<PathBuf>> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| io_error("file source: cannot read", &self.path, e, ErrorClass::Fatal))?;
        if !meta.is_dir() {
            return Ok(vec![self.path.clone()]);
        }
        let listing_error =
            |e| io_error("file source: cannot list", &self.path, e, ErrorClass::Fatal);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(listing_error)? {
            let entry = entry.map_err(listing_error)?;
            let name = entry.file_name();
            if name.to_str().is_some_and(is_hidden) {
                continue;
            }
            let path = entry.path();
            // `metadata` follows symbolic links: a link to a file is read.
            let meta = std::fs::metadata(&path)
                .map_err(|e| io_error("file source: cannot read", &path, e, ErrorClass::Fatal))?;
            if meta.is_file() {
                files.push((name, path));
            }
        }
        files.sort();
        Ok(files.into_iter().map(|(_, path)| path).collect())
    }
}

impl<T: Send + 'static> Source<T> for FileSource<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_bounded(&self) -> bool {
        true
    }

    fn create_splits(&mut self) -> engine::Result<Vec<Box<dyn SourceSplit<T>>>> {
        let files = self.files()?;
        tracing::debug!(path = %self.path.display(), files = files.len(), "file source splits");
        let open_files = Arc::new(OpenFiles::default());
        let policy_label = match self.policy {
            BadLinePolicy::Fail => "fail",
            BadLinePolicy::Skip => "skip",
        };
        let bad = metrics::counter!(
            "strom_file_source_bad_records_total",
            "source" => self.name.clone(),
            "policy" => policy_label
        );
        Ok(files
            .into_iter()
            .map(|path| {
                Box::new(FileSplit {
                    path,
                    format: self.format.clone(),
                    policy: self.policy,
                    max_line_bytes: self.max_line_bytes,
                    header_lines: self.header_lines,
                    header_left: self.header_lines,
                    position: 0,
                    lines: LineCount {
                        from: 0,
                        before: Some(0),
                        read: 0,
                    },
                    reader: None,
                    open_files: open_files.clone(),
                    line: Vec::new(),
                    ended: false,
                    bad: bad.clone(),
                }) as Box<dyn SourceSplit<T>>
            })
            .collect())
    }
}

/// How many files the splits of one source hold open between polls.
#[derive(Debug, Default)]
struct OpenFiles(AtomicUsize);

/// One of the [`MAX_OPEN_FILES`] places, given back when dropped.
struct OpenSlot(Arc<OpenFiles>);

impl OpenFiles {
    fn try_take(self: &Arc<Self>) -> Option<OpenSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_OPEN_FILES).then_some(n + 1)
            })
            .ok()
            .map(|_| OpenSlot(self.clone()))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An open file, positioned at the split's position.
struct OpenFile {
    reader: BufReader<File>,
    /// `None`: the budget of open files was used up, close after this poll.
    slot: Option<OpenSlot>,
}

/// Line numbers for messages. After a restore to the middle of a file the lines
/// before the restored offset are counted only when a message needs a number.
#[derive(Debug, Clone, Copy)]
struct LineCount {
    /// Byte offset counting started from (0, or the restored position).
    from: u64,
    /// Lines before `from`; `None` until counted.
    before: Option<u64>,
    /// Lines read since `from`.
    read: u64,
}

/// One file.
struct FileSplit<T> {
    path: PathBuf,
    format: Arc<dyn Format<T>>,
    policy: BadLinePolicy,
    max_line_bytes: usize,
    header_lines: u64,
    /// Header lines still to skip (none when resuming past the start).
    header_left: u64,
    /// Byte offset of the next line.
    position: u64,
    lines: LineCount,
    reader: Option<OpenFile>,
    open_files: Arc<OpenFiles>,
    /// The line being read, reused between lines.
    line: Vec<u8>,
    ended: bool,
    bad: metrics::Counter,
}

/// The outcome of reading one line.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    /// No bytes left.
    Eof,
    /// A line is in the buffer; this many bytes were consumed, line end included.
    Line(u64),
    /// The line is longer than the limit.
    TooLong,
}

/// Reads one line into `buf` (without its `\n` or `\r\n`), never holding more than
/// `limit` + 1 bytes of it.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<LineRead> {
    buf.clear();
    let mut consumed: u64 = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if consumed == 0 {
                LineRead::Eof
            } else if buf.len() > limit {
                LineRead::TooLong
            } else {
                LineRead::Line(consumed)
            });
        }
        let (chunk, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        // One spare byte: the last byte held may be the `\r` of a `\r\n`.
        if buf.len() + chunk.len() > limit.saturating_add(1) {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(complete);
        reader.consume(used);
        consumed += used as u64;
        if complete {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.len() > limit {
                return Ok(LineRead::TooLong);
            }
            return Ok(LineRead::Line(consumed));
        }
    }
}

/// Counts the lines that end before byte `end` of `path`.
fn count_lines(path: &Path, end: u64) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, File::open(path)?.take(end));
    let mut lines = 0u64;
    loop {
        let available = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(lines);
        }
        lines += available.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = available.len();
        reader.consume(n);
    }
}

/// How the job gets past a failed read: a file that is gone or unreadable stays
/// so; anything else may pass when the job runs again from its last checkpoint.
fn read_class(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => ErrorClass::Fatal,
        _ => ErrorClass::Rollback,
    }
}

impl<T: Send + 'static> FileSplit<T> {
    fn open(&self) -> engine::Result<OpenFile> {
        let fail = |what: &str, e: io::Error| {
            let class = read_class(&e);
            io_error(what, &self.path, e, class)
        };
        let mut file = File::open(&self.path).map_err(|e| fail("cannot open", e))?;
        if self.position > 0 {
            file.seek(SeekFrom::Start(self.position))
                .map_err(|e| fail("cannot seek in", e))?;
        }
        Ok(OpenFile {
            reader: BufReader::with_capacity(READ_BUFFER, file),
            slot: self.open_files.try_take(),
        })
    }

    /// The number of the line read last (1-based), if it can be told.
    fn last_line_number(&mut self) -> Option<u64> {
        if self.lines.before.is_none() {
            match count_lines(&self.path, self.lines.from) {
                Ok(n) => self.lines.before = Some(n),
                Err(e) => {
                    tracing::debug!(file = %self.path.display(), error = %e, "cannot count lines");
                }
            }
        }
        self.lines.before.map(|b| b + self.lines.read)
    }

    /// Where the line read last starts, for messages: `line 7 (byte offset 312)`.
    fn describe_line(&mut self, offset: u64) -> String {
        match self.last_line_number() {
            Some(n) => format!("line {n} (byte offset {offset})"),
            None => format!("the line at byte offset {offset}"),
        }
    }

    fn bad_record(&mut self, offset: u64, error: FormatError) -> engine::Result<()> {
        self.bad.increment(1);
        let at = self.describe_line(offset);
        match self.policy {
            BadLinePolicy::Fail => Err(EngineError::external(
                format!("file {} {at} does not decode", self.path.display()),
                error,
                ErrorClass::Fatal,
            )),
            BadLinePolicy::Skip => {
                tracing::warn!(file = %self.path.display(), at, error = %error, "bad record skipped");
                Ok(())
            }
        }
    }

    /// Reads up to `max` lines (and about [`POLL_BYTES`]) from the position on.
    fn read_chunk(&mut self, max: usize) -> engine::Result<SplitEvent<T>> {
        let mut file = match self.reader.take() {
            Some(f) => f,
            None => self.open()?,
        };
        let max = max.max(1);
        let mut records = Vec::new();
        let mut read_bytes = 0u64;
        let mut eof = false;
        while records.len() < max && read_bytes < POLL_BYTES {
            let start = self.position;
            let consumed = match read_line(&mut file.reader, &mut self.line, self.max_line_bytes) {
                Ok(LineRead::Line(n)) => n,
                Ok(LineRead::Eof) => {
                    eof = true;
                    break;
                }
                Ok(LineRead::TooLong) => {
                    self.lines.read += 1;
                    let at = self.describe_line(start);
                    let limit = self.max_line_bytes;
                    return Err(EngineError::external(
                        format!("reading file {} {at}", self.path.display()),
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the line is longer than the limit of {limit} bytes"),
                        ),
                        ErrorClass::Fatal,
                    ));
                }
                Err(e) => {
                    let class = read_class(&e);
                    return Err(EngineError::external(
                        format!(
                            "reading file {} at byte offset {start}",
                            self.path.display()
                        ),
                        e,
                        class,
                    ));
                }
            };
            self.position += consumed;
            self.lines.read += 1;
            read_bytes += consumed;
            if self.header_left > 0 {
                self.header_left -= 1;
                continue;
            }
            match self.format.deserialize(Some(&self.line)) {
                Ok(value) => records.push(Record {
                    value,
                    timestamp: NO_TIMESTAMP,
                    position: Position::offset_only(start),
                }),
                Err(e) => self.bad_record(start, e)?,
            }
        }
        if self.line.capacity() > KEEP_LINE_BUFFER {
            self.line = Vec::new();
        }
        if eof {
            // Dropping the file gives its open-file slot back.
            self.ended = true;
            if records.is_empty() {
                return Ok(SplitEvent::End);
            }
        } else if file.slot.is_some() {
            self.reader = Some(file);
        }
        Ok(SplitEvent::Records(records))
    }
}

impl<T: Send + 'static> SourceSplit<T> for FileSplit<T> {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<engine::Result<SplitEvent<T>>> {
        if self.ended {
            return Poll::Ready(Ok(SplitEvent::End));
        }
        Poll::Ready(self.read_chunk(max))
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn restore(&mut self, position: u64) -> engine::Result<()> {
        let len = std::fs::metadata(&self.path)
            .map_err(|e| {
                let class = read_class(&e);
                io_error("file source: cannot read", &self.path, e, class)
            })?
            .len();
        if position > len {
            return Err(EngineError::external(
                format!("restoring file {}", self.path.display()),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the checkpointed position {position} is beyond the end of the file ({len} bytes): the file or the directory's listing changed since the checkpoint"
                    ),
                ),
                ErrorClass::Fatal,
            ));
        }
        self.position = position;
        // Positions only move past header lines: a position past the start has
        // skipped them already.
        self.header_left = if position == 0 { self.header_lines } else { 0 };
        self.lines = LineCount {
            from: position,
            before: (position == 0).then_some(0),
            read: 0,
        };
        self.reader = None;
        self.ended = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::file::test_dir::TempDir;
    use crate::format::Json;

    /// Polls every split to its end, `max` records per poll.
    async fn read_all<T: Send + 'static>(
        splits: &mut [Box<dyn SourceSplit<T>>],
        max: usize,
    ) -> engine::Result<Vec<Record<T>>> {
        let mut out = Vec::new();
        for split in splits.iter_mut() {
            while let SplitEvent::Records(r) = poll_fn(|cx| split.poll_next(cx, max)).await? {
                out.extend(r);
            }
        }
        Ok(out)
    }

    fn values<T: Clone>(records: &[Record<T>]) -> Vec<T> {
        records.iter().map(|r| r.value.clone()).collect()
    }

    #[tokio::test]
    async fn a_directory_is_read_file_by_file_in_name_order_without_hidden_files() {
        let dir = TempDir::new("src-dir");
        let p = dir.path();
        std::fs::write(p.join("b.txt"), "b1\nb2\n").unwrap();
        std::fs::write(p.join("a.txt"), "a1\r\na2\r\na3").unwrap();
        std::fs::write(p.join("c.txt"), "").unwrap();
        std::fs::write(p.join(".hidden"), "h\n").unwrap();
        std::fs::write(p.join("_SUCCESS"), "").unwrap();
        std::fs::write(p.join(".part-0-1.inprogress"), "x\n").unwrap();
        std::fs::create_dir(p.join("nested")).unwrap();
        std::fs::write(p.join("nested").join("n.txt"), "n\n").unwrap();

        let mut source = FileSource::new(p);
        assert!(Source::<String>::is_bounded(&source));
        let mut splits = source.create_splits().unwrap();
        assert_eq!(splits.len(), 3);
        let records = read_all(&mut splits, 2).await.unwrap();
        assert_eq!(values(&records), ["a1", "a2", "a3", "b1", "b2"]);
        assert!(records.iter().all(|r| r.timestamp == NO_TIMESTAMP));
        let offsets: Vec<_> = records.iter().map(|r| r.position.offset()).collect();
        assert_eq!(
            offsets,
            [Some(0), Some(4), Some(8), Some(0), Some(3)].as_slice()
        );
        assert_eq!(splits[0].position(), 10);
        assert_eq!(splits[1].position(), 6);
    }

    #[tokio::test]
    async fn a_single_file_is_one_split_and_its_header_is_skipped() {
        let dir = TempDir::new("src-file");
        let file = dir.path().join("orders.csv");
        std::fs::write(&file, "id,amount\n1,10\n2,20\n").unwrap();
        let mut splits = FileSource::new(&file)
            .skip_header_lines(1)
            .create_splits()
            .unwrap();
        assert_eq!(splits.len(), 1);
        let records = read_all(&mut splits, 10).await.unwrap();
        assert_eq!(values(&records), ["1,10", "2,20"]);
    }

    #[tokio::test]
    async fn a_restored_split_resumes_at_the_line_after_its_position() {
        let dir = TempDir::new("src-restore");
        let file = dir.path().join("data.csv");
        let text: String = std::iter::once("header\n".to_string())
            .chain((0..100).map(|i| format!("line {i}\n")))
            .collect();
        std::fs::write(&file, &text).unwrap();
        let mut source = FileSource::new(&file).skip_header_lines(1);

        // Read 37 records, remember the position, throw the split away.
        let mut splits = source.create_splits().unwrap();
        let first = match poll_fn(|cx| splits[0].poll_next(cx, 37)).await.unwrap() {
            SplitEvent::Records(r) => r,
            SplitEvent::End => panic!("unexpected end"),
        };
        assert_eq!(first.len(), 37);
        let position = splits[0].position();
        assert_eq!(position as usize, text.find("line 37\n").unwrap());
        drop(splits);

        let mut splits = source.create_splits().unwrap();
        splits[0].restore(position).unwrap();
        let rest = read_all(&mut splits, 16).await.unwrap();
        let mut all = values(&first);
        all.extend(values(&rest));
        let expected: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(all, expected);
        assert_eq!(rest[0].position.offset(), Some(position));

        // Restoring to the start skips the header again; past the end is refused.
        let mut splits = source.create_splits().unwrap();
        splits[0].restore(0).unwrap();
        assert_eq!(read_all(&mut splits, 1000).await.unwrap().len(), 100);
        let e = splits[0].restore(text.len() as u64 + 1).unwrap_err();
        assert!(e.to_string().contains("beyond the end of the file"), "{e}");
        assert_eq!(e.class(), ErrorClass::Fatal);
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Reading {
        sensor: String,
        value: f64,
    }

    fn write_readings(dir: &TempDir) -> PathBuf {
        let file = dir.path().join("readings.jsonl");
        std::fs::write(
            &file,
            "{\"sensor\":\"a\",\"value\":1.5}\n\
             {\"sensor\":\"b\",\"value\":\"oops\"}\n\
             {\"sensor\":\"c\",\"value\":3}\n\
             not json\n",
        )
        .unwrap();
        file
    }

    #[tokio::test]
    async fn a_bad_line_fails_the_job_naming_the_file_line_and_error() {
        let dir = TempDir::new("src-bad-fail");
        let file = write_readings(&dir);
        let mut splits = FileSource::new(&file)
            .format(Json::<Reading>::new())
            .create_splits()
            .unwrap();
        let e = read_all(&mut splits, 10).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains("line 2 (byte offset 27)"), "{text}");
        assert!(
            text.contains("json: invalid type: string \"oops\""),
            "{text}"
        );
        assert_eq!(e.class(), ErrorClass::Fatal);
    }

    #[tokio::test]
    async fn bad_lines_are_skipped_under_the_skip_policy() {
        let dir = TempDir::new("src-bad-skip");
        let file = write_readings(&dir);
        let mut splits = FileSource::new(&file)
            .format(Json::<Reading>::new())
            .on_bad_line(BadLinePolicy::Skip)
            .create_splits()
            .unwrap();
        let records = read_all(&mut splits, 10).await.unwrap();
        let sensors: Vec<_> = records.iter().map(|r| r.value.sensor.as_str()).collect();
        assert_eq!(sensors, ["a", "c"]);
    }

    #[tokio::test]
    async fn line_numbers_stay_right_after_a_restore() {
        let dir = TempDir::new("src-bad-restored");
        let file = write_readings(&dir);
        let mut splits = FileSource::new(&file)
            .format(Json::<Reading>::new())
            .create_splits()
            .unwrap();
        // Resume at the third line: the fourth is the bad one.
        let third = std::fs::read_to_string(&file)
            .unwrap()
            .find("{\"sensor\":\"c\"")
            .unwrap();
        splits[0].restore(third as u64).unwrap();
        let e = read_all(&mut splits, 10).await.unwrap_err();
        assert!(e.to_string().contains("line 4 "), "{e}");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_an_error_not_an_allocation() {
        let dir = TempDir::new("src-long");
        let file = dir.path().join("long.txt");
        let long = "x".repeat(200_000);
        std::fs::write(&file, format!("short\n{long}\nafter\n")).unwrap();
        let mut splits = FileSource::new(&file)
            .max_line_bytes(100_000)
            .create_splits()
            .unwrap();
        let e = read_all(&mut splits, 10).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("long.txt line 2 (byte offset 6)"), "{text}");
        assert!(
            text.contains("longer than the limit of 100000 bytes"),
            "{text}"
        );
        assert_eq!(e.class(), ErrorClass::Fatal);

        // Exactly at the limit is fine, with or without `\r\n`.
        std::fs::write(&file, "abcd\r\nabcd\nabcd").unwrap();
        let mut splits = FileSource::new(&file)
            .max_line_bytes(4)
            .create_splits()
            .unwrap();
        assert_eq!(read_all(&mut splits, 10).await.unwrap().len(), 3);
        std::fs::write(&file, "abcd\r\nabcde").unwrap();
        let mut splits = FileSource::new(&file)
            .max_line_bytes(4)
            .create_splits()
            .unwrap();
        assert!(read_all(&mut splits, 10).await.is_err());
    }

    #[test]
    fn a_missing_path_is_named_when_splits_are_created() {
        let dir = TempDir::new("src-missing");
        let missing = dir.path().join("nope");
        let e = match FileSource::new(&missing).create_splits() {
            Ok(_) => panic!("a missing path must fail"),
            Err(e) => e,
        };
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        assert_eq!(e.class(), ErrorClass::Fatal);
    }

    #[tokio::test]
    async fn more_files_than_open_slots_are_read_by_reopening() {
        let dir = TempDir::new("src-many");
        let n = MAX_OPEN_FILES + 4;
        for i in 0..n {
            let text: String = (0..5).map(|j| format!("{i}-{j}\n")).collect();
            std::fs::write(dir.path().join(format!("f{i:03}")), text).unwrap();
        }
        let mut splits = FileSource::new(dir.path()).create_splits().unwrap();
        // Interleave: one record from every split per round, as a source task does.
        let mut out = vec![Vec::new(); n];
        let mut ended = 0;
        while ended < n {
            ended = 0;
            for (i, split) in splits.iter_mut().enumerate() {
                match poll_fn(|cx| split.poll_next(cx, 1)).await.unwrap() {
                    SplitEvent::Records(r) => out[i].extend(values(&r)),
                    SplitEvent::End => ended += 1,
                }
            }
        }
        for (i, lines) in out.iter().enumerate() {
            let expected: Vec<String> = (0..5).map(|j| format!("{i}-{j}")).collect();
            assert_eq!(lines, &expected);
        }
    }

    #[test]
    fn read_line_consumes_line_ends_and_reports_bytes() {
        let mut r = io::Cursor::new(b"a\r\n\nbc".to_vec());
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), LineRead::Line(3));
        assert_eq!(buf, b"a");
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), LineRead::Line(1));
        assert_eq!(buf, b"");
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), LineRead::Line(2));
        assert_eq!(buf, b"bc");
        assert_eq!(read_line(&mut r, &mut buf, 10).unwrap(), LineRead::Eof);
    }
}
