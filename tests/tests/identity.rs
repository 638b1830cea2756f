//! Investor identity, end to end with real processes: the platform signs
//! investors in with a short-lived JWT, the waiting room verifies it once
//! at `POST /api/join` (or `/signin` for a browser), and from then on the
//! investor travels inside our own signed ticket and pass.
//!
//! Why these tests: identity is what stops one person from queueing many
//! times or investing with someone else's money, so every way round it is
//! tried here against the real edge, core and Redis:
//! - the attack table — forged, tampered, `alg: none`, HS256 keyed with the
//!   public key (algorithm confusion), expired, not yet valid, another
//!   issuer, audience or round, an unknown key, garbage — each refused with
//!   401 and its code, and nothing written (no queue number, no place);
//! - a token arriving in the sign-in URL becomes an HttpOnly cookie and is
//!   never written to a log;
//! - one investor holds one place from every browser and app;
//! - nobody invests or reads an investment as someone else (edge API, core,
//!   the no-JavaScript form), and a limit claim lowers the maximum;
//! - an anonymous round queues anyone, but nobody invests without identity;
//! - keys fetched from the provider: a new key is picked up at once (refetch
//!   on an unknown key id), a removed key stops working within the cache's
//!   max age, and an unreachable provider is a 503, never a guess.

