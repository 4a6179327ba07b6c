//! The architecture rules of STYLE.md, as tests:
//! - `migrations/sqlite` and `migrations/postgres` hold the same file names, and each pair of
//!   files creates the same tables with the same columns (and the same nullability, keys,
//!   uniqueness, references and defaults — types differ by dialect and are not compared);
//! - the pure core (`oidc/`, `policy/`, `assurance/`, `model.rs`) names neither axum nor sqlx; only
//!   `store/` names sqlx; only `http/` (and the few files in `AXUM_ALSO_IN`) name axum.
//!
//! The SQL and Rust "parsing" is deliberately crude (text search); comment lines are skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Migrations.

fn migration_files(backend: &str) -> BTreeSet<String> {
    let dir = root().join("migrations").join(backend);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect()
}

#[test]
fn migrations_have_the_same_file_names() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    assert!(!sqlite.is_empty(), "no migrations in migrations/sqlite");
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "migrations drifted: only in migrations/sqlite: {only_sqlite:?}; only in migrations/postgres: {only_postgres:?}"
    );
}

/// What must agree between the backends about one column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Column {
    not_null: bool,
    primary_key: bool,
    unique: bool,
    references: Option<String>,
    default: Option<String>,
}

type Schema = BTreeMap<String, BTreeMap<String, Column>>;

