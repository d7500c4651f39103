//! Run the provider emulator by hand, for demos: `cargo run -p atelier-emulator -- --port 8700`.

use clap::Parser;

/// A strict local emulator of Gemini, Veo, ModelArk, BFL and OpenAI videos.
#[derive(Parser)]
struct Args {
    /// Port of the main host.
    #[arg(long, default_value_t = 8700)]
    port: u16,
    /// Port of the "other host" (regional polling and delivery URLs).
    #[arg(long, default_value_t = 8701)]
    alt_port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emu = atelier_emulator::Emulator::start_on(args.port, args.alt_port, Default::default()).await?;
    println!("emulator on {} (other host {})", emu.base_url, emu.alt_url);
    println!("keys: {:?}", emu.state.keys);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
