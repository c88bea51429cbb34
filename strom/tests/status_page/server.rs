//! A small HTTP client and the fixture server the page is tested against (loopback only).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::page;

/// `GET base_url + path` (HTTP/1.0, 10 s timeouts): the status code and body.
pub fn http_get(base_url: &str, path: &str) -> (u16, String) {
    let authority = base_url
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches('/');
    let addr: std::net::SocketAddr = authority.parse().unwrap();
    assert!(addr.ip().is_loopback(), "only loopback: {addr}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// The /api/jobs answer of the server at `base_url`.
pub fn fetch_jobs(base_url: &str) -> Value {
    let (code, body) = http_get(base_url, "/api/jobs");
    assert_eq!(code, 200, "/api/jobs: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A server on 127.0.0.1 answering like the status backend: the page's assets
/// (`page::asset`) and a fixed /api/jobs (or 503 when there is none). Stops on drop.
pub struct Fixture {
    pub base_url: String,
    /// How many times /api/jobs was asked for.
    pub polls: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    pub fn start(jobs: Option<Value>) -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base_url = format!("http://{}/", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let jobs = Arc::new(jobs.map(|j| j.to_string()));
        let polls = Arc::new(AtomicUsize::new(0));
        let accept = {
            let stop = stop.clone();
            let polls = polls.clone();
            std::thread::spawn(move || {
                // Bounded: the test drops the fixture long before ten minutes.
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (jobs, polls) = (jobs.clone(), polls.clone());
                            std::thread::spawn(move || serve(stream, jobs.as_deref(), &polls));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        };
        Fixture {
            base_url,
            polls,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Answers one request on `stream` (then closes it), routing like the backend.
fn serve(stream: TcpStream, jobs: Option<&str>, polls: &AtomicUsize) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers (bounded).
    for _ in 0..100 {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 2 => continue,
            _ => break,
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let (code, content_type, body): (&str, &str, Vec<u8>) = if path == "/api/jobs" {
        polls.fetch_add(1, Ordering::Relaxed);
        match jobs {
            Some(j) => ("200 OK", "application/json", j.as_bytes().to_vec()),
            None => (
                "503 Service Unavailable",
                "text/plain",
                b"fixture: no backend".to_vec(),
            ),
        }
    } else {
        let name = if path == "/" {
            Some("")
        } else {
            path.strip_prefix("/static/")
        };
        match name.and_then(page::asset) {
            Some((content_type, bytes)) => ("200 OK", content_type, bytes.to_vec()),
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        }
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}
