//! User sign-in over HTTP (issue #18): the authorization endpoint, the development sign-in
//! page, consent, codes and the `authorization_code` grant, driven as a browser and a client
//! would, with the RFC 9700 attacks each refused where it should be.

use std::collections::HashMap;

use jose::{Algorithm, Jwk};
use oauth::sign_in::{Consent, Login, Provider};
use oauth::{NewClient, Settings};
use store::testing::Ctx;
use store::AuthMethod;

use crate::harness::{app_with, dpop_proof, form_encode, settings, Reply, TestApp, API, ISSUER};

pub(crate) const REDIRECT: &str = "http://127.0.0.1/cb";
/// What the client presents: the registered loopback URI on the port it listens on.
pub(crate) const PRESENTED: &str = "http://127.0.0.1:5555/cb";
/// RFC 7636 appendix B.
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(crate) fn login_settings(consent: Consent) -> Settings {
    let mut s = settings();
    s.login = Some(Login {
        provider: Provider::Dev,
        consent,
    });
    s
}

async fn signing_in(ctx: &Ctx, consent: Consent) -> TestApp {
    app_with(ctx, login_settings(consent), None).await
}

/// A client that signs users in: public (`none`) or with a secret.
async fn user_client(app: &TestApp, public: bool) -> (String, Option<String>) {
    let creds = app
        .service
        .create_client(
            NewClient {
                name: "Notes <App>".into(),
                scopes: vec!["read".into(), "write".into()],
                audiences: vec![API.into()],
                auth_method: public.then_some(AuthMethod::Public),
                jwks: None,
                redirect_uris: vec![REDIRECT.into()],
                first_party: true,
            },
            store::unix_now(),
            None,
        )
        .await
        .unwrap();
    (creds.client_id, creds.client_secret.map(|s| s.to_string()))
}

fn authorize_path(client_id: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=st-1&scope=read{extra}",
        form_encode(PRESENTED)
    )
}

/// A browser: keeps the cookies the server sets and sends them back.
#[derive(Default)]
pub(crate) struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    fn absorb(&mut self, reply: &Reply) {
        for value in reply.headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            assert!(attributes.contains("HttpOnly"), "{text}");
            assert!(attributes.contains("SameSite=Lax"), "{text}");
            assert!(attributes.contains("Secure"), "an https issuer: {text}");
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        pairs.join("; ")
    }

    pub(crate) async fn get(&mut self, app: &TestApp, path: &str) -> Reply {
        let cookie = self.cookie_header();
        let reply = app.get(path, &[("cookie", &cookie)]).await;
        self.absorb(&reply);
        reply
    }

    async fn post(&mut self, app: &TestApp, path: &str, form: &str) -> Reply {
        let cookie = self.cookie_header();
        let reply = app.post(path, form, &[("cookie", &cookie)]).await;
        self.absorb(&reply);
        reply
    }
}

/// The CSRF value of the page's form.
fn csrf(page: &Reply) -> String {
    let html = page.text();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// The query of a 303's `Location`, asserting it goes to the presented redirect URI.
pub(crate) fn redirected(reply: &Reply) -> HashMap<String, String> {
    assert_eq!(reply.status.as_u16(), 303, "{}", reply.text());
    let location = url::Url::parse(reply.header("location").unwrap()).unwrap();
    assert_eq!(
        &location.as_str()[..PRESENTED.len()],
        PRESENTED,
        "back to the redirect URI as presented"
    );
    location.query_pairs().into_owned().collect()
}

/// Walks authorize → sign in as `user` → (consent) and returns the final reply.
async fn walk(
    app: &TestApp,
    browser: &mut Browser,
    client_id: &str,
    user: &str,
    extra: &str,
) -> Reply {
    walk_to_consent(app, browser, &authorize_path(client_id, extra), user).await
}

/// Opens the authorization request at `path`, signs in as `user` on the development page,
/// and returns the reply (the consent page, or where consent was skipped to).
pub(crate) async fn walk_to_consent(
    app: &TestApp,
    browser: &mut Browser,
    path: &str,
    user: &str,
) -> Reply {
    let page = browser.get(app, path).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text());
    assert!(page.text().contains("Development sign-in"));
    let token = csrf(&page);
    browser
        .post(
            app,
            "/oauth2/authorize/sign-in",
            &format!("csrf={token}&username={user}"),
        )
        .await
}

