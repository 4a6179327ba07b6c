//! Rotating the data key (issue 9): a new key while the gateway runs, every sealed value
//! re-encrypted, nothing a citizen or a relying party sees changes (ID-number look-up, TOTP
//! sign-in, pairwise `sub`), and old keys retired only once nothing needs them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use std::path::Path;
use uuid::Uuid;
use xacthuc::assurance::AsLevel;
use xacthuc::audit::AuditEvent;
use xacthuc::crypto::secretbox::{DataKey, DataKeyRing};
use xacthuc::service::data_key::{self, DataKeyError, Rotation, SEALED_COLUMNS};
use xacthuc::store::*;

const T0: i64 = 1_790_000_000;
const CB: &str = "https://portal.example.vn/cb";
const HUNG: Citizen = Citizen {
    username: "hung",
    password: PASSWORD,
    identity: Some(("087084000999", "Võ Văn Hùng", "1984-05-17", "male")),
};

/// Every sealed value in the database: (column, row id, sealed value), in a stable order.
async fn all_sealed(store: &dyn Store) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for c in SEALED_COLUMNS {
        let mut after = None;
        loop {
            // Every sealed value starts with "v1.": skipping "-" skips nothing.
            let rows = store.scan_sealed(c, "-", after.as_ref(), 100).await.unwrap();
            let Some(last) = rows.last() else { break };
            after = Some(last.id.clone());
            out.extend(rows.into_iter().map(|r| (c.name(), r.id.to_string(), r.sealed)));
        }
    }
    out
}

/// Opens every sealed value with `ring` and the AAD its column rebuilds; returns how many.
async fn open_all(store: &dyn Store, ring: &DataKeyRing) -> usize {
    let mut n = 0;
    for c in SEALED_COLUMNS {
        for r in store.scan_sealed(c, "-", None, 10_000).await.unwrap() {
            ring.decrypt(&r.sealed, &(c.aad)(&r.aad_parts)).unwrap_or_else(|e| panic!("{} {}: {e}", c.name(), r.id));
            n += 1;
        }
    }
    n
}

fn prefix(ring: &DataKeyRing) -> String {
    format!("v1.{}.", ring.current_id())
}

fn national_id_aad(id: Uuid) -> String {
    format!("account:{id}:national_id")
}

fn account(username: &str, identity: Option<IdentityData>) -> Account {
    Account {
        id: Uuid::new_v4(),
        username: username.into(),
        password_hash: None,
        as_level: if identity.is_some() { AsLevel::As2 } else { AsLevel::As1 },
        email: None,
        phone: None,
        email_verified_at: None,
        phone_verified_at: None,
        identity,
        status: AccountStatus::Active,
        always_second_factor: false,
        created_at: T0,
        updated_at: T0,
    }
}

/// An account whose ID number is sealed with `ring` (under `aad`, normally its own).
async fn seal_account(store: &dyn Store, ring: &DataKeyRing, n: usize, aad: Option<&[u8]>) -> (Account, String) {
    let number = format!("0010900{n:05}");
    let mut a = account(&format!("citizen{n}"), None);
    let own = national_id_aad(a.id);
    a.identity = Some(IdentityData {
        full_name: "Nguyễn Văn An".into(),
        birth_date: "1990-01-01".into(),
        sex: "male".into(),
        national_id_enc: ring.encrypt(number.as_bytes(), aad.unwrap_or(own.as_bytes())).unwrap(),
        national_id_hash: ring.keyed_hash("national_id", number.as_bytes()),
        national_id_masked: "001******".into(),
    });
    store.create_account(&a, &AuditEvent::new(T0, "account.created", "test").account(a.id)).await.unwrap();
    (a, number)
}

