//! The token endpoint: grants, client authentication, DPoP and every error.

use std::time::Duration;

use jose::{Algorithm, Jwk, JwkSet};
use oauth::{Settings, TrustedIssuer};
use serde_json::json;
use store::testing::Ctx;
use store::AuthMethod;

use crate::harness::{
    app, app_with, basic, dpop_proof, form_encode, settings, signed, TestApp, API, ISSUER,
    SECRET_API,
};

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The claims of an encrypted token of ours: decrypted with the service's key, verified with
/// its JWKS for `audience`.
fn decrypted(app: &TestApp, token: &str, audience: &str) -> jose::jwt::Claims {
    assert_eq!(token.split('.').count(), 5, "a nested JWE: {token}");
    let ring = app.service.ring();
    jose::jwt::decrypt_and_verify(
        token,
        ring.decryption_keys(),
        &jose::jwe::DecryptOptions::from_key(),
        ring.jwks(),
        &jose::jwt::Validation::new()
            .algorithms_from_key()
            .issuer(ISSUER)
            .audience(audience)
            .typ("at+jwt"),
    )
    .unwrap()
    .claims
}

/// A token-exchange form for `subject`, asking for `resource`.
fn exchange_form(subject: &str, resource: &str) -> String {
    format!(
        "grant_type={}&subject_token={subject}&subject_token_type={}&resource={}",
        form_encode(oauth::TOKEN_EXCHANGE),
        form_encode(ACCESS_TOKEN_TYPE),
        form_encode(resource)
    )
}

pub async fn client_credentials_issues_an_rfc9068_token(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read", "write"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let reply = app
        .token(
            &id,
            &secret,
            "resource=https%3A%2F%2Fapi.example&scope=read",
        )
        .await;
    let body = reply.ok();
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    let (header, _) = jose::jwt::decode_unverified(token).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());
    let claims = app.verify(token, API).await;
    assert_eq!(claims.sub(), Some(id.as_str()));
    assert_eq!(claims.get("client_id").unwrap().unwrap(), id.as_str());
    assert_eq!(claims.get("scope").unwrap().unwrap(), "read");
    let (iat, exp) = (claims.iat().unwrap(), claims.exp().unwrap());
    assert_eq!(exp - iat, 300);
    let jti = claims.jti().unwrap();

    // Without scope: every scope the client and audience share; without resource: the
    // client's only audience.
    let body = app.token(&id, &secret, "").await.ok();
    assert_eq!(body["scope"], "read write");

    // The issuance is recorded and audited.
    let stored = app.service.store().token(jti).await.unwrap().unwrap();
    assert_eq!(stored.client_id, id);
    let events = app.service.store().audit_events(0, 100).await.unwrap();
    let issued = events
        .iter()
        .find(|e| e.event.jti.as_deref() == Some(jti))
        .unwrap();
    assert_eq!(issued.event.event, "token.issued");
    assert_eq!(issued.event.audience.as_deref(), Some(API));
    assert!(issued.event.request_id.is_some());
    // No secret or token in the audit trail.
    let all = format!("{events:?}");
    assert!(!all.contains(&secret) && !all.contains(token));
}

pub async fn secret_post_and_method_mismatch(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretPost)
        .await;
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    app.post("/oauth2/token", &form, &[]).await.ok();
    // Pinned to post, presented with Basic: the secret's holder is told which method the
    // client is registered for; the audit trail says which was tried.
    let reply = app.token(&id, &secret, "").await;
    reply.refused(
        401,
        "invalid_client",
        "the client is registered for client_secret_post",
    );
    assert_eq!(
        app.refusal_reason(&reply, 401, "invalid_client").await,
        "invalid_client: the client is registered for client_secret_post, not client_secret_basic"
    );
    // A wrong secret learns nothing of the method.
    app.token(&id, "wrong", "").await.refused(
        401,
        "invalid_client",
        "client authentication failed",
    );
    // Basic and post at once.
    let reply = app
        .post(
            "/oauth2/token",
            &form,
            &[("authorization", &basic(&id, &secret))],
        )
        .await;
    reply.refused(
        400,
        "invalid_request",
        "more than one client authentication method is used",
    );
    // A client created without naming its method takes the secret either way.
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    app.token(&id, &secret, "").await.ok();
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    app.post("/oauth2/token", &form, &[]).await.ok();
    let stored = app.service.store().client(&id).await.unwrap().unwrap();
    assert!(!stored.auth_method_pinned);
}

