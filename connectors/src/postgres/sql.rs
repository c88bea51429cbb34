//! The SQL text the sink sends, built as pure functions (tested without a server).
//!
//! Every identifier is quoted, so names keep their case and cannot inject SQL; a
//! table is `name` or `schema.name`. Values never appear in the text: they are
//! bound parameters, except transaction ids, which `PREPARE TRANSACTION` and
//! `COMMIT PREPARED` only take as literals (and which the sink builds from
//! characters it checked).

use super::WriteMode;
use super::value::PgColumn;

/// Most parameters one statement may bind (the protocol counts them in 16 bits).
pub(crate) const MAX_PARAMETERS: usize = 65_535;

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"` or `"name"`: the table as given, each dotted part quoted.
pub(crate) fn quote_table(table: &str) -> String {
    table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// `'text'`, with inner quotes doubled.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `CREATE TABLE IF NOT EXISTS`, with the upsert key as the primary key.
pub(crate) fn create_table(table: &str, columns: &[PgColumn], mode: &WriteMode) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.ty.sql()))
        .collect();
    if let WriteMode::Upsert { key } = mode {
        parts.push(format!(
            "PRIMARY KEY ({})",
            ident_list(key.iter().map(String::as_str))
        ));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote_table(table),
        parts.join(", ")
    )
}

/// A multi-row insert of `rows` rows: `INSERT INTO t (a, b) VALUES ($1::int8,
/// $2::text), ($3::int8, $4::text)`, with `ON CONFLICT (key) DO UPDATE SET` every
/// other column for an upsert (`DO NOTHING` when every column is in the key).
pub(crate) fn insert(table: &str, columns: &[PgColumn], rows: usize, mode: &WriteMode) -> String {
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote_table(table),
        ident_list(columns.iter().map(|c| c.name.as_str()))
    );
    push_tuples(&mut sql, columns.iter(), rows);
    if let WriteMode::Upsert { key } = mode {
        let set: Vec<String> = columns
            .iter()
            .filter(|c| !key.contains(&c.name))
            .map(|c| {
                let q = quote_ident(&c.name);
                format!("{q} = EXCLUDED.{q}")
            })
            .collect();
        sql.push_str(" ON CONFLICT (");
        sql.push_str(&ident_list(key.iter().map(String::as_str)));
        if set.is_empty() {
            sql.push_str(") DO NOTHING");
        } else {
            sql.push_str(") DO UPDATE SET ");
            sql.push_str(&set.join(", "));
        }
    }
    sql
}

/// A multi-row delete by key of `rows` keys: `DELETE FROM t WHERE ("a", "b") IN
/// (($1::int8, $2::text), ($3::int8, $4::text))`, binding the `key` columns of
/// each row in the order of `key`.
pub(crate) fn delete(table: &str, key: &[&PgColumn], rows: usize) -> String {
    let mut sql = format!(
        "DELETE FROM {} WHERE ({}) IN (",
        quote_table(table),
        ident_list(key.iter().map(|c| c.name.as_str()))
    );
    push_tuples(&mut sql, key.iter().copied(), rows);
    sql.push(')');
    sql
}

/// `rows` tuples of numbered placeholders, one per column, each cast to its
/// column's type: `($1::int8, $2::text), ($3::int8, $4::text)`.
fn push_tuples<'a>(
    sql: &mut String,
    columns: impl Iterator<Item = &'a PgColumn> + Clone,
    rows: usize,
) {
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, c) in columns.clone().enumerate() {
            n += 1;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
            sql.push_str(c.ty.placeholder_cast());
        }
        sql.push(')');
    }
}

/// Rows per insert statement: `batch_rows`, fewer if that would bind more than
/// [`MAX_PARAMETERS`] values.
pub(crate) fn rows_per_statement(batch_rows: usize, columns: usize) -> usize {
    (MAX_PARAMETERS / columns.max(1)).clamp(1, batch_rows.max(1))
}

fn ident_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.map(quote_ident).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::PgType;

    fn columns() -> Vec<PgColumn> {
        vec![
            PgColumn::new("id", PgType::BigInt),
            PgColumn::new("Name", PgType::Text),
            PgColumn::new("amount", PgType::Numeric),
        ]
    }

    #[test]
    fn identifiers_are_quoted_and_keep_their_case() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("public.Events"), "\"public\".\"Events\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn append_inserts_cast_every_placeholder_to_its_column_type() {
        let sql = insert("t", &columns(), 2, &WriteMode::Append);
        assert_eq!(
            sql,
            "INSERT INTO \"t\" (\"id\", \"Name\", \"amount\") VALUES \
             ($1::int8, $2::text, $3::text::numeric), ($4::int8, $5::text, $6::text::numeric)"
        );
    }

    #[test]
    fn upserts_update_the_columns_outside_the_key() {
        let key = WriteMode::Upsert {
            key: vec!["id".into()],
        };
        let sql = insert("t", &columns(), 1, &key);
        assert!(
            sql.ends_with(
                " ON CONFLICT (\"id\") DO UPDATE SET \"Name\" = EXCLUDED.\"Name\", \"amount\" = EXCLUDED.\"amount\""
            ),
            "{sql}"
        );
        let all = WriteMode::Upsert {
            key: vec!["id".into(), "Name".into(), "amount".into()],
        };
        assert!(insert("t", &columns(), 1, &all).ends_with("DO NOTHING"));
        assert_eq!(
            create_table("s.t", &columns(), &key),
            "CREATE TABLE IF NOT EXISTS \"s\".\"t\" (\"id\" bigint, \"Name\" text, \"amount\" numeric, PRIMARY KEY (\"id\"))"
        );
    }

    #[test]
    fn deletes_bind_the_key_columns_of_each_row() {
        let cols = columns();
        let key = [&cols[0], &cols[1]];
        assert_eq!(
            delete("s.t", &key, 2),
            "DELETE FROM \"s\".\"t\" WHERE (\"id\", \"Name\") IN \
             (($1::int8, $2::text), ($3::int8, $4::text))"
        );
        assert_eq!(
            delete("t", &key[..1], 1),
            "DELETE FROM \"t\" WHERE (\"id\") IN (($1::int8))"
        );
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        assert_eq!(rows_per_statement(1000, 3), 1000);
        assert_eq!(rows_per_statement(1000, 100), 655);
        assert_eq!(rows_per_statement(1000, 70_000), 1);
        assert_eq!(rows_per_statement(0, 3), 1);
    }
}
