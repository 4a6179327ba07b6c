//! Records of identity proofing (issue 8): the evidence behind every change of an account's
//! registration level, staff members, activation letters. Plain data; the `Store` methods that
//! use them are under "Proofing" in `store/mod.rs`.

use crate::assurance::AsLevel;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One identity document presented and checked. Only the masked number is ever stored: the
/// record proves *that* a document was checked, the account holds the (encrypted) ID number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDocument {
    /// `cccd` (chip-based citizen identity card) | `cmnd` (old 9/12-digit card) | `passport`
    /// | `vneid` (level-2 electronic identity shown in the VNeID app).
    pub kind: String,
    pub number_masked: String,
    /// The issuing authority as printed ("Cục Cảnh sát quản lý hành chính về trật tự xã hội").
    pub authority: String,
    /// `YYYY-MM-DD`; `None` for a card without expiry.
    pub expires_on: Option<String>,
}

/// One change of an account's registration level and how it was justified. Immutable: the
/// store only inserts these, written with the change and its audit event in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct EvidenceRecord {
    pub id: Uuid,
    pub account_id: Uuid,
    pub at: i64,
    /// `None` when the account was created with this record.
    pub from_level: Option<AsLevel>,
    pub to_level: AsLevel,
    /// `self_declared` | `in_person` | `lowered` | `development_demo`.
    pub method: String,
    /// `web_form` | `cli` | `counter`.
    pub source: String,
    /// `self` | `operator` | `system` | `staff:<account id>`.
    pub verifier: String,
    pub office: Option<String>,
    pub documents: Vec<EvidenceDocument>,
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Verifies citizens in person and registers or upgrades them to AS-4.
    CounterOfficer,
    /// An officer who may also lower a level or suspend an account.
    Supervisor,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::CounterOfficer => "counter_officer",
            StaffRole::Supervisor => "supervisor",
        }
    }

    pub fn parse(s: &str) -> Option<StaffRole> {
        match s {
            "counter_officer" => Some(StaffRole::CounterOfficer),
            "supervisor" => Some(StaffRole::Supervisor),
            _ => None,
        }
    }
}

/// An account that may use the staff console (`/staff`).
#[derive(Clone, Debug, PartialEq)]
pub struct StaffMember {
    pub account_id: Uuid,
    pub role: StaffRole,
    pub office: Option<String>,
    pub created_at: i64,
}

/// A one-time activation code printed on a letter; only its hash is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationCode {
    pub code_hash: String,
    pub account_id: Uuid,
    /// `staff:<account id>`.
    pub issued_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}