/// A database with a value in every sealed column, all sealed with `ring`: five ID numbers
/// (and an account without one), two TOTP seeds, a signing key, an uploaded ID-card photo, and
/// certificate evidence in the audit log.
async fn seed(store: &dyn Store, ring: &DataKeyRing) -> Vec<(Account, String)> {
    let mut accounts = Vec::new();
    for n in 0..5 {
        accounts.push(seal_account(store, ring, n, None).await);
    }
    let plain = account("no.identity", None);
    store.create_account(&plain, &AuditEvent::new(T0, "account.created", "test")).await.unwrap();
    for (a, _) in &accounts[..2] {
        let aad = format!("account:{}:totp_secret", a.id);
        store
            .create_totp(&TotpCredential {
                id: Uuid::new_v4(),
                account_id: a.id,
                name: "Điện thoại".into(),
                secret_enc: ring.encrypt(&[7u8; 20], aad.as_bytes()).unwrap(),
                last_step: None,
                created_at: T0,
                confirmed_at: Some(T0),
                last_used_at: None,
            })
            .await
            .unwrap();
    }
    let key = SigningKeyRecord {
        kid: "ky-1".into(),
        alg: "ES256".into(),
        private_key_enc: ring.encrypt(b"pkcs8", b"signing-key:ky-1").unwrap(),
        created_at: T0,
        activates_at: T0,
        retired_at: None,
    };
    store.create_signing_key(&key, &AuditEvent::new(T0, "keys.created", "test")).await.unwrap();
    let owner = &accounts[2].0;
    let request = ReviewRequest {
        id: Uuid::new_v4(),
        account_id: owner.id,
        status: ReviewStatus::Pending,
        created_at: T0,
        full_name: "Nguyễn Văn An".into(),
        birth_date: "1990-01-01".into(),
        sex: "male".into(),
        national_id_masked: "001******".into(),
        national_id_hash: owner.identity.as_ref().unwrap().national_id_hash.clone(),
        decided_by: None,
        decided_at: None,
        reason: None,
    };
    let file = ReviewFile {
        id: Uuid::new_v4(),
        request_id: request.id,
        side: "front".into(),
        content_type: "image/png".into(),
        size: 4,
    };
    let aad = xacthuc::service::proofing::review::file_aad(file.id, request.id, "front", owner.id);
    let sealed = ring.encrypt(b"\x89PNG", aad.as_bytes()).unwrap();
    store
        .create_review_request(&request, &[(file, sealed)], &AuditEvent::new(T0, "review.requested", "test"))
        .await
        .unwrap();
    let evidence = ring.encrypt(b"signed response", b"certificate-evidence:00").unwrap();
    store
        .append_audit(
            &AuditEvent::new(T0, "certificate.signature_verified", "test").detail("response_sealed", evidence),
        )
        .await
        .unwrap();
    accounts
}

crate::store_groups!(reencryption_is_complete_idempotent_and_compare_and_set, retire_waits_for_the_last_value);

