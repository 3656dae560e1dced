//! espace-ps demo: what the `espace-ps-demo` binary runs around the real
//! proxy, and what the production `espace-ps` binary never links: the demo
//! records and their DICOM studies ([`data`]), and the dev identity
//! provider served on a Pingora listener ([`devidp_server`]), and the
//! demo's copy of the policies with its own groups ([`policies`]).

pub mod data;
pub mod devidp_server;
pub mod policies;
