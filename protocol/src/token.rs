//! Signed tokens: tickets (a place in the queue) and passes (permission to
//! invest).
//!
//! A token is `v1.<kid>.<payload>.<mac>`: `payload` is base64url JSON claims,
//! `mac` is base64url HMAC-SHA256 over `v1.<kid>.<payload>` with the key named
//! by `kid`. The key id lets ops rotate keys: the [`Keyring`] signs with its
//! first key and accepts every key it holds, so tokens issued before a rotation
//! stay valid until they expire.
//!
//! Claims carry their kind (`"ticket"` or `"pass"`), so a ticket can never be
//! replayed as a pass even though both are signed by the same keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{ApiError, ErrorCode};

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// Shortest secret we accept: 32 bytes, the HMAC-SHA256 block of entropy.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest token we will even try to parse; real ones are ~250 bytes.
const MAX_TOKEN_LEN: usize = 2048;

/// Why a token was refused. Each maps to a clear 4xx for the client
/// ([`TokenError::refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token was signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is a {found}, expected a {expected}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("token has expired")]
    Expired,
    #[error("token belongs to round {found:?}, not {expected:?}")]
    WrongRound { expected: String, found: String },
}

impl TokenError {
    /// The error code of this refusal. Together with
    /// [`ErrorCode::http_status`] this is the one place a token refusal gets
    /// its status, for the edge, the waiting room and core alike:
    /// - malformed → 400 `token_malformed`;
    /// - expired → 401 `token_expired`: the token was good, the client must
    ///   go back for a new one (a new pass from the waiting room, or join
    ///   again for a ticket);
    /// - forged, another round's, or the wrong kind → 403.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            TokenError::Malformed => ErrorCode::TokenMalformed,
            TokenError::UnknownKey | TokenError::BadSignature => ErrorCode::TokenInvalid,
            TokenError::WrongKind { .. } => ErrorCode::TokenWrongKind,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::WrongRound { .. } => ErrorCode::TokenWrongRound,
        }
    }

    /// The HTTP status this refusal is answered with, everywhere.
    pub fn http_status(&self) -> u16 {
        self.error_code().http_status()
    }

    /// The JSON error body refusing `credential` for this reason, naming
    /// the credential as the field at fault.
    pub fn refusal(&self, credential: Credential) -> ApiError {
        let what = credential.field();
        let message = match (self, credential) {
            (TokenError::Expired, Credential::Pass) => {
                "your pass has expired, and with it your turn: go back to the waiting room and join the queue again"
                    .to_string()
            }
            (TokenError::Expired, Credential::Ticket) => {
                "your ticket has expired: join the queue again".to_string()
            }
            _ => format!("{what} refused: {self}"),
        };
        ApiError::for_field(self.error_code(), what, message)
    }
}

/// The two credentials a visitor presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A place in the queue ([`Ticket`]).
    Ticket,
    /// Permission to invest ([`Pass`]).
    Pass,
}

impl Credential {
    /// The field an error about this credential names.
    pub fn field(self) -> &'static str {
        match self {
            Credential::Ticket => "ticket",
            Credential::Pass => "pass",
        }
    }

    /// The code for a request that carries no such credential (401).
    pub fn missing(self) -> ErrorCode {
        match self {
            Credential::Ticket => ErrorCode::MissingTicket,
            Credential::Pass => ErrorCode::MissingPass,
        }
    }
}

/// Why a keyring specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("no signing keys given; expected `kid:secret[,kid:secret]`")]
    Empty,
    #[error("signing key entry {0} is not `kid:secret`")]
    NotAPair(usize),
    #[error("signing key {kid:?} is shorter than {MIN_SECRET_LEN} bytes")]
    TooShort { kid: String },
    #[error("signing key id {0:?} must be 1-16 characters of [A-Za-z0-9_-]")]
    BadKeyId(String),
    #[error("signing key id {0:?} appears twice")]
    Duplicate(String),
}

/// One signing key. The secret never appears in `Debug` output.
#[derive(Clone)]
struct SigningKey {
    kid: String,
    secret: Vec<u8>,
}

/// The keys a service signs and verifies with. The first key signs; all keys
/// verify (so a rotation is: prepend the new key, later drop the old one).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Keyring")
            .field("kids", &kids)
            .field("secrets", &"<secret>")
            .finish()
    }
}

