//! espace-ps: the "espace professionnel de santé" of a hospital, a reverse
//! proxy (Cloudflare's Pingora) in front of its image viewer that adds Pro
//! Santé Connect login, Hopital Manager single sign-on, per-patient access
//! policies and a few portal pages.
//!
//! The Pingora layer ([`server`]) only sequences the work; each concern is a
//! plain module that tests call without a socket.

pub mod access;
pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod drain;
pub mod inject;
pub mod metrics;
pub mod observe;
pub mod pages;
pub mod portal;
pub mod ratelimit;
pub mod records_refresh;
pub mod retention;
pub mod revocation;
pub mod router;
pub mod run;
pub mod server;
pub mod session;
pub mod state;
pub mod viewer;
pub mod views;
pub mod web;

/// The identity model (`espace-ps-identity`), at its historical path.
pub use espace_ps_identity as identity;
