#![allow(clippy::unwrap_used, clippy::panic)]

use jose::{Algorithm, Jwk, JwkSet};
use serde_json::{json, Value};
use store::MasterKey;
use zeroize::Zeroizing;

use super::*;
use crate::authorize::AuthorizationRequest;
use crate::sign_in::{Consent, Login, Provider};
use crate::Settings;

const IDP: &str = "https://idp.example";

fn metadata_doc(extra: Value) -> Vec<u8> {
    let mut doc = json!({
        "issuer": IDP,
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "jwks_uri": "https://idp.example/jwks",
        "userinfo_endpoint": "https://idp.example/me",
        "code_challenge_methods_supported": ["S256"],
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    doc.to_string().into_bytes()
}

#[test]
fn metadata_must_be_the_issuers_over_https_with_s256() {
    let m = provider_metadata(&metadata_doc(json!({})), IDP).unwrap();
    assert_eq!(m.token_endpoint, "https://idp.example/token");
    assert!(!m.iss_parameter);
    let m = provider_metadata(
        &metadata_doc(json!({"authorization_response_iss_parameter_supported": true})),
        IDP,
    )
    .unwrap();
    assert!(m.iss_parameter);
    for (bad, why) in [
        (json!({"issuer": "https://evil.example"}), "another issuer"),
        (
            json!({"token_endpoint": "http://idp.example/token"}),
            "https",
        ),
        (
            json!({"code_challenge_methods_supported": ["plain"]}),
            "S256",
        ),
        (json!({"jwks_uri": 5}), "jwks_uri"),
    ] {
        let e = provider_metadata(&metadata_doc(bad.clone()), IDP).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let local = json!({"issuer": "http://127.0.0.1:9", "authorization_endpoint": "http://127.0.0.1:9/a",
        "token_endpoint": "http://localhost:9/t", "jwks_uri": "http://[::1]:9/k"});
    provider_metadata(local.to_string().as_bytes(), "http://127.0.0.1:9").unwrap();
    assert!(provider_metadata(b"not json", IDP).is_err());
}

async fn service() -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = store::Store::open(&url).await.unwrap();
    let mut settings = Settings::new("https://as.example");
    settings.login = Some(Login {
        provider: Provider::Oidc(OidcProvider {
            issuer: IDP.into(),
            client_id: "tokengate".into(),
            client_secret: Some(Zeroizing::new("s3cret:&".into())),
            scopes: vec!["openid".into(), "email".into()],
            claims: vec![
                ("email".into(), "email".into()),
                ("groups".into(), "groups".into()),
            ],
        }),
        consent: Consent::Always,
    });
    let service = Service::start(store, MasterKey::from_bytes([3; 32]), settings, 1000)
        .await
        .unwrap();
    (service, dir)
}

fn session() -> SignIn {
    SignIn {
        id: "i".into(),
        csrf: "c".into(),
        request: serde_json::from_value::<AuthorizationRequest>(json!({
            "client_id": "app", "redirect_uri": "https://app.example/cb", "state": null,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "audience": "https://api.example", "scope": [], "dpop_jkt": null,
        }))
        .unwrap(),
        user: None,
        upstream: None,
    }
}

fn id_token(key: &Jwk, claims: Value) -> String {
    jose::jwt::sign(
        claims.as_object().unwrap(),
        key,
        Algorithm::ES256,
        Some("JWT"),
    )
    .unwrap()
}

#[tokio::test]
async fn the_redirect_the_code_and_the_id_token() {
    let (service, _dir) = service().await;
    let metadata = provider_metadata(
        &metadata_doc(json!({"authorization_response_iss_parameter_supported": true})),
        IDP,
    )
    .unwrap();
    let mut session = session();
    let url = service.upstream_redirect(&mut session, &metadata).unwrap();
    let leg = session.upstream.clone().unwrap();
    let url = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], "https://as.example/oauth2/callback");
    assert_eq!(
        (q["state"].as_str(), q["nonce"].as_str()),
        (leg.state.as_str(), leg.nonce.as_str())
    );
    assert_eq!(
        q["code_challenge"],
        crate::pkce::challenge_of(&leg.verifier)
    );
    assert_eq!(
        (q["scope"].as_str(), q["code_challenge_method"].as_str()),
        ("openid email", "S256")
    );

    let answer = |query: String| crate::form::Params::parse_query(query.as_bytes(), &[]).unwrap();
    let good = answer(format!(
        "code=c1&state={}&iss={}",
        leg.state, "https%3A%2F%2Fidp.example"
    ));
    assert_eq!(
        service.upstream_code(&session, &metadata, &good).unwrap(),
        "c1"
    );
    for bad in [
        "code=c1&state=other&iss=https%3A%2F%2Fidp.example".to_owned(),
        format!("code=c1&state={}", leg.state),
        format!("code=c1&state={}&iss=https%3A%2F%2Fevil.example", leg.state),
        format!(
            "error=access_denied&state={}&iss=https%3A%2F%2Fidp.example",
            leg.state
        ),
    ] {
        let e = service
            .upstream_code(&session, &metadata, &answer(bad.clone()))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::AccessDenied, "{bad}");
    }

    let (form, auth) = service.upstream_token_request(&session, "c1").unwrap();
    assert!(
        form.contains(&format!("code_verifier={}", leg.verifier)),
        "{form}"
    );
    assert_eq!(
        auth.unwrap(),
        "Basic dG9rZW5nYXRlOnMzY3JldCUzQSUyNg==",
        "form-encoded, then base64"
    );

    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let keys = JwkSet::from_json(
        json!({"keys": [Value::Object(key.to_public().unwrap().to_map())]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let claims = json!({"iss": IDP, "aud": "tokengate", "sub": "u-1", "iat": 1000, "exp": 1300,
        "nonce": leg.nonce, "email": "ada@example.com", "auth_time": 990});
    let userinfo = json!({"sub": "u-1", "groups": ["admins"], "email": "other@example.com"});
    let user = service
        .upstream_user(
            &id_token(&key, claims.clone()),
            &keys,
            &session,
            userinfo.as_object(),
            1000,
        )
        .unwrap();
    assert_eq!((user.sub.as_str(), user.auth_time), ("u-1", 990));
    assert_eq!(
        user.claims["email"], "ada@example.com",
        "the ID token's first"
    );
    assert_eq!(user.claims["groups"], json!(["admins"]), "then userinfo's");
    let strangers = json!({"sub": "u-2", "groups": ["admins"]});
    let user = service
        .upstream_user(
            &id_token(&key, claims.clone()),
            &keys,
            &session,
            strangers.as_object(),
            1000,
        )
        .unwrap();
    assert!(
        !user.claims.contains_key("groups"),
        "userinfo of another sub is ignored"
    );

    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        service.upstream_user(&id_token(&key, c), &keys, &session, None, 1000)
    };
    for bad in [
        json!({"nonce": "replayed"}),
        json!({"iss": "https://evil.example"}),
        json!({"aud": "someone-else"}),
        json!({"aud": ["tokengate", "other"], "azp": "other"}),
        json!({"exp": 900}),
    ] {
        assert_eq!(
            with(bad.clone()).unwrap_err().kind,
            ErrorKind::AccessDenied,
            "{bad}"
        );
    }
    with(json!({"aud": ["tokengate", "other"], "azp": "tokengate"})).unwrap();
    let other_key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let forged = id_token(&other_key, claims.clone());
    assert!(service
        .upstream_user(&forged, &keys, &session, None, 1000)
        .is_err());
    let hmac = Jwk::generate(Algorithm::HS256, None, None).unwrap();
    let hmac_token = jose::jwt::sign(
        claims.as_object().unwrap(),
        &hmac,
        Algorithm::HS256,
        Some("JWT"),
    )
    .unwrap();
    assert!(service
        .upstream_user(&hmac_token, &keys, &session, None, 1000)
        .is_err());
}
