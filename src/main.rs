use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    xacthuc::cli::run(xacthuc::cli::Cli::parse()).await
}
