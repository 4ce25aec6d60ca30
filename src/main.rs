//! `pacer`: the outbound predictive dialer and CTI softswitch, as one program.
//!
//! This binary is the composition root: it parses the command line, loads the
//! configuration, opens the store and wires the crates together behind the HTTP server.

mod acd;
mod api;
mod auth;
mod cli;
mod cti;
mod demo;
mod dialing;
mod http;
mod live;
mod logging;
mod metrics;
mod recordings;
mod serve;
mod simulate;
mod tls;
mod web;
mod webhooks;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
