//! What the templates every part of espace-ps renders read: the frame of
//! every page (`base.hbs`: title, signed-in user), the pages of `/auth`, and
//! the JSON refusal. One struct per page or answer, serialized as is (the
//! templates run in strict mode: a field missing here fails the render). The
//! portal's own pages have theirs in `portal/views.rs`.

use serde::Serialize;

/// What every page's frame (`base.hbs`) reads, around the page's own view.
#[derive(Debug, Serialize)]
pub struct Page<'a, T> {
    /// The window title.
    pub title: &'a str,
    /// The signed-in professional (None: signed out).
    pub user: Option<&'a UserView>,
    /// A page that sends the browser on at once (`<meta http-equiv="refresh">`).
    pub refresh_to: Option<&'a str>,
    /// The page's own fields.
    #[serde(flatten)]
    pub body: T,
}

/// The signed-in professional, as every page shows them.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub national_id: String,
    pub rpps: Option<String>,
    /// How they signed in, in French.
    pub login_method: &'static str,
    /// For the page's forms (logout, "Marquer comme vu"…).
    pub csrf_token: String,
    /// How long the session lives if idle (the page's script drops
    /// "Mes dernières recherches" after it, even offline).
    pub session_remaining_ms: i64,
}

/// A JSON refusal (`{"error": "…"}`), in French.
#[derive(Debug, Serialize)]
pub struct ApiError {
    pub error: &'static str,
}

// === the pages of /auth ===

/// `GET /auth/login`.
#[derive(Debug, Serialize)]
pub struct LoginPage<'a> {
    /// Pro Santé Connect is configured.
    pub psc: bool,
    /// The session ended by timeout ("Votre session a expiré").
    pub expired: bool,
    /// … while a form was being sent: it was not done.
    pub action_lost: bool,
    /// `[portal] support_contact`.
    pub support_contact: Option<&'a str>,
    /// The "Je me connecte" link (with `psc`).
    pub start_href: Option<&'a str>,
}

/// `GET /auth/logout` (the confirmation, with a user), `POST /auth/logout`
/// (on to Pro Santé Connect's logout) and `GET /auth/logged-out`.
#[derive(Debug, Serialize)]
pub struct LogoutPage<'a> {
    /// The "Continuer" link (also the page's `refresh_to`).
    pub continue_href: Option<&'a str>,
}

/// `GET /auth/hm-sso/confirm`: who the launch is for, who is signed in.
#[derive(Debug, Serialize)]
pub struct HmSsoConfirmPage<'a> {
    pub who: LaunchFor<'a>,
    /// The professional signed in in this browser, if any.
    pub current: Option<SignedIn<'a>>,
    /// The parked launch's id.
    pub launch: &'a str,
    /// The launch's own CSRF value.
    pub csrf_token: &'a str,
}

/// The professional a Hopital Manager launch names.
#[derive(Debug, Serialize)]
pub struct LaunchFor<'a> {
    pub label: &'a str,
    pub national_id: &'a str,
}

/// The professional already signed in, on the confirmation page.
#[derive(Debug, Serialize)]
pub struct SignedIn<'a> {
    pub name: &'a str,
    pub national_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::Pages;
    use crate::web::Resp;
    use http::StatusCode;
    use serde_json::json;

    fn user() -> UserView {
        UserView {
            name: "Dr Jeanne MARTIN".into(),
            national_id: "899700123450".into(),
            rpps: Some("99700123450".into()),
            login_method: "Pro Santé Connect, carte CPS",
            csrf_token: "csrf-1".into(),
            session_remaining_ms: 1_800_000,
        }
    }

    fn page<'a, T>(
        title: &'a str,
        user: Option<&'a UserView>,
        refresh_to: Option<&'a str>,
        body: T,
    ) -> Page<'a, T> {
        Page {
            title,
            user,
            refresh_to,
            body,
        }
    }

    fn body(r: Resp) -> String {
        assert_eq!(r.status(), StatusCode::OK);
        String::from_utf8(r.body().to_vec()).unwrap()
    }

    /// The views of the /auth pages render what the `json!` values of
    /// `auth/mod.rs` render (for the lead's conversion of that module).
    #[test]
    fn auth_page_views_render_as_the_json_values() {
        let p = Pages::new(None).unwrap();
        let u = user();
        let ok = StatusCode::OK;
        let render_json = |name: &str, v: serde_json::Value| body(p.render(ok, name, &v));
        // Login, without and with Pro Santé Connect.
        assert_eq!(
            body(p.render(
                ok,
                "login",
                &page(
                    "Connexion",
                    None,
                    None,
                    LoginPage {
                        psc: false,
                        expired: false,
                        action_lost: false,
                        support_contact: None,
                        start_href: None
                    }
                )
            )),
            render_json(
                "login",
                json!({"title": "Connexion", "user": null, "psc": false, "expired": false, "action_lost": false, "support_contact": null, "refresh_to": null})
            ),
        );
        let href = "/auth/login?start=1&return_to=%2F";
        assert_eq!(
            body(p.render(
                ok,
                "login",
                &page(
                    "Connexion",
                    None,
                    None,
                    LoginPage {
                        psc: true,
                        expired: false,
                        action_lost: false,
                        support_contact: None,
                        start_href: Some(href)
                    }
                )
            )),
            render_json(
                "login",
                json!({"title": "Connexion", "user": null, "psc": true, "expired": false, "action_lost": false, "support_contact": null, "start_href": href, "refresh_to": null})
            ),
        );
        // Logout: confirmation, on to PSC, logged out.
        let url = "https://psc.example/logout?state=x&id_token_hint=y";
        let cases = [
            (
                page(
                    "Déconnexion",
                    Some(&u),
                    None,
                    LogoutPage {
                        continue_href: None,
                    },
                ),
                json!({"title": "Déconnexion", "user": &u, "continue_href": null, "refresh_to": null}),
            ),
            (
                page(
                    "Déconnexion",
                    None,
                    Some(url),
                    LogoutPage {
                        continue_href: Some(url),
                    },
                ),
                json!({"title": "Déconnexion", "user": null, "continue_href": url, "refresh_to": url}),
            ),
            (
                page(
                    "Déconnexion",
                    None,
                    None,
                    LogoutPage {
                        continue_href: None,
                    },
                ),
                json!({"title": "Déconnexion", "user": null, "continue_href": null, "refresh_to": null}),
            ),
        ];
        for (view, value) in cases {
            assert_eq!(
                body(p.render(ok, "logout", &view)),
                render_json("logout", value)
            );
        }
        // Hopital Manager confirmation, with and without someone signed in.
        for current in [None, Some(&u)] {
            let view = page(
                "Connexion depuis Hopital Manager",
                current,
                None,
                HmSsoConfirmPage {
                    who: LaunchFor {
                        label: "Dr Paul <b>DURAND</b>",
                        national_id: "810001234567",
                    },
                    current: current.map(|c| SignedIn {
                        name: &c.name,
                        national_id: &c.national_id,
                    }),
                    launch: "launch-1",
                    csrf_token: "csrf-launch",
                },
            );
            let current_view =
                current.map(|c| json!({"name": c.name, "national_id": c.national_id}));
            let value = json!({
                "title": "Connexion depuis Hopital Manager",
                "user": current,
                "refresh_to": null,
                "who": {"label": "Dr Paul <b>DURAND</b>", "national_id": "810001234567"},
                "current": current_view,
                "launch": "launch-1",
                "csrf_token": "csrf-launch",
            });
            assert_eq!(
                body(p.render(ok, "hm_sso_confirm", &view)),
                render_json("hm_sso_confirm", value)
            );
        }
    }
}
