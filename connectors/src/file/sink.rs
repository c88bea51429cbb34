//! [`FileSink`]: rolling files in a directory, one record per line, made visible by
//! a rename when the checkpoint that covers them completes (Flink's two-phase
//! commit file sink, in small).
//!
//! ```text
//!  write     -> dir/.part-{subtask}-{n}.inprogress   (hidden: readers skip it)
//!               over max_file_size: close it (fsync), start n+1  (still pending)
//!  pre_commit(c) -> fsync + close the current file, fsync dir; the files closed since
//!                   the last barrier become checkpoint c's; returns every pair
//!                   (in-progress name, final name) not yet committed
//!  commit(c)     -> rename the files of checkpoints <= c: .part-0-3.inprogress -> part-0-3{suffix}
//!  open(restored)-> rename what the restored states list (if still there), delete the
//!                   other .part-{subtask}-*.inprogress (their checkpoint never completed),
//!                   continue numbering after the highest part-{subtask}-{n} present
//!  finish        -> close and commit everything
//! ```
//!
//! The state kept in a checkpoint lists every pending file, not only the ones
//! checkpoint c closed: when checkpoint c-1 was pre-committed but never completed
//! and the job later restores from c, the files of c-1 hold records before barrier
//! c, which the source will not read again, so c must commit them.
//!
//! After the sink's parallelism shrinks, subtask `s` finishes the restored files of
//! the old subtasks `k` with `k % parallelism == s` (the engine hands it their
//! states), so it also deletes their leftover in-progress files. One directory
//! takes one sink: two sinks writing `part-0-*` into the same directory would
//! delete each other's in-progress files.
//!
//! File I/O runs on tokio's blocking pool ([`tokio::task::spawn_blocking`]), one
//! call per batch, barrier or commit; values are encoded on the runtime first.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use engine::{CheckpointId, EngineError, ErrorClass, Record, Sink, SinkContext};
use serde::Serialize;

use super::io_error;
use crate::format::{Format, FormatError, to_json};

/// The size at which a sink starts a new file unless set with
/// [`FileSink::max_file_size`]: 128 MiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Buffer size of the file being written.
const WRITE_BUFFER: usize = 64 * 1024;

/// Version of the checkpoint state's encoding.
const STATE_VERSION: u8 = 1;

/// Encodes a value into the bytes of one line.
type Encoder<T> = Arc<dyn Fn(&T) -> Result<Option<Bytes>, FormatError> + Send + Sync>;

/// Writes a stream to rolling files in a directory, one line per record; files
/// become visible when the checkpoint after their records completes (or at the end
/// of a bounded input). Each sink subtask gets its own clone and writes its own
/// files, `part-{subtask}-{n}{suffix}`.
///
/// Failed writes, fsyncs and renames roll the job back to its last checkpoint
/// ([`ErrorClass::Rollback`], the class the engine defines for "the work since the
/// last completed checkpoint cannot complete"): the in-progress file may hold part
/// of a batch, so writing the same batch again would not repair it, while a
/// restore deletes it and replays its records from the source. A denied permission
/// fails the job ([`ErrorClass::Fatal`]); so does a value whose encoding holds a
/// newline, which would split the record in two lines.
///
/// ```no_run
/// use connectors::file::FileSink;
/// use connectors::format::Utf8;
/// # #[derive(serde::Serialize)]
/// # struct Alert { id: u64 }
/// // JSON lines in out/alerts/part-{subtask}-{n}.json, a new file every 64 MiB.
/// let alerts = FileSink::<Alert>::new("out/alerts")
///     .suffix(".json")
///     .max_file_size(64 * 1024 * 1024);
/// // Plain text lines.
/// let lines = FileSink::<String>::new("out/lines").format(Utf8);
/// # let _ = (alerts, lines);
/// ```
pub struct FileSink<T> {
    dir: PathBuf,
    encode: Encoder<T>,
    suffix: String,
    max_file_size: u64,
    /// The subtask's files; `None` before `open`, and while a blocking call owns them.
    files: Option<Box<Files>>,
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink {
            dir: self.dir.clone(),
            encode: self.encode.clone(),
            suffix: self.suffix.clone(),
            max_file_size: self.max_file_size,
            files: None,
        }
    }
}

