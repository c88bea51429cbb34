//! Files: a bounded source reading a file or a directory line by line, and a sink
//! writing rolling files that become visible only when a checkpoint commits.
//!
//! ```text
//!  dir/a.csv, dir/b.csv ──FileSource──► one split per file ──► operators ──► FileSink
//!  (sorted by name; hidden,   line -> Format -> value                           │
//!   `.`/`_` names skipped)    position = byte offset of the next line           ▼
//!                                                     out/.part-0-3.inprogress (hidden)
//!                                 barrier n: pre_commit ── fsync, close, list ──┤
//!                                 checkpoint n complete: commit ── rename ──► out/part-0-3
//! ```
//!
//! Each line is one record through a [`Format`](crate::format::Format) (UTF-8 text,
//! JSON, raw bytes), the same formats the Kafka connector uses.
//!
//! | file | what |
//! |---|---|
//! | `source.rs` | [`FileSource`]: splits, line reading with a length limit, bad lines |
//! | `sink.rs` | [`FileSink`]: in-progress files, rolling, the two-phase commit by rename |
//!
//! Errors name the file. An I/O failure while running rolls the job back to its last
//! checkpoint ([`engine::ErrorClass::Rollback`]): the source re-reads from the
//! checkpointed positions, the sink's uncommitted in-progress files are deleted when
//! it opens again. A missing path, a denied permission, a line over the limit or a
//! bad line under [`BadLinePolicy::Fail`] fails the job
//! ([`engine::ErrorClass::Fatal`]): running again would meet the same file.

mod sink;
mod source;

pub use sink::{DEFAULT_MAX_FILE_SIZE, FileSink};
pub use source::{BadLinePolicy, DEFAULT_MAX_LINE_BYTES, FileSource};

use std::io;
use std::path::Path;

use engine::{EngineError, ErrorClass};

/// An I/O error as an engine error that names what was done to which path.
fn io_error(what: &str, path: &Path, error: io::Error, class: ErrorClass) -> EngineError {
    EngineError::external(format!("{what} {}", path.display()), error, class)
}

/// Whether a file name is hidden from readers: names starting with `.` (hidden
/// files, the sink's in-progress files) or `_` (markers such as `_SUCCESS`).
fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

#[cfg(test)]
pub(crate) mod test_dir {
    //! Temporary directories for the tests, removed when dropped.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fresh, empty directory under the system's temp dir.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(label: &str) -> TempDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!(
                "strom-file-{label}-{}-{nanos}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        /// Names in the directory, sorted.
        pub(crate) fn names(&self) -> Vec<String> {
            names(&self.0)
        }
    }

    /// Names in `dir`, sorted (empty if it does not exist).
    pub(crate) fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use engine::{Pipeline, PipelineConfig, WatermarkStrategy};

    use super::test_dir::TempDir;
    use super::*;
    use crate::format::Utf8;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bounded_pipeline_copies_filtered_lines_from_files_to_committed_files() {
        let input = TempDir::new("e2e-in");
        let output = TempDir::new("e2e-out");
        std::fs::write(
            input.path().join("a.csv"),
            "id,level\n1,info\n2,error\n3,error\n",
        )
        .unwrap();
        std::fs::write(input.path().join("b.csv"), "id,level\r\n4,warn\r\n5,error").unwrap();
        std::fs::write(input.path().join(".c.csv"), "id,level\n9,error\n").unwrap();
        let out_dir = output.path().join("errors");

        let p = Pipeline::with_config(
            PipelineConfig::default()
                .parallelism(2)
                .batch_size(2)
                .checkpoint_interval(Duration::from_millis(5)),
        );
        p.source(
            FileSource::new(input.path()).skip_header_lines(1),
            WatermarkStrategy::no_watermarks(),
        )
        .filter(|line: &String| line.ends_with(",error"))
        .map(|line| line.replace(",error", ""))
        .sink(FileSink::new(&out_dir).format(Utf8).suffix(".txt"));
        p.run().await.unwrap();

        let names = test_dir::names(&out_dir);
        assert!(!names.is_empty());
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("part-") && n.ends_with(".txt")),
            "{names:?}"
        );
        let mut lines: Vec<String> = names
            .iter()
            .flat_map(|n| {
                let text = std::fs::read_to_string(out_dir.join(n)).unwrap();
                assert!(text.ends_with('\n'), "{n}: {text:?}");
                text.lines().map(String::from).collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        assert_eq!(lines, ["2", "3", "5"]);
    }

    /// Defines: every line of `input` -> a map that, when `hold` is set, waits after
    /// its 100th record until `hold` is cleared -> text files in `output`.
    fn copy_pipeline(input: &Path, output: &Path, hold: Arc<AtomicBool>) -> Pipeline {
        let p = Pipeline::with_config(PipelineConfig::default().batch_size(16).channel_capacity(1));
        let seen = AtomicUsize::new(0);
        p.source(FileSource::new(input), WatermarkStrategy::no_watermarks())
            .map(move |line: String| {
                if seen.fetch_add(1, Ordering::SeqCst) == 100 {
                    while hold.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                line
            })
            .sink(FileSink::new(output).format(Utf8).max_file_size(4096));
        p
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_pipeline_resumes_from_its_checkpoint_without_loss_or_duplicates() {
        let input = TempDir::new("resume-in");
        let output = TempDir::new("resume-out");
        let mut expected = Vec::new();
        for f in 0..3 {
            let lines: Vec<String> = (0..2000).map(|i| format!("f{f}-{i:04}")).collect();
            std::fs::write(input.path().join(format!("{f}.txt")), lines.join("\n")).unwrap();
            expected.extend(lines);
        }

        // Run 1: held after 100 records, stopped there (a final checkpoint), so the
        // source is far from its end.
        let hold = Arc::new(AtomicBool::new(true));
        let handle = copy_pipeline(input.path(), output.path(), hold.clone())
            .start()
            .unwrap();
        let mut waited = 0;
        while !output.names().iter().any(|n| n.ends_with(".inprogress")) {
            assert!(waited < 10_000, "the first records never reached the sink");
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
        handle.stop();
        hold.store(false, Ordering::SeqCst);
        let store = handle.checkpoints();
        let result = handle.wait().await.unwrap();
        assert!(result.stopped);
        let checkpoint = store.latest().unwrap();
        let names = output.names();
        assert!(names.iter().all(|n| n.starts_with("part-0-")), "{names:?}");
        let first_run: usize = names
            .iter()
            .map(|n| {
                std::fs::read_to_string(output.path().join(n))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert!(first_run > 0 && first_run < expected.len(), "{first_run}");

        // Run 2 restores the stop checkpoint and reads the rest.
        let p = copy_pipeline(
            input.path(),
            output.path(),
            Arc::new(AtomicBool::new(false)),
        );
        p.restore_from(checkpoint);
        p.run().await.unwrap();

        let mut lines: Vec<String> = output
            .names()
            .iter()
            .flat_map(|n| {
                assert!(n.starts_with("part-0-"), "{n}");
                let text = std::fs::read_to_string(output.path().join(n)).unwrap();
                text.lines().map(String::from).collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        assert_eq!(lines, expected);
    }

    #[test]
    fn hidden_names_start_with_a_dot_or_an_underscore() {
        assert!(is_hidden(".part-0-1.inprogress"));
        assert!(is_hidden("_SUCCESS"));
        assert!(!is_hidden("part-0-1"));
    }
}
