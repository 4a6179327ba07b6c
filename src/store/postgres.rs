//! PostgreSQL store: for several stateless instances sharing one database. Transactions run
//! at READ COMMITTED; the single `audit_head` row, updated first in every audited
//! transaction, serialises appends to the audit chain (a row lock held until commit).

use super::rows::*;
use super::webauthn_rows::*;
use super::*;
use crate::audit::chain_prefix;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Transaction};
use std::time::Duration;

mod datakey;
mod hardening;
mod proofing;
mod review;
mod staff_audit;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Pooled connections idle longer than this are checked with a round trip before use.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);

impl PgStore {
    /// `url` is `postgres://user@host:port/database`.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        // Every query is a persistent prepared statement, cached per connection: room for all
        // of the store's (about 140; sqlx's default of 100 would evict and re-prepare).
        let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)?
            .statement_cache_capacity(super::sqlite::STATEMENT_CACHE);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // A connection idle for a while is checked before use (the server may have restarted
            // meanwhile; a dead one is dropped and another taken); one just handed back by
            // another request is not (sqlx's check on every acquire is a round trip: three per
            // sign-in).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_CHECK_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn write(&self) -> StoreResult<Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// Appends the audit event `$1`…`$7` to the hash chain in one statement: the head row is locked
/// (appends take turns on it), the next link is computed by the server — `sha256` over the same
/// body as [`chain_hash`]: the prefix `$7` ([`chain_prefix`]), the previous hash, [`CHAIN_SEQ`],
/// the sequence number and `}` — and the head moved to it. A caller adds its own writes as
/// further common table expressions (`$8` on). Under READ COMMITTED the locking read waits for a
/// concurrent append to commit and then reads the head it left.
///
/// [`chain_hash`]: crate::audit::chain_hash
/// [`chain_prefix`]: crate::audit::chain_prefix
/// [`CHAIN_SEQ`]: crate::audit::CHAIN_SEQ
macro_rules! insert_event_sql {
    ($($more:literal)?) => {
        concat!(
            "WITH head AS MATERIALIZED (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE), \
             link AS MATERIALIZED (SELECT seq + 1 AS seq, hash AS prev, \
             encode(sha256(convert_to($7 || hash || '\",\"seq\":' || (seq + 1) || '}', 'UTF8')), 'hex') AS hash \
             FROM head), \
             moved AS (UPDATE audit_head SET seq = link.seq, hash = link.hash FROM link WHERE audit_head.id = 1), \
             event AS (INSERT INTO audit_events (seq, at, kind, actor, account_id, client_id, details, prev_hash, \
             hash) SELECT link.seq, $1, $2, $3, $4, $5, $6::jsonb, link.prev, link.hash FROM link)",
            $(", ", $more,)?
            " SELECT seq FROM link"
        )
    };
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds `$1`…`$7` of [`insert_event_sql`].
fn bind_event<'q>(query: PgQuery<'q>, event: &AuditEvent) -> StoreResult<PgQuery<'q>> {
    Ok(query
        .bind(event.at)
        .bind(event.kind.clone())
        .bind(event.actor.clone())
        .bind(event.account_id)
        .bind(event.client_id.clone())
        .bind(json_text(&event.details)?)
        .bind(chain_prefix(event)))
}

/// Appends `event` to the hash chain inside the caller's transaction (first, so that every
/// audited write takes the head before its other rows).
async fn append(conn: &mut PgConnection, event: &AuditEvent) -> StoreResult<()> {
    bind_event(sqlx::query(insert_event_sql!()), event)?.execute(conn).await?;
    Ok(())
}