impl<T: Serialize + Send + 'static> FileSink<T> {
    /// Writes to `dir` (created if missing), one JSON document per line; pick
    /// another format with [`FileSink::format`].
    pub fn new(dir: impl Into<PathBuf>) -> FileSink<T> {
        FileSink::with_encoder(dir.into(), Arc::new(|v: &T| to_json(v)))
    }
}

impl<T: Send + 'static> FileSink<T> {
    /// Writes to `dir` (created if missing) with `format`, for values that have no
    /// JSON form.
    pub fn with_format(dir: impl Into<PathBuf>, format: impl Format<T>) -> FileSink<T> {
        FileSink::with_encoder(dir.into(), Arc::new(move |v: &T| format.serialize(v)))
    }

    fn with_encoder(dir: PathBuf, encode: Encoder<T>) -> FileSink<T> {
        FileSink {
            dir,
            encode,
            suffix: String::new(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            files: None,
        }
    }

    /// Encodes values with `format` (JSON by default; a null writes an empty line).
    pub fn format(self, format: impl Format<T>) -> Self {
        FileSink {
            encode: Arc::new(move |v: &T| format.serialize(v)),
            ..self
        }
    }

    /// Appends `suffix` to the names of committed files (`part-0-3.json`); none by
    /// default.
    pub fn suffix(self, suffix: impl Into<String>) -> Self {
        FileSink {
            suffix: suffix.into(),
            ..self
        }
    }

    /// Starts a new file before one would grow past `bytes` (a single longer line
    /// still gets a file of its own); [`DEFAULT_MAX_FILE_SIZE`] by default. Rolled
    /// files are committed with the next checkpoint like the others.
    pub fn max_file_size(self, bytes: u64) -> Self {
        FileSink {
            max_file_size: bytes.max(1),
            ..self
        }
    }

    /// Runs `f` on the subtask's files on the blocking pool.
    async fn blocking<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Files) -> engine::Result<R> + Send + 'static,
    ) -> engine::Result<R> {
        let Some(mut files) = self.files.take() else {
            return Err(EngineError::Unsupported(format!(
                "file sink {}: not open (open was not called, or an earlier call was cancelled or failed)",
                self.dir.display()
            )));
        };
        let (files, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut files);
            (files, result)
        })
        .await
        .map_err(|e| {
            EngineError::external(
                format!("file sink {}: blocking file task", self.dir.display()),
                e,
                ErrorClass::Fatal,
            )
        })?;
        // Kept after a failure too: a commit that failed half-way keeps the files it
        // could not rename, for the next commit to try again.
        self.files = Some(files);
        result
    }
}

impl<T: Send + 'static> Sink<T> for FileSink<T> {
    fn name(&self) -> &str {
        "file-sink"
    }

    fn kind(&self) -> &str {
        "file"
    }

    async fn open(&mut self, ctx: &SinkContext) -> engine::Result<()> {
        let mut restored = Vec::new();
        for bytes in &ctx.restored {
            restored.extend(decode_state(bytes)?);
        }
        let files = Files {
            dir: self.dir.clone(),
            subtask: ctx.subtask,
            suffix: self.suffix.clone(),
            max_file_size: self.max_file_size,
            next: 0,
            current: None,
            closed: Vec::new(),
            pending: BTreeMap::new(),
        };
        self.files = Some(Box::new(files));
        let parallelism = ctx.parallelism.max(1);
        self.blocking(move |f| f.open(&restored, parallelism)).await
    }

    async fn write(&mut self, batch: Vec<Record<T>>) -> engine::Result<()> {
        let mut lines = Vec::with_capacity(batch.len());
        for r in &batch {
            let line = (self.encode)(&r.value)
                .map_err(|e| {
                    EngineError::external(
                        format!(
                            "file sink {}: encoding the record from {}",
                            self.dir.display(),
                            r.position
                        ),
                        e,
                        ErrorClass::Fatal,
                    )
                })?
                .unwrap_or_default();
            if line.contains(&b'\n') {
                return Err(EngineError::external(
                    format!(
                        "file sink {}: the record from {}",
                        self.dir.display(),
                        r.position
                    ),
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "its encoded value holds a newline, and the file sink writes one record per line",
                    ),
                    ErrorClass::Fatal,
                ));
            }
            lines.push(line);
        }
        if lines.is_empty() {
            return Ok(());
        }
        self.blocking(move |f| f.write(&lines)).await
    }

    async fn pre_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<Vec<u8>> {
        self.blocking(move |f| f.pre_commit(checkpoint)).await
    }

    async fn commit(&mut self, checkpoint: CheckpointId) -> engine::Result<()> {
        self.blocking(move |f| f.commit(checkpoint)).await
    }

    async fn finish(&mut self) -> engine::Result<()> {
        self.blocking(Files::finish).await
    }
}

