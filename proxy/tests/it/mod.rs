pub mod harness;

mod cli;
mod devidp_login;