/// Approves on the consent page; returns the code.
pub(crate) async fn approve(app: &TestApp, browser: &mut Browser, consent_page: &Reply) -> String {
    assert_eq!(consent_page.status.as_u16(), 200, "{}", consent_page.text());
    let token = csrf(consent_page);
    let reply = browser
        .post(
            app,
            "/oauth2/authorize/consent",
            &format!("csrf={token}&approve=yes"),
        )
        .await;
    let params = redirected(&reply);
    assert_eq!(params["state"], "st-1");
    assert_eq!(params["iss"], ISSUER, "RFC 9207");
    params["code"].clone()
}

async fn redeem(
    app: &TestApp,
    client_id: &str,
    code: &str,
    verifier: &str,
    redirect: &str,
) -> Reply {
    let form = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}&code_verifier={verifier}\
         &redirect_uri={}",
        form_encode(redirect)
    );
    app.post("/oauth2/token", &form, &[]).await
}

pub async fn authorization_code_with_pkce(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let mut browser = Browser::default();
    let page = walk(&app, &mut browser, &client_id, "alice", "").await;
    let html = page.text();
    assert!(
        html.contains("Notes &lt;App&gt;"),
        "the client named, escaped: {html}"
    );
    assert!(html.contains("alice") && html.contains(API) && html.contains("<code>read</code>"));
    assert!(
        !html.contains("<code>write</code>"),
        "only the scope asked for"
    );
    let code = approve(&app, &mut browser, &page).await;
    assert!(
        !browser.cookies.contains_key("tokengate_sign_in"),
        "the session ended"
    );

    let body = redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .ok();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.sub(), Some("alice"));
    assert_eq!(claims.client_id(), Some(client_id.as_str()));
    assert!(claims.get("auth_time").unwrap().unwrap().as_i64().unwrap() > 0);

    let metadata = app
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{ISSUER}/oauth2/authorize")
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        metadata["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert!(metadata["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "authorization_code"));
    assert!(metadata["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "none"));

    // A confidential client redeems with its secret.
    let (client_id, secret) = user_client(&app, false).await;
    let page = walk(&app, &mut browser, &client_id, "bob", "").await;
    let code = approve(&app, &mut browser, &page).await;
    let form = format!(
        "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
        form_encode(PRESENTED)
    );
    let body = app.token(&client_id, &secret.unwrap(), &form).await.ok();
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.sub(), Some("bob"));
}

/// RFC 9700 §4.5 and RFC 6749 §4.1.2: a code is used once; a second use revokes the token
/// of the first.
pub async fn code_replay_revokes_what_it_issued(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let mut browser = Browser::default();
    let page = walk(&app, &mut browser, &client_id, "alice", "").await;
    let code = approve(&app, &mut browser, &page).await;
    let body = redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .ok();
    let token = body["access_token"].as_str().unwrap();
    let jti = app.verify(token, API).await.jti().unwrap().to_owned();
    assert!(app
        .service
        .store()
        .token(&jti)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());

    let (error, description) = redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .refusal(400);
    assert_eq!(error, "invalid_grant");
    assert!(description.contains("used before"), "{description}");
    let record = app.service.store().token(&jti).await.unwrap().unwrap();
    assert!(record.revoked_at.is_some(), "the first token is revoked");
    assert!(
        app.service.revocations().is_revoked(&jti, None, None, 0),
        "at once, on this node"
    );
}

