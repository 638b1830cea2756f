//! The identity attack table, at the unit level.
//!
//! An investor joins a round with an identity token (a JWT) the crowdfunding
//! platform signed; [`Verifier::verify`] is the one place Crowdgate decides
//! whether that token is an investor. Whatever it accepts becomes the
//! account settlement debits, so this file tries every way we know to get a
//! token past it that the platform did not mean: forged and stripped
//! signatures (`alg: none`), algorithm confusion (HS256 keyed with the RSA
//! public key, a token for one key type presented under another's `kid`),
//! stale or premature tokens, tokens for another issuer or audience,
//! missing claims, key ids we do not know, JWKS documents with keys we
//! must not use, investor ids that are not investor ids, and plain garbage.
//!
//! Each refusal asserts the exact [`IdentityError`] variant *and* that it is
//! answered 401 (through `error_code().http_status()` and the JSON refusal),
//! so a change that turns "not an investor" into a 4xx of another kind, or
//! into one reason instead of another, shows here. The good tokens, one per
//! supported algorithm (RS256, ES256, EdDSA, HS256 by shared secret and by
//! `oct` JWK), show the table is not passing by refusing everything.
//!
//! The clock is fixed ([`NOW`], passed as `now_s`): nothing here reads the
//! system clock, so the time cases are exact at the leeway's edges and the
//! file gives the same answer in any year.
//!
//! Keys: `tests/keys/*.pem` are throwaway PKCS#8 keys made once with
//! `openssl genpkey` (RSA 2048, P-256, Ed25519; `rsa-pub.pem` is the RSA
//! key's public half, which an attacker would have). The JWKS is computed
//! here from them, as the platform would publish it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crowdgate_identity::{
    Algorithm, Identity, IdentityClaims, IdentityError, KeySet, KeySetError, LEEWAY_S,
    MAX_NAME_CHARS, MAX_TOKEN_LEN, MIN_SHARED_SECRET_LEN, Verifier, key_id_of,
};
use crowdgate_protocol::ErrorCode;
use crowdgate_protocol::invest::MAX_AMOUNT_PENCE;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header, encode};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// The fixed clock: 2025-06-15T15:06:40Z.
const NOW: u64 = 1_750_000_000;
const ISS: &str = "https://platform.example";
const AUD: &str = "round-2025-spring";

/// Key ids in the provider's JWKS.
const RSA_KID: &str = "rsa-1";
/// The same RSA key, published without `alg` (RS256 implied by `kty`).
const RSA_IMPLIED_KID: &str = "rsa-implied";
const EC_KID: &str = "ec-1";
const ED_KID: &str = "ed-1";
const OCT_KID: &str = "oct-1";
/// The HS256 secret added with `with_shared_secret`.
const SHARED_KID: &str = "hs-1";

const RSA_PEM: &str = include_str!("keys/rsa.pem");
const RSA_PUBLIC_PEM: &str = include_str!("keys/rsa-pub.pem");
const RSA_OTHER_PEM: &str = include_str!("keys/rsa-other.pem");
const EC_PEM: &str = include_str!("keys/ec.pem");
const EC_OTHER_PEM: &str = include_str!("keys/ec-other.pem");
const ED_PEM: &str = include_str!("keys/ed25519.pem");
const ED_OTHER_PEM: &str = include_str!("keys/ed25519-other.pem");

const SHARED_SECRET: &[u8] = b"crowdgate-test-shared-secret-0123456789";
const OCT_SECRET: &[u8] = b"crowdgate-test-oct-jwk-secret-abcdefghij";

// ---------------------------------------------------------------- fixtures

/// The body of a PEM file, as DER.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("fixture PEM is base64")
}

fn rsa_private(pem: &str) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("fixture is a PKCS#8 RSA key")
}

/// jsonwebtoken's RSA signer wants PKCS#1 DER; the fixtures are PKCS#8.
fn rsa_signer(pem: &str) -> EncodingKey {
    let pkcs1 = rsa_private(pem).to_pkcs1_der().expect("RSA key re-encodes");
    EncodingKey::from_rsa_der(pkcs1.as_bytes())
}

/// The signing keys: the provider's, and an attacker's of each type.
struct Signers {
    rsa: EncodingKey,
    rsa_other: EncodingKey,
    ec: EncodingKey,
    ec_other: EncodingKey,
    ed: EncodingKey,
    ed_other: EncodingKey,
    shared: EncodingKey,
    oct: EncodingKey,
}

static SIGNERS: LazyLock<Signers> = LazyLock::new(|| Signers {
    rsa: rsa_signer(RSA_PEM),
    rsa_other: rsa_signer(RSA_OTHER_PEM),
    ec: EncodingKey::from_ec_der(&pem_der(EC_PEM)),
    ec_other: EncodingKey::from_ec_der(&pem_der(EC_OTHER_PEM)),
    ed: EncodingKey::from_ed_der(&pem_der(ED_PEM)),
    ed_other: EncodingKey::from_ed_der(&pem_der(ED_OTHER_PEM)),
    shared: EncodingKey::from_secret(SHARED_SECRET),
    oct: EncodingKey::from_secret(OCT_SECRET),
});

/// The public JWK of `key` (as the platform would publish it), with `kid`,
/// and with `alg` only when `with_alg`.
fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str, with_alg: bool) -> Value {
    let jwk = Jwk::from_encoding_key(key, alg).expect("public JWK from private key");
    let mut jwk = serde_json::to_value(jwk).expect("JWK serialises");
    let obj = jwk.as_object_mut().expect("JWK is an object");
    obj.insert("kid".into(), json!(kid));
    obj.insert("use".into(), json!("sig"));
    if !with_alg {
        obj.remove("alg");
    }
    jwk
}

fn oct_jwk(kid: &str, secret: &[u8]) -> Value {
    json!({"kty": "oct", "kid": kid, "alg": "HS256", "use": "sig", "k": b64(secret)})
}

/// The provider's JWKS: one key of each supported type (RSA twice, with and
/// without `alg`).
static JWKS: LazyLock<Value> = LazyLock::new(|| {
    let s = &*SIGNERS;
    json!({"keys": [
        public_jwk(&s.rsa, Algorithm::RS256, RSA_KID, true),
        public_jwk(&s.rsa, Algorithm::RS256, RSA_IMPLIED_KID, false),
        public_jwk(&s.ec, Algorithm::ES256, EC_KID, true),
        public_jwk(&s.ed, Algorithm::EdDSA, ED_KID, false),
        oct_jwk(OCT_KID, OCT_SECRET),
    ]})
});

/// The key set every case verifies with: the JWKS plus a shared secret.
static KEYS: LazyLock<KeySet> = LazyLock::new(|| {
    KeySet::from_jwks(&JWKS.to_string())
        .expect("the provider's JWKS reads")
        .with_shared_secret(Some(SHARED_KID), SHARED_SECRET)
        .expect("the shared secret is long enough")
});

