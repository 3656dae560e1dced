//! The portal pages. For now the home page: the signed-in professional's
//! name and RPPS. Search, results and history come with the portal work.

use http::{Method, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::pages;
use crate::web::{Req, Resp};

pub async fn handle(app: &App, req: Req) -> Resp {
    let data = match app.session_of(&req).await {
        Ok(Some((_, data))) => data,
        Ok(None) => return app.login_required(&req),
        Err(_) => return app.error(&pages::UNAVAILABLE),
    };
    let user = app.user_view(&data);
    match (req.method.clone(), req.path.as_str()) {
        (Method::GET | Method::HEAD, "/") => app.pages.render(
            StatusCode::OK,
            "home",
            &json!({"title": "Accueil", "user": user, "refresh_to": null}),
        ),
        _ => app.pages.error(&pages::NOT_FOUND, Some(&user)),
    }
}