pub async fn private_key_jwt(ctx: Ctx) {
    let app = app(&ctx).await;
    let key = Jwk::generate(Algorithm::ES256, None, Some("k1".into())).unwrap();
    let jwks = JwkSet::new(vec![key.to_public().unwrap()]).unwrap();
    let creds = app
        .service
        .create_client(
            oauth::NewClient {
                name: "pk".into(),
                scopes: vec!["read".into()],
                audiences: vec![API.into()],
                auth_method: Some(AuthMethod::PrivateKeyJwt),
                jwks: Some(serde_json::Value::Object(jwks.to_map()).to_string()),
                redirect_uris: vec![],
                first_party: true,
            },
            store::unix_now(),
            None,
        )
        .await
        .unwrap();
    assert!(creds.client_secret.is_none());
    let id = creds.client_id;
    let now = store::unix_now();
    let assertion = |jti: &str, aud: &str, exp: i64| {
        signed(
            &key,
            &json!({"iss": id, "sub": id, "aud": aud, "exp": exp, "iat": now, "jti": jti}),
            &[],
        )
    };
    let form = |a: &str| {
        format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={a}",
            form_encode(oauth::JWT_BEARER)
        )
    };
    let token_url = format!("{ISSUER}/oauth2/token");
    let first = assertion("a1", &token_url, now + 60);
    let body = app.post("/oauth2/token", &form(&first), &[]).await.ok();
    assert_eq!(body["token_type"], "Bearer");
    // The issuer identifier is an accepted audience too.
    app.post(
        "/oauth2/token",
        &form(&assertion("a2", ISSUER, now + 60)),
        &[],
    )
    .await
    .ok();
    // Replay, wrong audience, expired, and a key the client did not register: the client
    // hears "client authentication failed" each time; the audit trail names the check.
    let cases = [
        (first, "the client assertion was used before"),
        (
            assertion("a3", "https://elsewhere.example", now + 60),
            "the client assertion is invalid: \"aud\" does not include an accepted audience",
        ),
        (
            assertion("a4", &token_url, now - 3600),
            "the client assertion is invalid: the token expired",
        ),
        (
            signed(
                &Jwk::generate(Algorithm::ES256, None, Some("k1".into())).unwrap(),
                &json!({"iss": id, "sub": id, "aud": token_url, "exp": now + 60, "jti": "a5"}),
                &[],
            ),
            "the client assertion is invalid: signature verification failed",
        ),
    ];
    for (case, why) in cases {
        let reply = app.post("/oauth2/token", &form(&case), &[]).await;
        reply.refused(401, "invalid_client", "client authentication failed");
        assert_eq!(
            app.refusal_reason(&reply, 401, "invalid_client").await,
            format!("invalid_client: {why}")
        );
    }
    // A wrong assertion type.
    let reply = app
        .post(
            "/oauth2/token",
            &format!(
                "grant_type=client_credentials&client_assertion_type=x&client_assertion={}",
                assertion("a6", &token_url, now + 60)
            ),
            &[],
        )
        .await;
    reply.refused(
        400,
        "invalid_request",
        "client_assertion_type must be the JWT bearer type",
    );
}

