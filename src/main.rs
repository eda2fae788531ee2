use clap::Parser;

fn main() {
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
