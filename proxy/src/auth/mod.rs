//! `/auth/*`: Pro Santé Connect login and callback, Hopital Manager single
//! sign-on, logout. Every outcome is audited and counted; every refusal ends
//! on a French page with no session and no account created.

pub mod hm_sso;
pub mod psc;

use http::{Method, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::audit::AuditEvent;
use crate::identity::Professional;
use crate::metrics::METRICS;
use crate::pages::{self, ErrorPage};
use crate::web::{self, Req, Resp, FLOW_COOKIE, SESSION_COOKIE};

pub async fn handle(app: &App, req: Req) -> Resp {
    match (req.method.clone(), req.path.as_str()) {
        (Method::GET, "/auth/login") => login(app, &req).await,
        (Method::GET, "/auth/callback") => callback(app, &req).await,
        (Method::GET | Method::POST, "/auth/hm-sso") => hm_sso_launch(app, &req).await,
        (Method::GET, "/auth/hm-sso/confirm") => hm_sso_continue(app, &req).await,
        (Method::POST, "/auth/hm-sso/confirm") => hm_sso_confirm(app, &req).await,
        (Method::GET, "/auth/logout") => logout_page(app, &req).await,
        (Method::POST, "/auth/logout") => logout(app, &req).await,
        (Method::GET, "/auth/logged-out") => app.pages.render(
            StatusCode::OK,
            "logout",
            &json!({"title": "Déconnexion", "user": null, "continue_href": null, "refresh_to": null}),
        ),
        (
            _,
            "/auth/login" | "/auth/callback" | "/auth/logout" | "/auth/logged-out"
            | "/auth/hm-sso" | "/auth/hm-sso/confirm",
        ) => {
            app.error(&pages::METHOD_NOT_ALLOWED)
        }
        _ => app.error(&pages::NOT_FOUND),
    }
}

// === login failures, in French ===

/// The professional is in the policies' `revoked` group.
pub const REVOKED: ErrorPage = ErrorPage::new(
    StatusCode::FORBIDDEN,
    "Accès suspendu",
    "Votre accès à l'espace professionnel de santé a été suspendu par l'établissement. Pour toute question, contactez le support de l'établissement.",
)
.with_reference("acces-suspendu");

const LOGIN_FAILED: &str = "La connexion a échoué";
const RETRY: (&str, &str) = ("/auth/login", "Recommencer la connexion");

fn psc_failure(code: &'static str) -> ErrorPage {
    let msg = match code {
        "flow_missing" | "state_mismatch" => {
            "La demande de connexion a expiré ou ne correspond pas à celle de votre navigateur. Recommencez la connexion."
        }
        "provider_error" => "Pro Santé Connect a refusé ou annulé la connexion.",
        "missing_code" => "La réponse de Pro Santé Connect est incomplète.",
        "token_exchange" | "no_id_token" => {
            "La connexion n'a pas pu être finalisée auprès de Pro Santé Connect (code expiré ou déjà utilisé). Recommencez la connexion."
        }
        "id_token_invalid" => {
            "Le jeton d'identité reçu de Pro Santé Connect n'est pas valide. Par sécurité, la connexion est refusée."
        }
        "acr" => {
            "Le niveau d'authentification requis (eIDAS substantiel, carte CPS ou e-CPS) n'a pas été atteint."
        }
        "userinfo_invalid" => {
            "Les informations de votre identité professionnelle n'ont pas pu être vérifiées auprès de Pro Santé Connect."
        }
        "national_id" => {
            "Votre identifiant national de professionnel de santé est absent ou mal formé. Contactez le support de l'établissement."
        }
        "dev_idp_untrusted" | "issuer_mismatch" => {
            "Le fournisseur d'identité n'est pas celui attendu par l'établissement. La connexion est refusée."
        }
        _ => "Pro Santé Connect est momentanément injoignable. Réessayez dans quelques minutes.",
    };
    let status = match code {
        "provider_unreachable" => StatusCode::BAD_GATEWAY,
        "not_configured" => StatusCode::NOT_FOUND,
        _ => StatusCode::FORBIDDEN,
    };
    ErrorPage::new(status, LOGIN_FAILED, msg)
        .with_reference(code)
        .with_action(RETRY.0, RETRY.1)
}

fn hm_failure(code: &'static str) -> ErrorPage {
    let msg = match code {
        "replayed" => {
            "Ce lien de connexion depuis Hopital Manager a déjà été utilisé. Relancez l'accès depuis Hopital Manager."
        }
        "national_id" => {
            "Votre identifiant national de professionnel de santé est absent ou mal formé dans la demande d'Hopital Manager."
        }
        "keys_unavailable" => {
            "Les clés de vérification d'Hopital Manager sont momentanément indisponibles. Réessayez dans quelques minutes."
        }
        "not_configured" => "La connexion depuis Hopital Manager n'est pas activée sur ce serveur.",
        "launch_expired" => {
            "Cette demande de connexion depuis Hopital Manager a expiré ou a déjà servi. Relancez l'accès depuis Hopital Manager."
        }
        "launch_other_browser" => {
            "Cette demande de connexion n'a pas été ouverte dans ce navigateur. Relancez l'accès depuis Hopital Manager."
        }
        "launch_csrf" => {
            "La confirmation ne provient pas de la page de connexion de l'espace professionnel de santé. Par sécurité, la connexion est refusée. Relancez l'accès depuis Hopital Manager."
        }
        _ => {
            "La demande de connexion d'Hopital Manager n'est pas valide ou a expiré. Relancez l'accès depuis Hopital Manager."
        }
    };
    let status = match code {
        "keys_unavailable" => StatusCode::BAD_GATEWAY,
        "not_configured" => StatusCode::NOT_FOUND,
        _ => StatusCode::FORBIDDEN,
    };
    ErrorPage::new(status, "La connexion depuis Hopital Manager a échoué", msg).with_reference(code)
}

impl App {
    async fn audit_best_effort(&self, e: AuditEvent) {
        if let Err(err) = self.db.audit(&e).await {
            tracing::error!(error = %err, event = e.event, "audit write failed");
        }
    }

    /// Records a refused login (audit, metric) and answers the page.
    async fn refuse_login(
        &self,
        req: &Req,
        event: &'static str,
        method: &'static str,
        code: &'static str,
        page: ErrorPage,
    ) -> Resp {
        METRICS.logins.with_label_values(&[method, code]).inc();
        tracing::warn!(event, reason = code, "login refused");
        self.audit_best_effort(AuditEvent {
            event,
            method: Some(method),
            outcome: "refused",
            client_addr: Some(req.client_ip.to_string()),
            detail: Some(code.to_owned()),
            ..Default::default()
        })
        .await;
        let mut resp = self.error(&page);
        web::add_cookie(&mut resp, &self.cookies.clear(FLOW_COOKIE));
        resp
    }

    /// Account, audit and a new session for a verified professional; the
    /// response sends the browser on to `target`. Any failure refuses.
    async fn start_session(
        &self,
        req: &Req,
        professional: Professional,
        id_token: Option<String>,
        event: &'static str,
        target: &str,
    ) -> Resp {
        let method = professional.login_method.as_str();
        let metric_method = if event == "hm_sso" { "hm_sso" } else { "psc" };
        // Revoked by the establishment (policies' `revoked` group): no login.
        if self.in_revoked_group(&professional) {
            METRICS
                .logins
                .with_label_values(&[metric_method, "revoked"])
                .inc();
            tracing::warn!(event, reason = "revoked", "login refused");
            self.audit_best_effort(AuditEvent {
                actor: Some(professional.national_id.as_str().to_owned()),
                event,
                method: Some(method),
                outcome: "refused",
                client_addr: Some(req.client_ip.to_string()),
                detail: Some("revoked".to_owned()),
                ..Default::default()
            })
            .await;
            let mut resp = self.error(&REVOKED);
            web::add_cookie(&mut resp, &self.cookies.clear(FLOW_COOKIE));
            return resp;
        }
        let account = match self.db.record_login(&professional).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "portal database unavailable at login");
                METRICS
                    .logins
                    .with_label_values(&[metric_method, "database"])
                    .inc();
                return self.error(&pages::UNAVAILABLE);
            }
        };
        let audit = AuditEvent {
            actor: Some(professional.national_id.as_str().to_owned()),
            event,
            method: Some(method),
            outcome: "success",
            client_addr: Some(req.client_ip.to_string()),
            detail: account.created.then(|| "account_created".to_owned()),
            ..Default::default()
        };
        if let Err(e) = self.db.audit(&audit).await {
            // No audit record, no access.
            tracing::error!(error = %e, "audit write failed at login");
            return self.error(&pages::UNAVAILABLE);
        }
        // A new id at every login: an id set before login is never reused.
        if let Some(old) = req.cookie(&self.cookies.name(SESSION_COOKIE)) {
            let _ = self.sessions.destroy(&old).await;
        }
        match self
            .sessions
            .create(professional, account.account_id, id_token)
            .await
        {
            Ok((id, _)) => {
                METRICS
                    .logins
                    .with_label_values(&[metric_method, "success"])
                    .inc();
                tracing::info!(event, method, account = account.account_id, "login");
                let mut resp = web::redirect(target);
                web::add_cookie(&mut resp, &self.cookies.set(SESSION_COOKIE, &id, None));
                web::add_cookie(&mut resp, &self.cookies.clear(FLOW_COOKIE));
                resp
            }
            Err(e) => {
                METRICS.store_errors.with_label_values(&["create"]).inc();
                tracing::error!(error = %e, "session store failed at login");
                self.error(&pages::UNAVAILABLE)
            }
        }
    }
}

