use clap::Parser;

fn main() {
    // `xp plan | head` closes the pipe early: end quietly, as other Unix tools do,
    // instead of panicking on the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = xp::cli::Cli::parse();
    let code = match xp::cli::run(cli) {
        Ok(success) => success.code(),
        Err(error) => {
            eprintln!("{error}");
            error.code()
        }
    };
    std::process::exit(code);
}
