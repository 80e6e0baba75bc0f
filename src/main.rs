//! The `vigil` binary: member (`serve`), all-in-one demo cluster (`dev`) and the CLI.

mod cli;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result: anyhow::Result<()> = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let cfg = args.resolve()?;
                vigil::logging::init(cfg.log_format, "info");
                vigil::server::serve(cfg).await?;
                Ok(())
            }
            Command::Dev(args) => {
                vigil::logging::init(
                    vigil::config::LogFormat::Human,
                    "warn,openraft=off,vigil_raft=error",
                );
                vigil::dev::run(args.members, args.hosts, args.data_dir).await?;
                Ok(())
            }
            _ => cli::run_client(cli).await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
