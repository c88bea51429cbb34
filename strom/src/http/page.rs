//! The status page's assets (a stub: the page worktree replaces this file).

/// The asset at `path` ("" for the page itself, else a file under `/static/`):
/// its content type and bytes.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "" => Some((
            "text/html; charset=utf-8",
            b"<!doctype html><html><head><meta charset=\"utf-8\"><title>strom</title></head>\
<body><h1>strom</h1><p><a href=\"/api/jobs\">/api/jobs</a> \
<a href=\"/metrics\">/metrics</a></p></body></html>\n",
        )),
        _ => None,
    }
}
