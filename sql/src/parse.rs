//! From SQL text to the script's statements: tables, views and inserts.
//!
//! The parser is `sqlparser`'s generic dialect. Flink's DDL and table-valued
//! function syntax goes beyond it in three places, which a token pass rewrites
//! first, in place and with blanks of the same length so every position the
//! parser reports is still a position in the user's file:
//!
//! ```text
//! CREATE TABLE t (.., WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)   the clause is cut out
//!                                                                     and parsed on its own
//! PRIMARY KEY (id) NOT ENFORCED                                       NOT ENFORCED blanked
//! TABLE(TUMBLE(TABLE logs, DESCRIPTOR(ts), ..))                       the inner TABLE blanked
//! SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), ..)                 PARTITION BY k blanked
//! SET 'table.exec.state.ttl' = '1 h';                                 cut out, into the
//!                                                                     script's settings
//! ```

use std::collections::BTreeMap;

use sqlparser::ast::{
    ColumnOption, CreateTableOptions, Expr, ObjectName, Query, SqlOption, Statement,
    TableConstraint, TableObject,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};

use crate::error::{Result, SqlError};
use crate::expr::{CExpr, Scope, compile};
use crate::types::{DataType, Field, Schema};

/// `WATERMARK FOR column AS expression` of a table.
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: String,
    /// The watermark expression (usually `column - INTERVAL '..' ..`).
    pub expr: Expr,
}

/// A computed column `name AS expression` of a source table.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    /// Its index in the table's schema.
    pub position: usize,
    /// The expression over the physical columns.
    pub expr: CExpr,
}

/// A `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// Columns, computed ones included.
    pub schema: Schema,
    /// The columns stored in the records (the schema without computed columns).
    pub physical: Schema,
    /// Computed columns, by position.
    pub computed: Vec<ComputedColumn>,
    /// The watermark clause, if any.
    pub watermark: Option<WatermarkDef>,
    /// Primary key columns (`PRIMARY KEY (..) NOT ENFORCED`).
    pub primary_key: Vec<String>,
    /// `WITH` options, keys as written.
    pub options: BTreeMap<String, String>,
    /// Where the statement starts.
    pub span: Span,
}

impl TableDef {
    /// An option's value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }
}

/// A `CREATE VIEW`.
#[derive(Debug, Clone)]
pub struct ViewDef {
    /// View name.
    pub name: String,
    /// Its query.
    pub query: Query,
}

/// An `INSERT INTO target SELECT ..`.
#[derive(Debug, Clone)]
pub struct InsertDef {
    /// The sink table.
    pub target: String,
    /// Explicit target columns, if listed.
    pub columns: Vec<String>,
    /// The query.
    pub query: Query,
    /// Where the statement starts.
    pub span: Span,
}

/// Job-level settings from `SET 'key' = 'value';` statements (Flink's SQL
/// client syntax), each key checked and typed when the script is parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `table.exec.state.ttl`: how long a regular join keeps a row after it
    /// arrived, and a GROUP BY without window a key's state after its last row
    /// (processing time; an expired key starts over); `None` (the default, or
    /// `'0'`) keeps state forever, as Flink.
    pub state_ttl: Option<std::time::Duration>,
}

/// The keys `SET` accepts.
const SETTING_KEYS: &[&str] = &["table.exec.state.ttl"];

impl Settings {
    fn set(&mut self, key: &str, value: &str) -> std::result::Result<(), String> {
        match key {
            "table.exec.state.ttl" => {
                let d = parse_duration(value)?;
                self.state_ttl = (!d.is_zero()).then_some(d);
                Ok(())
            }
            _ => Err(format!(
                "unknown setting '{key}': SET takes {}",
                SETTING_KEYS.join(", ")
            )),
        }
    }
}

/// A duration as Flink writes one: a number and an optional unit (`ms`, `s`,
/// `min`, `h`, `d` and their long forms), milliseconds without one.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!("'{text}' is not a duration: a number and a unit (ms, s, min, h, d), e.g. '1 h'")
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms_per = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms_per)
        .map(std::time::Duration::from_millis)
        .ok_or_else(bad)
}

