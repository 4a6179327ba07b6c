//! AS-3 by review (issue 8; docs/proofing.md, "AS-3 by review"): a citizen who declared an
//! identity (AS-2) uploads photos (or scans) of the front and back of their ID card; a staff
//! member compares them with the declaration and approves (the account becomes AS-3, evidence
//! method `review`, verifier `staff:<id>`) or rejects with a reason. The citizen is told either
//! way (a verified e-mail address or phone, and the review page).
//!
//! - **Limits**: each side required, `[proofing.review] min_bytes..=max_bytes` (50 KiB–1 MiB by
//!   default, as the circular recommends).
//! - **Type**: sniffed from the first bytes ([`sniff`]: JPEG `FF D8 FF`, PNG's 8-byte signature,
//!   PDF `%PDF-`); the file name and the declared `Content-Type` are never looked at. A small
//!   magic-byte check rather than a crate: three formats, and the check is the whole contract.
//! - **At rest**: every file sealed with the data key (AES-256-GCM), the AAD binding the file,
//!   its request, side and account ([`file_aad`]): a sealed file copied to another row or
//!   account does not open.
//! - **Staff**: the same console gate as the rest of `/staff` (MFA); never the staff member's
//!   own account nor another staff account (`super::target`); one decision per request
//!   (compare-and-set in `Store::decide_review`).

use super::{DocumentInput, Staff, check_document, one_problem, reason_of, staff_audit, target};
use crate::app::AppState;
use crate::assurance::AsLevel;
use crate::audit::AuditEvent;
use crate::i18n::{Lang, t};
use crate::notify::{Message, Via};
use crate::service::ServiceError;
use crate::service::accounts::{FieldProblem, RegistrationError};
use crate::store::{
    Account, AccountStatus, EvidenceRecord, OutboxMessage, ReviewDecision, ReviewFile, ReviewOutcome, ReviewRequest,
    ReviewStatus, StoreError,
};
use uuid::Uuid;

/// The sides of the card, in the order they are asked for.
pub const SIDES: [&str; 2] = ["front", "back"];

/// How many pending requests the staff list shows at most.
pub const PENDING_LIST_LIMIT: i64 = 200;

/// The content type of `bytes`, from its signature only: `image/jpeg`, `image/png` or
/// `application/pdf`; `None` for anything else (whatever it is called or claims to be).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// The AAD a review file is sealed with.
pub fn file_aad(file_id: Uuid, request_id: Uuid, side: &str, account_id: Uuid) -> String {
    format!("review_file:{file_id}:request:{request_id}:{side}:account:{account_id}")
}

/// One uploaded file as received: only the bytes count.
pub struct Upload {
    /// `front` | `back`.
    pub side: String,
    pub bytes: Vec<u8>,
}

/// Sizes for messages: whole KB (1 KB = 1024 bytes, as file managers show them).
fn kb(n: usize) -> String {
    format!("{}", n / 1024)
}

/// Checks one side; the problem (Vietnamese or English) when it cannot be used.
fn check_file(
    state: &AppState,
    side: &'static str,
    upload: Option<&Upload>,
    lang: Lang,
) -> Result<&'static str, FieldProblem> {
    let cfg = &state.config.proofing.review;
    let key = |k: &str| t(lang, &format!("{k}_{side}"));
    let problem = |message: String| FieldProblem { field: side, message };
    let Some(u) = upload.filter(|u| !u.bytes.is_empty()) else {
        return Err(problem(key("err_review_missing")));
    };
    if u.bytes.len() < cfg.min_bytes {
        return Err(problem(key("err_review_too_small").replace("{min}", &kb(cfg.min_bytes))));
    }
    if u.bytes.len() > cfg.max_bytes {
        return Err(problem(key("err_review_too_large").replace("{max}", &kb(cfg.max_bytes))));
    }
    sniff(&u.bytes).ok_or_else(|| problem(key("err_review_type")))
}

