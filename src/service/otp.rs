//! One-time codes sent by SMS or e-mail: as a second factor at sign-in, and to verify a
//! contact before it may receive sign-in codes. Codes are 6 digits, valid 5 minutes, at most 5
//! attempts each; a new code at most every 60 s and 10 a day per account. Only a keyed hash of
//! a code is stored (6 digits hashed plainly would fall to a brute force of the database).

use super::ServiceError;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::crypto::random::{constant_time_eq, random_bytes};
use crate::i18n::Lang;
use crate::notify::{Channel, Message, Via, mask_email, mask_phone};
use crate::store::{Account, OtpChallenge, OutboxMessage};
use uuid::Uuid;

pub const CODE_SECONDS: i64 = 300;
pub const MAX_ATTEMPTS: i64 = 5;
pub const RESEND_SECONDS: i64 = 60;
pub const DAILY_CAP: i64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Login,
    VerifyEmail,
    VerifyPhone,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::VerifyEmail => "verify_email",
            Purpose::VerifyPhone => "verify_phone",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    #[error("wait {0} s before asking for a new code")]
    Cooldown(i64),
    #[error("daily limit of codes reached")]
    DailyCap,
    #[error("no usable destination")]
    NoDestination,
    #[error("the code has expired")]
    Expired,
    #[error("wrong code; {0} attempts left")]
    Invalid(i64),
    #[error("too many attempts for this code")]
    TooManyAttempts,
    #[error("the code could not be delivered")]
    Delivery,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::StoreError> for OtpError {
    fn from(e: crate::store::StoreError) -> Self {
        OtpError::Service(e.into())
    }
}

impl OtpError {
    /// The message for the citizen (VIETNAM.md vocabulary).
    pub fn message(&self, lang: Lang) -> String {
        let vi = lang == Lang::Vi;
        match self {
            OtpError::Cooldown(s) if vi => format!("Vui lòng đợi {s} giây trước khi yêu cầu mã mới."),
            OtpError::Cooldown(s) => format!("Please wait {s} seconds before asking for a new code."),
            OtpError::DailyCap if vi => "Bạn đã yêu cầu quá nhiều mã hôm nay. Vui lòng thử lại vào ngày mai.".into(),
            OtpError::DailyCap => "You have asked for too many codes today. Please try again tomorrow.".into(),
            OtpError::NoDestination if vi => "Chưa có số điện thoại hoặc thư điện tử đã xác minh.".into(),
            OtpError::NoDestination => "There is no verified phone number or e-mail address.".into(),
            OtpError::Expired | OtpError::TooManyAttempts if vi => "Mã OTP đã hết hiệu lực.".into(),
            OtpError::Expired | OtpError::TooManyAttempts => "The OTP code has expired.".into(),
            OtpError::Invalid(_) if vi => "Mã OTP không hợp lệ.".into(),
            OtpError::Invalid(_) => "The OTP code is not valid.".into(),
            OtpError::Delivery if vi => "Không gửi được mã. Vui lòng thử lại sau.".into(),
            OtpError::Delivery => "The code could not be sent. Please try again later.".into(),
            OtpError::Service(_) if vi => "Hệ thống đang gặp sự cố. Vui lòng thử lại sau ít phút.".into(),
            OtpError::Service(_) => "The system has a problem. Please try again in a few minutes.".into(),
        }
    }
}

fn code_hash(state: &AppState, id: Uuid, code: &str) -> String {
    state.data_key.keyed_hash("otp-code", format!("{id}:{code}").as_bytes())
}

