//! Integration tests: the real server on an ephemeral port, real sockets,
//! real databases (a SQLite file and a Postgres database per test).

mod fixture;
mod helpers;

mod access;
mod accounts;
mod api;
mod architecture;
mod bad_input;
mod browser;
mod cli;
mod cluster;
mod cluster_redis;
mod craft;
mod durability;
mod exports;
mod finalise;
mod guard;
mod guard_fuzz;
mod interop;
mod live_sync;
mod outage;
mod quotas;
mod recheck;
mod security;
mod slow_consumer;
mod web_app;
mod web_types;
