//! Reading the DOM Chromium printed: elements by attribute, their text.

use std::collections::BTreeMap;

/// One element of the dumped DOM: its tag, attributes and inner HTML.
#[derive(Debug)]
pub struct Element {
    pub tag: String,
    pub attrs: BTreeMap<String, String>,
    pub inner: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// The text inside, tags removed, entities decoded, blanks collapsed.
    pub fn text(&self) -> String {
        text_of(&self.inner)
    }

    /// The elements inside that carry attribute `attr`.
    pub fn all(&self, attr: &str) -> Vec<Element> {
        elements_with(&self.inner, attr)
    }

    /// The elements inside with `class` among their classes.
    pub fn with_class(&self, class: &str) -> Vec<Element> {
        self.all("class")
            .into_iter()
            .filter(|e| e.attr("class").unwrap().split(' ').any(|c| c == class))
            .collect()
    }
}

fn decode(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the start tag at `html[at..]` (`<name attrs...>`): name, attributes,
/// and the index just past `>`.
fn start_tag(html: &str, at: usize) -> Option<(String, BTreeMap<String, String>, usize)> {
    let bytes = html.as_bytes();
    let mut i = at + 1;
    let name_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attrs = BTreeMap::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        if bytes[i] == b'>' {
            return Some((name, attrs, i + 1));
        }
        let key_start = i;
        while i < bytes.len() && !b" \t\n=>/".contains(&bytes[i]) {
            i += 1;
        }
        let key = html[key_start..i].to_ascii_lowercase();
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            if i < bytes.len() && bytes[i] == b'"' {
                let end = html[i + 1..].find('"')? + i + 1;
                value = decode(&html[i + 1..end]);
                i = end + 1;
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = decode(&html[start..i]);
            }
        }
        attrs.insert(key, value);
    }
}

const VOID: &[&str] = &["br", "hr", "img", "input", "link", "meta", "source", "wbr"];

/// Every element in `html` carrying attribute `attr` (outermost first; nested
/// matches are listed too). Chromium serializes well-formed markup with end tags.
pub fn elements_with(html: &str, attr: &str) -> Vec<Element> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = html[from..].find('<') {
        let at = from + offset;
        from = at + 1;
        let Some((tag, attrs, body_start)) = start_tag(html, at) else {
            continue;
        };
        if !attrs.contains_key(attr) {
            continue;
        }
        let inner = if VOID.contains(&tag.as_str()) {
            String::new()
        } else {
            let end = matching_end(html, &tag, body_start)
                .unwrap_or_else(|| panic!("no </{tag}> after {}", &html[at..]));
            html[body_start..end].to_string()
        };
        found.push(Element { tag, attrs, inner });
    }
    found
}

/// The index of the `</tag>` closing an element whose body starts at `from`.
fn matching_end(html: &str, tag: &str, from: usize) -> Option<usize> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut depth = 1;
    let mut i = from;
    loop {
        let next_close = html[i..].find(&close)? + i;
        let next_open = html[i..next_close]
            .match_indices(&open)
            .map(|(k, _)| k + i)
            .find(|&k| {
                html[k + open.len()..]
                    .starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            });
        match next_open {
            Some(k) => {
                depth += 1;
                i = k + open.len();
            }
            None => {
                depth -= 1;
                if depth == 0 {
                    return Some(next_close);
                }
                i = next_close + close.len();
            }
        }
    }
}

/// The element with `id` (panics when missing).
pub fn by_id(dom: &str, id: &str) -> Element {
    elements_with(dom, "id")
        .into_iter()
        .find(|e| e.attr("id") == Some(id))
        .unwrap_or_else(|| panic!("no #{id} in the page"))
}
