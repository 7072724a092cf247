//! What a command fails with: the application layer's errors, and those
//! of the API server, the file watcher and the process watcher, which
//! sit beside it.

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    App(#[from] crate::app::Error),
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
}

impl Error {
    pub fn exit(&self) -> Exit {
        let usage = match self {
            Error::App(e) => return e.exit(),
            Error::Serve(e) => e.is_usage(),
            Error::Files(e) => e.is_usage(),
            Error::Watch(e) => e.is_usage(),
        };
        if usage { Exit::Usage } else { Exit::Runtime }
    }
}