// === Pro Santé Connect ===

async fn login(app: &App, req: &Req) -> Resp {
    let return_to = req
        .query_param("return_to")
        .and_then(|r| web::safe_return_to(&r))
        .unwrap_or_else(|| "/".to_owned());
    match app.session_of(req).await {
        Ok(Some(_)) => return web::redirect(&return_to),
        Ok(None) => {}
        Err(_) => return app.error(&pages::UNAVAILABLE),
    }
    let Some(psc) = &app.psc else {
        return app.pages.render(
            StatusCode::OK,
            "login",
            &json!({"title": "Connexion", "user": null, "psc": false, "refresh_to": null}),
        );
    };
    if req.query_param("start").is_none() {
        let start_href = format!(
            "/auth/login?start=1&return_to={}",
            urlencoding::encode(&return_to)
        );
        return app.pages.render(
            StatusCode::OK,
            "login",
            &json!({"title": "Connexion", "user": null, "psc": true,
                    "start_href": start_href, "refresh_to": null}),
        );
    }
    if let Some(refusal) = app.over_login_limit(req, "login").await {
        return refusal;
    }
    let (url, flow) = match psc.begin(return_to).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a Pro Santé Connect login");
            let code = e.code();
            return app
                .refuse_login(req, "login", "psc", code, psc_failure(code))
                .await;
        }
    };
    match app.sessions.put_flow(&flow).await {
        Ok(flow_id) => {
            let mut resp = web::redirect(url.as_str());
            web::add_cookie(
                &mut resp,
                &app.cookies.set(
                    FLOW_COOKIE,
                    &flow_id,
                    Some(crate::session::FLOW_TTL.as_secs()),
                ),
            );
            resp
        }
        Err(e) => {
            METRICS.store_errors.with_label_values(&["flow"]).inc();
            tracing::error!(error = %e, "session store failed at login start");
            app.error(&pages::UNAVAILABLE)
        }
    }
}

