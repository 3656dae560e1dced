//! espace-ps access decisions.
//!
//! One engine answers every access question in espace-ps, from policies that
//! hospital administrators write in the Cedar language (`policies/`,
//! guide in `docs/policies.md`). No access rule lives anywhere else.
//!
//! ```no_run
//! use espace_ps_access::{AccessRequest, Action, Engine, LoginMethod, Professional,
//!     RequestContext, Resource, Via, DossierRoles};
//!
//! let engine = Engine::load("policies")?;
//! let decision = engine.decide(&AccessRequest {
//!     professional: Professional {
//!         national_id: "810001234567".into(),
//!         rpps: Some("10001234567".into()),
//!         professions: vec!["10".into()],
//!         savoir_faire: vec![],
//!         login_method: LoginMethod::PscCard,
//!     },
//!     action: Action::ViewDossier,
//!     resource: Resource::Dossier { id: "D1".into(), patient_id: "P1".into() },
//!     context: RequestContext {
//!         via: Via::CareTeam,
//!         care_team: vec![DossierRoles { dossier_id: "D1".into(), roles: vec!["MT".into()] }],
//!         birth_date_verified: false,
//!         now: 1_700_000_000,
//!     },
//! });
//! assert!(decision.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Reloads: [`Engine::reload`] (call it on SIGHUP) and [`Engine::watch`]
//! swap in a new set only when it is fully valid; [`Engine::generation`]
//! changes on each successful reload.

pub mod cli;
mod engine;
mod groups;
mod load;
mod model;
mod testcases;
pub mod viewer;
mod watch;

pub use engine::{Engine, PolicySnapshot, ReloadOutcome, ReloadStats};
pub use load::{LoadError, Problem, GROUPS_FILE, SCHEMA_FILE, TESTS_DIR};
pub use model::{
    AccessRequest, Action, Decision, DossierRoles, LoginMethod, Professional, RequestContext,
    Resource, Via,
};
pub use testcases::{Expect, TestCase};
pub use viewer::{
    canonicalize, Candidate, CanonicalRequest, Class, Classification, Denied, IdKind, Level,
    MediaType, Rejection, ResourceRef, RouteTable,
};
pub use watch::{PolicyWatcher, WatchError};