/// Everything a SQL file declares, in order.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Tables by declaration order.
    pub tables: Vec<TableDef>,
    /// Views by declaration order.
    pub views: Vec<ViewDef>,
    /// The inserts: each is one pipeline branch ending in a sink.
    pub inserts: Vec<InsertDef>,
    /// The `SET` statements' settings.
    pub settings: Settings,
}

impl Script {
    /// The table called `name` (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The view called `name` (case-insensitive).
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        self.views
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }
}

/// Parses a SQL script.
pub fn parse_script(sql: &str) -> Result<Script> {
    let (text, cut) = rewrite(sql)?;
    let watermarks = &cut.watermarks;
    let dialect = GenericDialect {};
    let statements = Parser::parse_sql(&dialect, &text).map_err(syntax_error)?;
    let mut script = Script::default();
    for (key, value, span) in &cut.settings {
        script
            .settings
            .set(key, value)
            .map_err(|m| SqlError::at(*span, m))?;
    }
    for statement in statements {
        let span = sqlparser::ast::Spanned::span(&statement);
        match statement {
            Statement::CreateTable(ct) => {
                let name = object_name(&ct.name);
                if script.table(&name).is_some() || script.view(&name).is_some() {
                    return Err(SqlError::at(span, format!("{name} is declared twice")));
                }
                let mut fields = Vec::new();
                let mut primary_key = Vec::new();
                for col in &ct.columns {
                    let ty =
                        data_type(&col.data_type).map_err(|m| SqlError::at(col.name.span, m))?;
                    if col
                        .options
                        .iter()
                        .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
                    {
                        primary_key.push(col.name.value.clone());
                    }
                    fields.push(Field::new(&col.name.value, ty));
                }
                for c in &ct.constraints {
                    if let TableConstraint::PrimaryKey(pk) = c {
                        primary_key.extend(pk.columns.iter().map(|c| c.column.expr.to_string()));
                    }
                }
                let options = match &ct.table_options {
                    CreateTableOptions::With(opts) => sql_options(opts, &name)?,
                    CreateTableOptions::None => BTreeMap::new(),
                    _ => {
                        return Err(SqlError::at(
                            span,
                            "table options go in WITH ('key' = 'value', ...)",
                        ));
                    }
                };
                let physical = Schema::new(fields.clone());
                let mut computed = Vec::new();
                for (t, item, col, expr) in &cut.computed {
                    if !t.eq_ignore_ascii_case(&name) {
                        continue;
                    }
                    let c = compile(expr, &Scope::of(&physical))?;
                    let position = (*item).min(fields.len());
                    fields.insert(position, Field::new(col, c.ty));
                    computed.push(ComputedColumn { position, expr: c });
                }
                let schema = Schema::new(fields);
                let watermark = match watermarks.iter().find(|w| w.0.eq_ignore_ascii_case(&name)) {
                    Some((_, wm)) => {
                        if schema.find(None, &wm.column).is_err() {
                            return Err(SqlError::at(
                                span,
                                format!("WATERMARK FOR {}: no such column in {name}", wm.column),
                            ));
                        }
                        Some(wm.clone())
                    }
                    None => None,
                };
                script.tables.push(TableDef {
                    name,
                    schema,
                    physical,
                    computed,
                    watermark,
                    primary_key,
                    options,
                    span,
                });
            }
            Statement::CreateView(cv) => {
                let name = object_name(&cv.name);
                if script.table(&name).is_some() || script.view(&name).is_some() {
                    return Err(SqlError::at(span, format!("{name} is declared twice")));
                }
                script.views.push(ViewDef {
                    name,
                    query: (*cv.query).clone(),
                });
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(target) = &insert.table else {
                    return Err(SqlError::at(span, "INSERT INTO needs a table name"));
                };
                let Some(query) = insert.source else {
                    return Err(SqlError::at(span, "INSERT INTO .. needs a SELECT"));
                };
                script.inserts.push(InsertDef {
                    target: object_name(target),
                    columns: insert.columns.iter().map(|c| c.to_string()).collect(),
                    query: *query,
                    span,
                });
            }
            other => {
                return Err(SqlError::at(
                    span,
                    format!(
                        "unsupported statement `{}`: strom runs CREATE TABLE, CREATE VIEW and INSERT INTO .. SELECT",
                        first_words(&other.to_string())
                    ),
                ));
            }
        }
    }
    Ok(script)
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn syntax_error(e: sqlparser::parser::ParserError) -> SqlError {
    let text = e.to_string();
    let text = text
        .strip_prefix("sql parser error: ")
        .unwrap_or(&text)
        .to_string();
    // The parser appends " at Line: L, Column: C".
    if let Some(at) = text.rfind(" at Line: ") {
        let (message, pos) = text.split_at(at);
        let nums: Vec<u64> = pos
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [line, column] = nums[..] {
            return SqlError::Syntax {
                line,
                column,
                message: message.to_string(),
            };
        }
    }
    SqlError::Syntax {
        line: 0,
        column: 0,
        message: text,
    }
}

/// The last part of a (possibly qualified) name, unquoted.
pub fn object_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map_or_else(|| name.to_string(), |i| i.value.clone())
}