pub async fn invalid_client(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    // The client is told nothing more than "client authentication failed"; the audit trail
    // says why where the check has more to say (an unknown client and a wrong secret are
    // recorded alike).
    let refused = |reply: crate::harness::Reply, why: &'static str| {
        let app = &app;
        async move {
            reply.refused(401, "invalid_client", "client authentication failed");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Basic realm=\"tokengate\"")
            );
            let event = app.audited(&reply.request_id()).await;
            assert_eq!(event.event, "token.denied");
            assert_eq!(event.reason.as_deref(), Some(why));
        }
    };
    for (who, pass) in [("nobody", "x"), (id.as_str(), "wrong"), (id.as_str(), "")] {
        refused(
            app.token(who, pass, "").await,
            "invalid_client: client authentication failed",
        )
        .await;
    }
    // No credentials at all.
    let reply = app
        .post("/oauth2/token", "grant_type=client_credentials", &[])
        .await;
    refused(reply, "invalid_client: client authentication is required").await;
    // Malformed Basic credentials.
    let reply = app
        .post(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", "Basic !!!")],
        )
        .await;
    refused(reply, "invalid_client: malformed Basic credentials").await;
    // A disabled client.
    app.service
        .set_client_disabled(&id, true, 0, None)
        .await
        .unwrap();
    refused(
        app.token(&id, &secret, "").await,
        "invalid_client: the client is disabled",
    )
    .await;
}