async fn reencryption_is_complete_idempotent_and_compare_and_set(store: DynStore) {
    let store = store.as_ref();
    let old = DataKeyRing::from_legacy(DataKey::generate().unwrap()).unwrap();
    let accounts = seed(store, &old).await;
    assert_eq!(all_sealed(store).await.len(), 5 + 2 + 1 + 1, "one value per sealed row, NULLs skipped");
    let new = old.with_new_current(DataKey::generate().unwrap(), T0 + 1).unwrap();
    let columns = SEALED_COLUMNS;
    let ids = &columns[0];
    assert_eq!(ids.name(), "accounts.national_id_enc");

    // The scan pages in id order and skips values already under the current key.
    let first = store.scan_sealed(ids, &prefix(&new), None, 2).await.unwrap();
    let second = store.scan_sealed(ids, &prefix(&new), Some(&first[1].id), 2).await.unwrap();
    let third = store.scan_sealed(ids, &prefix(&new), Some(&second[1].id), 2).await.unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (2, 2, 1));
    let mut seen: Vec<String> = first.iter().chain(&second).chain(&third).map(|r| r.id.to_string()).collect();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    // Compare-and-set: a value changed since it was read is left as the gateway wrote it.
    let row = &first[0];
    let aad = (ids.aad)(&row.aad_parts);
    let written_meanwhile = new.encrypt(b"001090099999", &aad).unwrap();
    let stale = Reseal { id: row.id.clone(), old: "v1.00000000.not-what-is-stored".into(), new: "x".into() };
    let fresh = Reseal { id: row.id.clone(), old: row.sealed.clone(), new: written_meanwhile.clone() };
    assert_eq!(store.reseal(ids, &[stale]).await.unwrap(), 0);
    assert_eq!(store.reseal(ids, std::slice::from_ref(&fresh)).await.unwrap(), 1);
    assert_eq!(store.reseal(ids, &[fresh]).await.unwrap(), 0, "the old value is gone");

    let mut lines = Vec::new();
    let report = data_key::reencrypt(store, &new, 2, &mut |l: &str| lines.push(l.to_string())).await.unwrap();
    assert_eq!(report.key_id, new.current_id());
    assert_eq!(report.reencrypted, 4 + 2 + 1 + 1);
    assert!(report.failed.is_empty() && report.complete(), "{report:?}");
    assert!(lines.iter().any(|l| l.contains("accounts.national_id_enc") && l.contains("4 re-encrypted")), "{lines:?}");
    let after = all_sealed(store).await;
    assert!(after.iter().all(|(_, _, v)| v.starts_with(&prefix(&new))), "{after:?}");
    // Nothing needs the old key any more: the ring without it opens everything.
    let without_old = new.without(old.current_id()).unwrap();
    assert_eq!(open_all(store, &without_old).await, 9);
    // (One not rewritten by the compare-and-set above, whose plaintext is another.)
    let (a, number) = accounts.iter().find(|(a, _)| RowValue::Uuid(a.id) != row.id).unwrap();
    let enc = store.get_account(a.id).await.unwrap().unwrap().identity.unwrap().national_id_enc;
    assert_eq!(without_old.decrypt(&enc, national_id_aad(a.id).as_bytes()).unwrap(), number.as_bytes());
    // The keyed hash is unchanged: the look-up by ID number still finds the account.
    let hash = without_old.keyed_hash("national_id", number.as_bytes());
    assert_eq!(store.find_account_by_national_id_hash(&hash).await.unwrap().unwrap().id, a.id);
    assert_eq!(store.count_sealed_by_key(ids).await.unwrap(), vec![(new.current_id().to_string(), 5)]);
    // The audit log is never rewritten: its evidence is still under the old key.
    assert_eq!(store.count_audit_sealed_with(old.current_id()).await.unwrap(), 1);
    assert_eq!(store.count_audit_sealed_with(new.current_id()).await.unwrap(), 0);

    // A second run changes nothing.
    let again = data_key::reencrypt(store, &new, 2, &mut |_: &str| {}).await.unwrap();
    assert_eq!((again.reencrypted, again.remaining), (0, 0));
    assert_eq!(all_sealed(store).await, after);

    // A value no key opens (sealed for another row) is reported, left alone, and counted.
    seal_account(store, &old, 9, Some(b"account:someone-else:national_id")).await;
    let report = data_key::reencrypt(store, &new, 50, &mut |_: &str| {}).await.unwrap();
    assert_eq!((report.reencrypted, report.failed.len(), report.remaining), (0, 1, 1));
    assert!(report.failed[0].starts_with("accounts.national_id_enc "), "{:?}", report.failed);
    assert!(!report.complete());
}

