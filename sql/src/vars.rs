//! `${NAME}` and `${NAME:-default}` in SQL files, replaced from the environment
//! before parsing, so one pipeline file serves tests, demos and deployments
//! (topic names, connection URLs). An unset variable without a default is an
//! error naming it.

use crate::error::{Result, SqlError};

/// Replaces every `${NAME}` / `${NAME:-default}` in `text` with `lookup(NAME)`.
pub fn substitute(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            let line = text[..text.len() - rest.len() + at].matches('\n').count() + 1;
            return Err(SqlError::Syntax {
                line: line as u64,
                column: 0,
                message: "`${` without a closing `}`".into(),
            });
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SqlError::plan(format!(
                "`${{{inner}}}`: a variable name is letters, digits and _"
            )));
        }
        match lookup(name).or_else(|| default.map(str::to_string)) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(SqlError::plan(format!(
                    "variable {name} is not set (write ${{{name}:-default}} for a default)"
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_the_lookup_or_their_default() {
        let env = |n: &str| (n == "TOPIC").then(|| "clicks".to_string());
        assert_eq!(
            substitute("'${TOPIC}' '${GROUP:-g1}' $x", env).expect("ok"),
            "'clicks' 'g1' $x"
        );
        let e = substitute("${MISSING}", env).expect_err("unset");
        assert!(e.to_string().contains("variable MISSING is not set"), "{e}");
        assert!(substitute("${OPEN", env).is_err());
    }
}