/// A file waiting for its checkpoint: its in-progress and final names in the
/// sink's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    in_progress: String,
    final_name: String,
}

/// The file being written.
struct Current {
    out: BufWriter<File>,
    size: u64,
    names: Pending,
}

/// One subtask's files; used on the blocking pool only.
struct Files {
    dir: PathBuf,
    subtask: usize,
    suffix: String,
    max_file_size: u64,
    /// Number of the next file.
    next: u64,
    current: Option<Current>,
    /// Files closed (rolled) since the last barrier.
    closed: Vec<Pending>,
    /// Files of pre-committed checkpoints, renamed when their checkpoint completes.
    pending: BTreeMap<CheckpointId, Vec<Pending>>,
}

/// How the job gets past a failed file operation of the sink (see [`FileSink`]).
fn write_class(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::PermissionDenied => ErrorClass::Fatal,
        _ => ErrorClass::Rollback,
    }
}

/// The number `n` of a name `{prefix}{n}...`.
fn number_after(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// The subtask `k` and number `n` of an in-progress name `.part-{k}-{n}.inprogress`.
fn parse_in_progress(name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix(".part-")?.strip_suffix(".inprogress")?;
    let (k, n) = rest.split_once('-')?;
    Some((k.parse().ok()?, n.parse().ok()?))
}

impl Files {
    fn fail(&self, what: &str, path: &Path, e: io::Error) -> EngineError {
        let class = write_class(&e);
        io_error(&format!("file sink: {what}"), path, e, class)
    }

    /// Makes the directory's entries (new files, renames) durable.
    fn sync_dir(&self) -> engine::Result<()> {
        // Directories cannot be opened as files on every platform; where they can
        // (Unix), their fsync makes created and renamed entries survive a crash.
        #[cfg(unix)]
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.fail("cannot sync the directory", &self.dir, e))?;
        Ok(())
    }

    /// Commits the restored files, deletes leftovers of checkpoints that never
    /// completed and numbers new files after the existing ones.
    fn open(&mut self, restored: &[Pending], parallelism: usize) -> engine::Result<()> {
        if self.suffix.contains(['/', '\\']) {
            return Err(EngineError::InvalidPipeline(format!(
                "file sink {}: the suffix {:?} holds a path separator",
                self.dir.display(),
                self.suffix
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| self.fail("cannot create", &self.dir, e))?;
        for p in restored {
            self.commit_file(p)?;
        }
        let listing =
            std::fs::read_dir(&self.dir).map_err(|e| self.fail("cannot list", &self.dir, e))?;
        let final_prefix = format!("part-{}-", self.subtask);
        let mut next = 0;
        let mut deleted = false;
        for entry in listing {
            let entry = entry.map_err(|e| self.fail("cannot list", &self.dir, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(n) = number_after(&name, &final_prefix) {
                next = next.max(n.saturating_add(1));
            } else if let Some((k, _)) = parse_in_progress(&name) {
                // Ours, or of an old subtask whose states this subtask restored.
                if k % parallelism == self.subtask {
                    std::fs::remove_file(entry.path())
                        .map_err(|e| self.fail("cannot delete", &entry.path(), e))?;
                    tracing::info!(dir = %self.dir.display(), file = name, "deleted an uncommitted in-progress file");
                    deleted = true;
                }
            }
        }
        self.next = next;
        if deleted || !restored.is_empty() {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Renames a pending file to its final name. Already renamed (a commit that ran
    /// before a restart) is fine.
    fn commit_file(&self, p: &Pending) -> engine::Result<()> {
        let from = self.dir.join(&p.in_progress);
        let to = self.dir.join(&p.final_name);
        match std::fs::rename(&from, &to) {
            Ok(()) => {
                tracing::debug!(dir = %self.dir.display(), file = p.final_name, "committed");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !to.exists() {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        in_progress = p.in_progress,
                        file = p.final_name,
                        "a file to commit is gone, with its records"
                    );
                }
                Ok(())
            }
            Err(e) => Err(self.fail("cannot commit", &from, e)),
        }
    }

    fn write(&mut self, lines: &[Bytes]) -> engine::Result<()> {
        for line in lines {
            let len = line.len() as u64 + 1;
            if self
                .current
                .as_ref()
                .is_some_and(|c| c.size > 0 && c.size + len > self.max_file_size)
            {
                self.close_current()?;
            }
            let mut current = match self.current.take() {
                Some(c) => c,
                None => self.start_file()?,
            };
            let result = current
                .out
                .write_all(line)
                .and_then(|()| current.out.write_all(b"\n"));
            current.size += len;
            let name = self.dir.join(&current.names.in_progress);
            self.current = Some(current);
            result.map_err(|e| self.fail("cannot write", &name, e))?;
        }
        Ok(())
    }

    fn start_file(&mut self) -> engine::Result<Current> {
        let n = self.next;
        self.next += 1;
        let names = Pending {
            in_progress: format!(".part-{}-{n}.inprogress", self.subtask),
            final_name: format!("part-{}-{n}{}", self.subtask, self.suffix),
        };
        let path = self.dir.join(&names.in_progress);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| self.fail("cannot create", &path, e))?;
        Ok(Current {
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            size: 0,
            names,
        })
    }

    /// Flushes, fsyncs and closes the current file; it waits for the next barrier.
    fn close_current(&mut self) -> engine::Result<()> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let path = self.dir.join(&current.names.in_progress);
        let file = current
            .out
            .into_inner()
            .map_err(|e| self.fail("cannot write", &path, e.into_error()))?;
        file.sync_all()
            .map_err(|e| self.fail("cannot sync", &path, e))?;
        self.closed.push(current.names);
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> engine::Result<Vec<u8>> {
        self.close_current()?;
        if !self.closed.is_empty() {
            // The new files' directory entries must survive a crash as long as the
            // checkpoint that lists them may be restored.
            self.sync_dir()?;
            let closed = std::mem::take(&mut self.closed);
            self.pending.entry(checkpoint).or_default().extend(closed);
        }
        Ok(encode_state(self.pending.values().flatten()))
    }

    fn commit(&mut self, checkpoint: CheckpointId) -> engine::Result<()> {
        let later = match checkpoint.0.checked_add(1) {
            Some(next) => self.pending.split_off(&CheckpointId(next)),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.pending, later);
        if due.is_empty() {
            return Ok(());
        }
        let mut files = due.into_values().flatten();
        while let Some(p) = files.next() {
            if let Err(e) = self.commit_file(&p) {
                // Keep what was not renamed; a restore finishes it in any case.
                self.pending
                    .entry(checkpoint)
                    .or_default()
                    .extend(std::iter::once(p).chain(files));
                return Err(e);
            }
        }
        self.sync_dir()
    }

    fn finish(&mut self) -> engine::Result<()> {
        self.close_current()?;
        let closed = std::mem::take(&mut self.closed);
        self.pending
            .entry(CheckpointId(u64::MAX))
            .or_default()
            .extend(closed);
        self.commit(CheckpointId(u64::MAX))
    }
}

/// `version u8, count u32, (len u32, in-progress name, len u32, final name)*`, big
/// endian; no bytes when nothing is pending (the engine then stores nothing).
fn encode_state<'a>(pending: impl Iterator<Item = &'a Pending>) -> Vec<u8> {
    let pending: Vec<&Pending> = pending.collect();
    if pending.is_empty() {
        return Vec::new();
    }
    let mut out = vec![STATE_VERSION];
    out.extend_from_slice(&(pending.len() as u32).to_be_bytes());
    for p in pending {
        for name in [&p.in_progress, &p.final_name] {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
        }
    }
    out
}

/// Reads what [`encode_state`] wrote. Names must be plain file names of the sink
/// (`.part-*.inprogress`, `part-*`), so damaged state cannot rename other files.
fn decode_state(bytes: &[u8]) -> engine::Result<Vec<Pending>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = StateReader(bytes);
    let version = r.take(1)?[0];
    if version != STATE_VERSION {
        return Err(state_error(&format!("unknown version {version}")));
    }
    let count = r.u32()?;
    let mut pending = Vec::new();
    for _ in 0..count {
        let in_progress = r.name()?;
        let final_name = r.name()?;
        let plain = |n: &str| !n.contains(['/', '\\']) && !n.contains("..");
        if !(plain(&in_progress) && plain(&final_name))
            || parse_in_progress(&in_progress).is_none()
            || !final_name.starts_with("part-")
        {
            return Err(state_error(&format!(
                "unexpected file names {in_progress:?} -> {final_name:?}"
            )));
        }
        pending.push(Pending {
            in_progress,
            final_name,
        });
    }
    if !r.0.is_empty() {
        return Err(state_error("trailing bytes"));
    }
    Ok(pending)
}

fn state_error(what: &str) -> EngineError {
    EngineError::Codec(format!("file sink state: {what}"))
}

/// The unread rest of a state.
struct StateReader<'a>(&'a [u8]);

impl<'a> StateReader<'a> {
    fn take(&mut self, n: usize) -> engine::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(state_error("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> engine::Result<usize> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn name(&mut self) -> engine::Result<String> {
        let len = self.u32()?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| state_error("a name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use engine::{Epoch, Position};

    use super::*;
    use crate::file::test_dir::TempDir;
    use crate::format::Utf8;

    fn ctx(subtask: usize, parallelism: usize, restored: Vec<Vec<u8>>) -> SinkContext {
        SinkContext {
            subtask,
            parallelism,
            epoch: Epoch(0),
            restored,
        }
    }

    fn batch(values: &[&str]) -> Vec<Record<String>> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                value: v.to_string(),
                timestamp: 0,
                position: Position::new(0, i as u64),
            })
            .collect()
    }

    fn text_sink(dir: &Path) -> FileSink<String> {
        FileSink::new(dir).format(Utf8)
    }

    fn read(dir: &TempDir, name: &str) -> String {
        std::fs::read_to_string(dir.path().join(name)).unwrap()
    }

    #[tokio::test]
    async fn files_become_visible_only_when_their_checkpoint_commits() {
        let dir = TempDir::new("sink-commit");
        let mut sink = text_sink(dir.path()).suffix(".txt");
        sink.open(&ctx(0, 1, vec![])).await.unwrap();
        sink.write(batch(&["a", "b"])).await.unwrap();
        assert_eq!(dir.names(), [".part-0-0.inprogress"]);

        let state1 = sink.pre_commit(CheckpointId(1)).await.unwrap();
        assert_eq!(
            decode_state(&state1).unwrap(),
            [Pending {
                in_progress: ".part-0-0.inprogress".into(),
                final_name: "part-0-0.txt".into(),
            }]
        );
        sink.write(batch(&["c"])).await.unwrap();
        let state2 = sink.pre_commit(CheckpointId(2)).await.unwrap();
        // Checkpoint 2's state also lists checkpoint 1's file, not yet committed.
        assert_eq!(decode_state(&state2).unwrap().len(), 2);
        assert_eq!(
            dir.names(),
            [".part-0-0.inprogress", ".part-0-1.inprogress"]
        );

        sink.commit(CheckpointId(1)).await.unwrap();
        assert_eq!(dir.names(), [".part-0-1.inprogress", "part-0-0.txt"]);
        assert_eq!(read(&dir, "part-0-0.txt"), "a\nb\n");
        sink.commit(CheckpointId(2)).await.unwrap();
        assert_eq!(dir.names(), ["part-0-0.txt", "part-0-1.txt"]);
        assert_eq!(read(&dir, "part-0-1.txt"), "c\n");

        // A checkpoint without writes has nothing to keep or commit.
        assert!(sink.pre_commit(CheckpointId(3)).await.unwrap().is_empty());
        sink.commit(CheckpointId(3)).await.unwrap();
        assert_eq!(dir.names(), ["part-0-0.txt", "part-0-1.txt"]);
    }

    #[tokio::test]
    async fn a_later_checkpoint_commits_the_files_of_an_earlier_one_that_never_completed() {
        let dir = TempDir::new("sink-skip");
        let mut sink = text_sink(dir.path());
        sink.open(&ctx(0, 1, vec![])).await.unwrap();
        sink.write(batch(&["a"])).await.unwrap();
        sink.pre_commit(CheckpointId(1)).await.unwrap();
        sink.write(batch(&["b"])).await.unwrap();
        sink.pre_commit(CheckpointId(2)).await.unwrap();
        sink.commit(CheckpointId(2)).await.unwrap();
        assert_eq!(dir.names(), ["part-0-0", "part-0-1"]);
    }

    #[tokio::test]
    async fn a_restored_sink_commits_the_restored_files_and_deletes_orphans() {
        let dir = TempDir::new("sink-restore");
        // Run 1: checkpoint 1 pre-committed (its state kept), then more records
        // written and checkpoint 2 pre-committed but never completed; crash.
        let mut sink = text_sink(dir.path());
        sink.open(&ctx(0, 1, vec![])).await.unwrap();
        sink.write(batch(&["kept"])).await.unwrap();
        let state = sink.pre_commit(CheckpointId(1)).await.unwrap();
        sink.write(batch(&["lost"])).await.unwrap();
        sink.pre_commit(CheckpointId(2)).await.unwrap();
        sink.write(batch(&["also lost"])).await.unwrap();
        drop(sink);
        // Another subtask's in-progress file is not ours to delete.
        std::fs::write(dir.path().join(".part-1-0.inprogress"), "other\n").unwrap();
        assert_eq!(
            dir.names(),
            [
                ".part-0-0.inprogress",
                ".part-0-1.inprogress",
                ".part-0-2.inprogress",
                ".part-1-0.inprogress"
            ]
        );

        // Run 2 restores checkpoint 1.
        let mut sink = text_sink(dir.path());
        sink.open(&ctx(0, 2, vec![state.clone()])).await.unwrap();
        assert_eq!(dir.names(), [".part-1-0.inprogress", "part-0-0"]);
        assert_eq!(read(&dir, "part-0-0"), "kept\n");
        // New files never reuse a committed name.
        sink.write(batch(&["new"])).await.unwrap();
        sink.finish().await.unwrap();
        assert_eq!(
            dir.names(),
            [".part-1-0.inprogress", "part-0-0", "part-0-1"]
        );
        assert_eq!(read(&dir, "part-0-1"), "new\n");

        // Restoring the same state again (a crash right after the restore) is fine.
        let mut sink = text_sink(dir.path());
        sink.open(&ctx(0, 2, vec![state])).await.unwrap();
        assert_eq!(read(&dir, "part-0-0"), "kept\n");
        assert_eq!(read(&dir, "part-0-1"), "new\n");
    }

    #[tokio::test]
    async fn after_scaling_in_a_subtask_finishes_and_cleans_up_for_old_subtasks() {
        let dir = TempDir::new("sink-rescale");
        let mut states = Vec::new();
        for subtask in 0..3 {
            let mut sink = text_sink(dir.path());
            sink.open(&ctx(subtask, 3, vec![])).await.unwrap();
            sink.write(batch(&[&format!("from {subtask}")]))
                .await
                .unwrap();
            states.push(sink.pre_commit(CheckpointId(1)).await.unwrap());
            sink.write(batch(&["uncommitted"])).await.unwrap();
        }
        // Parallelism 2: subtask 0 gets the states of old subtasks 0 and 2.
        let mut sink = text_sink(dir.path());
        sink.open(&ctx(0, 2, vec![states[0].clone(), states[2].clone()]))
            .await
            .unwrap();
        assert_eq!(
            dir.names(),
            [
                ".part-1-0.inprogress",
                ".part-1-1.inprogress",
                "part-0-0",
                "part-2-0"
            ]
        );
        assert_eq!(read(&dir, "part-2-0"), "from 2\n");
    }

    #[tokio::test]
    async fn files_roll_at_the_size_limit_and_commit_with_the_next_checkpoint() {
        let dir = TempDir::new("sink-roll");
        // Lines of 10 bytes with their newline: 3 per file of at most 35 bytes.
        let mut sink = text_sink(dir.path()).max_file_size(35);
        sink.open(&ctx(0, 1, vec![])).await.unwrap();
        let values: Vec<String> = (0..8).map(|i| format!("value-{i:03}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        sink.write(batch(&refs[..5])).await.unwrap();
        sink.write(batch(&refs[5..])).await.unwrap();
        assert_eq!(
            dir.names(),
            [
                ".part-0-0.inprogress",
                ".part-0-1.inprogress",
                ".part-0-2.inprogress"
            ]
        );
        let state = sink.pre_commit(CheckpointId(7)).await.unwrap();
        assert_eq!(decode_state(&state).unwrap().len(), 3);
        sink.commit(CheckpointId(7)).await.unwrap();
        assert_eq!(dir.names(), ["part-0-0", "part-0-1", "part-0-2"]);
        assert_eq!(read(&dir, "part-0-0"), "value-000\nvalue-001\nvalue-002\n");
        assert_eq!(read(&dir, "part-0-2"), "value-006\nvalue-007\n");

        // A line longer than the limit gets a file of its own.
        sink.write(batch(&[&"x".repeat(50), "y"])).await.unwrap();
        sink.finish().await.unwrap();
        assert_eq!(read(&dir, "part-0-3").len(), 51);
        assert_eq!(read(&dir, "part-0-4"), "y\n");
    }

    #[tokio::test]
    async fn finish_commits_everything_and_creates_the_directory() {
        let dir = TempDir::new("sink-finish");
        let out = dir.path().join("nested").join("out");
        let mut sink = FileSink::<u32>::new(&out).suffix(".json");
        sink.open(&ctx(0, 1, vec![])).await.unwrap();
        let records = (1..=3).map(|i| Record::new(i, 0)).collect();
        sink.write(records).await.unwrap();
        sink.pre_commit(CheckpointId(1)).await.unwrap();
        sink.write(vec![Record::new(4, 0)]).await.unwrap();
        sink.finish().await.unwrap();
        assert_eq!(
            crate::file::test_dir::names(&out),
            ["part-0-0.json", "part-0-1.json"]
        );
        assert_eq!(
            std::fs::read_to_string(out.join("part-0-0.json")).unwrap(),
            "1\n2\n3\n"
        );
    }

    #[tokio::test]
    async fn a_value_holding_a_newline_is_refused() {
        let dir = TempDir::new("sink-newline");
        let mut sink = text_sink(dir.path());
        sink.open(&ctx(0, 1, vec![])).await.unwrap();
        let e = sink.write(batch(&["ok", "two\nlines"])).await.unwrap_err();
        assert!(e.to_string().contains("holds a newline"), "{e}");
        assert!(e.to_string().contains("split 0 offset 1"), "{e}");
        assert_eq!(e.class(), ErrorClass::Fatal);
    }

    #[test]
    fn damaged_state_is_refused() {
        let good = encode_state(
            [Pending {
                in_progress: ".part-0-4.inprogress".into(),
                final_name: "part-0-4".into(),
            }]
            .iter(),
        );
        assert_eq!(decode_state(&good).unwrap().len(), 1);
        assert!(decode_state(&good[..good.len() - 1]).is_err());
        let evil = encode_state(
            [Pending {
                in_progress: ".part-0-4.inprogress".into(),
                final_name: "part-/../../etc/passwd".into(),
            }]
            .iter(),
        );
        assert!(decode_state(&evil).is_err());
        assert!(decode_state(&[9, 0, 0, 0, 0]).is_err());
    }
}
