pub mod harness;

mod audit_trail;
mod cli;
mod devidp_login;
mod hm_sso;
mod lockout;
mod policies;
mod portal;
mod psc_login;
mod psc_mtls;
mod session_end;
mod stores;
mod viewer;
mod viewer_csp;