fn verifier() -> Verifier {
    Verifier {
        issuer: ISS.into(),
        audience: AUD.into(),
    }
}

fn verify(token: &str) -> Result<Identity, IdentityError> {
    verifier().verify(token, &KEYS, NOW)
}

/// The RSA JWK's modulus, as published (base64url).
fn rsa_jwk_n() -> String {
    JWKS["keys"][0]["n"]
        .as_str()
        .expect("RSA JWK has n")
        .to_string()
}

// ------------------------------------------------------------------ tokens

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A good claim set: the platform's, for investor `investor-42`.
fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "investor-42",
        "exp": NOW + 300,
        "iat": NOW - 10,
        "name": "Ada Lovelace",
        "max_investment_pence": 500_000,
    })
}

/// `claims()` with fields replaced (or added).
fn claims_with(edits: &[(&str, Value)]) -> Value {
    let mut claims = claims();
    for (field, value) in edits {
        claims[*field] = value.clone();
    }
    claims
}

/// `claims()` without `field`.
fn claims_without(field: &str) -> Value {
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove(field);
    claims
}

/// A token signed with `key` for `alg`, naming `kid`.
fn mint(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("test token encodes")
}

fn rs256(claims: &Value) -> String {
    mint(Algorithm::RS256, Some(RSA_KID), &SIGNERS.rsa, claims)
}

/// A token built by hand: any header, any claims, any signature bytes.
fn hand_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// `token` with one byte of its signature changed.
fn flip_signature_byte(token: &str) -> String {
    let (message, signature) = token.rsplit_once('.').expect("token has a signature");
    let mut signature = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("signature is base64url");
    let middle = signature.len() / 2;
    signature[middle] ^= 0x01;
    format!("{message}.{}", b64(&signature))
}

/// `token` with its payload replaced by `claims`, the signature kept.
fn swap_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    format!(
        "{header}.{}.{signature}",
        b64(claims.to_string().as_bytes())
    )
}

// -------------------------------------------------------------- assertions

/// What a case expects.
#[derive(Debug)]
enum Want {
    /// Accepted as `investor-42` (the good claims' investor).
    Investor,
    /// Refused with exactly this error.
    Refused(IdentityError),
    /// Refused as [`IdentityError::InvalidClaim`] naming this claim (the
    /// `why` is a sentence for a person, not compared).
    InvalidClaim(&'static str),
    /// Refused as [`IdentityError::WrongClaimTypes`]: a claim of the wrong
    /// JSON type, said as such (not as "not a JWT").
    WrongTypes,
}

/// Checks every refusal the same way: the variant, and that it is a 401
/// whose JSON names `identity` (expired → `identity_expired`, everything
/// else → `identity_invalid`). Returns a line per mismatch.
fn check(case: &str, got: &Result<Identity, IdentityError>, want: &Want) -> Vec<String> {
    let mut failures = Vec::new();
    match (got, want) {
        (Ok(identity), Want::Investor) => {
            if identity.investor_id != "investor-42" {
                failures.push(format!("{case}: accepted as {identity:?}"));
            }
        }
        (Err(err), Want::Refused(expected)) if err == expected => {}
        (Err(IdentityError::InvalidClaim { claim, why }), Want::InvalidClaim(expected))
            if claim == expected && !why.is_empty() => {}
        (Err(IdentityError::WrongClaimTypes(why)), Want::WrongTypes) if !why.is_empty() => {}
        (got, want) => failures.push(format!("{case}: want {want:?}, got {got:?}")),
    }
    if let Err(err) = got {
        let code = err.error_code();
        let expected_code = match err {
            IdentityError::Expired => ErrorCode::IdentityExpired,
            _ => ErrorCode::IdentityInvalid,
        };
        if code != expected_code {
            failures.push(format!("{case}: {err:?} has code {code:?}"));
        }
        if code.http_status() != 401 {
            failures.push(format!("{case}: {err:?} answers {}", code.http_status()));
        }
        let refusal = err.refusal();
        if refusal.http_status() != 401 || refusal.field.as_deref() != Some("identity") {
            failures.push(format!("{case}: refusal {refusal:?}"));
        }
        // Only an unknown key is worth fetching the provider's keys for.
        let unknown_key = matches!(err, IdentityError::UnknownKey(_));
        if err.wants_fresh_keys() != unknown_key {
            failures.push(format!("{case}: wants_fresh_keys() is {}", !unknown_key));
        }
    }
    failures
}

/// Runs a table of (case, token, want) through [`verify`] and reports every
/// mismatch at once.
fn run_table(table: &[(&str, String, Want)]) {
    let failures: Vec<String> = table
        .iter()
        .flat_map(|(case, token, want)| check(case, &verify(token), want))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        table.len(),
        failures.join("\n  ")
    );
}

fn refused(err: IdentityError) -> Want {
    Want::Refused(err)
}

fn wrong_alg(alg: &str) -> Want {
    Want::Refused(IdentityError::WrongAlgorithm(alg.into()))
}

// ------------------------------------------------------------- good tokens

#[test]
fn a_good_token_of_each_supported_algorithm_is_an_investor() {
    let s = &*SIGNERS;
    // (case, algorithm, kid, signing key)
    let cases = [
        ("RS256 (RSA 2048)", Algorithm::RS256, RSA_KID, &s.rsa),
        (
            "RS256, JWK without alg",
            Algorithm::RS256,
            RSA_IMPLIED_KID,
            &s.rsa,
        ),
        ("ES256 (P-256)", Algorithm::ES256, EC_KID, &s.ec),
        ("EdDSA (Ed25519)", Algorithm::EdDSA, ED_KID, &s.ed),
        (
            "HS256, with_shared_secret",
            Algorithm::HS256,
            SHARED_KID,
            &s.shared,
        ),
        ("HS256, oct JWK", Algorithm::HS256, OCT_KID, &s.oct),
    ];
    for (case, alg, kid, key) in cases {
        let token = mint(alg, Some(kid), key, &claims());
        assert_eq!(key_id_of(&token).as_deref(), Some(kid), "{case}");
        assert_eq!(
            verify(&token),
            Ok(Identity {
                investor_id: "investor-42".into(),
                name: Some("Ada Lovelace".into()),
                max_investment_pence: Some(500_000),
                expires_at: NOW + 300,
            }),
            "{case}"
        );
    }
}

