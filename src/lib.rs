//! The `causeway` binary's library: config assembly, identities, the admin
//! endpoint and the commands, kept here so tests can drive them without a process.

pub mod admin;
pub mod ca;
pub mod cert_metrics;
pub mod config;
pub mod dev;
pub mod doctor;
pub mod identities;
pub mod link;
pub mod policy_merge;
pub mod policy_watch;
pub mod run;
pub mod status;
pub mod ui;