fn sql_options(opts: &[SqlOption], table: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for o in opts {
        let SqlOption::KeyValue { key, value } = o else {
            return Err(SqlError::options(
                table,
                format!("`{o}` is not 'key' = 'value'"),
            ));
        };
        let key = object_name(key);
        let value = match value {
            Expr::Value(v) => match &v.value {
                sqlparser::ast::Value::SingleQuotedString(s) => s.clone(),
                sqlparser::ast::Value::Number(n, _) => n.clone(),
                sqlparser::ast::Value::Boolean(b) => b.to_string(),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        if out.insert(key.clone(), value).is_some() {
            return Err(SqlError::options(
                table,
                format!("option '{key}' is given twice"),
            ));
        }
    }
    Ok(out)
}

/// A SQL type as strom knows it.
pub fn data_type(dt: &sqlparser::ast::DataType) -> Result<DataType, String> {
    let text = dt.to_string().to_ascii_uppercase();
    let (base, args) = match text.split_once('(') {
        Some((b, rest)) => (b.trim().to_string(), rest.trim_end_matches(')').to_string()),
        None => (text.trim().to_string(), String::new()),
    };
    let nums: Vec<u8> = args
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Ok(match base.as_str() {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "INT" | "INTEGER" | "SMALLINT" | "TINYINT" => DataType::Int,
        "BIGINT" => DataType::BigInt,
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "REAL" => DataType::Double,
        "DECIMAL" | "NUMERIC" | "DEC" => match nums[..] {
            [] => DataType::Decimal(10, 0),
            [p] => DataType::Decimal(p, 0),
            [p, s] if s <= p && p <= 38 => DataType::Decimal(p, s),
            _ => return Err(format!("{text}: precision up to 38, scale up to precision")),
        },
        "STRING" | "VARCHAR" | "CHAR" | "TEXT" | "CHARACTER VARYING" => DataType::String,
        "BYTES" | "VARBINARY" | "BINARY" | "BYTEA" => DataType::Bytes,
        "TIMESTAMP" | "TIMESTAMP_LTZ" | "TIMESTAMP WITHOUT TIME ZONE" => DataType::Timestamp,
        _ => {
            return Err(format!(
                "unsupported type {text}: use BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), STRING, BYTES or TIMESTAMP(3)"
            ));
        }
    })
}

/// Positions in the text by (line, column).
struct Positions {
    chars: Vec<char>,
    line_starts: Vec<usize>,
}

impl Positions {
    fn new(text: &str) -> Positions {
        let chars: Vec<char> = text.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in chars.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Positions { chars, line_starts }
    }

    fn index(&self, loc: Location) -> usize {
        let line = (loc.line as usize).saturating_sub(1);
        let start = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.chars.len());
        (start + (loc.column as usize).saturating_sub(1)).min(self.chars.len())
    }

    fn blank(&mut self, from: Location, to: Location) {
        let (a, b) = (self.index(from), self.index(to));
        for c in &mut self.chars[a..b] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    }

    fn slice(&self, from: Location, to: Location) -> String {
        self.chars[self.index(from)..self.index(to)]
            .iter()
            .collect()
    }
}

fn word_is(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

/// What the token pass cut out of the text.
#[derive(Default)]
struct Cut {
    /// Watermark clauses by table name.
    watermarks: Vec<(String, WatermarkDef)>,
    /// Computed columns `name AS expr`: table, position among the columns, name, expression.
    computed: Vec<(String, usize, String, Expr)>,
    /// `SET 'key' = 'value'`: key, value, where the statement is.
    settings: Vec<(String, String, Span)>,
}

/// The index of the comma or closing parenthesis that ends the clause starting at
/// `from` (same nesting level), or `tokens.len()`.
fn clause_end(tokens: &[TokenWithSpan], from: usize) -> usize {
    let mut j = from;
    let mut d = 0;
    while j < tokens.len() {
        match tokens[j].token {
            Token::LParen => d += 1,
            Token::RParen if d == 0 => break,
            Token::RParen => d -= 1,
            Token::Comma if d == 0 => break,
            Token::SemiColon | Token::EOF => break,
            _ => {}
        }
        j += 1;
    }
    j
}

/// Blanks the list item `tokens[start..end]` with the comma that separates it
/// from its neighbours.
fn cut_item(pos: &mut Positions, tokens: &[TokenWithSpan], start: usize, end: usize) {
    let prev_comma = start > 0 && tokens[start - 1].token == Token::Comma;
    let from = if prev_comma {
        tokens[start - 1].span.start
    } else {
        tokens[start].span.start
    };
    let to = if !prev_comma && tokens.get(end).is_some_and(|t| t.token == Token::Comma) {
        tokens[end].span.end
    } else {
        tokens[end - 1].span.end
    };
    pos.blank(from, to);
}

/// Parses the expression in `tokens[from..to]`.
fn sub_expr(
    pos: &Positions,
    tokens: &[TokenWithSpan],
    from: usize,
    to: usize,
    what: &str,
) -> Result<Expr> {
    let (a, b) = (tokens[from].span.start, tokens[to - 1].span.end);
    let text = pos.slice(a, b);
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Syntax {
            line: a.line,
            column: a.column,
            message: format!("in {what}: {e}"),
        })
}

/// Rewrites Flink-only syntax (see the module docs); returns the text to parse and
/// what was cut out.
fn rewrite(sql: &str) -> Result<(String, Cut)> {
    let dialect = GenericDialect {};
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax {
            line: e.location.line,
            column: e.location.column,
            message: e.message.clone(),
        })?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut pos = Positions::new(sql);
    let mut cut = Cut::default();
    let mut table: Option<String> = None;
    let mut depth = 0i32;
    // The column-list item the scan is in (commas at depth 1 of a CREATE TABLE).
    let mut item = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i].token;
        match t {
            Token::SemiColon => {
                table = None;
                depth = 0;
            }
            Token::LParen => {
                depth += 1;
                if depth == 1 {
                    item = 0;
                }
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 1 => item += 1,
            _ => {}
        }
        // SET 'key' = 'value' as a statement of its own.
        let statement_start = i == 0 || tokens[i - 1].token == Token::SemiColon;
        if statement_start && word_is(t, "SET") {
            let setting = match (
                tokens.get(i + 1).map(|t| &t.token),
                tokens.get(i + 2).map(|t| &t.token),
                tokens.get(i + 3).map(|t| &t.token),
                tokens.get(i + 4).map(|t| &t.token),
            ) {
                (
                    Some(Token::SingleQuotedString(k)),
                    Some(Token::Eq),
                    Some(Token::SingleQuotedString(v)),
                    Some(Token::SemiColon | Token::EOF) | None,
                ) => Some((k.clone(), v.clone())),
                _ => None,
            };
            let Some((key, value)) = setting else {
                return Err(SqlError::at(
                    tokens[i].span,
                    "expected SET 'key' = 'value';",
                ));
            };
            let span = Span::new(tokens[i].span.start, tokens[i + 3].span.end);
            pos.blank(span.start, span.end);
            cut.settings.push((key, value, span));
            i += 4;
            continue;
        }
        // `name AS expression` in a column list: a computed column.
        let item_start = i > 0 && matches!(tokens[i - 1].token, Token::LParen | Token::Comma);
        if table.is_some()
            && depth == 1
            && item_start
            && matches!(t, Token::Word(_))
            && tokens.get(i + 1).is_some_and(|n| word_is(&n.token, "AS"))
        {
            let Token::Word(w) = t else { unreachable!() };
            let end = clause_end(&tokens, i + 2);
            if end == i + 2 || end >= tokens.len() {
                return Err(SqlError::at(
                    tokens[i].span,
                    "computed column without an expression",
                ));
            }
            let expr = sub_expr(&pos, &tokens, i + 2, end, "computed column")?;
            if let Some(name) = &table {
                cut.computed
                    .push((name.clone(), item, w.value.clone(), expr));
            }
            cut_item(&mut pos, &tokens, i, end);
            i = end;
            continue;
        }
        // CREATE TABLE name
        if word_is(t, "CREATE")
            && tokens
                .get(i + 1)
                .is_some_and(|n| word_is(&n.token, "TABLE"))
        {
            if let Some(Token::Word(w)) = tokens.get(i + 2).map(|t| &t.token) {
                table = Some(w.value.clone());
            }
        }
        if table.is_some() && depth == 1 && word_is(t, "WATERMARK") {
            let start = i;
            let for_ok = tokens.get(i + 1).is_some_and(|n| word_is(&n.token, "FOR"));
            let column = match tokens.get(i + 2).map(|t| &t.token) {
                Some(Token::Word(w)) if for_ok => w.value.clone(),
                _ => {
                    return Err(SqlError::at(
                        tokens[i].span,
                        "expected WATERMARK FOR <column> AS <expression>",
                    ));
                }
            };
            if !tokens.get(i + 3).is_some_and(|n| word_is(&n.token, "AS")) {
                return Err(SqlError::at(
                    tokens[i].span,
                    "expected WATERMARK FOR <column> AS <expression>",
                ));
            }
            let expr_start = i + 4;
            let j = clause_end(&tokens, expr_start);
            if j == expr_start || j >= tokens.len() {
                return Err(SqlError::at(
                    tokens[i].span,
                    "WATERMARK clause without an expression",
                ));
            }
            let expr = sub_expr(&pos, &tokens, expr_start, j, "WATERMARK expression")?;
            cut_item(&mut pos, &tokens, start, j);
            if let Some(name) = &table {
                cut.watermarks
                    .push((name.clone(), WatermarkDef { column, expr }));
            }
            i = j;
            continue;
        }
        if table.is_some()
            && word_is(t, "NOT")
            && tokens
                .get(i + 1)
                .is_some_and(|n| word_is(&n.token, "ENFORCED"))
        {
            pos.blank(tokens[i].span.start, tokens[i + 1].span.end);
            i += 2;
            continue;
        }
        // TUMBLE( TABLE x ...  /  SESSION( TABLE x PARTITION BY k, ...
        if word_is(t, "TABLE")
            && i >= 2
            && tokens[i - 1].token == Token::LParen
            && ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
                .iter()
                .any(|f| word_is(&tokens[i - 2].token, f))
        {
            pos.blank(tokens[i].span.start, tokens[i].span.end);
            if tokens
                .get(i + 2)
                .is_some_and(|n| word_is(&n.token, "PARTITION"))
                && tokens.get(i + 3).is_some_and(|n| word_is(&n.token, "BY"))
            {
                let mut j = i + 4;
                let mut d = 0;
                while j < tokens.len() {
                    match tokens[j].token {
                        Token::LParen => d += 1,
                        Token::RParen => d -= 1,
                        Token::Comma if d == 0 => break,
                        _ => {}
                    }
                    j += 1;
                }
                if j < tokens.len() {
                    pos.blank(tokens[i + 2].span.start, tokens[j - 1].span.end);
                }
            }
        }
        i += 1;
    }
    Ok((pos.chars.into_iter().collect(), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DDL: &str = "CREATE TABLE logs (\n  ts TIMESTAMP(3), url STRING, status INT, bytes BIGINT,\n  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND\n) WITH ('connector' = 'kafka', 'topic' = 'log_topic');\n";

    #[test]
    fn create_table_reads_columns_watermark_and_options() {
        let s = parse_script(DDL).expect("parses");
        let t = &s.tables[0];
        assert_eq!(t.name, "logs");
        assert_eq!(
            t.schema.describe(),
            "ts TIMESTAMP(3), url STRING, status INT, bytes BIGINT"
        );
        let wm = t.watermark.as_ref().expect("watermark");
        assert_eq!(wm.column, "ts");
        assert_eq!(wm.expr.to_string(), "ts - INTERVAL '5' SECOND");
        assert_eq!(t.option("topic"), Some("log_topic"));
    }

    #[test]
    fn window_table_functions_parse_after_the_rewrite() {
        let sql = format!(
            "{DDL}INSERT INTO out SELECT window_end, COUNT(*) FROM TABLE(\n  SESSION(TABLE logs PARTITION BY url, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end;"
        );
        let s = parse_script(&sql).expect("parses");
        assert_eq!(s.inserts.len(), 1);
        assert!(
            s.inserts[0]
                .query
                .to_string()
                .contains("SESSION(logs, DESCRIPTOR(ts)")
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse_script("CREATE TABLE t (a INT);\nSELEC 1;").expect_err("bad");
        assert!(err.to_string().starts_with("line 2, column 1:"), "{err}");
        let err = parse_script("CREATE TABLE t (a MONEY);").expect_err("bad");
        assert!(err.to_string().contains("unsupported type MONEY"), "{err}");
        let err = parse_script("DROP TABLE t;").expect_err("bad");
        assert!(
            err.to_string()
                .contains("unsupported statement `DROP TABLE t`"),
            "{err}"
        );
    }

    #[test]
    fn computed_columns_take_their_place_and_type() {
        let s = parse_script(
            "CREATE TABLE t (line STRING, ts AS TO_TIMESTAMP(SPLIT_INDEX(line, '|', 0)), n INT,\n  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'print');",
        )
        .expect("parses");
        let t = &s.tables[0];
        assert_eq!(t.schema.describe(), "line STRING, ts TIMESTAMP(3), n INT");
        assert_eq!(t.physical.describe(), "line STRING, n INT");
        assert_eq!(t.computed[0].position, 1);
        assert!(t.watermark.is_some());
    }

    #[test]
    fn set_statements_are_settings() {
        let s = parse_script(&format!("SET 'table.exec.state.ttl' = '90 min';\n{DDL}"))
            .expect("parses");
        assert_eq!(
            s.settings.state_ttl,
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(s.tables.len(), 1);
        let s = parse_script("SET 'table.exec.state.ttl' = '0';").expect("parses");
        assert_eq!(s.settings.state_ttl, None);
        let err = parse_script("SET 'table.exec.state.tl' = '1 h';").expect_err("typo");
        assert!(
            err.to_string()
                .contains("unknown setting 'table.exec.state.tl'"),
            "{err}"
        );
        let err = parse_script("SET 'table.exec.state.ttl' = 'soon';").expect_err("bad");
        assert!(err.to_string().contains("is not a duration"), "{err}");
        let err = parse_script("SET table.exec.state.ttl = 1;").expect_err("unquoted");
        assert!(err.to_string().contains("SET 'key' = 'value'"), "{err}");
    }

    #[test]
    fn durations_read_flink_units() {
        let ms = |t: &str| parse_duration(t).map(|d| d.as_millis());
        assert_eq!(ms("1500"), Ok(1500));
        assert_eq!(ms("10 s"), Ok(10_000));
        assert_eq!(ms("2min"), Ok(120_000));
        assert_eq!(ms("1 h"), Ok(3_600_000));
        assert_eq!(ms("1 d"), Ok(86_400_000));
        assert!(ms("h").is_err());
        assert!(ms("-1 s").is_err());
    }

    #[test]
    fn primary_keys_not_enforced_are_read() {
        let s = parse_script(
            "CREATE TABLE t (id BIGINT, n BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'print');",
        )
        .expect("parses");
        assert_eq!(s.tables[0].primary_key, vec!["id"]);
    }
}