/// Two redemptions of one code at once (RFC 9700 §4.5: an attacker racing the client): one
/// gets tokens, the other is refused as a replay, and whatever the winner got is revoked,
/// its refresh token included, whichever finished first.
pub async fn racing_redemptions_leave_nothing_usable(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let mut browser = Browser::default();
    for round in 0..8 {
        let page = walk(&app, &mut browser, &client_id, "alice", "").await;
        let code = approve(&app, &mut browser, &page).await;
        let (a, b) = tokio::join!(
            redeem(&app, &client_id, &code, VERIFIER, PRESENTED),
            redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        );
        let winners: Vec<&Reply> = [&a, &b]
            .into_iter()
            .filter(|r| r.status.as_u16() == 200)
            .collect();
        assert!(
            winners.len() <= 1,
            "round {round}: two redemptions of one code"
        );
        let Some(winner) = winners.first() else {
            continue;
        };
        let tokens = winner.json();
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        let (error, _) = refresh(&app, &client_id, refresh_token, "")
            .await
            .refusal(400);
        assert_eq!(
            error, "invalid_grant",
            "round {round}: the race left a refresh token"
        );
        assert!(
            revoked(&app, tokens["access_token"].as_str().unwrap()).await,
            "round {round}"
        );
    }
}

/// The code is bound to its client, redirect URI and PKCE verifier; a failed check leaves
/// it for its rightful redemption.
pub async fn code_is_bound_to_client_redirect_and_verifier(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let (other, _) = user_client(&app, true).await;
    let mut browser = Browser::default();
    let page = walk(&app, &mut browser, &client_id, "alice", "").await;
    let code = approve(&app, &mut browser, &page).await;

    let wrong_verifier = "x".repeat(43);
    let cases = [
        (
            other.as_str(),
            code.as_str(),
            VERIFIER,
            PRESENTED,
            "another client",
        ),
        (&client_id, &code, &wrong_verifier, PRESENTED, "verifier"),
        (&client_id, &code, VERIFIER, REDIRECT, "redirect_uri"),
        (
            &client_id,
            &code,
            VERIFIER,
            "http://127.0.0.1:5556/cb",
            "redirect_uri",
        ),
        (&client_id, "not-a-code", VERIFIER, PRESENTED, "unknown"),
    ];
    for (client, code, verifier, redirect, why) in cases {
        let (error, description) = redeem(&app, client, code, verifier, redirect)
            .await
            .refusal(400);
        assert_eq!(error, "invalid_grant", "{why}: {description}");
        assert!(description.contains(why), "{why}: {description}");
    }
    // PKCE downgrade: no verifier at all.
    let form = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}&redirect_uri={}",
        form_encode(PRESENTED)
    );
    let (error, _) = app.post("/oauth2/token", &form, &[]).await.refusal(400);
    assert_eq!(error, "invalid_request");
    // A resource other than the consented one.
    let form = format!(
        "{form}&code_verifier={VERIFIER}&resource={}",
        form_encode("https://secret.example")
    );
    let (error, _) = app.post("/oauth2/token", &form, &[]).await.refusal(400);
    assert_eq!(error, "invalid_target");

    redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .ok();
}

