//! The portal pages (user guide sections 2 and 3): patient search, dossier
//! access by number and birth date, unseen results, exam history grouped by
//! venue, reports. Every page needs a session; every record shown passed
//! the policy engine; anything with patient data is `no-store`.

mod by_number;
mod dossier;
pub mod home;
mod images;
mod report;
mod search;
pub mod views;

use espace_ps_records::Patient;
use http::{Method, StatusCode};
use serde::Serialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::Date;

use std::sync::Arc;

use crate::access::{Access, AccessError};
use crate::audit::{AuditEvent, Event, Outcome};
use crate::auth::SessionCheck;
use crate::config::{Config, LookupLimits};
use crate::pages::Pages;
use crate::pages::{ErrorPage, NOT_FOUND, TOO_MANY_LOOKUPS, UNAVAILABLE};
use crate::ratelimit::Limiter;
use crate::ratelimit::{hit_all, Verdict};
use crate::session::{KvStore, RecentPatient, SessionData, Sessions};
use crate::state::PortalDb;
use crate::viewer::Gate;
use crate::views::{ApiError, Page, UserView};
use crate::web::{self, Req, Resp};

/// The portal's pages: what they need, and nothing else.
pub struct Portal {
    /// The session of each request.
    pub check: Arc<SessionCheck>,
    pub access: Arc<Access>,
    /// The hospital records, read-only (None: not configured).
    pub records: Option<espace_ps_records::Records>,
    pub db: PortalDb,
    /// To save "Mes dernières recherches" in the session.
    pub sessions: Arc<Sessions>,
    pub pages: Arc<Pages>,
    /// Rate limits on dossier lookups, in the shared session store.
    pub lookup_limits: LookupLimiters,
    /// Where a study opens; told when a grant changes what a session may see.
    pub viewer: Arc<Gate>,
    pub config: Arc<Config>,
}

/// The per-account and per-address limits on dossier lookups (see
/// [`crate::config::LookupLimits`]).
pub struct LookupLimiters {
    pub submit_by_account: Limiter,
    pub submit_by_address: Limiter,
    pub views_by_account: Limiter,
    pub views_by_address: Limiter,
}

impl LookupLimiters {
    pub fn new(store: &Arc<dyn KvStore>, prefix: &str, l: &LookupLimits) -> LookupLimiters {
        let m = |name, limit| Limiter::per_minute(store.clone(), prefix, name, limit);
        LookupLimiters {
            submit_by_account: m("dossier_submit_account", l.dossier_submit_per_account),
            submit_by_address: m("dossier_submit_address", l.dossier_submit_per_address),
            views_by_account: m("record_view_account", l.record_views_per_account),
            views_by_address: m("record_view_address", l.record_views_per_address),
        }
    }
}

/// The signed-in request, as handlers see it.
pub struct Ctx<'a> {
    pub app: &'a Portal,
    pub req: &'a Req,
    pub session_id: String,
    pub session: SessionData,
    pub user: UserView,
}

/// How many patients "Mes dernières recherches" keeps.
const RECENT_CAP: usize = 10;

const NO_RECORDS: ErrorPage = ErrorPage::new(
    StatusCode::NOT_FOUND,
    "Dossier introuvable",
    "Ce dossier n'existe pas ou vous n'y avez pas accès.",
);

pub const RECORDS_UNAVAILABLE: ErrorPage = ErrorPage::new(
    StatusCode::SERVICE_UNAVAILABLE,
    "Dossiers momentanément inaccessibles",
    "Les dossiers de l'établissement ne peuvent pas être consultés pour le moment. Par sécurité, rien n'est affiché. Réessayez dans quelques minutes.",
)
.with_reference("dossiers");

/// The kinds of rate-limited dossier lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// `POST /portail/dossier`.
    Submit,
    /// `GET /portail/dossiers/{n}`, `/portail/patients/{id}`,
    /// `/portail/comptes-rendus/{id}`, `/portail/images/{uid}`.
    View,
}