impl Keyring {
    /// Parses `kid:secret[,kid:secret...]`; the first key is the signing key.
    pub fn parse(spec: &str) -> Result<Keyring, KeyringError> {
        let mut keys: Vec<SigningKey> = Vec::new();
        for (index, entry) in spec.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (kid, secret) = entry
                .split_once(':')
                .ok_or(KeyringError::NotAPair(index + 1))?;
            let valid_kid = !kid.is_empty()
                && kid.len() <= 16
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_kid {
                return Err(KeyringError::BadKeyId(kid.to_string()));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeyringError::TooShort {
                    kid: kid.to_string(),
                });
            }
            if keys.iter().any(|k| k.kid == kid) {
                return Err(KeyringError::Duplicate(kid.to_string()));
            }
            keys.push(SigningKey {
                kid: kid.to_string(),
                secret: secret.as_bytes().to_vec(),
            });
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Keyring { keys })
    }

    /// The key id new tokens are signed with.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Signs `claims` with the first key.
    pub fn sign<C: Claims>(&self, claims: &C) -> String {
        let key = &self.keys[0];
        let envelope = Envelope {
            kind: C::KIND.to_string(),
            claims,
        };
        // Serialising our own plain structs cannot fail.
        let json = serde_json::to_vec(&envelope).expect("claims serialise to JSON");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signed = format!("{VERSION}.{}.{payload}", key.kid);
        let mac = mac_for(&key.secret, signed.as_bytes())
            .finalize()
            .into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Verifies the signature (in constant time), the kind, the round and the
    /// expiry of `token` at `now_s` (Unix seconds).
    pub fn verify<C: Claims>(&self, token: &str, round: &str, now_s: u64) -> Result<C, TokenError> {
        if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(version), Some(kid), Some(payload), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed)?;
        let signed_len = token.len() - mac_len_in(token);
        mac_for(&key.secret, &token.as_bytes()[..signed_len])
            .verify_slice(&mac)
            .map_err(|_| TokenError::BadSignature)?;

        // Only a correctly signed payload is parsed.
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let envelope: Envelope<C> =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if envelope.kind != C::KIND {
            return Err(TokenError::WrongKind {
                expected: C::KIND,
                found: envelope.kind,
            });
        }
        let claims = envelope.claims;
        if claims.round() != round {
            return Err(TokenError::WrongRound {
                expected: round.to_string(),
                found: claims.round().to_string(),
            });
        }
        if now_s >= claims.expires_at() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// [`Keyring::verify`], refusing with the JSON error every side answers
    /// ([`TokenError::refusal`], status from its code); then the ticket id
    /// the token names must be one ([`is_ticket_id`]), and its investor (if
    /// any) a valid investor id, or 400 `invalid_field`.
    pub fn check<C: Claims>(&self, token: &str, round: &str, now_s: u64) -> Result<C, ApiError> {
        let claims = self
            .verify::<C>(token, round, now_s)
            .map_err(|err| err.refusal(C::CREDENTIAL))?;
        check_ticket_id(claims.ticket_id())?;
        // Like the ticket id, a signed investor id stands in Redis data:
        // one that is not an investor id is refused as a malformed token.
        if let Some(investor) = claims.investor()
            && crate::invest::validate_investor_id(&investor.id).is_err()
        {
            return Err(ApiError::for_field(
                ErrorCode::InvalidId,
                C::CREDENTIAL.field(),
                "the token names no valid investor",
            ));
        }
        Ok(claims)
    }
}

/// Length of the `.mac` suffix of a token (the last dot and what follows).
fn mac_len_in(token: &str) -> usize {
    token.len() - token.rfind('.').unwrap_or(token.len())
}

fn mac_for(secret: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    mac
}

#[derive(Serialize, Deserialize)]
struct Envelope<C> {
    #[serde(rename = "k")]
    kind: String,
    #[serde(flatten)]
    claims: C,
}

/// What a signed token says. Each kind names itself so kinds cannot be mixed.
pub trait Claims: Serialize + DeserializeOwned {
    const KIND: &'static str;
    /// Which credential this is, for error bodies.
    const CREDENTIAL: Credential;
    fn round(&self) -> &str;
    /// Unix seconds after which the token is refused.
    fn expires_at(&self) -> u64;
    /// The ticket the token is about (a ticket's own id, a pass's ticket).
    fn ticket_id(&self) -> &str;
    /// The signed-in investor who holds it (`None` in an anonymous room).
    fn investor(&self) -> Option<&Investor>;
}