fn new_code() -> Result<String, ServiceError> {
    // Rejection sampling keeps the six digits uniform.
    loop {
        let n = u32::from_be_bytes(random_bytes::<4>().map_err(ServiceError::internal)?);
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// Where codes for `purpose` go: for sign-in only a verified contact; for verification the
/// contact being verified.
pub fn destination(account: &Account, purpose: Purpose, channel: Channel) -> Option<String> {
    let (contact, verified) = match channel {
        Channel::Email => (account.email.clone(), account.email_verified_at.is_some()),
        Channel::Sms => (account.phone.clone(), account.phone_verified_at.is_some()),
    };
    match purpose {
        Purpose::Login if verified => contact,
        Purpose::VerifyEmail if channel == Channel::Email => contact,
        Purpose::VerifyPhone if channel == Channel::Sms => contact,
        _ => None,
    }
}

pub fn masked(channel: Channel, destination: &str) -> String {
    match channel {
        Channel::Email => mask_email(destination),
        Channel::Sms => mask_phone(destination),
    }
}

fn channel_str(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "sms",
    }
}

/// Sends a new code; returns the masked destination to show ("…đã được gửi đến 090****289").
pub async fn send(
    state: &AppState,
    account: &Account,
    purpose: Purpose,
    channel: Channel,
    lang: Lang,
    now: i64,
) -> Result<String, OtpError> {
    let to = destination(account, purpose, channel).ok_or(OtpError::NoDestination)?;
    if let Some(last) = state.store.latest_otp_challenge(account.id, purpose.as_str()).await?
        && last.created_at > now - RESEND_SECONDS
    {
        return Err(OtpError::Cooldown(last.created_at + RESEND_SECONDS - now));
    }
    if state.store.count_otp_challenges_since(account.id, now - 86_400).await? >= DAILY_CAP {
        return Err(OtpError::DailyCap);
    }
    let code = new_code()?;
    let id = Uuid::now_v7();
    let challenge = OtpChallenge {
        id,
        account_id: account.id,
        purpose: purpose.as_str().into(),
        channel: channel_str(channel).into(),
        destination: to.clone(),
        code_hash: code_hash(state, id, &code),
        attempts: 0,
        created_at: now,
        expires_at: now + CODE_SECONDS,
        consumed_at: None,
    };
    let shown = masked(channel, &to);
    let audit = AuditEvent::new(now, "otp.sent", format!("account:{}", account.id))
        .account(account.id)
        .detail("purpose", purpose.as_str())
        .detail("channel", channel_str(channel))
        .detail("to", &shown);
    state.store.create_otp_challenge(&challenge, &audit).await?;
    let text = match lang {
        Lang::Vi => format!("Ma xac thuc xacthuc cua ban la {code}, co hieu luc 5 phut. Khong chia se ma nay cho ai."),
        Lang::En => format!("Your xacthuc code is {code}, valid for 5 minutes. Do not share it with anyone."),
    };
    let message = match channel {
        Channel::Email => {
            let subject = match lang {
                Lang::Vi => "Mã xác thực (OTP) của bạn",
                Lang::En => "Your one-time code",
            };
            let body = match lang {
                Lang::Vi => format!(
                    "Mã xác thực của bạn là {code}.\nMã có hiệu lực trong 5 phút. Không chia sẻ mã này cho bất kỳ ai."
                ),
                Lang::En => format!("Your code is {code}.\nIt is valid for 5 minutes. Do not share it with anyone."),
            };
            Message::email(to, subject, body)
        }
        // Without diacritics an SMS segment holds 160 characters instead of 70.
        Channel::Sms => Message::sms(to, text),
    };
    let sent = state.notifier.send(&message).await;
    if sent.is_ok() {
        state.metrics.codes_sent.get_or_create(&crate::metrics::Channel { channel: channel_str(channel) }).inc();
    }
    match sent {
        // Development: kept in the database so every instance's /dev/outbox shows it.
        Ok(receipt) if receipt.via == Via::Outbox => {
            let kept = OutboxMessage {
                id: Uuid::now_v7(),
                channel: channel_str(channel).into(),
                recipient: message.to.clone(),
                subject: message.subject.clone(),
                body: message.text.clone(),
                created_at: now,
            };
            state.store.push_outbox(&kept).await?;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(account = %account.id, error = %e, "one-time code not delivered");
            return Err(OtpError::Delivery);
        }
    }
    Ok(shown)
}

/// Checks a code for `purpose`; on success the challenge is spent and returned.
pub async fn verify(
    state: &AppState,
    account: &Account,
    purpose: Purpose,
    code: &str,
    now: i64,
) -> Result<OtpChallenge, OtpError> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(challenge) = state.store.latest_otp_challenge(account.id, purpose.as_str()).await? else {
        return Err(OtpError::Expired);
    };
    let Some(attempts) = state.store.record_otp_attempt(challenge.id, now).await? else {
        return Err(OtpError::Expired);
    };
    if attempts > MAX_ATTEMPTS {
        return Err(OtpError::TooManyAttempts);
    }
    let ok = code.len() == 6
        && code.bytes().all(|b| b.is_ascii_digit())
        && constant_time_eq(code_hash(state, challenge.id, &code).as_bytes(), challenge.code_hash.as_bytes());
    if !ok {
        return Err(OtpError::Invalid(MAX_ATTEMPTS - attempts));
    }
    if !state.store.consume_otp_challenge(challenge.id, now).await? {
        return Err(OtpError::Expired);
    }
    Ok(challenge)
}

/// Verifies a contact with the code sent to it.
pub async fn confirm_contact(
    state: &AppState,
    account: &Account,
    channel: Channel,
    code: &str,
    now: i64,
) -> Result<bool, OtpError> {
    let purpose = match channel {
        Channel::Email => Purpose::VerifyEmail,
        Channel::Sms => Purpose::VerifyPhone,
    };
    let challenge = verify(state, account, purpose, code, now).await?;
    let audit = AuditEvent::new(now, "contact.verified", format!("account:{}", account.id))
        .account(account.id)
        .detail("channel", channel_str(channel))
        .detail("to", masked(channel, &challenge.destination));
    Ok(state.store.mark_contact_verified(account.id, channel_str(channel), &challenge.destination, now, &audit).await?)
}
