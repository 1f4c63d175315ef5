//! Integration tests: the real server on loopback, driven by rmcp's client and raw HTTP, and the
//! real binary over stdio. One test binary (one link) with a module per area.

mod audit;
mod cli;
mod common;
mod deploy;
mod deployments;
mod downstream;
mod enterprise;
mod entra;
mod hostile;
mod http;
mod limits;
mod log_hygiene;
mod metrics;
mod own_server;
mod rate_limits;
mod sessions;
mod shared_state;
mod stdio;
mod tool_access;
mod tools;
mod traces;
mod trust;