/// Queues back-channel logout tokens inside the caller's transaction.
async fn insert_deliveries(conn: &mut PgConnection, deliveries: &[LogoutDelivery]) -> StoreResult<()> {
    for d in deliveries {
        sqlx::query(
            "INSERT INTO logout_deliveries (id, client_id, uri, token, attempts, next_attempt_at, created_at, \
             delivered_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(d.id)
        .bind(&d.client_id)
        .bind(&d.uri)
        .bind(&d.token)
        .bind(d.attempts)
        .bind(d.next_attempt_at)
        .bind(d.created_at)
        .bind(d.delivered_at)
        .bind(&d.last_error)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The grant `id` (which a code or token points at, so it exists).
async fn grant_by_id<'e>(
    conn: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    id: Uuid,
) -> StoreResult<GrantRecord> {
    sqlx::query_as::<_, GrantRow>(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
        .bind(id)
        .fetch_one(conn)
        .await?
        .try_into()
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_account(&self, a: &Account, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let id = a.identity.as_ref();
        sqlx::query(concat!(
            "INSERT INTO accounts (",
            account_columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ))
        .bind(a.id)
        .bind(&a.username)
        .bind(&a.password_hash)
        .bind(i64::from(a.as_level.number()))
        .bind(&a.email)
        .bind(&a.phone)
        .bind(a.email_verified_at)
        .bind(a.phone_verified_at)
        .bind(id.map(|i| &i.full_name))
        .bind(id.map(|i| &i.birth_date))
        .bind(id.map(|i| &i.sex))
        .bind(id.map(|i| &i.national_id_enc))
        .bind(id.map(|i| &i.national_id_hash))
        .bind(id.map(|i| &i.national_id_masked))
        .bind(a.status.as_str())
        .bind(a.always_second_factor)
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_account(&self, id: Uuid) -> StoreResult<Option<Account>> {
        sqlx::query_as::<_, AccountRow>(concat!("SELECT ", account_columns!(), " FROM accounts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(Account::try_from)
            .transpose()
    }

    async fn find_account_by_username(&self, username: &str) -> StoreResult<Option<Account>> {
        sqlx::query_as::<_, AccountRow>(concat!("SELECT ", account_columns!(), " FROM accounts WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .map(Account::try_from)
            .transpose()
    }

    async fn find_account_by_national_id_hash(&self, hash: &str) -> StoreResult<Option<Account>> {
        sqlx::query_as::<_, AccountRow>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE national_id_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?
        .map(Account::try_from)
        .transpose()
    }

    async fn update_identity(
        &self,
        id: Uuid,
        identity: &IdentityData,
        as_level: AsLevel,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query(
            "UPDATE accounts SET full_name = $1, birth_date = $2, sex = $3, national_id_enc = $4, \
             national_id_hash = $5, national_id_masked = $6, as_level = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(&identity.full_name)
        .bind(&identity.birth_date)
        .bind(&identity.sex)
        .bind(&identity.national_id_enc)
        .bind(&identity.national_id_hash)
        .bind(&identity.national_id_masked)
        .bind(i64::from(as_level.number()))
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_password_hash(&self, id: Uuid, hash: &str, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_client(&self, c: &ClientRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query(
            "INSERT INTO clients (id, name, kind, secret_hash, redirect_uris, id_token_alg, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(client_kind_str(&c.kind))
        .bind(&c.secret_hash)
        .bind(json_text(&c.redirect_uris)?)
        .bind(&c.id_token_alg)
        .bind(json_text(&c.settings)?)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match conflict_from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(Conflict::ClientId),
            other => other,
        })?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_client(&self, id: &str) -> StoreResult<Option<ClientRecord>> {
        sqlx::query_as::<_, ClientRow>(concat!("SELECT ", client_columns!(), " FROM clients WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(ClientRecord::try_from)
            .transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        sqlx::query_as::<_, ClientRow>(concat!("SELECT ", client_columns!(), " FROM clients ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ClientRecord::try_from)
            .collect()
    }

    async fn create_signing_key(&self, k: &SigningKeyRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key_enc, created_at, activates_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_key_enc)
        .bind(k.created_at)
        .bind(k.activates_at)
        .bind(k.retired_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        Ok(sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, alg, private_key_enc, created_at, activates_at, retired_at FROM signing_keys \
             ORDER BY created_at, activates_at, kid",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(SigningKeyRecord::from)
        .collect())
    }

    async fn create_session(&self, s: &SessionRecord, audit: &AuditEvent) -> StoreResult<()> {
        // The event, the chain head and the session in one statement, its own transaction:
        // one round trip for every sign-in.
        let query = sqlx::query(insert_event_sql!(
            "session AS (INSERT INTO sessions (id, token_hash, account_id, factors, created_at, expires_at) \
             VALUES ($8, $9, $10, $11, $12, $13))"
        ));
        bind_event(query, audit)?
            .bind(s.id)
            .bind(&s.token_hash)
            .bind(s.account_id)
            .bind(json_text(&s.factors)?)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &str, now: i64) -> StoreResult<Option<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT id, token_hash, account_id, factors, created_at, expires_at FROM sessions \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(SessionRecord::try_from)
        .transpose()
    }

    async fn delete_session(
        &self,
        token_hash: &str,
        at: i64,
        audit: &AuditEvent,
        deliveries: &[LogoutDelivery],
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // The audit head first, as in every audited write: taking it after the grant rows
        // deadlocks against a concurrent `revoke_grant` of one of them. When there is no
        // session, dropping the transaction rolls the append back.
        append(&mut tx, audit).await?;
        let id: Option<Uuid> = sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = $1 RETURNING id")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Ok(false);
        };
        sqlx::query("UPDATE grants SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_pending_authorization(&self, p: &PendingAuthorization) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO pending_authorizations (id_hash, request_json, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&p.id_hash)
        .bind(&p.request_json)
        .bind(p.created_at)
        .bind(p.expires_at)
        .execute(&mut *tx)
        .await?;
        // Expired requests are garbage; dropping them here keeps the table small without a job.
        sqlx::query("DELETE FROM pending_authorizations WHERE expires_at <= $1")
            .bind(p.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_pending_authorization(&self, id_hash: &str, now: i64) -> StoreResult<Option<PendingAuthorization>> {
        Ok(sqlx::query_as::<_, PendingRow>(
            "SELECT id_hash, request_json, created_at, expires_at FROM pending_authorizations \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(PendingAuthorization::from))
    }

    async fn delete_pending_authorization(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM pending_authorizations WHERE id_hash = $1").bind(id_hash).execute(&self.pool).await?;
        Ok(())
    }

    async fn approve_pending_authorization(
        &self,
        id_hash: &str,
        request_json: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let updated =
            sqlx::query("UPDATE pending_authorizations SET request_json = $1 WHERE id_hash = $2 AND expires_at > $3")
                .bind(request_json)
                .bind(id_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated != 1 {
            return Ok(false);
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_grant_with_code(&self, g: &GrantRecord, c: &AuthCodeRecord) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(concat!("INSERT INTO grants (", grant_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(g.id)
            .bind(&g.client_id)
            .bind(g.account_id)
            .bind(g.session_id)
            .bind(&g.scope)
            .bind(g.auth.as_ref().map(json_text).transpose()?)
            .bind(g.created_at)
            .bind(g.expires_at)
            .bind(g.revoked_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_id, data, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.code_hash)
        .bind(c.grant_id)
        .bind(json_text(&c.data)?)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.used_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn consume_auth_code(&self, code_hash: &str, now: i64) -> StoreResult<ConsumedCode> {
        let mut tx = self.write().await?;
        let fresh = sqlx::query("UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL")
            .bind(now)
            .bind(code_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        let code = sqlx::query_as::<_, CodeRow>(
            "SELECT code_hash, grant_id, data, created_at, expires_at, used_at FROM auth_codes WHERE code_hash = $1",
        )
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(code) = code else {
            return Ok(ConsumedCode::NotFound);
        };
        let code = AuthCodeRecord::try_from(code)?;
        let grant = grant_by_id(&mut *tx, code.grant_id).await?;
        tx.commit().await?;
        Ok(if fresh { ConsumedCode::Fresh(code, grant) } else { ConsumedCode::AlreadyUsed(code, grant) })
    }

    async fn create_access_token(&self, t: &AccessTokenRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO access_tokens (token_hash, grant_id, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.token_hash)
        .bind(t.grant_id)
        .bind(&t.scope)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_access_token(&self, token_hash: &str) -> StoreResult<Option<(AccessTokenRecord, GrantRecord)>> {
        // One round trip: this runs on every userinfo, introspection and revocation request.
        sqlx::query_as::<_, AccessTokenWithGrant>(concat!(
            "SELECT t.token_hash AS t_token_hash, t.grant_id AS t_grant_id, t.scope AS t_scope, \
             t.created_at AS t_created_at, t.expires_at AS t_expires_at, ",
            grant_columns_g!(),
            " FROM access_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .map(<(AccessTokenRecord, GrantRecord)>::try_from)
        .transpose()
    }

    async fn delete_access_token(&self, token_hash: &str, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query("DELETE FROM access_tokens WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_grant(&self, grant_id: Uuid, at: i64, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_client(&self, c: &ClientRecord, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query(
            "UPDATE clients SET name = $1, kind = $2, secret_hash = $3, redirect_uris = $4, id_token_alg = $5, \
             settings = $6 WHERE id = $7",
        )
        .bind(&c.name)
        .bind(client_kind_str(&c.kind))
        .bind(&c.secret_hash)
        .bind(json_text(&c.redirect_uris)?)
        .bind(&c.id_token_alg)
        .bind(json_text(&c.settings)?)
        .bind(&c.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_client(&self, id: &str, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        // Foreign keys cascade to grants, codes, tokens, pushed requests and deliveries.
        let n = sqlx::query("DELETE FROM clients WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retire_signing_key(&self, kid: &str, at: i64, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query("UPDATE signing_keys SET retired_at = COALESCE(retired_at, $1) WHERE kid = $2")
            .bind(at)
            .bind(kid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_session_grants(&self, session_id: Uuid) -> StoreResult<Vec<GrantRecord>> {
        sqlx::query_as::<_, GrantRow>(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE session_id = $1 AND revoked_at IS NULL ORDER BY created_at"
        ))
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(GrantRecord::try_from)
        .collect()
    }

    async fn create_grant(&self, g: &GrantRecord) -> StoreResult<()> {
        sqlx::query(concat!("INSERT INTO grants (", grant_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(g.id)
            .bind(&g.client_id)
            .bind(g.account_id)
            .bind(g.session_id)
            .bind(&g.scope)
            .bind(g.auth.as_ref().map(json_text).transpose()?)
            .bind(g.created_at)
            .bind(g.expires_at)
            .bind(g.revoked_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_grant(&self, id: Uuid) -> StoreResult<Option<GrantRecord>> {
        sqlx::query_as::<_, GrantRow>(concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(GrantRecord::try_from)
            .transpose()
    }

    async fn create_refresh_token(&self, t: &RefreshTokenRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.token_hash)
        .bind(t.grant_id)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.used_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn consume_refresh_token(&self, token_hash: &str, now: i64) -> StoreResult<ConsumedRefresh> {
        let mut tx = self.write().await?;
        let fresh = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
            .bind(now)
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        let Some(token) = sqlx::query_as::<_, RefreshRow>(
            "SELECT token_hash, grant_id, created_at, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(ConsumedRefresh::NotFound);
        };
        let token = RefreshTokenRecord::from(token);
        let grant = grant_by_id(&mut *tx, token.grant_id).await?;
        tx.commit().await?;
        Ok(if fresh { ConsumedRefresh::Fresh(token, grant) } else { ConsumedRefresh::AlreadyUsed(token, grant) })
    }

    async fn find_refresh_token(&self, token_hash: &str) -> StoreResult<Option<(RefreshTokenRecord, GrantRecord)>> {
        sqlx::query_as::<_, RefreshWithGrant>(concat!(
            "SELECT t.token_hash AS t_token_hash, t.grant_id AS t_grant_id, t.created_at AS t_created_at, \
             t.expires_at AS t_expires_at, t.used_at AS t_used_at, ",
            grant_columns_g!(),
            " FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id WHERE t.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .map(<(RefreshTokenRecord, GrantRecord)>::try_from)
        .transpose()
    }

    async fn record_client_assertion(&self, client_id: &str, jti: &str, expires_at: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn create_pushed_request(&self, r: &PushedRequest) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO pushed_requests (uri_hash, client_id, request_json, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.uri_hash)
        .bind(&r.client_id)
        .bind(&r.request_json)
        .bind(r.created_at)
        .bind(r.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_pushed_request(
        &self,
        uri_hash: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<PushedRequest>> {
        Ok(sqlx::query_as::<_, PushedRow>(
            "DELETE FROM pushed_requests WHERE uri_hash = $1 AND client_id = $2 AND expires_at > $3 \
             RETURNING uri_hash, client_id, request_json, created_at, expires_at",
        )
        .bind(uri_hash)
        .bind(client_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(PushedRequest::from))
    }

    async fn create_logout_deliveries(&self, deliveries: &[LogoutDelivery]) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_logout_deliveries(&self, now: i64, limit: i64) -> StoreResult<Vec<LogoutDelivery>> {
        Ok(sqlx::query_as::<_, DeliveryRow>(
            "SELECT id, client_id, uri, token, attempts, next_attempt_at, created_at, delivered_at, last_error \
             FROM logout_deliveries WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(LogoutDelivery::from)
        .collect())
    }

    async fn claim_logout_delivery(&self, id: Uuid, now: i64, until: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE logout_deliveries SET next_attempt_at = $1 \
             WHERE id = $2 AND delivered_at IS NULL AND next_attempt_at <= $3",
        )
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn record_logout_attempt(
        &self,
        id: Uuid,
        delivered_at: Option<i64>,
        error: Option<&str>,
        next_attempt_at: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if let Some(a) = audit {
            append(&mut tx, a).await?;
        }
        sqlx::query(
            "UPDATE logout_deliveries SET attempts = attempts + 1, delivered_at = $1, last_error = $2, \
             next_attempt_at = $3 WHERE id = $4 AND delivered_at IS NULL",
        )
        .bind(delivered_at)
        .bind(error)
        .bind(next_attempt_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_always_second_factor(
        &self,
        account_id: Uuid,
        on: bool,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query("UPDATE accounts SET always_second_factor = $1, updated_at = $2 WHERE id = $3")
            .bind(on)
            .bind(at)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_totp(&self, t: &TotpCredential) -> StoreResult<()> {
        sqlx::query(concat!(
            "INSERT INTO totp_credentials (",
            totp_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(t.id)
        .bind(t.account_id)
        .bind(&t.name)
        .bind(&t.secret_enc)
        .bind(t.last_step)
        .bind(t.created_at)
        .bind(t.confirmed_at)
        .bind(t.last_used_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn confirm_totp(
        &self,
        id: Uuid,
        account_id: Uuid,
        step: i64,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // The audit head first; dropping the transaction rolls the append back on `false`.
        append(&mut tx, audit).await?;
        let n = sqlx::query(
            "UPDATE totp_credentials SET confirmed_at = $1, last_step = $2, last_used_at = $1 \
             WHERE id = $3 AND account_id = $4 AND confirmed_at IS NULL",
        )
        .bind(at)
        .bind(step)
        .bind(id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_totp(&self, account_id: Uuid) -> StoreResult<Vec<TotpCredential>> {
        Ok(sqlx::query_as::<_, TotpRow>(concat!(
            "SELECT ",
            totp_columns!(),
            " FROM totp_credentials WHERE account_id = $1 ORDER BY created_at, id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TotpCredential::from)
        .collect())
    }

    async fn delete_totp(&self, id: Uuid, account_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query("DELETE FROM totp_credentials WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, id: Uuid, step: i64, at: i64) -> StoreResult<bool> {
        // One statement: the row lock (PostgreSQL re-checks the condition after waiting for it)
        // or the database write lock (SQLite) lets exactly one caller advance `last_step`.
        let n = sqlx::query(
            "UPDATE totp_credentials SET last_step = $1, last_used_at = $2 \
             WHERE id = $3 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn replace_recovery_codes(
        &self,
        account_id: Uuid,
        hashes: &[String],
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1").bind(account_id).execute(&mut *tx).await?;
        for hash in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (account_id, code_hash, created_at, used_at) VALUES ($1, $2, $3, NULL)",
            )
            .bind(account_id)
            .bind(hash)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(conflict_from)?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        account_id: Uuid,
        code_hash: &str,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.write().await?;
        // The audit head first (it also serialises concurrent spenders); dropping the
        // transaction rolls the append back when there is no such unused code.
        append(&mut tx, audit).await?;
        let n = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(at)
        .bind(account_id)
        .bind(code_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(Some(left))
    }

    async fn count_recovery_codes(&self, account_id: Uuid) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn create_otp_challenge(&self, c: &OtpChallenge, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query(concat!(
            "INSERT INTO otp_challenges (",
            otp_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(c.id)
        .bind(c.account_id)
        .bind(&c.purpose)
        .bind(&c.channel)
        .bind(&c.destination)
        .bind(&c.code_hash)
        .bind(c.attempts)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.consumed_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_otp_challenge(&self, account_id: Uuid, purpose: &str) -> StoreResult<Option<OtpChallenge>> {
        Ok(sqlx::query_as::<_, OtpRow>(concat!(
            "SELECT ",
            otp_columns!(),
            " FROM otp_challenges WHERE account_id = $1 AND purpose = $2 ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(account_id)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await?
        .map(OtpChallenge::from))
    }

    async fn count_otp_challenges_since(&self, account_id: Uuid, since: i64) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM otp_challenges WHERE account_id = $1 AND created_at >= $2")
            .bind(account_id)
            .bind(since)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn record_otp_attempt(&self, id: Uuid, now: i64) -> StoreResult<Option<i64>> {
        // One statement: the row lock serialises increments, and PostgreSQL re-checks the
        // condition after waiting for it, so none is lost and none lands on a consumed challenge.
        Ok(sqlx::query_scalar(
            "UPDATE otp_challenges SET attempts = attempts + 1 \
             WHERE id = $1 AND consumed_at IS NULL AND expires_at > $2 RETURNING attempts",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn consume_otp_challenge(&self, id: Uuid, now: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE otp_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn mark_contact_verified(
        &self,
        account_id: Uuid,
        channel: &str,
        destination: &str,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let sql = match channel {
            "email" => "UPDATE accounts SET email_verified_at = $1, updated_at = $1 WHERE id = $2 AND email = $3",
            "sms" => "UPDATE accounts SET phone_verified_at = $1, updated_at = $1 WHERE id = $2 AND phone = $3",
            _ => return Ok(false),
        };
        let mut tx = self.write().await?;
        // The audit head first; dropping the transaction rolls the append back on `false`.
        append(&mut tx, audit).await?;
        let n = sqlx::query(sql).bind(at).bind(account_id).bind(destination).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn add_session_factor(
        &self,
        token_hash: &str,
        new_token_hash: &str,
        factor: &VerifiedFactor,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        // The audit head first: it serialises this read-modify-write against every other
        // audited session write (sign-out, another step-up of the same session).
        append(&mut tx, audit).await?;
        let row: Option<(Uuid, String)> =
            sqlx::query_as("SELECT id, factors FROM sessions WHERE token_hash = $1 FOR UPDATE")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id, factors)) = row else {
            return Ok(false);
        };
        let mut factors: Vec<VerifiedFactor> =
            serde_json::from_str(&factors).map_err(|e| StoreError::Corrupt(format!("session {id}: {e}")))?;
        factors.push(*factor);
        sqlx::query("UPDATE sessions SET factors = $1, token_hash = $2 WHERE id = $3")
            .bind(json_text(&factors)?)
            .bind(new_token_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM pending_authorizations WHERE expires_at <= $1",
            "DELETE FROM pushed_requests WHERE expires_at <= $1",
            "DELETE FROM access_tokens WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM client_assertions WHERE expires_at <= $1",
        ] {
            n += sqlx::query(sql).bind(now).execute(&mut *tx).await?.rows_affected();
        }
        for sql in
            ["DELETE FROM auth_codes WHERE expires_at <= $1", "DELETE FROM logout_deliveries WHERE delivered_at <= $1"]
        {
            n += sqlx::query(sql).bind(now - 86_400).execute(&mut *tx).await?.rows_affected();
        }
        // Given up (or stuck) deliveries stay a week for the operator, then go.
        n += sqlx::query("DELETE FROM logout_deliveries WHERE created_at <= $1")
            .bind(now - 7 * 86_400)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Certificate challenges live minutes; a day later they are only clutter.
        n += sqlx::query("DELETE FROM certificate_challenges WHERE expires_at <= $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // An enrolment never confirmed within a day was abandoned.
        n += sqlx::query("DELETE FROM totp_credentials WHERE confirmed_at IS NULL AND created_at <= $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // One-time codes stay two days past expiry so the daily sending cap still counts them.
        n += sqlx::query("DELETE FROM otp_challenges WHERE expires_at <= $1")
            .bind(now - 2 * 86_400)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The development outbox keeps two days of messages.
        n += sqlx::query("DELETE FROM dev_outbox WHERE created_at <= $1")
            .bind(now - 2 * 86_400)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // A grant goes once nothing of it can be used (its codes and tokens go with it).
        n += sqlx::query("DELETE FROM grants WHERE expires_at <= $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn count_failure(
        &self,
        account_id: Uuid,
        factor: &str,
        now: i64,
        window_seconds: i64,
        max: i64,
        lock_seconds: i64,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.write().await?;
        let failures: i64 = sqlx::query_scalar(
            "INSERT INTO failed_attempts (account_id, factor, failures, window_start, locked_until) \
             VALUES ($1, $2, 1, $3, NULL) \
             ON CONFLICT (account_id, factor) DO UPDATE SET \
             failures = CASE WHEN failed_attempts.window_start <= $4 THEN 1 ELSE failed_attempts.failures + 1 END, \
             window_start = CASE WHEN failed_attempts.window_start <= $4 THEN $3 ELSE failed_attempts.window_start END \
             RETURNING failures",
        )
        .bind(account_id)
        .bind(factor)
        .bind(now)
        .bind(now - window_seconds)
        .fetch_one(&mut *tx)
        .await?;
        let locked = if failures >= max {
            let until = now + lock_seconds;
            sqlx::query(
                "UPDATE failed_attempts SET locked_until = $1, failures = 0, window_start = $2 \
                 WHERE account_id = $3 AND factor = $4",
            )
            .bind(until)
            .bind(now)
            .bind(account_id)
            .bind(factor)
            .execute(&mut *tx)
            .await?;
            Some(until)
        } else {
            None
        };
        tx.commit().await?;
        Ok(locked)
    }

    async fn locked_until(&self, account_id: Uuid, factor: &str, now: i64) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT locked_until FROM failed_attempts WHERE account_id = $1 AND factor = $2 AND locked_until > $3",
        )
        .bind(account_id)
        .bind(factor)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    async fn clear_failures(&self, account_id: Uuid, factor: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM failed_attempts WHERE account_id = $1 AND factor = $2")
            .bind(account_id)
            .bind(factor)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_certificate_challenge(&self, c: &CertificateChallenge) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO certificate_challenges (id_hash, account_id, purpose, bytes, created_at, expires_at, \
             consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id_hash)
        .bind(c.account_id)
        .bind(&c.purpose)
        .bind(&c.bytes)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.consumed_at)
        .execute(&self.pool)
        .await
        .map_err(conflict_from)?;
        Ok(())
    }

    async fn consume_certificate_challenge(
        &self,
        id_hash: &str,
        now: i64,
    ) -> StoreResult<Option<CertificateChallenge>> {
        // One conditional UPDATE: the row lock (the write lock in SQLite) makes exactly one
        // concurrent caller see `consumed_at IS NULL`.
        let row = sqlx::query_as::<_, CertificateChallengeRow>(
            "UPDATE certificate_challenges SET consumed_at = $1 WHERE id_hash = $2 AND consumed_at IS NULL \
             RETURNING id_hash, account_id, purpose, bytes, created_at, expires_at, NULL AS consumed_at",
        )
        .bind(now)
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(CertificateChallenge::from))
    }

    async fn create_certificate(&self, c: &EnrolledCertificate, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(concat!(
            "INSERT INTO certificates (",
            certificate_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(c.id)
        .bind(c.account_id)
        .bind(&c.fingerprint)
        .bind(&c.der)
        .bind(&c.subject_cn)
        .bind(&c.issuer)
        .bind(&c.serial)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(json_text(&c.uids)?)
        .bind(&c.profile)
        .bind(c.created_at)
        .bind(c.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_certificates(&self, account_id: Uuid) -> StoreResult<Vec<EnrolledCertificate>> {
        sqlx::query_as::<_, CertificateRow>(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE account_id = $1 ORDER BY created_at, id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(EnrolledCertificate::try_from)
        .collect()
    }

    async fn find_certificate_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<EnrolledCertificate>> {
        sqlx::query_as::<_, CertificateRow>(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE fingerprint = $1"
        ))
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?
        .map(EnrolledCertificate::try_from)
        .transpose()
    }

    async fn touch_certificate(&self, id: Uuid, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE certificates SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_certificate(&self, id: Uuid, account_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query("DELETE FROM certificates WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rename_totp(&self, id: Uuid, account_id: Uuid, name: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query("UPDATE totp_credentials SET name = $1 WHERE id = $2 AND account_id = $3")
            .bind(name)
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn push_outbox(&self, m: &OutboxMessage) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO dev_outbox (id, channel, recipient, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(m.id)
        .bind(&m.channel)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(m.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_outbox(&self, limit: i64) -> StoreResult<Vec<OutboxMessage>> {
        Ok(sqlx::query_as::<_, OutboxRow>(
            "SELECT id, channel, recipient, subject, body, created_at FROM dev_outbox \
             ORDER BY created_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(OutboxMessage::from)
        .collect())
    }

    async fn append_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_webauthn_ceremony(&self, c: &WebauthnCeremony) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id_hash, kind, account_id, state_json, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.id_hash)
        .bind(&c.kind)
        .bind(c.account_id)
        .bind(&c.state_json)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_webauthn_ceremony(
        &self,
        id_hash: &str,
        kind: &str,
        now: i64,
    ) -> StoreResult<Option<WebauthnCeremony>> {
        // One statement: concurrent callers cannot both get the row. An expired ceremony is
        // deleted all the same and not returned.
        let row = sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 AND kind = $2 \
             RETURNING id_hash, kind, account_id, state_json, created_at, expires_at",
        )
        .bind(id_hash)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(WebauthnCeremony::from).filter(|c| c.expires_at > now))
    }

    async fn create_passkey(&self, p: &PasskeyCredential, audit: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        sqlx::query(concat!(
            "INSERT INTO webauthn_credentials (",
            passkey_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(p.id)
        .bind(p.account_id)
        .bind(&p.credential_id)
        .bind(p.user_handle)
        .bind(&p.name)
        .bind(&p.credential_json)
        .bind(p.user_verified)
        .bind(p.backup_eligible)
        .bind(p.backed_up)
        .bind(p.sign_count)
        .bind(&p.aaguid)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict_from)?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_passkeys(&self, account_id: Uuid) -> StoreResult<Vec<PasskeyCredential>> {
        Ok(sqlx::query_as::<_, PasskeyRow>(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM webauthn_credentials WHERE account_id = $1 ORDER BY created_at, id"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(PasskeyCredential::from)
        .collect())
    }

    async fn find_passkey(&self, credential_id: &str) -> StoreResult<Option<PasskeyCredential>> {
        Ok(sqlx::query_as::<_, PasskeyRow>(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM webauthn_credentials WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?
        .map(PasskeyCredential::from))
    }

    async fn use_passkey(
        &self,
        id: Uuid,
        previous_count: i64,
        new_count: i64,
        credential_json: &str,
        backup_eligible: bool,
        backed_up: bool,
        at: i64,
    ) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE webauthn_credentials SET sign_count = $1, credential_json = $2, backup_eligible = $3, \
             backed_up = $4, last_used_at = $5 WHERE id = $6 AND sign_count = $7",
        )
        .bind(new_count)
        .bind(credential_json)
        .bind(backup_eligible)
        .bind(backed_up)
        .bind(at)
        .bind(id)
        .bind(previous_count)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn rename_passkey(&self, id: Uuid, account_id: Uuid, name: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query("UPDATE webauthn_credentials SET name = $1 WHERE id = $2 AND account_id = $3")
            .bind(name)
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn update_throttle(&self, key: &str, update: &ThrottleFn<'_>) -> StoreResult<Option<ThrottleState>> {
        self.pg_update_throttle(key, update).await
    }

    async fn get_throttle(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
        self.pg_get_throttle(key).await
    }

    async fn get_throttles(&self, keys: &[&str]) -> StoreResult<Vec<Option<ThrottleState>>> {
        self.pg_get_throttles(keys).await
    }

    async fn find_account_for_sign_in(
        &self,
        username: &str,
        keys: &[&str],
    ) -> StoreResult<(Option<Account>, Vec<Option<ThrottleState>>)> {
        self.pg_find_account_for_sign_in(username, keys).await
    }

    async fn purge_throttle(&self, prefix: &str, before: i64) -> StoreResult<u64> {
        self.pg_purge_throttle(prefix, before).await
    }

    async fn touch_session(&self, id: Uuid, now: i64, idle_seconds: i64, device: Option<&str>) -> StoreResult<bool> {
        self.pg_touch_session(id, now, idle_seconds, device).await
    }

    async fn list_account_sessions(&self, account_id: Uuid, now: i64) -> StoreResult<Vec<SessionActivity>> {
        self.pg_list_account_sessions(account_id, now).await
    }

    async fn create_account_with_evidence(
        &self,
        account: &Account,
        evidence: &EvidenceRecord,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        self.pg_create_account_with_evidence(account, evidence, audit).await
    }

    async fn change_level(
        &self,
        evidence: &EvidenceRecord,
        identity: Option<&IdentityData>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        self.pg_change_level(evidence, identity, audit).await
    }

    async fn list_evidence(&self, account_id: Uuid) -> StoreResult<Vec<EvidenceRecord>> {
        self.pg_list_evidence(account_id).await
    }

    async fn list_evidence_since(&self, since: i64, limit: i64) -> StoreResult<Vec<EvidenceRecord>> {
        self.pg_list_evidence_since(since, limit).await
    }

    async fn set_account_status(
        &self,
        account_id: Uuid,
        status: AccountStatus,
        at: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        self.pg_set_account_status(account_id, status, at, audit).await
    }

    async fn create_staff(
        &self,
        member: &StaffMember,
        account: Option<&Account>,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        self.pg_create_staff(member, account, audit).await
    }

    async fn get_staff(&self, account_id: Uuid) -> StoreResult<Option<StaffMember>> {
        self.pg_get_staff(account_id).await
    }

    async fn create_activation_code(&self, code: &ActivationCode, audit: &AuditEvent) -> StoreResult<()> {
        self.pg_create_activation_code(code, audit).await
    }

    async fn find_activation_code(&self, code_hash: &str) -> StoreResult<Option<ActivationCode>> {
        self.pg_find_activation_code(code_hash).await
    }

    async fn activate_account(
        &self,
        code_hash: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        self.pg_activate_account(code_hash, password_hash, now, audit).await
    }

    async fn create_review_request(
        &self,
        request: &ReviewRequest,
        files: &[(ReviewFile, String)],
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        self.pg_create_review_request(request, files, audit).await
    }

    async fn list_pending_reviews(&self, limit: i64) -> StoreResult<Vec<ReviewRequest>> {
        self.pg_list_pending_reviews(limit).await
    }

    async fn count_pending_reviews(&self) -> StoreResult<i64> {
        self.pg_count_pending_reviews().await
    }

    async fn get_review_request(&self, id: Uuid) -> StoreResult<Option<(ReviewRequest, Vec<ReviewFile>)>> {
        self.pg_get_review_request(id).await
    }

    async fn get_review_file(&self, request_id: Uuid, file_id: Uuid) -> StoreResult<Option<(ReviewFile, String)>> {
        self.pg_get_review_file(request_id, file_id).await
    }

    async fn latest_review_request(&self, account_id: Uuid) -> StoreResult<Option<ReviewRequest>> {
        self.pg_latest_review_request(account_id).await
    }

    async fn decide_review(
        &self,
        decision: &ReviewDecision,
        evidence: Option<&EvidenceRecord>,
        audit: &AuditEvent,
    ) -> StoreResult<ReviewOutcome> {
        self.pg_decide_review(decision, evidence, audit).await
    }

    async fn scan_sealed(
        &self,
        column: &SealedColumn,
        skip_prefix: &str,
        after: Option<&RowValue>,
        limit: i64,
    ) -> StoreResult<Vec<SealedRow>> {
        self.pg_scan_sealed(column, skip_prefix, after, limit).await
    }

    async fn reseal(&self, column: &SealedColumn, updates: &[Reseal]) -> StoreResult<u64> {
        self.pg_reseal(column, updates).await
    }

    async fn count_sealed_by_key(&self, column: &SealedColumn) -> StoreResult<Vec<(String, i64)>> {
        self.pg_count_sealed_by_key(column).await
    }

    async fn count_audit_sealed_with(&self, key_id: &str) -> StoreResult<i64> {
        self.pg_count_audit_sealed_with(key_id).await
    }

    async fn list_account_audit(
        &self,
        account_id: Uuid,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        self.pg_list_account_audit(account_id, before, limit).await
    }

    async fn get_audit_head(&self) -> StoreResult<(i64, String)> {
        Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn delete_passkey(&self, id: Uuid, account_id: Uuid, audit: &AuditEvent) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        append(&mut tx, audit).await?;
        let n = sqlx::query("DELETE FROM webauthn_credentials WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_audit(&self, from_seq: i64, limit: i64) -> StoreResult<Vec<StoredAuditEvent>> {
        sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, kind, actor, account_id, client_id, details::text AS details, prev_hash, hash FROM audit_events \
             WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(from_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(StoredAuditEvent::try_from)
        .collect()
    }
}
