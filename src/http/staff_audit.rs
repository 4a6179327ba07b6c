//! `GET /staff/citizens/{id}/audit[?before=<seq>]` (issue 9): staff browse one account's audit
//! events, newest first, 50 a page. Times in Vietnam time (`dd/mm/yyyy HH:MM`), event kinds as
//! human labels (`audit_kind_*` messages; the raw kind when there is none), actors by name
//! (a staff member's user name), details with personal data masked
//! (`service::proofing::counter::masked_details`). Each view is audited (`staff.audit_viewed`).

use super::ctx::WebCtx;
use super::oidc::service_failure;
use super::staff::{no_store, path_account, staff_or_refuse};
use super::web::dmy_time;
use crate::app::{AppState, now};
use crate::audit::StoredAuditEvent;
use crate::i18n::{self, Lang};
use crate::service::proofing::counter;
use crate::store::Account;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    /// Show events older than this sequence number (the next page's cursor).
    #[serde(default)]
    before: Option<String>,
}

/// The event kind in words (`audit_kind_account_created` for `account.created`), or the kind.
pub fn kind_label(lang: Lang, kind: &str) -> String {
    let key = format!("audit_kind_{}", kind.replace(['.', '-'], "_"));
    i18n::bundle(lang).get(&key).cloned().unwrap_or_else(|| kind.to_string())
}

/// Who acted, in words: the account's user name (a staff member's marked as staff, the
/// citizen's own as such), the operator, the system, a portal, or an anonymous attempt.
async fn actor_label(
    state: &AppState,
    lang: Lang,
    actor: &str,
    citizen: &Account,
    names: &mut HashMap<Uuid, Option<String>>,
) -> String {
    let t = |k: &str| i18n::t(lang, k);
    let (prefix, rest) = actor.split_once(':').unwrap_or((actor, ""));
    match (prefix, Uuid::parse_str(rest).ok()) {
        ("account", Some(id)) if id == citizen.id => format!("{} ({})", citizen.username, t("audit_actor_citizen")),
        ("staff" | "account", Some(id)) => {
            if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
                slot.insert(state.store.get_account(id).await.ok().flatten().map(|a| a.username));
            }
            let name = names.get(&id).cloned().flatten().unwrap_or_else(|| rest.to_string());
            if prefix == "staff" { format!("{name} ({})", t("audit_actor_staff")) } else { name }
        }
        ("client", _) if !rest.is_empty() => format!("{} {rest}", t("audit_actor_client")),
        ("operator", _) => t("audit_actor_operator"),
        ("system", _) => t("audit_actor_system"),
        ("anonymous", _) => t("audit_actor_anonymous"),
        _ => actor.to_string(),
    }
}

async fn rows(state: &AppState, lang: Lang, citizen: &Account, events: &[StoredAuditEvent]) -> Vec<Value> {
    let mut names = HashMap::new();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let details: Vec<Value> = counter::masked_details(&e.event.details)
            .into_iter()
            .map(|(key, value)| context! { key => key, value => value })
            .collect();
        out.push(context! {
            seq => e.seq,
            when => dmy_time(e.event.at),
            kind => e.event.kind.clone(),
            label => kind_label(lang, &e.event.kind),
            actor => actor_label(state, lang, &e.event.actor, citizen, &mut names).await,
            client => e.event.client_id.clone(),
            details => details,
        });
    }
    out
}

pub async fn audit_get(
    State(state): State<AppState>,
    ctx: WebCtx,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (staff, ctx) = match staff_or_refuse(&state, ctx).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (account, ctx) = match path_account(&state, ctx, &id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // A cursor that is not a positive number shows the first page.
    let before = q.before.as_deref().and_then(|b| b.trim().parse::<i64>().ok()).filter(|b| *b > 0);
    let (events, older) = match counter::browse_audit(&state, &staff, &account, before, now()).await {
        Ok(v) => v,
        Err(e) => return service_failure(ctx, e),
    };
    let rows = rows(&state, ctx.lang, &account, &events).await;
    no_store(ctx.page(
        StatusCode::OK,
        "staff_audit.html",
        context! {
            citizen => context! {
                id => account.id.to_string(),
                username => account.username.clone(),
                full_name => account.identity.as_ref().map(|i| i.full_name.clone()),
                national_id => account.identity.as_ref().map(|i| i.national_id_masked.clone()),
            },
            rows => rows,
            older => older,
            first_page => before.is_none(),
            per_page => counter::AUDIT_PAGE,
        },
    ))
}
