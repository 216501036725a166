//! Integration tests: the real server on an ephemeral port, real sockets,
//! real databases (a SQLite file and a Postgres database per test).

mod helpers;

mod access;
mod api;
mod bad_input;
mod browser;
mod cli;
mod durability;
mod guard;
mod interop;
mod live_sync;
mod slow_consumer;
mod web_app;