pub async fn exchange_is_limited_to_holders_and_lifetimes(ctx: Ctx) {
    let app = app(&ctx).await;
    let (owner, owner_secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let (stranger, stranger_secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let (both, both_secret) = app
        .client(&["read"], &[API, SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let subject = app.token(&owner, &owner_secret, "scope=read").await.ok();
    let token = subject["access_token"].as_str().unwrap().to_owned();
    // A client that neither holds the token nor serves its audience cannot launder it.
    app.token(
        &stranger,
        &stranger_secret,
        &exchange_form(&token, SECRET_API),
    )
    .await
    .refused(
        400,
        "invalid_grant",
        "the subject token was neither issued to this client nor for its audience",
    );
    // A client registered for the token's audience (the resource server that received it)
    // may exchange it, here for its other audience: the subject and the scope carry over,
    // the new token names the exchanging client.
    let body = app
        .token(&both, &both_secret, &exchange_form(&token, SECRET_API))
        .await
        .ok();
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    assert_eq!(
        body["expires_in"], 120,
        "the audience's lifetime, shorter than what the subject token has left"
    );
    let exchanged = decrypted(&app, body["access_token"].as_str().unwrap(), SECRET_API);
    assert_eq!(exchanged.sub(), Some(owner.as_str()));
    assert_eq!(exchanged.get("client_id").unwrap().unwrap(), both.as_str());
    assert_eq!(exchanged.get("scope").unwrap().unwrap(), "read");

    // The new token does not outlive the subject token. A token for the secret audience
    // lives 120 s; exchanged for the API (whose tokens live 300 s) the new one ends when the
    // subject token does, not 300 s after it was made.
    let short = app
        .token(
            &both,
            &both_secret,
            &format!("resource={}", form_encode(SECRET_API)),
        )
        .await
        .ok();
    assert_eq!(short["expires_in"], 120);
    let short_token = short["access_token"].as_str().unwrap();
    let short_exp = decrypted(&app, short_token, SECRET_API).exp().unwrap();
    let own = app
        .token(&both, &both_secret, &exchange_form(short_token, API))
        .await
        .ok();
    let claims = app.verify(own["access_token"].as_str().unwrap(), API).await;
    let (iat, exp) = (claims.iat().unwrap(), claims.exp().unwrap());
    assert_eq!(exp, short_exp, "capped at the subject token's exp");
    assert!(exp - iat <= 120, "not the API's 300 s: {}", exp - iat);
    assert_eq!(own["expires_in"], exp - iat);
    assert_eq!(claims.sub(), Some(both.as_str()));

    // Error descriptions say nothing about why client authentication failed.
    let reply = app.token(&owner, "wrong", "").await;
    reply.refused(401, "invalid_client", "client authentication failed");
}

pub async fn malformed_requests(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let auth = basic(&id, &secret);
    let form = Some("application/x-www-form-urlencoded");
    let not_form = "the body must be application/x-www-form-urlencoded";
    let cases: Vec<(Option<&str>, String, &str)> = vec![
        (
            Some("application/json"),
            r#"{"grant_type":"client_credentials"}"#.into(),
            not_form,
        ),
        (None, "grant_type=client_credentials".into(), not_form),
        (
            form,
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            "the parameter grant_type is repeated",
        ),
        (
            form,
            "grant_type=client_credentials&scope=%zz".into(),
            "a bad percent-escape in the body",
        ),
        (
            form,
            "grant_type=client_credentials&scope=%ff".into(),
            "the body is not UTF-8",
        ),
        (
            form,
            format!(
                "grant_type=client_credentials&pad={}",
                "a".repeat(70 * 1024)
            ),
            "the body is too large or did not arrive in time",
        ),
        (
            form,
            "scope=read".into(),
            "the parameter grant_type is missing",
        ),
    ];
    for (content_type, body, why) in cases {
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri("/oauth2/token")
            .header("authorization", &auth);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = app
            .send(req.body(axum::body::Body::from(body.clone())).unwrap())
            .await;
        assert_eq!(
            reply.refusal(400),
            ("invalid_request".to_owned(), why.to_owned()),
            "{}",
            &body[..body.len().min(80)]
        );
    }
    let reply = app
        .token(&id, &secret, "grant_type=password&username=a&password=b")
        .await;
    reply.refused(
        400,
        "unsupported_grant_type",
        "grant_type password is not supported",
    );
    // Wrong method: 405 naming the method allowed; unknown path: 404 JSON with a request id.
    let reply = app.get("/oauth2/token", &[]).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = app.get("/nowhere", &[("x-request-id", "trace-42")]).await;
    reply.refused(404, "not_found", "no route for this request");
    assert_eq!(reply.request_id(), "trace-42");
    // A hostile request id is replaced by a generated one (base64url of 128 bits), not
    // echoed.
    let reply = app
        .get("/nowhere", &[("x-request-id", "a b<script>")])
        .await;
    reply.refused(404, "not_found", "no route for this request");
    let generated = reply.request_id();
    assert_eq!(generated.len(), 22, "{generated}");
    assert!(
        generated
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{generated}"
    );
    let again = app
        .get("/nowhere", &[("x-request-id", "a b<script>")])
        .await
        .request_id();
    assert_ne!(again, generated, "a fresh id per request");
}

pub async fn scope_and_target(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(
            &["read", "write"],
            &[API, SECRET_API],
            AuthMethod::ClientSecretBasic,
        )
        .await;
    let api = form_encode(API);
    let secret_api = form_encode(SECRET_API);
    let cases = [
        (
            format!("resource={api}&scope=admin"),
            "invalid_scope",
            "the scope admin is not allowed",
        ),
        // write is the client's, but the secret audience does not accept it.
        (
            format!("resource={secret_api}&scope=write"),
            "invalid_scope",
            "the scope write is not allowed",
        ),
        (
            "resource=https%3A%2F%2Funknown.example".to_owned(),
            "invalid_target",
            "the client may not get tokens for https://unknown.example",
        ),
        // Two audiences registered: the resource must be named; one per token.
        (
            String::new(),
            "invalid_target",
            "name the resource the token is for",
        ),
        (
            format!("resource={api}&resource={secret_api}"),
            "invalid_target",
            "a token is for one resource; ask once per resource",
        ),
    ];
    for (form, error, why) in cases {
        app.token(&id, &secret, &form)
            .await
            .refused(400, error, why);
    }
    // `audience` (RFC 8693 style) works like resource; the same value twice is one.
    app.token(&id, &secret, &format!("audience={api}&resource={api}"))
        .await
        .ok();
    // A client not registered for the audience.
    let (other, other_secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    app.token(&other, &other_secret, &format!("resource={api}"))
        .await
        .refused(
            400,
            "invalid_target",
            "the client may not get tokens for https://api.example",
        );
    // A client registered for no audience in particular may ask for any declared one, and
    // for no other.
    let (any, any_secret) = app
        .client(&["read"], &[], AuthMethod::ClientSecretBasic)
        .await;
    app.token(&any, &any_secret, "resource=https%3A%2F%2Funknown.example")
        .await
        .refused(
            400,
            "invalid_target",
            "unknown resource https://unknown.example",
        );
}

pub async fn encrypted_audience(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let body = app.token(&id, &secret, "").await.ok();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 5, "a nested JWE");
    assert_eq!(body["expires_in"], 120);
    // The payload is not readable without the service's key, and it decrypts with it.
    assert!(jose::jwt::decode_unverified(token).is_err());
    let claims = decrypted(&app, token, SECRET_API);
    assert_eq!(claims.get("scope").unwrap().unwrap(), "read");
}

pub async fn token_exchange(ctx: Ctx) {
    let partner = Jwk::generate(Algorithm::ES256, None, Some("p1".into())).unwrap();
    let mut s = settings();
    s.trusted_issuers.push(TrustedIssuer {
        issuer: "https://partner.example".into(),
        keys: JwkSet::new(vec![partner.to_public().unwrap()]).unwrap(),
        algorithms: vec![Algorithm::ES256],
        audience: None,
    });
    let app = app_with(&ctx, s, None).await;
    let (user_client, user_secret) = app
        .client(&["read", "write"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let (svc, svc_secret) = app
        .client(&["read", "write"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let subject = app
        .token(&user_client, &user_secret, "scope=read")
        .await
        .ok();
    let subject = subject["access_token"].as_str().unwrap().to_owned();
    let exchange = |token: &str, extra: &str| {
        format!(
            "grant_type={}&subject_token={token}&subject_token_type={}{extra}",
            form_encode(oauth::TOKEN_EXCHANGE),
            form_encode("urn:ietf:params:oauth:token-type:access_token")
        )
    };
    let body = app
        .token(&svc, &svc_secret, &exchange(&subject, ""))
        .await
        .ok();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["scope"], "read", "an exchange cannot widen the scope");
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.sub(), Some(user_client.as_str()));
    assert_eq!(claims.get("client_id").unwrap().unwrap(), svc.as_str());
    app.token(&svc, &svc_secret, &exchange(&subject, "&scope=write"))
        .await
        .refused(400, "invalid_scope", "the scope write is not allowed");

    // A trusted partner's token, addressed to us.
    let now = store::unix_now();
    let partner_token = |iss: &str, aud: &str, key: &Jwk| {
        signed(
            key,
            &json!({"iss": iss, "sub": "alice", "aud": aud, "exp": now + 60, "iat": now}),
            &[],
        )
    };
    let good = partner_token("https://partner.example", ISSUER, &partner);
    let body = app
        .token(&svc, &svc_secret, &exchange(&good, ""))
        .await
        .ok();
    assert_eq!(
        app.verify(body["access_token"].as_str().unwrap(), API)
            .await
            .sub(),
        Some("alice")
    );
    // Untrusted issuer, wrong audience, wrong key, garbage, revoked: invalid_grant, each
    // saying which check refused.
    let stranger = Jwk::generate(Algorithm::ES256, None, Some("p1".into())).unwrap();
    for (bad, why) in [
        (
            partner_token("https://evil.example", ISSUER, &partner),
            "the subject token is not from a trusted issuer",
        ),
        (
            partner_token("https://partner.example", "https://other.example", &partner),
            "the subject token is invalid: \"aud\" does not include an accepted audience",
        ),
        (
            partner_token("https://partner.example", ISSUER, &stranger),
            "the subject token is invalid: signature verification failed",
        ),
        (
            "not-a-token".to_owned(),
            "the subject token is not a JWT we can verify",
        ),
    ] {
        app.token(&svc, &svc_secret, &exchange(&bad, ""))
            .await
            .refused(400, "invalid_grant", why);
    }
    let revoke = format!("token={subject}");
    let reply = app
        .post(
            "/oauth2/revoke",
            &revoke,
            &[("authorization", &basic(&user_client, &user_secret))],
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    app.token(&svc, &svc_secret, &exchange(&subject, ""))
        .await
        .refused(400, "invalid_grant", "the subject token is revoked");
    // Missing pieces and delegation are invalid_request.
    let missing = format!(
        "grant_type={}&subject_token={good}",
        form_encode(oauth::TOKEN_EXCHANGE)
    );
    app.token(&svc, &svc_secret, &missing).await.refused(
        400,
        "invalid_request",
        "the parameter subject_token_type is missing",
    );
    let actor = exchange(&good, &format!("&actor_token={good}"));
    app.token(&svc, &svc_secret, &actor).await.refused(
        400,
        "invalid_request",
        "actor tokens (delegation) are not supported",
    );
}

pub async fn dpop_binding(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let auth = basic(&id, &secret);
    let form = "grant_type=client_credentials";
    let proof = dpop_proof(&key, "p1", None);
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[("authorization", &auth), ("dpop", &proof)],
        )
        .await;
    let body = reply.ok();
    assert_eq!(body["token_type"], "DPoP");
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.get("cnf").unwrap().unwrap()["jkt"], key.thumbprint());
    // The same proof again, two proofs, a proof for another URL, a bearer-typed JWT.
    let other_url = signed(
        &key,
        &json!({"jti": "p2", "htm": "POST", "htu": "https://as.example/elsewhere", "iat": store::unix_now()}),
        &[
            ("typ", "dpop+jwt".into()),
            (
                "jwk",
                serde_json::Value::Object(key.to_public().unwrap().to_map()),
            ),
        ],
    );
    let no_jwk = signed(
        &key,
        &json!({"jti": "p3", "htm": "POST", "htu": format!("{ISSUER}/oauth2/token"), "iat": store::unix_now()}),
        &[("typ", "dpop+jwt".into())],
    );
    for (dpop, why) in [
        (proof.as_str(), "the DPoP proof was used before"),
        (other_url.as_str(), "htu does not match the request URL"),
        (no_jwk.as_str(), "the header has no jwk"),
        ("garbage", "a compact JWS has three segments, this has 1"),
    ] {
        let headers = [("authorization", auth.as_str()), ("dpop", dpop)];
        app.post("/oauth2/token", form, &headers)
            .await
            .refused(400, "invalid_dpop_proof", why);
    }
    let mut req = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", &auth);
    req = req
        .header("dpop", dpop_proof(&key, "p4", None))
        .header("dpop", dpop_proof(&key, "p5", None));
    let reply = app
        .send(req.body(axum::body::Body::from(form)).unwrap())
        .await;
    reply.refused(400, "invalid_dpop_proof", "more than one DPoP header");
}

pub async fn dpop_nonce(ctx: Ctx) {
    let mut s: Settings = settings();
    s.dpop.require_nonce = true;
    let app = app_with(&ctx, s, None).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let auth = basic(&id, &secret);
    let form = "grant_type=client_credentials";
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "n1", None)),
            ],
        )
        .await;
    reply.refused(
        400,
        "use_dpop_nonce",
        "the DPoP proof must carry the server's nonce",
    );
    let nonce = reply.header("dpop-nonce").unwrap().to_owned();
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "n2", Some(&nonce))),
            ],
        )
        .await;
    assert_eq!(reply.ok()["token_type"], "DPoP");
    assert!(reply.header("dpop-nonce").is_some());
    let reply = app
        .post(
            "/oauth2/token",
            form,
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "n3", Some("stale"))),
            ],
        )
        .await;
    reply.refused(
        400,
        "use_dpop_nonce",
        "the DPoP proof must carry the server's nonce",
    );
    assert!(
        reply.header("dpop-nonce").is_some_and(|n| n != "stale"),
        "a fresh nonce to retry with"
    );
}

pub async fn database_unavailable(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    // An issuance first: the token service's writer then holds a connection, which it gives
    // back once idle, so closing the store does not wait for ever.
    assert!(app.token(&id, &secret, "").await.ok()["access_token"].is_string());
    tokio::time::timeout(Duration::from_secs(10), app.service.store().close())
        .await
        .expect("the store closes while the token service is running");
    let reply = app.token(&id, &secret, "").await;
    assert_eq!(
        reply.refusal(503),
        (
            "temporarily_unavailable".to_owned(),
            "the database is unavailable; retry later".to_owned()
        ),
        "{}",
        ctx.backend()
    );
    reply.request_id();
}
