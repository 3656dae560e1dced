pub mod harness;

mod cli;
mod devidp_login;
mod hm_sso;
mod psc_login;
mod stores;
mod policies;
