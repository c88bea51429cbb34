//! The live status page, shipped inside the binary.
//!
//! Plain HTML, CSS and one script (`page/`), embedded at build time: no build
//! step, no CDN, works offline. The script polls `api/jobs` (relative to the
//! page) about once per second and redraws the job, the operator graph, the
//! partitions, the checkpoints, the errors and a chart of one sink's results.
//!
//! ```text
//!   GET /               -> asset("")          index.html
//!   GET /static/<file>  -> asset("<file>")    app.js, style.css
//! ```

/// The files of the page: name under `/static/`, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("page/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("page/style.css"),
    ),
];

/// The content type and bytes of one asset of the page: `""` is the page
/// itself (index.html), any other name one of its files under `/static/`;
/// `None` for an unknown name.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    if path.is_empty() {
        return Some((
            "text/html; charset=utf-8",
            include_bytes!("page/index.html"),
        ));
    }
    FILES
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

#[cfg(test)]
mod tests {
    use super::asset;

    #[test]
    fn the_root_is_the_html_page_and_its_files_have_their_types() {
        let (html_type, html) = asset("").unwrap();
        assert!(html_type.starts_with("text/html"));
        let html = std::str::from_utf8(html).unwrap();
        for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
            assert!(
                html.contains(&format!("static/{file}")),
                "{file} not linked"
            );
            let (content_type, bytes) = asset(file).unwrap();
            assert!(content_type.starts_with(kind));
            assert!(!bytes.is_empty());
        }
    }

    #[test]
    fn unknown_names_and_paths_outside_the_page_are_none() {
        for path in [
            "index.html",
            "nope.js",
            "../main.rs",
            "/app.js",
            "page/app.js",
            "app.js/",
        ] {
            assert!(asset(path).is_none(), "{path}");
        }
    }
}
