//! `psdiff serve` and `psdiff token`.

use std::time::Duration;

use super::Error;
use super::print;
use crate::app::context::Context;
use crate::cli::{ServeArgs, TokenCommand};
use crate::exit::Exit;
use crate::serve::{self, Scope, tokens};

pub fn run(context: Context, args: &ServeArgs) -> Result<Exit, Error> {
    // A broken config is said at the start, not on the first request.
    context.rules()?;
    serve::run(
        context,
        serve::Settings {
            listen: args.listen,
            tokens: args.tokens.path.clone(),
            allow_control: args.allow_control,
            max_connections: args.max_connections as usize,
            client_timeout: Duration::from_secs(args.client_timeout),
        },
    )?;
    Ok(Exit::Clean)
}

pub fn token(command: TokenCommand) -> Result<Exit, Error> {
    let failed = |e: tokens::TokenError| Error::from(serve::ServeError::from(e));
    match command {
        TokenCommand::Add {
            name,
            inspect,
            control,
            tokens,
        } => {
            let scope = match (inspect, control) {
                (_, true) => Scope::Control,
                (true, false) => Scope::Inspect,
                (false, false) => Scope::Read,
            };
            let token = tokens::add(&tokens.path, &name, scope).map_err(failed)?;
            eprintln!(
                "psdiff: token `{name}` ({}) added to {}; it is shown only now:",
                scope.as_str(),
                tokens.path.display()
            );
            print(&format!("{token}\n"))?;
        }
        TokenCommand::List { tokens } => {
            let list = tokens::Tokens::load(&tokens.path).map_err(failed)?;
            let text: String = list
                .entries
                .iter()
                .map(|t| format!("{} {}\n", t.name, t.scope.as_str()))
                .collect();
            print(&text)?;
        }
        TokenCommand::Revoke { name, tokens } => {
            tokens::revoke(&tokens.path, &name).map_err(failed)?;
            eprintln!("psdiff: token `{name}` revoked");
        }
    }
    Ok(Exit::Clean)
}
