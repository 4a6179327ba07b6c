//! Records of AS-3 verification by review (issue 8, `migrations/*/0006_review.sql`): a
//! citizen's request with the photos of their ID card, decided by a staff member. Plain data;
//! the `Store` methods that use them are under "Review" in `store/mod.rs`.

use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewStatus {
    Pending,
    Approved,
    Rejected,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<ReviewStatus> {
        match s {
            "pending" => Some(ReviewStatus::Pending),
            "approved" => Some(ReviewStatus::Approved),
            "rejected" => Some(ReviewStatus::Rejected),
            _ => None,
        }
    }
}

/// A request for review, with a snapshot of the identity declared when it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewRequest {
    pub id: Uuid,
    pub account_id: Uuid,
    pub status: ReviewStatus,
    pub created_at: i64,
    pub full_name: String,
    pub birth_date: String,
    pub sex: String,
    pub national_id_masked: String,
    /// The keyed hash of the declared ID number: approval requires the account still to hold it.
    pub national_id_hash: String,
    /// `staff:<account id>`.
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    /// Mandatory on rejection.
    pub reason: Option<String>,
}

/// One uploaded file's description (its sealed content is read separately).
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewFile {
    pub id: Uuid,
    pub request_id: Uuid,
    /// `front` | `back`.
    pub side: String,
    /// Sniffed from the content: `image/jpeg` | `image/png` | `application/pdf`.
    pub content_type: String,
    pub size: i64,
}

/// A staff member's decision on a pending request.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewDecision {
    pub request_id: Uuid,
    /// `Approved` or `Rejected`.
    pub status: ReviewStatus,
    /// `staff:<account id>`.
    pub decided_by: String,
    pub decided_at: i64,
    pub reason: Option<String>,
}

/// What `Store::decide_review` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// The decision (and, for an approval, the new level and its evidence) was written.
    Decided,
    /// The request is unknown or no longer pending (another staff member decided it first).
    NotPending,
    /// Approval only: the account's level or declared ID number changed since; nothing written.
    AccountChanged,
}
