//! The portal's link to a study (`/portail/images/{uid}`): checked,
//! audited, then sent on to the viewer.

use espace_ps_access::{Action, Resource};

use super::Ctx;
use crate::access::AccessError;
use crate::audit::{Event, Outcome};
use crate::pages::IMAGES_NOT_FOUND;
use crate::web::{self, Resp};

pub async fn images(ctx: Ctx<'_>, uid: &str) -> Resp {
    let result: Result<Option<Result<String, crate::viewer::ResolveError>>, AccessError> = async {
        let Some(study) = ctx.records()?.study(uid).await? else {
            return Ok(None);
        };
        let res = Resource::Study {
            uid: uid.to_owned(),
            dossier_id: study.dossier_number.clone(),
        };
        if ctx
            .app
            .access
            .decide_on_dossier(&ctx.session, Action::ViewImages, res, &study.dossier_number)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        ctx.audit_or_refuse(ctx.audit(Event::ImagesOpen, Outcome::Success, uid))
            .await?;
        Ok(Some(ctx.app.viewer.study_url(uid).await))
    }
    .await;
    match result {
        Ok(Some(Ok(url))) => web::redirect(&url),
        Ok(Some(Err(e))) => {
            tracing::warn!(error = %e, "cannot open a study in the viewer");
            ctx.error(&crate::viewer::VIEWER_UNAVAILABLE)
        }
        Ok(None) => ctx.error(&IMAGES_NOT_FOUND),
        Err(e) => ctx.unavailable(&e),
    }
}
