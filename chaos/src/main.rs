//! `vigil-chaos`: run chaos against a vigil cluster and judge what happened.

fn main() {
    eprintln!("vigil-chaos: being built");
    std::process::exit(2);
}
