//! Introspection (RFC 7662, RFC 9701), revocation (RFC 7009) and key rotation as clients see
//! them.

use jose::jwt::{self, Validation};
use jose::{Algorithm, Jwk};
use store::testing::Ctx;
use store::{AuthMethod, KeyState, KeyUse};

use crate::harness::{app, basic, dpop_proof, API, ISSUER, SECRET_API};

pub async fn introspect_json_and_jwt(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let auth = basic(&id, &secret);
    let token = app.token(&id, &secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = format!("token={token}&token_type_hint=access_token");
    let reply = app
        .post("/oauth2/introspect", &form, &[("authorization", &auth)])
        .await;
    let body = reply.ok();
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["scope"], "read");
    assert_eq!(body["aud"], API);
    assert_eq!(body["iss"], ISSUER);
    assert_eq!(body["token_type"], "Bearer");
    for claim in ["exp", "iat", "jti", "sub"] {
        assert!(body.get(claim).is_some(), "{claim}");
    }

    // RFC 9701: a signed answer addressed to the caller.
    let reply = app
        .post(
            "/oauth2/introspect",
            &form,
            &[
                ("authorization", &auth),
                ("accept", "application/token-introspection+jwt"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/token-introspection+jwt")
    );
    let signed = String::from_utf8(reply.body.clone()).unwrap();
    let jwks = app.jwks().await;
    let v = Validation::new()
        .algorithms([Algorithm::ES256])
        .issuer(ISSUER)
        .audience(id.clone())
        .typ("token-introspection+jwt")
        .allow_missing_exp();
    let verified = jwt::verify(&signed, &jwks, &v).unwrap();
    assert_eq!(
        verified.claims.get("token_introspection").unwrap().unwrap()["active"],
        true
    );

    // A resource server registered for the audience sees it active; a stranger does not.
    let (rs, rs_secret) = app.client(&[], &[API], AuthMethod::ClientSecretBasic).await;
    let seen = app
        .post(
            "/oauth2/introspect",
            &form,
            &[("authorization", &basic(&rs, &rs_secret))],
        )
        .await
        .ok();
    assert_eq!(seen["active"], true);
    let (other, other_secret) = app
        .client(&["read"], &[SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let seen = app
        .post(
            "/oauth2/introspect",
            &form,
            &[("authorization", &basic(&other, &other_secret))],
        )
        .await
        .ok();
    assert_eq!(seen, serde_json::json!({"active": false}));
    // Garbage, and an unauthenticated caller.
    let seen = app
        .post(
            "/oauth2/introspect",
            "token=abc.def.ghi",
            &[("authorization", &auth)],
        )
        .await
        .ok();
    assert_eq!(seen, serde_json::json!({"active": false}));
    let reply = app.post("/oauth2/introspect", &form, &[]).await;
    reply.refused(401, "invalid_client", "client authentication failed");
    assert_eq!(
        app.refusal_reason(&reply, 401, "invalid_client").await,
        "invalid_client: client authentication is required"
    );
    let reply = app
        .post("/oauth2/introspect", "", &[("authorization", &auth)])
        .await;
    reply.refused(400, "invalid_request", "the parameter token is missing");
    assert_eq!(
        app.refusal_reason(&reply, 400, "invalid_request").await,
        "invalid_request: the parameter token is missing"
    );

    // A DPoP-bound token introspects with its binding.
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let bound = app
        .post(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[
                ("authorization", &auth),
                ("dpop", &dpop_proof(&key, "i1", None)),
            ],
        )
        .await
        .ok();
    let form = format!("token={}", bound["access_token"].as_str().unwrap());
    let seen = app
        .post("/oauth2/introspect", &form, &[("authorization", &auth)])
        .await
        .ok();
    assert_eq!(seen["token_type"], "DPoP");
    assert_eq!(seen["cnf"]["jkt"], key.thumbprint());
    // Introspections are audited, each answered one with what it answered (the two refused
    // ones were checked above).
    let events = app.service.store().audit_events(0, 1000).await.unwrap();
    let answered: Vec<&str> = events
        .iter()
        .filter(|e| e.event.event == "token.introspected" && e.event.outcome == "success")
        .map(|e| e.event.reason.as_deref().unwrap())
        .collect();
    assert_eq!(
        answered,
        ["active", "active", "active", "inactive", "inactive", "active"]
    );
}

pub async fn revoke(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API, SECRET_API], AuthMethod::ClientSecretBasic)
        .await;
    let auth = basic(&id, &secret);
    for resource in ["https%3A%2F%2Fapi.example", "https%3A%2F%2Fsecret.example"] {
        let token = app
            .token(&id, &secret, &format!("resource={resource}"))
            .await
            .ok()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let form = format!("token={token}");
        // Another client may not revoke it.
        let (other, other_secret) = app
            .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
            .await;
        let reply = app
            .post(
                "/oauth2/revoke",
                &form,
                &[("authorization", &basic(&other, &other_secret))],
            )
            .await;
        reply.refused(
            400,
            "unauthorized_client",
            "the token was issued to another client",
        );
        let reply = app
            .post("/oauth2/revoke", &form, &[("authorization", &auth)])
            .await;
        assert_eq!(reply.status, 200);
        let seen = app
            .post("/oauth2/introspect", &form, &[("authorization", &auth)])
            .await
            .ok();
        assert_eq!(seen["active"], false, "revoked at once");
        // Revoking again, or revoking garbage: still 200 (RFC 7009 §2.2).
        assert_eq!(
            app.post("/oauth2/revoke", &form, &[("authorization", &auth)])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        app.post(
            "/oauth2/revoke",
            "token=garbage",
            &[("authorization", &auth)]
        )
        .await
        .status,
        200
    );
    let reply = app.post("/oauth2/revoke", "token=garbage", &[]).await;
    reply.refused(401, "invalid_client", "client authentication failed");
    assert_eq!(
        app.refusal_reason(&reply, 401, "invalid_client").await,
        "invalid_client: client authentication is required"
    );
    let events = app.service.store().audit_events(0, 1000).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.event == "token.revoked" && e.event.outcome == "success")
            .count(),
        4
    );
}

pub async fn key_rotation_keeps_old_tokens_valid(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let auth = basic(&id, &secret);
    let old = app.token(&id, &secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = jwt::decode_unverified(&old).unwrap().0["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    let now = store::unix_now();
    let pending = app
        .service
        .rotate_key(KeyUse::Sig, now, None)
        .await
        .unwrap();
    assert_eq!(pending.state, KeyState::Pending);
    assert_eq!(
        pending.activate_at,
        now + 600,
        "pre-published for the JWKS max-age"
    );
    // Published before it signs.
    let jwks = app.jwks().await;
    assert!(jwks
        .keys()
        .iter()
        .any(|k| k.kid() == Some(pending.kid.as_str())));
    let still_old = app.token(&id, &secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jwt::decode_unverified(&still_old).unwrap().0["kid"],
        old_kid.as_str()
    );

    // Once due, the lifecycle step activates it and retires the old key, which stays
    // published so the old token still verifies and introspects.
    app.service.maintain(now + 600).await.unwrap();
    let new = app.token(&id, &secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jwt::decode_unverified(&new).unwrap().0["kid"],
        pending.kid.as_str()
    );
    app.verify(&old, API).await;
    let seen = app
        .post(
            "/oauth2/introspect",
            &format!("token={old}"),
            &[("authorization", &auth)],
        )
        .await
        .ok();
    assert_eq!(seen["active"], true);
    let events = app.service.store().audit_events(0, 1000).await.unwrap();
    for name in ["key.rotated", "key.activated", "key.retired"] {
        assert!(events.iter().any(|e| e.event.event == name), "{name}");
    }
}

pub async fn scheduled_rotation(ctx: Ctx) {
    let mut s = crate::harness::settings();
    s.rotate_every = Some(3600);
    let app = crate::harness::app_with(&ctx, s, None).await;
    let now = store::unix_now();
    let keys = |app: &crate::harness::TestApp| {
        let store = app.service.store().clone();
        async move { store.list_keys().await.unwrap() }
    };
    app.service.maintain(now + 10).await.unwrap();
    // Signing, encryption and audit keys.
    assert_eq!(keys(&app).await.len(), 3, "not due yet");
    app.service.maintain(now + 3600).await.unwrap();
    let after = keys(&app).await;
    assert_eq!(
        after
            .iter()
            .filter(|k| k.state == KeyState::Pending)
            .count(),
        2,
        "sig and enc"
    );
    // Pre-published for the JWKS max-age, then active; one rotation at a time.
    app.service.maintain(now + 3600 + 300).await.unwrap();
    assert_eq!(
        keys(&app)
            .await
            .iter()
            .filter(|k| k.state == KeyState::Pending)
            .count(),
        2
    );
    app.service.maintain(now + 3600 + 600).await.unwrap();
    let done = keys(&app).await;
    // The audit key is not rotated on a schedule (it signs little and is never removed).
    assert_eq!(
        done.iter().filter(|k| k.state == KeyState::Active).count(),
        3
    );
    assert_eq!(
        done.iter().filter(|k| k.state == KeyState::Retired).count(),
        2
    );
    assert_eq!(
        done.iter()
            .filter(|k| k.key_use == KeyUse::Sig && k.state == KeyState::Active)
            .count(),
        1
    );
}

/// The tokens table does not grow forever (#13 finding 9): the lifecycle step deletes the
/// records of tokens expired for a day, revoked or not, and keeps the others.
pub async fn expired_token_records_are_purged_after_a_day(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let mut jtis = Vec::new();
    for _ in 0..3 {
        let token = app.token(&id, &secret, "").await.ok()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let claims = jwt::decode_unverified(&token).unwrap().1;
        jtis.push((
            claims["jti"].as_str().unwrap().to_owned(),
            claims["exp"].as_i64().unwrap(),
        ));
    }
    let store = app.service.store();
    store
        .revoke_token(&jtis[0].0, store::unix_now())
        .await
        .unwrap();
    let exp = jtis[0].1;
    // Expired, but not for a day yet: kept (a gateway with leeway may still be asked).
    app.service.maintain(exp + 3600).await.unwrap();
    for (jti, _) in &jtis {
        assert!(store.token(jti).await.unwrap().is_some(), "{jti} kept");
    }
    app.service.maintain(exp + 24 * 3600 + 60).await.unwrap();
    for (jti, _) in &jtis {
        assert!(store.token(jti).await.unwrap().is_none(), "{jti} purged");
    }
}

/// A token recorded after its client was disabled (a request that authenticated just before,
/// on any node) is revoked by the next maintenance step (#13 finding 5).
pub async fn tokens_recorded_for_a_disabled_client_are_revoked_by_maintenance(ctx: Ctx) {
    let app = app(&ctx).await;
    let (id, secret) = app
        .client(&["read"], &[API], AuthMethod::ClientSecretBasic)
        .await;
    let token = app.token(&id, &secret, "").await.ok()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jti = jwt::decode_unverified(&token).unwrap().1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = app.service.store();
    // Disabled behind the token service's back: as if the token were recorded just after.
    store.set_client_disabled(&id, true).await.unwrap();
    assert_eq!(store.token(&jti).await.unwrap().unwrap().revoked_at, None);
    let now = store::unix_now();
    app.service.maintain(now).await.unwrap();
    assert_eq!(
        store.token(&jti).await.unwrap().unwrap().revoked_at,
        Some(now)
    );
    let events = store.audit_events(0, 1000).await.unwrap();
    assert!(events.iter().any(|e| e.event.event == "token.revoked"
        && e.event.reason.as_deref() == Some("client disabled: 1 issued late revoked")));
}