/// Where the account stands for review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Disabled,
    /// No declared identity yet (AS-1).
    NoIdentity,
    /// AS-3 or more already.
    Verified,
    /// Staff accounts are the operator's, never reviewed at the console.
    Staff,
    /// A request is waiting for staff.
    Pending,
    Open,
}

pub async fn standing(
    state: &AppState,
    account: &Account,
    latest: Option<&ReviewRequest>,
) -> Result<Standing, ServiceError> {
    if !state.config.proofing.review.enabled {
        return Ok(Standing::Disabled);
    }
    if account.as_level >= AsLevel::As3 {
        return Ok(Standing::Verified);
    }
    if account.identity.is_none() {
        return Ok(Standing::NoIdentity);
    }
    if state.store.get_staff(account.id).await?.is_some() {
        return Ok(Standing::Staff);
    }
    if latest.is_some_and(|r| r.status == ReviewStatus::Pending) {
        return Ok(Standing::Pending);
    }
    Ok(Standing::Open)
}

fn standing_problem(s: Standing, lang: Lang) -> Option<RegistrationError> {
    let key = match s {
        Standing::Disabled => "err_review_disabled",
        Standing::NoIdentity => "err_review_no_identity",
        Standing::Verified => "err_review_already_verified",
        Standing::Staff => "err_review_staff_account",
        Standing::Pending => "err_review_pending",
        Standing::Open => return None,
    };
    Some(one_problem("request", lang, key))
}

