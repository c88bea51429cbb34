//! Headless Chromium: finding it, printing a page's DOM, taking a screenshot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use integration_tests::workspace_root;

/// The longest one Chromium run may take before it is killed.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium binary from `scripts/chromium`, or `None` (with a loud message)
/// when there is none; panics under `CI=true` instead.
pub fn chromium() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let out = Command::new(workspace_root().join("scripts/chromium"))
                .stderr(Stdio::inherit())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|p| !p.is_empty());
            if out.is_none() {
                if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                    panic!("CI=true but scripts/chromium found no Chromium");
                }
                eprintln!(
                    "!! SKIPPING browser test: no Chromium (run scripts/chromium as root) !!"
                );
            }
            out.map(PathBuf::from)
        })
        .as_deref()
}

/// Runs headless Chromium with `args` (a fresh profile, killed after
/// [`BROWSER_TIMEOUT`]) and returns its stdout.
fn browse(args: &[String]) -> String {
    let profile = std::env::temp_dir().join(integration_tests::random_topic("strom-chromium"));
    let mut child = Command::new(chromium().expect("no Chromium"))
        .args([
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let status = wait_bounded(&mut child, BROWSER_TIMEOUT, "chromium");
    let out = reader.join().unwrap().unwrap();
    let err = err_reader.join().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "chromium failed ({status}):\n{err}");
    out
}

/// Waits for `child` at most `limit`, killing it (and panicking) after that.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The page's DOM after its script polled for a few (virtual) seconds.
pub fn dump_dom(url: &str) -> String {
    browse(&["--dump-dom".to_string(), url.to_string()])
}

/// A 1400x1000 screenshot of the page at `path`.
pub fn screenshot(url: &str, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    browse(&[
        format!("--screenshot={}", path.display()),
        "--window-size=1400,1000".to_string(),
        url.to_string(),
    ]);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot at {}", path.display());
    eprintln!("screenshot: {}", path.display());
}