async fn callback(app: &App, req: &Req) -> Resp {
    let refuse =
        |code: &'static str| app.refuse_login(req, "login", "psc", code, psc_failure(code));
    let Some(psc) = &app.psc else {
        return refuse("not_configured").await;
    };
    if let Some(refusal) = app.over_login_limit(req, "callback").await {
        return refusal;
    }
    // The pending login is taken (used once) whatever happens next.
    let flow = match req.cookie(&app.cookies.name(FLOW_COOKIE)) {
        Some(id) => match app.sessions.take_flow(&id).await {
            Ok(f) => f,
            Err(_) => return app.error(&pages::UNAVAILABLE),
        },
        None => None,
    };
    let Some(flow) = flow else {
        return refuse("flow_missing").await;
    };
    let state = req.query_param("state").unwrap_or_default();
    let state_ok: bool =
        subtle::ConstantTimeEq::ct_eq(state.as_bytes(), flow.state.as_bytes()).into();
    if state.is_empty() || !state_ok {
        return refuse("state_mismatch").await;
    }
    if req.query_param("error").is_some() {
        return refuse("provider_error").await;
    }
    let Some(code) = req.query_param("code").filter(|c| !c.is_empty()) else {
        return refuse("missing_code").await;
    };
    match psc.complete(&flow, &code).await {
        Ok(login) => {
            app.start_session(
                req,
                login.professional,
                Some(login.id_token),
                "login",
                &flow.return_to,
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "Pro Santé Connect login refused");
            let code = e.code();
            refuse(code).await
        }
    }
}