/// The signed-in investor a ticket or pass belongs to, copied from the
/// verified identity token when they joined. Signed with the ticket, so the
/// investor of an investment comes from here, never from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investor {
    /// The investor id: the account settlement debits.
    pub id: String,
    /// Shown on the page ("Investing as …").
    #[serde(rename = "nm", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The investor's own maximum in pence (from the identity token); core
    /// applies the smaller of this and the round's maximum.
    #[serde(rename = "max", default, skip_serializing_if = "Option::is_none")]
    pub max_investment_pence: Option<i64>,
}

/// Whether `token` has the shape of one of our tickets or passes (as
/// opposed to, say, an identity JWT from the platform): the two can arrive
/// in the same `Authorization` header.
pub fn is_crowdgate_token(token: &str) -> bool {
    token.starts_with(VERSION) && token.as_bytes().get(VERSION.len()) == Some(&b'.')
}

/// Whether `id` can be a ticket id: 1-64 characters of letters, digits,
/// `-` and `_` (core hands out random hex). Ticket ids end up in Redis key
/// names, so even a validly signed token naming anything else (`:`, `*`,
/// `{`, `/`) is refused before it reaches a key.
pub fn is_ticket_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// [`is_ticket_id`], or 400 `invalid_field` naming `ticket`.
pub fn check_ticket_id(id: &str) -> Result<(), ApiError> {
    if is_ticket_id(id) {
        Ok(())
    } else {
        Err(ApiError::for_field(
            ErrorCode::InvalidId,
            "ticket",
            "not a ticket id",
        ))
    }
}

/// A visitor's place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Round this place belongs to.
    #[serde(rename = "r")]
    pub round: String,
    /// Ticket id, chosen by core, unique within the round.
    #[serde(rename = "t")]
    pub id: String,
    /// Queue number: admitted when `number <= admitted_up_to`. `None` marks
    /// a pre-queue ticket (joined before opening): its number is drawn by
    /// lottery at opening, and the ticket is re-issued with it.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// A pre-queue ticket's entry (join order, 1..): the number it draws at
    /// opening is [`crate::draw::number`] of it, which the edge computes
    /// from the published draw without asking core.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    /// Issued at, Unix seconds.
    #[serde(rename = "iat")]
    pub issued_at: u64,
    /// Expires at, Unix seconds.
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// Who joined (`None` in an anonymous room).
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub investor: Option<Investor>,
}

impl Claims for Ticket {
    const KIND: &'static str = "ticket";
    const CREDENTIAL: Credential = Credential::Ticket;
    fn round(&self) -> &str {
        &self.round
    }
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
    fn ticket_id(&self) -> &str {
        &self.id
    }
    fn investor(&self) -> Option<&Investor> {
        self.investor.as_ref()
    }
}

/// Permission to invest, handed out once a ticket's number is admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pass {
    #[serde(rename = "r")]
    pub round: String,
    /// The ticket this pass was issued for; core binds it to one investor.
    #[serde(rename = "t")]
    pub ticket: String,
    #[serde(rename = "n")]
    pub number: u64,
    #[serde(rename = "iat")]
    pub issued_at: u64,
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// The ticket's investor, copied by core when it signs the pass: the
    /// only investor this pass can invest for.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub investor: Option<Investor>,
}