impl Ctx<'_> {
    /// Counts a lookup against the account's and the address's limits: the
    /// refusal (429, or 503 when the store fails) when over either.
    async fn over_lookup_limit(&self, kind: Lookup) -> Option<Resp> {
        let l = &self.app.lookup_limits;
        let (by_account, by_address) = match kind {
            Lookup::Submit => (&l.submit_by_account, &l.submit_by_address),
            Lookup::View => (&l.views_by_account, &l.views_by_address),
        };
        let account = self.session.account_id.to_string();
        let address = self.req.client_ip.to_string();
        match hit_all(&[(by_account, &account), (by_address, &address)]).await {
            Ok(Verdict::Allowed) => None,
            Ok(Verdict::Over) => Some(self.error(&TOO_MANY_LOOKUPS)),
            Err(_) => Some(self.error(&UNAVAILABLE)),
        }
    }

    /// A page: its view, in the frame with the signed-in professional.
    pub fn render<T: Serialize>(&self, name: &str, title: &str, view: T) -> Resp {
        let page = Page {
            title,
            user: Some(&self.user),
            refresh_to: None,
            body: view,
        };
        self.app.pages.render(StatusCode::OK, name, &page)
    }

    pub fn error(&self, page: &ErrorPage) -> Resp {
        self.app.pages.error(page, Some(&self.user))
    }

    /// The answer when a record source fails: no.
    pub fn unavailable(&self, e: &AccessError) -> Resp {
        tracing::error!(error = %e, "portal dependency failed");
        match e {
            AccessError::Db(_) => self.error(&UNAVAILABLE),
            _ => self.error(&RECORDS_UNAVAILABLE),
        }
    }

    pub fn is_json(&self) -> bool {
        self.req.path.starts_with("/api/")
    }

    fn records(&self) -> Result<&espace_ps_records::Records, AccessError> {
        self.app.records.as_ref().ok_or(AccessError::NoRecords)
    }

    /// The audit record of this request: by the signed-in professional,
    /// from the client's address, on `resource`.
    fn audit(&self, event: Event, outcome: Outcome, resource: &str) -> AuditEvent {
        AuditEvent::new(event, outcome)
            .by(&self.session.professional)
            .client(self.req.client_ip)
            .request_id(&self.req.request_id)
            .on(resource)
    }

    /// Writes an audit record; without it, nothing is shown.
    async fn audit_or_refuse(&self, e: AuditEvent) -> Result<(), AccessError> {
        let e = self.app.access.enrich(&self.session, e).await?;
        self.app.db.audit(&e).await?;
        Ok(())
    }

    /// Puts a patient at the top of "Mes dernières recherches"; `dossier`:
    /// opened by its number, the entry links to that dossier.
    async fn remember(&mut self, p: &Patient, dossier: Option<&str>) {
        let mut r = recent_of(p);
        r.dossier = dossier.map(str::to_owned);
        let list = &mut self.session.recent_patients;
        list.retain(|x| x.id != r.id);
        list.insert(0, r);
        list.truncate(RECENT_CAP);
        match self
            .app
            .sessions
            .update(&self.session_id, &self.session)
            .await
        {
            Ok(true) => {}
            // Ended meanwhile (logout, timeout): not written back.
            Ok(false) => tracing::info!("session ended before its recent patients were saved"),
            Err(e) => tracing::warn!(error = %e, "cannot update recent patients"),
        }
    }
}

/// A patient as the session keeps it ("Mes dernières recherches") and the
/// pages show it.
fn recent_of(p: &Patient) -> RecentPatient {
    RecentPatient {
        id: p.patient_id.clone(),
        sex: p.sex.clone(),
        family_name: p.family_name.to_uppercase(),
        given_name: p.given_name.clone(),
        birth_date: fr_date(&p.birth_date),
        dossier: None,
    }
}

impl Portal {
    pub async fn handle(&self, req: Req) -> Resp {
        handle(self, req).await
    }
}