// === Hopital Manager single sign-on ===

/// The browser-binding cookie of pending Hopital Manager launches.
const HM_LAUNCH_COOKIE: &str = "espace-hm-sso";
/// The store kind of pending launches.
const HM_PENDING: &str = "hm-launch";
/// How long a verified launch waits for its browser (and its confirmation).
const HM_PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// `/auth/hm-sso`: verifies the token and uses up its `jti`, whatever comes
/// next; then parks the launch and sends the browser to
/// `/auth/hm-sso/confirm`. Nobody is signed in here: a cross-site form can
/// reach this route (login CSRF), and on a cross-site POST the browser does
/// not send the session cookie (SameSite=Lax), so whether another
/// professional is signed in can only be seen on the same-origin GET that
/// follows.
async fn hm_sso_launch(app: &App, req: &Req) -> Resp {
    let refuse =
        |code: &'static str| app.refuse_login(req, "hm_sso", "hm_sso", code, hm_failure(code));
    let Some(hm) = &app.hm_sso else {
        return refuse("not_configured").await;
    };
    if let Some(refusal) = app.over_login_limit(req, "hm_sso").await {
        return refusal;
    }
    let token = if req.method == Method::POST {
        req.form_param("token").or_else(|| req.form_param("jwt"))
    } else {
        req.query_param("token").or_else(|| req.query_param("jwt"))
    };
    let Some(token) = token.filter(|t| !t.is_empty() && t.len() < 16 * 1024) else {
        return refuse("missing_token").await;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let launch = match hm.verify(&token, now).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "Hopital Manager SSO refused");
            return refuse(e.code()).await;
        }
    };
    match app
        .sessions
        .claim_once("hm-jti", &launch.jti, launch.jti_ttl)
        .await
    {
        Ok(true) => {}
        Ok(false) => return refuse("replayed").await,
        Err(_) => return app.error(&pages::UNAVAILABLE),
    }
    // Straight through only for a POST that Hopital Manager's own page made.
    let direct = req.method == Method::POST
        && req.header("origin").is_some_and(|o| {
            hm.config()
                .allowed_origins
                .iter()
                .any(|allowed| allowed == o)
        });
    // One binding value per browser, so that two launches in two tabs both work.
    let cookie_name = app.cookies.name(HM_LAUNCH_COOKIE);
    let browser = req
        .cookie(&cookie_name)
        .filter(|c| c.len() == 43)
        .unwrap_or_else(crate::session::new_token);
    let pending = hm_sso::PendingLaunch {
        professional: launch.professional,
        target: launch.target,
        browser: crate::session::digest(&browser),
        csrf_token: crate::session::new_token(),
        direct,
    };
    let id = match app
        .sessions
        .park(HM_PENDING, &pending, HM_PENDING_TTL)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            METRICS.store_errors.with_label_values(&["hm_launch"]).inc();
            tracing::error!(error = %e, "session store failed at Hopital Manager launch");
            return app.error(&pages::UNAVAILABLE);
        }
    };
    tracing::info!(
        direct,
        "Hopital Manager launch verified, waiting for its browser"
    );
    let mut resp = web::redirect(&format!("/auth/hm-sso/confirm?launch={id}"));
    web::add_cookie(
        &mut resp,
        &app.cookies
            .set(HM_LAUNCH_COOKIE, &browser, Some(HM_PENDING_TTL.as_secs())),
    );
    resp
}