/// Consent: CSRF, a missing or stale session, deny, and remembered consent.
pub async fn consent_is_csrf_protected_and_can_be_refused(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Remember).await;
    let (client_id, _) = user_client(&app, true).await;
    let mut browser = Browser::default();
    let page = walk(&app, &mut browser, &client_id, "alice", "").await;
    let token = csrf(&page);

    // A form from elsewhere: the browser sends the cookie (same site) but not the value.
    let forged = browser
        .post(&app, "/oauth2/authorize/consent", "csrf=guess&approve=yes")
        .await;
    assert_eq!(forged.status.as_u16(), 403, "{}", forged.text());
    assert!(forged.header("location").is_none());
    // No session at all (another browser), or a session sealed by something else.
    let bare = app
        .post(
            "/oauth2/authorize/consent",
            &format!("csrf={token}&approve=yes"),
            &[],
        )
        .await;
    assert_eq!(bare.status.as_u16(), 400);
    let forged_cookie = app
        .post(
            "/oauth2/authorize/consent",
            &format!("csrf={token}&approve=yes"),
            &[("cookie", "tokengate_sign_in=eyJhbGciOiJkaXIifQ..a.b.c")],
        )
        .await;
    assert_eq!(forged_cookie.status.as_u16(), 400);
    for headers in ["x-frame-options", "content-security-policy"] {
        assert!(forged_cookie.header(headers).is_some(), "{headers}");
    }

    let denied = browser
        .post(
            &app,
            "/oauth2/authorize/consent",
            &format!("csrf={token}&deny=yes"),
        )
        .await;
    let params = redirected(&denied);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(
        (params["state"].as_str(), params["iss"].as_str()),
        ("st-1", ISSUER)
    );
    assert!(!params.contains_key("code"));
    assert!(!browser.cookies.contains_key("tokengate_sign_in"));

    // A public client on a loopback redirect URI may be any app on the device (RFC 8252
    // §8.6): its users are asked every time, remembered or not.
    let page = walk(&app, &mut browser, &client_id, "alice", "").await;
    approve(&app, &mut browser, &page).await;
    let again = walk(&app, &mut browser, &client_id, "alice", "").await;
    assert!(again.text().contains("Allow access?"), "{}", again.text());

    // A confidential client: approved once, remembered, the next sign-in goes straight back.
    let (confidential, _) = user_client(&app, false).await;
    let page = walk(&app, &mut browser, &confidential, "alice", "").await;
    approve(&app, &mut browser, &page).await;
    assert!(browser.cookies.contains_key("tokengate_consent"));
    let back = walk(&app, &mut browser, &confidential, "alice", "").await;
    assert!(redirected(&back).contains_key("code"), "consent remembered");
    // Not for another user, nor for more scopes.
    let other_user = walk(&app, &mut browser, &confidential, "carol", "").await;
    assert_eq!(other_user.status.as_u16(), 200);
    let wider = walk(&app, &mut browser, &confidential, "alice", "%20write").await;
    assert_eq!(wider.status.as_u16(), 200);
    assert!(wider.text().contains("Allow access?"));
}

/// RFC 6749 §4.1.2.1: until the client and redirect URI are verified, errors are pages;
/// after, they go back to the client with state and iss.
pub async fn authorization_errors_are_shown_or_redirected(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let shown = [
        authorize_path("unknown-client", ""),
        authorize_path(&client_id, "").replace("5555%2Fcb", "5555%2Fcb%2Fx"),
        authorize_path(&client_id, "").replace("127.0.0.1", "evil.example"),
    ];
    for path in shown {
        let reply = app.get(&path, &[]).await;
        assert_eq!(reply.status.as_u16(), 400, "{path}");
        assert!(reply.header("location").is_none(), "{path}");
        assert!(reply.header("www-authenticate").is_none(), "{path}");
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
    }
    let no_pkce = authorize_path(&client_id, "")
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let params = redirected(&app.get(&no_pkce, &[]).await);
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(
        (params["state"].as_str(), params["iss"].as_str()),
        ("st-1", ISSUER)
    );

    // Sign-in asks for a name that is a user, not a client id.
    let mut browser = Browser::default();
    let page = walk(&app, &mut browser, &client_id, &client_id, "").await;
    assert_eq!(page.status.as_u16(), 400);
    assert!(page.text().contains("client"), "{}", page.text());
    let page = walk(&app, &mut browser, &client_id, "a%20b", "").await;
    assert_eq!(page.status.as_u16(), 400);

    // Without [token_service.login] there is no authorization endpoint.
    let machines = app_with(&ctx, settings(), None).await;
    let reply = machines.get(&authorize_path(&client_id, ""), &[]).await;
    assert_eq!(reply.status.as_u16(), 404);
    let metadata = machines
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert!(metadata.get("authorization_endpoint").is_none());
}

/// A public client proves nothing but its PKCE verifier: the code grant only.
pub async fn public_clients_use_the_code_grant_only(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (public, _) = user_client(&app, true).await;
    let (confidential, _) = user_client(&app, false).await;
    let reply = app
        .post(
            "/oauth2/token",
            &format!("grant_type=client_credentials&client_id={public}"),
            &[],
        )
        .await;
    assert_eq!(reply.refusal(400).0, "unauthorized_client");
    let reply = app
        .post(
            "/oauth2/introspect",
            &format!("token=x&client_id={public}"),
            &[],
        )
        .await;
    assert_eq!(reply.refusal(401).0, "invalid_client");
    let reply = app
        .post(
            "/oauth2/token",
            &format!("grant_type=client_credentials&client_id={confidential}"),
            &[],
        )
        .await;
    assert_eq!(
        reply.refusal(401).0,
        "invalid_client",
        "a confidential client's id alone"
    );
}

