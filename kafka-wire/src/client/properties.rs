//! Reading Java-style `.properties` files, so a user's existing `kafka.properties` works.

use std::collections::BTreeMap;

/// Parses the text of a Java `.properties` file into key/value pairs.
///
/// Supports `#` and `!` comments, `key=value`, `key: value` and `key value`
/// separators, leading white space, line continuations with a trailing `\`, and
/// the escapes `\t`, `\n`, `\r`, `\\`, `\=`, `\:` and `\ `. Later keys win.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if ends_with_odd_backslashes(line) {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split_pair(&logical);
        out.insert(unescape(&key), unescape(&value));
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_pair(&logical);
        out.insert(unescape(&key), unescape(&value));
    }
    out
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or white space.
fn split_pair(line: &str) -> (String, String) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => {
                return (
                    line[..i].to_string(),
                    line[i + 1..].trim_start().to_string(),
                );
            }
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (line[..i].to_string(), rest.trim_start().to_string());
            }
            _ => {}
        }
    }
    (line.to_string(), String::new())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_java_forms() {
        let text = "# comment\n! also comment\n\nbootstrap.servers=127.0.0.1:9092\n  acks : all\nlinger.ms 5\nclient.id = my\\\n   client\nempty=\nkey\\=with=eq\n";
        let p = parse(text);
        assert_eq!(p["bootstrap.servers"], "127.0.0.1:9092");
        assert_eq!(p["acks"], "all");
        assert_eq!(p["linger.ms"], "5");
        assert_eq!(p["client.id"], "myclient");
        assert_eq!(p["empty"], "");
        assert_eq!(p["key=with"], "eq");
    }
}