/// The parked launch `id` when this browser started it.
async fn hm_pending_of(
    app: &App,
    req: &Req,
    id: &str,
    take: bool,
) -> Result<hm_sso::PendingLaunch, &'static str> {
    let found = if take {
        app.sessions.take_parked(HM_PENDING, id).await
    } else {
        app.sessions.peek_parked(HM_PENDING, id).await
    };
    let pending: hm_sso::PendingLaunch = match found {
        Ok(Some(p)) => p,
        Ok(None) => return Err("launch_expired"),
        Err(e) => {
            METRICS.store_errors.with_label_values(&["hm_launch"]).inc();
            tracing::error!(error = %e, "session store failed at Hopital Manager launch");
            return Err("store");
        }
    };
    let browser = req
        .cookie(&app.cookies.name(HM_LAUNCH_COOKIE))
        .map(|c| crate::session::digest(&c))
        .unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        browser.as_bytes(),
        pending.browser.as_bytes(),
    )) {
        return Err("launch_other_browser");
    }
    Ok(pending)
}

/// `GET /auth/hm-sso/confirm?launch=…`: a same-site navigation, so the
/// session cookie is here if there is one. Goes on without a page only for
/// a launch from an allowed origin with nobody else signed in, or when the
/// launch names the professional already signed in (the session is kept).
/// Otherwise the page names who the token is for, and who is signed in.
async fn hm_sso_continue(app: &App, req: &Req) -> Resp {
    let refuse =
        |code: &'static str| app.refuse_login(req, "hm_sso", "hm_sso", code, hm_failure(code));
    if app.hm_sso.is_none() {
        return refuse("not_configured").await;
    }
    let id = req.query_param("launch").unwrap_or_default();
    let pending = match hm_pending_of(app, req, &id, false).await {
        Ok(p) => p,
        Err("store") => return app.error(&pages::UNAVAILABLE),
        Err(code) => return refuse(code).await,
    };
    let current = match app.session_of(req).await {
        Ok(c) => c,
        Err(_) => return app.error(&pages::UNAVAILABLE),
    };
    let same = current
        .as_ref()
        .map(|(_, data)| data.professional.national_id == pending.professional.national_id);
    if same == Some(true) || (same.is_none() && pending.direct) {
        // Used up now: a second visit of this URL finds nothing.
        let pending = match hm_pending_of(app, req, &id, true).await {
            Ok(p) => p,
            Err("store") => return app.error(&pages::UNAVAILABLE),
            Err(code) => return refuse(code).await,
        };
        if same == Some(true) {
            tracing::info!("Hopital Manager launch for the professional already signed in");
            return web::redirect(&pending.target);
        }
        return app
            .start_session(req, pending.professional, None, "hm_sso", &pending.target)
            .await;
    }
    let label = pending.label();
    let user = current.as_ref().map(|(_, data)| app.user_view(data));
    let current_view = current.as_ref().map(|(_, data)| {
        json!({"name": data.professional.display_name(),
               "national_id": data.professional.national_id.as_str()})
    });
    app.pages.render(
        StatusCode::OK,
        "hm_sso_confirm",
        &json!({
            "title": "Connexion depuis Hopital Manager",
            "user": user,
            "refresh_to": null,
            "who": {"label": label,
                    "national_id": pending.professional.national_id.as_str()},
            "current": current_view,
            "launch": id,
            "csrf_token": pending.csrf_token,
        }),
    )
}