async fn retire_waits_for_the_last_value(store: DynStore) {
    let store = store.as_ref();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.key");
    let legacy = DataKey::generate().unwrap();
    std::fs::write(&file, format!("{}\n", legacy.to_base64())).unwrap();
    let old = DataKeyRing::read_file(&file).unwrap();
    assert!(old.is_legacy(), "the single-key format still loads");
    seed(store, &old).await;

    // An interrupted rotation: the new key file is written, nothing re-encrypted yet.
    let new = old.with_new_current(DataKey::generate().unwrap(), T0).unwrap();
    new.write_file(&file).unwrap();
    let refused = data_key::retire(store, &file, old.current_id(), false, "test", T0).await;
    let Err(DataKeyError::Refused(msg)) = refused else { panic!("{refused:?}") };
    assert!(msg.contains("5 in accounts.national_id_enc") && msg.contains("--resume"), "{msg}");
    let Err(DataKeyError::Refused(msg)) = data_key::retire(store, &file, new.current_id(), false, "test", T0).await
    else {
        panic!("the current key retired")
    };
    assert!(msg.contains("current"), "{msg}");

    // `--resume` finishes the job with the key already in the file, making no new one.
    let mut notified = false;
    let report = data_key::rotate(
        store,
        Rotation { key_file: &file, resume: true, batch: 3, actor: "test" },
        T0,
        &mut |_: &str| notified = true,
        &mut |_: &str| {},
    )
    .await
    .unwrap();
    assert!(!notified && report.previous.is_none());
    assert_eq!((report.reencrypt.key_id.as_str(), report.reencrypt.reencrypted), (new.current_id(), 9));
    assert_eq!(DataKeyRing::read_file(&file).unwrap().key_ids(), new.key_ids());

    // Only the audit evidence still needs the old key: refused unless the operator accepts it.
    let Err(DataKeyError::Refused(msg)) = data_key::retire(store, &file, old.current_id(), false, "test", T0).await
    else {
        panic!("retired despite the audit evidence")
    };
    assert!(msg.contains("1 audit event"), "{msg}");
    let ring = data_key::retire(store, &file, old.current_id(), true, "test", T0).await.unwrap();
    assert_eq!(ring.key_ids(), vec![new.current_id().to_string()]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&legacy.to_base64()), "the retired key is gone from the file");
    let reread = DataKeyRing::read_file(&file).unwrap();
    assert_eq!(open_all(store, &reread).await, 9);
    assert_eq!(reread.keyed_hash("national_id", b"1"), legacy.keyed_hash("national_id", b"1"));

    // A full rotation after that: a third key, audited with key ids and never key material.
    let mut told = None;
    let report = data_key::rotate(
        store,
        Rotation { key_file: &file, resume: false, batch: 100, actor: "test" },
        T0,
        &mut |id: &str| told = Some(id.to_string()),
        &mut |_: &str| {},
    )
    .await
    .unwrap();
    let third = DataKeyRing::read_file(&file).unwrap();
    assert_eq!(told.as_deref(), Some(third.current_id()));
    assert_eq!(report.previous.as_deref(), Some(new.current_id()));
    assert_eq!(report.reencrypt.reencrypted, 9);
    let events = store.list_audit(1, 10_000).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    for kind in ["keys.data_key_reencrypted", "keys.data_key_retired", "keys.data_key_rotated"] {
        assert!(kinds.contains(&kind), "{kind} audited: {kinds:?}");
    }
    let rotated = events.iter().rev().find(|e| e.event.kind == "keys.data_key_rotated").unwrap();
    assert_eq!(rotated.event.details["key_id"], third.current_id());
    assert_eq!(rotated.event.details["previous_key_ids"], serde_json::json!([new.current_id()]));
    let all = serde_json::to_string(&events.iter().map(|e| &e.event.details).collect::<Vec<_>>()).unwrap();
    for key in [legacy.to_base64(), new.current().to_base64(), third.current().to_base64()] {
        assert!(!all.contains(&key), "key material in the audit log");
    }
    assert_eq!(xacthuc::audit::verify_chain(&events), Ok(()));
}

// --- The gateway, running while the key is rotated -------------------------------------------