impl Claims for Pass {
    const KIND: &'static str = "pass";
    const CREDENTIAL: Credential = Credential::Pass;
    fn round(&self) -> &str {
        &self.round
    }
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
    fn ticket_id(&self) -> &str {
        &self.ticket
    }
    fn investor(&self) -> Option<&Investor> {
        self.investor.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ka:0123456789abcdef0123456789abcdef";
    const B: &str = "kb:fedcba9876543210fedcba9876543210";

    fn ticket(exp: u64) -> Ticket {
        Ticket {
            round: "r1".into(),
            id: "t-1".into(),
            number: Some(42),
            entry: None,
            issued_at: 100,
            expires_at: exp,
            investor: None,
        }
    }

    fn ann() -> Investor {
        Investor {
            id: "ann@example.com".into(),
            name: Some("Ann Ó Briain".into()),
            max_investment_pence: Some(500_000),
        }
    }

    /// A token signed over `claims_json` as written, the way a build from
    /// before a claim existed signed it.
    fn sign_raw(secret: &str, kid: &str, claims_json: &str) -> String {
        let signed = format!(
            "{VERSION}.{kid}.{}",
            URL_SAFE_NO_PAD.encode(claims_json.as_bytes())
        );
        let mac = mac_for(secret.as_bytes(), signed.as_bytes())
            .finalize()
            .into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    #[test]
    fn round_trip() {
        let ring = Keyring::parse(A).unwrap();
        let token = ring.sign(&ticket(200));
        assert_eq!(
            ring.verify::<Ticket>(&token, "r1", 150).unwrap(),
            ticket(200)
        );
    }

    #[test]
    fn tickets_and_passes_carry_their_investor() {
        let ring = Keyring::parse(A).unwrap();
        let signed_in = Ticket {
            investor: Some(ann()),
            ..ticket(200)
        };
        let token = ring.sign(&signed_in);
        assert_eq!(ring.check::<Ticket>(&token, "r1", 150).unwrap(), signed_in);
        let pass = Pass {
            round: "r1".into(),
            ticket: "t-1".into(),
            number: 42,
            issued_at: 100,
            expires_at: 200,
            investor: Some(Investor {
                name: None,
                max_investment_pence: None,
                ..ann()
            }),
        };
        let token = ring.sign(&pass);
        assert_eq!(ring.check::<Pass>(&token, "r1", 150).unwrap(), pass);
        // Anonymous: no investor, and nothing of one in the token.
        let anonymous = Pass {
            investor: None,
            ..pass
        };
        let token = ring.sign(&anonymous);
        assert_eq!(ring.check::<Pass>(&token, "r1", 150).unwrap(), anonymous);
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(2).unwrap())
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims.get("i"), None, "{claims}");
    }

    #[test]
    fn tokens_issued_before_investors_existed_still_verify() {
        let secret = "0123456789abcdef0123456789abcdef";
        let ring = Keyring::parse(A).unwrap();
        let old_ticket = sign_raw(
            secret,
            "ka",
            r#"{"k":"ticket","r":"r1","t":"t-1","n":42,"iat":100,"exp":200}"#,
        );
        assert_eq!(
            ring.check::<Ticket>(&old_ticket, "r1", 150).unwrap(),
            ticket(200)
        );
        let old_pass = sign_raw(
            secret,
            "ka",
            r#"{"k":"pass","r":"r1","t":"t-1","n":42,"iat":100,"exp":200}"#,
        );
        let pass = ring.check::<Pass>(&old_pass, "r1", 150).unwrap();
        assert_eq!((pass.ticket.as_str(), pass.investor), ("t-1", None));
    }

    #[test]
    fn a_signed_token_naming_no_investor_id_is_refused() {
        let ring = Keyring::parse(A).unwrap();
        for id in ["", "ann smith", "x:y*{z}", &"a".repeat(65)] {
            let odd = Ticket {
                investor: Some(Investor {
                    id: id.to_string(),
                    ..ann()
                }),
                ..ticket(200)
            };
            let err = ring
                .check::<Ticket>(&ring.sign(&odd), "r1", 100)
                .unwrap_err();
            assert_eq!(err.field.as_deref(), Some("ticket"), "{id:?}");
            assert_eq!(err.http_status(), 400, "{id:?}");
        }
    }

    #[test]
    fn our_tokens_are_told_apart_from_identity_tokens() {
        let ring = Keyring::parse(A).unwrap();
        assert!(is_crowdgate_token(&ring.sign(&ticket(200))));
        for other in [
            // A platform JWT (header.payload.signature).
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln",
            "",
            "v1",
            "v10.ka.x.y",
            "V1.ka.x.y",
            "xv1.ka.x.y",
        ] {
            assert!(!is_crowdgate_token(other), "{other:?}");
        }
    }

    #[test]
    fn prequeue_tickets_have_an_entry_and_no_number() {
        let ring = Keyring::parse(A).unwrap();
        let prequeue = Ticket {
            number: None,
            entry: Some(7),
            ..ticket(200)
        };
        let token = ring.sign(&prequeue);
        assert_eq!(ring.verify::<Ticket>(&token, "r1", 150).unwrap(), prequeue);
    }