#[test]
fn the_fixture_jwks_is_what_the_platform_would_publish() {
    // Cross-check jsonwebtoken's JWK against the RSA key's own modulus and
    // exponent, so the key set is not trusted to itself.
    let public = rsa_private(RSA_PEM).to_public_key();
    assert_eq!(rsa_jwk_n(), b64(&public.n().to_bytes_be()));
    assert_eq!(JWKS["keys"][0]["e"], json!(b64(&public.e().to_bytes_be())));
    assert_eq!(public.n().bits(), 2048);
    assert_eq!(JWKS["keys"][2]["crv"], json!("P-256"));
    assert_eq!(JWKS["keys"][3]["crv"], json!("Ed25519"));
    assert!(KEYS.skipped().is_empty(), "{:?}", KEYS.skipped());
    assert_eq!(KEYS.len(), 6);
    for kid in [
        RSA_KID,
        RSA_IMPLIED_KID,
        EC_KID,
        ED_KID,
        OCT_KID,
        SHARED_KID,
    ] {
        assert!(KEYS.has_key_id(kid), "{kid}");
    }
}

#[test]
fn claims_minted_with_identity_claims_verify() {
    // The struct the development provider mints with is the one we read.
    let claims = IdentityClaims {
        iss: ISS.into(),
        aud: AUD.into(),
        sub: "investor-42".into(),
        exp: NOW + 60,
        iat: NOW,
        nbf: Some(NOW),
        name: None,
        max_investment_pence: None,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(ED_KID.into());
    let token = encode(&header, &claims, &SIGNERS.ed).unwrap();
    assert_eq!(
        verify(&token),
        Ok(Identity {
            investor_id: "investor-42".into(),
            name: None,
            max_investment_pence: None,
            expires_at: NOW + 60,
        })
    );
}

// -------------------------------------------------------------- signatures

#[test]
fn a_forged_signature_is_refused() {
    let s = &*SIGNERS;
    let c = claims();
    let bad = || refused(IdentityError::BadSignature);
    // The attacker's key, presented under the provider's kid.
    let mut attacker_header = Header::new(Algorithm::RS256);
    attacker_header.kid = Some(RSA_KID.into());
    // ...with the attacker's public key embedded and a URL to fetch it from:
    // the verifier must use only its own key set.
    attacker_header.jwk = Some(Jwk::from_encoding_key(&s.rsa_other, Algorithm::RS256).unwrap());
    attacker_header.jku = Some("https://attacker.example/jwks.json".into());
    let embedded_jwk = encode(&attacker_header, &c, &s.rsa_other).unwrap();

    run_table(&[
        (
            "RS256, flipped signature byte",
            flip_signature_byte(&rs256(&c)),
            bad(),
        ),
        (
            "ES256, flipped signature byte",
            flip_signature_byte(&mint(Algorithm::ES256, Some(EC_KID), &s.ec, &c)),
            bad(),
        ),
        (
            "EdDSA, flipped signature byte",
            flip_signature_byte(&mint(Algorithm::EdDSA, Some(ED_KID), &s.ed, &c)),
            bad(),
        ),
        (
            "HS256 shared, flipped signature byte",
            flip_signature_byte(&mint(Algorithm::HS256, Some(SHARED_KID), &s.shared, &c)),
            bad(),
        ),
        (
            "HS256 oct, flipped signature byte",
            flip_signature_byte(&mint(Algorithm::HS256, Some(OCT_KID), &s.oct, &c)),
            bad(),
        ),
        (
            "RS256 by another key, same kid",
            mint(Algorithm::RS256, Some(RSA_KID), &s.rsa_other, &c),
            bad(),
        ),
        (
            "ES256 by another key, same kid",
            mint(Algorithm::ES256, Some(EC_KID), &s.ec_other, &c),
            bad(),
        ),
        (
            "EdDSA by another key, same kid",
            mint(Algorithm::EdDSA, Some(ED_KID), &s.ed_other, &c),
            bad(),
        ),
        (
            "HS256 by another secret, shared-secret kid",
            mint(Algorithm::HS256, Some(SHARED_KID), &s.oct, &c),
            bad(),
        ),
        (
            "HS256 by the shared secret, oct kid",
            mint(Algorithm::HS256, Some(OCT_KID), &s.shared, &c),
            bad(),
        ),
        (
            "RS256 by another key, own jwk + jku in header",
            embedded_jwk,
            bad(),
        ),
        (
            "RS256, payload swapped (sub → investor-1), signature kept",
            swap_payload(&rs256(&c), &claims_with(&[("sub", json!("investor-1"))])),
            bad(),
        ),
        (
            "RS256, payload swapped (limit raised), signature kept",
            swap_payload(
                &rs256(&c),
                &claims_with(&[("max_investment_pence", json!(MAX_AMOUNT_PENCE))]),
            ),
            bad(),
        ),
        (
            "RS256, signature stripped",
            format!("{}.", rs256(&c).rsplit_once('.').unwrap().0),
            bad(),
        ),
        (
            "EdDSA, all-zero signature",
            hand_token(
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": ED_KID}),
                &c,
                &[0; 64],
            ),
            bad(),
        ),
    ]);
}

#[test]
fn alg_none_is_refused() {
    // RFC 7519 §6 unsecured JWTs: the header says "no signature". The
    // library knows no `none` algorithm, so the header does not even read.
    let c = claims();
    let signed = rs256(&c);
    let real_signature = URL_SAFE_NO_PAD
        .decode(signed.rsplit_once('.').unwrap().1)
        .unwrap();
    let malformed = || refused(IdentityError::Malformed);
    run_table(&[
        (
            "alg none, provider's kid, empty signature",
            hand_token(
                &json!({"alg": "none", "typ": "JWT", "kid": RSA_KID}),
                &c,
                b"",
            ),
            malformed(),
        ),
        (
            "alg none, no kid, empty signature",
            hand_token(&json!({"alg": "none", "typ": "JWT"}), &c, b""),
            malformed(),
        ),
        (
            "alg None (capitalised), provider's kid",
            hand_token(
                &json!({"alg": "None", "typ": "JWT", "kid": RSA_KID}),
                &c,
                b"",
            ),
            malformed(),
        ),
        (
            "alg NONE, provider's kid",
            hand_token(
                &json!({"alg": "NONE", "typ": "JWT", "kid": RSA_KID}),
                &c,
                b"",
            ),
            malformed(),
        ),
        (
            "alg none, a real signature kept",
            hand_token(
                &json!({"alg": "none", "typ": "JWT", "kid": RSA_KID}),
                &c,
                &real_signature,
            ),
            malformed(),
        ),
        (
            "alg none, two-part token",
            format!(
                "{}.{}",
                b64(json!({"alg": "none", "kid": RSA_KID})
                    .to_string()
                    .as_bytes()),
                b64(c.to_string().as_bytes())
            ),
            malformed(),
        ),
        (
            "no alg at all",
            hand_token(&json!({"typ": "JWT", "kid": RSA_KID}), &c, b""),
            malformed(),
        ),
    ]);
}

#[test]
fn algorithm_confusion_is_refused() {
    let s = &*SIGNERS;
    let c = claims();
    let hs256_keyed = |key: &[u8], kid: &str| {
        mint(
            Algorithm::HS256,
            Some(kid),
            &EncodingKey::from_secret(key),
            &c,
        )
    };
    let n = rsa_jwk_n();
    let n_bytes = URL_SAFE_NO_PAD.decode(&n).unwrap();
    let spki_der = pem_der(RSA_PUBLIC_PEM);
    run_table(&[
        // The classic: verify(HS256, key = the public key's bytes) passes
        // if the verifier lets the token choose the algorithm.
        (
            "HS256 keyed with the RSA public key's PEM, RSA kid",
            hs256_keyed(RSA_PUBLIC_PEM.as_bytes(), RSA_KID),
            wrong_alg("HS256"),
        ),
        (
            "HS256 keyed with the RSA public key's PEM, RSA kid (no alg in JWK)",
            hs256_keyed(RSA_PUBLIC_PEM.as_bytes(), RSA_IMPLIED_KID),
            wrong_alg("HS256"),
        ),
        (
            "HS256 keyed with the JWK's n (base64url text), RSA kid",
            hs256_keyed(n.as_bytes(), RSA_KID),
            wrong_alg("HS256"),
        ),
        (
            "HS256 keyed with the JWK's n (bytes), RSA kid",
            hs256_keyed(&n_bytes, RSA_IMPLIED_KID),
            wrong_alg("HS256"),
        ),
        (
            "HS256 keyed with the public key's DER, RSA kid",
            hs256_keyed(&spki_der, RSA_KID),
            wrong_alg("HS256"),
        ),
        (
            "HS256 keyed with the EC JWK's x, EC kid",
            hs256_keyed(JWKS["keys"][2]["x"].as_str().unwrap().as_bytes(), EC_KID),
            wrong_alg("HS256"),
        ),
        (
            "HS256 keyed with the Ed25519 JWK's x, Ed kid",
            hs256_keyed(JWKS["keys"][3]["x"].as_str().unwrap().as_bytes(), ED_KID),
            wrong_alg("HS256"),
        ),
        // A good signature, under the wrong kind of key's id.
        (
            "ES256 (valid, provider's EC key), RSA kid",
            mint(Algorithm::ES256, Some(RSA_KID), &s.ec, &c),
            wrong_alg("ES256"),
        ),
        (
            "EdDSA (valid, provider's Ed key), RSA kid",
            mint(Algorithm::EdDSA, Some(RSA_KID), &s.ed, &c),
            wrong_alg("EdDSA"),
        ),
        (
            "RS256 (valid, provider's RSA key), EC kid",
            mint(Algorithm::RS256, Some(EC_KID), &s.rsa, &c),
            wrong_alg("RS256"),
        ),
        (
            "RS256 (valid), oct kid",
            mint(Algorithm::RS256, Some(OCT_KID), &s.rsa, &c),
            wrong_alg("RS256"),
        ),
        (
            "HS256 (valid, oct secret), RSA kid",
            mint(Algorithm::HS256, Some(RSA_KID), &s.oct, &c),
            wrong_alg("HS256"),
        ),
        // Same key, another algorithm of its family: still not the key's one.
        (
            "RS512 by the provider's RSA key, RSA kid",
            mint(Algorithm::RS512, Some(RSA_KID), &s.rsa, &c),
            wrong_alg("RS512"),
        ),
        (
            "PS256 by the provider's RSA key, RSA kid (no alg in JWK)",
            mint(Algorithm::PS256, Some(RSA_IMPLIED_KID), &s.rsa, &c),
            wrong_alg("PS256"),
        ),
        (
            "HS512 by the oct secret, oct kid",
            mint(Algorithm::HS512, Some(OCT_KID), &s.oct, &c),
            wrong_alg("HS512"),
        ),
    ]);
}

// ------------------------------------------------------------------- times

#[test]
fn times_are_checked_on_the_callers_clock_with_leeway() {
    let t = |edits: &[(&str, Value)]| rs256(&claims_with(edits));
    let expired = || refused(IdentityError::Expired);
    let not_yet = || refused(IdentityError::NotYetValid);
    run_table(&[
        (
            "exp a day ago",
            t(&[("exp", json!(NOW - 86_400))]),
            expired(),
        ),
        ("exp at the epoch", t(&[("exp", json!(0))]), expired()),
        (
            "exp now: within leeway",
            t(&[("exp", json!(NOW))]),
            Want::Investor,
        ),
        (
            "exp leeway-1 s ago: within leeway",
            t(&[("exp", json!(NOW - LEEWAY_S + 1))]),
            Want::Investor,
        ),
        // RFC 7519 §4.1.4: the time must be *before* exp (+ leeway).
        (
            "exp exactly leeway ago",
            t(&[("exp", json!(NOW - LEEWAY_S))]),
            expired(),
        ),
        (
            "exp leeway+1 s ago",
            t(&[("exp", json!(NOW - LEEWAY_S - 1))]),
            expired(),
        ),
        ("nbf now", t(&[("nbf", json!(NOW))]), Want::Investor),
        (
            "nbf leeway ahead: within leeway",
            t(&[("nbf", json!(NOW + LEEWAY_S))]),
            Want::Investor,
        ),
        (
            "nbf leeway+1 s ahead",
            t(&[("nbf", json!(NOW + LEEWAY_S + 1))]),
            not_yet(),
        ),
        (
            "nbf a day ahead",
            t(&[("nbf", json!(NOW + 86_400))]),
            not_yet(),
        ),
        (
            "iat leeway ahead: within leeway",
            t(&[("iat", json!(NOW + LEEWAY_S))]),
            Want::Investor,
        ),
        (
            "iat leeway+1 s ahead",
            t(&[("iat", json!(NOW + LEEWAY_S + 1))]),
            not_yet(),
        ),
        (
            "iat a year ahead",
            t(&[("iat", json!(NOW + 31_536_000))]),
            not_yet(),
        ),
        (
            "expired and not yet valid: expiry wins",
            t(&[("exp", json!(NOW - 86_400)), ("nbf", json!(NOW + 86_400))]),
            expired(),
        ),
        // Times that are not Unix seconds do not read.
        (
            "exp as a string",
            t(&[("exp", json!((NOW + 300).to_string()))]),
            Want::WrongTypes,
        ),
        ("exp negative", t(&[("exp", json!(-1))]), Want::WrongTypes),
        (
            "exp fractional",
            t(&[("exp", json!(NOW as f64 + 300.5))]),
            Want::WrongTypes,
        ),
    ]);
}

#[test]
fn the_clock_is_the_callers_not_the_systems() {
    // A token from 2001, checked at a 2001 `now_s`: good. The library's own
    // clock (which would call it long expired) is not consulted.
    let then = 1_000_000_000;
    let token = rs256(&claims_with(&[
        ("iat", json!(then)),
        ("nbf", json!(then)),
        ("exp", json!(then + 300)),
    ]));
    let at = |now_s| verifier().verify(&token, &KEYS, now_s);
    assert!(at(then).is_ok());
    assert_eq!(at(then - LEEWAY_S - 1), Err(IdentityError::NotYetValid));
    assert!(at(then + 300 + LEEWAY_S - 1).is_ok());
    assert_eq!(at(then + 300 + LEEWAY_S), Err(IdentityError::Expired));
    assert_eq!(at(NOW), Err(IdentityError::Expired));
    // Clocks at the ends of the range do not overflow into acceptance.
    assert_eq!(at(u64::MAX), Err(IdentityError::Expired));
    assert_eq!(at(0), Err(IdentityError::NotYetValid));
}

// ------------------------------------------------------- issuer, audience

#[test]
fn only_our_issuer_and_audience_are_accepted() {
    let t = |field: &str, value: Value| rs256(&claims_with(&[(field, value)]));
    let wrong_iss = || refused(IdentityError::WrongIssuer);
    let wrong_aud = || refused(IdentityError::WrongAudience);
    run_table(&[
        (
            "iss another platform",
            t("iss", json!("https://evil.example")),
            wrong_iss(),
        ),
        (
            "iss with a trailing slash",
            t("iss", json!(format!("{ISS}/"))),
            wrong_iss(),
        ),
        (
            "iss in capitals",
            t("iss", json!(ISS.to_uppercase())),
            wrong_iss(),
        ),
        ("iss empty", t("iss", json!("")), wrong_iss()),
        // Our claims read `iss` as one string.
        ("iss as an array", t("iss", json!([ISS])), Want::WrongTypes),
        (
            "aud another round",
            t("aud", json!("round-2024-autumn")),
            wrong_aud(),
        ),
        (
            "aud with a suffix",
            t("aud", json!(format!("{AUD}x"))),
            wrong_aud(),
        ),
        ("aud empty", t("aud", json!("")), wrong_aud()),
        (
            "aud array with ours",
            t("aud", json!(["other-round", AUD])),
            Want::Investor,
        ),
        (
            "aud array of just ours",
            t("aud", json!([AUD])),
            Want::Investor,
        ),
        (
            "aud array without ours",
            t("aud", json!(["other-round", "round-2024-autumn"])),
            wrong_aud(),
        ),
        ("aud empty array", t("aud", json!([])), wrong_aud()),
        ("aud a number", t("aud", json!(42)), Want::WrongTypes),
    ]);
}

// ---------------------------------------------------------- missing claims

#[test]
fn required_claims_must_be_present() {
    // `iss`, `aud`, `sub`, `exp` and `iat` are required (lib.rs). Each
    // missing one must be refused, and named.
    let t = |field: &str| rs256(&claims_without(field));
    let missing = |claim: &str| refused(IdentityError::MissingClaim(claim.into()));
    run_table(&[
        ("no sub", t("sub"), missing("sub")),
        ("no exp", t("exp"), missing("exp")),
        ("no iss", t("iss"), missing("iss")),
        ("no aud", t("aud"), missing("aud")),
        ("no iat", t("iat"), missing("iat")),
        (
            "sub null",
            rs256(&claims_with(&[("sub", Value::Null)])),
            missing("sub"),
        ),
        (
            "exp null",
            rs256(&claims_with(&[("exp", Value::Null)])),
            missing("exp"),
        ),
    ]);
}

#[test]
fn optional_claims_may_be_absent() {
    let mut c = claims();
    for field in ["name", "max_investment_pence", "nbf"] {
        c.as_object_mut().unwrap().remove(field);
    }
    assert_eq!(
        verify(&rs256(&c)),
        Ok(Identity {
            investor_id: "investor-42".into(),
            name: None,
            max_investment_pence: None,
            expires_at: NOW + 300,
        })
    );
    // Unknown claims are ignored (a platform adds its own).
    let extra = claims_with(&[
        ("role", json!("admin")),
        ("email", json!("ada@example.com")),
    ]);
    assert!(verify(&rs256(&extra)).is_ok());
}

// ------------------------------------------------------------------ key ids

#[test]
fn the_key_is_chosen_by_kid_and_only_by_kid() {
    let s = &*SIGNERS;
    let c = claims();
    let unknown = |kid: &str| refused(IdentityError::UnknownKey(kid.into()));
    run_table(&[
        (
            "a kid the provider does not publish",
            mint(Algorithm::RS256, Some("rotated-2025-07"), &s.rsa, &c),
            unknown("rotated-2025-07"),
        ),
        (
            "an empty kid",
            mint(Algorithm::RS256, Some(""), &s.rsa, &c),
            unknown(""),
        ),
        (
            "a path as kid",
            mint(Algorithm::RS256, Some("../../keys/rsa-1"), &s.rsa, &c),
            unknown("../../keys/rsa-1"),
        ),
        (
            "kid differs only in case",
            mint(Algorithm::RS256, Some("RSA-1"), &s.rsa, &c),
            unknown("RSA-1"),
        ),
        (
            "no kid, several keys",
            mint(Algorithm::RS256, None, &s.rsa, &c),
            refused(IdentityError::NoKeyId),
        ),
        (
            "no kid, several keys, HS256",
            mint(Algorithm::HS256, None, &s.shared, &c),
            refused(IdentityError::NoKeyId),
        ),
    ]);

    let unknown = verify(&mint(Algorithm::ES256, Some("rotated"), &s.ec, &c)).unwrap_err();
    assert!(unknown.wants_fresh_keys());
    assert_eq!(unknown.error_code().http_status(), 401);
    assert!(!IdentityError::NoKeyId.wants_fresh_keys());
    assert!(!IdentityError::BadSignature.wants_fresh_keys());
}

#[test]
fn a_token_without_kid_uses_the_only_key() {
    let s = &*SIGNERS;
    let c = claims();
    let one_rsa = KeySet::from_jwks(
        &json!({"keys": [public_jwk(&s.rsa, Algorithm::RS256, RSA_KID, true)]}).to_string(),
    )
    .unwrap();
    let secret_only = KeySet::default()
        .with_shared_secret(None, SHARED_SECRET)
        .unwrap();
    let v = verifier();

    let no_kid = mint(Algorithm::RS256, None, &s.rsa, &c);
    assert_eq!(key_id_of(&no_kid), None);
    assert_eq!(
        v.verify(&no_kid, &one_rsa, NOW).unwrap().investor_id,
        "investor-42"
    );
    let hs_no_kid = mint(Algorithm::HS256, None, &s.shared, &c);
    assert_eq!(
        v.verify(&hs_no_kid, &secret_only, NOW).unwrap().investor_id,
        "investor-42"
    );

    // The only key still fixes the algorithm and checks the signature.
    let refusals = [
        (
            "no kid, one RSA key, HS256 keyed with its PEM",
            v.verify(
                &mint(
                    Algorithm::HS256,
                    None,
                    &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
                    &c,
                ),
                &one_rsa,
                NOW,
            ),
            wrong_alg("HS256"),
        ),
        (
            "no kid, one RSA key, another RSA key's signature",
            v.verify(
                &mint(Algorithm::RS256, None, &s.rsa_other, &c),
                &one_rsa,
                NOW,
            ),
            refused(IdentityError::BadSignature),
        ),
        (
            "no kid, one RSA key, alg none",
            v.verify(
                &hand_token(&json!({"alg": "none", "typ": "JWT"}), &c, b""),
                &one_rsa,
                NOW,
            ),
            refused(IdentityError::Malformed),
        ),
        (
            // A key configured without an id is *the* key, whatever id the
            // platform stamps on its tokens; the signature still decides.
            "a kid, only a kid-less secret",
            v.verify(
                &mint(Algorithm::HS256, Some("hs-1"), &s.shared, &c),
                &secret_only,
                NOW,
            ),
            Want::Investor,
        ),
        (
            "no kid, empty key set",
            v.verify(&no_kid, &KeySet::default(), NOW),
            refused(IdentityError::NoKeyId),
        ),
    ];
    let failures: Vec<String> = refusals
        .iter()
        .flat_map(|(case, got, want)| check(case, got, want))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn key_id_of_reads_the_header_only() {
    assert_eq!(key_id_of(&rs256(&claims())).as_deref(), Some(RSA_KID));
    // Before any verification: a forged token's kid is still read (it only
    // decides whether to fetch keys again).
    let forged = mint(
        Algorithm::RS256,
        Some("new-key"),
        &SIGNERS.rsa_other,
        &claims(),
    );
    assert_eq!(key_id_of(&forged).as_deref(), Some("new-key"));
    assert_eq!(key_id_of("garbage"), None);
    assert_eq!(key_id_of(""), None);
    assert_eq!(
        key_id_of(&hand_token(
            &json!({"alg": "none", "kid": "k"}),
            &claims(),
            b""
        )),
        None
    );
}

// ----------------------------------------------------------------- the JWKS

/// A JWKS of these keys.
fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// The provider's RSA key, with some fields changed.
fn rsa_jwk_with(kid: &str, edits: &[(&str, Value)]) -> Value {
    let mut jwk = public_jwk(&SIGNERS.rsa, Algorithm::RS256, kid, true);
    for (field, value) in edits {
        jwk[*field] = value.clone();
    }
    jwk
}

#[test]
fn unusable_jwks_keys_are_skipped_not_trusted() {
    let s = &*SIGNERS;
    let good = public_jwk(&s.ed, Algorithm::EdDSA, ED_KID, true);
    // (case, the skipped key, its kid)
    let skipped: Vec<(&str, Value, &str)> = vec![
        (
            "RSA key claiming alg ES256",
            rsa_jwk_with("rsa-es", &[("alg", json!("ES256"))]),
            "rsa-es",
        ),
        (
            "RSA key claiming alg HS256",
            rsa_jwk_with("rsa-hs", &[("alg", json!("HS256"))]),
            "rsa-hs",
        ),
        (
            "EC key claiming alg RS256",
            {
                let mut jwk = public_jwk(&s.ec, Algorithm::ES256, "ec-rs", true);
                jwk["alg"] = json!("RS256");
                jwk
            },
            "ec-rs",
        ),
        (
            "oct key claiming alg EdDSA",
            {
                let mut jwk = oct_jwk("oct-ed", OCT_SECRET);
                jwk["alg"] = json!("EdDSA");
                jwk
            },
            "oct-ed",
        ),
        (
            "RSA key for RS512 (not ours)",
            rsa_jwk_with("rsa-512", &[("alg", json!("RS512"))]),
            "rsa-512",
        ),
        (
            "RSA key for RSA-OAEP",
            rsa_jwk_with("rsa-oaep", &[("alg", json!("RSA-OAEP"))]),
            "rsa-oaep",
        ),
        (
            "RSA key with use: enc",
            rsa_jwk_with("rsa-enc", &[("use", json!("enc"))]),
            "rsa-enc",
        ),
        (
            "RSA key with an unknown use",
            rsa_jwk_with("rsa-other-use", &[("use", json!("tls"))]),
            "rsa-other-use",
        ),
        (
            "oct key with use: enc",
            {
                let mut jwk = oct_jwk("oct-enc", OCT_SECRET);
                jwk["use"] = json!("enc");
                jwk
            },
            "oct-enc",
        ),
        (
            "oct key of 31 bytes",
            oct_jwk("oct-short", &OCT_SECRET[..MIN_SHARED_SECRET_LEN - 1]),
            "oct-short",
        ),
        ("oct key of 0 bytes", oct_jwk("oct-empty", b""), "oct-empty"),
        (
            "X25519 key (ECDH)",
            json!({"kty": "OKP", "crv": "X25519", "kid": "x25519",
                   "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}),
            "x25519",
        ),
        (
            "P-384 key (not ours)",
            json!({"kty": "EC", "crv": "P-384", "kid": "p384",
                   "x": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLCAkTWNtW8XBhGmOG5oxgF0Q2RwZ-K6PIKdF",
                   "y": "PMIFnMIxO1oc8u1A_cgvnH4vsOg_h3fKUI4Ky9_0_Uk3o7yKNuMS8mH9ziR5T8Wb"}),
            "p384",
        ),
        (
            "unknown kty",
            json!({"kty": "AKP", "kid": "pq", "alg": "ML-DSA-44", "pub": "AAAA"}),
            "pq",
        ),
    ];
    for (case, jwk, kid) in &skipped {
        let set = KeySet::from_jwks(&jwks(&[jwk.clone(), good.clone()]))
            .unwrap_or_else(|e| panic!("{case}: the whole set failed: {e:?}"));
        assert_eq!(set.len(), 1, "{case}");
        assert!(!set.has_key_id(kid), "{case}: taken");
        assert!(set.has_key_id(ED_KID), "{case}");
        assert_eq!(set.skipped().len(), 1, "{case}: {:?}", set.skipped());
        assert!(
            set.skipped()[0].starts_with(kid),
            "{case}: {:?}",
            set.skipped()
        );

        // On its own, the set has nothing to verify with.
        match KeySet::from_jwks(&jwks(std::slice::from_ref(jwk))) {
            Err(KeySetError::NoUsableKey(why)) => assert!(why.contains(kid), "{case}: {why}"),
            other => panic!("{case}: want NoUsableKey, got {other:?}"),
        }
    }

    // A token naming a skipped key is an unknown key, whatever it is signed
    // with: an encryption key never verifies.
    let set = KeySet::from_jwks(&jwks(&[
        rsa_jwk_with("rsa-enc", &[("use", json!("enc"))]),
        rsa_jwk_with("rsa-hs", &[("alg", json!("HS256"))]),
        oct_jwk("oct-short", &OCT_SECRET[..16]),
        good.clone(),
    ]))
    .unwrap();
    assert_eq!(set.skipped().len(), 3, "{:?}", set.skipped());
    let v = verifier();
    let c = claims();
    let cases = [
        (
            "RS256 under an enc key's kid",
            v.verify(
                &mint(Algorithm::RS256, Some("rsa-enc"), &s.rsa, &c),
                &set,
                NOW,
            ),
            refused(IdentityError::UnknownKey("rsa-enc".into())),
        ),
        (
            "HS256 under a contradictory key's kid",
            v.verify(
                &mint(
                    Algorithm::HS256,
                    Some("rsa-hs"),
                    &EncodingKey::from_secret(RSA_PUBLIC_PEM.as_bytes()),
                    &c,
                ),
                &set,
                NOW,
            ),
            refused(IdentityError::UnknownKey("rsa-hs".into())),
        ),
        (
            "HS256 under a short secret's kid",
            v.verify(
                &mint(
                    Algorithm::HS256,
                    Some("oct-short"),
                    &EncodingKey::from_secret(&OCT_SECRET[..16]),
                    &c,
                ),
                &set,
                NOW,
            ),
            refused(IdentityError::UnknownKey("oct-short".into())),
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|(case, got, want)| check(case, got, want))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_jwks_that_cannot_be_used_is_an_error() {
    let s = &*SIGNERS;
    let rsa = public_jwk(&s.rsa, Algorithm::RS256, RSA_KID, true);
    let not_jwks = |doc: &str| match KeySet::from_jwks(doc) {
        Err(KeySetError::NotJwks(_)) => {}
        other => panic!("{doc:?}: want NotJwks, got {other:?}"),
    };
    not_jwks("");
    not_jwks("not json");
    not_jwks("<html>502 Bad Gateway</html>");
    not_jwks("[]");
    not_jwks("{}");
    not_jwks(r#"{"keys": {}}"#);
    not_jwks(r#"{"keys": "rsa-1"}"#);
    not_jwks(&rsa.to_string()); // one JWK, not a set
    not_jwks(&format!(r#"{{"keys": [{rsa}]"#)); // truncated

    assert_eq!(
        KeySet::from_jwks(r#"{"keys": []}"#).unwrap_err(),
        KeySetError::NoUsableKey(String::new())
    );
    assert!(matches!(
        KeySet::from_jwks(&jwks(&[
            rsa_jwk_with("a", &[("use", json!("enc"))]),
            oct_jwk("b", b"short"),
        ])),
        Err(KeySetError::NoUsableKey(_))
    ));

    // The same kid twice is an error, not a choice of keys.
    assert_eq!(
        KeySet::from_jwks(&jwks(&[
            rsa.clone(),
            public_jwk(&s.rsa_other, Algorithm::RS256, RSA_KID, true),
        ]))
        .unwrap_err(),
        KeySetError::DuplicateKeyId(RSA_KID.into())
    );
    assert_eq!(
        KeySet::from_jwks(&jwks(&[rsa.clone(), oct_jwk(RSA_KID, OCT_SECRET)])).unwrap_err(),
        KeySetError::DuplicateKeyId(RSA_KID.into())
    );
    assert_eq!(
        KeySet::from_jwks(&jwks(std::slice::from_ref(&rsa)))
            .unwrap()
            .with_shared_secret(Some(RSA_KID), SHARED_SECRET)
            .unwrap_err(),
        KeySetError::DuplicateKeyId(RSA_KID.into())
    );

    // A shared secret is at least 32 bytes.
    assert_eq!(
        KeySet::default()
            .with_shared_secret(Some("hs"), &SHARED_SECRET[..MIN_SHARED_SECRET_LEN - 1])
            .unwrap_err(),
        KeySetError::SecretTooShort
    );
    assert!(
        KeySet::default()
            .with_shared_secret(Some("hs"), &SHARED_SECRET[..MIN_SHARED_SECRET_LEN])
            .is_ok()
    );
}

// ------------------------------------------------------ the claims' values

#[test]
fn sub_must_be_an_investor_id_and_the_limit_in_range() {
    let t = |field: &str, value: Value| rs256(&claims_with(&[(field, value)]));
    let bad_sub = || Want::InvalidClaim("sub");
    let bad_limit = || Want::InvalidClaim("max_investment_pence");
    run_table(&[
        (
            "sub with a colon",
            t("sub", json!("alice:admin")),
            bad_sub(),
        ),
        ("sub empty", t("sub", json!("")), bad_sub()),
        (
            "sub of 65 chars",
            t("sub", json!("a".repeat(65))),
            bad_sub(),
        ),
        (
            "sub with a space",
            t("sub", json!("alice smith")),
            bad_sub(),
        ),
        (
            "sub with a slash",
            t("sub", json!("../investor-1")),
            bad_sub(),
        ),
        (
            "sub with a newline",
            t("sub", json!("investor-42\n")),
            bad_sub(),
        ),
        (
            "sub with a NUL",
            t("sub", json!("investor-42\u{0}")),
            bad_sub(),
        ),
        ("sub non-ASCII", t("sub", json!("investör")), bad_sub()),
        ("sub a number", t("sub", json!(42)), Want::WrongTypes),
        (
            "limit negative",
            t("max_investment_pence", json!(-1)),
            bad_limit(),
        ),
        (
            "limit i64::MIN",
            t("max_investment_pence", json!(i64::MIN)),
            bad_limit(),
        ),
        (
            "limit above the largest amount",
            t("max_investment_pence", json!(MAX_AMOUNT_PENCE + 1)),
            bad_limit(),
        ),
        (
            "limit i64::MAX",
            t("max_investment_pence", json!(i64::MAX)),
            bad_limit(),
        ),
        (
            "limit beyond i64",
            t("max_investment_pence", json!(u64::MAX)),
            Want::WrongTypes,
        ),
        (
            "limit fractional",
            t("max_investment_pence", json!(100.5)),
            Want::WrongTypes,
        ),
        (
            "limit as a string",
            t("max_investment_pence", json!("1000")),
            Want::WrongTypes,
        ),
    ]);

    let limit = |value: i64| {
        verify(&t("max_investment_pence", json!(value)))
            .map(|identity| identity.max_investment_pence)
    };
    assert_eq!(limit(0), Ok(Some(0)));
    assert_eq!(limit(MAX_AMOUNT_PENCE), Ok(Some(MAX_AMOUNT_PENCE)));
    let sub = |value: &str| verify(&t("sub", json!(value))).map(|identity| identity.investor_id);
    let longest = "a".repeat(64);
    assert_eq!(sub(&longest), Ok(longest.clone()));
    assert_eq!(
        sub("ada.lovelace@example.com"),
        Ok("ada.lovelace@example.com".into())
    );
    assert_eq!(sub("inv_0-9.A@Z"), Ok("inv_0-9.A@Z".into()));
}

#[test]
fn the_name_is_cleaned_for_display() {
    let name_of = |name: Value| {
        verify(&rs256(&claims_with(&[("name", name)])))
            .expect("a name never refuses the token")
            .name
    };
    assert_eq!(name_of(json!("Ada Lovelace")), Some("Ada Lovelace".into()));
    assert_eq!(
        name_of(json!("Ada\u{0}\u{7}\r\n\tLove\u{1b}[31mlace\u{7f}\u{9b}")),
        Some("AdaLove[31mlace".into())
    );
    assert_eq!(name_of(json!("  Ada  ")), Some("Ada".into()));
    assert_eq!(name_of(json!("\u{0}\n\t ")), None);
    assert_eq!(name_of(json!("")), None);
    assert_eq!(name_of(Value::Null), None);

    let long = name_of(json!("x".repeat(200))).unwrap();
    assert_eq!(long.chars().count(), MAX_NAME_CHARS);
    // Cut by characters, not bytes: never inside a multi-byte character.
    let long = name_of(json!("é".repeat(200))).unwrap();
    assert_eq!(long, "é".repeat(MAX_NAME_CHARS));
    let mixed = name_of(json!(format!("{}{}", "\u{1}".repeat(100), "y".repeat(100)))).unwrap();
    assert_eq!(mixed, "y".repeat(MAX_NAME_CHARS));

    // A name of the wrong JSON type does not read.
    assert!(matches!(
        verify(&rs256(&claims_with(&[("name", json!(["Ada"]))]))),
        Err(IdentityError::WrongClaimTypes(_))
    ));
}

// ---------------------------------------------------------------- garbage

#[test]
fn what_is_not_a_jwt_is_malformed() {
    let c = claims();
    let good = rs256(&c);
    // Validly signed, but over the size limit: refused before any parsing.
    let huge = rs256(&claims_with(&[("name", json!("x".repeat(10 * 1024)))]));
    assert!(huge.len() > MAX_TOKEN_LEN);
    let (header, rest) = good.split_once('.').unwrap();
    let malformed = || refused(IdentityError::Malformed);
    run_table(&[
        ("a validly signed 10 KB token", huge, malformed()),
        ("10 KB of garbage", "a".repeat(10 * 1024), malformed()),
        ("10 KB of dots", ".".repeat(10 * 1024), malformed()),
        ("good token + non-ASCII", format!("{good}é"), malformed()),
        (
            "non-ASCII in the header",
            format!("{header}é.{rest}"),
            malformed(),
        ),
        (
            "a fullwidth dot",
            good.replacen('.', "\u{ff0e}", 1),
            malformed(),
        ),
        ("empty", String::new(), malformed()),
        ("garbage", "not a jwt".into(), malformed()),
        ("one part", header.to_string(), malformed()),
        (
            "two parts",
            format!("{header}.{}", rest.split('.').next().unwrap()),
            malformed(),
        ),
        ("four parts", format!("{good}.{header}"), malformed()),
        ("three dots", "...".into(), malformed()),
        ("Bearer prefix kept", format!("Bearer {good}"), malformed()),
        ("padded base64", format!("{header}=.{rest}"), malformed()),
        ("header not base64", format!("!!!.{rest}"), malformed()),
        (
            "header not JSON",
            format!("{}.{rest}", b64(b"alg=RS256")),
            malformed(),
        ),
        (
            "header a JSON array",
            format!("{}.{rest}", b64(br#"["RS256"]"#)),
            malformed(),
        ),
        (
            "header with an unknown alg",
            hand_token(&json!({"alg": "RS257", "kid": RSA_KID}), &c, b"sig"),
            malformed(),
        ),
        // The signature is checked before the payload is read, so a
        // mangled payload is a signature that does not match it.
        (
            "good header, payload not base64",
            format!("{header}.!!!.{}", good.rsplit_once('.').unwrap().1),
            refused(IdentityError::BadSignature),
        ),
        (
            "signature not base64",
            format!("{}.!!!", good.rsplit_once('.').unwrap().0),
            malformed(),
        ),
    ]);

    // Signed by the provider, but not a claim set we read.
    let signed_payload = |payload: &[u8]| {
        let header = b64(json!({"alg": "HS256", "typ": "JWT", "kid": OCT_KID})
            .to_string()
            .as_bytes());
        let message = format!("{header}.{}", b64(payload));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &SIGNERS.oct, Algorithm::HS256)
                .expect("HMAC signs");
        format!("{message}.{signature}")
    };
    // Check the hand-signing helper against a good payload first.
    assert!(verify(&signed_payload(c.to_string().as_bytes())).is_ok());
    run_table(&[
        (
            "signed payload not JSON",
            signed_payload(b"investor-42"),
            malformed(),
        ),
        (
            "signed payload a JSON array",
            signed_payload(b"[1,2]"),
            malformed(),
        ),
        (
            "signed payload a JSON string",
            signed_payload(br#""x""#),
            malformed(),
        ),
        ("signed payload empty", signed_payload(b""), malformed()),
    ]);
}

#[test]
fn a_long_but_real_token_is_not_malformed() {
    // The size limit is for garbage, not for a platform that adds claims.
    let long_name = "N".repeat(4_000);
    let token = rs256(&claims_with(&[("name", json!(long_name))]));
    assert!(
        token.len() > 4 * 1024 && token.len() <= MAX_TOKEN_LEN,
        "{}",
        token.len()
    );
    let identity = verify(&token).unwrap();
    assert_eq!(identity.name.unwrap().chars().count(), MAX_NAME_CHARS);
}

#[test]
fn every_refusal_is_a_401_naming_identity() {
    let all = [
        IdentityError::Malformed,
        IdentityError::UnknownKey("k".into()),
        IdentityError::NoKeyId,
        IdentityError::WrongAlgorithm("HS256".into()),
        IdentityError::BadSignature,
        IdentityError::Expired,
        IdentityError::NotYetValid,
        IdentityError::WrongIssuer,
        IdentityError::WrongAudience,
        IdentityError::MissingClaim("sub".into()),
        IdentityError::InvalidClaim {
            claim: "sub",
            why: "no".into(),
        },
    ];
    for err in &all {
        assert!(check("variant", &Err(err.clone()), &Want::Refused(err.clone())).is_empty());
        let json: Value = serde_json::from_str(&err.refusal().to_json()).unwrap();
        let code = if *err == IdentityError::Expired {
            "identity_expired"
        } else {
            "identity_invalid"
        };
        assert_eq!(json["error"], json!(code), "{err:?}");
        assert_eq!(json["field"], json!("identity"), "{err:?}");
    }
}