/// `POST /auth/hm-sso/confirm`: the button of the confirmation page. The
/// launch is used up whatever happens; it must come from this browser,
/// from our origin, with the page's CSRF value. The user has seen who is
/// signed in (if anyone): that session is replaced.
async fn hm_sso_confirm(app: &App, req: &Req) -> Resp {
    let refuse =
        |code: &'static str| app.refuse_login(req, "hm_sso", "hm_sso", code, hm_failure(code));
    if app.hm_sso.is_none() {
        return refuse("not_configured").await;
    }
    if let Some(refusal) = app.over_login_limit(req, "hm_sso").await {
        return refusal;
    }
    let id = req.form_param("launch").unwrap_or_default();
    let pending = match hm_pending_of(app, req, &id, true).await {
        Ok(p) => p,
        Err("store") => return app.error(&pages::UNAVAILABLE),
        Err(code) => return refuse(code).await,
    };
    if !web::csrf_ok(req, &pending.csrf_token, &app.config.server.public_origin()) {
        return refuse("launch_csrf").await;
    }
    app.start_session(req, pending.professional, None, "hm_sso", &pending.target)
        .await
}

// === logout ===

async fn logout_page(app: &App, req: &Req) -> Resp {
    match app.stored_session(req).await {
        Ok(Some((_, data))) => app.pages.render(
            StatusCode::OK,
            "logout",
            &json!({"title": "Déconnexion", "user": app.user_view(&data),
                    "continue_href": null, "refresh_to": null}),
        ),
        Ok(None) => web::redirect("/auth/logged-out"),
        Err(_) => app.error(&pages::UNAVAILABLE),
    }
}

async fn logout(app: &App, req: &Req) -> Resp {
    // The store alone: a logout ends the session even while the portal
    // database (revocations) is down.
    let (id, data) = match app.stored_session(req).await {
        Ok(Some((id, data))) => (id, data),
        Ok(None) => {
            let mut resp = web::redirect("/auth/logged-out");
            web::add_cookie(&mut resp, &app.cookies.clear(SESSION_COOKIE));
            return resp;
        }
        Err(_) => return app.error(&pages::UNAVAILABLE),
    };
    if !web::csrf_ok(req, &data.csrf_token, &app.config.server.public_origin()) {
        return app
            .pages
            .error(&pages::FORBIDDEN_CSRF, Some(&app.user_view(&data)));
    }
    if let Err(e) = app.sessions.destroy(&id).await {
        tracing::error!(error = %e, "session store failed at logout");
        return app.error(&pages::UNAVAILABLE);
    }
    let p = &data.professional;
    app.audit_best_effort(AuditEvent {
        actor: Some(p.national_id.as_str().to_owned()),
        event: "logout",
        method: Some(p.login_method.as_str()),
        outcome: "success",
        client_addr: Some(req.client_ip.to_string()),
        ..Default::default()
    })
    .await;
    // PSC's end-session is on another origin: a form may not redirect
    // there under our CSP (form-action 'self'), so a page sends the browser on.
    let psc_logout = match (&app.psc, data.id_token.as_deref()) {
        (Some(psc), Some(id_token)) => {
            let state = crate::session::new_token();
            psc.logout_url(Some(id_token), &state).await
        }
        _ => None,
    };
    let mut resp = match psc_logout {
        Some(url) => app.pages.render(
            StatusCode::OK,
            "logout",
            &json!({"title": "Déconnexion", "user": null,
                    "continue_href": url.as_str(), "refresh_to": url.as_str()}),
        ),
        None => web::redirect("/auth/logged-out"),
    };
    web::add_cookie(&mut resp, &app.cookies.clear(SESSION_COOKIE));
    // Tell the browser to drop what the portal stored (recent searches, caches).
    resp.headers_mut().insert(
        "clear-site-data",
        http::HeaderValue::from_static("\"cache\", \"storage\""),
    );
    resp
}
