pub mod harness;

mod audit_trail;
mod cli;
mod devidp_login;
mod drain;
mod hm_sso;
mod lockout;
mod policies;
mod portal;
mod psc_login;
mod psc_mtls;
mod records_refresh;
mod sentinel;
mod session_end;
mod stores;
mod tls_stores;
mod viewer;
mod viewer_csp;
