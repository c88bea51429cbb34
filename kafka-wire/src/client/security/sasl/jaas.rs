//! Parsing `sasl.jaas.config` as Kafka's Java client does:
//!
//! ```text
//!  <login module class> <control flag> (<option>=<value>)* ;
//! ```
//!
//! Values are quoted (`"..."` or `'...'`, with backslash escapes) or bare words;
//! `//` and `/* */` are comments; the flag is required, requisite, sufficient or
//! optional (any case). Kafka takes exactly one login module. The trailing `;`
//! may be left out. Errors name the character position and the option, never a
//! value.

use std::collections::BTreeMap;
use std::fmt;

/// One parsed login module entry.
pub(super) struct JaasEntry {
    /// The login module class, e.g. `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub module: String,
    /// The options; a repeated option keeps its last value, as in Java.
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for JaasEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaasEntry")
            .field("module", &self.module)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
    End,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Skips white space and comments.
    fn skip_blank(&mut self) -> Result<(), String> {
        while let Some(c) = self.peek() {
            if c <= ' ' {
                self.pos += 1;
            } else if c == '/' {
                let start = self.pos + 1;
                if self.chars.get(self.pos + 1) == Some(&'*') {
                    self.pos += 2;
                    loop {
                        match self.peek() {
                            None => {
                                return Err(format!(
                                    "unterminated /* comment at character {start}"
                                ));
                            }
                            Some('*') if self.chars.get(self.pos + 1) == Some(&'/') => {
                                self.pos += 2;
                                break;
                            }
                            Some(_) => self.pos += 1,
                        }
                    }
                } else {
                    // `//`, and as in Java's tokenizer a lone `/`, comment out the line.
                    while self.peek().is_some_and(|c| c != '\n' && c != '\r') {
                        self.pos += 1;
                    }
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    /// The next token and its 1-based character position.
    fn next(&mut self) -> Result<(Token, usize), String> {
        self.skip_blank()?;
        let at = self.pos + 1;
        let Some(c) = self.peek() else {
            return Ok((Token::End, at));
        };
        self.pos += 1;
        let token = match c {
            '=' => Token::Equals,
            ';' => Token::Semicolon,
            '"' | '\'' => Token::Quoted(self.quoted(c, at)?),
            _ => {
                let mut word = String::from(c);
                while let Some(c) = self.peek().filter(|&c| is_word_char(c)) {
                    word.push(c);
                    self.pos += 1;
                }
                Token::Word(word)
            }
        };
        Ok((token, at))
    }

    /// The rest of a quoted string whose opening `quote` was at `at`.
    fn quoted(&mut self, quote: char, at: usize) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!(
                    "unterminated quoted string starting at character {at}"
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(format!(
                    "unterminated quoted string starting at character {at}"
                ));
            };
            self.pos += 1;
            match e {
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\u{b}'),
                '0'..='7' => {
                    // Octal, as Java's StreamTokenizer: up to three digits, at most \377.
                    let mut value = e as u32 - '0' as u32;
                    let max_digits = if e <= '3' { 3 } else { 2 };
                    for _ in 1..max_digits {
                        match self.peek() {
                            Some(d @ '0'..='7') => {
                                value = value * 8 + (d as u32 - '0' as u32);
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    out.extend(char::from_u32(value));
                }
                other => out.push(other),
            }
        }
    }
}

fn is_word_char(c: char) -> bool {
    c > ' ' && !matches!(c, ';' | '=' | '"' | '\'' | '/')
}

/// Parses the value of `sasl.jaas.config`; the error is the message to put in
/// an `Error::Config` for that key.
pub(super) fn parse(text: &str) -> Result<JaasEntry, String> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
    };
    let module = match lexer.next()? {
        (Token::Word(w), _) => w,
        (Token::End, _) => {
            return Err("no login module: expected `<login module class> required \
                        <option>=\"<value>\" ... ;`"
                .into());
        }
        (_, at) => {
            return Err(format!(
                "expected a login module class name at character {at}"
            ));
        }
    };
    match lexer.next()? {
        (Token::Word(flag), at) => {
            let known = ["required", "requisite", "sufficient", "optional"];
            if !known.iter().any(|k| k.eq_ignore_ascii_case(&flag)) {
                return Err(format!(
                    "unknown control flag {flag:?} at character {at}: expected required, \
                     requisite, sufficient or optional"
                ));
            }
        }
        (_, at) => {
            return Err(format!(
                "expected the control flag (required, requisite, sufficient or optional) \
                 after the login module, at character {at}"
            ));
        }
    }
    let mut options = BTreeMap::new();
    loop {
        let (token, at) = lexer.next()?;
        let key = match token {
            Token::Semicolon | Token::End => break,
            Token::Word(key) | Token::Quoted(key) => key,
            Token::Equals => return Err(format!("expected an option name at character {at}")),
        };
        match lexer.next()? {
            (Token::Equals, _) => {}
            (_, at) => {
                return Err(format!("expected `=` after option {key} at character {at}"));
            }
        }
        match lexer.next()? {
            (Token::Word(value) | Token::Quoted(value), _) => {
                options.insert(key, value);
            }
            (_, at) => return Err(format!("option {key} has no value at character {at}")),
        }
    }
    match lexer.next()? {
        (Token::End, _) => {}
        (_, at) => {
            return Err(format!(
                "a second login module starts at character {at}: sasl.jaas.config takes \
                 exactly one"
            ));
        }
    }
    Ok(JaasEntry { module, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap().options.into_iter().collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn the_plain_module_as_java_users_write_it() {
        let entry = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(
            entry.module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(
            entry.options.into_iter().collect::<Vec<_>>(),
            vec![pair("password", "alice-secret"), pair("username", "alice")]
        );
    }

    #[test]
    fn quoted_values_keep_escapes_and_bare_words_are_values() {
        assert_eq!(
            options(
                "M Requisite a=\"x\\\"y\\\\z\" b='single \"q\"' c=bare-word_1.2 d=\"tab\\tnl\\n\\101\""
            ),
            vec![
                pair("a", "x\"y\\z"),
                pair("b", "single \"q\""),
                pair("c", "bare-word_1.2"),
                pair("d", "tab\tnl\nA"),
            ]
        );
    }

    #[test]
    fn every_control_flag_in_any_case_and_an_optional_semicolon() {
        for flag in ["required", "REQUISITE", "Sufficient", "optional"] {
            assert!(parse(&format!("M {flag} a=\"1\";")).is_ok(), "{flag}");
            assert!(parse(&format!("M {flag} a=\"1\"")).is_ok(), "{flag}");
            assert!(parse(&format!("  M\n {flag}\n ;  \n")).is_ok(), "{flag}");
        }
    }

    #[test]
    fn comments_and_line_breaks_are_white_space() {
        assert_eq!(
            options("M required /* the user */ username=\"u\" // trailing\n password=\"p\";"),
            vec![pair("password", "p"), pair("username", "u")]
        );
    }

    #[test]
    fn a_repeated_option_keeps_the_last_value() {
        assert_eq!(options("M required a=\"1\" a=\"2\";"), vec![pair("a", "2")]);
    }

    #[test]
    fn syntax_errors_name_the_position_but_never_a_value() {
        let cases = [
            ("", "no login module"),
            ("M", "control flag"),
            (
                "M mandatory;",
                "unknown control flag \"mandatory\" at character 3",
            ),
            (
                "M required password=\"s3cr3t",
                "unterminated quoted string starting at character 21",
            ),
            (
                "M required password \"s3cr3t\";",
                "expected `=` after option password at character 21",
            ),
            (
                "M required password=;",
                "option password has no value at character 21",
            ),
            (
                "M required =\"s3cr3t\";",
                "expected an option name at character 12",
            ),
            (
                "M required a=\"s3cr3t\"; N required;",
                "second login module starts at character 24",
            ),
            (
                "M required /* a=\"s3cr3t\"",
                "unterminated /* comment at character 12",
            ),
            (
                "\"M\" required;",
                "expected a login module class name at character 1",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{text:?}: {err}");
        }
    }
}
