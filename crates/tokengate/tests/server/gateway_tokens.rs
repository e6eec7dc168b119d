//! Token checks at the gateway on tokens made by hand: a third party's nested (JWE) tokens
//! decrypted with `decrypt_keys_file`, `required_claims`, `scp` arrays, and a cached
//! verification that never outlives the token's `exp`.

use jose::jwe::{ContentEncryption, KeyManagement};
use jose::jwt;
use jose::{Algorithm, Jwk};
use oauth::Grant;
use serde_json::{json, Value};
use store::testing::Ctx;

use crate::gateway_env::{
    front, jwks_file, partner_claims, partner_key, partner_token, upstream, wait_for,
};
use crate::harness::{API, ISSUER};

const PARTNER: &str = "https://partner.example";

fn encryption_key(kid: &str) -> Jwk {
    Jwk::generate_for_encryption(
        KeyManagement::ECDH_ES_A256KW,
        None,
        None,
        None,
        Some(kid.into()),
    )
    .unwrap()
}

/// The changes to a partner token's default claims, with this test's own defaults
/// (`client_id`, and the one scope the route requires) unless the changes say otherwise.
fn with_defaults(mut changes: Value) -> Value {
    let c = changes.as_object_mut().unwrap();
    c.entry("client_id").or_insert("partner-app".into());
    c.entry("scope").or_insert("read".into());
    changes
}

/// A partner token signed by `sign` with the changes to the default claims.
fn signed_by(sign: &Jwk, changes: Value) -> String {
    partner_token(sign, PARTNER, with_defaults(changes))
}

/// A partner token (signed by `sign`) with the changes to the default claims, encrypted to
/// `to`.
fn nested(sign: &Jwk, to: &Jwk, changes: Value) -> String {
    let c = partner_claims(PARTNER, &with_defaults(changes));
    jwt::sign_encrypted(
        c.as_object().unwrap(),
        sign,
        Algorithm::ES256,
        Some("at+jwt"),
        &to.to_public().unwrap(),
        KeyManagement::ECDH_ES_A256KW,
        ContentEncryption::A256GCM,
    )
    .unwrap()
}

pub async fn partner_claims_scp_and_decryption_keys(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let dir = tempfile::tempdir().unwrap();
    let partner = partner_key("p1");
    let signing_file = jwks_file(dir.path(), &[&partner]);
    let decrypt_key = encryption_key("e1");
    let decrypt_file = dir.path().join("decrypt.json");
    let private_set = json!({"keys": [Value::Object(decrypt_key.to_map())]});
    std::fs::write(&decrypt_file, private_set.to_string()).unwrap();
    let config = format!(
        "[[issuers]]\nname = \"partner\"\nissuer = \"{PARTNER}\"\njwks_file = \"{signing_file}\"\n\
         decrypt_keys_file = \"{}\"\nalgorithms = [\"ES256\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"partner\"]\naudience = \"{API}\"\nrequired_scopes = [\"read\"]\n\
         required_claims = [\"client_id\"]\nforward_claims = {{ sub = \"x-user-id\" }}\n",
        decrypt_file.display()
    );
    let f = front(&ctx, &config).await;
    let call = |token: String| {
        let f = &f;
        async move {
            f.get("/api/x", &[("authorization", &format!("Bearer {token}"))])
                .await
        }
    };
    let with = |changes: Value| signed_by(&partner, changes);

    // required_claims: present passes, absent is refused naming the claim.
    let r = call(with(json!({}))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");
    let r = call(with(json!({"client_id": null}))).await;
    let c = f.refused(&r, 401, "ERR_GATEWAY_MISSING_CLAIM").await;
    assert!(c.contains("client_id"), "{c}");

    // Scopes from an `scp` array when there is no `scope` string.
    let scp = |scp: Value| json!({"scope": null, "scp": scp});
    let r = call(with(scp(json!(["write", "read"])))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for lacking in [json!(["write"]), json!("read"), json!([])] {
        let r = call(with(scp(lacking.clone()))).await;
        let c = f.refused(&r, 403, "ERR_GATEWAY_INSUFFICIENT_SCOPE").await;
        assert!(c.contains("scope=\"read\""), "{lacking}: {c}");
    }

    // Nested tokens encrypted to a key of decrypt_keys_file: decrypted, then verified.
    let r = call(nested(&partner, &decrypt_key, json!({}))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");
    // Encrypted to another key under the same kid: it cannot be decrypted.
    let r = call(nested(&partner, &encryption_key("e1"), json!({}))).await;
    f.refused(&r, 401, "ERR_JWE_DECRYPTION_FAILED").await;
    // Decrypted, but signed by a key the partner does not publish.
    let r = call(nested(&partner_key("p2"), &decrypt_key, json!({}))).await;
    f.refused(&r, 401, "ERR_JWKS_NO_MATCHING_KEY").await;
    // Decrypted, and the inner token's own claims are checked as a plain token's are.
    let r = call(nested(&partner, &decrypt_key, json!({"client_id": null}))).await;
    f.refused(&r, 401, "ERR_GATEWAY_MISSING_CLAIM").await;
}

pub async fn cached_tokens_never_outlive_exp(ctx: Ctx) {
    let (up, _) = upstream("a").await;
    let config = format!(
        "[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\nupstreams = [\"http://{up}\"]\n\
         [routes.auth]\nissuers = [\"self\"]\naudience = \"{API}\"\nrequired_scopes = [\"read\"]\n\
         leeway = \"0s\"\n"
    );
    let f = front(&ctx, &config).await;
    let token = f.grant(
        Grant::new(ISSUER, "c", "u", API)
            .scope(["read"])
            .lifetime(6),
    );
    let exp = jwt::decode_unverified(&token).unwrap().1["exp"]
        .as_i64()
        .unwrap();
    let bearer = format!("Bearer {token}");
    // Six seconds leave room for two requests on a loaded machine before `exp`.
    assert_eq!(
        f.get("/api/x", &[("authorization", &bearer)]).await.status,
        200
    );
    let (hits, _) = f.app.gateway().cache().counters();
    assert_eq!(
        f.get("/api/x", &[("authorization", &bearer)]).await.status,
        200
    );
    assert_eq!(
        f.app.gateway().cache().counters().0,
        hits + 1,
        "served from the cache"
    );
    wait_for("the token's exp to pass", || store::unix_now() >= exp).await;
    let r = f.get("/api/x", &[("authorization", &bearer)]).await;
    f.refused(&r, 401, "ERR_JWT_EXPIRED").await;
}
