//! Kafka's JSON message specs: comment stripping, parsing, validation.
//!
//! Parsing is strict on purpose: every key the generator does not understand fails
//! generation (`deny_unknown_fields`), so a new spec feature can never be silently
//! dropped from the generated codecs.

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// One `*.json` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub api_key: Option<i16>,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub valid_versions: String,
    /// Absent only on specs of removed APIs (`validVersions: "none"`).
    #[serde(default)]
    pub flexible_versions: String,
    #[serde(default)]
    pub latest_version_unstable: bool,
    pub deprecated_versions: Option<String>,
    #[serde(default)]
    pub listeners: Vec<String>,
    /// Absent only on specs of removed APIs.
    #[serde(default)]
    pub fields: Vec<Field>,
    #[serde(default)]
    pub common_structs: Vec<CommonStruct>,
}

/// An entry of `commonStructs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommonStruct {
    pub name: String,
    pub versions: String,
    pub fields: Vec<Field>,
}

/// One field of a message or struct.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub versions: String,
    pub about: Option<String>,
    pub nullable_versions: Option<String>,
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub ignorable: bool,
    pub entity_type: Option<String>,
    #[serde(default)]
    pub map_key: bool,
    pub tag: Option<serde_json::Value>,
    pub tagged_versions: Option<String>,
    pub flexible_versions: Option<String>,
    #[serde(default)]
    pub zero_copy: bool,
    pub fields: Option<Vec<Field>>,
}

/// Removes `//` comments outside of string literals, keeping line structure.
pub fn strip_comments(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => bail!("block comments are not supported"),
            _ => out.push(c),
        }
    }
    if in_string {
        bail!("unterminated string literal");
    }
    Ok(out)
}

/// Parses one spec file's text.
pub fn parse(text: &str) -> Result<Spec> {
    let json = strip_comments(text)?;
    // Through `Value` first: some specs repeat a key with the same value
    // (DescribeTopicPartitionsRequest), which Kafka's own parser accepts (last one wins).
    let value: serde_json::Value = serde_json::from_str(&json).context("parsing spec JSON")?;
    let spec: Spec = serde_json::from_value(value).context("reading the spec")?;
    if !spec.is_removed() && spec.flexible_versions.is_empty() {
        bail!("missing field `flexibleVersions`");
    }
    Ok(spec)
}

impl Spec {
    /// A spec kept only to reserve the api key of an API Kafka removed
    /// (`"validVersions": "none"`, e.g. LeaderAndIsr in Kafka 4.0).
    pub fn is_removed(&self) -> bool {
        self.valid_versions.trim() == "none"
    }
}

/// An inclusive version range; empty when `min > max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: i16,
    pub max: i16,
}

impl Range {
    pub const NONE: Range = Range { min: 0, max: -1 };

    pub fn parse(s: &str) -> Result<Range> {
        let s = s.trim();
        if s == "none" {
            return Ok(Range::NONE);
        }
        if let Some(min) = s.strip_suffix('+') {
            return Ok(Range {
                min: min.trim().parse().context("version")?,
                max: i16::MAX,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            return Ok(Range {
                min: a.trim().parse()?,
                max: b.trim().parse()?,
            });
        }
        let v: i16 = s
            .parse()
            .with_context(|| format!("bad version range {s:?}"))?;
        Ok(Range { min: v, max: v })
    }

    pub fn is_empty(self) -> bool {
        self.min > self.max
    }

    pub fn intersect(self, other: Range) -> Range {
        let r = Range {
            min: self.min.max(other.min),
            max: self.max.min(other.max),
        };
        if r.is_empty() { Range::NONE } else { r }
    }

    /// A Rust boolean expression for "`version` is in this range", given that
    /// `version` is known to lie in `within`.
    pub fn cond(self, within: Range) -> String {
        let r = self.intersect(within);
        if r.is_empty() {
            return "false".into();
        }
        let lo = r.min > within.min;
        let hi = r.max < within.max;
        match (lo, hi) {
            (false, false) => "true".into(),
            (true, false) => format!("version >= {}", r.min),
            (false, true) => format!("version <= {}", r.max),
            (true, true) if r.min == r.max => format!("version == {}", r.min),
            (true, true) => format!("({}..={}).contains(&version)", r.min, r.max),
        }
    }

    /// Human form: `3+`, `0-2`, `none`.
    pub fn human(self) -> String {
        if self.is_empty() {
            "none".into()
        } else if self.max == i16::MAX {
            format!("{}+", self.min)
        } else if self.min == self.max {
            format!("{}", self.min)
        } else {
            format!("{}-{}", self.min, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_inside_strings_survive() {
        let s = "{ \"a\": \"x // y\", // gone\n \"b\": \"q\\\"//\" }";
        let out = strip_comments(s).unwrap();
        assert_eq!(out, "{ \"a\": \"x // y\", \n \"b\": \"q\\\"//\" }");
    }

    #[test]
    fn unknown_keys_fail_parsing() {
        let good = r#"{ "type": "data", "name": "X", "validVersions": "0", "flexibleVersions": "none",
            "fields": [ { "name": "A", "type": "int8", "versions": "0+" } ] }"#;
        assert!(parse(good).is_ok());
        let top = good.replace("\"type\": \"data\"", "\"type\": \"data\", \"shiny\": 1");
        assert!(parse(&top).is_err());
        let field = good.replace(
            "\"versions\": \"0+\"",
            "\"versions\": \"0+\", \"mystery\": true",
        );
        assert!(parse(&field).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(
            Range::parse("3+").unwrap(),
            Range {
                min: 3,
                max: i16::MAX
            }
        );
        assert_eq!(Range::parse("0-2").unwrap(), Range { min: 0, max: 2 });
        assert!(Range::parse("none").unwrap().is_empty());
        let valid = Range { min: 0, max: 9 };
        assert_eq!(Range::parse("0+").unwrap().cond(valid), "true");
        assert_eq!(Range::parse("3+").unwrap().cond(valid), "version >= 3");
        assert_eq!(Range::parse("10+").unwrap().cond(valid), "false");
        assert_eq!(
            Range::parse("2-4").unwrap().cond(valid),
            "(2..=4).contains(&version)"
        );
    }
}