/// Posts `form` to the token endpoint with a DPoP proof by another key (refused), then by
/// `key`; returns the answer.
async fn only_with_dpop_key(app: &TestApp, form: &str, key: &Jwk, tag: &str) -> serde_json::Value {
    let other = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let proof = dpop_proof(&other, &format!("{tag}-other"), None);
    let wrong = app.post("/oauth2/token", form, &[("dpop", &proof)]).await;
    assert_eq!(wrong.refusal(400).0, "invalid_dpop_proof");
    let proof = dpop_proof(key, &format!("{tag}-right"), None);
    app.post("/oauth2/token", form, &[("dpop", &proof)])
        .await
        .ok()
}

/// RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof by that key, and
/// the token is bound to it.
pub async fn dpop_bound_code(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let mut browser = Browser::default();
    let extra = format!("&dpop_jkt={}", key.thumbprint());
    let page = walk(&app, &mut browser, &client_id, "alice", &extra).await;
    let code = approve(&app, &mut browser, &page).await;
    let (error, _) = redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .refusal(400);
    assert_eq!(error, "invalid_dpop_proof");
    let form = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}&code_verifier={VERIFIER}\
         &redirect_uri={}",
        form_encode(PRESENTED)
    );
    let body = only_with_dpop_key(&app, &form, &key, "code").await;
    assert_eq!(body["token_type"], "DPoP");
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.get("cnf").unwrap().unwrap()["jkt"], key.thumbprint());
}

/// Signs `user` in and redeems the code: the token response.
async fn signed_in(
    app: &TestApp,
    client_id: &str,
    user: &str,
    dpop: Option<&Jwk>,
) -> serde_json::Value {
    let mut browser = Browser::default();
    let extra = dpop
        .map(|k| format!("&dpop_jkt={}", k.thumbprint()))
        .unwrap_or_default();
    let page = walk(
        app,
        &mut browser,
        client_id,
        user,
        &format!("%20write{extra}"),
    )
    .await;
    let code = approve(app, &mut browser, &page).await;
    let form = format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}&code_verifier={VERIFIER}\
         &redirect_uri={}",
        form_encode(PRESENTED)
    );
    let proof = dpop.map(|k| dpop_proof(k, &format!("c-{code}"), None));
    let headers: Vec<(&str, &str)> = proof.iter().map(|p| ("dpop", p.as_str())).collect();
    app.post("/oauth2/token", &form, &headers).await.ok()
}

async fn refresh(app: &TestApp, client_id: &str, token: &str, extra: &str) -> Reply {
    let form =
        format!("grant_type=refresh_token&client_id={client_id}&refresh_token={token}{extra}");
    app.post("/oauth2/token", &form, &[]).await
}

async fn revoked(app: &TestApp, access_token: &str) -> bool {
    let jti = app
        .verify(access_token, API)
        .await
        .jti()
        .unwrap()
        .to_owned();
    let record = app.service.store().token(&jti).await.unwrap().unwrap();
    record.revoked_at.is_some()
}