/// Words that start a table constraint rather than a column definition.
const CONSTRAINT_WORDS: &[&str] = &["CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "EXCLUDE"];

fn strip_sql_comments(sql: &str) -> String {
    sql.lines().map(|line| line.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// The identifier at the start of `s` (unquoted, lower-case) and the rest.
fn identifier(s: &str) -> (String, &str) {
    let s = s.trim_start();
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '`')).unwrap_or(s.len());
    (s[..end].trim_matches(|c| c == '"' || c == '`').to_ascii_lowercase(), &s[end..])
}

/// Splits at commas outside parentheses.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

/// A column definition after its name, e.g. `TEXT NOT NULL UNIQUE REFERENCES clients(id)`.
fn column(definition: &str) -> Column {
    let upper = format!(" {} ", definition.to_ascii_uppercase().split_whitespace().collect::<Vec<_>>().join(" "));
    let after = |word: &str| {
        upper.find(word).map(|at| {
            let rest = upper[at + word.len()..].trim_start();
            rest.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("").to_ascii_lowercase()
        })
    };
    Column {
        not_null: upper.contains(" NOT NULL "),
        primary_key: upper.contains(" PRIMARY KEY "),
        unique: upper.contains(" UNIQUE "),
        references: after(" REFERENCES "),
        default: after(" DEFAULT "),
    }
}

/// Tables and columns created by `CREATE TABLE` (and added by `ALTER TABLE … ADD COLUMN`).
fn schema(sql: &str) -> Schema {
    let sql = strip_sql_comments(sql);
    let mut tables = Schema::new();
    for statement in sql.split(';') {
        let words: Vec<String> = statement.split_whitespace().take(6).map(|w| w.to_ascii_uppercase()).collect();
        if words.len() >= 3 && words[0] == "CREATE" && words[1] == "TABLE" {
            let mut rest = statement.trim_start()["CREATE".len()..].trim_start()["TABLE".len()..].trim_start();
            if rest.to_ascii_uppercase().starts_with("IF NOT EXISTS") {
                rest = &rest["IF NOT EXISTS".len()..];
            }
            let (name, rest) = identifier(rest);
            let open = rest.find('(').unwrap_or_else(|| panic!("CREATE TABLE {name} without a column list"));
            let close = rest.rfind(')').unwrap_or_else(|| panic!("CREATE TABLE {name}: no closing parenthesis"));
            let columns = tables.entry(name).or_default();
            for item in split_top_level(&rest[open + 1..close]) {
                let first = item.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if CONSTRAINT_WORDS.contains(&first.as_str()) {
                    continue;
                }
                let (col, definition) = identifier(item);
                columns.insert(col, column(definition));
            }
        } else if words.len() >= 5 && words[0] == "ALTER" && words[1] == "TABLE" && words[3] == "ADD" {
            let rest = statement.trim_start()["ALTER".len()..].trim_start()["TABLE".len()..].trim_start();
            let (name, rest) = identifier(rest);
            let rest = rest.trim_start()["ADD".len()..].trim_start();
            let rest = if rest.to_ascii_uppercase().starts_with("COLUMN") { &rest["COLUMN".len()..] } else { rest };
            let (col, definition) = identifier(rest);
            tables.entry(name).or_default().insert(col, column(definition));
        }
    }
    tables
}

#[test]
fn the_sql_parser_reads_tables_and_columns() {
    let sql = "-- a comment, with (parens) and CREATE TABLE words\n\
        CREATE TABLE IF NOT EXISTS \"t\" (\n  id UUID PRIMARY KEY,\n  name TEXT NOT NULL UNIQUE, -- (x)\n  \
        n BIGINT NOT NULL DEFAULT 0 CHECK (n BETWEEN 1 AND 4),\n  other UUID REFERENCES u(id) ON DELETE CASCADE,\n  \
        CONSTRAINT t_name UNIQUE (name, n),\n  PRIMARY KEY (id)\n);\n\
        CREATE INDEX t_n ON t(n);\nALTER TABLE t ADD COLUMN note TEXT;";
    let parsed = schema(sql);
    let t = &parsed["t"];
    assert_eq!(t.keys().cloned().collect::<Vec<_>>(), ["id", "n", "name", "note", "other"]);
    assert_eq!(t["id"], Column { primary_key: true, ..Column::default() });
    assert_eq!(t["name"], Column { not_null: true, unique: true, ..Column::default() });
    assert_eq!(t["n"], Column { not_null: true, default: Some("0".into()), ..Column::default() });
    assert_eq!(t["other"], Column { references: Some("u".into()), ..Column::default() });
    assert_eq!(t["note"], Column::default());
    assert_eq!(parsed.len(), 1);
}

#[test]
fn migrations_create_the_same_tables_and_columns() {
    let mut problems = Vec::new();
    let mut parsed_tables = 0;
    let files = migration_files("sqlite");
    for file in files.intersection(&migration_files("postgres")) {
        let read = |backend: &str| {
            let path = root().join("migrations").join(backend).join(file);
            schema(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        };
        let (sqlite, postgres) = (read("sqlite"), read("postgres"));
        let tables: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
        for table in tables {
            let (Some(s), Some(p)) = (sqlite.get(table), postgres.get(table)) else {
                let only = if sqlite.contains_key(table) { "sqlite" } else { "postgres" };
                problems.push(format!("{file}: table {table} only in migrations/{only}"));
                continue;
            };
            let columns: BTreeSet<&String> = s.keys().chain(p.keys()).collect();
            for col in columns {
                match (s.get(col), p.get(col)) {
                    (Some(a), Some(b)) if a != b => {
                        problems.push(format!("{file}: {table}.{col} differs: sqlite {a:?}, postgres {b:?}"))
                    }
                    (Some(_), None) => problems.push(format!("{file}: column {table}.{col} only in migrations/sqlite")),
                    (None, Some(_)) => {
                        problems.push(format!("{file}: column {table}.{col} only in migrations/postgres"))
                    }
                    _ => {}
                }
            }
        }
        parsed_tables += sqlite.len();
    }
    assert!(parsed_tables > 0, "no CREATE TABLE found in migrations/sqlite: is the parser broken?");
    assert!(problems.is_empty(), "the backends' schemas drifted:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Which modules may name which framework.

/// Files outside `src/http/` that may name axum, and why.
const AXUM_ALSO_IN: &[(&str, &str)] = &[("src/cli.rs", "`serve` binds the listener and runs `axum::serve`")];

const AXUM: &[&str] = &["axum::", "use axum", "axum_extra::"];
const SQLX: &[&str] = &["sqlx::", "use sqlx"];
const PURE: &[&str] = &["src/oidc/", "src/policy/", "src/assurance/", "src/model.rs", "src/certs/"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(file relative to the crate root, 1-based line, line)` for every source line under `src/`
/// that names one of `patterns`, comment lines excepted.
fn mentions(patterns: &[&str]) -> Vec<(String, usize, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut hits = Vec::new();
    for path in files {
        let rel = path.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with("//") && patterns.iter().any(|p| code.contains(p)) {
                hits.push((rel.clone(), i + 1, line.trim().to_string()));
            }
        }
    }
    hits
}

fn report(rule: &str, hits: &[&(String, usize, String)]) -> String {
    let lines: Vec<String> = hits.iter().map(|(f, n, l)| format!("  {f}:{n}: {l}")).collect();
    format!("{rule}:\n{}", lines.join("\n"))
}

#[test]
fn the_core_is_pure() {
    assert!(root().join("src/oidc").is_dir() && root().join("src/assurance").is_dir(), "pure modules moved?");
    let all: Vec<_> = AXUM.iter().chain(SQLX).copied().collect();
    let hits = mentions(&all);
    let bad: Vec<_> = hits.iter().filter(|(f, _, _)| PURE.iter().any(|p| f.starts_with(p))).collect();
    assert!(bad.is_empty(), "{}", report("oidc/, policy/, assurance/ and model.rs are pure: no axum, no sqlx", &bad));
}

#[test]
fn only_the_store_names_sqlx() {
    let hits = mentions(SQLX);
    assert!(hits.iter().any(|(f, _, _)| f.starts_with("src/store/")), "the search found no sqlx at all in src/store/");
    let bad: Vec<_> = hits.iter().filter(|(f, _, _)| !f.starts_with("src/store/")).collect();
    assert!(bad.is_empty(), "{}", report("only src/store/ may name sqlx", &bad));
}

#[test]
fn only_http_names_axum() {
    let hits = mentions(AXUM);
    assert!(hits.iter().any(|(f, _, _)| f.starts_with("src/http/")), "the search found no axum at all in src/http/");
    let bad: Vec<_> = hits
        .iter()
        .filter(|(f, _, _)| !f.starts_with("src/http/") && !AXUM_ALSO_IN.iter().any(|(allowed, _)| f == allowed))
        .collect();
    assert!(bad.is_empty(), "{}", report("only src/http/ (and AXUM_ALSO_IN) may name axum", &bad));
}