/// The citizen sends the photos: checked, sealed, stored as a pending request (audited
/// `review.submitted`). Nothing is stored when anything is wrong.
pub async fn submit(
    state: &AppState,
    account: &Account,
    uploads: &[Upload],
    lang: Lang,
    now: i64,
) -> Result<ReviewRequest, RegistrationError> {
    let latest = state.store.latest_review_request(account.id).await?;
    if let Some(e) = standing_problem(standing(state, account, latest.as_ref()).await?, lang) {
        return Err(e);
    }
    let Some(identity) = &account.identity else {
        return Err(one_problem("request", lang, "err_review_no_identity"));
    };
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for side in SIDES {
        match check_file(state, side, uploads.iter().find(|u| u.side == side), lang) {
            Ok(content_type) => checked.push((side, content_type)),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(RegistrationError::Invalid(problems));
    }
    let request = ReviewRequest {
        id: Uuid::now_v7(),
        account_id: account.id,
        status: ReviewStatus::Pending,
        created_at: now,
        full_name: identity.full_name.clone(),
        birth_date: identity.birth_date.clone(),
        sex: identity.sex.clone(),
        national_id_masked: identity.national_id_masked.clone(),
        national_id_hash: identity.national_id_hash.clone(),
        decided_by: None,
        decided_at: None,
        reason: None,
    };
    let mut files = Vec::new();
    let mut audit = AuditEvent::new(now, "review.submitted", format!("account:{}", account.id))
        .account(account.id)
        .detail("request", request.id.to_string());
    for (side, content_type) in checked {
        let Some(upload) = uploads.iter().find(|u| u.side == side) else { continue };
        let id = Uuid::now_v7();
        let sealed = state
            .data_key
            .encrypt(&upload.bytes, file_aad(id, request.id, side, account.id).as_bytes())
            .map_err(ServiceError::internal)?;
        let size = i64::try_from(upload.bytes.len()).map_err(ServiceError::internal)?;
        audit = audit.detail(side, format!("{content_type}, {size} bytes"));
        let file =
            ReviewFile { id, request_id: request.id, side: side.into(), content_type: content_type.into(), size };
        files.push((file, sealed));
    }
    match state.store.create_review_request(&request, &files, &audit).await {
        Ok(()) => Ok(request),
        // A concurrent upload by the same citizen won.
        Err(StoreError::Conflict(_)) => Err(one_problem("request", lang, "err_review_pending")),
        Err(e) => Err(e.into()),
    }
}

/// A file of a request, opened for a staff member (the caller checked the console gate):
/// the sniffed content type and the bytes. Each opening is audited (`review.file_viewed`):
/// photos of an ID card are personal data shown to a person.
pub async fn open_file(
    state: &AppState,
    staff: &Staff,
    request_id: Uuid,
    file_id: Uuid,
    now: i64,
) -> Result<Option<(ReviewFile, Vec<u8>)>, ServiceError> {
    let Some((request, _)) = state.store.get_review_request(request_id).await? else {
        return Ok(None);
    };
    let Some((file, sealed)) = state.store.get_review_file(request_id, file_id).await? else {
        return Ok(None);
    };
    let aad = file_aad(file.id, request.id, &file.side, request.account_id);
    let bytes = state.data_key.decrypt(&sealed, aad.as_bytes()).map_err(ServiceError::internal)?;
    let audit = staff_audit(staff, now, "review.file_viewed", request.account_id)
        .detail("review", request.id.to_string())
        .detail("side", &file.side);
    state.store.append_audit(&audit).await?;
    Ok(Some((file, bytes)))
}

/// Loads a request a staff member is about to decide, with its account (never the staff
/// member's own, nor another staff account).
async fn pending_target(
    state: &AppState,
    staff: &Staff,
    request_id: Uuid,
    lang: Lang,
) -> Result<(ReviewRequest, Account), RegistrationError> {
    let Some((request, _)) = state.store.get_review_request(request_id).await? else {
        return Err(one_problem("request", lang, "err_review_not_found"));
    };
    let account = target(state, staff, request.account_id, lang).await?;
    if account.status != AccountStatus::Active {
        return Err(one_problem("account", lang, "err_staff_suspended"));
    }
    if request.status != ReviewStatus::Pending {
        return Err(one_problem("request", lang, "err_review_already_decided"));
    }
    Ok((request, account))
}

fn outcome_problem(outcome: ReviewOutcome, lang: Lang) -> Result<(), RegistrationError> {
    match outcome {
        ReviewOutcome::Decided => Ok(()),
        ReviewOutcome::NotPending => Err(one_problem("request", lang, "err_review_already_decided")),
        ReviewOutcome::AccountChanged => Err(one_problem("request", lang, "err_review_account_changed")),
    }
}

/// Approves: the account becomes AS-3 with evidence `review` (the card as read from the photos:
/// issuing authority and expiry; its number is the declared ID number, masked).
pub async fn approve(
    state: &AppState,
    staff: &Staff,
    request_id: Uuid,
    doc: &DocumentInput,
    lang: Lang,
    now: i64,
) -> Result<Account, RegistrationError> {
    let (request, account) = pending_target(state, staff, request_id, lang).await?;
    if account.as_level >= AsLevel::As3 {
        return Err(one_problem("request", lang, "err_review_level_now"));
    }
    let same_identity = account.identity.as_ref().is_some_and(|i| i.national_id_hash == request.national_id_hash);
    if !same_identity {
        return Err(one_problem("request", lang, "err_review_account_changed"));
    }
    // The card reviewed is the citizen identity card bearing the declared number (the reviewer
    // compared them); only its masked form is kept, as for every document.
    let national_id = crate::service::accounts::decrypt_national_id(state, &account)
        .ok_or_else(|| ServiceError::Internal("the declared ID number does not open".into()))?;
    let doc = DocumentInput { kind: "cccd".into(), number: String::new(), ..doc.clone() };
    let mut problems = Vec::new();
    let Some(document) = check_document(&doc, &national_id, lang, now, &mut problems) else {
        return Err(RegistrationError::Invalid(problems));
    };
    let evidence = EvidenceRecord {
        office: staff.member.office.clone(),
        documents: vec![document.clone()],
        ..super::evidence(account.id, now, Some(account.as_level), AsLevel::As3, "review", "web_upload", &staff.actor())
    };
    let decision = ReviewDecision {
        request_id: request.id,
        status: ReviewStatus::Approved,
        decided_by: staff.actor(),
        decided_at: now,
        reason: None,
    };
    let audit = staff_audit(staff, now, "account.level_raised", account.id)
        .detail("from", account.as_level.number())
        .detail("to", 3)
        .detail("method", "review")
        .detail("review", request.id.to_string())
        .detail("document", &document.kind)
        .detail("evidence", evidence.id.to_string());
    outcome_problem(state.store.decide_review(&decision, Some(&evidence), &audit).await?, lang)?;
    tell_citizen(state, &account, true, None, now).await;
    Ok(account)
}

/// Rejects with a mandatory reason (5–500 characters), shown to the citizen; the level stays.
pub async fn reject(
    state: &AppState,
    staff: &Staff,
    request_id: Uuid,
    reason: &str,
    lang: Lang,
    now: i64,
) -> Result<Account, RegistrationError> {
    let (request, account) = pending_target(state, staff, request_id, lang).await?;
    let reason = reason_of(reason, lang)?;
    let decision = ReviewDecision {
        request_id: request.id,
        status: ReviewStatus::Rejected,
        decided_by: staff.actor(),
        decided_at: now,
        reason: Some(reason.clone()),
    };
    let audit = staff_audit(staff, now, "review.rejected", account.id)
        .detail("review", request.id.to_string())
        .detail("reason", &reason);
    outcome_problem(state.store.decide_review(&decision, None, &audit).await?, lang)?;
    tell_citizen(state, &account, false, Some(&reason), now).await;
    Ok(account)
}

/// Tells the citizen the outcome on each verified contact (in Vietnamese, the default language;
/// the review page shows it in either). Best effort: the decision stands if a message fails.
async fn tell_citizen(state: &AppState, account: &Account, approved: bool, reason: Option<&str>, now: i64) {
    let mut messages = Vec::new();
    let (subject, body) = if approved {
        (
            "Hồ sơ xác minh danh tính đã được duyệt",
            "Ảnh giấy tờ bạn gửi đã được cán bộ duyệt. Tài khoản của bạn nay ở mức độ đảm bảo AS-3.".to_string(),
        )
    } else {
        (
            "Hồ sơ xác minh danh tính chưa được duyệt",
            format!(
                "Ảnh giấy tờ bạn gửi chưa được duyệt. Lý do: {}\nBạn có thể gửi lại tại trang tài khoản, mục Xác minh danh tính.",
                reason.unwrap_or_default()
            ),
        )
    };
    if let (Some(email), Some(_)) = (&account.email, account.email_verified_at) {
        messages.push(Message::email(email.clone(), subject, body.clone()));
    }
    if let (Some(phone), Some(_)) = (&account.phone, account.phone_verified_at) {
        // Without diacritics an SMS segment holds 160 characters instead of 70.
        let text = if approved {
            "xacthuc: Ho so xac minh danh tinh cua ban da duoc duyet. Tai khoan nay o muc AS-3."
        } else {
            "xacthuc: Ho so xac minh danh tinh cua ban chua duoc duyet. Xem ly do tai trang tai khoan."
        };
        messages.push(Message::sms(phone.clone(), text));
    }
    for m in messages {
        match state.notifier.send(&m).await {
            Ok(receipt) if receipt.via == Via::Outbox => {
                let kept = OutboxMessage {
                    id: Uuid::now_v7(),
                    channel: if m.channel == crate::notify::Channel::Sms { "sms" } else { "email" }.into(),
                    recipient: m.to.clone(),
                    subject: m.subject.clone(),
                    body: m.text.clone(),
                    created_at: now,
                };
                if let Err(e) = state.store.push_outbox(&kept).await {
                    tracing::warn!(account = %account.id, error = %e, "review outcome not kept in the outbox");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(account = %account.id, error = %e, "review outcome not delivered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(sniff(b"just text, named front.jpg"), None);
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
        assert_eq!(sniff(&[]), None);
    }
}