/// RFC 9700 §4.14.2: refresh tokens rotate on every use; a rotated-out one used again
/// revokes the whole grant, access tokens included.
pub async fn refresh_tokens_rotate_and_reuse_revokes_the_grant(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let first = signed_in(&app, &client_id, "alice", None).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    assert_eq!(first["scope"], "read write");

    let second = refresh(&app, &client_id, r1, "&scope=read").await.ok();
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2, "rotated");
    assert_eq!(second["scope"], "read", "narrowed");
    let claims = app
        .verify(second["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.sub(), Some("alice"));
    assert!(
        claims.get("auth_time").unwrap().is_some(),
        "the sign-in's time, kept"
    );

    let (error, _) = refresh(&app, &client_id, r2, "&scope=read%20admin")
        .await
        .refusal(400);
    assert_eq!(error, "invalid_scope", "never wider than the grant");
    let (other, _) = user_client(&app, true).await;
    let (error, _) = refresh(&app, &other, r2, "").await.refusal(400);
    assert_eq!(error, "invalid_grant", "another client's");

    // r1 again: the grant is revoked, r2 with it, and every access token it issued.
    let (error, description) = refresh(&app, &client_id, r1, "").await.refusal(400);
    assert_eq!(error, "invalid_grant");
    assert!(description.contains("used before"), "{description}");
    let (error, _) = refresh(&app, &client_id, r2, "").await.refusal(400);
    assert_eq!(error, "invalid_grant");
    assert!(revoked(&app, first["access_token"].as_str().unwrap()).await);
    assert!(revoked(&app, second["access_token"].as_str().unwrap()).await);

    let metadata = app
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert!(metadata["grant_types_supported"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "refresh_token"));
}

/// RFC 7009: a client revokes its refresh token, and the grant ends; a replayed code ends
/// the grant its first use started.
pub async fn revoking_a_refresh_token_or_replaying_the_code_ends_the_grant(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let grant = signed_in(&app, &client_id, "alice", None).await;
    let r1 = grant["refresh_token"].as_str().unwrap();
    let (other, _) = user_client(&app, true).await;
    let reply = app
        .post(
            "/oauth2/revoke",
            &format!("token={r1}&client_id={other}"),
            &[],
        )
        .await;
    assert_eq!(reply.refusal(400).0, "unauthorized_client", "not its token");
    let reply = app
        .post(
            "/oauth2/revoke",
            &format!("token={r1}&client_id={client_id}"),
            &[],
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
    let (error, _) = refresh(&app, &client_id, r1, "").await.refusal(400);
    assert_eq!(error, "invalid_grant");
    assert!(revoked(&app, grant["access_token"].as_str().unwrap()).await);

    // A code replayed after its refresh token was rotated: everything goes.
    let mut browser = Browser::default();
    let page = walk(&app, &mut browser, &client_id, "bob", "").await;
    let code = approve(&app, &mut browser, &page).await;
    let first = redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .ok();
    let rotated = refresh(
        &app,
        &client_id,
        first["refresh_token"].as_str().unwrap(),
        "",
    )
    .await
    .ok();
    redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .refusal(400);
    let (error, _) = refresh(
        &app,
        &client_id,
        rotated["refresh_token"].as_str().unwrap(),
        "",
    )
    .await
    .refusal(400);
    assert_eq!(error, "invalid_grant");
    assert!(revoked(&app, rotated["access_token"].as_str().unwrap()).await);
}

/// RFC 9449 §5: a grant started with DPoP refreshes only with a proof by the same key.
pub async fn dpop_bound_refresh_tokens(ctx: Ctx) {
    let app = signing_in(&ctx, Consent::Always).await;
    let (client_id, _) = user_client(&app, true).await;
    let key = Jwk::generate(Algorithm::ES256, None, None).unwrap();
    let grant = signed_in(&app, &client_id, "alice", Some(&key)).await;
    assert_eq!(grant["token_type"], "DPoP");
    let r1 = grant["refresh_token"].as_str().unwrap();
    let (error, _) = refresh(&app, &client_id, r1, "").await.refusal(400);
    assert_eq!(error, "invalid_dpop_proof");
    let form = format!("grant_type=refresh_token&client_id={client_id}&refresh_token={r1}");
    let body = only_with_dpop_key(&app, &form, &key, "refresh").await;
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims.get("cnf").unwrap().unwrap()["jkt"], key.thumbprint());
}

/// POSTs an RFC 7591 registration request, with an `Authorization` header if given.
async fn register(app: &TestApp, body: serde_json::Value, auth: Option<&str>) -> Reply {
    let mut req = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/register")
        .header("content-type", "application/json");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    app.send(req.body(axum::body::Body::from(body.to_string())).unwrap())
        .await
}

/// RFC 7591: clients register themselves (open, or with the initial access token); such a
/// client signs users in only and is a third party.
pub async fn dynamic_registration(ctx: Ctx) {
    let mut settings = login_settings(Consent::SkipForFirstParty);
    settings.registration = oauth::registration::DynamicRegistration {
        access: oauth::registration::RegistrationAccess::Open,
        audiences: vec![API.into()],
        ..Default::default()
    };
    let app = app_with(&ctx, settings, None).await;
    let metadata = app
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert_eq!(
        metadata["registration_endpoint"],
        format!("{ISSUER}/oauth2/register")
    );

    let reply = register(
        &app,
        serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "client_name": "MCP <client>", "grant_types": ["authorization_code", "refresh_token"],
            "software_id": "ignored"}),
        None,
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    let public = reply.json();
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["token_endpoint_auth_method"], "none");
    assert_eq!(
        public["scope"], "read write",
        "every declared scope by default"
    );
    let client_id = public["client_id"].as_str().unwrap().to_owned();

    // Its users sign in and are asked, though first-party clients skip consent here.
    let mut browser = Browser::default();
    // Registered for no audience in particular: it names the resource (RFC 8707).
    let resource = format!("&resource={}", form_encode(API));
    let page = walk(&app, &mut browser, &client_id, "alice", &resource).await;
    assert!(page.text().contains("Allow access?") && page.text().contains("MCP &lt;client&gt;"));
    let code = approve(&app, &mut browser, &page).await;
    let tokens = redeem(&app, &client_id, &code, VERIFIER, PRESENTED)
        .await
        .ok();
    assert!(tokens["refresh_token"].is_string());
    // Only the audiences opened to registration.
    let elsewhere = format!("&resource={}", form_encode("https://secret.example"));
    let refused = browser
        .get(&app, &authorize_path(&client_id, &elsewhere))
        .await;
    assert_eq!(redirected(&refused)["error"], "invalid_target");

    // Confidential by default (RFC 7591 §2): a secret, which signs users in only.
    let reply = register(
        &app,
        serde_json::json!({"redirect_uris": ["https://app.example/cb"], "scope": "read"}),
        None,
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text());
    let confidential = reply.json();
    assert_eq!(
        confidential["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    let (id, secret) = (
        confidential["client_id"].as_str().unwrap(),
        confidential["client_secret"].as_str().unwrap(),
    );
    let (error, _) = app
        .token(id, secret, "resource=https%3A%2F%2Fapi.example")
        .await
        .refusal(400);
    assert_eq!(
        error, "unauthorized_client",
        "no client_credentials for a self-registered client"
    );
    // Registered for the same audience, it still reads no token but its own: reading an
    // audience's tokens is for the resource servers an operator registered.
    let form = format!("token={}", tokens["access_token"].as_str().unwrap());
    let auth = crate::harness::basic(id, secret);
    let introspected = app
        .post("/oauth2/introspect", &form, &[("authorization", &auth)])
        .await
        .ok();
    assert_eq!(introspected["active"], false, "{introspected}");

    for (body, error) in [
        (serde_json::json!({}), "invalid_redirect_uri"),
        (
            serde_json::json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "scope": "admin"}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!(["not an object"]),
            "invalid_client_metadata",
        ),
    ] {
        let reply = register(&app, body.clone(), None).await;
        assert_eq!(reply.error(400), error, "{body}");
    }

    // With an initial access token.
    let mut settings = login_settings(Consent::Always);
    settings.registration = oauth::registration::DynamicRegistration {
        access: oauth::registration::RegistrationAccess::Token(zeroize::Zeroizing::new(
            "initial-access-token-0123456789".into(),
        )),
        audiences: vec![API.into()],
        ..Default::default()
    };
    let guarded = app_with(&ctx, settings, None).await;
    let one =
        serde_json::json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    for auth in [None, Some("Bearer wrong"), Some("Basic aW5pdGlhbA==")] {
        let reply = register(&guarded, one.clone(), auth).await;
        assert_eq!(reply.error(401), "invalid_token", "{auth:?}");
        assert!(reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
    }
    let ok = register(
        &guarded,
        one,
        Some("Bearer initial-access-token-0123456789"),
    )
    .await;
    assert_eq!(ok.status.as_u16(), 201);

    // Off: not served, not advertised.
    let off = signing_in(&ctx, Consent::Always).await;
    let reply = off.post("/oauth2/register", "{}", &[]).await;
    assert_eq!(reply.status.as_u16(), 404);
    let metadata = off
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .ok();
    assert!(metadata.get("registration_endpoint").is_none());
}