async fn handle(app: &Portal, req: Req) -> Resp {
    let (session_id, session) = match app.check.session_of(&req).await {
        Ok(Some(found)) => found,
        Ok(None) => return app.check.login_required(&req),
        Err(_) => return app.check.error(&UNAVAILABLE),
    };
    let user = app.check.user_view(&session);
    let ctx = Ctx {
        app,
        req: &req,
        session_id,
        session,
        user,
    };
    let path = req.path.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    if post
        && !web::csrf_ok(
            &req,
            &ctx.session.csrf_token,
            &app.config.server.public_origin(),
        )
    {
        return ctx.error(&crate::pages::FORBIDDEN_CSRF);
    }
    // Lookups by id answer whether a dossier number, a patient, a report or
    // a study exists: limited per account and per address, on every instance.
    let lookup = match (get, post, segments.as_slice()) {
        (_, true, ["portail", "dossier"]) => Some(Lookup::Submit),
        (
            true,
            _,
            ["portail", "patients", _]
            | ["portail", "dossiers", _]
            | ["portail", "comptes-rendus", _]
            | ["portail", "images", _],
        ) => Some(Lookup::View),
        // Whether a dossier exists, by its answer: a lookup too.
        (_, true, ["portail", "dossiers", _, "vu"]) => Some(Lookup::View),
        _ => None,
    };
    if let Some(kind) = lookup {
        if let Some(refusal) = ctx.over_lookup_limit(kind).await {
            return refusal;
        }
    }
    match (get, post, segments.as_slice()) {
        (true, _, [""]) => home::home(ctx).await,
        (true, _, ["portail", "recherche"]) => search::search_page(ctx).await,
        (true, _, ["api", "portail", "patients"]) => search::search_api(ctx).await,
        // "Rester connecté": loading the session touched it.
        (true, _, ["api", "portail", "session"]) => web::json(
            StatusCode::OK,
            &views::SessionAnswer {
                remaining_ms: app.check.remaining_ms(&ctx.session),
            },
        ),
        (true, _, ["portail", "dossier"]) => by_number::dossier_form(ctx, None, StatusCode::OK),
        (_, true, ["portail", "dossier"]) => by_number::dossier_submit(ctx).await,
        (true, _, ["portail", "patients", id]) => {
            let id = decode(id);
            dossier::patient(ctx, &id).await
        }
        (true, _, ["portail", "dossiers", number]) => {
            let number = decode(number);
            dossier::dossier(ctx, &number).await
        }
        (true, _, ["portail", "comptes-rendus", id]) => {
            let id = decode(id);
            report::report(ctx, &id).await
        }
        (_, true, ["portail", "dossiers", number, "vu"]) => {
            let number = decode(number);
            report::mark_dossier_seen(ctx, &number).await
        }
        (_, true, ["portail", "comptes-rendus", id, "vu"]) => {
            let id = decode(id);
            report::mark_seen(ctx, &id).await
        }
        (true, _, ["portail", "images", uid]) => {
            let uid = decode(uid);
            images::images(ctx, &uid).await
        }
        _ if ctx.is_json() => web::json(
            StatusCode::NOT_FOUND,
            &ApiError {
                error: "introuvable",
            },
        ),
        _ => ctx.error(&NOT_FOUND),
    }
}

fn decode(segment: &str) -> String {
    urlencoding::decode(segment)
        .map(|s| s.into_owned())
        .unwrap_or_default()
}

/// Dates as the records store them: `YYYY-MM-DD`.
const ISO_DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");
/// Dates as the user guide shows them: `jj/mm/aaaa`.
const FR_DATE: &[BorrowedFormatItem<'static>] = format_description!("[day]/[month]/[year]");

/// A date as `YYYY-MM-DD`.
pub fn iso(date: Date) -> String {
    date.format(ISO_DATE)
        .expect("a calendar date formats as [year]-[month]-[day]")
}

/// `YYYY-MM-DD` (and whatever follows) → `jj/mm/aaaa`; anything else as is.
pub fn fr_date(iso: &str) -> String {
    Date::parse(iso.get(..10).unwrap_or(iso), ISO_DATE)
        .ok()
        .and_then(|d| d.format(FR_DATE).ok())
        .unwrap_or_else(|| iso.to_owned())
}

/// `jj/mm/aaaa` → `YYYY-MM-DD`, for a real calendar date only, written
/// exactly so (two-digit day and month, four-digit year, no sign).
pub fn iso_date(fr: &str) -> Option<String> {
    let fr = fr.trim();
    let date = Date::parse(fr, FR_DATE).ok()?;
    // The parser is lenient where the user guide is not (a sign, say).
    (date.format(FR_DATE).ok()? == fr).then(|| iso(date))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_both_ways() {
        assert_eq!(fr_date("1961-08-13"), "13/08/1961");
        assert_eq!(fr_date("2024-02-29T10:00:00"), "29/02/2024");
        assert_eq!(fr_date("inconnue"), "inconnue");
        assert_eq!(
            iso(Date::from_calendar_date(987, time::Month::May, 4).unwrap()),
            "0987-05-04"
        );
        assert_eq!(iso_date("13/08/1961").as_deref(), Some("1961-08-13"));
        assert_eq!(iso_date(" 29/02/2024 ").as_deref(), Some("2024-02-29"));
        for bad in [
            "29/02/2023",
            "13-08-1961",
            "1/8/1961",
            "32/01/2000",
            "",
            "aa/bb/cccc",
            "13/08/+1961",
            "13/08/19610",
            "13/8/1961",
        ] {
            assert_eq!(iso_date(bad), None, "{bad}");
        }
    }
}