/// RFC 6238 (SHA-1, 6 digits, 30 s) in Python's standard library, for time `t`.
fn python_totp(secret_b32: &str, t: i64) -> String {
    let script = r#"
import base64, hashlib, hmac, struct, sys
s = sys.argv[1].replace(" ", "").upper()
key = base64.b32decode(s + "=" * (-len(s) % 8))
mac = hmac.new(key, struct.pack(">Q", int(sys.argv[2]) // 30), hashlib.sha1).digest()
o = mac[-1] & 0x0F
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
"#;
    let out = std::process::Command::new("python3").args(["-c", script, secret_b32, &t.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The `sub` the portal gets in its ID token for the code.
async fn sub_for_code(server: &TestServer, secret: &str, code: &str) -> String {
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth("portal", Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    let jwt = body["id_token"].as_str().unwrap_or_else(|| panic!("{body}"));
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    claims["sub"].as_str().unwrap().to_string()
}

/// Signs HUNG in at the portal with password and a code from the authenticator app at time
/// `t`; returns the `sub` of the ID token.
async fn totp_sign_in(server: &TestServer, portal_secret: &str, totp_secret: &str, t: i64) -> String {
    let http = client();
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "portal"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("acr_values", "urn:xacthuc:loa:as2:2fa"),
    ]);
    let login = absolute(&server.base, &location(&http.get(url.as_str()).send().await.unwrap()));
    let page = http.get(&login).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("username", HUNG.username.into()),
        ("password", PASSWORD.into()),
    ];
    let resp = http.post(server.url("/login")).form(&form).send().await.unwrap();
    let resume = absolute(&server.base, &location(&resp));
    let second = absolute(&server.base, &location(&http.get(&resume).send().await.unwrap()));
    assert!(second.contains("/login/second?r="), "{second}");
    let page = http.get(&second).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("r", hidden(&page, "r")),
        ("method", "totp".into()),
        ("code", python_totp(totp_secret, t)),
    ];
    let resp = http.post(server.url("/login/second")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303, "the authenticator code was refused: {}", resp.text().await.unwrap());
    let mut url = absolute(&server.base, &location(&resp));
    for _ in 0..4 {
        if url.starts_with(CB) {
            break;
        }
        url = absolute(&server.base, &location(&http.get(&url).send().await.unwrap()));
    }
    sub_for_code(server, portal_secret, &query_param(&url, "code").unwrap()).await
}

/// The `sub` of a password-only sign-in of HUNG at the portal.
async fn password_sign_in(server: &TestServer, portal_secret: &str) -> String {
    let params = [("response_type", "code"), ("client_id", "portal"), ("redirect_uri", CB), ("scope", "openid")];
    let code = authorize_code(server, &client(), &params, CB, (HUNG.username, PASSWORD)).await;
    sub_for_code(server, portal_secret, &code).await
}

fn citizen_number(i: usize) -> String {
    format!("0790900{i:05}")
}

async fn register_many(server: &TestServer, from: usize, to: usize) {
    for i in from..to {
        let (name, number) = (format!("moi.{i}"), citizen_number(i));
        let c = Citizen {
            username: &name,
            password: PASSWORD,
            identity: Some((&number, "Trần Văn An", "1990-01-01", "male")),
        };
        assert_eq!(register(server, &client(), &c).await.status(), 303, "registration {i}");
    }
}

async fn rotation_while_the_gateway_runs(database_url: Option<&str>) {
    let server = TestServer::start_with(database_url).await;
    let key_file = server.state.data_key.source().unwrap().to_path_buf();
    let old = DataKeyRing::read_file(&key_file).unwrap();
    assert!(old.is_legacy(), "a development key is a single key");
    let portal_secret = server.add_client("portal", CB, "PS256").await;
    let enroller = client();
    assert_eq!(register(&server, &enroller, &HUNG).await.status(), 303);
    let (totp_secret, _) = crate::second_factor::enrol(&server, &enroller).await;
    register_many(&server, 0, 3).await;
    let sub_before = password_sign_in(&server, &portal_secret).await;
    let hung = server.state.store.find_account_by_username("hung").await.unwrap().unwrap();
    let pairwise_before = server.state.data_key.pairwise_subject("elsewhere.example.vn", &hung.id.to_string());

    // Rotate through a connection of its own (as the CLI does) while citizens keep registering.
    let store = xacthuc::store::connect(&server.state.config.database_url()).await.unwrap();
    let gateway = server.state.clone();
    let mut notify = move |_: &str| {
        gateway.data_key.reload().unwrap();
    };
    let mut lines = Vec::new();
    let mut progress = |l: &str| lines.push(l.to_string());
    let rotation = data_key::rotate(
        store.as_ref(),
        Rotation { key_file: &key_file, resume: false, batch: 2, actor: "test" },
        xacthuc::app::now(),
        &mut notify,
        &mut progress,
    );
    let (report, ()) = tokio::join!(rotation, register_many(&server, 3, 9));
    let report = report.unwrap();
    assert!(report.reencrypt.complete(), "{report:?}\n{lines:?}");
    assert_eq!(report.previous.as_deref(), Some(old.current_id()));
    let new = DataKeyRing::read_file(&key_file).unwrap();
    assert_eq!(new.current_id(), report.reencrypt.key_id);
    assert_eq!(server.state.data_key.current_id(), new.current_id(), "the gateway was told");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Every sealed value is under the new key, those written during the rotation included.
    let sealed = all_sealed(store.as_ref()).await;
    assert!(sealed.len() >= 10 + 1 + 2, "{sealed:?}");
    assert!(sealed.iter().all(|(_, _, v)| v.starts_with(&prefix(&new))), "{sealed:?}");
    assert_eq!(open_all(store.as_ref(), &new.without(old.current_id()).unwrap()).await, sealed.len());

    // Nothing the citizen or the portal sees changed.
    let totp = server.state.store.list_totp(hung.id).await.unwrap();
    assert!(totp[0].secret_enc.starts_with(&prefix(&new)));
    let sub_totp = totp_sign_in(&server, &portal_secret, &totp_secret, xacthuc::app::now() + 30).await;
    assert_eq!(sub_totp, sub_before, "pairwise sub unchanged");
    assert_eq!(password_sign_in(&server, &portal_secret).await, sub_before);
    assert_eq!(server.state.data_key.pairwise_subject("elsewhere.example.vn", &hung.id.to_string()), pairwise_before);
    let hung = server.state.store.get_account(hung.id).await.unwrap().unwrap();
    assert_eq!(xacthuc::service::accounts::decrypt_national_id(&server.state, &hung).as_deref(), Some("087084000999"));
    let hash = xacthuc::service::accounts::national_id_hash(&server.state, "087084000999");
    assert_eq!(server.state.store.find_account_by_national_id_hash(&hash).await.unwrap().unwrap().id, hung.id);
    // The look-up refuses a second account with the same ID number.
    let twin = Citizen { username: "hung.hai", ..HUNG };
    let resp = register(&server, &client(), &twin).await;
    assert_ne!(resp.status(), 303, "a second account with Hùng's ID number");
    assert!(server.state.store.find_account_by_username("hung.hai").await.unwrap().is_none());

    // New values are sealed under the new key.
    register_many(&server, 9, 10).await;
    let late = server.state.store.find_account_by_username("moi.9").await.unwrap().unwrap();
    assert!(late.identity.unwrap().national_id_enc.starts_with(&prefix(&new)));

    // A second run has nothing to do.
    let before = all_sealed(store.as_ref()).await;
    let again = data_key::rotate(
        store.as_ref(),
        Rotation { key_file: &key_file, resume: true, batch: 50, actor: "test" },
        xacthuc::app::now(),
        &mut |_: &str| {},
        &mut |_: &str| {},
    )
    .await
    .unwrap();
    assert_eq!((again.reencrypt.reencrypted, again.reencrypt.remaining), (0, 0));
    assert_eq!(all_sealed(store.as_ref()).await, before);
    // Retiring the old key is now accepted (no certificate evidence here), and the gateway,
    // told, works on without it.
    data_key::retire(store.as_ref(), &key_file, old.current_id(), false, "test", xacthuc::app::now()).await.unwrap();
    server.state.data_key.reload().unwrap();
    assert_eq!(server.state.data_key.ring().key_ids(), vec![new.current_id().to_string()]);
    assert_eq!(password_sign_in(&server, &portal_secret).await, sub_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_the_gateway_runs_on_sqlite() {
    rotation_while_the_gateway_runs(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_while_the_gateway_runs_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        println!("{POSTGRES_ENV} is unset; the PostgreSQL test was not run");
        return;
    };
    let url = db.url.clone();
    let outcome = tokio::spawn(async move { rotation_while_the_gateway_runs(Some(&url)).await }).await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xacthuc"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("XACTHUC_PASSWORD__MEMORY_KIB", "1024")
        .env("XACTHUC_PASSWORD__ITERATIONS", "1")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The operator's commands against a gateway that is never signalled (no pid file): it reads
/// the new key file by itself when it meets a value sealed under the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_rotates_and_retires_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let server = TestServer::start_in(dir).await;
    let portal_secret = server.add_client("portal", CB, "PS256").await;
    let enroller = client();
    assert_eq!(register(&server, &enroller, &HUNG).await.status(), 303);
    let (totp_secret, _) = crate::second_factor::enrol(&server, &enroller).await;
    let sub_before = password_sign_in(&server, &portal_secret).await;
    let old = DataKeyRing::read_file(&path.join("data.key")).unwrap();

    let (ok, out) = cli(&path, &["keys", "data-key-status"]);
    assert!(
        ok && out.contains("(single key)")
            && out.contains(&format!("accounts.national_id_enc\t{}: 1", old.current_id())),
        "{out}"
    );
    let (ok, out) = cli(&path, &["keys", "rotate-data-key"]);
    assert!(ok, "{out}");
    let new = DataKeyRing::read_file(&path.join("data.key")).unwrap();
    assert!(out.contains(&format!("data key rotated: {} -> {}", old.current_id(), new.current_id())), "{out}");
    assert!(out.contains("no gateway pid") && out.contains("done: every sealed value"), "{out}");
    assert!(!out.contains(&new.current().to_base64()), "key material printed");

    // Not signalled, the gateway still signs in with the re-encrypted TOTP seed…
    let sub = totp_sign_in(&server, &portal_secret, &totp_secret, xacthuc::app::now() + 30).await;
    assert_eq!(sub, sub_before);
    // …and, having read the new file then, seals new values under the new key.
    let c = Citizen {
        username: "lan",
        password: PASSWORD,
        identity: Some(("001195000456", "Lê Thị Lan", "1995-03-04", "female")),
    };
    assert_eq!(register(&server, &client(), &c).await.status(), 303);
    let lan = server.state.store.find_account_by_username("lan").await.unwrap().unwrap();
    assert!(lan.identity.unwrap().national_id_enc.starts_with(&prefix(&new)));

    let (ok, out) = cli(&path, &["keys", "rotate-data-key", "--resume"]);
    assert!(ok && out.contains("0 value(s) re-encrypted"), "{out}");
    let (ok, out) = cli(&path, &["keys", "retire-data-key", "--id", new.current_id()]);
    assert!(!ok && out.contains("current data key"), "{out}");
    let (ok, out) = cli(&path, &["keys", "retire-data-key", "--id", old.current_id()]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&path, &["keys", "data-key-status"]);
    assert!(
        ok && !out.contains(old.current_id()) && out.contains(&format!("key {}\tcurrent", new.current_id())),
        "{out}"
    );

    // A gateway started now reads the key-ring file.
    let config = test_config(&path, &server.base, None);
    let restarted = xacthuc::app::build_state(config, xacthuc::app::now()).await.unwrap();
    let hung = restarted.store.find_account_by_username("hung").await.unwrap().unwrap();
    assert_eq!(xacthuc::service::accounts::decrypt_national_id(&restarted, &hung).as_deref(), Some("087084000999"));
    assert_eq!(xacthuc::service::token::pairwise_sub(&restarted, "portal", &hung.id), sub_before);
}

/// Kills the `serve` child however the test ends.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 30 s) for `text` in the log file.
async fn log_has(log: &Path, text: &str) -> bool {
    for _ in 0..300 {
        if std::fs::read_to_string(log).unwrap_or_default().contains(text) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The real `serve` process: `keys rotate-data-key` finds it through its pid file and signals
/// it; it reads the new key ring (and, after `retire-data-key`, the smaller one) and keeps
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_gateway_reads_the_new_key_file_on_sighup() {
    // reqwest uses rustls without a built-in provider (the gateway installs ring's in-process).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let log = path.join("serve.log");
    let out = std::fs::File::create(&log).unwrap();
    let _serve = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_xacthuc"))
            .args(["serve", "--data-dir"])
            .arg(path)
            .env("XACTHUC_PASSWORD__MEMORY_KIB", "1024")
            .env("XACTHUC_PASSWORD__ITERATIONS", "1")
            .env("XACTHUC_LISTEN", format!("127.0.0.1:{port}"))
            .env("XACTHUC_ISSUER", &base)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log_has(&log, "xacthuc is serving").await, "{}", read_log());
    let old = DataKeyRing::read_file(&path.join("data.key")).unwrap();
    let (ok, out) = cli(path, &["keys", "rotate-data-key"]);
    assert!(ok && out.contains("asked the gateway (pid"), "{out}");
    let new = DataKeyRing::read_file(&path.join("data.key")).unwrap();
    assert!(log_has(&log, "data keys reloaded").await, "{}", read_log());
    assert!(read_log().contains(new.current_id()), "{}", read_log());
    let (ok, out) = cli(path, &["keys", "retire-data-key", "--id", old.current_id()]);
    assert!(ok && out.contains("asked the gateway (pid"), "{out}");
    // Still serving, with its signing keys (now sealed under the new key) in use.
    let resp = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let jwks: serde_json::Value = client().get(format!("{base}/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
    assert!(!read_log().contains("data key reload refused"), "{}", read_log());
}