use crowdgate_identity::dev::DevSigner;
use crowdgate_identity::{IdentityClaims, KeySet, Verifier};
use crowdgate_protocol::Ticket;
use crowdgate_tests::{
    IDENTITY_ISSUER, ROUND, RoundOptions, SIGN_IN_URL, System, Visitor, core_http, get_text,
    identity_claims, identity_env, identity_signer, identity_token, json_of, keyring, now_s,
    pass_token, post_invest_form,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// What a join may write: the round's `issued` counter and the investor
/// places hash.
async fn written(system: &System) -> (i64, HashMap<String, String>) {
    let issued = system.round_field("issued").await;
    let places: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(system.keys().investor_places())
        .query_async(&mut system.redis().await)
        .await
        .unwrap();
    (issued, places)
}

/// `POST /api/join` presenting `token` as an app does (bearer), from a
/// client without cookies (so no ticket stands in for the identity).
async fn join_with_token(edge: &str, token: &str) -> (u16, Value) {
    json_of(
        reqwest::Client::new()
            .post(format!("{edge}/api/join"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The ticket of a join's answer, verified.
fn ticket_of(joined: &Value) -> Ticket {
    let token = joined["ticket"].as_str().expect("a ticket in the answer");
    keyring()
        .verify::<Ticket>(token, ROUND, now_s())
        .expect("a ticket the edge signed")
}

/// Asserts a 401 identity refusal with `code`, naming the `identity` field
/// and ending with the way back to the platform's sign-in.
fn assert_identity_refusal(what: &str, (status, body): &(u16, Value), code: &str) {
    assert_eq!(
        (*status, body["error"].as_str(), body["field"].as_str()),
        (401, Some(code), Some("identity")),
        "{what}: {body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.ends_with(&format!(" at {SIGN_IN_URL}")) && !message.contains(". at "),
        "{what}: the refusal does not say where to sign in: {message:?}"
    );
}

/// A browser: cookies kept, redirects not followed (to see them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Polls the page in `browser` until it offers the no-JavaScript invest
/// form; returns the form's idempotency key.
async fn wait_for_invest_form(browser: &reqwest::Client, edge: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = browser
            .get(format!("{edge}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if let Some(rest) = page.split(r#"name="key" value=""#).nth(1) {
            return rest.split('"').next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "never admitted:\n{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// --- Hand-made JWTs for the attacks ----------------------------------------
//
// The tests crate has no JOSE or hash library of its own, so base64url and
// HMAC-SHA256 are written out here; `forged_hs256` proves its own tokens
// right by verifying them with crowdgate-identity (jsonwebtoken) configured
// to trust that HMAC key, so an attack refused by the edge is a real one.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let at = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (at(0) << 16) | (at(1) << 8) | at(2);
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn b64url_decode(text: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.bytes() {
        let value = B64.iter().position(|&b| b == c).expect("base64url") as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(sha256(&inner))
        .collect();
    sha256(&outer)
}

/// `header.payload.` with `header` and `claims` as JSON (no signature yet).
fn unsigned(header: &Value, claims: &IdentityClaims) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(&serde_json::to_vec(claims).unwrap())
    )
}

/// An HS256 token over `claims` whose HMAC key is `secret` and whose header
/// names our platform's key id: what an attacker makes of a verifier that
/// lets the token choose the algorithm. Checked to be a well-formed HS256
/// token under `secret` (crowdgate-identity trusting `secret` accepts it).
fn forged_hs256(claims: &IdentityClaims, secret: &[u8]) -> String {
    let kid = identity_signer().kid().to_string();
    let input = unsigned(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}), claims);
    let token = format!("{input}.{}", b64url(&hmac_sha256(secret, input.as_bytes())));
    let trusting = KeySet::default()
        .with_shared_secret(Some(&kid), secret)
        .unwrap();
    let verifier = Verifier {
        issuer: IDENTITY_ISSUER.into(),
        audience: ROUND.into(),
    };
    verifier
        .verify(&token, &trusting, now_s())
        .expect("the forgery is a real HS256 token under that key");
    token
}

/// The platform's public key: the raw Ed25519 bytes published in its JWKS.
fn platform_public_key() -> Vec<u8> {
    let jwks: Value = serde_json::from_str(&identity_signer().jwks_json()).unwrap();
    b64url_decode(jwks["keys"][0]["x"].as_str().unwrap())
}

/// A JWKS document publishing every one of `signers`' keys.
fn jwks_of(signers: &[&DevSigner]) -> String {
    let keys: Vec<Value> = signers
        .iter()
        .map(|s| {
            let jwks: Value = serde_json::from_str(&s.jwks_json()).unwrap();
            jwks["keys"][0].clone()
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

/// Claims for `investor` signed by `signer` (the platform's issuer and
/// audience, valid ten minutes).
fn token_from(signer: &DevSigner, investor: &str) -> String {
    signer.mint(&identity_claims(investor))
}

#[test]
fn the_hand_made_sha256_and_base64url_are_right() {
    // FIPS 180-2's "abc" and RFC 4231 test case 2.
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
        assert_eq!(b64url_decode(&b64url(text.as_bytes())), text.as_bytes());
    }
    assert_eq!(b64url(b"foobar"), "Zm9vYmFy");
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
}

// ---------------------------------------------------------------------------
// The attack table
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_identity_tokens_are_refused_and_write_nothing() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    // One real join first, so "nothing written" compares real values.
    let (code, joined) = Visitor::signed_in(edge, "legit").join().await;
    assert_eq!(code, 201, "{joined}");
    let before = written(&system).await;
    assert_eq!(before.0, 1);

    let platform = identity_signer();
    let now = now_s();
    let victim = || identity_claims("victim");
    let valid = platform.mint(&victim());
    let parts: Vec<&str> = valid.split('.').collect();
    let kid = platform.kid().to_string();

    // Tampered: the payload says someone else, the signature is the victim's.
    let mut mallory = victim();
    mallory.sub = "mallory".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(&serde_json::to_vec(&mallory).unwrap()),
        parts[2]
    );
    // Another key's signature under our key id.
    let other_key = DevSigner::from_seed([9; 32]);
    let other_signature = other_key.mint(&victim());
    let wrong_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other_signature.split('.').nth(2).unwrap()
    );
    let alg_none = format!(
        "{}.",
        unsigned(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &victim())
    );
    let alg_none_unkeyed = format!(
        "{}.",
        unsigned(&json!({"alg": "none", "typ": "JWT"}), &victim())
    );
    let hs256_raw_key = forged_hs256(&victim(), &platform_public_key());
    let hs256_jwks = forged_hs256(&victim(), platform.jwks_json().as_bytes());
    let with = |edit: &dyn Fn(&mut IdentityClaims)| {
        let mut claims = victim();
        edit(&mut claims);
        platform.mint(&claims)
    };
    let expired = with(&|c| {
        c.iat = now - 1_200;
        c.exp = now - 600;
    });
    let not_before = with(&|c| c.nbf = Some(now + 600));
    let issued_later = with(&|c| {
        c.iat = now + 600;
        c.exp = now + 1_200;
    });
    let wrong_issuer = with(&|c| c.iss = "https://evil.test".into());
    let wrong_audience = with(&|c| c.aud = "another-deployment".into());
    let other_round = with(&|c| c.aud = "other-round".into());
    let bad_subject = with(&|c| c.sub = "victim smith".into());
    let bad_limit = with(&|c| c.max_investment_pence = Some(-1));
    let unknown_kid = DevSigner::from_seed([11; 32]).mint(&victim());

    // (what, token, error code, what the refusal says: proof that each
    // attack reached the check it is aimed at, not an earlier one).
    let attacks: Vec<(&str, String, &str, &str)> = vec![
        (
            "payload edited after signing",
            tampered,
            "identity_invalid",
            "signature is invalid",
        ),
        (
            "another key's signature",
            wrong_signature,
            "identity_invalid",
            "signature is invalid",
        ),
        ("alg: none", alg_none, "identity_invalid", "not a JWT"),
        (
            "alg: none, no key id",
            alg_none_unkeyed,
            "identity_invalid",
            "not a JWT",
        ),
        (
            "HS256 keyed with the public key",
            hs256_raw_key,
            "identity_invalid",
            "algorithm HS256 is not the one its key is for",
        ),
        (
            "HS256 keyed with the JWKS document",
            hs256_jwks,
            "identity_invalid",
            "algorithm HS256 is not the one its key is for",
        ),
        ("expired", expired, "identity_expired", "has expired"),
        (
            "nbf in the future",
            not_before,
            "identity_invalid",
            "not valid yet",
        ),
        (
            "iat in the future",
            issued_later,
            "identity_invalid",
            "not valid yet",
        ),
        (
            "another issuer",
            wrong_issuer,
            "identity_invalid",
            "issued by someone else",
        ),
        (
            "another audience",
            wrong_audience,
            "identity_invalid",
            "another audience",
        ),
        (
            "a token for another round",
            other_round,
            "identity_invalid",
            "another audience",
        ),
        (
            "sub not an investor id",
            bad_subject,
            "identity_invalid",
            "sub claim is invalid",
        ),
        (
            "a negative limit",
            bad_limit,
            "identity_invalid",
            "max_investment_pence claim is invalid",
        ),
        (
            "an unknown key id",
            unknown_kid,
            "identity_invalid",
            "which the identity provider does not publish",
        ),
        ("garbage", "garbage".into(), "identity_invalid", "not a JWT"),
        (
            "three dots of garbage",
            "a.b.c".into(),
            "identity_invalid",
            "not a JWT",
        ),
        (
            "a JWT-shaped nothing: empty claims, no real signature",
            "eyJhbGciOiJFZERTQSJ9.e30.AAAA".into(),
            "identity_invalid",
            "signature is invalid",
        ),
    ];
    let http = reqwest::Client::new();
    for (what, token, code, why) in &attacks {
        // As an app sends it.
        let answer = join_with_token(edge, token).await;
        assert_identity_refusal(what, &answer, code);
        let message = answer.1["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(why),
            "{what}: refused for another reason: {message:?}"
        );
        // As a browser sends it: the bad cookie is dropped as well.
        let response = http
            .post(format!("{edge}/api/join"))
            .header("cookie", format!("cg_identity={token}"))
            .send()
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let answer = json_of(response).await;
        assert_identity_refusal(&format!("{what} (cookie)"), &answer, code);
        assert!(
            cookie.starts_with("cg_identity=;") && cookie.contains("Max-Age=0"),
            "{what}: the bad identity cookie is kept: {cookie:?}"
        );
        assert_eq!(
            written(&system).await,
            before,
            "{what}: a refused join wrote something"
        );
    }
    // The real token of the same investor still works: the refusals above
    // were about the tokens, not the investor.
    let (code, joined) = join_with_token(edge, &valid).await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(ticket_of(&joined).investor.unwrap().id, "victim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_without_signing_in_is_refused_with_the_way_to_sign_in() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let before = written(&system).await;

    // An app or the page's script: JSON naming the sign-in page.
    let answer = Visitor::anonymous(edge).join().await;
    assert_identity_refusal("no identity", &answer, "identity_required");
    // A browser without JavaScript: the page, with the way to sign in.
    let response = browser()
        .post(format!("{edge}/api/join"))
        .form(&[("join", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let page = response.text().await.unwrap();
    assert!(page.contains(SIGN_IN_URL), "{page}");
    assert!(!page.contains(r#"action="api/join""#), "{page}");
    // A ticket is no identity: one we signed but naming no investor (from
    // an anonymous room, say) buys no place here.
    let investorless = keyring().sign(&Ticket {
        round: ROUND.into(),
        id: "tk-nobody".into(),
        number: Some(1),
        entry: None,
        issued_at: now_s(),
        expires_at: now_s() + 600,
        investor: None,
    });
    let answer = json_of(
        reqwest::Client::new()
            .post(format!("{edge}/api/join"))
            .header("cookie", format!("cg_ticket={investorless}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_identity_refusal("an investor-less ticket", &answer, "identity_required");
    // core itself, asked for a place for nobody, refuses too.
    let (code, body) = json_of(
        core_http()
            .post(format!("{}/v1/rounds/{ROUND}/queue", system.core_url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("identity_required")),
        "{body}"
    );
    assert_eq!(written(&system).await, before, "nothing written");
}

// ---------------------------------------------------------------------------
// Signing in from the platform's link
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_sign_in_url_becomes_a_cookie_and_is_never_logged() {
    // Every request logged (the host logs each at debug), as an operator
    // chasing a problem would run it: the token must still not appear.
    let mut env = identity_env();
    env.push(("RUST_LOG", "info,crowdgate_wasm_host=debug".into()));
    let system = System::start_with_host_env(RoundOptions::default(), false, env).await;
    let edge = &system.edge_url;
    let token = identity_token("arriving");
    let browser = browser();

    let response = browser
        .get(format!("{edge}/signin"))
        .query(&[("identity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    // On to the clean page, through the step that drops another
    // investor's ticket (see the regression test below).
    assert_eq!(response.headers()["location"], "/signin/done");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("cg_identity={token};")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // The cookie signs the browser in: joining needs nothing else.
    let (code, joined) = json_of(
        browser
            .post(format!("{edge}/api/join"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(joined["status"]["investor_id"], "arriving", "{joined}");

    // The form post (a platform posting the token) works the same way.
    let posted = identity_token("posted");
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{edge}/signin"))
        .form(&[("identity_token", posted.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with(&format!("cg_identity={posted};"))
    );

    // A bad token: no cookie, and the browser is sent on (so the token
    // leaves the address bar) to the page saying why and where to sign in.
    let bad = identity_signer().mint(&IdentityClaims {
        exp: now_s() - 600,
        iat: now_s() - 1_200,
        ..identity_claims("late")
    });
    let response = browser
        .get(format!("{edge}/signin"))
        .query(&[("identity_token", bad.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/signin?refused=identity_expired"
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("cg_identity=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    let response = browser
        .get(format!("{edge}/signin?refused=identity_expired"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains(SIGN_IN_URL), "{page}");
    assert!(page.contains("Your sign-in has expired"), "{page}");
    // The refusal's address names a code, never words for the page.
    let page = get_text(&browser, &format!("{edge}/signin?refused=%3Cb%3Ehello")).await;
    assert!(!page.contains("hello"), "{page}");
    assert!(
        page.contains("You need to sign in to join the queue."),
        "{page}"
    );

    // The requests were logged, the tokens were not: not by the host (nor
    // its components' output), nor by core, which never sees them.
    let host_log = system.host.log();
    assert!(
        host_log.contains("/signin"),
        "the host logged no request, so this proves nothing:\n{host_log}"
    );
    for (name, log) in [("host", host_log), ("core", system.core.log())] {
        for (what, secret) in [
            ("token", &token),
            ("posted token", &posted),
            ("bad token", &bad),
        ] {
            assert!(
                !log.contains(secret.as_str()),
                "the {name} log holds the {what}"
            );
            // Nor its signature alone (a log cutting the token short).
            let signature = secret.rsplit('.').next().unwrap();
            assert!(
                !log.contains(signature),
                "the {name} log holds the {what}'s signature"
            );
        }
    }
}

/// Regression (issue 22): `/signin` answered HTML even to a client asking
/// for JSON. Now it answers the documented JSON: who signed in, or the one
/// error shape naming the field the token came in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_answers_json_to_a_client_that_asks_for_it() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let client = browser();
    let mut claims = identity_claims("json-ada");
    claims.name = Some("Ada Lovelace".into());
    let token = identity_signer().mint(&claims);
    let response = client
        .get(format!("{edge}/signin"))
        .query(&[("identity_token", token.as_str())])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with(&format!("cg_identity={token};"))
    );
    let (code, body) = json_of(response).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"investor_id": "json-ada", "investor_name": "Ada Lovelace", "expires_at": claims.exp})
    );
    // The form post too.
    let (code, body) = json_of(
        client
            .post(format!("{edge}/signin"))
            .header("accept", "application/json")
            .form(&[("identity_token", token.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((code, &body["investor_id"]), (200, &json!("json-ada")));

    // Refusals: 401 in the one error shape, naming `identity_token`.
    let expired = identity_signer().mint(&IdentityClaims {
        exp: now_s() - 600,
        iat: now_s() - 1_200,
        ..identity_claims("late")
    });
    for (query, error) in [
        (Some(expired.as_str()), "identity_expired"),
        (Some("not-a-token"), "identity_invalid"),
        (None, "identity_required"),
    ] {
        let mut request = client
            .get(format!("{edge}/signin"))
            .header("accept", "application/json");
        if let Some(token) = query {
            request = request.query(&[("identity_token", token)]);
        }
        let (code, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(
            (code, body["error"].as_str(), body["field"].as_str()),
            (401, Some(error), Some("identity_token")),
            "{body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// Regression (issue 22): `GET /signout` signed the browser out, so any
/// other site could (a link, an image). Sign-out is a POST now, refused
/// when a browser says another site sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_needs_a_post_from_the_page_itself() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let client = browser();
    let response = client.get(format!("{edge}/signout")).send().await.unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(response.headers()["allow"], "POST");
    let (code, body) = json_of(response).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );

    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
    ] {
        for path in ["/signout", "/signout/identity"] {
            let response = client
                .post(format!("{edge}{path}"))
                .header(header, value)
                .send()
                .await
                .unwrap();
            assert!(
                response.headers().get("set-cookie").is_none(),
                "{path} {header}: {value}"
            );
            let (code, body) = json_of(response).await;
            assert_eq!(
                (code, body["error"].as_str(), body["field"].as_str()),
                (403, Some("cross_site_request"), Some("origin")),
                "{path} {header}: {value}: {body}"
            );
        }
    }

    // From the page itself: the ticket, then (307: posted again) the identity.
    let host = edge.trim_start_matches("http://");
    let response = client
        .post(format!("{edge}/signout"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], "/signout/identity");
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("cg_ticket=;")
    );
    let response = client
        .post(format!("{edge}/signout/identity"))
        .header("origin", format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("cg_identity=;")
    );
}

// ---------------------------------------------------------------------------
// One place per investor
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_investor_holds_one_place_from_every_browser_and_app() {
    let system = System::start_with(
        RoundOptions {
            // Nobody admitted: places only.
            rate_per_minute: 0,
            ..Default::default()
        },
        false,
    )
    .await;
    let edge = &system.edge_url;
    let laptop = Visitor::signed_in(edge, "alice");
    let phone = Visitor::signed_in(edge, "alice");
    let (code, first) = laptop.join().await;
    assert_eq!(code, 201, "{first}");
    let (code, second) = phone.join().await;
    assert_eq!(code, 200, "another browser rejoins: {second}");
    let (a, b) = (ticket_of(&first), ticket_of(&second));
    assert_eq!((&a.id, a.number), (&b.id, b.number), "the same place");
    assert_eq!(b.investor.unwrap().id, "alice");
    // An app, with no cookies at all: the same place again.
    let (code, app) = join_with_token(edge, &identity_token("alice")).await;
    assert_eq!(code, 200, "{app}");
    let c = ticket_of(&app);
    assert_eq!((&c.id, c.number), (&a.id, a.number));
    // Each is told the same position.
    for visitor in [&laptop, &phone] {
        let (code, status) = visitor.status().await;
        assert_eq!(code, 200, "{status}");
        assert_eq!(status["queue_number"], a.number.unwrap(), "{status}");
        assert_eq!(status["investor_id"], "alice", "{status}");
    }
    // Someone else gets a place of their own.
    let (code, bob) = Visitor::signed_in(edge, "bob").join().await;
    assert_eq!(code, 201, "{bob}");
    assert_eq!(ticket_of(&bob).number, Some(a.number.unwrap() + 1));

    // A browser holding alice's ticket but signed in as bob is bob's: it
    // gets bob's place, never alice's.
    let shared = Visitor::signed_in(edge, "alice");
    shared.join().await;
    shared.sign_in_as("bob");
    let (code, swapped) = shared.join().await;
    assert_eq!(code, 200, "{swapped}");
    assert_eq!(ticket_of(&swapped).id, ticket_of(&bob).id);

    let (issued, places) = written(&system).await;
    assert_eq!(issued, 2, "two investors, two numbers");
    assert_eq!(places.len(), 2, "{places:?}");
    assert_eq!(
        places["alice"],
        format!("{} {}", a.id, a.number.unwrap()),
        "{places:?}"
    );
}

// ---------------------------------------------------------------------------
// Nobody invests or looks as someone else
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_invests_or_reads_an_investment_as_someone_else() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let alice = Visitor::signed_in(edge, "alice");
    let bob = Visitor::signed_in(edge, "bob");
    for visitor in [&alice, &bob] {
        let (code, joined) = visitor.join().await;
        assert_eq!(code, 201, "{joined}");
        visitor.wait_until_admitted(Duration::from_secs(10)).await;
    }
    let alices_pass = alice.pass().await;
    let bobs_pass = bob.pass().await;

    // The edge API: alice's pass with bob named in the body.
    let (code, body) = alice
        .invest(
            &alices_pass,
            "as-bob",
            json!({"investor_id": "bob", "amount_pence": 5_000}),
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str(), body["field"].as_str()),
        (403, Some("investor_mismatch"), Some("investor_id")),
        "{body}"
    );
    // core directly, with a pass of alice's own (so a compromised edge, or
    // anyone holding the edge token, cannot either).
    let core_invest = format!("{}/v1/rounds/{ROUND}/investments", system.core_url);
    let (code, body) = json_of(
        core_http()
            .post(&core_invest)
            .bearer_auth(pass_token("tk-alice", 1, "alice"))
            .header("idempotency-key", "as-bob")
            .json(&json!({"investor_id": "bob", "amount_pence": 5_000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("investor_mismatch")),
        "{body}"
    );
    assert_eq!(system.stream_len().await, 0, "nothing recorded");

    // The no-JavaScript form has no investor field; one slipped in is
    // ignored and the investment is alice's, the signed-in investor's.
    let form = browser();
    let signed_in = form
        .get(format!("{edge}/signin"))
        .query(&[("identity_token", identity_token("alice"))])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let joined = form
        .post(format!("{edge}/api/join"))
        .form(&[("join", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 303);
    let key = wait_for_invest_form(&form, edge).await;
    let result = post_invest_form(
        &form,
        edge,
        &[
            ("investor_id", "bob"),
            ("amount", "100.00"),
            ("key", key.as_str()),
        ],
    )
    .await;
    assert!(result.contains("Accepted: £100.00"), "{result}");
    let id = result
        .split("(reference ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no reference on the page:\n{result}"))
        .to_string();
    let (code, recorded) = json_of(
        core_http()
            .get(format!("{core_invest}/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{recorded}");
    assert_eq!(recorded["investor_id"], "alice", "{recorded}");
    assert_eq!(system.stream_len().await, 1);

    // Reading it: alice may (her pass, or her ticket cookie); bob's pass
    // and ticket find nothing, exactly as for an id that does not exist.
    let url = format!("{edge}/api/investments/{id}");
    let read = |request: reqwest::RequestBuilder| async move {
        json_of(request.send().await.unwrap()).await
    };
    let (code, own) = read(alice.http.get(&url).bearer_auth(&alices_pass)).await;
    assert_eq!(
        (code, own["investor_id"].as_str()),
        (200, Some("alice")),
        "{own}"
    );
    let (code, own) = read(form.get(&url)).await;
    assert_eq!(code, 200, "{own}");
    for (what, request) in [
        ("bob's pass", bob.http.get(&url).bearer_auth(&bobs_pass)),
        ("bob's ticket cookie", bob.http.get(&url)),
    ] {
        let (code, body) = read(request).await;
        assert_eq!(
            (code, body["error"].as_str()),
            (404, Some("not_found")),
            "{what}: {body}"
        );
        // Word for word what an id that does not exist gets (with its id).
        let nobody = "inv_000000000000000000000000";
        let (_, missing) = read(
            bob.http
                .get(format!("{edge}/api/investments/{nobody}"))
                .bearer_auth(&bobs_pass),
        )
        .await;
        assert_eq!(
            body["message"]
                .as_str()
                .map(|m| m.replace(id.as_str(), nobody)),
            missing["message"].as_str().map(str::to_string),
            "{what}: an id's existence shows through the message"
        );
    }
    let (code, body) = read(reqwest::Client::new().get(&url)).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("missing_ticket")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_investor_limit_claim_lowers_the_round_maximum() {
    // The round allows £2,000 each; this investor's platform allows £500.
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let mut claims = identity_claims("capped");
    claims.max_investment_pence = Some(50_000);
    let token = identity_signer().mint(&claims);
    let visitor = Visitor::anonymous(edge);
    let (code, joined) = json_of(
        visitor
            .http
            .post(format!("{edge}/api/join"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(
        ticket_of(&joined).investor.unwrap().max_investment_pence,
        Some(50_000)
    );
    visitor.wait_until_admitted(Duration::from_secs(10)).await;
    let pass = visitor.pass().await;
    let (code, body) = visitor
        .invest(&pass, "over", json!({"amount_pence": 60_000}))
        .await;
    assert_eq!(
        (code, body["error"].as_str(), body["field"].as_str()),
        (422, Some("investor_limit_exceeded"), Some("amount_pence")),
        "{body}"
    );
    let (code, body) = visitor
        .invest(&pass, "at-limit", json!({"amount_pence": 50_000}))
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["investor_id"], "capped");
    // The limit is per investor, not per request: nothing more fits.
    let (code, body) = visitor
        .invest(&pass, "more", json!({"amount_pence": 1_000}))
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (422, Some("investor_limit_exceeded")),
        "{body}"
    );
    assert_eq!(system.round_field("raised_pence").await, 50_000);
}

// ---------------------------------------------------------------------------
// An anonymous round
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_round_queues_anyone_but_nobody_invests_without_identity() {
    let system = System::start_with(
        RoundOptions {
            identity: Some("anonymous"),
            ..Default::default()
        },
        false,
    )
    .await;
    let edge = &system.edge_url;
    let first = Visitor::anonymous(edge);
    let second = Visitor::anonymous(edge);
    let (code, a) = first.join().await;
    assert_eq!(code, 201, "{a}");
    let (code, b) = second.join().await;
    assert_eq!(code, 201, "{b}");
    assert_ne!(ticket_of(&a).id, ticket_of(&b).id, "a place each");
    assert_eq!(ticket_of(&a).investor, None);
    assert!(a["status"]["investor_id"].is_null(), "{a}");
    // Refreshing keeps the place (the ticket cookie), as ever.
    let (code, again) = first.join().await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(ticket_of(&again).id, ticket_of(&a).id);
    // A bad identity is still refused, never taken for none.
    let answer = join_with_token(edge, "garbage").await;
    assert_identity_refusal("garbage in an anonymous round", &answer, "identity_invalid");

    // Admitted, with a pass, and still no investment without an investor:
    // not through the edge, not through core.
    first.wait_until_admitted(Duration::from_secs(10)).await;
    let pass = first.pass().await;
    let (code, body) = first
        .invest(&pass, "k", json!({"amount_pence": 5_000}))
        .await;
    assert_eq!(
        (code, body["error"].as_str(), body["field"].as_str()),
        (401, Some("identity_required"), Some("pass")),
        "{body}"
    );
    let (code, body) = json_of(
        core_http()
            .post(format!("{}/v1/rounds/{ROUND}/investments", system.core_url))
            .bearer_auth(&pass)
            .header("idempotency-key", "k")
            .json(&json!({"investor_id": "anyone", "amount_pence": 5_000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("identity_required")),
        "{body}"
    );
    assert_eq!(system.stream_len().await, 0);
    assert_eq!(system.round_field("raised_pence").await, 0);
    let (issued, places) = written(&system).await;
    assert_eq!((issued, places.len()), (2, 0), "{places:?}");

    // A signed-in investor in the same room can invest as usual.
    let investor = Visitor::signed_in(edge, "named");
    let (code, joined) = investor.join_and_invest("named", 5_000, "k").await;
    assert_eq!(code, 201, "{joined}");
    assert_eq!(joined["investor_id"], "named");
}

// ---------------------------------------------------------------------------
// Keys fetched from the provider
// ---------------------------------------------------------------------------

/// A stand-in identity provider on a loopback port: serves whatever JWKS
/// (or status) the test sets at `/.well-known/jwks.json`, counting fetches.
struct Provider {
    url: String,
    answer: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicUsize>,
    /// When set, the provider accepts requests and never answers them.
    hanging: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Provider {
    async fn start(status: u16, jwks: String) -> Provider {
        use http_body_util::Full;
        use hyper::body::Bytes;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new((status, jwks)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let hanging = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (served, counted, hangs) = (answer.clone(), fetches.clone(), hanging.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (served, counted, hangs) = (served.clone(), counted.clone(), hangs.clone());
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (status, body) = if request.uri().path() == "/.well-known/jwks.json" {
                            counted.fetch_add(1, Ordering::SeqCst);
                            served.lock().unwrap().clone()
                        } else {
                            (404, "{}".to_string())
                        };
                        let hang = hangs.load(Ordering::SeqCst);
                        async move {
                            if hang {
                                std::future::pending::<()>().await;
                            }
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                        }
                    },
                );
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Provider {
            url,
            answer,
            fetches,
            hanging,
            task,
        }
    }

    /// From now on, accept requests and never answer them.
    fn hang(&self) {
        self.hanging.store(true, Ordering::SeqCst);
    }

    fn serve(&self, status: u16, jwks: String) {
        *self.answer.lock().unwrap() = (status, jwks);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// The host's identity variables for keys fetched from this provider:
    /// no static JWKS.
    fn host_env(&self, max_age_s: u64, refetch_s: u64) -> Vec<(&'static str, String)> {
        vec![
            ("SPIN_VARIABLE_IDENTITY_ISSUER", IDENTITY_ISSUER.to_string()),
            (
                "SPIN_VARIABLE_IDENTITY_SIGN_IN_URL",
                SIGN_IN_URL.to_string(),
            ),
            ("SPIN_VARIABLE_IDENTITY_PROVIDER_URL", self.url.clone()),
            (
                "SPIN_VARIABLE_IDENTITY_JWKS_MAX_AGE_SECONDS",
                max_age_s.to_string(),
            ),
            (
                "SPIN_VARIABLE_IDENTITY_JWKS_REFETCH_SECONDS",
                refetch_s.to_string(),
            ),
        ]
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Joins with a fresh token from `signer` for `investor` until `done` says
/// the answer is the one awaited; returns it and how long it took. Panics
/// after `within`.
async fn join_until(
    edge: &str,
    signer: &DevSigner,
    investor: &str,
    within: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> ((u16, Value), Duration) {
    let started = Instant::now();
    loop {
        let (code, body) = join_with_token(edge, &token_from(signer, investor)).await;
        if done(code, &body) {
            return ((code, body), started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{investor}: still {code} {body} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_provider_key_is_fetched_at_once_and_an_unreachable_provider_is_503() {
    let platform = identity_signer();
    let rotated = DevSigner::from_seed([21; 32]);
    // The provider is down at first.
    let provider = Provider::start(503, String::new()).await;
    // A long max age: only a refetch on an unknown key id can bring in a new
    // key during this test.
    let system =
        System::start_with_host_env(RoundOptions::default(), false, provider.host_env(300, 1))
            .await;
    let edge = &system.edge_url;

    // No keys to be had: 503, never an unchecked token, nothing written.
    let before = written(&system).await;
    let (code, body) = join_with_token(edge, &token_from(&platform, "early")).await;
    assert_eq!(
        (code, body["error"].as_str(), body["field"].as_str()),
        (503, Some("unavailable"), Some("identity")),
        "{body}"
    );
    assert_eq!(written(&system).await, before);
    assert!(provider.fetches() >= 1, "the edge asked the provider");

    // The provider is back: its key verifies.
    provider.serve(200, jwks_of(&[&platform]));
    let ((code, body), _) =
        join_until(edge, &platform, "early", Duration::from_secs(10), |c, _| {
            c != 503
        })
        .await;
    assert_eq!(code, 201, "{body}");

    // A key the provider has not published yet: refused.
    let (code, body) = join_with_token(edge, &token_from(&rotated, "rotated")).await;
    assert_identity_refusal("a key not yet published", &(code, body), "identity_invalid");
    // A flood of made-up key ids fetches the JWKS at most once per refetch
    // interval (1 s), not once per request.
    let fetched = provider.fetches();
    let started = Instant::now();
    for seed in 100..140u8 {
        let stranger = DevSigner::from_seed([seed; 32]);
        let answer = join_with_token(edge, &token_from(&stranger, "stranger")).await;
        assert_identity_refusal("an unknown key id", &answer, "identity_invalid");
    }
    let flood_fetches = provider.fetches() - fetched;
    let allowed = started.elapsed().as_secs() as usize + 2;
    assert!(
        flood_fetches <= allowed,
        "40 unknown key ids fetched the JWKS {flood_fetches} times in {:?}",
        started.elapsed()
    );

    // The provider rotates: the new key is accepted as soon as the edge may
    // fetch again (1 s), long before the cached set's 300 s are up.
    provider.serve(200, jwks_of(&[&platform, &rotated]));
    let ((code, body), took) = join_until(
        edge,
        &rotated,
        "rotated",
        Duration::from_secs(15),
        |c, _| c != 401,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(ticket_of(&body).investor.unwrap().id, "rotated");
    eprintln!("the rotated key was accepted {took:?} after it was published");
    // The old key still works alongside.
    let (code, body) = join_with_token(edge, &token_from(&platform, "early")).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_provider_removes_stops_working_within_the_max_age() {
    const MAX_AGE_S: u64 = 1;
    let platform = identity_signer();
    let retired = DevSigner::from_seed([31; 32]);
    let provider = Provider::start(200, jwks_of(&[&platform, &retired])).await;
    let system = System::start_with_host_env(
        RoundOptions::default(),
        false,
        provider.host_env(MAX_AGE_S, 1),
    )
    .await;
    let edge = &system.edge_url;
    let (code, body) = join_with_token(edge, &token_from(&retired, "keeper")).await;
    assert_eq!(code, 201, "{body}");

    // The provider withdraws the key (say it leaked).
    provider.serve(200, jwks_of(&[&platform]));
    // Within the max age (plus slack for a busy machine), its tokens are
    // refused, however fresh.
    let ((code, body), took) = join_until(
        edge,
        &retired,
        "keeper",
        Duration::from_secs(MAX_AGE_S + 3),
        |c, _| c == 401,
    )
    .await;
    assert_identity_refusal("a withdrawn key", &(code, body), "identity_invalid");
    eprintln!("the withdrawn key was refused {took:?} after it was withdrawn");
    // And stay refused; the key the provider still publishes keeps working.
    let answer = join_with_token(edge, &token_from(&retired, "keeper")).await;
    assert_identity_refusal("a withdrawn key, again", &answer, "identity_invalid");
    let (code, body) = join_with_token(edge, &token_from(&platform, "other")).await;
    assert_eq!(code, 201, "{body}");
}

/// Regression: a provider that accepts connections and never answers used
/// to hold every join for the host's whole request timeout (30 s) and end
/// in a 500. Now a fetch gives up after a few seconds; meanwhile the last
/// keys fetched keep verifying, and with none at all the answer is a 503
/// with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_hangs_costs_a_join_seconds_not_the_request() {
    const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
    let platform = identity_signer();
    let provider = Provider::start(200, jwks_of(&[&platform])).await;
    let system =
        System::start_with_host_env(RoundOptions::default(), false, provider.host_env(1, 1)).await;
    let edge = &system.edge_url;
    let (code, body) = join_with_token(edge, &token_from(&platform, "before")).await;
    assert_eq!(code, 201, "{body}");

    // The provider hangs; the cached keys go stale after 1 s. Joins keep
    // working on the stale keys, each within the fetch timeout, until the
    // edge has tried (and given up on) a fetch.
    provider.hang();
    let fetched = provider.fetches();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while provider.fetches() == fetched || n < 5 {
        n += 1;
        let started = Instant::now();
        let (code, body) = join_with_token(edge, &token_from(&platform, &format!("p{n}"))).await;
        let took = started.elapsed();
        assert_eq!(code, 201, "join {n} while the provider hangs: {body}");
        assert!(
            took < FETCH_TIMEOUT + Duration::from_secs(2),
            "join {n} waited {took:?} on a hanging provider"
        );
        assert!(
            Instant::now() < deadline,
            "the edge never tried the provider again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A fresh edge with no keys at all: 503 with Retry-After, in seconds.
    let lonely =
        System::start_with_host_env(RoundOptions::default(), false, provider.host_env(1, 1)).await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/api/join", lonely.edge_url))
        .bearer_auth(token_from(&platform, "lonely"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let retry_after = response.headers().get("retry-after").cloned();
    let (code, body) = json_of(response).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(retry_after.is_some(), "a 503 says when to retry");
    assert!(
        took < FETCH_TIMEOUT + Duration::from_secs(2),
        "the join waited {took:?}"
    );

    // Then the edge backs off: for 5 s after the failed fetch joins get the
    // 503 at once and the provider is not asked (each join used to wait out
    // the fetch timeout again); after that it is tried again.
    const BACKOFF: Duration = Duration::from_secs(5);
    let failed_at = Instant::now();
    let fetched = provider.fetches();
    let mut answered_at_once = 0;
    loop {
        let started = Instant::now();
        let (code, body) =
            join_with_token(&lonely.edge_url, &token_from(&platform, "lonely")).await;
        let took = started.elapsed();
        assert_eq!(
            (code, body["error"].as_str()),
            (503, Some("unavailable")),
            "{body}"
        );
        if provider.fetches() > fetched {
            let after = failed_at.elapsed();
            assert!(
                after + Duration::from_secs(1) >= BACKOFF,
                "the provider was asked again {after:?} after a failed fetch"
            );
            break;
        }
        assert!(
            took < Duration::from_secs(1),
            "a join during the backoff waited {took:?}"
        );
        answered_at_once += 1;
        assert!(
            failed_at.elapsed() < BACKOFF + FETCH_TIMEOUT + Duration::from_secs(5),
            "the provider was never tried again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered_at_once >= 10, "{answered_at_once}");
}

/// Regression: a browser without JavaScript that signed in as someone else
/// (without signing out) kept the first investor's ticket, so the page said
/// "Investing as" them and the form invested for them. Now that ticket is
/// set aside: the page shows the new person, and the form cannot use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_as_someone_else_sets_the_earlier_investors_ticket_aside() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let shared = browser();
    let sign_in = |investor: &'static str| {
        let mut claims = identity_claims(investor);
        claims.name = Some(format!("{investor} (name)"));
        shared
            .get(format!("{edge}/signin"))
            .query(&[("identity_token", identity_signer().mint(&claims))])
            .send()
    };
    assert_eq!(sign_in("ada").await.unwrap().status(), 303);
    let joined = shared
        .post(format!("{edge}/api/join"))
        .form(&[("join", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 303);
    let key = wait_for_invest_form(&shared, edge).await;

    // kath signs in on the same browser.
    assert_eq!(sign_in("kath").await.unwrap().status(), 303);
    let page = get_text(&shared, &format!("{edge}/")).await;
    assert!(page.contains("Investing as kath (name)"), "{page}");
    assert!(!page.contains("ada (name)"), "{page}");
    let result = post_invest_form(
        &shared,
        edge,
        &[("amount", "100.00"), ("key", key.as_str())],
    )
    .await;
    assert!(!result.contains("Accepted"), "{result}");
    assert_eq!(system.stream_len().await, 0, "nothing invested for ada");
    // Joining now gives kath her own place.
    let (code, body) = json_of(
        shared
            .post(format!("{edge}/api/join"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(ticket_of(&body).investor.unwrap().id, "kath");
}

/// Regression: a per-investor limit travelled only inside the ticket, so a
/// ticket kept from an earlier sign-in invested past the limit a later
/// sign-in set. Now the latest sign-in's limit binds every pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_sign_ins_lower_limit_binds_an_earlier_ticket() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let app = reqwest::Client::new();
    // mary joins without a limit and keeps that ticket.
    let (code, first) = join_with_token(edge, &identity_token("mary")).await;
    assert_eq!(code, 201, "{first}");
    let old_ticket = first["ticket"].as_str().unwrap().to_string();
    // Later her platform signs her in with a £500 limit: the same place,
    // and a ticket that says so.
    let mut claims = identity_claims("mary");
    claims.max_investment_pence = Some(50_000);
    let (code, second) = join_with_token(edge, &identity_signer().mint(&claims)).await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(ticket_of(&second).id, ticket_of(&first).id);
    assert_eq!(
        ticket_of(&second).investor.unwrap().max_investment_pence,
        Some(50_000)
    );
    // The old ticket's pass (no limit on it), once admitted, is still held
    // to £500.
    let deadline = Instant::now() + Duration::from_secs(20);
    let grant = loop {
        let (code, grant) = json_of(
            app.post(format!("{edge}/api/pass"))
                .bearer_auth(&old_ticket)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if code == 200 {
            break grant;
        }
        assert_eq!(code, 409, "{grant}");
        assert!(Instant::now() < deadline, "never admitted: {grant}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let invest = |amount: i64, key: &'static str| {
        app.post(format!("{edge}/api/investments"))
            .bearer_auth(grant["pass"].as_str().unwrap())
            .header("idempotency-key", key)
            .json(&json!({ "amount_pence": amount }))
            .send()
    };
    let (code, body) = json_of(invest(60_000, "over").await.unwrap()).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (422, Some("investor_limit_exceeded")),
        "{body}"
    );
    let (code, body) = json_of(invest(50_000, "within").await.unwrap()).await;
    assert_eq!(code, 201, "{body}");
}

/// A deployment configured with the platform's public key as PEM
/// (`identity_public_key`) instead of a JWKS: tokens signed with the
/// matching private key are accepted (whatever `kid` they carry), others are
/// refused, and nothing is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pem_public_key_configures_the_platforms_key() {
    let keys = crowdgate_tests::workspace_root().join("identity/tests/keys");
    let platform = DevSigner::load_or_create(&keys.join("ed25519.pem")).expect("the fixture key");
    let public_pem = std::fs::read_to_string(keys.join("ed25519-pub.pem")).unwrap();
    let system = System::start_with_host_env(
        RoundOptions::default(),
        false,
        vec![
            ("SPIN_VARIABLE_IDENTITY_ISSUER", IDENTITY_ISSUER.to_string()),
            ("SPIN_VARIABLE_IDENTITY_PUBLIC_KEY", public_pem),
            (
                "SPIN_VARIABLE_IDENTITY_SIGN_IN_URL",
                SIGN_IN_URL.to_string(),
            ),
        ],
    )
    .await;
    let edge = &system.edge_url;
    let (code, body) = join_with_token(edge, &token_from(&platform, "pem-ann")).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(ticket_of(&body).investor.unwrap().id, "pem-ann");
    let answer = join_with_token(edge, &identity_token("someone-else")).await;
    assert_identity_refusal("another key", &answer, "identity_invalid");
}

/// Regression: signing in as someone else left the previous investor's
/// ticket cookie (a day long) in the browser; once the new, short-lived
/// identity cookie expired, the page and the no-JS form were the previous
/// person's again (their place, their pass). The sign-in's second step now
/// forgets a ticket held for another investor, and keeps one's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_drops_a_ticket_held_for_someone_else() {
    let system = System::start_with(RoundOptions::default(), false).await;
    let edge = &system.edge_url;
    let (code, ada) = join_with_token(edge, &identity_token("ada")).await;
    assert_eq!(code, 201, "{ada}");
    let adas_ticket = ada["ticket"].as_str().unwrap();
    let done = |identity: String| {
        browser()
            .get(format!("{edge}/signin/done"))
            .header(
                "cookie",
                format!("cg_ticket={adas_ticket}; cg_identity={identity}"),
            )
            .send()
    };
    // kath signs in on ada's browser: ada's ticket goes.
    let response = done(identity_token("kath")).await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let cleared = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cleared.starts_with("cg_ticket=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // ada signs in again on her own browser: her ticket stays.
    let response = done(identity_token("ada")).await.unwrap();
    assert_eq!(response.status(), 303);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "ada's own ticket is kept"
    );
}
