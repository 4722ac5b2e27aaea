//! Statements whose shape depends on the data: `IN` lists and multi-row inserts.
//!
//! On SQLite every statement is a round trip to the connection's worker thread, and on
//! PostgreSQL a round trip to the server; the scheduler writes hundreds of devices per
//! transaction, so it reads and inserts them a table at a time rather than a device at a time.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::backend;
use crate::StoreError;

/// A value bound to a placeholder of a statement built here.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Option<Vec<u8>>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Some(v.to_string()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(Some(v.clone()))
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Value {
        Value::Text(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::Int(v)
    }
}
impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Value {
        Value::Bytes(Some(v.clone()))
    }
}
impl From<&Option<Vec<u8>>> for Value {
    fn from(v: &Option<Vec<u8>>) -> Value {
        Value::Bytes(v.clone())
    }
}

/// Binds `values` in order.
pub(super) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    values: impl IntoIterator<Item = Value>,
) -> Query<'q, Any, AnyArguments> {
    for value in values {
        query = match value {
            Value::Text(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
            Value::Bytes(v) => query.bind(v),
        };
    }
    query
}

/// `count` placeholders from number `first`, for an `IN` list or a row of values: `$n` for
/// PostgreSQL, `?` for SQLite. SQLite takes `$n` (and `?n`) for a parameter *name*, looked up
/// among the names before it while parsing and again while binding, which for a statement of
/// a thousand values costs more than running it.
fn placeholders(tx: &Transaction<'_, Any>, first: usize, count: usize) -> String {
    if tx.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME {
        // Anonymous: numbered in order, which is the order the values are bound in.
        return vec!["?"; count].join(", ");
    }
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row statement: well under SQLite's limit of 32,766 bound values for the
/// widest rows written this way (the sixteen columns of a device's row).
const ROWS_PER_INSERT: usize = 200;

/// Inserts `rows` into `table (columns)`, a few statements in all; `what` describes a unique
/// violation. Every row must have one value per column.
pub(super) async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    table_and_columns: &str,
    rows: Vec<Vec<Value>>,
    what: &str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let width = chunk[0].len();
        let tuples = (0..chunk.len())
            .map(|r| format!("({})", placeholders(tx, r * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO {table_and_columns} VALUES {tuples}");
        // Not kept prepared: the text changes with the number of rows, and would push the
        // statements every request uses out of the connection's statement cache.
        let query = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        bind_all(query, chunk.iter().flatten().cloned())
            .execute(&mut **tx)
            .await
            .map_err(|e| super::unique_or_backend(e, what))?;
    }
    Ok(())
}

/// Sets `columns` (and the fixed assignments `also`) of the rows of `table` whose `key` is the
/// first value of each row of `rows`, from the values that follow it: one
/// `UPDATE ... FROM (VALUES ...)` per chunk of rows, which both SQLite and PostgreSQL run.
/// An assignment of `also` may read the values after `columns`'s as `v.column{n}`. With a
/// `guard` column, each row of `rows` ends with one more value, and the table's row is set only
/// if its `guard` equals it. Returns the keys of the rows set.
pub(super) async fn update_from_values(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    key: &str,
    columns: &[&str],
    also: &[&str],
    guard: Option<&str>,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<String>, StoreError> {
    // A `VALUES` list's columns are named column1, column2, ... on both backends.
    let sets = columns
        .iter()
        .enumerate()
        .map(|(i, column)| format!("{column} = v.column{}", i + 2))
        .chain(also.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(Vec::new());
    };
    let guard = guard
        .map(|column| format!(" AND {table}.{column} = v.column{width}"))
        .unwrap_or_default();
    let mut set = Vec::new();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let tuples = (0..chunk.len())
            .map(|r| format!("({})", placeholders(tx, r * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE {table} SET {sets} FROM (VALUES {tuples}) AS v \
             WHERE {table}.{key} = v.column1{guard} RETURNING {table}.{key}"
        );
        let query = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == 1);
        for row in bind_all(query, chunk.iter().flatten().cloned())
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?
        {
            set.push(row.try_get(0).map_err(backend)?);
        }
    }
    Ok(set)
}

/// Runs `select` for all of `ids`, in chunks, and returns every row. `select` is given the
/// list of placeholders to put in its `IN (...)`, and must have no other placeholder: on
/// SQLite they are anonymous, numbered in the order they appear.
pub(super) async fn fetch_in(
    tx: &mut Transaction<'_, Any>,
    select: impl Fn(&str) -> String,
    ids: &[&str],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    fetch_in_after(tx, |_, list| select(list), &[], ids).await
}

/// [`fetch_in`] for a `select` with other placeholders before its `IN (...)`, bound to
/// `leading` in order: `select` is given them first (`$1`... on PostgreSQL, `?` on SQLite,
/// where the statement must use them in that order, before the list).
pub(super) async fn fetch_in_after(
    tx: &mut Transaction<'_, Any>,
    select: impl Fn(&[String], &str) -> String,
    leading: &[Value],
    ids: &[&str],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let before: Vec<String> = (1..=leading.len())
        .map(|n| placeholders(tx, n, 1))
        .collect();
    let mut rows = Vec::new();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let sql = select(&before, &placeholders(tx, leading.len() + 1, chunk.len()));
        let query = sqlx::query(AssertSqlSafe(sql)).persistent(chunk.len() == 1);
        let values = leading
            .iter()
            .cloned()
            .chain(chunk.iter().map(|id| Value::from(*id)));
        rows.extend(
            bind_all(query, values)
                .fetch_all(&mut **tx)
                .await
                .map_err(backend)?,
        );
    }
    Ok(rows)
}
