//! Records for re-encrypting sealed columns (`xacthuc keys rotate-data-key`, issue 9). The
//! list of sealed columns itself is `service::data_key::SEALED_COLUMNS`; the store only scans
//! and updates the column a [`SealedColumn`] names.

use std::fmt;
use uuid::Uuid;

/// How a column holding a row id or AAD context is typed: a UUID (BLOB in SQLite, `UUID` in
/// PostgreSQL) or text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Uuid,
    Text,
}

/// A value the AAD is made of: a column of the table, or any constant SQL expression over
/// the row (e.g. a scalar sub-query into a parent table), and its type.
#[derive(Clone, Copy, Debug)]
pub struct AadPart {
    pub sql: &'static str,
    pub kind: IdKind,
}

/// A column of sealed values (`crypto::secretbox`): where it is, and how its AAD is made.
#[derive(Clone, Copy, Debug)]
pub struct SealedColumn {
    pub table: &'static str,
    /// The primary key (unique, ordered: the scan pages on it).
    pub id_column: &'static str,
    pub id_kind: IdKind,
    /// The sealed value (`v1.<key id>.<…>`); NULL rows are skipped.
    pub sealed_column: &'static str,
    /// The values the AAD is made of, in the order `aad` receives them.
    pub aad_parts: &'static [AadPart],
    /// The AAD the value was sealed with, from the `aad_parts` values of its row.
    pub aad: fn(&[RowValue]) -> Vec<u8>,
}

impl SealedColumn {
    /// `table.column`, for messages.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.sealed_column)
    }

    /// The table and column names are interpolated into SQL: only plain identifiers are
    /// accepted. (`aad_parts` are SQL written in the code, never input.)
    pub fn is_valid(&self) -> bool {
        [self.table, self.id_column, self.sealed_column]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    }
}

/// A row id or AAD context value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowValue {
    Uuid(Uuid),
    Text(String),
}

impl fmt::Display for RowValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowValue::Uuid(u) => write!(f, "{u}"),
            RowValue::Text(t) => f.write_str(t),
        }
    }
}

/// One sealed value found by `Store::scan_sealed`.
#[derive(Clone, Debug)]
pub struct SealedRow {
    pub id: RowValue,
    /// The values of `SealedColumn::aad_parts`.
    pub aad_parts: Vec<RowValue>,
    pub sealed: String,
}

/// Replace `old` by `new` in row `id`, only if the row still holds `old`.
#[derive(Clone, Debug)]
pub struct Reseal {
    pub id: RowValue,
    pub old: String,
    pub new: String,
}
