//! `psdiff files`.

use super::Error;
use crate::app::context::Context;
use crate::cli::{FilesArgs, FilesFormat};
use crate::exit::Exit;
use crate::files::{self, Settings};

pub fn run(context: &Context, args: &FilesArgs) -> Result<Exit, Error> {
    let status = files::run(Settings {
        proc_root: context.proc_root.clone(),
        users: context.users()?,
        pids: args.pids.clone(),
        names: args.names.clone(),
        command: args.command.clone(),
        depth: args.depth,
        paths: args.paths.clone(),
        json: args.format == FilesFormat::Json,
        max_open_files: args.max_open_files as usize,
        backend: args.backend,
        ring_bytes: args.ring_buffer * 1024,
    })?;
    Ok(if args.command.is_empty() {
        Exit::Clean
    } else {
        Exit::Command(u8::try_from(status).unwrap_or(u8::MAX))
    })
}