    #[test]
    fn rotation_accepts_old_key_and_signs_with_new() {
        let old = Keyring::parse(A).unwrap();
        let rotated = Keyring::parse(&format!("{B},{A}")).unwrap();
        let token = old.sign(&ticket(200));
        assert!(rotated.verify::<Ticket>(&token, "r1", 150).is_ok());
        assert_eq!(rotated.signing_kid(), "kb");
        let new_token = rotated.sign(&ticket(200));
        assert_eq!(
            old.verify::<Ticket>(&new_token, "r1", 150),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let ring = Keyring::parse(A).unwrap();
        let token = ring.sign(&ticket(200));
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = Ticket {
            number: Some(1),
            entry: None,
            ..ticket(200)
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Envelope {
                kind: "ticket".into(),
                claims: &forged_claims,
            })
            .unwrap(),
        );
        let forged = format!("{}.{}.{}.{}", parts[0], parts[1], forged_payload, parts[3]);
        assert_eq!(
            ring.verify::<Ticket>(&forged, "r1", 150),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn same_kid_other_secret_is_refused() {
        let ring = Keyring::parse(A).unwrap();
        let impostor = Keyring::parse("ka:ffffffffffffffffffffffffffffffff").unwrap();
        let token = impostor.sign(&ticket(200));
        assert_eq!(
            ring.verify::<Ticket>(&token, "r1", 150),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expiry_round_and_kind_are_checked() {
        let ring = Keyring::parse(A).unwrap();
        let token = ring.sign(&ticket(200));
        assert_eq!(
            ring.verify::<Ticket>(&token, "r1", 200),
            Err(TokenError::Expired)
        );
        assert!(matches!(
            ring.verify::<Ticket>(&token, "r2", 150),
            Err(TokenError::WrongRound { .. })
        ));
        assert!(matches!(
            ring.verify::<Pass>(&token, "r1", 150),
            Err(TokenError::WrongKind { .. })
        ));
    }

    #[test]
    fn a_signed_token_naming_no_ticket_id_is_refused() {
        let ring = Keyring::parse(A).unwrap();
        let mut odd = ticket(200);
        odd.id = "../../x:y*".into();
        let err = ring
            .check::<Ticket>(&ring.sign(&odd), "r1", 100)
            .unwrap_err();
        assert_eq!(
            (err.error, err.http_status(), err.field.as_deref()),
            (ErrorCode::InvalidId, 400, Some("ticket"))
        );
        assert!(
            ring.check::<Ticket>(&ring.sign(&ticket(200)), "r1", 100)
                .is_ok()
        );
    }

    #[test]
    fn refusals_have_one_status_each() {
        let ring = Keyring::parse(A).unwrap();
        let expired = ring.sign(&ticket(200));
        let err = ring.check::<Ticket>(&expired, "r1", 200).unwrap_err();
        assert_eq!(
            (err.error, err.http_status(), err.field.as_deref()),
            (ErrorCode::TokenExpired, 401, Some("ticket"))
        );
        for (refused, status) in [
            (TokenError::Malformed, 400),
            (TokenError::UnknownKey, 403),
            (TokenError::BadSignature, 403),
            (TokenError::Expired, 401),
            (
                TokenError::WrongKind {
                    expected: "pass",
                    found: "ticket".into(),
                },
                403,
            ),
            (
                TokenError::WrongRound {
                    expected: "a".into(),
                    found: "b".into(),
                },
                403,
            ),
        ] {
            assert_eq!(refused.http_status(), status, "{refused:?}");
            let body = refused.refusal(Credential::Pass);
            assert_eq!(body.http_status(), status);
            assert_eq!(body.field.as_deref(), Some("pass"));
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let ring = Keyring::parse(A).unwrap();
        for junk in [
            "",
            ".",
            "v1",
            "v1.ka",
            "v1.ka.x.y",
            "v2.ka.x.y",
            "v1.ka.@@.@@",
            "v1.ka.a.b.c",
            "é.é.é.é",
        ] {
            assert!(ring.verify::<Ticket>(junk, "r1", 0).is_err(), "{junk:?}");
        }
        assert_eq!(
            ring.verify::<Ticket>(&"a".repeat(5000), "r1", 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn keyring_spec_errors() {
        assert_eq!(Keyring::parse("").unwrap_err(), KeyringError::Empty);
        assert_eq!(
            Keyring::parse("nocolon").unwrap_err(),
            KeyringError::NotAPair(1)
        );
        assert!(matches!(
            Keyring::parse("k:short").unwrap_err(),
            KeyringError::TooShort { .. }
        ));
        assert!(matches!(
            Keyring::parse(&format!("{A},{A}")).unwrap_err(),
            KeyringError::Duplicate(_)
        ));
        assert!(matches!(
            Keyring::parse("bad kid:0123456789abcdef0123456789abcdef").unwrap_err(),
            KeyringError::BadKeyId(_)
        ));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let ring = Keyring::parse(A).unwrap();
        let shown = format!("{ring:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
