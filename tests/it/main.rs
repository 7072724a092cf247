//! The integration tests: one binary (so the shared helpers build once),
//! one module per area. Each runs the real psdiff binary.

mod common;

mod agents;
mod baseline;
mod check;
mod crash;
mod debian;
mod dump;
mod errors;
mod explain;
mod files;
mod hostile;
mod live;
mod package;
mod readme;
mod serve;
mod zabbix;
