//! Public keys given as PEM (the `identity_public_key` variable): each type
//! allows its one algorithm, a private key is refused, and a key without an
//! id is the key whatever `kid` a token names.

use crowdgate_identity::{Algorithm, IdentityClaims, IdentityError, KeySet, KeySetError, Verifier};
use jsonwebtoken::{EncodingKey, Header, encode};

const NOW: u64 = 1_750_000_000;

fn claims() -> IdentityClaims {
    IdentityClaims {
        iss: "https://platform.example".into(),
        aud: "r1".into(),
        sub: "ann".into(),
        exp: NOW + 300,
        iat: NOW,
        nbf: None,
        name: None,
        max_investment_pence: None,
    }
}

fn verifier() -> Verifier {
    Verifier {
        issuer: "https://platform.example".into(),
        audience: "r1".into(),
    }
}

fn token(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, &claims(), key).unwrap()
}

fn private(name: &str) -> EncodingKey {
    let pem = std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    match name {
        "rsa.pem" => EncodingKey::from_rsa_pem(&pem).unwrap(),
        "ec.pem" => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_ed_pem(&pem).unwrap(),
    }
}

fn public(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn each_pem_type_verifies_its_own_algorithm_and_no_other() {
    for (public_pem, private_pem, alg) in [
        ("rsa-pub.pem", "rsa.pem", Algorithm::RS256),
        ("ec-pub.pem", "ec.pem", Algorithm::ES256),
        ("ed25519-pub.pem", "ed25519.pem", Algorithm::EdDSA),
    ] {
        let keys = KeySet::default()
            .with_public_key_pem(None, &public(public_pem))
            .unwrap();
        let key = private(private_pem);
        // With or without a kid: the one unnamed key is the key.
        for kid in [None, Some("2026-11")] {
            let identity = verifier().verify(&token(alg, kid, &key), &keys, NOW);
            assert_eq!(identity.unwrap().investor_id, "ann", "{public_pem} {kid:?}");
        }
        // HS256 "signed" with the public key's own text: refused.
        let confused = token(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(public(public_pem).as_bytes()),
        );
        assert!(
            matches!(
                verifier().verify(&confused, &keys, NOW),
                Err(IdentityError::WrongAlgorithm(_))
            ),
            "{public_pem}"
        );
    }
}

#[test]
fn a_private_key_or_garbage_is_refused_when_configured() {
    let err = KeySet::default()
        .with_public_key_pem(None, &public("ec.pem"))
        .unwrap_err();
    assert_eq!(err, KeySetError::PrivateKey);
    let err = KeySet::default()
        .with_public_key_pem(
            None,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap_err();
    assert_eq!(err, KeySetError::NotAPublicKey);
}

#[test]
fn a_named_key_set_still_wants_the_right_kid() {
    let keys = KeySet::default()
        .with_public_key_pem(Some("k1"), &public("ed25519-pub.pem"))
        .unwrap();
    let other = token(Algorithm::EdDSA, Some("k2"), &private("ed25519.pem"));
    assert_eq!(
        verifier().verify(&other, &keys, NOW),
        Err(IdentityError::UnknownKey("k2".into()))
    );
}

/// The rule INTEGRATION.md states once for `identity_public_key` and
/// `identity_shared_secret` alike: a key configured without an id, when it
/// is the only key, is the key for every token, whatever `kid` it names.
#[test]
fn a_bare_shared_secret_is_the_key_whatever_kid_as_a_bare_pem_is() {
    let secret = b"a shared secret of at least thirty-two bytes";
    let keys = KeySet::default().with_shared_secret(None, secret).unwrap();
    let key = EncodingKey::from_secret(secret);
    for kid in [None, Some("2026-11"), Some("anything")] {
        let identity = verifier().verify(&token(Algorithm::HS256, kid, &key), &keys, NOW);
        assert_eq!(identity.unwrap().investor_id, "ann", "{kid:?}");
    }
}

/// Two keys without ids (a PEM and a secret both set) leave no way to say
/// which one a token means: every token is refused, so set one of them.
#[test]
fn two_unnamed_keys_verify_nothing() {
    let secret = b"a shared secret of at least thirty-two bytes";
    let keys = KeySet::default()
        .with_public_key_pem(None, &public("ed25519-pub.pem"))
        .unwrap()
        .with_shared_secret(None, secret)
        .unwrap();
    let signed = token(Algorithm::EdDSA, None, &private("ed25519.pem"));
    assert_eq!(
        verifier().verify(&signed, &keys, NOW),
        Err(IdentityError::NoKeyId)
    );
    let named = token(
        Algorithm::HS256,
        Some("k1"),
        &EncodingKey::from_secret(secret),
    );
    assert_eq!(
        verifier().verify(&named, &keys, NOW),
        Err(IdentityError::UnknownKey("k1".into()))
    );
}
